"""`record`: the hidden states of any PyTorch model over time, via forward hooks.

The time axis is the order of calls: a module called T times during one
forward pass (a recurrent cell in a loop, the conv block of a BLT network
unrolled for T steps) gives T time steps. Modules whose output already carries
a sequence (``nn.RNN``/``nn.GRU``/``nn.LSTM``) contribute their whole output
sequence as time steps. Names of recordable states:

``"name"``
    The output of submodule ``name`` (``model.named_modules()``). A module
    returning a tuple/dict records each tensor in it, as ``"name:0"``, ``"name:key"``.
``"name:part"``
    One part of a module's output. For ``nn.LSTM``/``nn.GRU``/``nn.RNN``:
    ``output`` (per-step output of the last layer), ``h_n``, ``c_n`` (final states)
    and, through an exact unrolled recurrence (:mod:`rnnprobe.models.unrolled`),
    ``l{k}.h``, ``l{k}.c`` and the gates ``l{k}.i/.f/.g/.o`` (LSTM) or
    ``l{k}.r/.z/.n`` (GRU) of every layer ``k``. For ``nn.LSTMCell``: ``h`` and ``c``.

Use :func:`recordable` to list the names a model offers.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._version import __version__
from .errors import (
    ArgumentError,
    ArgumentTypeError,
    ModelCallError,
    NonFiniteWarning,
    RnnprobeError,
    ShapeError,
    UnknownNameError,
    describe,
    format_choices,
)
from .models.unrolled import rnn_kind, state_names, unrolled_forward
from .recording import Recording, normalize_metadata
from .store import StoreWriter, load_recording

__all__ = ["Tap", "record", "recordable"]

SEP = ":"


class Tap(nn.Identity):
    """An identity module that marks a recordable state inside a model.

    Call it on a state wherever the state is computed (e.g. once per step in a
    recurrent loop); :func:`record` then records every call as a time step,
    and a model with taps records exactly its taps by default.

    Examples
    --------
    >>> import torch
    >>> class Loop(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.cell = torch.nn.RNNCell(2, 4)
    ...         self.h = Tap()
    ...     def forward(self, x):
    ...         h = torch.zeros(x.shape[0], 4)
    ...         for t in range(x.shape[1]):
    ...             h = self.h(self.cell(x[:, t], h))
    ...         return h
    >>> record(Loop(), torch.randn(5, 3, 2), progress=False).shapes
    {'h': (5, 3, 4)}
    """


# --------------------------------------------------------------------------- names


def _rnn_parts(module: nn.Module) -> list[str]:
    return ["output", "h_n"] + (["c_n"] if rnn_kind(module) == "LSTM" else [])


def _module_kind(module: nn.Module) -> str:
    if rnn_kind(module):
        return "rnn"
    return "lstmcell" if isinstance(module, nn.LSTMCell) else "generic"


def _static_parts(module: nn.Module) -> tuple[list[str], list[str]]:
    """(output parts, parts needing the unrolled recurrence) known without running the model."""
    kind = _module_kind(module)
    if kind == "rnn":
        return _rnn_parts(module), state_names(module)
    if kind == "lstmcell":
        return ["h", "c"], []
    return [], []


def _join(module_name: str, part: str) -> str:
    if not module_name:
        return part
    return f"{module_name}{SEP}{part}" if part else module_name


def recordable(model: nn.Module) -> list[str]:
    """Names :func:`record` accepts for ``model``, in module order.

    Every submodule's name is listed; for ``nn.LSTM``/``nn.GRU``/``nn.RNN`` and
    ``nn.LSTMCell`` also their parts (``lstm:output``, ``lstm:h_n``, ``lstm:l0.c``, ...).
    Parts of other modules returning tuples/dicts (``name:0``, ``name:key``) are
    discovered when the model runs.

    Examples
    --------
    >>> import torch
    >>> recordable(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU()))
    ['0', '1']
    >>> recordable(torch.nn.LSTM(2, 3))[:5]
    ['output', 'h_n', 'c_n', 'l0.h', 'l0.c']
    """
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(f"model: got {describe(model)}. Pass a torch.nn.Module.")
    names: list[str] = []
    for name, module in model.named_modules():
        if name:
            names.append(name)
        parts, unrollable = _static_parts(module)
        names.extend(_join(name, part) for part in parts + unrollable)
    return names


def _default_layers(model: nn.Module) -> list[str]:
    taps = [name for name, m in model.named_modules() if isinstance(m, Tap) and name]
    if taps:
        return taps
    root_parts, _ = _static_parts(model)
    if root_parts:  # the model is itself an nn.LSTM/GRU/RNN or nn.LSTMCell
        return root_parts
    return [
        name
        for name, m in model.named_modules()
        if name and not list(m.children()) and not isinstance(m, nn.modules.dropout._DropoutNd)
    ]


@dataclass
class _Target:
    """One hooked module and which parts of its output to record."""

    name: str
    module: nn.Module
    kind: str  # "rnn", "lstmcell" or "generic"
    parts: set[str] | None = None  # None: every part
    unroll: set[str] = field(default_factory=set)
    sequence: bool = False  # generic outputs shaped (batch, time, ...)
    stash: dict[str, torch.Tensor] = field(default_factory=dict)
    seen_parts: set[str] = field(default_factory=set)
    recorded: set[str] = field(default_factory=set)

    def layer_name(self, part: str) -> str:
        return _join(self.name, part)

    def wants(self, part: str) -> bool:
        return self.parts is None or part in self.parts


def _parse_spec(model: nn.Module, modules: Mapping[str, nn.Module], spec: Any) -> tuple[str, str]:
    """Split a layer name into (module name, part); the root's parts go by their bare names."""
    if not isinstance(spec, str):
        raise ArgumentTypeError(f"layers: got {describe(spec)} in the list. Layer names are strings.")
    module_name, _, part = spec.partition(SEP)
    if module_name and module_name in modules:
        return module_name, part
    root_parts, root_unrollable = _static_parts(model)
    if not part and spec in root_parts + root_unrollable:
        return "", spec
    raise UnknownNameError(
        f"layers: {spec!r} is not recordable in {type(model).__name__}. Available: "
        f"{format_choices(recordable(model), limit=40)}. Pass names from rnnprobe.recordable(model)."
    )


def _resolve_targets(model: nn.Module, layers: Sequence[str]) -> dict[str, _Target]:
    modules = {name: m for name, m in model.named_modules() if name}
    targets: dict[str, _Target] = {}
    for spec in layers:
        module_name, part = _parse_spec(model, modules, spec)
        module = modules[module_name] if module_name else model
        kind = _module_kind(module)
        target = targets.setdefault(module_name, _Target(module_name, module, kind, parts=set()))
        static, unrollable = _static_parts(module)
        if not part:
            if kind == "generic":
                target.parts = None
            elif target.parts is not None:
                target.parts.update(static)
            continue
        if kind != "generic" and part not in static + unrollable:
            raise UnknownNameError(
                f"layers: {spec!r}: {module_name!r} is a {type(module).__name__} whose parts are "
                f"{format_choices(static + unrollable, limit=40)}. Pass '{module_name}{SEP}<part>' with one of these."
            )
        if part in unrollable:
            target.unroll.add(part)
        if target.parts is not None:
            target.parts.add(part)
    return targets


# --------------------------------------------------------------------------- collecting states


def _flatten_output(output: Any, path: str = "") -> list[tuple[str, torch.Tensor]]:
    """Every tensor in a (nested) module output, with a dotted path."""
    if isinstance(output, torch.Tensor):
        return [(path, output)]
    if isinstance(output, nn.utils.rnn.PackedSequence):
        raise ArgumentTypeError(
            f"a module returned a PackedSequence{f' at {path!r}' if path else ''}; record needs padded "
            f"tensors. Pad the sequences before the model (all stimuli the same length)."
        )
    join = (lambda key: f"{path}.{key}") if path else str
    if isinstance(output, tuple) and hasattr(output, "_fields"):
        items = zip(output._fields, output, strict=True)
    elif isinstance(output, (tuple, list)):
        items = enumerate(output)
    elif isinstance(output, Mapping):
        items = output.items()
    elif hasattr(output, "__dataclass_fields__"):
        items = ((k, getattr(output, k)) for k in output.__dataclass_fields__)
    else:
        return []  # None, numbers, strings: not states
    found: list[tuple[str, torch.Tensor]] = []
    for key, value in items:
        found.extend(_flatten_output(value, join(key)))
    return found


class _Sink:
    """Receives tensors from hooks during one batch and lays them out as (batch, time, *units)."""

    def __init__(self, storage_dtype: torch.dtype | None) -> None:
        self.storage_dtype = storage_dtype
        self.layout: dict[str, tuple[int, tuple[int, ...], np.dtype]] = {}  # layer -> (n_time, units, dtype)
        self.order: list[str] = []
        self.batch_size = 0
        self.batch_index = 0
        self._lists: dict[str, list[torch.Tensor]] = {}
        self._views: dict[str, torch.Tensor] = {}
        self._cursor: dict[str, int] = {}

    def _dtype_for(self, tensor: torch.Tensor) -> torch.dtype:
        if self.storage_dtype is not None and tensor.is_floating_point():
            return self.storage_dtype
        return tensor.dtype

    def start(self, batch_size: int, batch_index: int, views: dict[str, torch.Tensor] | None) -> None:
        self.batch_size = batch_size
        self.batch_index = batch_index
        self._lists = {}
        self._views = views or {}
        self._cursor = dict.fromkeys(self._views, 0)

    def add(self, layer: str, tensor: torch.Tensor, *, sequence: bool) -> None:
        if tensor.dim() == 0 or tensor.shape[0] != self.batch_size:
            raise ShapeError(
                f"layers: {layer!r} produced {describe(tensor)}, whose first axis is not the batch of "
                f"{self.batch_size} stimuli. Record modules whose outputs are (batch, ...), or pass "
                f"forward=... so the model sees (stimulus, ...) batches."
            )
        if not sequence:
            tensor = tensor.unsqueeze(1)
        if not self.layout:  # first batch: keep copies (later in-place ops must not change them)
            if layer not in self._lists:
                self.order.append(layer)
            self._lists.setdefault(layer, []).append(tensor.to("cpu", self._dtype_for(tensor), copy=True))
            return
        if layer not in self._views:
            raise ShapeError(
                f"layers: {layer!r} appeared in batch {self.batch_index} but not in the first batch. Every "
                f"stimulus must run through the same modules the same number of times."
            )
        n_time = self._views[layer].shape[1]
        start = self._cursor[layer]
        stop = start + tensor.shape[1]
        if stop > n_time or tuple(tensor.shape[2:]) != tuple(self._views[layer].shape[2:]):
            raise ShapeError(
                f"layers: {layer!r} gave {stop} time steps of units {tuple(tensor.shape[2:])} in batch "
                f"{self.batch_index}, but {n_time} steps of units {tuple(self._views[layer].shape[2:])} in the "
                f"first batch. record needs the same number of steps for every stimulus: pad sequences to "
                f"one length."
            )
        self._views[layer][:, start:stop].copy_(tensor)
        self._cursor[layer] = stop

    def finish(self) -> dict[str, np.ndarray]:
        """End a batch; the first batch fixes each layer's (time, units, dtype)."""
        if not self.layout:
            blocks = {}
            for layer in self.order:
                pieces = self._lists[layer]
                units = {tuple(p.shape[2:]) for p in pieces}
                if len(units) != 1:
                    raise ShapeError(
                        f"layers: {layer!r} changed shape between calls within one forward pass "
                        f"({sorted(units)}); only states of a fixed shape can be stacked over time."
                    )
                block = torch.cat(pieces, dim=1).numpy()
                self.layout[layer] = (block.shape[1], block.shape[2:], block.dtype)
                blocks[layer] = block
            self._lists = {}
            return blocks
        short = {k: (c, self._views[k].shape[1]) for k, c in self._cursor.items() if c != self._views[k].shape[1]}
        if short:
            layer, (got, want) = next(iter(short.items()))
            raise ShapeError(
                f"layers: {layer!r} gave {got} time steps in batch {self.batch_index} but {want} in the first "
                f"batch. record needs the same number of steps for every stimulus: pad sequences to one length."
            )
        return {k: v.numpy() for k, v in self._views.items()}


def _output_parts(target: _Target, output: Any) -> list[tuple[str, torch.Tensor, bool]]:
    """(part, tensor laid out batch-first, whether axis 1 is time) for one module call."""
    if target.kind == "lstmcell":
        return [(part, tensor, False) for part, tensor in zip(("h", "c"), output, strict=True)]
    if target.kind == "generic":
        return [(part, tensor, target.sequence) for part, tensor in _flatten_output(output)]
    module = target.module
    seq_out, hidden = output
    if isinstance(seq_out, nn.utils.rnn.PackedSequence):
        _flatten_output(seq_out)  # raises the PackedSequence error
    if seq_out.dim() == 2:
        raise ShapeError(
            f"layers: {target.name or type(module).__name__!r} received an unbatched sequence "
            f"{describe(seq_out)}; record needs batched input (stimulus axis first). Check the stimuli's shape."
        )
    parts = [("output", seq_out if module.batch_first else seq_out.transpose(0, 1), True)]
    if rnn_kind(module) == "LSTM":
        parts += [("h_n", hidden[0].transpose(0, 1), False), ("c_n", hidden[1].transpose(0, 1), False)]
    else:
        parts.append(("h_n", hidden.transpose(0, 1), False))
    parts += [(name, state, True) for name, state in target.stash.items()]
    target.stash = {}
    return parts


def _make_hook(target: _Target, sink: _Sink) -> Callable[..., None]:
    def hook(module: nn.Module, args: Any, output: Any) -> None:
        for part, tensor, sequence in _output_parts(target, output):
            target.seen_parts.add(part)
            if target.wants(part):
                name = target.layer_name(part)
                target.recorded.add(name)
                sink.add(name, tensor, sequence=sequence)

    return hook


def _unrolled_method(target: _Target) -> Callable[..., Any]:
    module = target.module

    def forward(input: torch.Tensor, hx: Any = None) -> Any:
        output, hidden, states = unrolled_forward(module, input, hx, keep=target.unroll)
        target.stash = states
        return output, hidden

    return forward


# --------------------------------------------------------------------------- inputs


def _as_inputs(stimuli: Any) -> list[Any]:
    items = list(stimuli) if isinstance(stimuli, (list, tuple)) else [stimuli]
    if isinstance(stimuli, (list, tuple)) and not all(isinstance(x, (torch.Tensor, np.ndarray)) for x in items):
        raise ArgumentTypeError(
            f"stimuli: got {describe(stimuli)}. Pass a torch.Tensor or numpy array of shape (stimulus, ...), "
            f"or a tuple of them for a model with several inputs (convert nested lists with np.asarray)."
        )
    for i, item in enumerate(items):
        where = "stimuli" if len(items) == 1 and not isinstance(stimuli, (list, tuple)) else f"stimuli[{i}]"
        if not isinstance(item, (torch.Tensor, np.ndarray)):
            raise ArgumentTypeError(
                f"{where}: got {describe(item)}. Pass a torch.Tensor or numpy array of shape (stimulus, ...)."
            )
        if item.ndim == 0 or item.shape[0] == 0:
            raise ShapeError(f"{where}: got {describe(item)}, which holds no stimuli. Pass at least one stimulus.")
        if isinstance(item, np.ndarray) and item.dtype.kind not in "biuf":
            raise ArgumentTypeError(f"{where}: got {describe(item)}. Stimuli must be numeric.")
    if not items:
        raise ArgumentError("stimuli: got an empty sequence. Pass at least one input array.")
    lengths = {int(x.shape[0]) for x in items}
    if len(lengths) != 1:
        raise ShapeError(
            f"stimuli: the inputs have different numbers of stimuli ({[int(x.shape[0]) for x in items]}). "
            f"Every input needs one row per stimulus."
        )
    return items


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def _batch(inputs: list[Any], start: int, stop: int, device: torch.device, dtype: torch.dtype) -> list[torch.Tensor]:
    out = []
    for item in inputs:
        part = item[start:stop]
        tensor = torch.from_numpy(np.ascontiguousarray(part)) if isinstance(part, np.ndarray) else part
        tensor = tensor.to(device, dtype) if tensor.is_floating_point() else tensor.to(device)
        out.append(tensor)
    return out


def _storage_dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None:
        return None
    try:
        np_dtype = np.dtype(str(dtype).replace("torch.", ""))
    except TypeError:
        np_dtype = None
    if np_dtype is None or np_dtype.kind != "f":
        raise ArgumentError(
            f"dtype: got {describe(dtype)}. Pass a floating-point storage dtype such as 'float16', "
            f"'float32' or 'float64', or None to keep the model's dtype."
        )
    return getattr(torch, np_dtype.name)


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ArgumentError(f"{name}: got {describe(value)}. Pass a positive integer.")
    return int(value)


# --------------------------------------------------------------------------- record


class _MemoryDestination:
    """Preallocated in-memory arrays; later batches are copied straight into them by the hooks."""

    def __init__(self, n_stimuli: int, metadata: Mapping[str, np.ndarray]) -> None:
        self.n_stimuli = n_stimuli
        self.metadata = metadata
        self.arrays: dict[str, np.ndarray] = {}

    def open(self, blocks: Mapping[str, np.ndarray], provenance: dict[str, Any]) -> None:
        self.provenance = provenance
        for name, block in blocks.items():
            self.arrays[name] = np.empty((self.n_stimuli, *block.shape[1:]), dtype=block.dtype)
            self.arrays[name][: block.shape[0]] = block

    def views(self, start: int, stop: int) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(array[start:stop]) for name, array in self.arrays.items()}

    def write(self, blocks: Mapping[str, np.ndarray]) -> None:
        """Nothing to do: the blocks are views of the arrays."""

    def result(self) -> Recording:
        return Recording(self.arrays, metadata=self.metadata, provenance=self.provenance)

    def abort(self) -> None:
        self.arrays.clear()


class _StoreDestination:
    """A zarr store written batch by batch through a reused staging buffer."""

    def __init__(
        self,
        writer: StoreWriter,
        n_stimuli: int,
        metadata: Mapping[str, np.ndarray],
        *,
        batch_size: int,
        chunk_stimuli: int | None,
    ) -> None:
        self.writer = writer
        self.n_stimuli = n_stimuli
        self.metadata = metadata
        self.batch_size = batch_size
        self.chunk_stimuli = chunk_stimuli
        self.staging: dict[str, np.ndarray] = {}

    def open(self, blocks: Mapping[str, np.ndarray], provenance: dict[str, Any]) -> None:
        self.writer.create(
            n_stimuli=self.n_stimuli,
            layers={name: (block.shape[1:], block.dtype) for name, block in blocks.items()},
            times={name: np.arange(block.shape[1]) for name, block in blocks.items()},
            metadata=self.metadata,
            provenance=provenance,
            chunk_stimuli=self.chunk_stimuli,
        )
        self.staging = {
            name: np.empty((self.batch_size, *block.shape[1:]), dtype=block.dtype) for name, block in blocks.items()
        }

    def views(self, start: int, stop: int) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(array[: stop - start]) for name, array in self.staging.items()}

    def write(self, blocks: Mapping[str, np.ndarray]) -> None:
        self.writer.append(blocks)

    def result(self) -> Recording:
        self.writer.close()
        return load_recording(self.writer.path)

    def abort(self) -> None:
        self.writer.abort()


@contextlib.contextmanager
def _attached(model: nn.Module, targets: Mapping[str, _Target], sink: _Sink, device: torch.device):
    """Hooks (and unrolled forwards) on the targets, the model in eval mode on ``device``;
    everything restored on exit, also on error."""
    model_device, _ = _model_device_dtype(model)
    modes = {m: m.training for m in model.modules()}
    handles = []
    patched: list[_Target] = []
    try:
        if device != model_device:
            model.to(device)
        model.eval()
        for target in targets.values():
            if target.unroll:
                target.module.forward = _unrolled_method(target)
                patched.append(target)
            handles.append(target.module.register_forward_hook(_make_hook(target, sink)))
        yield
    finally:
        for handle in handles:
            handle.remove()
        for target in patched:
            del target.module.forward  # the instance attribute; the class's forward shows again
            target.stash = {}
        for module, mode in modes.items():
            module.training = mode
        if device != model_device:
            model.to(model_device)


class _NonFiniteCounter:
    """Counts NaN/inf per layer and time step over all batches."""

    def __init__(self) -> None:
        self.counts: dict[str, np.ndarray] = {}

    def update(self, blocks: Mapping[str, np.ndarray]) -> None:
        for name, block in blocks.items():
            if block.dtype.kind == "f" and not np.isfinite(block).all():
                bad = (~np.isfinite(block)).reshape(block.shape[0], block.shape[1], -1).sum(axis=(0, 2))
                self.counts[name] = self.counts.get(name, 0) + bad

    def warn(self) -> None:
        for layer, counts in self.counts.items():
            steps = np.flatnonzero(counts)
            detail = ", ".join(f"t={t}: {counts[t]}" for t in steps[:10])
            more = f" (and {steps.size - 10} more steps)" if steps.size > 10 else ""
            warnings.warn(
                f"layer {layer!r} has {int(counts.sum())} NaN/inf values at {steps.size} time step(s): {detail}{more}.",
                NonFiniteWarning,
                stacklevel=3,
            )


def _call_model(call: Callable[..., Any], model: nn.Module, batch: list[torch.Tensor], index: int) -> None:
    try:
        call(model, *batch)
    except RnnprobeError:
        raise
    except Exception as exc:
        shapes = ", ".join(describe(x) for x in batch)
        raise ModelCallError(
            f"stimuli: {type(model).__name__} failed on batch {index} ({shapes}): {type(exc).__name__}: {exc}. "
            f"Check that the stimuli are laid out (stimulus, ...) as the model expects, or pass "
            f"forward=lambda model, x: ... to adapt them."
        ) from exc


def _layer_order(requested: Sequence[str], names: Sequence[str]) -> list[str]:
    """Recorded names in the order they were requested (expansions in emission order)."""

    def rank(name: str) -> int:
        for i, spec in enumerate(requested):
            if name == spec or name.startswith(spec + SEP):
                return i
        return len(requested)

    return sorted(names, key=rank)  # stable: emission order within one request


def record(
    model: nn.Module,
    stimuli: Any,
    *,
    layers: str | Sequence[str] | None = None,
    metadata: Any = None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    dtype: Any = None,
    store: str | Path | None = None,
    overwrite: bool = False,
    chunk_stimuli: int | None = None,
    sequence: Sequence[str] = (),
    forward: Callable[..., Any] | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> Recording:
    """Record hidden states of ``model`` for every stimulus, over time.

    Parameters
    ----------
    model : torch.nn.Module
        Any module. It runs in eval mode under ``torch.no_grad()``; its mode,
        device and hooks are restored afterwards, also on error.
    stimuli : Tensor, ndarray, or tuple of them
        Shape ``(stimulus, ...)``, batched along axis 0 and passed to the model
        as ``model(batch)`` (``model(*batch)`` for a tuple). Floating-point
        stimuli are converted to the model's parameter dtype.
    layers : str or list of str, optional
        What to record (see :func:`recordable`). Default: the model's
        :class:`Tap` modules if it has any; the outputs and final states of a
        bare ``nn.LSTM``/``nn.GRU``/``nn.RNN``; else every leaf module except dropout.
    metadata : dict or pandas.DataFrame, optional
        Per-stimulus columns (label, condition, ...), one value per stimulus.
    batch_size : int
        Stimuli per forward pass.
    device : str or torch.device, optional
        Where to run (default: where the model's parameters are).
    dtype : optional
        Floating-point storage dtype, e.g. ``"float16"`` to halve memory.
    store : path, optional
        Stream the states batch by batch into a chunked zarr store at this path
        (memory stays bounded by one chunk per layer) and return the lazily
        opened store. Until finished, the store is marked incomplete.
    overwrite : bool
        Replace an existing store (only an rnnprobe store or an empty directory).
    chunk_stimuli : int, optional
        Stimuli per on-disk chunk (default: about 8 MiB per chunk).
    sequence : list of str
        Modules (among ``layers``) whose outputs carry time on axis 1, shape
        (batch, time, ...), such as a readout applied to a whole sequence at
        once: each call contributes all its time steps.
    forward : callable, optional
        ``forward(model, *batch)`` to call instead of ``model(*batch)``, e.g.
        ``lambda m, x: m(x.transpose(0, 1))`` for a sequence-first model.
    seed : int, optional
        Seeds torch's RNG for stochastic models, without changing global RNG state.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Recording
        One array ``(stimulus, time, *units)`` per recorded state, in the order
        requested; on disk (read lazily) when ``store`` is given.

    Examples
    --------
    >>> import torch
    >>> lstm = torch.nn.LSTM(3, 8, num_layers=2, batch_first=True)
    >>> rec = record(torch.nn.Sequential(lstm), torch.randn(10, 20, 3),
    ...              layers=["0:output", "0:l0.c"], progress=False)
    >>> rec.shapes
    {'0:output': (10, 20, 8), '0:l0.c': (10, 20, 8)}
    """
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(f"model: got {describe(model)}. Pass a torch.nn.Module.")
    inputs = _as_inputs(stimuli)
    n_stimuli = int(inputs[0].shape[0])
    batch_size = _check_positive_int("batch_size", batch_size)
    if chunk_stimuli is not None:
        chunk_stimuli = _check_positive_int("chunk_stimuli", chunk_stimuli)
    meta = normalize_metadata(metadata, n_stimuli)
    storage_dtype = _storage_dtype(dtype)
    requested = [layers] if isinstance(layers, str) else list(_default_layers(model) if layers is None else layers)
    if not requested:
        raise ArgumentError(
            f"layers: nothing to record in {type(model).__name__}. Pass names from rnnprobe.recordable(model)."
        )
    targets = _resolve_targets(model, requested)
    _mark_sequences(targets, sequence)
    destination: _MemoryDestination | _StoreDestination
    if store is not None:
        writer = StoreWriter(store, overwrite=overwrite)
        destination = _StoreDestination(writer, n_stimuli, meta, batch_size=batch_size, chunk_stimuli=chunk_stimuli)
    else:
        destination = _MemoryDestination(n_stimuli, meta)
    call = forward if forward is not None else (lambda m, *xs: m(*xs))
    model_device, model_dtype = _model_device_dtype(model)
    run_device = torch.device(device) if device is not None else model_device
    sink = _Sink(storage_dtype)
    nonfinite = _NonFiniteCounter()
    rng = torch.random.fork_rng(devices=[]) if seed is not None else contextlib.nullcontext()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_stimuli, unit="stim", desc=f"record {type(model).__name__}")
    try:
        with _attached(model, targets, sink, run_device), rng, torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)
            for b, start in enumerate(range(0, n_stimuli, batch_size)):
                stop = min(n_stimuli, start + batch_size)
                sink.start(stop - start, b, destination.views(start, stop) if b else None)
                _call_model(call, model, _batch(inputs, start, stop, run_device, model_dtype), b)
                blocks = sink.finish()
                if b == 0:
                    _check_first_batch(targets)
                    blocks = {name: blocks[name] for name in _layer_order(requested, list(blocks))}
                    provenance = _provenance(
                        model, list(blocks), seed, batch_size, storage_dtype, run_device, n_stimuli
                    )
                    destination.open(blocks, provenance)
                destination.write(blocks)
                nonfinite.update(blocks)
                if bar is not None:
                    bar.update(stop - start)
            result = destination.result()
    except BaseException:
        destination.abort()  # a store stays marked incomplete; nothing half-written is returned
        raise
    finally:
        if bar is not None:
            bar.close()
    nonfinite.warn()
    return result


def _mark_sequences(targets: Mapping[str, _Target], sequence: Sequence[str]) -> None:
    if isinstance(sequence, str):
        sequence = [sequence]
    for name in sequence:
        target = targets.get(name)
        if target is None or target.kind != "generic":
            raise UnknownNameError(
                f"sequence: {name!r} is not one of the recorded modules with a plain output "
                f"({format_choices(t.name for t in targets.values() if t.kind == 'generic')}). torch RNN "
                f"modules already record their sequences; list other recorded modules here."
            )
        target.sequence = True


def _check_first_batch(targets: Mapping[str, _Target]) -> None:
    """Every requested module was called, and every requested part exists."""
    for target in targets.values():
        if target.kind == "generic" and target.parts:
            missing = target.parts - target.seen_parts
            if missing:
                available = [target.layer_name(p) for p in sorted(target.seen_parts)]
                raise UnknownNameError(
                    f"layers: {target.layer_name(sorted(missing)[0])!r} is not in the output of "
                    f"{target.name!r} ({type(target.module).__name__}). Its output gives: "
                    f"{format_choices(available)}."
                )
        if not target.recorded:
            raise ArgumentError(
                f"layers: {target.name!r} ({type(target.module).__name__}) was never called during the forward "
                f"pass, or returned no tensor, so there is nothing to record. Choose a module the model uses."
            )


def _provenance(
    model: nn.Module,
    layers: list[str],
    seed: int | None,
    batch_size: int,
    storage_dtype: torch.dtype | None,
    device: torch.device,
    n_stimuli: int,
) -> dict[str, Any]:
    config = getattr(model, "config", None)
    if callable(config):
        config = None
    try:
        json.dumps(config)
    except TypeError:
        config = repr(config)
    return {
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "model_config": config,
        "layers": layers,
        "rnnprobe_version": __version__,
        "torch_version": torch.__version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "batch_size": batch_size,
        "storage_dtype": None if storage_dtype is None else str(storage_dtype).replace("torch.", ""),
        "device": str(device),
        "n_stimuli": n_stimuli,
    }

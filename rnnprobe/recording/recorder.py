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
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import check_device, check_int, check_progress, check_seed, seeded
from .._version import __version__
from ..errors import (
    ArgumentError,
    ArgumentTypeError,
    ModelCallError,
    RnnprobeError,
    RnnprobeWarning,
    ShapeError,
    describe,
)
from ..models.placement import check_computes, model_device_dtype, to_model
from .container import Recording, normalize_metadata
from .destinations import MemoryDestination, StoreDestination
from .interventions import as_changes, describe_changes, intervene
from .sink import NonFiniteCounter, Sink
from .store import StoreWriter
from .tap import SEP
from .targets import (
    Tap,
    Target,
    check_first_batch,
    default_layers,
    layer_order,
    make_hook,
    mark_sequences,
    recordable,
    resolve_targets,
    unrolled_method,
)

__all__ = ["Tap", "record", "recordable"]


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


def _batch(inputs: list[Any], start: int, stop: int, device: torch.device, dtype: torch.dtype) -> list[torch.Tensor]:
    out = []
    for item in inputs:
        part = item[start:stop]
        tensor = torch.from_numpy(np.ascontiguousarray(part)) if isinstance(part, np.ndarray) else part
        out.append(to_model(tensor, device, dtype))
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


@contextlib.contextmanager
def _attached(model: nn.Module, targets: Mapping[str, Target], sink: Sink, device: torch.device):
    """Hooks (and unrolled forwards) on the targets, the model in eval mode on ``device``;
    everything restored on exit, also on error.
    """
    model_device, _ = model_device_dtype(model)
    modes = {m: m.training for m in model.modules()}
    handles = []
    patched: list[Target] = []
    try:
        if device != model_device:
            model.to(device)
        model.eval()
        for target in targets.values():
            if target.unroll:
                target.module.forward = unrolled_method(target)
                patched.append(target)
            handles.append(target.module.register_forward_hook(make_hook(target, sink)))
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
    provenance: Mapping[str, Any] | None = None,
    interventions: Any = None,
    client: Any = None,
    progress: bool | None = None,
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
        Where to run (default: where the model's parameters are). On CUDA GPUs
        from Ampere on, torch runs float32 convolutions in TF32 by default
        (``torch.backends.cudnn.allow_tf32``): a BLT's states on an H200 then
        differed from the CPU's by up to 3e-4, against 6e-7 with it set to
        False (float32 convolutions).
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
    provenance : dict, optional
        JSON-serialisable facts of your own (a config, a data set version) kept in the recording's
        provenance beside what rnnprobe records.
    interventions : Intervention, Lesion or list of them, optional
        Record the model changed by these (:func:`rnnprobe.recording.intervene`); the
        recording's provenance lists them under ``"interventions"`` (``[]`` when intact).
    client : dask.distributed.Client, optional
        Record on a dask cluster: shards of whole chunks of stimuli are recorded by the workers
        into ``store`` (needed; on a file system every worker shares), which is marked complete
        only when every shard is written (:mod:`rnnprobe.recording.cluster`). With ``seed``, each
        piece of stimuli a worker records (whole chunks, about a batch) draws from its own stream, seeded
        by ``seed`` and its first stimulus: reproducible whichever worker records it, independent across
        pieces, but not the numbers of an unsharded run of a stochastic model.
    progress : bool or None
        Show a progress bar.
        None (default): a bar only when stderr is a terminal.

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
    batch_size = min(check_int("batch_size", batch_size), n_stimuli)  # buffers never exceed the stimuli
    if chunk_stimuli is not None:
        chunk_stimuli = check_int("chunk_stimuli", chunk_stimuli)
    meta = normalize_metadata(metadata, n_stimuli)
    extra = _extra_provenance(provenance)
    changes = [] if interventions is None else as_changes(interventions)
    seed = check_seed(seed)
    storage_dtype = _storage_dtype(dtype)
    requested, targets = _targets_of(model, layers, sequence)
    if client is not None:
        settings = dict(layers=requested, batch_size=batch_size, sequence=list(sequence), forward=forward, seed=seed,
                        dtype=dtype, device=device, interventions=changes or None, provenance=provenance)  # fmt: skip
        return _on_cluster(model, inputs, meta, client=client, store=store, overwrite=overwrite,
                           chunk_stimuli=chunk_stimuli, settings=settings)  # fmt: skip
    destination: MemoryDestination | StoreDestination
    if store is not None:
        writer = StoreWriter(store, overwrite=overwrite)
        destination = StoreDestination(writer, n_stimuli, meta, batch_size=batch_size, chunk_stimuli=chunk_stimuli)
    else:
        destination = MemoryDestination(n_stimuli, meta)
    call = forward if forward is not None else (lambda m, *xs: m(*xs))
    run_device, model_dtype = _run_device(model, device)
    sink = Sink(storage_dtype)
    nonfinite = NonFiniteCounter()
    rng = seeded(seed, run_device)
    bar = _progress_bar(progress, n_stimuli, model)
    try:
        with _attached(model, targets, sink, run_device), intervene(model, changes), rng, torch.no_grad():
            for b, start in enumerate(range(0, n_stimuli, batch_size)):
                stop = min(n_stimuli, start + batch_size)
                sink.start(stop - start, b, destination.views(start, stop) if b else None)
                _call_model(call, model, _batch(inputs, start, stop, run_device, model_dtype), b)
                blocks = sink.finish()
                if b == 0:
                    check_first_batch(targets)
                    blocks = {name: blocks[name] for name in layer_order(requested, list(blocks))}
                    made = _provenance(model, list(blocks), seed, batch_size, storage_dtype, run_device, n_stimuli)
                    made["interventions"] = describe_changes(changes)
                    _warn_unmarked_sequences(targets, blocks, inputs)
                    destination.open(blocks, {**extra, **made})
                destination.write(blocks)
                destination.count_nonfinite(nonfinite, blocks)
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


def _on_cluster(model: nn.Module, inputs: list[Any], meta: Any, *, client: Any, store: Any, overwrite: bool,
                chunk_stimuli: int | None, settings: dict[str, Any]) -> Recording:  # fmt: skip
    """``record`` in shards on a dask cluster's workers (see :mod:`rnnprobe.recording.cluster`)."""
    from .cluster import check_client, record_on_cluster

    check_client(client)
    if store is None:
        raise ArgumentError(
            "store: recording on a cluster writes into a store. Pass store=path (shared by the workers)."
        )
    writer = StoreWriter(store, overwrite=overwrite)

    def probe(items: list[Any]) -> Recording:
        return record(model, items[0] if len(items) == 1 else tuple(items), progress=False, **settings)

    result, bad = record_on_cluster(model, inputs, client=client, writer=writer, probe=probe, metadata=meta,
                                    settings=settings, chunk_stimuli=chunk_stimuli, per_task=None)  # fmt: skip
    counter = NonFiniteCounter()
    counter.counts = bad
    counter.warn()
    return result


def _run_device(model: nn.Module, device: Any) -> tuple[torch.device, torch.dtype]:
    """Where the model runs and the dtype its floating-point inputs take."""
    model_device, model_dtype = model_device_dtype(model)
    run_device = check_device(device) or model_device
    check_computes(model, run_device)
    return run_device, model_dtype


def _progress_bar(progress: Any, n_stimuli: int, model: nn.Module) -> Any:
    if not check_progress(progress):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=n_stimuli, unit="stim", desc=f"record {type(model).__name__}")


def _targets_of(model: nn.Module, layers: Any, sequence: Sequence[str]) -> tuple[list[str], dict[str, Target]]:
    """The requested layer names and the hooked targets that give them."""
    requested = [layers] if isinstance(layers, str) else list(default_layers(model) if layers is None else layers)
    if not requested:
        raise ArgumentError(
            f"layers: nothing to record in {type(model).__name__}. Pass names from rnnprobe.recordable(model)."
        )
    targets = resolve_targets(model, requested)
    mark_sequences(targets, sequence)
    return requested, targets


def _extra_provenance(provenance: Any) -> dict[str, Any]:
    if provenance is None:
        return {}
    if not isinstance(provenance, Mapping):
        raise ArgumentTypeError(f"provenance: got {describe(provenance)}. Pass a dict of JSON-serialisable facts.")
    try:
        return json.loads(json.dumps(dict(provenance)))
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(f"provenance: must be JSON-serialisable ({exc}).") from None


def _warn_unmarked_sequences(targets: Mapping[str, Target], blocks: Mapping[str, np.ndarray], inputs: list) -> None:
    """A module called once whose output carries the input's time axis (a readout applied to a whole
    sequence) would be recorded as one step of shape (time, ...): say what to pass.
    """
    x = inputs[0]
    if x.ndim != 3 or x.shape[1] < 2:  # only (stimulus, time, features) inputs have an obvious time axis
        return
    for target in targets.values():
        if target.kind != "generic" or target.sequence:
            continue
        for name, block in blocks.items():
            if (
                name.split(SEP)[0] == target.name
                and block.shape[1] == 1
                and block.ndim >= 4
                and (block.shape[2] == x.shape[1])
            ):
                warnings.warn(
                    f"record: {name!r} was called once per forward pass and gave (batch, {x.shape[1]}, ...), "
                    f"like the input's {x.shape[1]} time steps; it is recorded as 1 step of shape "
                    f"{tuple(block.shape[2:])}. If axis 1 is time, pass sequence=[{target.name!r}] (CLI: "
                    f"sequence = [{target.name!r}] in the model's table).",
                    RnnprobeWarning,
                    stacklevel=3,
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

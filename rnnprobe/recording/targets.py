"""What to record: names of recordable states, the hooked modules and their hooks.

See :mod:`rnnprobe.recording.recorder` for the naming scheme.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..errors import ArgumentError, ArgumentTypeError, ShapeError, UnknownNameError, describe, format_choices
from ..models.unrolled import rnn_kind, state_names, unrolled_forward
from .tap import SEP, Tap

if TYPE_CHECKING:  # pragma: no cover
    from .sink import Sink


def named_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Recordable submodules by name: a named :class:`Tap` by its own name, others by module path."""
    modules: dict[str, nn.Module] = {}
    for path, module in model.named_modules():
        if not path:
            continue
        name = module.name if isinstance(module, Tap) and module.name else path
        if name in modules and modules[name] is not module:
            raise ArgumentError(
                f"model: two recordable modules of {type(model).__name__} are both called {name!r}. "
                f"Give each Tap a unique name."
            )
        modules[name] = module
    return modules


def _aliases(model: nn.Module) -> dict[str, str]:
    """Module path -> own name, for named taps (either name selects the tap)."""
    return {
        path: module.name
        for path, module in model.named_modules()
        if path and isinstance(module, Tap) and module.name and module.name != path
    }


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
    for name, module in [("", model), *named_modules(model).items()]:
        if name:
            names.append(name)
        parts, unrollable = _static_parts(module)
        names.extend(_join(name, part) for part in parts + unrollable)
    return names


def default_layers(model: nn.Module) -> list[str]:
    taps = [name for name, m in named_modules(model).items() if isinstance(m, Tap)]
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
class Target:
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
    module_name = _aliases(model).get(module_name, module_name)
    if module_name and module_name in modules:
        return module_name, part
    root_parts, root_unrollable = _static_parts(model)
    if not part and spec in root_parts + root_unrollable:
        return "", spec
    raise UnknownNameError(
        f"layers: {spec!r} is not recordable in {type(model).__name__}. Available: "
        f"{format_choices(recordable(model), limit=40)}. Pass names from rnnprobe.recordable(model)."
    )


def resolve_targets(model: nn.Module, layers: Sequence[str]) -> dict[str, Target]:
    modules = named_modules(model)
    targets: dict[str, Target] = {}
    for spec in layers:
        module_name, part = _parse_spec(model, modules, spec)
        module = modules[module_name] if module_name else model
        kind = _module_kind(module)
        target = targets.setdefault(module_name, Target(module_name, module, kind, parts=set()))
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


def _output_parts(target: Target, output: Any) -> list[tuple[str, torch.Tensor, bool]]:
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


def make_hook(target: Target, sink: Sink) -> Callable[..., None]:
    def hook(module: nn.Module, args: Any, output: Any) -> None:
        for part, tensor, sequence in _output_parts(target, output):
            target.seen_parts.add(part)
            if target.wants(part):
                name = target.layer_name(part)
                target.recorded.add(name)
                sink.add(name, tensor, sequence=sequence)

    return hook


def unrolled_method(target: Target) -> Callable[..., Any]:
    module = target.module

    def forward(input: torch.Tensor, hx: Any = None) -> Any:
        output, hidden, states = unrolled_forward(module, input, hx, keep=target.unroll)
        target.stash = states
        return output, hidden

    return forward


def mark_sequences(targets: Mapping[str, Target], sequence: Sequence[str]) -> None:
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


def check_first_batch(targets: Mapping[str, Target]) -> None:
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


def layer_order(requested: Sequence[str], names: Sequence[str]) -> list[str]:
    """Recorded names in the order they were requested (expansions in emission order)."""

    def rank(name: str) -> int:
        for i, spec in enumerate(requested):
            if name == spec or name.startswith(spec + SEP):
                return i
        return len(requested)

    return sorted(names, key=rank)  # stable: emission order within one request

"""Interventions on a running model: unit-level changes through hooks, connection-level lesions.

Two kinds of change, applied by :func:`intervene` (a context manager) or by
``record(..., interventions=[...])``, on any model rnnprobe can record:

:class:`Intervention`
    Replaces the output of one recordable module (a :class:`~rnnprobe.Tap` or any
    submodule, named as for :func:`~rnnprobe.record`) at chosen calls ("time steps",
    counted from the start of each forward call) and on chosen units: by zero, by
    its mean over stimuli in a reference recording, by a clamp value, plus seeded
    Gaussian noise, times a factor, or with its projection on a subspace removed.
:class:`Lesion`
    Scales a named connection type of a step-protocol model (``bottom-up``,
    ``lateral``, ``top-down`` of the BLT family; ``recurrent`` of an RNN; see
    ``model.connection_parameters()``), or multiplies one parameter by a mask,
    from a chosen time step on ("virtual cooling"). The parameters are swapped for
    scaled copies while the model runs and the originals put back afterwards: the
    model's weights are never edited in place.

The model is the same object with the same parameters afterwards, also when the
forward call fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._validation import check_int, check_number, check_option, check_seed
from ..errors import ArgumentError, ArgumentTypeError, ShapeError, UnknownNameError, describe, format_choices
from ..models.base import watch_steps
from .tap import Tap
from .targets import named_modules

KINDS = ("zero", "mean", "clamp", "noise", "scale", "project_out")


def _steps(steps: Any) -> frozenset[int] | None:
    if steps is None:
        return None
    values = [steps] if isinstance(steps, (int, np.integer)) else list(steps)
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0 for v in values):
        raise ArgumentError(f"steps: got {describe(steps)}. Pass time steps as integers >= 0, or None for every step.")
    return frozenset(int(v) for v in values)


def _units(units: Any) -> np.ndarray | None:
    """A boolean mask (any shape) or sorted unique integer indices into the flattened units."""
    if units is None:
        return None
    array = np.asarray(units)
    if array.dtype == bool:
        return array
    if array.dtype.kind not in "iu" or array.ndim != 1 or (array.size and array.min() < 0):
        raise ArgumentError(
            f"units: got {describe(units)}. Pass a boolean mask of the layer's units (or flattened units), or "
            f"integer indices >= 0 into the flattened units."
        )
    return np.unique(array)


@dataclass(frozen=True, eq=False)
class Intervention:
    """A change to one module's output while the model runs; build one with the class methods.

    Parameters
    ----------
    layer : str
        A recordable module (:func:`rnnprobe.recordable`) whose output is a tensor (batch, *units).
    kind : {"zero", "mean", "clamp", "noise", "scale", "project_out"}
    units : bool array or int array, optional
        Which units change: a mask of the unit shape (or of the flattened units), or indices into
        the flattened units. Default: all.
    steps : int or iterable of int, optional
        Calls of the module (0 = first, counted from each forward call) that change. Default: all.
    value : optional
        The clamp value, the noise's standard deviation, the scale factor, the subspace's basis
        (k, units) for ``project_out``, or the reference Recording for ``mean``.
    seed : int, optional
        Seed of the noise (each forward call continues the same generator).

    Examples
    --------
    >>> import torch
    >>> from rnnprobe.models import GRU
    >>> from rnnprobe.recording import Intervention, intervene
    >>> model = GRU(2, 8, 1)
    >>> with intervene(model, Intervention.zero("l0.h", units=[0, 1], steps=[2, 3])):
    ...     y = model(torch.randn(4, 6, 2))
    >>> y.shape
    torch.Size([4, 6, 1])
    """

    layer: str
    kind: str
    units: Any = None
    steps: Any = None
    value: Any = None
    seed: int | None = None
    _mask: np.ndarray | None = field(default=None, init=False, repr=False)
    _steps: frozenset[int] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.layer, str) or not self.layer:
            raise ArgumentTypeError(f"layer: got {describe(self.layer)}. Pass the name of a recordable module.")
        check_option("kind", self.kind, KINDS)
        object.__setattr__(self, "_mask", _units(self.units))
        object.__setattr__(self, "_steps", _steps(self.steps))
        object.__setattr__(self, "value", _checked_value(self.kind, self.value))
        object.__setattr__(self, "seed", check_seed(self.seed))

    @classmethod
    def zero(cls, layer: str, *, units: Any = None, steps: Any = None) -> Intervention:
        """Set the output to 0 (silencing units)."""
        return cls(layer, "zero", units=units, steps=steps)

    @classmethod
    def mean(cls, layer: str, reference: Any, *, units: Any = None, steps: Any = None) -> Intervention:
        """Replace the output by its mean over the stimuli of ``reference`` (a Recording of the layer) at that step."""
        return cls(layer, "mean", units=units, steps=steps, value=reference)

    @classmethod
    def clamp(cls, layer: str, value: Any, *, units: Any = None, steps: Any = None) -> Intervention:
        """Hold the output at ``value`` (a number, or an array of the unit shape)."""
        return cls(layer, "clamp", units=units, steps=steps, value=value)

    @classmethod
    def noise(cls, layer: str, sd: float, *, units: Any = None, steps: Any = None, seed: int = 0) -> Intervention:
        """Add Gaussian noise of standard deviation ``sd`` (seeded)."""
        return cls(layer, "noise", units=units, steps=steps, value=sd, seed=seed)

    @classmethod
    def scale(cls, layer: str, factor: float, *, units: Any = None, steps: Any = None) -> Intervention:
        """Multiply the output by ``factor`` (1: no change)."""
        return cls(layer, "scale", units=units, steps=steps, value=factor)

    @classmethod
    def project_out(cls, layer: str, basis: Any, *, units: Any = None, steps: Any = None) -> Intervention:
        """Remove the output's projection on the span of ``basis`` (k, flattened units): top PCs, a decoding axis."""
        return cls(layer, "project_out", units=units, steps=steps, value=basis)

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable account of the change (kept in a recording's provenance)."""
        value = self.value
        if isinstance(value, np.ndarray):
            value = f"array{value.shape}" if value.size > 1 else float(value)
        elif value is not None and not isinstance(value, (int, float)):
            value = type(value).__name__
        units = None if self._mask is None else _count(self._mask)
        steps = None if self._steps is None else sorted(self._steps)
        return {"type": "intervention", "layer": self.layer, "kind": self.kind, "units": units,
                "steps": steps, "value": value, "seed": self.seed}  # fmt: skip


def _count(mask: np.ndarray) -> int:
    return int(mask.sum()) if mask.dtype == bool else int(mask.size)


def _checked_value(kind: str, value: Any) -> Any:
    if kind == "zero":
        return None
    if kind == "mean":
        from .container import Recording

        if not isinstance(value, Recording):
            raise ArgumentTypeError(f"reference: got {describe(value)}. Pass a Recording of the layer (intact model).")
        return value
    if kind == "noise":
        return check_number("sd", value, minimum=0)
    if kind == "scale":
        return check_number("factor", value)
    array = np.asarray(value, dtype=float) if isinstance(value, (int, float, np.ndarray, list, tuple)) else None
    what = "value" if kind == "clamp" else "basis"
    if array is None or not np.all(np.isfinite(array)) or (kind == "project_out" and array.ndim != 2):
        fix = "a finite number or array of the unit shape" if kind == "clamp" else "a finite (k, units) array"
        raise ArgumentError(f"{what}: got {describe(value)}. Pass {fix}.")
    return array


@dataclass(frozen=True, eq=False)
class Lesion:
    """Scale a connection type, or mask a parameter, of a model from one time step on (virtual cooling).

    Parameters
    ----------
    connection : str, optional
        A key of ``model.connection_parameters()`` (e.g. ``"lateral"``, ``"top-down"``, ``"recurrent"``).
    scale : float
        Factor applied to the connection's parameters (0: removed).
    from_step : int
        First time step changed (0: from the start). Steps before it run intact.
    layers : int or iterable of int, optional
        Only these layers' connections (default: all).
    parameter, mask : optional
        Instead of a connection: the name of one parameter (``model.named_parameters()``) and a
        mask of its shape it is multiplied by (any numbers; 0 removes a weight).

    Examples
    --------
    >>> import torch
    >>> from rnnprobe.models import BLT
    >>> from rnnprobe.recording import Lesion, intervene
    >>> model = BLT("BLT", image_size=16, maps=4, steps=3)
    >>> with intervene(model, Lesion.cool("lateral", from_step=1)):
    ...     y = model(torch.rand(2, 1, 16, 16))
    >>> y.shape
    torch.Size([2, 3, 10])
    """

    connection: str | None = None
    scale: float = 0.0
    from_step: int = 0
    layers: Any = None
    parameter: str | None = None
    mask: Any = None

    def __post_init__(self) -> None:
        if (self.connection is None) == (self.parameter is None):
            raise ArgumentError(
                f"connection, parameter: got {describe(self.connection)} and {describe(self.parameter)}. Pass "
                f"exactly one: a connection type to scale, or a parameter name with a mask."
            )
        if self.parameter is not None and self.mask is None:
            raise ArgumentError(f"mask: got None for parameter {self.parameter!r}. Pass a mask of its shape.")
        object.__setattr__(self, "scale", check_number("scale", self.scale))
        object.__setattr__(self, "from_step", check_int("from_step", self.from_step, minimum=0))
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(sorted(_steps(self.layers) or ())))
        if self.mask is not None:
            mask = np.asarray(self.mask, dtype=float)
            if not np.all(np.isfinite(mask)):
                raise ArgumentError(f"mask: got {describe(self.mask)} with NaN or inf. Pass finite factors.")
            object.__setattr__(self, "mask", mask)

    @classmethod
    def cool(cls, connection: str, *, from_step: int = 0, layers: Any = None, scale: float = 0.0) -> Lesion:
        """Remove (or scale by ``scale``) a connection type from ``from_step`` on."""
        return cls(connection=connection, scale=scale, from_step=from_step, layers=layers)

    @classmethod
    def masked(cls, parameter: str, mask: Any, *, from_step: int = 0) -> Lesion:
        """Multiply one parameter by ``mask`` from ``from_step`` on."""
        return cls(parameter=parameter, mask=mask, from_step=from_step)

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable account of the lesion (kept in a recording's provenance)."""
        if self.parameter is not None:
            removed = int((self.mask == 0).sum())
            return {"type": "lesion", "parameter": self.parameter, "weights_removed": removed,
                    "from_step": self.from_step}  # fmt: skip
        return {"type": "lesion", "connection": self.connection, "scale": self.scale, "from_step": self.from_step,
                "layers": None if self.layers is None else list(self.layers)}  # fmt: skip


Change = Intervention | Lesion


def as_changes(changes: Any) -> list[Change]:
    """One Intervention/Lesion or a sequence of them, as a list (refusing anything else)."""
    items = [changes] if isinstance(changes, (Intervention, Lesion)) else changes
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise ArgumentTypeError(f"interventions: got {describe(changes)}. Pass an Intervention, a Lesion or a list.")
    for item in items:
        if not isinstance(item, (Intervention, Lesion)):
            raise ArgumentTypeError(
                f"interventions: got {describe(item)} in the list. Pass Intervention.zero(...), Lesion.cool(...), ..."
            )
    return list(items)


def describe_changes(changes: Any) -> list[dict[str, Any]]:
    """The provenance entries of a list of changes."""
    return [change.describe() for change in as_changes(changes)]


@contextlib.contextmanager
def intervene(model: nn.Module, changes: Change | Sequence[Change]) -> Iterator[nn.Module]:
    """Run ``model`` with interventions and lesions applied; everything is undone on exit, also on error.

    Parameters
    ----------
    model : torch.nn.Module
    changes : Intervention, Lesion, or a list of them
        Applied in order (several on one module compose).

    Yields
    ------
    torch.nn.Module
        The same model, changed while the context lasts.

    Examples
    --------
    >>> import torch
    >>> from rnnprobe.models import VanillaRNN
    >>> model = VanillaRNN(2, 8, 1)
    >>> x = torch.randn(3, 5, 2)
    >>> with intervene(model, Lesion.cool("recurrent")):
    ...     cooled = model(x)
    >>> bool(torch.equal(model(x)[:, 0], cooled[:, 0]))  # the first step has no recurrent input yet
    True
    """
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(f"model: got {describe(model)}. Pass a torch.nn.Module.")
    items = as_changes(changes)
    units = [c for c in items if isinstance(c, Intervention)]
    lesions = [c for c in items if isinstance(c, Lesion)]
    unit_plan = _plan_units(model, units)
    weight_plan = _plan_lesions(model, lesions)
    with contextlib.ExitStack() as stack:
        if unit_plan:
            stack.enter_context(_hooked(model, unit_plan))
        if weight_plan:
            stack.enter_context(_swapped(model, weight_plan))
        yield model


# ---- unit-level interventions: hooks ---------------------------------------------------------


@dataclass
class _Hooked:
    change: Intervention
    module: nn.Module
    generator: torch.Generator | None = None
    cache: dict[str, Any] = field(default_factory=dict)


def _plan_units(model: nn.Module, changes: list[Intervention]) -> list[_Hooked]:
    if not changes:
        return []
    modules = named_modules(model)
    plan = []
    for change in changes:
        module = modules.get(change.layer)
        if module is None:
            raise UnknownNameError(
                f"layer: {change.layer!r} is not a module of {type(model).__name__}. Available: "
                f"{format_choices(modules, limit=40)}."
            )
        if isinstance(module, Tap) and module.observe_only:
            raise ArgumentError(
                f"layer: {change.layer!r} is an observe-only tap (nothing downstream uses its value), so changing "
                f"it would change nothing. Intervene on a state the computation goes on with."
            )
        if change.kind == "mean" and change.layer not in change.value.layers:
            raise UnknownNameError(
                f"reference: the recording has no layer {change.layer!r} (it has "
                f"{format_choices(change.value.layers)}). Record the intact model's {change.layer!r} first."
            )
        plan.append(_Hooked(change, module))
    return plan


@contextlib.contextmanager
def _hooked(model: nn.Module, plan: list[_Hooked]) -> Iterator[None]:
    calls: dict[int, int] = {}
    modules = {id(item.module): item.module for item in plan}

    def reset(module: nn.Module, args: Any) -> None:
        calls.clear()
        calls.update(dict.fromkeys(modules, 0))

    def count(module: nn.Module, args: Any) -> None:
        calls[id(module)] = calls.get(id(module), 0) + 1

    def check(module: nn.Module, args: Any, output: Any) -> None:
        for item in plan:
            _check_reached(item, calls.get(id(item.module), 0))

    handles = [model.register_forward_pre_hook(reset), model.register_forward_hook(check)]
    try:
        for module in modules.values():
            handles.append(module.register_forward_pre_hook(count))
        for item in reversed(plan):  # prepended, so that they run in order and before record's hooks
            item.generator = None
            handles.append(item.module.register_forward_hook(_make_hook(item, calls), prepend=True))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _check_reached(item: _Hooked, n_calls: int) -> None:
    change = item.change
    if n_calls == 0:
        raise ArgumentError(
            f"interventions: {change.layer!r} was never called in this forward pass, so the intervention did "
            f"nothing. Choose a module the model uses."
        )
    if change._steps is not None and max(change._steps) >= n_calls:
        raise ArgumentError(
            f"interventions: {change.layer!r} was called {n_calls} time(s) in this forward pass (steps 0 to "
            f"{n_calls - 1}), so step {max(change._steps)} was never reached. Pass steps below {n_calls}."
        )


def _make_hook(item: _Hooked, calls: dict[int, int]) -> Any:
    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        t = calls.get(id(module), 1) - 1
        steps = item.change._steps
        if steps is not None and t not in steps:
            return None
        if not isinstance(output, torch.Tensor) or output.dim() < 2:
            raise ArgumentTypeError(
                f"interventions: {item.change.layer!r} returned {describe(output)}; interventions need a tensor "
                f"(batch, *units). Put a Tap on the state you want to change and intervene there."
            )
        return _changed(item, output, t)

    return hook


def _unit_mask(item: _Hooked, units_shape: tuple[int, ...], device: torch.device) -> torch.Tensor | None:
    mask = item.change._mask
    if mask is None:
        return None
    key = f"mask{units_shape}{device}"
    if key not in item.cache:
        n = int(np.prod(units_shape))
        if mask.dtype == bool:
            if mask.shape not in (units_shape, (n,)):
                raise ShapeError(
                    f"units: got a mask of shape {mask.shape} for {item.change.layer!r}, whose units are "
                    f"{units_shape} ({n} when flattened). Pass a mask of one of these shapes."
                )
            flat = mask.reshape(-1)
        else:
            if mask.size and mask.max() >= n:
                raise ShapeError(
                    f"units: index {int(mask.max())} is out of range for {item.change.layer!r}, which has {n} "
                    f"units {units_shape}. Pass indices below {n}."
                )
            flat = np.zeros(n, dtype=bool)
            flat[mask] = True
        item.cache[key] = torch.from_numpy(flat.reshape(units_shape)).to(device)
    return item.cache[key]


def _changed(item: _Hooked, output: torch.Tensor, t: int) -> torch.Tensor:
    change, shape = item.change, tuple(output.shape[1:])
    mask = _unit_mask(item, shape, output.device)
    if change.kind == "zero":
        new = torch.zeros_like(output)
    elif change.kind == "scale":
        new = output * change.value
    elif change.kind == "noise":
        if item.generator is None:
            item.generator = torch.Generator(device=output.device).manual_seed(change.seed or 0)
        noise = torch.randn(output.shape, generator=item.generator, device=output.device, dtype=output.dtype)
        new = output + change.value * noise
    elif change.kind == "clamp":
        new = torch.as_tensor(_fits(change.value, shape, item, "value"), dtype=output.dtype, device=output.device)
        new = new.expand_as(output)
    elif change.kind == "mean":
        new = _reference_mean(item, shape, t).to(output.device, output.dtype).expand_as(output)
    else:
        q = _basis(item, int(np.prod(shape))).to(output.device, output.dtype)
        flat = output.reshape(output.shape[0], -1)
        new = (flat - (flat @ q) @ q.T).reshape(output.shape)
    return new if mask is None else torch.where(mask, new, output)


def _fits(value: np.ndarray, shape: tuple[int, ...], item: _Hooked, name: str) -> np.ndarray:
    if value.ndim and value.shape != shape and value.size != int(np.prod(shape)):
        raise ShapeError(f"{name}: got shape {value.shape} for {item.change.layer!r}, whose units are {shape}.")
    return value.reshape(shape) if value.ndim else value


def _reference_mean(item: _Hooked, shape: tuple[int, ...], t: int) -> torch.Tensor:
    if "mean" not in item.cache:
        states = np.asarray(item.change.value.get(item.change.layer), dtype=np.float64)
        if tuple(states.shape[2:]) != shape:
            raise ShapeError(
                f"reference: {item.change.layer!r} has units {tuple(states.shape[2:])} in the reference recording "
                f"but {shape} in the model. Record the reference from the same model."
            )
        if not np.all(np.isfinite(states)):
            raise ArgumentError(f"reference: {item.change.layer!r} holds NaN or inf; its mean is undefined.")
        item.cache["mean"] = torch.from_numpy(states.mean(axis=0))
    means = item.cache["mean"]
    if t >= means.shape[0]:
        raise ShapeError(
            f"reference: {item.change.layer!r} has {means.shape[0]} time steps in the reference recording; step "
            f"{t} has no mean. Record the reference with as many steps as the model runs."
        )
    return means[t]


def _basis(item: _Hooked, n: int) -> torch.Tensor:
    if "basis" not in item.cache:
        basis = item.change.value
        if basis.shape[1] != n:
            raise ShapeError(
                f"basis: got shape {basis.shape} for {item.change.layer!r}, which has {n} (flattened) units. "
                f"Pass a (k, {n}) array."
            )
        q, r = np.linalg.qr(basis.T)
        keep = np.abs(np.diag(r)) > 1e-10 * max(1.0, np.abs(r).max())
        item.cache["basis"] = torch.from_numpy(q[:, keep])
    return item.cache["basis"]


# ---- connection-level lesions: parameters swapped at step boundaries ----------------------------


@dataclass
class _Swap:
    module: nn.Module
    name: str  # the parameter's name in its module
    original: torch.Tensor
    factors: list[tuple[int, Any]] = field(default_factory=list)  # (from_step, factor)
    installed: tuple[int, ...] = ()


def _plan_lesions(model: nn.Module, lesions: list[Lesion]) -> dict[str, _Swap]:
    swaps: dict[str, _Swap] = {}
    params = dict(model.named_parameters())
    for lesion in lesions:
        for qualified in _lesioned_parameters(model, lesion, params):
            if qualified not in swaps:
                owner, _, leaf = qualified.rpartition(".")
                swaps[qualified] = _Swap(model.get_submodule(owner), leaf, params[qualified])
            factor = lesion.scale if lesion.parameter is None else _mask_factor(lesion, params[qualified])
            swaps[qualified].factors.append((lesion.from_step, factor))
    if any(step > 0 for swap in swaps.values() for step, _ in swap.factors) and not callable(
        getattr(model, "step", None)
    ):
        raise ArgumentError(
            f"from_step: {type(model).__name__} has no step method, so a lesion from a later step cannot be "
            f"timed. Use from_step=0, or a model on the step protocol (rnnprobe.models.RecurrentModel)."
        )
    return swaps


def _lesioned_parameters(model: nn.Module, lesion: Lesion, params: dict[str, Any]) -> list[str]:
    if lesion.parameter is not None:
        if lesion.parameter not in params:
            raise UnknownNameError(
                f"parameter: {lesion.parameter!r} is not a parameter of {type(model).__name__}. Available: "
                f"{format_choices(params, limit=40)}."
            )
        return [lesion.parameter]
    table = model.connection_parameters() if callable(getattr(model, "connection_parameters", None)) else {}
    if lesion.connection not in table:
        raise UnknownNameError(
            f"connection: {type(model).__name__} has no connection type {lesion.connection!r}"
            f"{f'; it has {format_choices(table)}' if table else ' (it names none)'}. Pass one of these, or "
            f"Lesion.masked(parameter, mask) for a weight mask."
        )
    per_layer = table[lesion.connection]
    chosen = range(len(per_layer)) if lesion.layers is None else lesion.layers
    missing = [k for k in chosen if k >= len(per_layer)]
    if missing:
        raise ArgumentError(
            f"layers: {type(model).__name__}'s {lesion.connection!r} connections exist for layers 0 to "
            f"{len(per_layer) - 1}; got {missing[0]}."
        )
    return [name for k in chosen for name in per_layer[k]]


def _mask_factor(lesion: Lesion, parameter: torch.Tensor) -> np.ndarray:
    if lesion.mask.shape != tuple(parameter.shape):
        raise ShapeError(
            f"mask: got shape {lesion.mask.shape} for {lesion.parameter!r}, whose shape is {tuple(parameter.shape)}. "
            f"Pass a mask of the parameter's shape."
        )
    return lesion.mask


def _install(swaps: dict[str, _Swap], t: int) -> None:
    for swap in swaps.values():
        active = tuple(i for i, (start, _) in enumerate(swap.factors) if start <= t)
        if active == swap.installed:
            continue
        value = swap.original
        for i in active:
            factor = swap.factors[i][1]
            if isinstance(factor, np.ndarray):
                factor = torch.as_tensor(factor, dtype=value.dtype, device=value.device)
            value = value * factor
        swap.module._parameters[swap.name] = value if active else swap.original
        swap.installed = active


@contextlib.contextmanager
def _swapped(model: nn.Module, swaps: dict[str, _Swap]) -> Iterator[None]:
    timed = any(step > 0 for swap in swaps.values() for step, _ in swap.factors)
    try:
        _install(swaps, 0)
        with watch_steps(model, before=lambda t: _install(swaps, t)) if timed else contextlib.nullcontext():
            yield
    finally:
        for swap in swaps.values():
            swap.module._parameters[swap.name] = swap.original
            swap.installed = ()

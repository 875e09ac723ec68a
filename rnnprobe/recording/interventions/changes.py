"""What an intervention or a lesion changes: :class:`Intervention`, :class:`Lesion` (validated when built)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..._validation import check_int, check_number, check_option, check_seed
from ...errors import ArgumentError, ArgumentTypeError, describe

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
        """Remove the output's projection on the span of ``basis`` (k, flattened units): top PCs, a decoding axis.

        Each row is a direction, whatever its scale; zero rows span nothing.
        """
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
        from ..container import Recording

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

"""Connection-level lesions: parameters swapped for scaled or masked copies at step boundaries.

The originals are put back on exit (the same Parameter objects): the model's weights are never
edited in place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import ArgumentError, ShapeError, UnknownNameError, format_choices
from ...models.base import watch_steps
from .changes import Lesion


@dataclass
class _Swap:
    module: nn.Module
    name: str  # the parameter's name in its module
    original: torch.Tensor
    factors: list[tuple[int, Any]] = field(default_factory=list)  # (from_step, factor)
    installed: tuple[int, ...] = ()


def plan_lesions(model: nn.Module, lesions: list[Lesion]) -> dict[str, _Swap]:
    """The parameters each lesion scales or masks, and from which step, checked before anything changes."""
    swaps: dict[str, _Swap] = {}
    params = dict(model.named_parameters())
    for lesion in lesions:
        for qualified in lesioned_parameters(model, lesion, params):
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


def lesioned_parameters(model: nn.Module, lesion: Lesion, params: dict[str, Any]) -> list[str]:
    """Qualified names of the parameters a lesion changes."""
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
def swapped(model: nn.Module, swaps: dict[str, _Swap]) -> Iterator[None]:
    """Install the lesioned parameters at each step boundary; the originals are back on exit."""
    timed = any(step > 0 for swap in swaps.values() for step, _ in swap.factors)
    try:
        _install(swaps, 0)
        with watch_steps(model, before=lambda t: _install(swaps, t)) if timed else contextlib.nullcontext():
            yield
    finally:
        for swap in swaps.values():
            swap.module._parameters[swap.name] = swap.original
            swap.installed = ()

"""Unit-level interventions: forward hooks that replace a module's output at chosen calls and units."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import ArgumentError, ArgumentTypeError, ShapeError, UnknownNameError, describe, format_choices
from ..tap import Tap
from ..targets import named_modules
from .changes import Intervention


@dataclass
class _Hooked:
    change: Intervention
    module: nn.Module
    generator: torch.Generator | None = None
    cache: dict[str, Any] = field(default_factory=dict)


def plan_units(model: nn.Module, changes: list[Intervention]) -> list[_Hooked]:
    """Resolve each intervention's module (refusing unknown and observe-only ones) before anything is hooked."""
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
def hooked(model: nn.Module, plan: list[_Hooked]) -> Iterator[None]:
    """Hook the planned modules (before any other hook on them), counting calls per forward pass."""
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


def _orthonormal_span(basis: np.ndarray) -> np.ndarray:
    """An orthonormal basis (units, k') of the span of the rows of ``basis``, whatever their scales: each row is a
    direction (zero rows span nothing); a row within 1e-10 radians of the span of the rows before it adds none.
    """
    peaks = np.abs(basis).max(axis=1, initial=0.0)
    rows = basis[peaks > 0] / peaks[peaks > 0, None]  # no square overflows or underflows
    q, r = np.linalg.qr((rows / np.linalg.norm(rows, axis=1, keepdims=True)).T)
    return q[:, np.abs(np.diag(r)) > 1e-10]


def _basis(item: _Hooked, n: int) -> torch.Tensor:
    if "basis" not in item.cache:
        basis = item.change.value
        if basis.shape[1] != n:
            raise ShapeError(
                f"basis: got shape {basis.shape} for {item.change.layer!r}, which has {n} (flattened) units. "
                f"Pass a (k, {n}) array."
            )
        item.cache["basis"] = torch.from_numpy(_orthonormal_span(basis))
    return item.cache["basis"]

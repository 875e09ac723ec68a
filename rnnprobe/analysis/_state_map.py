"""A recurrent model (or a plain callable) as a map F(x, u) on packed float64 state vectors.

Fixed-point analysis works on one vector per candidate state: a model's structured state (LSTM
``(h, c)``, fast weights ``(h, A)``, BLT per-layer maps) is packed with the model's own
:meth:`~rnnprobe.models.base.RecurrentModel.pack_state`, so one code path serves every model.
The model is copied to float64 (the caller's model is left as it is). Candidates are
independent rows, so Jacobians of all candidates come from batched reverse-mode passes over the
output directions (``torch.func``).
"""

from __future__ import annotations

import copy
import threading
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._validation import check_int, check_numeric
from ..errors import ArgumentError, ArgumentTypeError, ShapeError, describe

WORK = 2**20  # elements of a Jacobian work array (the cotangents of a block of rows and of directions)


class StateMap:
    """F(x, u): packed states x (N, d) and inputs u (N, m) to the next packed states, composed
    ``period`` times; ``output(x, u)`` is the model's readout at x (None for a callable).
    """

    def __init__(self, model: Any, *, period: int = 1, device: Any = None) -> None:
        self.period = check_int("period", period, minimum=1)
        self.device = torch.device("cpu" if device is None else device)
        if isinstance(model, nn.RNNBase):
            from ..models import from_module

            model = from_module(model)
        if hasattr(model, "step") and hasattr(model, "init_state") and hasattr(model, "pack_state"):
            self.model = copy.deepcopy(model).to(device=self.device, dtype=torch.float64).eval().requires_grad_(False)
            if getattr(self.model, "sigma_rec", 0):  # the noise-free dynamics (CTRNN's private noise off)
                self.model.sigma_rec = 0.0
            self._copies = {torch.float64: self.model}  # the model in each dtype the map is evaluated in
            self._lock = threading.Lock()
            self.template = self.model.init_state(1)
            self.state_size = int(self.model.pack_state(self.template).shape[1])
            self.input_size = int(self.model.input_size)
            self.input_shape = tuple(getattr(self.model, "input_shape", (self.input_size,)))  # BLT: images
            self.continuous_time = bool(getattr(self.model, "continuous_time", False))
            self.dt = float(getattr(self.model, "dt", 1.0))
            self._step = self._model_step
        elif callable(model) and not isinstance(model, nn.Module | type):
            self.model, self.template = model, None
            self.state_size = self.input_size = None  # learnt from the first states and inputs
            self.input_shape = None
            self.continuous_time, self.dt = False, 1.0
            self._step = self._callable_step
        else:
            raise ArgumentTypeError(
                f"model: got {describe(model)}. Pass a model with the step protocol (init_state, step, pack_state; "
                f"every rnnprobe model), an nn.RNN/GRU/LSTM, or a callable F(state, input) -> state on (N, d) tensors."
            )

    # --- the map ---------------------------------------------------------------------------

    def _model_step(self, x: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        model = self._copies[x.dtype]
        state = model.unpack_state(x, _batched(self.template, x.shape[0]))
        out, new = model.step(u.reshape(len(u), *self.input_shape), state)
        return out, model.pack_state(new)

    def _callable_step(self, x: Tensor, u: Tensor) -> tuple[None, Tensor]:
        new = self.model(x, u)
        if not isinstance(new, Tensor) or new.shape != x.shape:
            raise ShapeError(
                f"model: the callable returned {describe(new)} for states of shape {tuple(x.shape)}; F(state, input) "
                f"must return the next state with the same shape."
            )
        return None, new

    def __call__(self, x: Tensor, u: Tensor) -> Tensor:
        for _ in range(self.period):
            x = self._step(x, u)[1]
        return x

    def output(self, x: Tensor, u: Tensor) -> Tensor | None:
        return self._step(x, u)[0]

    def residual(self, x: Tensor, u: Tensor) -> Tensor:
        return self(x, u) - x

    # --- derivatives -----------------------------------------------------------------------

    def jacobians(self, x: Tensor, u: Tensor, *, inputs: bool = False, dtype: torch.dtype | None = None) -> Any:
        """dF/dx (N, d, d), and with ``inputs`` also dF/du (N, d, m), returned in x's dtype.
        ``dtype=torch.float32`` evaluates them with a float32 copy of a model (callables always run in
        x's dtype).

        Reverse mode: one forward pass per block of rows (the candidates stay the model's own batch),
        then ``vmap`` of its pullback over the output directions e_i, a few at a time: work arrays of
        about ``WORK`` elements. 1.4-4x faster than ``vmap(jacfwd)`` over the candidates, and safe
        to run on several threads at once (forward mode's dual levels are global to the process).
        """
        low = dtype is not None and dtype != x.dtype and self.template is not None
        xs, us = (x.to(dtype), u.to(dtype)) if low else (x, u)
        if low:
            with self._lock:  # a float32 copy for the Jacobians far from any root, made once
                if dtype not in self._copies:
                    self._copies[dtype] = copy.deepcopy(self.model).to(dtype=dtype)
        rows = max(1, WORK // x.shape[1])
        parts = [self._jacobian_rows(xs[s : s + rows], us[s : s + rows], inputs) for s in range(0, len(x), rows)]
        d = x.shape[1]
        if not parts:
            empty = x.new_zeros(0, d, d)
            return (empty, x.new_zeros(0, d, u.shape[1])) if inputs else empty
        if inputs:
            return tuple(torch.cat(p).to(x.dtype) for p in zip(*parts, strict=True))
        return torch.cat(parts).to(x.dtype)

    def _jacobian_rows(self, x: Tensor, u: Tensor, inputs: bool) -> Any:
        """dF/dx (N, d, d), or (dF/dx, dF/du), of a block of rows."""
        from torch.func import vjp, vmap

        n, d = x.shape
        with torch.enable_grad():
            _, pullback = vjp(self, x, u) if inputs else vjp(lambda z: self(z, u), x)
        basis = torch.eye(d, dtype=x.dtype, device=x.device)[:, None, :].expand(d, n, d)
        rows = vmap(pullback, chunk_size=min(d, max(1, WORK // (n * d))))(basis)  # row i of J: J' e_i
        rows = tuple(r.detach().transpose(0, 1) for r in rows)
        return rows if inputs else rows[0]

    def jvp(self, x: Tensor, u: Tensor, v: Tensor) -> Tensor:
        """dF/dx v for every row at once (forward mode)."""
        from torch.func import jvp

        return jvp(lambda z: self(z, u), (x,), (v,))[1]

    def vjp(self, x: Tensor, u: Tensor) -> Any:
        """W -> (dF/dx)^T w for every row at once (reverse mode; the forward pass is kept)."""
        from torch.func import vjp

        _, pullback = vjp(lambda z: self(z, u), x)
        return lambda w: pullback(w)[0]

    def bytes_per_state(self, x: Tensor, u: Tensor) -> int:
        """Bytes the reverse-mode graph keeps per state (two rows minus one: weights not counted)."""

        def saved(n: int) -> int:
            total = 0

            def pack(t: Tensor) -> Tensor:
                nonlocal total
                total += t.numel() * t.element_size()
                return t

            xn = x[:1].expand(n, -1).clone().requires_grad_(True)
            with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                self(xn, u[:1].expand(n, -1))
            return total

        return max(saved(2) - saved(1), 8 * x.shape[1])


def _batched(template: Any, batch: int) -> Any:
    """The structure of a one-element state template, for ``batch`` elements (shapes only)."""
    if isinstance(template, Tensor):
        return template.expand(batch, *template.shape[1:])
    if isinstance(template, tuple | list):
        return type(template)(_batched(t, batch) for t in template)
    return {k: _batched(v, batch) for k, v in template.items()}


def as_states(states: Any, state_map: StateMap, name: str = "initial_states") -> Tensor:
    """Packed float64 states (N, d) from an array/tensor (N, d), or a model state structure."""
    if state_map.template is not None and not isinstance(states, np.ndarray | Tensor):
        try:
            states = state_map.model.pack_state(states)
        except Exception:  # reported with the expected form
            raise ArgumentTypeError(
                f"{name}: got {describe(states)}. Pass packed states (N, {state_map.state_size}) or a state of "
                f"the model."
            ) from None
    x = _rows(states, state_map.device)
    size = state_map.state_size
    if x.dim() != 2 or (size is not None and x.shape[1] != size):
        raise ShapeError(
            f"{name}: got {describe(x)}, but the model's state packs into {size} numbers per state. Pass "
            f"(n_states, {size}) packed states (model.pack_state(state)) or a state of the model."
        )
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).any(dim=1).sum())
        raise ArgumentError(f"{name}: {bad} state(s) contain NaN or infinite values. Drop them first.")
    return x


def as_inputs(inputs: Any, state_map: StateMap) -> Tensor:
    """Constant inputs (n_inputs, m) as float64; one input (m,) becomes one row."""
    if inputs is None:
        if state_map.input_size is None:
            raise ArgumentError("inputs: pass the constant input(s) of the search, (m,) or (n_inputs, m).")
        inputs = np.zeros(state_map.input_size)
    u = _rows(inputs, state_map.device)
    shape = state_map.input_shape
    if shape is not None and len(shape) > 1 and tuple(u.shape[-len(shape) :]) == shape:
        u = u.reshape(-1, state_map.input_size)  # images (C, H, W) or (n, C, H, W) as rows
    size = state_map.input_size
    if u.dim() != 2 or (size is not None and u.shape[1] != size):
        raise ShapeError(
            f"inputs: got {describe(u)}, but the model takes {size} input features. Pass one constant input "
            f"({size},) or several as rows (n_inputs, {size})."
        )
    if not torch.isfinite(u).all():
        raise ArgumentError("inputs: contain NaN or infinite values.")
    return u


def _rows(values: Any, device: torch.device) -> Tensor:
    """An array, tensor or nested list as a float64 tensor on ``device``; a vector becomes one row."""
    if isinstance(values, Tensor):
        out = values.detach()
    else:
        out = torch.as_tensor(check_numeric(values, name="states").astype(np.float64))
    out = out.to(device=device, dtype=torch.float64)
    return out[None] if out.dim() == 1 else out

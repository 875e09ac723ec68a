"""A recurrent model (or a plain callable) as a map F(x, u) on packed float64 state vectors.

Fixed-point analysis works on one vector per candidate state: a model's structured state (LSTM
``(h, c)``, fast weights ``(h, A)``, BLT per-layer maps) is packed with the model's own
:meth:`~rnnprobe.models.base.RecurrentModel.pack_state`, so one code path serves every model.
The model is copied to float64 (the caller's model is left as it is). Candidates are
independent rows, so Jacobians of all candidates come from one batched forward-mode pass per
chunk (``torch.func``).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ArgumentError, ArgumentTypeError, ShapeError, check_int, describe


class StateMap:
    """F(x, u): packed states x (N, d) and inputs u (N, m) to the next packed states, composed
    ``period`` times; ``output(x, u)`` is the model's readout at x (None for a callable)."""

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
            self.template = self.model.init_state(1)
            self.state_size = int(self.model.pack_state(self.template).shape[1])
            self.input_size = int(self.model.input_size)
            self.continuous_time = bool(getattr(self.model, "continuous_time", False))
            self.dt = float(getattr(self.model, "dt", 1.0))
            self._step = self._model_step
        elif callable(model) and not isinstance(model, nn.Module | type):
            self.model, self.template = model, None
            self.state_size = self.input_size = None  # learnt from the first states and inputs
            self.continuous_time, self.dt = False, 1.0
            self._step = self._callable_step
        else:
            raise ArgumentTypeError(
                f"model: got {describe(model)}. Pass a model with the step protocol (init_state, step, pack_state; "
                f"every rnnprobe model), an nn.RNN/GRU/LSTM, or a callable F(state, input) -> state on (N, d) tensors."
            )

    # --- the map ---------------------------------------------------------------------------

    def _model_step(self, x: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        state = self.model.unpack_state(x, _batched(self.template, x.shape[0]))
        out, new = self.model.step(u, state)
        return out, self.model.pack_state(new)

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

    def jacobians(self, x: Tensor, u: Tensor, *, inputs: bool = False, chunk: int | None = None) -> Any:
        """dF/dx (N, d, d), and with ``inputs`` also dF/du (N, d, m), by forward mode."""
        from torch.func import jacfwd, vmap

        def single(xi: Tensor, ui: Tensor) -> Tensor:
            return self(xi[None], ui[None])[0]

        argnums = (0, 1) if inputs else 0
        if chunk is None:  # about 6 MB of work arrays per chunk: cache-sized (measured fastest)
            chunk = max(1, 2**18 // (x.shape[1] ** 2))
        jac = vmap(jacfwd(single, argnums=argnums), chunk_size=chunk)
        with torch.no_grad():
            return jac(x, u)


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
    out = values.detach() if isinstance(values, Tensor) else torch.as_tensor(np.asarray(values, dtype=np.float64))
    out = out.to(device=device, dtype=torch.float64)
    return out[None] if out.dim() == 1 else out

"""Continuous-time RNN, integrated with Euler steps of size dt.

Rate model (Song, Yang & Wang 2016, PLoS Comput Biol 12:e1004792; Yang et al. 2019)::

    tau dx/dt = -x + W_rec r + W_in u + b,      r = f(x)
    y = W_out r

Euler step with alpha = dt / tau (and optional private noise, Song et al. 2016)::

    x_{t+1} = x_t + alpha (-x_t + W_rec f(x_t) + W_in u_t + b) + sqrt(2 alpha) sigma_rec xi_t

``with_dt(dt)`` gives the same network (same weights) integrated with another step
size, so users can study how the time step changes the dynamics. The model is
continuous-time: its fixed points are zeros of :meth:`vector_field`, and their
stability follows from the eigenvalues of its Jacobian (Re < 0).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from .._validation import check_int
from ..errors import ArgumentError, describe
from ..recording.tap import Tap
from .base import RecurrentModel


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ArgumentError(f"{name}: got {describe(value)}. Pass a positive number.")
    return float(value)


class CTRNN(RecurrentModel):
    """Continuous-time rate RNN (see the module docstring for the equations).

    Parameters
    ----------
    input_size, hidden_size, output_size : int
    tau : float
        Time constant (same units as ``dt``, e.g. ms).
    dt : float
        Euler step size.
    nonlinearity : {"tanh", "relu", "softplus"}
    sigma_rec : float
        Standard deviation of the recurrent noise (0: deterministic).

    Notes
    -----
    Taps: ``x`` (the state) and ``r`` (the rate f(x)).

    Examples
    --------
    >>> import torch
    >>> model = CTRNN(2, 32, 1, tau=100.0, dt=20.0)
    >>> model(torch.randn(4, 50, 2)).shape
    torch.Size([4, 50, 1])
    >>> finer = model.with_dt(5.0)  # same weights, 4x finer steps
    >>> finer.alpha, model.alpha
    (0.05, 0.2)
    """

    continuous_time = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        tau: float = 100.0,
        dt: float = 20.0,
        nonlinearity: str = "tanh",
        sigma_rec: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("output_size", output_size)):
            check_int(name, value)
        tau, dt = _positive("tau", tau), _positive("dt", dt)
        if dt > tau:
            raise ArgumentError(
                f"dt: got {dt} with tau={tau}; an Euler step longer than the time constant is unstable. "
                f"Pass dt <= tau (dt/tau <= 0.2 is typical)."
            )
        if nonlinearity not in ("tanh", "relu", "softplus"):
            raise ArgumentError(f"nonlinearity: got {describe(nonlinearity)}. Pass 'tanh', 'relu' or 'softplus'.")
        if isinstance(sigma_rec, bool) or not isinstance(sigma_rec, (int, float)) or sigma_rec < 0:
            raise ArgumentError(f"sigma_rec: got {describe(sigma_rec)}. Pass a number >= 0.")
        self.input_size, self.hidden_size, self.output_size = input_size, hidden_size, output_size
        self.tau, self.dt, self.alpha = tau, dt, dt / tau
        self.nonlinearity, self.sigma_rec = nonlinearity, float(sigma_rec)
        self.input = nn.Linear(input_size, hidden_size)
        self.recurrent = nn.Linear(hidden_size, hidden_size, bias=False)
        nn.init.normal_(self.recurrent.weight, std=1.0 / hidden_size**0.5)
        self.readout = nn.Linear(hidden_size, output_size)
        self.tap_x, self.tap_r = Tap("x"), Tap("r")
        self.config = dict(
            input_size=input_size, hidden_size=hidden_size, output_size=output_size, tau=tau, dt=dt,
            nonlinearity=nonlinearity, sigma_rec=self.sigma_rec,
        )  # fmt: skip

    def rate(self, x: Tensor) -> Tensor:
        """R = f(x)."""
        if self.nonlinearity == "tanh":
            return torch.tanh(x)
        if self.nonlinearity == "relu":
            return torch.relu(x)
        return nn.functional.softplus(x)

    def vector_field(self, x: Tensor, u: Tensor) -> Tensor:
        """dx/dt = (-x + W_rec f(x) + W_in u + b) / tau."""
        return (-x + self.recurrent(self.rate(x)) + self.input(u)) / self.tau

    def init_state(self, batch_size: int) -> Tensor:
        """Zero activity, for ``batch_size`` trials."""
        device, dtype = self._like()
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)

    def step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One Euler step of the ODE (with recurrent noise when ``sigma_rec`` > 0)."""
        x = state + self.dt * self.vector_field(state, x_t)
        if self.sigma_rec:  # also when recording: seed it with record(..., seed=...)
            x = x + (2 * self.alpha) ** 0.5 * self.sigma_rec * torch.randn_like(x)
        x = self.tap_x(x)
        r = self.tap_r(self.rate(x))
        return self.readout(r), x

    def connection_parameters(self) -> dict[str, list[list[str]]]:
        """``input`` (W_in, b), ``recurrent`` (W_rec) and ``readout``."""
        return {
            "input": [["input.weight", "input.bias"]],
            "recurrent": [["recurrent.weight"]],
            "readout": [["readout.weight", "readout.bias"]],
        }

    def with_dt(self, dt: float) -> CTRNN:
        """A copy with the same weights, integrated with step size ``dt``."""
        twin = copy.deepcopy(self)
        dt = _positive("dt", dt)
        if dt > self.tau:
            raise ArgumentError(f"dt: got {dt} with tau={self.tau}. Pass dt <= tau.")
        twin.dt, twin.alpha = dt, dt / self.tau
        twin.config = {**self.config, "dt": dt}
        return twin

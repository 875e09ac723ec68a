"""Fixed points, slow points and period-k orbits of recurrent models (Sussillo & Barak 2013).

:func:`find_fixed_points` searches the zeros of r(x) = F(x, u) - x, for the model's step F at
constant inputs u, from many initial states at once, and minimises q(x) = 1/2 ||r(x)||^2:

1. Levenberg-Marquardt on every candidate at once, each with its own damping: a candidate whose
   step fails takes shorter, more gradient-like steps (damping up), one that succeeds takes
   Gauss-Newton steps (damping down). There is no shared learning rate that decays for all
   candidates because some of them stall, the failure mode of Adam on the mean of q.
2. Deflation (Farrell, Birkisson & Funke 2015): one more pass from up to 128 starts per input on the
   residual M(x) r(x), M = prod_i (s^2 / ||x - x_i||^2 + 1) over the points found at the same input.
   Each known point becomes a pole, so searches that would end there go on to roots the first pass
   missed (e.g. saddles between the basins of attraction of q's descent).
3. Newton polish of the candidates that reached a small residual, so that true fixed points end
   at float64 precision (||r|| about 1e-15 for states of order 1).

Only candidates whose residual is below ``tol`` (relative to the state's norm) are fixed points.
Candidates that stop at a local minimum of q (the gradient J'r vanishes while r does not) with q
below ``slow_q`` are *slow points*, kept apart; the rest are dropped and counted. Fixed points
within ``dedup_tol`` (relative to the scale of the initial states) are merged, and points far
from the initial states (``outlier_distance`` times their spread, or a tenth of their norm if that
is larger) are dropped and counted.

At each fixed point: Jacobians dF/dx and dF/du (batched reverse mode, ``torch.func``), their
eigendecomposition, stability (|lambda| < 1 for maps; Re(lambda) < 0 of (J - I) / dt for
continuous-time models such as the zoo's CTRNN), the number of unstable modes and the model's
readout. ``period=k`` searches fixed points of the k-times composed map: period-k orbits.
"""

from __future__ import annotations

import threading
import time as _time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from .._validation import (
    check_device,
    check_finite,
    check_finite_layer,
    check_int,
    check_number,
    check_option,
    check_progress,
    check_seed,
)
from ..errors import ArgumentError, ConvergenceError, NonFiniteError, ShapeError
from ..recording import Recording
from ._fp_search import EXACT, SOLVERS, Deflated, levenberg_marquardt, newton_polish, same_inputs, small
from ._state_map import StateMap, as_inputs, as_states
from .parallel import library_threads, task_pool

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


@dataclass
class SlowPoints:
    """Local minima of q that are not fixed points: states (K, d), inputs (K, m), q (K,)."""

    states: np.ndarray
    inputs: np.ndarray
    q: np.ndarray

    def __len__(self) -> int:
        return len(self.q)


@dataclass
class FixedPointResult:
    """Unique fixed points (or period-k points) with their linearisation.

    Attributes
    ----------
    states : ndarray (K, d)
        Packed states (``model.pack_state`` order; :meth:`state` unpacks one).
    inputs : ndarray (K, m)
        The constant input of each point.
    q : ndarray (K,)
        1/2 ||F(x) - x||^2 at the point.
    iterations : ndarray (K,)
        Levenberg-Marquardt plus Newton iterations of the candidate that found it.
    jacobians : ndarray (K, d, d) or None
        dF/dx (of the k-times composed map for ``period=k``). None for the matrix-free method
        (:meth:`linearize` computes one point's).
    input_jacobians : ndarray (K, d, m) or None
        dF/du.
    eigenvalues : ndarray (K, k) complex
        Of dF/dx (discrete time), or of the continuous-time Jacobian (dF/dx - I) / dt for
        continuous-time models; sorted from the most unstable. All d of them, or the leading
        ``n_eigenvalues``.
    eigenvectors : ndarray (K, d, k) complex
        Column j belongs to eigenvalue j.
    stable : ndarray (K,) bool
        No eigenvalue outside the unit circle (discrete) or in the right half-plane (continuous) by more
        than ``tol`` (``tol / dt`` in real part for continuous time): an eigenvalue within it is marginal, as a
        line attractor's 1, which computes as 1 +- 1e-15 and would otherwise be judged by rounding. With the
        leading eigenvalues only, this is exact: the most unstable ones are among them.
    n_unstable : ndarray (K,) int
        Unstable eigenvalues, by the same margin (among the ones computed: a lower bound when all k are
        unstable).
    outputs : ndarray (K, n_out) or None
        The model's readout at each point (its step's output), e.g. the bits a flip-flop stores.
    minimal_period : ndarray (K,) int
        For ``period=k``: the smallest j dividing k with F^j(x) = x (1 for fixed points of F).
    slow : SlowPoints
    continuous_time : bool
    period : int
    tol : float
    solver : str
        "dense" or "matrix-free" (see :func:`find_fixed_points`).
    n_candidates, n_unconverged, n_outliers, n_duplicates : int
        Searches (initial states x inputs x damping levels) and how they ended. The deflated pass is
        counted by what it found, ``n_deflated`` (its other searches end unconverged wherever every point
        is known): ``len(result) - n_deflated`` = candidates - unconverged - outliers - duplicates.
    seconds : float
        Wall time of the search.
    searched_inputs : ndarray (n_inputs, m)
        The constant inputs searched, in the order given; points (and slow points) are listed by input
        in this order.
    n_deflated : int
        Points found by the deflated pass only (see ``deflation``).
    """

    states: np.ndarray
    inputs: np.ndarray
    q: np.ndarray
    iterations: np.ndarray
    jacobians: np.ndarray | None
    input_jacobians: np.ndarray | None
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    stable: np.ndarray
    n_unstable: np.ndarray
    outputs: np.ndarray | None
    minimal_period: np.ndarray
    slow: SlowPoints
    continuous_time: bool
    period: int
    tol: float
    solver: str
    n_candidates: int
    n_unconverged: int
    n_outliers: int
    n_duplicates: int
    seconds: float
    searched_inputs: np.ndarray | None = None
    n_deflated: int = 0
    _state_map: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.q)

    def __repr__(self) -> str:
        n_stable = int(self.stable.sum())
        kind = "fixed points" if self.period == 1 else f"period-{self.period} points"
        return (
            f"<FixedPointResult: {len(self)} {kind} ({n_stable} stable, {len(self) - n_stable} unstable), "
            f"{len(self.slow)} slow point(s), from {self.n_candidates} candidates ({self.n_unconverged} "
            f"unconverged, {self.n_duplicates} duplicates, {self.n_outliers} outliers)>"
        )

    def summary(self) -> dict[str, Any]:
        """Key numbers: points found (stable, unstable), slow points, candidates, largest q, time."""
        return {
            "solver": self.solver,
            "period": self.period,
            "fixed points": len(self),
            "stable": int(self.stable.sum()),
            "unstable": int((~self.stable).sum()),
            "slow points": len(self.slow),
            "candidates": self.n_candidates,
            "unconverged": self.n_unconverged,
            "outliers": self.n_outliers,
            "found by deflation": self.n_deflated,
            "largest q": float(self.q.max()) if len(self) else None,
        }

    def state(self, i: int) -> Any:
        """Point ``i`` as a state of the model (tuples/dicts unpacked), batch of one, float64."""
        sm = self._state_map
        x = torch.as_tensor(self.states[i : i + 1])
        return x if sm is None or sm.template is None else sm.model.unpack_state(x)

    def linearize(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(A, B) of the linearised dynamics around point ``i``: for discrete time
        dx_{t+1} = A dx_t + B du_t; for continuous time d(dx)/dt = A dx + B du.
        """
        if self.jacobians is None:  # matrix-free search: this point's dense Jacobians, on demand
            sm = self._state_map
            x, u = (torch.as_tensor(v[i : i + 1], device=sm.device) for v in (self.states, self.inputs))
            a, b = (j[0].cpu().numpy() for j in sm.jacobians(x, u, inputs=True))
        else:
            a, b = self.jacobians[i], self.input_jacobians[i]
        if self.continuous_time:
            dt = self._state_map.dt
            return (a - np.eye(len(a))) / dt, b / dt
        return a, b

    def plot(
        self,
        trajectories: Any = None,
        *,
        layer: str | None = None,
        n_eigenvectors: int = 1,
        scale: float = 0.3,
    ) -> Figure:
        """The points in the plane of the first two principal components of ``trajectories``
        (a Recording whose ``layer`` has the packed state's size, or an array (..., d)), stable
        ones filled and unstable ones open, with their unstable eigenvectors as lines; and the
        eigenvalue spectra with the unit circle (or the imaginary axis in continuous time).
        """
        from .plotting import pyplot

        fig, (ax, ax_eig) = pyplot().subplots(1, 2, figsize=(9, 4), layout="constrained")
        self.draw_points(ax, trajectories, layer=layer, n_eigenvectors=n_eigenvectors, scale=scale)
        self.draw_spectrum(ax_eig)
        return fig

    def draw_points(
        self, ax: Any, trajectories: Any = None, *, layer: str | None = None, n_eigenvectors: int = 1,
        scale: float = 0.3,
    ) -> None:  # fmt: skip
        """Draw the points in the trajectories' PC1-PC2 plane into a matplotlib Axes (see :meth:`plot`)."""
        d = self.states.shape[1]
        if trajectories is not None:
            if isinstance(trajectories, Recording):
                traj = np.asarray(trajectories.get(trajectories.resolve_layer(layer), flatten=True), dtype=float)
            else:
                traj = np.asarray(trajectories, dtype=float)
            if traj.shape[-1] != d:
                raise ShapeError(
                    f"trajectories: states have {traj.shape[-1]} units, the fixed points {d}; pass the trajectories "
                    f"of the packed state (all of the model's state)."
                )
            flat = traj.reshape(-1, d)
        else:
            flat = self.states
        from .pca import principal_axes

        centre = flat.mean(axis=0)
        axes = principal_axes(flat, 2).T if min(flat.shape) >= 2 else np.eye(d)[:, :2]
        if trajectories is not None:
            for path in (traj.reshape(-1, traj.shape[-2], d) if traj.ndim >= 3 else traj[None])[:50]:
                pc = (path - centre) @ axes
                ax.plot(pc[:, 0], pc[:, 1], color="0.75", lw=0.6, zorder=1)
        points = (self.states - centre) @ axes
        span = np.ptp(points, axis=0).max() if len(points) > 1 else 1.0
        for i, (x, y) in enumerate(points):
            unstable = self._unstable_directions(i)[:n_eigenvectors]
            for v in unstable:
                seg = np.real(v) @ axes
                seg = seg / (np.linalg.norm(seg) + 1e-300) * scale * span
                ax.plot([x - seg[0], x + seg[0]], [y - seg[1], y + seg[1]], color="#D55E00", lw=1, zorder=2)
        stable = self.stable
        ax.scatter(*points[stable].T, s=40, color="black", zorder=3, label="stable")
        ax.scatter(*points[~stable].T, s=40, facecolor="white", edgecolor="black", zorder=3, label="unstable")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.set_title(f"{len(self)} fixed points" if self.period == 1 else f"{len(self)} period-{self.period} points")
        ax.legend(frameon=False, fontsize=8)

    def draw_spectrum(self, ax: Any) -> None:
        """Draw the eigenvalues with the unit circle (or the imaginary axis in continuous time) into
        a matplotlib Axes; stable points' in black, unstable points' in vermillion.
        """
        if self.continuous_time:
            ax.axvline(0, color="black", lw=0.8)
            ax.set_xlabel("Re(lambda) (per unit time)")
        else:
            angle = np.linspace(0, 2 * np.pi, 200)
            ax.plot(np.cos(angle), np.sin(angle), color="black", lw=0.8)
            ax.set_aspect("equal")
            ax.set_xlabel("Re(lambda)")
        for i in range(len(self)):
            ev = self.eigenvalues[i]
            ax.scatter(ev.real, ev.imag, s=8, alpha=0.6, color="black" if self.stable[i] else "#D55E00")
        ax.set_ylabel("Im(lambda)")
        ax.set_title("Jacobian eigenvalues")

    def _unstable_directions(self, i: int) -> np.ndarray:
        dt = 1.0 if self._state_map is None else self._state_map.dt
        unstable = unstable_modes(self.eigenvalues[i], self.continuous_time, dt, self.tol)
        return self.eigenvectors[i][:, unstable].T


def find_fixed_points(
    model: Any,
    *,
    inputs: Any = None,
    initial_states: Any = None,
    layer: str | list[str] | None = None,
    n_initial: int = 1024,
    noise: float = 0.0,
    period: int = 1,
    tol: float = 1e-10,
    slow_q: float = 1e-4,
    dedup_tol: float = 1e-6,
    outlier_distance: float = 10.0,
    max_iter: int = 200,
    initial_damping: Any = "auto",
    stop_q: float | None = None,
    deflation: int = 128,
    solver: str = "auto",
    krylov_dim: int = 50,
    n_eigenvalues: int | None = None,
    memory: float = 2**28,
    seed: int | None = 0,
    device: Any = None,
    progress: bool | None = None,
) -> FixedPointResult:
    """Fixed points (and slow points, period-k orbits) of a recurrent model at constant inputs.

    Parameters
    ----------
    model : model with the step protocol, nn.RNN/GRU/LSTM, or callable
        Every rnnprobe model; a torch RNN module (wrapped by ``rnnprobe.models.from_module``);
        or ``F(state, input) -> state`` on (N, d) and (N, m) tensors. The model is copied in
        float64; the original is untouched.
    inputs : array-like (m,) or (n_inputs, m)
        The constant input(s); default zeros. With several inputs (e.g. a sweep of a context
        input) every initial state is searched at every input, and each point keeps its input:
        fixed-point manifolds over the input.
    initial_states : Recording, array (N, d), or a model state
        Where the search starts. A Recording: ``n_initial`` states sampled from the trajectories
        of ``layer`` (a name or a list of names whose units together make the packed state, e.g.
        ``["l0.h", "l0.c"]`` for an LSTM). An array: packed states (``model.pack_state``), all
        used.
    n_initial : int
        States sampled from a Recording.
    noise : float
        Standard deviation of Gaussian noise added to the initial states.
    period : int
        Search fixed points of the ``period``-times composed map (period-k orbits).
    tol : float
        A candidate is a fixed point when ||F(x) - x|| <= tol * max(1, ||x||).
    slow_q : float
        Candidates that stop at a local minimum of q with q <= slow_q are slow points.
    dedup_tol : float
        Fixed points closer than dedup_tol times the scale of the initial states (their RMS
        norm) are one point (the one with the smaller q is kept).
    outlier_distance : float
        Points farther from the initial states' centre than this many times the initial
        states' RMS distance from it (at least a tenth of their RMS norm) are dropped
        (diverged candidates).
    max_iter : int
        Levenberg-Marquardt iterations per candidate.
    initial_damping : float, sequence of float or "auto"
        The first step's damping as a multiple of the largest curvature of J'J; with several values,
        every start is searched once per value and the end points are pooled. Heavy damping follows the
        gradient of q into the nearest basin; light damping takes Gauss-Newton jumps (as MINPACK's hybr)
        that reach other roots, so the ladder finds more distinct points than either. "auto": (1, 1e-3)
        with the dense solver, 1 with the matrix-free one (large states).
    stop_q : float, optional
        Stop a candidate as soon as q <= stop_q, as a slow point unless it is a root (FixedPointFinder's
        q tolerance): on an approximate line attractor, candidates then stay near where they started
        instead of drifting along the line towards saturation. Must not exceed ``slow_q``.
    deflation : int
        After the damping levels, search once more from this many starts per input (evenly spaced among
        them; 0: no deflation), at the first level's damping, on the deflated residual M(x) (F(x) - x),
        M(x) = prod_i (s^2 / ||x - x_i||^2 + 1) over the points found so far at the same input, s half
        the median distance between neighbouring points (Farrell, Birkisson & Funke 2015). Known points
        repel the search, which then converges to points the damping levels missed (saddles between
        the basins of q's descent). M >= 1, so every point it finds is a root of F itself; it is
        polished on F like the rest. ``n_deflated`` counts the points only it found.
    solver : {"auto", "dense", "matrix-free"}
        How the Gauss-Newton systems are solved. "dense": full Jacobians of every candidate
        (batched reverse mode; float32 far from a root, float64 near it) and batched solves, and
        the full eigendecomposition at each point; with more than one library thread
        (``torch.set_num_threads``), a search big enough is split across them. "matrix-free":
        Jacobian-vector products only: the Newton step by batched GMRES (forward mode; an inexact
        Newton method whose accuracy tightens as r shrinks), the damped step in the plane of the
        Newton step and the gradient J'r (reverse mode); memory O(krylov_dim * d) per candidate; the
        ``n_eigenvalues`` leading eigenvalues at each point by Arnoldi iteration (ARPACK). For
        states of thousands of units. "auto": dense up to 128 state units.
    krylov_dim : int
        GMRES iterations per step at most ("matrix-free").
    n_eigenvalues : int, optional
        Keep the leading eigenvalues (most unstable first) and their eigenvectors only. Default:
        all (dense), 10 (matrix-free). ``n_unstable`` then counts unstable modes among them.
    memory : float
        Bytes of work arrays held at once (Jacobians, or the reverse-mode graph of the
        matrix-free products, measured on the model); candidates are processed in chunks that fit.
    seed : int, optional
        Seeds the sampling of initial states and their noise.
    device : optional
        Torch device of the search.
    progress : bool or None
        Show a progress bar of the candidates that have settled (on stderr).
        None (default): a bar only when stderr is a terminal.

    Returns
    -------
    FixedPointResult

    Examples
    --------
    A linear map x -> A x + u with A = 0.5 I has the single fixed point 2 u, stable, with
    eigenvalues 0.5:

    >>> import numpy as np, torch
    >>> def linear(x, u):
    ...     return 0.5 * x + u
    >>> starts = np.random.default_rng(0).normal(size=(20, 2))
    >>> fp = find_fixed_points(linear, inputs=[1.0, -1.0], initial_states=starts)
    >>> fp.states.round(6), fp.eigenvalues.real, fp.stable
    (array([[ 2., -2.]]), array([[0.5, 0.5]]), array([ True]))
    >>> fp.n_candidates, fp.n_duplicates, len(fp.slow)  # 20 starts x 2 damping levels
    (40, 39, 0)
    """
    started = _time.perf_counter()
    state_map = StateMap(model, period=period, device=check_device(device))
    _check_settings(state_map, period, tol=tol, slow_q=slow_q, dedup_tol=dedup_tol, noise=noise, memory=memory,
                    outlier_distance=outlier_distance, solver=solver)  # fmt: skip
    max_iter, krylov_dim, deflation = (check_int(name, value, minimum=low) for name, value, low in
                                       (("max_iter", max_iter, 1), ("krylov_dim", krylov_dim, 1),
                                        ("deflation", deflation, 0)))  # fmt: skip
    if n_eigenvalues is not None:
        n_eigenvalues = check_int("n_eigenvalues", n_eigenvalues, minimum=1)
    rng = np.random.default_rng(check_seed(seed))
    x0, x, u = _candidates(state_map, initial_states, inputs, layer, check_int("n_initial", n_initial), noise, rng)
    if stop_q is not None:
        stop_q = check_number("stop_q", stop_q, minimum=0, maximum=slow_q)
    plan = _plan(state_map, x0, x, u, tol=tol, max_iter=max_iter, solver=solver, krylov_dim=krylov_dim,
                 memory=memory, outlier_distance=outlier_distance, initial_damping=initial_damping,
                 stop_q=stop_q)  # fmt: skip
    _check_finite_map(state_map, x, u, plan.chunk)
    searched_inputs, n_candidates = u[:: max(1, len(x0))].cpu().numpy(), len(x) * len(plan.levels)
    x, u, r, stalled, iterations, origin = _search_all(state_map, x, u, plan, progress, deflation=deflation,
                                                       dedup_tol=dedup_tol)  # fmt: skip
    found = _select(state_map, x, u, r, stalled, iterations, origin, plan, slow_q=slow_q, dedup_tol=dedup_tol)
    xs, us = x[found.points], u[found.points]
    jac, jac_u, (eigenvalues, eigenvectors, stable, n_unstable) = _linearise(state_map, xs, us, plan, n_eigenvalues)
    with torch.no_grad():
        out = state_map.output(xs, us) if len(xs) else None
    slow = found.slow
    return FixedPointResult(
        states=xs.cpu().numpy(),
        inputs=us.cpu().numpy(),
        q=found.q[found.points].cpu().numpy(),
        iterations=iterations[found.points].cpu().numpy(),
        jacobians=jac,
        input_jacobians=jac_u,
        eigenvalues=eigenvalues,
        eigenvectors=eigenvectors,
        stable=stable,
        n_unstable=n_unstable,
        outputs=None if out is None else out.detach().cpu().numpy(),
        minimal_period=_minimal_period(state_map, xs, us, tol),
        slow=SlowPoints(x[slow].cpu().numpy(), u[slow].cpu().numpy(), found.q[slow].cpu().numpy()),
        continuous_time=state_map.continuous_time,
        period=state_map.period,
        tol=tol,
        solver=plan.solver,
        n_candidates=n_candidates,
        n_unconverged=found.n_unconverged,
        n_outliers=found.n_outliers,
        n_duplicates=found.n_duplicates,
        seconds=_time.perf_counter() - started,
        searched_inputs=searched_inputs,
        n_deflated=found.n_deflated,
        _state_map=state_map,
    )


# --- before the search: settings, candidates, plan ------------------------------------------


def _check_settings(
    state_map: StateMap, period: int, *, solver: str, memory: Any, outlier_distance: Any, **numbers: Any
) -> None:
    if state_map.continuous_time and state_map.period > 1:
        raise ArgumentError(
            f"period: got {period} for a continuous-time model; its flow has no period-k points of the Euler map to "
            f"speak of. Search period=1 (fixed points of the ODE)."
        )
    for name, value in numbers.items():
        check_number(name, value, minimum=0)
    if not (isinstance(outlier_distance, float) and outlier_distance == np.inf):  # inf: keep points however far
        check_number("outlier_distance", outlier_distance, minimum=0, inclusive=False)
    check_option("solver", solver, SOLVERS)
    check_number("memory", memory, minimum=0, inclusive=False)


def _candidates(
    state_map: StateMap, initial_states: Any, inputs: Any, layer: Any, n_initial: int, noise: float, rng: Any
) -> tuple[Tensor, Tensor, Tensor]:
    """(the initial states, every initial state at every input, the matching inputs)."""
    x0 = _initial_states(initial_states, state_map, layer, n_initial, rng)
    if state_map.state_size is None:
        state_map.state_size = x0.shape[1]
    if noise:
        x0 = x0 + torch.as_tensor(rng.normal(scale=noise, size=tuple(x0.shape)), device=x0.device)
    u_all = as_inputs(inputs, state_map)
    if state_map.input_size is None:
        state_map.input_size = u_all.shape[1]
    x = x0.repeat(len(u_all), 1)  # every initial state at every input
    u = u_all.repeat_interleave(len(x0), dim=0)
    _check_callable(state_map, x[:1], u[:1])
    return x0, x, u


@dataclass
class _Plan:
    """How the search runs: solver, tolerances, chunk size (memory), and the outlier region."""

    solver: str
    tol: float
    max_iter: int
    krylov_dim: int
    chunk: int
    centre: Tensor
    radius: float
    scale: float
    stop_q: float | None = None
    levels: tuple[float, ...] = (1.0,)  # initial dampings: every start is searched once per level


def _plan(state_map: StateMap, x0: Tensor, x: Tensor, u: Tensor, *, solver: str, krylov_dim: int, memory: Any,
          outlier_distance: float, initial_damping: Any, **rest: Any) -> _Plan:  # fmt: skip
    d = x0.shape[1]
    centre = x0.mean(dim=0)
    spread = torch.sqrt(((x0 - centre) ** 2).sum(dim=1).mean()).clamp(min=1e-12)
    scale = torch.sqrt((x0**2).sum(dim=1).mean()).clamp(min=1e-12)
    radius = outlier_distance * max(float(spread), 0.1 * float(scale))  # a floor for clustered starts
    if solver == "auto":  # full Jacobians while they and their eigendecompositions are cheap
        solver = "dense" if d <= 128 else "matrix-free"
    per_state = 4 * 8 * d * d if solver == "dense" else 2 * state_map.bytes_per_state(x, u) + (krylov_dim + 16) * 8 * d
    return _Plan(solver, krylov_dim=krylov_dim, chunk=max(1, int(memory // per_state)), centre=centre, radius=radius,
                 scale=float(scale), levels=_damping_levels(initial_damping, solver), **rest)  # fmt: skip


# --- the search and the selection of its end points ------------------------------------------


DAMPING_LADDER = (1.0, 1e-3)


def _damping_levels(initial_damping: Any, solver: str) -> tuple[float, ...]:
    if isinstance(initial_damping, str):
        check_option("initial_damping", initial_damping, ["auto"])
        return DAMPING_LADDER if solver == "dense" else (1.0,)
    values = [initial_damping] if np.ndim(initial_damping) == 0 else list(np.ravel(initial_damping))
    if not values or len(values) > 100:
        raise ArgumentError(f"initial_damping: got {len(values)} values. Pass 1 to 100 positive numbers, or 'auto'.")
    return tuple(check_number("initial_damping", v, minimum=0, inclusive=False) for v in values)


def _search_all(state_map: StateMap, x: Tensor, u: Tensor, plan: _Plan, progress: Any, *, deflation: int,
                dedup_tol: float) -> tuple[Tensor, ...]:  # fmt: skip
    """Every start once per damping level, then once on the deflated map: (end points, inputs, residuals,
    stalled, iterations, origin), origin (N, 2) holding each candidate's level (len(levels) for the deflated
    pass) and start (its row in the input-major grid of starts).
    """
    n, levels = len(x), plan.levels
    damping = torch.as_tensor(levels, dtype=x.dtype, device=x.device).repeat_interleave(n)
    grid = torch.arange(n, device=x.device)
    origin = torch.stack([torch.arange(len(levels), device=x.device).repeat_interleave(n), grid.repeat(len(levels))], 1)
    ends, r, stalled, iterations = _search(state_map, x.repeat(len(levels), 1), u.repeat(len(levels), 1), damping,
                                           plan, progress)  # fmt: skip
    u_ends = u.repeat(len(levels), 1)
    if not deflation:
        return ends, u_ends, r, stalled, iterations, origin
    known = _in_range(ends, plan) & small(r, ends, plan.tol)
    known = torch.nonzero(known).flatten()
    known = known[_deduplicate(ends[known], u_ends[known], 0.5 * (r[known] ** 2).sum(dim=1), dedup_tol * plan.scale)]
    if not len(known):  # nothing to deflate: the same search again
        return ends, u_ends, r, stalled, iterations, origin
    starts = _spread(grid[same_inputs(u, u_ends[known]).any(dim=1)], u, deflation)  # inputs with a known point
    deflated = Deflated(state_map, ends[known], u_ends[known], _pole_radius(ends[known], u_ends[known], plan.scale))
    damping = torch.full((len(starts),), levels[0], dtype=x.dtype, device=x.device)
    more, _, _, more_iterations = _search(deflated, x[starts], u[starts], damping, plan, progress)
    with torch.no_grad():  # judged on F itself from here on (M >= 1: a deflated root is a root of F)
        more_r = state_map.residual(more, u[starts])
    level = torch.full_like(starts, len(levels))
    return (torch.cat([ends, more]), torch.cat([u_ends, u[starts]]), torch.cat([r, more_r]),
            torch.cat([stalled, torch.zeros_like(starts, dtype=torch.bool)]),  # never slow points: q was deflated
            torch.cat([iterations, more_iterations]), torch.cat([origin, torch.stack([level, starts], 1)]))  # fmt: skip


def _check_finite_map(state_map: StateMap, x: Tensor, u: Tensor, chunk: int) -> None:
    """Refuse a map that is not finite at the starts (``chunk`` at a time): a model with NaN or inf among its
    parameters, or starts where it overflows. Its search ended with no point and every candidate unconverged, as if
    the map had no fixed point.
    """
    bad = []
    with torch.no_grad():
        for start in range(0, len(x), chunk):
            part = slice(start, start + chunk)
            bad.append(~torch.isfinite(state_map(x[part], u[part])).all(dim=1))
    bad = torch.cat(bad)
    if bad.any():
        first = int(torch.nonzero(bad)[0])
        raise NonFiniteError(
            f"model: its step gives NaN or inf at {int(bad.sum())} of the {len(x)} starts (first at start {first}), "
            f"so no fixed point can be searched there. Check the model's parameters for NaN or inf, or pass starts "
            f"(initial_states) where the model stays finite."
        )


def _spread(rows: Tensor, u: Tensor, per_input: int) -> Tensor:
    """At most ``per_input`` of ``rows`` (not empty) at each input, evenly spaced in their order."""
    inputs = torch.unique(u[rows], dim=0, return_inverse=True)[1]
    chosen = []
    for k in range(int(inputs.max()) + 1):
        mine = rows[inputs == k]
        chosen.append(mine[torch.linspace(0, len(mine) - 1, min(per_input, len(mine))).round().long()])
    return torch.cat(chosen)


def _pole_radius(roots: Tensor, inputs: Tensor, scale: float) -> float:
    """Half the median distance from each known point to its nearest at the same input (a quarter of the
    states' scale for a single point): poles that reach halfway to the neighbouring points.
    """
    dist = torch.cdist(roots, roots, compute_mode=EXACT)
    dist = torch.where(same_inputs(inputs, inputs), dist, torch.inf).fill_diagonal_(torch.inf).amin(dim=1)
    dist = dist[torch.isfinite(dist)]
    return 0.5 * float(dist.median()) if len(dist) else 0.25 * scale


SPLIT = 2**19  # candidates x d^2 from which a dense search splits (AMD EPYC, 2 threads: GRU-16 x 1024 candidates,
# 2^18, ran 2x slower split, its small operations contending for the interpreter lock; GRU-64 x 128 faster)


def _pieces(n: int, d: int, plan: _Plan, device: torch.device) -> list[Tensor]:
    """Rows of chunks of at most ``plan.chunk`` candidates; for a dense search on the CPU big enough to keep
    the threads busy, at least one per library thread (reverse-mode Jacobians and batched solves run on
    threads at once; the matrix-free solver's forward mode cannot: its dual levels are global to the
    process), dealt out in turn so that each holds as many of every damping level and region of starts.
    """
    count = -(-n // plan.chunk)
    threads = library_threads()
    if plan.solver == "dense" and threads > 1 and device.type == "cpu" and n * d * d >= SPLIT:
        count = max(count, min(threads, n))
    rows = torch.arange(n, device=device)
    return [rows[i::count] for i in range(count)] if count > 1 else [rows]


def _search(state_map: Any, x: Tensor, u: Tensor, damping: Tensor, plan: _Plan, progress: Any) -> tuple[Tensor, ...]:
    """Levenberg-Marquardt from every candidate, piece by piece (pieces on threads where that pays):
    (end points, residuals, stalled, iterations).
    """
    from tqdm.auto import tqdm

    pieces = _pieces(len(x), x.shape[1], plan, x.device)
    settled_counts = [0] * len(pieces)
    lock = threading.Lock()
    with tqdm(total=len(x), desc="fixed points", unit="candidate", disable=not check_progress(progress)) as bar:

        def search(i: int) -> tuple[Tensor, ...]:
            def settled(k: int) -> None:
                with lock:
                    settled_counts[i] = k
                    bar.update(sum(settled_counts) - bar.n)

            at = pieces[i]
            out = levenberg_marquardt(state_map, x[at], u[at], tol=plan.tol, max_iter=plan.max_iter,
                                      centre=plan.centre, radius=plan.radius, settled=settled,
                                      solver=plan.solver, krylov_dim=plan.krylov_dim, initial_damping=damping[at],
                                      stop_q=plan.stop_q)  # fmt: skip
            settled(len(out[0]))
            return out

        with task_pool(len(pieces)) as pmap:
            parts = list(pmap(search, range(len(pieces))))
    order = torch.argsort(torch.cat(pieces))  # back to the candidates' order
    return tuple(torch.cat(part)[order] for part in zip(*parts, strict=True))


def _in_range(x: Tensor, plan: _Plan) -> Tensor:
    return torch.isfinite(x).all(dim=1) & (((x - plan.centre) ** 2).sum(dim=1).sqrt() <= plan.radius)


@dataclass
class _Found:
    points: Tensor  # indices of the distinct converged points (polished)
    slow: Tensor  # indices of the distinct slow points
    q: Tensor
    n_unconverged: int
    n_outliers: int
    n_duplicates: int
    n_deflated: int


def _select(state_map: StateMap, x: Tensor, u: Tensor, r: Tensor, stalled: Tensor, iterations: Tensor,
            origin: Tensor, plan: _Plan, *, slow_q: float, dedup_tol: float) -> _Found:  # fmt: skip
    """Converged, finite, in-range end points, merged and polished; distinct slow points. Edits x, r, iterations."""
    q = 0.5 * (r**2).sum(dim=1)
    converged = small(r, x, plan.tol)
    far = ((x - plan.centre) ** 2).sum(dim=1).sqrt() > plan.radius
    finite = torch.isfinite(x).all(dim=1)
    keep = converged & finite & ~far
    slow = stalled & finite & ~far & (q <= slow_q)
    radius = dedup_tol * plan.scale
    points = torch.nonzero(keep).flatten()[_deduplicate(x[keep], u[keep], q[keep], radius)]
    for s in range(0, len(points), plan.chunk):  # float64 precision for the representatives only
        at = points[s : s + plan.chunk]
        x[at], r[at], polished = newton_polish(state_map, x[at], u[at], r[at], solver=plan.solver,
                                               krylov_dim=plan.krylov_dim)  # fmt: skip
        iterations[at] += polished
    q = 0.5 * (r**2).sum(dim=1)
    points = points[_deduplicate(x[points], u[points], q[points], radius)]  # polishing merges near-duplicates
    slow_index = torch.nonzero(slow).flatten()
    slow_index = slow_index[_deduplicate(x[slow_index], u[slow_index], q[slow_index], radius)]
    # by input (in the order given), then by initial state, then by level
    deflated = len(plan.levels)
    key = origin[:, 1] * (deflated + 1) + origin[:, 0]
    points, slow_index = (idx[torch.argsort(key[idx])] for idx in (points, slow_index))
    ladder = origin[:, 0] < deflated  # the counts are the first pass's; the deflated pass's is what it found
    n_deflated = int((origin[points, 0] == deflated).sum())
    return _Found(points, slow_index, q, int((~converged & ~far & ladder).sum()), int((finite & far & ladder).sum()),
                  int((keep & ladder).sum()) - (len(points) - n_deflated), n_deflated)  # fmt: skip


# --- after the search ---------------------------------------------------------------------


def _deduplicate(x: Tensor, u: Tensor, q: Tensor, radius: float) -> Tensor:
    """Indices of one representative (smallest q) per group of points within ``radius`` at the
    same input (greedy, in order of q).
    """
    if len(x) == 0:
        return torch.zeros(0, dtype=torch.int64, device=x.device)
    order = torch.argsort(q)
    xs, us = x[order], u[order]
    taken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    keep = []
    close = (torch.cdist(xs, xs, compute_mode=EXACT) <= radius) & same_inputs(us, us)
    for i in range(len(x)):
        if taken[i]:
            continue
        keep.append(i)
        taken |= close[i]
    return order[torch.as_tensor(keep, device=x.device)]


def _linearise(sm: StateMap, x: Tensor, u: Tensor, plan: _Plan, n_eigenvalues: int | None) -> tuple[Any, ...]:
    """(dF/dx, dF/du, spectra) at the points: full matrices (dense), or None and the leading eigenvalues by
    Arnoldi iteration on J v (matrix-free: d x d matrices per point would not fit).
    """
    if plan.solver == "dense":
        jac, jac_u = _jacobians(sm, x, u, plan.chunk)
        return jac, jac_u, _spectra(jac, sm, n_eigenvalues, plan.tol)
    return None, None, _leading_spectra(sm, x, u, n_eigenvalues or 10, plan.tol)


def _jacobians(sm: StateMap, x: Tensor, u: Tensor, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """dF/dx (K, d, d) and dF/du (K, d, m) at the points, float64, ``chunk`` points at a time."""
    d, m = x.shape[1], u.shape[1]
    jac, jac_u = np.zeros((len(x), d, d)), np.zeros((len(x), d, m))
    for s in range(0, len(x), chunk):
        a, b = sm.jacobians(x[s : s + chunk], u[s : s + chunk], inputs=True)
        jac[s : s + chunk], jac_u[s : s + chunk] = a.cpu().numpy(), b.cpu().numpy()
    return jac, jac_u


def _spectra(jac: np.ndarray, sm: StateMap, n_eigenvalues: int | None, margin: float) -> tuple[np.ndarray, ...]:
    """Eigenvalues (sorted from the most unstable), eigenvectors, stability and unstable counts (``margin``:
    :func:`unstable_modes`).
    """
    k, d, _ = jac.shape
    matrix = (jac - np.eye(d)) / sm.dt if sm.continuous_time else jac
    values, vectors = np.linalg.eig(matrix) if k else (np.zeros((0, d), complex), np.zeros((0, d, d), complex))
    return _sorted_spectra(values, vectors, sm, n_eigenvalues, margin)


def _sorted_spectra(values: np.ndarray, vectors: np.ndarray, sm: StateMap, n: int | None, margin: float
                    ) -> tuple[np.ndarray, ...]:  # fmt: skip
    key = values.real if sm.continuous_time else np.abs(values)
    order = np.argsort(-key, axis=1, kind="stable")[:, :n]
    values = np.take_along_axis(values, order, axis=1)
    vectors = np.take_along_axis(vectors, order[:, None, :], axis=2)
    n_unstable = unstable_modes(values, sm.continuous_time, sm.dt, margin).sum(axis=1)
    return values, vectors, n_unstable == 0, n_unstable


def unstable_modes(values: np.ndarray, continuous_time: bool, dt: float, margin: float) -> np.ndarray:
    """Which eigenvalues are unstable: outside the unit circle (a map's), or in the right half-plane (a flow's
    (dF/dx - I) / dt), by more than ``margin`` (the search's ``tol``; for a flow, ``margin / dt``). An eigenvalue
    within it is marginal: a line attractor's 1 computes as 1 +- 1e-15, which decided its stability by rounding.

    Examples
    --------
    >>> import numpy as np
    >>> unstable_modes(np.array([1 + 1e-15, 1.01, 0.5j]), False, 1.0, 1e-10).tolist()
    [False, True, False]
    """
    if continuous_time:
        return values.real > margin / dt
    return np.abs(values) > 1 + margin


def _leading_spectra(sm: StateMap, x: Tensor, u: Tensor, n: int, margin: float) -> tuple[np.ndarray, ...]:
    """The ``n`` most unstable eigenvalues and eigenvectors at each point by ARPACK on J v products
    (largest modulus for maps, largest real part for continuous time).
    """
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigs

    d = x.shape[1]
    k = min(n, d - 2)
    values, vectors = np.zeros((len(x), k), complex), np.zeros((len(x), d, k), complex)
    for i in range(len(x)):
        xi, ui = x[i : i + 1], u[i : i + 1]

        def matvec(v: np.ndarray, xi: Tensor = xi, ui: Tensor = ui) -> np.ndarray:
            jv = sm.jvp(xi, ui, torch.as_tensor(np.real(v).reshape(1, d), device=xi.device))[0].cpu().numpy()
            return (jv - np.real(v).ravel()) / sm.dt if sm.continuous_time else jv

        start = np.random.default_rng(i).normal(size=d)  # ARPACK's default start is random: seeded here
        if not sm.jvp(xi, ui, torch.as_tensor(start[None], device=xi.device)).any():  # dF/dx = 0 (no recurrence)
            values[i] = -1 / sm.dt if sm.continuous_time else 0
            vectors[i] = np.eye(d, k)
            continue
        operator = LinearOperator((d, d), matvec=matvec, dtype=np.float64)
        try:
            values[i], vectors[i] = eigs(operator, k=k, which="LR" if sm.continuous_time else "LM", v0=start, tol=1e-10)
        except ArpackNoConvergence as error:
            raise ConvergenceError(
                f"n_eigenvalues: ARPACK did not converge on the {k} leading eigenvalues at fixed point {i} "
                f"({len(error.eigenvalues)} converged). Ask for fewer (n_eigenvalues), or use solver='dense' if the "
                f"d x d Jacobians fit in memory."
            ) from None
    return _sorted_spectra(values, vectors, sm, None, margin)


def _minimal_period(sm: StateMap, x: Tensor, u: Tensor, tol: float) -> np.ndarray:
    """Smallest j dividing the period with F^j(x) = x (within tol)."""
    out = np.full(len(x), sm.period, dtype=int)
    if sm.period == 1 or not len(x):
        return np.ones(len(x), dtype=int)
    with torch.no_grad():
        y = x
        for j in range(1, sm.period):
            y = sm._step(y, u)[1]
            if sm.period % j == 0:
                hit = small(y - x, x, tol * 10).cpu().numpy() & (out == sm.period)
                out[hit] = j
    return out


def _check_callable(sm: StateMap, x: Tensor, u: Tensor) -> None:
    try:
        with torch.no_grad():
            sm(x, u)
    except ShapeError:
        raise
    except Exception as error:  # re-raised with what was passed
        raise ShapeError(
            f"model: one step on a state of shape {tuple(x.shape)} and an input of shape {tuple(u.shape)} failed "
            f"({type(error).__name__}: {error}). Check that initial_states and inputs match the model."
        ) from error


def recorded_states(recording: Recording, layer: str | list[str] | None = None) -> np.ndarray:
    """Every recorded state of ``layer`` as one row (stimulus x time, units), float64; a list of
    layers is joined unit-wise, in order (e.g. ``["l0.h", "l0.c"]`` for an LSTM's packed state).

    Examples
    --------
    >>> import numpy as np
    >>> from rnnprobe import Recording
    >>> rec = Recording({"h": np.zeros((2, 5, 3)), "c": np.ones((2, 5, 3))})
    >>> recorded_states(rec, ["h", "c"]).shape
    (10, 6)
    """
    parts = [
        check_finite(np.asarray(recording.get(name, flatten=True), dtype=np.float64), name="initial_states", layer=name)
        for name in _names(recording, layer)
    ]
    return np.concatenate([p.reshape(-1, p.shape[-1]) for p in parts], axis=1)


def _names(recording: Recording, layer: str | list[str] | None) -> list[str]:
    return list(layer) if isinstance(layer, list | tuple) else [recording.resolve_layer(layer)]


def _initial_states(states: Any, sm: StateMap, layer: Any, n_initial: int, rng: np.random.Generator) -> Tensor:
    if states is None:
        raise ArgumentError(
            "initial_states: pass a Recording of the model's trajectories (with layer=...), packed states "
            "(n, d), or a state of the model; fixed points are searched from there."
        )
    if isinstance(states, Recording):
        names = _names(states, layer)
        steps = {name: states.shapes[name][:2] for name in names}
        if len(set(steps.values())) > 1:
            raise ShapeError(
                f"layer: {names} have (stimuli, time steps) {list(steps.values())}, which differ; name the parts "
                f"of one state, recorded at the same time steps (e.g. ['l0.h', 'l0.c'])."
            )
        n_units = sum(int(np.prod(states.unit_shape(name))) for name in names)
        if sm.state_size is not None and n_units != sm.state_size:
            raise ShapeError(
                f"layer: {names} give {n_units} units per state, but the model's state packs "
                f"into {sm.state_size}. Name every part of the state in pack order (e.g. ['l0.h', 'l0.c'] for an LSTM)."
            )
        n_rows = int(np.prod(steps[names[0]]))  # (stimulus, time step) rows, alike in every layer
        rows = np.sort(rng.choice(n_rows, size=min(n_initial, n_rows), replace=False))
        if not states.is_dask:
            return as_states(recorded_states(states, layer)[rows], sm)
        return as_states(_picked_states(states, names, rows), sm)
    return as_states(states, sm)


def _picked_states(recording: Recording, names: list[str], rows: np.ndarray) -> np.ndarray:
    """:func:`recorded_states` of a dask-backed recording at ``rows`` (sorted), reading only the stimuli they
    come from; the layers' NaN or inf are refused blockwise.
    """
    import dask
    import dask.array as da

    lazy = [recording.to_dask(name) for name in names]
    finite = dask.compute(*(da.isfinite(x).all() for x in lazy))
    for name, ok in zip(names, finite, strict=True):
        check_finite_layer(bool(ok), name)
    stimuli, steps = np.divmod(rows, lazy[0].shape[1])
    read, where = np.unique(stimuli, return_inverse=True)  # each distinct stimulus read once
    parts = [np.asarray(recording.get(name, stimuli=read, flatten=True), dtype=np.float64) for name in names]
    return np.concatenate([part[where, steps] for part in parts], axis=1)

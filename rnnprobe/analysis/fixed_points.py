"""Fixed points, slow points and period-k orbits of recurrent models (Sussillo & Barak 2013).

:func:`find_fixed_points` searches the zeros of r(x) = F(x, u) - x, for the model's step F at
constant inputs u, from many initial states at once, and minimises q(x) = 1/2 ||r(x)||^2:

1. Levenberg-Marquardt on every candidate at once, each with its own damping: a candidate whose
   step fails takes shorter, more gradient-like steps (damping up), one that succeeds takes
   Gauss-Newton steps (damping down). There is no shared learning rate that decays for all
   candidates because some of them stall, the failure mode of Adam on the mean of q.
2. Newton polish of the candidates that reached a small residual, so that true fixed points end
   at float64 precision (||r|| about 1e-15 for states of order 1).

Only candidates whose residual is below ``tol`` (relative to the state's norm) are fixed points.
Candidates that stop at a local minimum of q (the gradient J'r vanishes while r does not) with q
below ``slow_q`` are *slow points*, kept apart; the rest are dropped and counted. Fixed points
within ``dedup_tol`` (relative to the scale of the initial states) are merged, and points far
from the initial states (``outlier_distance`` times their spread) are dropped and counted.

At each fixed point: Jacobians dF/dx and dF/du (batched forward mode, ``torch.func``), their
eigendecomposition, stability (|lambda| < 1 for maps; Re(lambda) < 0 of (J - I) / dt for
continuous-time models such as the zoo's CTRNN), the number of unstable modes and the model's
readout. ``period=k`` searches fixed points of the k-times composed map: period-k orbits.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ..errors import ArgumentError, ShapeError, check_int, describe
from ..recording import Recording
from ._state_map import StateMap, as_inputs, as_states

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
class FixedPoints:
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
    jacobians : ndarray (K, d, d)
        dF/dx (of the k-times composed map for ``period=k``).
    input_jacobians : ndarray (K, d, m)
        dF/du.
    eigenvalues : ndarray (K, d) complex
        Of dF/dx (discrete time), or of the continuous-time Jacobian (dF/dx - I) / dt for
        continuous-time models; sorted from the most unstable.
    eigenvectors : ndarray (K, d, d) complex
        Column j belongs to eigenvalue j.
    stable : ndarray (K,) bool
    n_unstable : ndarray (K,) int
        Eigenvalues outside the unit circle (discrete) or in the right half-plane (continuous).
    outputs : ndarray (K, n_out) or None
        The model's readout at each point (its step's output), e.g. the bits a flip-flop stores.
    minimal_period : ndarray (K,) int
        For ``period=k``: the smallest j dividing k with F^j(x) = x (1 for fixed points of F).
    slow : SlowPoints
    continuous_time : bool
    period : int
    tol : float
    n_candidates, n_unconverged, n_outliers, n_duplicates : int
    seconds : float
        Wall time of the search.
    """

    states: np.ndarray
    inputs: np.ndarray
    q: np.ndarray
    iterations: np.ndarray
    jacobians: np.ndarray
    input_jacobians: np.ndarray
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
    n_candidates: int
    n_unconverged: int
    n_outliers: int
    n_duplicates: int
    seconds: float
    _state_map: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.q)

    def __repr__(self) -> str:
        n_stable = int(self.stable.sum())
        kind = "fixed points" if self.period == 1 else f"period-{self.period} points"
        return (
            f"<FixedPoints: {len(self)} {kind} ({n_stable} stable, {len(self) - n_stable} unstable), "
            f"{len(self.slow)} slow point(s), from {self.n_candidates} candidates ({self.n_unconverged} "
            f"unconverged, {self.n_duplicates} duplicates, {self.n_outliers} outliers), {self.seconds:.2f} s>"
        )

    def state(self, i: int) -> Any:
        """Point ``i`` as a state of the model (tuples/dicts unpacked), batch of one, float64."""
        sm = self._state_map
        x = torch.as_tensor(self.states[i : i + 1])
        return x if sm is None or sm.template is None else sm.model.unpack_state(x)

    def linearize(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(A, B) of the linearised dynamics around point ``i``: for discrete time
        dx_{t+1} = A dx_t + B du_t; for continuous time d(dx)/dt = A dx + B du."""
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
        eigenvalue spectra with the unit circle (or the imaginary axis in continuous time)."""
        from ._plotting import pyplot

        plt = pyplot()
        fig, (ax, ax_eig) = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
        d = self.states.shape[1]
        if trajectories is not None:
            if isinstance(trajectories, Recording):
                traj = np.asarray(trajectories.get(trajectories._default_layer(layer), flatten=True), dtype=float)
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
        centre = flat.mean(axis=0)
        _, _, vt = np.linalg.svd(flat - centre, full_matrices=False)
        axes = vt[:2].T if vt.shape[0] >= 2 else np.eye(d)[:, :2]
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
        if self.continuous_time:
            ax_eig.axvline(0, color="black", lw=0.8)
            ax_eig.set_xlabel("Re(lambda) (per unit time)")
        else:
            angle = np.linspace(0, 2 * np.pi, 200)
            ax_eig.plot(np.cos(angle), np.sin(angle), color="black", lw=0.8)
            ax_eig.set_aspect("equal")
            ax_eig.set_xlabel("Re(lambda)")
        for i in range(len(self)):
            ev = self.eigenvalues[i]
            ax_eig.scatter(ev.real, ev.imag, s=8, alpha=0.6, color="black" if self.stable[i] else "#D55E00")
        ax_eig.set_ylabel("Im(lambda)")
        ax_eig.set_title("Jacobian eigenvalues")
        return fig

    def _unstable_directions(self, i: int) -> np.ndarray:
        ev = self.eigenvalues[i]
        unstable = ev.real > 0 if self.continuous_time else np.abs(ev) > 1
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
    memory: float = 2**28,
    seed: int | None = 0,
    device: Any = None,
) -> FixedPoints:
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
        states' RMS distance from it are dropped (diverged candidates).
    max_iter : int
        Levenberg-Marquardt iterations per candidate.
    memory : float
        Bytes of Jacobians held at once; candidates are processed in chunks that fit.
    seed : int, optional
        Seeds the sampling of initial states and their noise.
    device : optional
        Torch device of the search.

    Returns
    -------
    FixedPoints

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
    >>> fp.n_candidates, fp.n_duplicates, len(fp.slow)
    (20, 19, 0)
    """
    started = _time.perf_counter()
    state_map = StateMap(model, period=period, device=device)
    if state_map.continuous_time and state_map.period > 1:
        raise ArgumentError(
            f"period: got {period} for a continuous-time model; its flow has no period-k points of the Euler map to "
            f"speak of. Search period=1 (fixed points of the ODE)."
        )
    for name, value in (("tol", tol), ("slow_q", slow_q), ("dedup_tol", dedup_tol), ("noise", noise)):
        if not (np.isscalar(value) and np.isfinite(value) and value >= 0):
            raise ArgumentError(f"{name}: got {describe(value)}. Pass a finite number >= 0.")
    max_iter = check_int("max_iter", max_iter, minimum=1)
    rng = np.random.default_rng(seed)
    x0 = _initial_states(initial_states, state_map, layer, check_int("n_initial", n_initial, minimum=1), rng)
    if state_map.state_size is None:
        state_map.state_size = x0.shape[1]
    if noise:
        x0 = x0 + torch.as_tensor(rng.normal(scale=noise, size=tuple(x0.shape)), device=x0.device)
    u_all = as_inputs(inputs, state_map)
    if state_map.input_size is None:
        state_map.input_size = u_all.shape[1]
    n0, d = x0.shape
    x = x0.repeat(len(u_all), 1)  # every initial state at every input
    u = u_all.repeat_interleave(n0, dim=0)
    _check_callable(state_map, x[:1], u[:1])

    centre = x0.mean(dim=0)
    spread = torch.sqrt(((x0 - centre) ** 2).sum(dim=1).mean()).clamp(min=1e-12)
    scale = torch.sqrt((x0**2).sum(dim=1).mean()).clamp(min=1e-12)
    radius = outlier_distance * float(spread)
    chunk = max(1, int(memory // (8 * d * d * 4)))
    solved = [_levenberg_marquardt(state_map, x[s : s + chunk], u[s : s + chunk], tol, max_iter, centre, radius)
              for s in range(0, len(x), chunk)]  # fmt: skip
    x, r, converged, stalled, iterations = (torch.cat(part) for part in zip(*solved, strict=True))
    q = 0.5 * (r**2).sum(dim=1)

    far = ((x - centre) ** 2).sum(dim=1).sqrt() > radius
    finite = torch.isfinite(x).all(dim=1)
    keep = converged & finite & ~far
    slow = ~converged & stalled & finite & ~far & (q <= slow_q)
    n_outliers = int((finite & far).sum())
    index = _deduplicate(x[keep], u[keep], q[keep], dedup_tol * float(scale))
    points = torch.nonzero(keep).flatten()[index]
    slow_index = torch.nonzero(slow).flatten()
    slow_index = slow_index[_deduplicate(x[slow_index], u[slow_index], q[slow_index], dedup_tol * float(scale))]

    xs, us = x[points], u[points]
    jac, jac_u = (
        state_map.jacobians(xs, us, inputs=True)
        if len(xs)
        else (torch.zeros(0, d, d, dtype=torch.float64), torch.zeros(0, d, u.shape[1], dtype=torch.float64))
    )
    jac, jac_u = jac.cpu().numpy(), jac_u.cpu().numpy()
    eigenvalues, eigenvectors, stable, n_unstable = _spectra(jac, state_map)
    with torch.no_grad():
        out = state_map.output(xs, us) if len(xs) else None
    return FixedPoints(
        states=xs.cpu().numpy(),
        inputs=us.cpu().numpy(),
        q=q[points].cpu().numpy(),
        iterations=iterations[points].cpu().numpy(),
        jacobians=jac,
        input_jacobians=jac_u,
        eigenvalues=eigenvalues,
        eigenvectors=eigenvectors,
        stable=stable,
        n_unstable=n_unstable,
        outputs=None if out is None else out.detach().cpu().numpy(),
        minimal_period=_minimal_period(state_map, xs, us, tol),
        slow=SlowPoints(x[slow_index].cpu().numpy(), u[slow_index].cpu().numpy(), q[slow_index].cpu().numpy()),
        continuous_time=state_map.continuous_time,
        period=state_map.period,
        tol=tol,
        n_candidates=len(x),
        n_unconverged=int((~converged & ~far).sum()),
        n_outliers=n_outliers,
        n_duplicates=int(keep.sum()) - len(points),
        seconds=_time.perf_counter() - started,
        _state_map=state_map,
    )


# --- the search ---------------------------------------------------------------------------


def _levenberg_marquardt(
    sm: StateMap, x: Tensor, u: Tensor, tol: float, max_iter: int, centre: Tensor, radius: float
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Per-candidate damped Gauss-Newton on r(x) = F(x) - x, then Newton polish.

    Returns (x, r, converged, stalled, iterations): stalled candidates stopped at a stationary point
    of q that is not a zero of r (the gradient vanished, q stagnated, or no step decreased q).
    Candidates farther than ``radius`` from ``centre`` stop there (diverging, e.g. towards
    saturation where q creeps to 0 at infinity); they are outliers."""
    n, d = x.shape
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    with torch.no_grad():
        r = sm.residual(x, u)
    q = 0.5 * (r**2).sum(dim=1)
    damping = torch.full((n,), float("nan"), dtype=x.dtype, device=x.device)
    growth = torch.full_like(damping, 2.0)
    converged = torch.zeros(n, dtype=torch.bool, device=x.device)
    stalled = torch.zeros_like(converged)
    iterations = torch.zeros(n, dtype=torch.int64, device=x.device)
    q_mark = q.clone()
    for it in range(max_iter):
        converged = _small(r, x, tol)
        inside = ((x - centre) ** 2).sum(dim=1) <= radius**2
        active = ~(converged | stalled) & torch.isfinite(q) & inside
        if not active.any():
            break
        idx = torch.nonzero(active).flatten()
        xa, ua, ra = x[idx], u[idx], r[idx]
        jr = sm.jacobians(xa, ua) - eye  # (na, d, d), d r / dx
        jt = jr.mT
        a = jt @ jr
        g = (jt @ ra[:, :, None])[..., 0]
        mu = damping[idx]
        fresh = torch.isnan(mu)
        # first steps damped as much as the largest curvature: gradient-like descent of q from each
        # start reaches more distinct points than Gauss-Newton jumps (flip-flop LSTM: 27 against 21
        # with 1e-3 of it, the same 27 that Adam on q finds) and costs fewer iterations
        mu = torch.where(fresh, torch.diagonal(a, dim1=1, dim2=2).amax(dim=1).clamp(min=1e-12), mu)
        step = -torch.linalg.solve(a + mu[:, None, None] * eye, g)
        trial = xa + step
        with torch.no_grad():
            r_trial = sm.residual(trial, ua)
        q_trial = 0.5 * (r_trial**2).sum(dim=1)
        predicted = -(g * step).sum(dim=1) - 0.5 * (step * (a @ step[:, :, None])[..., 0]).sum(dim=1)
        rho = (q[idx] - q_trial) / predicted.clamp(min=1e-300)
        better = (q_trial < q[idx]) & torch.isfinite(q_trial)
        # Nielsen's damping update: shrink after a good step, grow ever faster after failures
        shrink = torch.clamp(1 - (2 * rho - 1) ** 3, min=1 / 3)
        damping[idx] = torch.where(better, mu * shrink, mu * growth[idx])
        growth[idx] = torch.where(better, 2.0, growth[idx] * 2)
        x[idx] = torch.where(better[:, None], trial, xa)
        r[idx] = torch.where(better[:, None], r_trial, ra)
        q[idx] = torch.where(better, q_trial, q[idx])
        iterations[idx] += 1
        # a stationary point of q that is not a root: zero gradient, or damping beyond any use
        flat = g.abs().amax(dim=1) <= 1e-14 * (1 + xa.abs().amax(dim=1)) * (1 + ra.abs().amax(dim=1))
        stuck = damping[idx] > 1e12 * torch.diagonal(a, dim1=1, dim2=2).amax(dim=1).clamp(min=1e-12)
        stagnant = torch.zeros_like(flat)
        if it % 10 == 9:  # after the first 30, q must halve every 10 iterations (Newton-like convergence
            # to a root takes it down by orders of magnitude); slower is creeping to a minimum of q
            # or out to infinity along a saturated direction
            stagnant = q[idx] > (0.5 if it >= 29 else 1 - 1e-3) * q_mark[idx]
            q_mark = q.clone()
        stalled[idx] = (flat | stuck | stagnant) & ~_small(r[idx], x[idx], tol)
    converged = _small(r, x, tol)
    x, r, polished = _newton_polish(sm, x, u, r, converged)
    return x, r, _small(r, x, tol), stalled & ~converged, iterations + polished


def _newton_polish(sm: StateMap, x: Tensor, u: Tensor, r: Tensor, which: Tensor, steps: int = 3) -> tuple:
    """Undamped Newton steps on the converged candidates while the residual shrinks: float64
    precision for true fixed points."""
    polished = torch.zeros(len(x), dtype=torch.int64, device=x.device)
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    idx = torch.nonzero(which).flatten()
    for _ in range(steps):
        if not len(idx):
            break
        jr = sm.jacobians(x[idx], u[idx]) - eye
        try:
            trial = x[idx] - torch.linalg.solve(jr, r[idx][:, :, None])[..., 0]
        except RuntimeError:  # a singular Jacobian (a degenerate point): keep the LM solution
            break
        with torch.no_grad():
            r_trial = sm.residual(trial, u[idx])
        better = r_trial.norm(dim=1) < r[idx].norm(dim=1)
        x[idx] = torch.where(better[:, None], trial, x[idx])
        r[idx] = torch.where(better[:, None], r_trial, r[idx])
        polished[idx] += better.long()
        idx = idx[better & (r[idx].abs().amax(dim=1) > 0)]
    return x, r, polished


def _small(r: Tensor, x: Tensor, tol: float) -> Tensor:
    return r.norm(dim=1) <= tol * torch.clamp(x.norm(dim=1), min=1.0)


def _deduplicate(x: Tensor, u: Tensor, q: Tensor, radius: float) -> Tensor:
    """Indices of one representative (smallest q) per group of points within ``radius`` at the
    same input (greedy, in order of q)."""
    if len(x) == 0:
        return torch.zeros(0, dtype=torch.int64, device=x.device)
    order = torch.argsort(q)
    xs, us = x[order], u[order]
    taken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    keep = []
    close = (torch.cdist(xs, xs) <= radius) & (torch.cdist(us, us) <= 1e-12 * (1 + us.abs().max()))
    for i in range(len(x)):
        if taken[i]:
            continue
        keep.append(i)
        taken |= close[i]
    return order[torch.as_tensor(keep, device=x.device)]


def _spectra(jac: np.ndarray, sm: StateMap) -> tuple[np.ndarray, ...]:
    """Eigenvalues (sorted from the most unstable), eigenvectors, stability and unstable counts."""
    k, d, _ = jac.shape
    if k == 0:
        empty = np.zeros((0, d), dtype=complex)
        return empty, np.zeros((0, d, d), dtype=complex), np.zeros(0, dtype=bool), np.zeros(0, dtype=int)
    matrix = (jac - np.eye(d)) / sm.dt if sm.continuous_time else jac
    values, vectors = np.linalg.eig(matrix)
    key = values.real if sm.continuous_time else np.abs(values)
    order = np.argsort(-key, axis=1, kind="stable")
    values = np.take_along_axis(values, order, axis=1)
    vectors = np.take_along_axis(vectors, order[:, None, :], axis=2)
    unstable = values.real > 0 if sm.continuous_time else np.abs(values) > 1
    n_unstable = unstable.sum(axis=1)
    return values, vectors, n_unstable == 0, n_unstable


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
                hit = _small(y - x, x, tol * 10).cpu().numpy() & (out == sm.period)
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
    parts = [np.asarray(recording.get(name, flatten=True), dtype=np.float64) for name in _names(recording, layer)]
    return np.concatenate([p.reshape(-1, p.shape[-1]) for p in parts], axis=1)


def _names(recording: Recording, layer: str | list[str] | None) -> list[str]:
    return list(layer) if isinstance(layer, list | tuple) else [recording._default_layer(layer)]


def _initial_states(states: Any, sm: StateMap, layer: Any, n_initial: int, rng: np.random.Generator) -> Tensor:
    if states is None:
        raise ArgumentError(
            "initial_states: pass a Recording of the model's trajectories (with layer=...), packed states "
            "(n, d), or a state of the model; fixed points are searched from there."
        )
    if isinstance(states, Recording):
        pooled = recorded_states(states, layer)
        if sm.state_size is not None and pooled.shape[1] != sm.state_size:
            raise ShapeError(
                f"layer: {_names(states, layer)} give {pooled.shape[1]} units per state, but the model's state packs "
                f"into {sm.state_size}. Name every part of the state in pack order (e.g. ['l0.h', 'l0.c'] for an LSTM)."
            )
        pick = rng.choice(len(pooled), size=min(n_initial, len(pooled)), replace=False)
        return as_states(pooled[np.sort(pick)], sm)
    return as_states(states, sm)

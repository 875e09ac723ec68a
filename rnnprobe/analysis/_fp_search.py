"""The fixed-point search: per-candidate Levenberg-Marquardt on r(x) = F(x) - x, then Newton polish.

One loop serves two ways of solving the damped Gauss-Newton systems (J'J + mu I) s = -J'r, with
J = dF/dx - I, for every candidate at once:

- :class:`Dense`: the Jacobians themselves (batched reverse mode), normal equations by a batched
  Cholesky-free solve. Far from a root (||r|| > 1e-5 ||x||) the Jacobians are evaluated with a
  float32 copy of the model: the step needs no more, and it halves their cost. Near a root, and
  in the Newton polish, they are float64.
- :class:`MatrixFree`: products J v (forward mode) and J'r (reverse mode) only. The Newton step
  comes from batched GMRES on J s = -r to a relative accuracy that tightens as r shrinks (an
  inexact Newton method); the damped step is the minimiser of ||J s + r||^2 + mu ||s||^2 in the
  plane of that Newton step and the gradient J'r. Memory is O(krylov_dim d) per candidate: states
  of thousands of units (BLT feature maps, fast-weight matrices).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._linear import lu_solve, matmul
from ._state_map import StateMap

SOLVERS = ("auto", "dense", "matrix-free")
NEAR = 1e-5  # ||r|| / max(1, ||x||) below which the dense Jacobians are float64


def small(r: Tensor, x: Tensor, tol: float) -> Tensor:
    """||r|| <= tol * max(1, ||x||), per row."""
    return r.norm(dim=1) <= tol * torch.clamp(x.norm(dim=1), min=1.0)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(dim=1)


def solve(a: Tensor, b: Tensor) -> Tensor:
    """Batched a x = b (a (N, d, d) nonsingular, b (N, d)); on the CPU by numpy's LAPACK, 2x faster than
    torch's here (1024 systems of 64: 16 against 33 ms, AMD EPYC) and free of the interpreter lock.
    """
    if a.device.type != "cpu":
        return torch.linalg.solve(a, b)
    return torch.from_numpy(lu_solve(a.numpy(), b.numpy()[..., None])[..., 0])


class Dense:
    """J'J and J'r from full Jacobians of the candidates ``x`` (rows) at inputs ``u``."""

    def __init__(self, sm: StateMap, x: Tensor, u: Tensor, r: Tensor) -> None:
        eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        near = small(r, x, NEAR)
        jac = torch.empty(len(x), x.shape[1], x.shape[1], dtype=x.dtype, device=x.device)
        for mask, dtype in ((near, None), (~near, torch.float32)):
            if mask.any():
                jac[mask] = sm.jacobians(x[mask], u[mask], dtype=dtype)
        self.jr = jac - eye
        self.r, self.eye = r, eye

    @cached_property
    def a(self) -> Tensor:
        """J'J (not formed for the Newton polish, which needs J only)."""
        return matmul(self.jr.mT, self.jr)

    @cached_property
    def g(self) -> Tensor:
        """J'r."""
        return matmul(self.jr.mT, self.r[:, :, None])[..., 0]

    def curvature(self) -> Tensor:
        """The largest diagonal element of J'J per candidate."""
        return torch.diagonal(self.a, dim1=1, dim2=2).amax(dim=1)

    def step(self, mu: Tensor) -> tuple[Tensor, Tensor]:
        """S solving (J'J + mu I) s = -J'r, and the decrease of q the linear model predicts."""
        s = -solve(self.a + mu[:, None, None] * self.eye, self.g)
        return s, -_dot(self.g, s) - 0.5 * _dot(s, matmul(self.a, s[:, :, None])[..., 0])

    def newton(self) -> Tensor:
        """S solving J s = -r (raises RuntimeError for a singular J); on the CPU by numpy's LAPACK: torch 2.13's
        batched LU on more than one thread failed or returned wrong solutions from about 200 unknowns (two
        systems of 300 on two threads: a residual of 28; tested).
        """
        if self.jr.device.type != "cpu":
            return -torch.linalg.solve(self.jr, self.r[:, :, None])[..., 0]
        try:
            steps = np.linalg.solve(self.jr.detach().numpy(), self.r.detach().numpy()[..., None])[..., 0]
        except np.linalg.LinAlgError as error:  # (torch's solve raises a RuntimeError: the caller's contract)
            raise RuntimeError(f"singular Jacobian: {error}") from None
        return -torch.from_numpy(steps)


class MatrixFree:
    """The same steps from Jacobian-vector products only: a Newton step by batched GMRES on
    J s = -r (forward mode; its convergence follows the eigenvalues of dF/dx - I, which for a
    recurrent network cluster away from 0 but for a few slow modes), and the damped step in the
    plane of that Newton step and the gradient J'r (reverse mode) -- a smooth version of Powell's
    dogleg, the trust-region method of MINPACK's hybrd, with Levenberg-Marquardt's damping.
    """

    def __init__(self, sm: StateMap, x: Tensor, u: Tensor, r: Tensor, *, krylov_dim: int = 50) -> None:
        self.sm, self.x, self.u, self.r, self.krylov_dim = sm, x, u, r, krylov_dim

    @cached_property
    def g(self) -> Tensor:
        """J'r (reverse mode)."""
        return self.sm.vjp(self.x, self.u)(self.r) - self.r

    @cached_property
    def _plane(self) -> tuple[Tensor, ...]:
        """The basis S = [g, Newton step] (N, d, 2), J S, and the 2 x 2 normal-equation pieces."""
        relative = self.r.norm(dim=1) / torch.clamp(self.x.norm(dim=1), min=1.0)
        forcing = torch.clamp(relative.sqrt(), max=0.1)  # inexact Newton: tighter near a root
        newton, j_newton = self.gmres(-self.r, forcing)
        basis = torch.stack([self.g, newton], dim=2)
        image = torch.stack([self.j(self.g), j_newton], dim=2)
        return basis, image, image.mT @ image, basis.mT @ basis, (image.mT @ self.r[:, :, None])[..., 0]

    def j(self, v: Tensor) -> Tensor:
        """J v = (dF/dx - I) v, every row."""
        return self.sm.jvp(self.x, self.u, v) - v

    def gmres(self, b: Tensor, forcing: Tensor) -> tuple[Tensor, Tensor]:
        """S with ||J s - b|| <= forcing ||b|| per row (or the best in ``krylov_dim`` steps), and J s."""
        n, d = b.shape
        m = self.krylov_dim
        beta = b.norm(dim=1).clamp(min=1e-300)
        basis = torch.zeros(n, m + 1, d, dtype=b.dtype, device=b.device)
        hess = torch.zeros(n, m + 1, m, dtype=b.dtype, device=b.device)
        basis[:, 0] = b / beta[:, None]
        e1 = torch.zeros(n, m + 1, 1, dtype=b.dtype, device=b.device)
        e1[:, 0, 0] = beta
        k = 0
        for k in range(1, m + 1):
            w = self.j(basis[:, k - 1])
            for _ in range(2):  # classical Gram-Schmidt, twice (as accurate as modified, batched)
                h = torch.einsum("nd,nkd->nk", w, basis[:, :k])
                w = w - torch.einsum("nk,nkd->nd", h, basis[:, :k])
                hess[:, :k, k - 1] += h
            norm = w.norm(dim=1)
            hess[:, k, k - 1] = norm
            basis[:, k] = torch.where(norm[:, None] > 1e-14 * beta[:, None], w / norm.clamp(min=1e-300)[:, None], 0)
            y = torch.linalg.lstsq(hess[:, : k + 1, :k], e1[:, : k + 1]).solution
            residual = (hess[:, : k + 1, :k] @ y - e1[:, : k + 1])[..., 0].norm(dim=1)
            if bool((residual <= forcing * beta).all()):
                break
        s = torch.einsum("nk,nkd->nd", y[..., 0], basis[:, :k])
        js = torch.einsum("nk,nkd->nd", (hess[:, : k + 1, :k] @ y)[..., 0], basis[:, : k + 1])  # Arnoldi: J V = V H
        return s, js

    def curvature(self) -> Tensor:
        """||J g||^2 / ||g||^2: the curvature of q along the gradient (a damping of that size
        makes the first step gradient-like).
        """
        _, _, mtm, sts, _ = self._plane
        return mtm[:, 0, 0] / sts[:, 0, 0].clamp(min=1e-300)

    def step(self, mu: Tensor) -> tuple[Tensor, Tensor]:
        """The step in the plane of the gradient and the Newton step minimising
        ||J s + r||^2 + mu ||s||^2, and the decrease of q the linear model predicts.
        """
        basis, image, mtm, sts, mtr = self._plane
        ridge = 1e-14 * mtm.diagonal(dim1=1, dim2=2).amax(dim=1)  # g parallel to the Newton step: one direction
        system = mtm + mu[:, None, None] * sts + ridge[:, None, None] * torch.eye(2, dtype=mu.dtype, device=mu.device)
        coef = -torch.linalg.lstsq(system, mtr[:, :, None]).solution
        s = (basis @ coef)[..., 0]
        js = (image @ coef)[..., 0]
        return s, -_dot(self.g, s) - 0.5 * _dot(js, js)

    def newton(self) -> Tensor:
        """S with J s = -r to high relative accuracy (GMRES to 1e-12)."""
        return self.gmres(-self.r, torch.full_like(self.r[:, 0], 1e-12))[0]


EXACT = "donot_use_mm_for_euclid_dist"  # cdist's mm form loses sqrt(eps) ||x|| to cancellation


def same_inputs(a: Tensor, b: Tensor) -> Tensor:
    """(len(a), len(b)): whether row i of a equals row j of b (to 1e-12 of b's largest magnitude)."""
    return torch.cdist(a, b, compute_mode=EXACT) <= 1e-12 * (1 + b.abs().max())


class Deflated:
    """The deflated map of Farrell, Birkisson & Funke (2015), as a state map for the search: residual
    M(x) r(x) with M(x) = prod_i (s^2 / ||x - x_i||^2 + 1) over the known points x_i at the same input
    (s: the poles' radius). Known points become poles, so a search that would converge to one is
    pushed on to another root; M >= 1, so a small deflated residual is a small residual of F. Serves
    both solvers: ``jacobians``, ``jvp`` and ``vjp`` return the deflated J + I, as the map's own do.
    """

    def __init__(self, sm: StateMap, roots: Tensor, root_inputs: Tensor, scale: float) -> None:
        self.sm, self.roots, self.root_inputs, self.scale = sm, roots, root_inputs, scale
        self._last = threading.local()  # .at: (x, u, M, grad M, r) of the last point this thread linearised

    def _factor(self, x: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        """M (N,) and its gradient (N, d)."""
        dist2 = torch.cdist(x, self.roots, compute_mode=EXACT) ** 2 / self.scale**2
        pole = torch.where(same_inputs(u, self.root_inputs), 1 / dist2.clamp(min=1e-300), 0.0)
        m = (pole + 1).prod(dim=1)
        # d/dx log(s^2/||x - x_i||^2 + 1) = -2 pole_i / (pole_i + 1) (x - x_i) / ||x - x_i||^2
        w = -2 * pole / (pole + 1) / (dist2 * self.scale**2).clamp(min=1e-300)
        return m, m[:, None] * (w.sum(dim=1, keepdim=True) * x - w @ self.roots)

    def _linear_parts(self, x: Tensor, u: Tensor) -> tuple[Tensor, ...]:
        """M, grad M and r of F at x, once per point: GMRES asks for J v at the same x many times."""
        at = getattr(self._last, "at", ())
        if not at or at[0] is not x or at[1] is not u:
            with torch.no_grad():
                at = self._last.at = (x, u, *self._factor(x, u), self.sm.residual(x, u))
        return at[2:]

    def residual(self, x: Tensor, u: Tensor) -> Tensor:
        return self._factor(x, u)[0][:, None] * self.sm.residual(x, u)

    def jacobians(self, x: Tensor, u: Tensor, *, dtype: torch.dtype | None = None) -> Tensor:
        eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        m, grad, r = self._linear_parts(x, u)
        jac = self.sm.jacobians(x, u, dtype=dtype)
        return m[:, None, None] * (jac - eye) + r[:, :, None] * grad[:, None, :] + eye

    def jvp(self, x: Tensor, u: Tensor, v: Tensor) -> Tensor:
        m, grad, r = self._linear_parts(x, u)
        return m[:, None] * (self.sm.jvp(x, u, v) - v) + r * _dot(grad, v)[:, None] + v

    def vjp(self, x: Tensor, u: Tensor) -> Any:
        m, grad, r = self._linear_parts(x, u)
        pullback = self.sm.vjp(x, u)
        return lambda w: m[:, None] * (pullback(w) - w) + grad * _dot(r, w)[:, None] + w


def system(solver: str, sm: StateMap, x: Tensor, u: Tensor, r: Tensor, krylov_dim: int) -> Any:
    return Dense(sm, x, u, r) if solver == "dense" else MatrixFree(sm, x, u, r, krylov_dim=krylov_dim)


def levenberg_marquardt(
    sm: StateMap,
    x: Tensor,
    u: Tensor,
    *,
    tol: float,
    max_iter: int,
    centre: Tensor,
    radius: float,
    solver: str,
    krylov_dim: int,
    initial_damping: Tensor | None = None,
    stop_q: float | None = None,
    settled: Callable[[int], None] | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-candidate damped Gauss-Newton on r(x) = F(x) - x (``settled`` is told, after each
    iteration, how many candidates have stopped: for progress bars).

    Returns (x, r, stalled, iterations): stalled candidates stopped at a stationary point of q
    that is not a zero of r (the gradient vanished, q stagnated, or no step decreased q).
    Candidates farther than ``radius`` from ``centre`` stop there (diverging, e.g. towards
    saturation where q creeps to 0 at infinity); they are outliers. ``initial_damping`` (per
    candidate) scales the first step's damping, the largest curvature of J'J. With ``stop_q``, a
    candidate whose q falls to ``stop_q`` stops there (marked stalled unless it is a root): slow points
    near where it started, as FixedPointFinder's q tolerance.
    """
    n = len(x)
    with torch.no_grad():
        r = sm.residual(x, u)
    q = 0.5 * (r**2).sum(dim=1)
    damping = torch.full((n,), float("nan"), dtype=x.dtype, device=x.device)
    curvature = torch.full_like(damping, float("nan"))
    growth = torch.full_like(damping, 2.0)
    stalled = torch.zeros(n, dtype=torch.bool, device=x.device)
    iterations = torch.zeros(n, dtype=torch.int64, device=x.device)
    q_mark = q.clone()
    for it in range(max_iter):
        inside = ((x - centre) ** 2).sum(dim=1) <= radius**2
        active = ~(small(r, x, tol) | stalled) & torch.isfinite(q) & inside
        if settled is not None:
            settled(n - int(active.sum()))
        if not active.any():
            break
        idx = torch.nonzero(active).flatten()
        xa, ua, ra = x[idx], u[idx], r[idx]
        sys_ = system(solver, sm, xa, ua, ra, krylov_dim)
        mu = damping[idx]
        fresh = torch.isnan(mu)
        if fresh.any():
            # first steps damped as much as the largest curvature: gradient-like descent of q from each
            # start reaches more distinct points than Gauss-Newton jumps (flip-flop LSTM: 27 against 21
            # with 1e-3 of it, the same 27 that Adam on q finds) and costs fewer iterations
            curvature[idx] = torch.where(fresh, sys_.curvature().clamp(min=1e-12), curvature[idx])
            scale = 1.0 if initial_damping is None else initial_damping[idx]
            mu = torch.where(fresh, curvature[idx] * scale, mu)
        step, predicted = sys_.step(mu)
        trial = xa + step
        with torch.no_grad():
            r_trial = sm.residual(trial, ua)
        q_trial = 0.5 * (r_trial**2).sum(dim=1)
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
        g = sys_.g
        flat = g.abs().amax(dim=1) <= 1e-14 * (1 + xa.abs().amax(dim=1)) * (1 + ra.abs().amax(dim=1))
        stuck = damping[idx] > 1e12 * curvature[idx]
        stagnant = torch.zeros_like(flat)
        if it % 10 == 9:  # after the first 30, q must halve every 10 iterations (Newton-like convergence
            # to a root takes it down by orders of magnitude); slower is creeping to a minimum of q
            # or out to infinity along a saturated direction
            stagnant = q[idx] > (0.5 if it >= 29 else 1 - 1e-3) * q_mark[idx]
            q_mark = q.clone()
        slow_enough = q[idx] <= stop_q if stop_q is not None else torch.zeros_like(flat)
        stalled[idx] = (flat | stuck | stagnant | slow_enough) & ~small(r[idx], x[idx], tol)
    return x, r, stalled, iterations  # stalled candidates are never roots: they were marked only when not small


def newton_polish(
    sm: StateMap, x: Tensor, u: Tensor, r: Tensor, *, solver: str, krylov_dim: int, steps: int = 3
) -> tuple[Tensor, Tensor, Tensor]:
    """Undamped Newton steps while the residual shrinks: float64 precision for true fixed points.
    Returns (x, r, steps taken) per row.
    """
    polished = torch.zeros(len(x), dtype=torch.int64, device=x.device)
    idx = torch.arange(len(x), device=x.device)
    for _ in range(steps):
        if not len(idx):
            break
        try:
            trial = x[idx] + system(solver, sm, x[idx], u[idx], r[idx], krylov_dim).newton()
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

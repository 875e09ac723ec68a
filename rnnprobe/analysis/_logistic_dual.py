"""Binary logistic regression of wide data (more units than training samples) by Newton's method in
the samples' space, for every (time step, fold, target set) of a block at once (on a device).

The problem of :mod:`._logistic` (sklearn's ``LogisticRegression``, optionally after a
``StandardScaler``), minimise sum_i loss(z_i w + b, y_i) + penalty / 2 ||w||^2 over the training
samples z_i (centred and scaled by the fold's training moments), has its optimum in the span of the
training samples: w = Z'a. With K = Z Z' (n x n, one per fold and step) and eta = K a + b, the Newton
step (da, db) of the primal problem is, with W = diag(p (1 - p)) and the residual r = p - y,

    [K + penalty W^-1   1] [da]   [-W^-1 (r + penalty a)]
    [1'                 0] [db] = [-1'a                 ],

an (n + 1) x (n + 1) saddle-point system per problem, solved exactly through a Cholesky factor of
K + penalty W^-1 (one per problem; eliminating db). Newton's method then converges in a few iterations,
each of which costs O(n^3) per problem, instead of the primal solver's dozens of products with the data
(300 x 4 x 4096, 5 folds, AMD EPYC, 1 thread: see docs/benchmarks.md). It stops where the gradient of the
mean loss in the units' space, Z'v / n_train with v = r + penalty a, is below ``tol`` in Euclidean norm,
sqrt(v'Kv) / n_train, which bounds the max norm that the primal solver tests and needs no product with the
data per iteration. The kernels are the main cost: one n_train x n_train x p product per fold and step.
W is floored at 1e-12 (a direction from a larger curvature is still a descent direction; the line search
and the stopping test use the exact objective and gradient). This is the solver of a device; on the CPU, the
conjugate gradients on each fold's principal coordinates (:mod:`._logistic_coordinates`) are faster once there
are a few target sets.
"""

from __future__ import annotations

import numpy as np
import torch

from ._line_search import backtrack, not_converged
from ._linear import FoldMoments, TimeBlock, matmul

MIN_CURVATURE = 1e-12
SYSTEM_BYTES = 2**28  # Newton systems and factors of one group of target sets: 256 MiB


class _Kernels:
    """The training samples of every fold of a time block, in the samples' space: K_f (tb, F, N, N) padded
    to the largest training set N (``valid`` marks real rows), targets, and the map back to the units.
    """

    def __init__(self, data: TimeBlock, folds: list[np.ndarray], y: torch.Tensor, *, scale: bool) -> None:
        tb, device = data.x.shape[0], data.x.device
        self.data, self.moments = data, [data.fold(f, scale=scale) for f in range(len(folds))]
        self.rows = [torch.as_tensor(np.flatnonzero(train), device=device) for train in folds]
        big = max(len(rows) for rows in self.rows)
        self.kernel = torch.zeros(tb, len(folds), big, big, dtype=torch.float64, device=device)
        self.valid = torch.zeros(len(folds), big, 1, dtype=torch.float64, device=device)  # (F, N, 1)
        self.target = torch.zeros(len(folds), big, y.shape[1], dtype=torch.float64, device=device)  # (F, N, S)
        # one buffer for every fold's training samples, centred and scaled in place (fresh arrays per fold
        # cost as much as the kernels' products: 300 x 4 x 4096, 5 folds, 0.14 s)
        buffer = torch.empty(tb * big * data.x.shape[2], dtype=torch.float64, device=device)
        for f, (rows, fold) in enumerate(zip(self.rows, self.moments, strict=True)):
            z = buffer[: tb * len(rows) * data.x.shape[2]].view(tb, len(rows), -1)
            torch.index_select(data.x, 1, rows, out=z)
            z -= fold.mean[:, None, :]
            z *= fold.inv[:, None, :]
            self.kernel[:, f, : len(rows), : len(rows)] = matmul(z, z.mT)  # (tb, n_f, n_f)
            self.valid[f, : len(rows)] = 1.0
            self.target[f, : len(rows)] = y[rows].to(torch.float64)
        self.n_train = self.valid.sum(dim=(1, 2))[None, :, None]  # (1, F, 1)

    def to_units(self, v: torch.Tensor) -> torch.Tensor:
        """Z_f' v_f for v (tb, F, N, S): (tb, F, p, S), through one product with the (centred) data."""
        tb, n, p = self.data.x.shape
        f_count, s_count = v.shape[1], v.shape[3]
        full = torch.zeros(tb, n, f_count, s_count, dtype=v.dtype, device=v.device)
        for f, rows in enumerate(self.rows):
            full[:, rows, f] = v[:, f, : len(rows)]
        back = matmul(self.data.x.mT, full.reshape(tb, n, -1)).view(tb, p, f_count, s_count).permute(0, 2, 1, 3)
        mean = torch.stack([fold.mean for fold in self.moments], 1)[..., None]  # (tb, F, p, 1)
        inv = torch.stack([fold.inv for fold in self.moments], 1)[..., None]
        return (back - mean * v.sum(dim=2)[:, :, None]) * inv


def dual_newton(
    data: TimeBlock, folds: list[np.ndarray], y: torch.Tensor, free: torch.Tensor, *, penalty: float, scale: bool,
    tol: float, max_iter: int
) -> tuple[torch.Tensor, torch.Tensor, list[FoldMoments]]:  # fmt: skip
    """Weights w (tb, F, p, S) and intercepts b (tb, F, S) of the centred, scaled features, and the folds'
    moments. ``y`` (n, S) holds 0/1 targets; problems not ``free`` (F, S) stay at zero. The target sets are
    solved in groups whose Newton systems (one N x N matrix per problem, with its factor) fit SYSTEM_BYTES.
    """
    k = _Kernels(data, folds, y, scale=scale)
    tb, n_folds, big, _ = k.kernel.shape
    group = max(1, SYSTEM_BYTES // (3 * 8 * tb * n_folds * big * big))
    parts = [_solve(k, slice(s, s + group), free[:, s : s + group], penalty=penalty, tol=tol, max_iter=max_iter)
             for s in range(0, y.shape[1], group)]  # fmt: skip
    a, b = torch.cat([a for a, _ in parts], dim=3), torch.cat([b for _, b in parts], dim=2)
    return k.to_units(a), b, k.moments


def _solve(
    k: _Kernels, sets: slice, free: torch.Tensor, *, penalty: float, tol: float, max_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Newton's method in the samples' space for the target sets ``sets``: a (tb, F, N, S') and b (tb, F, S')."""
    target = k.target[..., sets]
    tb, n_folds, big, _ = k.kernel.shape
    a = torch.zeros(tb, n_folds, big, target.shape[-1], dtype=torch.float64, device=target.device)
    b = torch.zeros(tb, n_folds, target.shape[-1], dtype=torch.float64, device=target.device)
    ka = torch.zeros_like(a)  # K a

    def objective(ka: torch.Tensor, b: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        eta = ka + b[:, :, None]
        nll = (torch.nn.functional.softplus(eta) - target * eta) * k.valid
        return nll.sum(dim=2) + 0.5 * penalty * (a * ka).sum(dim=2)

    loss = objective(ka, b, a)
    for _ in range(max_iter):
        prob = torch.sigmoid(ka + b[:, :, None])
        residual = (prob - target) * k.valid
        v = residual + penalty * a  # the gradient in the units' space is Z'v, of squared norm v'Kv
        norm = torch.sqrt(torch.clamp((v * (k.kernel @ v)).sum(dim=2), min=0))
        size = torch.maximum(norm, residual.sum(dim=2).abs()) / k.n_train  # (tb, F, S')
        active = (size > tol) & free
        if not active.any():
            return a, b
        da, db = _newton_step(k, prob, v, a, penalty)
        kd = k.kernel @ da  # (tb, F, N, S')

        def trial(t: torch.Tensor) -> torch.Tensor:  # the objective at step sizes t (called at once, below)
            return objective(ka + t[:, :, None] * kd, b + t * db, a + t[:, :, None] * da)  # noqa: B023

        slope = (v * kd).sum(dim=2) + residual.sum(dim=2) * db  # gradient . step, in (a, b)
        step, loss = backtrack(trial, loss, slope, active)
        a = a + step[:, :, None] * da
        ka = ka + step[:, :, None] * kd
        b = b + step * db
    raise not_converged(active, max_iter)


def _newton_step(
    k: _Kernels, prob: torch.Tensor, v: torch.Tensor, a: torch.Tensor, penalty: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact Newton step (da (tb, F, N, S), db (tb, F, S)) of every problem, by eliminating db from the
    saddle-point system above: da = M^-1 (c - 1 db), 1'da = -1'a, M = K + penalty W^-1, c = -W^-1 v.
    """
    inverse_weight = 1 / torch.clamp(prob * (1 - prob), min=MIN_CURVATURE)  # (tb, F, N, S)
    # padded rows: M's row is the identity's and the right-hand sides are zero, so da is zero there
    diagonal = torch.where(k.valid > 0, penalty * inverse_weight, 1.0).permute(0, 1, 3, 2)  # (tb, F, S, N)
    system = k.kernel[:, :, None].expand(-1, -1, diagonal.shape[2], -1, -1).clone()  # (tb, F, S, N, N)
    torch.diagonal(system, dim1=-2, dim2=-1).add_(diagonal)
    factor, _ = torch.linalg.cholesky_ex(system)  # positive definite: K is, and the diagonal is positive
    c = (-v * inverse_weight * k.valid).permute(0, 1, 3, 2)  # (tb, F, S, N)
    ones = k.valid[None, :, :, 0][:, :, None].expand_as(c)
    solved = torch.cholesky_solve(torch.stack([c, ones], dim=-1), factor)  # (tb, F, S, N, 2)
    m_c, m_ones = solved[..., 0], solved[..., 1]
    db = ((ones * m_c).sum(dim=-1) + a.sum(dim=2)) / (ones * m_ones).sum(dim=-1)  # (tb, F, S)
    da = (m_c - m_ones * db[..., None]).permute(0, 1, 3, 2)
    return da, db

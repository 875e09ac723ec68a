"""Ridge regression for every (fold, time step) at once, from shared Gram matrices.

For one fold and training time step t, sklearn's ``Ridge(alpha)`` (and ``RidgeClassifier``, which
regresses on {-1, 1} codes of the classes) with an intercept solves

    (Xc' Xc + alpha I) W = Xc' Yc,   Xc = (X - mean) / scale,  Yc = Y - mean(Y),

(scale = 1, or the training standard deviation for ``make_pipeline(StandardScaler(), ...)``).
Everything in it comes from the centred Gram matrix and the cross products X'Y of the training
samples, which :class:`._linear.TimeBlock` derives for every fold from one Gram matrix of all
samples per time step plus one product of each test fold.

Labels enter only through X'Y: permuted labels for a permutation test are more columns of Y, all
solved with the same factorisation.

With more features than training samples (convolutional layers: thousands of units, hundreds of
stimuli) the same solution comes from the dual (kernel) form, W = Xc' (Xc Xc' + alpha I)^-1 Yc,
which solves n_train x n_train systems instead of p x p ones (4096 units, 240 training samples:
about 40x faster).
"""

from __future__ import annotations

import numpy as np
import torch

from ._linear import (
    LinearFit,
    TimeBlock,
    as_device,
    block_budget,
    inverse_std,
    matmul,
    solve,
    time_blocks,
    time_major,
    to_original_units,
    work_bytes,
)
from .parallel import library_threads, task_pool


def fit_ridge(
    x: np.ndarray,
    y: np.ndarray,
    folds: list[np.ndarray],
    *,
    alpha: float,
    scale: bool,
    device: str | torch.device | None = None,
) -> LinearFit:
    """Fit ridge for every fold's training set at every time step.

    Parameters
    ----------
    x : (n_samples, n_times, n_features) float64
    y : (n_samples, n_outputs) float64 targets (class codes or values), shared by all time steps
    folds : one boolean mask per fold, True for the *training* samples
    alpha : ridge penalty; scale : standardise features by the training standard deviation
    device : torch device of the arithmetic
    """
    device = as_device(device)
    n_times, p = x.shape[1:]
    if p > max(int(train.sum()) for train in folds):
        return _fit_dual(x, y, folds, alpha=alpha, scale=scale, device=device)
    n_out = y.shape[1]
    coef = np.empty((len(folds), n_times, p, n_out))
    intercept = np.empty((len(folds), n_times, n_out))
    y_all = torch.as_tensor(y, dtype=torch.float64, device=device)
    # time steps are independent: on the CPU, blocks of them on the libraries' threads, one thread each
    cpu = device.type == "cpu"
    # and the block's copy of x, a fold's test rows, X'Y of every sample and of a fold's training samples
    per_step = work_bytes(p, len(folds)) + 16 * x.shape[0] * p + 16 * p * n_out
    parts = min(library_threads(), n_times) if cpu else 1
    blocks = list(time_blocks(n_times, per_step, budget=block_budget(device), parts=parts))
    with task_pool(len(blocks) if cpu else 1) as pmap:
        list(pmap(lambda block: _fit_block(x, y_all, folds, block, coef, intercept, alpha=alpha, scale=scale,
                                           device=device), blocks))  # fmt: skip
    return LinearFit(coef, intercept)


def _fit_block(x: np.ndarray, y_all: torch.Tensor, folds: list[np.ndarray], block: slice, coef: np.ndarray,
               intercept: np.ndarray, *, alpha: float, scale: bool, device: torch.device) -> None:  # fmt: skip
    """Every fold's ridge at the time steps of ``block``, into ``coef`` and ``intercept`` (disjoint slices)."""
    data = TimeBlock(x, block, device, folds)
    cross_all = matmul(data.x.mT, y_all)  # (tb, p, n_out)
    for f, train in enumerate(folds):
        fold = data.fold(f, scale=scale)
        y_mean = y_all[torch.as_tensor(train, device=device)].mean(dim=0)
        # X_train' (Y_train - mean) = X'Y - X_test'Y_test - n m mean(Y)' (X centred over all samples)
        cross = cross_all - matmul(fold.test.mT, y_all[torch.as_tensor(~train, device=device)])
        cross.baddbmm_(fold.mean[:, :, None], y_mean.expand(len(cross), 1, -1), alpha=-float(fold.n_train))
        cross *= fold.inv[:, :, None]
        gram = fold.gram
        torch.diagonal(gram, dim1=1, dim2=2).add_(alpha)
        # one batched LAPACK call: for decoding sizes this beats a Cholesky factorisation
        # followed by per-matrix triangular solves
        w = solve(gram, cross)
        coef[f, block], intercept[f, block] = to_original_units(w, y_mean.expand(len(w), -1), fold, data.centre)


def _fit_dual(x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], *, alpha: float, scale: bool,
              device: torch.device) -> LinearFit:  # fmt: skip
    """:func:`fit_ridge` in the dual form, for p > n_train: per fold and time step, with the
    training samples centred (and scaled) as Z, W = Z' (Z Z' + alpha I)^-1 (Y - mean Y).
    """
    n, n_times, p = x.shape
    n_out = y.shape[1]
    coef = np.empty((len(folds), n_times, p, n_out))
    intercept = np.empty((len(folds), n_times, n_out))
    y_all = torch.as_tensor(y, dtype=torch.float64, device=device)
    for block in time_blocks(n_times, 8 * n * (p + n) * 2):
        xb = time_major(x, block, device)
        for f, train in enumerate(folds):
            rows = torch.as_tensor(train, device=device)
            z = xb[:, rows]  # (tb, n_train, p), a copy: centred and scaled in place (no more copies of it)
            mean = z.mean(dim=1)
            z -= mean[:, None, :]
            inv = torch.ones_like(mean)
            if scale:  # StandardScaler: population std of the training samples, 1 where constant
                inv = inverse_std((z * z).mean(dim=1), mean, z.shape[1])  # ((z * z): 3x faster than vector_norm)
                z *= inv[:, None, :]
            y_mean = y_all[rows].mean(dim=0)
            kernel = matmul(z, z.mT)
            torch.diagonal(kernel, dim1=1, dim2=2).add_(alpha)
            dual = solve(kernel, (y_all[rows] - y_mean).expand(len(z), -1, -1))
            w = matmul(z.mT, dual) * inv[:, :, None]  # (tb, p, n_out) in the raw features' units
            coef[f, block] = w.cpu().numpy()
            intercept[f, block] = (y_mean - torch.einsum("tp,tpk->tk", mean, w)).cpu().numpy()
    return LinearFit(coef, intercept)

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

from collections.abc import Callable

import numpy as np
import torch

from ._linear import (
    BUDGET,
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
    # a step's work arrays and the block's copy of x, a fold's test rows, X'Y of every sample and of a fold's training
    # samples
    per_step = work_bytes(p, len(folds)) + 16 * x.shape[0] * p + 16 * p * n_out

    def fit(block: slice) -> None:
        _fit_block(x, y_all, folds, block, coef, intercept, alpha=alpha, scale=scale, device=device)

    _on_blocks_of_steps(fit, n_times, per_step, device, budget=block_budget(device))
    return LinearFit(coef, intercept)


def _on_blocks_of_steps(fit: Callable[[slice], None], n_times: int, per_step: int, device: torch.device, *,
                        budget: int) -> None:  # fmt: skip
    """``fit(block)`` for blocks of time steps whose work arrays take ``per_step`` bytes a step within ``budget``:
    the steps are independent, so on the CPU the blocks run on the libraries' threads, one thread each (on a
    device, one block after another).
    """
    cpu = device.type == "cpu"
    parts = min(library_threads(), n_times) if cpu else 1
    blocks = list(time_blocks(n_times, per_step, budget=budget, parts=parts))
    with task_pool(len(blocks) if cpu else 1) as pmap:
        list(pmap(fit, blocks))


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


def dual_training(
    xb: torch.Tensor, rows: torch.Tensor, work: FoldBuffers, *, scale: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z, mean, inv) of a fold's training samples ``rows`` of a block ``xb`` (tb, n, p): z (tb, n_train, p) the
    samples centred on their mean (tb, p) and, with ``scale``, multiplied by inv, 1 / their (population) standard
    deviation, 1 where constant (StandardScaler's; ones without ``scale``), in ``work``'s kept array.
    """
    z = torch.index_select(xb, 1, rows, out=work.view("z", len(rows)))
    mean = z.mean(dim=1)
    z -= mean[:, None, :]
    inv = torch.ones_like(mean)
    if scale:
        squares = torch.mul(z, z, out=work.view("squares", len(rows)))  # (3x faster than vector_norm)
        inv = inverse_std(squares.mean(dim=1), mean, z.shape[1])
        z *= inv[:, None, :]
    return z, mean, inv


class FoldBuffers:
    """A block's (tb, rows, p) work arrays for every fold's training samples, allocated once for the block (for the
    fold with the most rows) and viewed at each fold's size: fresh arrays of a block's size at every fold were
    mapped and page-faulted anew (a gather of 400 of 500 samples x 4 steps x 4096 units, one thread, AMD EPYC Zen 3:
    37 ms fresh, 5 ms into the kept array; the squares of the samples 40 -> 9 ms).
    """

    def __init__(self, steps: int, rows: int, p: int, device: torch.device, *, squares: bool) -> None:
        self.steps, self.p = steps, p
        names = ("z", "squares") if squares else ("z",)
        self.flat = {name: torch.empty(steps * rows * p, dtype=torch.float64, device=device) for name in names}

    def view(self, name: str, rows: int) -> torch.Tensor:
        """A contiguous (steps, rows, p) view of the kept array ``name``."""
        return self.flat[name][: self.steps * rows * self.p].view(self.steps, rows, self.p)


def _fit_dual(x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], *, alpha: float, scale: bool,
              device: torch.device) -> LinearFit:  # fmt: skip
    """:func:`fit_ridge` in the dual form, for p > n_train: per fold and time step, with the
    training samples centred (and scaled) as Z, W = Z' (Z Z' + alpha I)^-1 (Y - mean Y). As the primal form, on
    the CPU in blocks of time steps on the libraries' threads, one thread each (the whole layer in one block had
    a wide layer's decoding on one BLAS thread under ``decode``'s limit: 500 x 4 x 4096, AMD EPYC Zen 3, 1.2x
    faster on two threads than on one).
    """
    n, n_times, p = x.shape
    n_out = y.shape[1]
    coef = np.empty((len(folds), n_times, p, n_out))
    intercept = np.empty((len(folds), n_times, n_out))
    y_all = torch.as_tensor(y, dtype=torch.float64, device=device)
    training = [torch.as_tensor(np.flatnonzero(train), device=device) for train in folds]  # (the masks' rows)
    cpu = device.type == "cpu"

    def fit(block: slice) -> None:
        xb = time_major(x, block, device)
        work = FoldBuffers(len(xb), max(len(rows) for rows in training), p, device, squares=scale)
        for f, rows in enumerate(training):
            z, mean, inv = dual_training(xb, rows, work, scale=scale)
            y_mean = y_all[rows].mean(dim=0)
            kernel = matmul(z, z.mT)
            torch.diagonal(kernel, dim1=1, dim2=2).add_(alpha)
            dual = solve(kernel, (y_all[rows] - y_mean).expand(len(z), -1, -1))
            # (tb, p, n_out) in the raw features' units: on the CPU into the result (no array of its size beside
            # it: with many permuted target sets it holds a block's weights for every set)
            w = matmul(z.mT, dual, out=torch.from_numpy(coef[f, block]) if cpu else None)
            w *= inv[:, :, None]
            if not cpu:
                coef[f, block] = w.cpu().numpy()
            intercept[f, block] = (y_mean - torch.einsum("tp,tpk->tk", mean, w)).cpu().numpy()

    per_step = 8 * n * (p + n) * 3  # (x's copy, a fold's z and squares)
    _on_blocks_of_steps(fit, n_times, per_step, device, budget=BUDGET)
    return LinearFit(coef, intercept)

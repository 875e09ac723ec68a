"""Ridge regression for every (fold, time step) at once, from shared Gram matrices.

For one fold and training time step t, sklearn's ``Ridge(alpha)`` (and ``RidgeClassifier``, which
regresses on {-1, 1} codes of the classes) with an intercept solves

    (Xc' Xc + alpha I) W = Xc' Yc,   Xc = (X - mean) / scale,  Yc = Y - mean(Y),

(scale = 1, or the training standard deviation for ``make_pipeline(StandardScaler(), ...)``).
Everything in it comes from the Gram matrix X'X, the sums X'1 and the cross products X'Y of the
training samples, and those of a fold's training set are the whole data's minus the fold's test
samples'. So each time step needs one Gram matrix of all samples plus one of each test fold, and
the fits of all folds share them: half the products of fitting fold by fold. The data are centred
once per time step (over all samples) so that the fold means are small and the centring
``Xc' Xc = X'X - n mean mean'`` loses no digits.

Labels enter only through X'Y: permuted labels for a permutation test are more columns of Y, all
solved with the same factorisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RidgeFit:
    """Weights and intercepts of ridge fits in the original units of the features.

    coef : (n_folds, n_times, n_features, n_outputs); intercept : (n_folds, n_times, n_outputs).
    Predictions of fold f, trained at t, on features x: x @ coef[f, t] + intercept[f, t].
    """

    coef: np.ndarray
    intercept: np.ndarray


def fit_ridge(
    x: np.ndarray,
    y: np.ndarray,
    folds: list[np.ndarray],
    *,
    alpha: float,
    scale: bool,
    time_block: int | None = None,
) -> RidgeFit:
    """Fit ridge for every fold's training set at every time step.

    Parameters
    ----------
    x : (n_samples, n_times, n_features) float64
    y : (n_samples, n_outputs) float64 targets (class codes or values), shared by all time steps
    folds : one boolean mask per fold, True for the *training* samples
    alpha : ridge penalty; scale : standardise features by the training standard deviation
    time_block : time steps per block of work (bounds the memory of Gram matrices)
    """
    n_times, p = x.shape[1:]
    n_out = y.shape[1]
    if time_block is None:  # about 256 MB of Gram matrices per block
        time_block = max(1, min(n_times, (2**28) // (8 * p * p * (len(folds) + 1))))
    coef = np.empty((len(folds), n_times, p, n_out))
    intercept = np.empty((len(folds), n_times, n_out))
    for start in range(0, n_times, time_block):
        block = slice(start, min(n_times, start + time_block))
        xb = np.ascontiguousarray(x[:, block].transpose(1, 0, 2))  # (tb, n, p)
        centre = xb.mean(axis=1, keepdims=True)
        xb -= centre
        gram_all = np.matmul(xb.transpose(0, 2, 1), xb)  # (tb, p, p)
        sums_all = xb.sum(axis=1)  # (tb, p)
        cross_all = np.matmul(xb.transpose(0, 2, 1), y)  # (tb, p, n_out)
        product, buffer = np.empty_like(gram_all), np.empty_like(gram_all)
        for f, train in enumerate(folds):
            test = ~train
            n_train = int(train.sum())
            xt = xb[:, test]
            mean = (sums_all - xt.sum(axis=1)) / n_train  # (tb, p)
            y_mean = y[train].mean(axis=0)  # (n_out,)
            # X_tr'X_tr - n m m' = X'X - S'S with S = [X_test; sqrt(n) m]: one product, one new array
            root = np.sqrt(n_train)
            stacked = np.concatenate([xt, root * mean[:, None, :]], axis=1)
            # reused buffers: fresh (tb, p, p) arrays per fold cost more in page faults than in flops
            np.matmul(stacked.transpose(0, 2, 1), stacked, out=product)
            gram = np.subtract(gram_all, product, out=buffer)
            y_stacked = np.concatenate([y[test], root * y_mean[None, :]])
            cross = cross_all - np.matmul(stacked.transpose(0, 2, 1), y_stacked)
            diagonal = gram.reshape(len(gram), -1)[:, :: p + 1]  # a view
            if scale:  # StandardScaler: population std of the training samples, 1 where constant
                std = np.sqrt(np.clip(diagonal / n_train, 0, None))
                std[std == 0] = 1.0
                inv = 1 / std
                gram *= inv[:, :, None]
                gram *= inv[:, None, :]
                cross *= inv[:, :, None]
            else:
                inv = np.ones_like(mean)
            diagonal += alpha
            w = _solve_spd(gram, cross) * inv[:, :, None]  # in the centred original units
            coef[f, block] = w
            # prediction x @ w + b must equal ((x - centre - mean) / std) @ w_scaled + y_mean
            intercept[f, block] = y_mean - np.einsum("tp,tpo->to", centre[:, 0] + mean, w)
    return RidgeFit(coef, intercept)


def _solve_spd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve batched symmetric positive definite systems: one batched LAPACK call (for the sizes of
    decoding problems this beats a Cholesky factorisation followed by per-matrix triangular solves)."""
    return np.linalg.solve(a, b)

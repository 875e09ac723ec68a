"""Multinomial logistic regression of a layer wider than its training samples, in their principal coordinates.

With Z (n_train x p) a fold's centred (and scaled) training samples and Z = U S V' its thin SVD (rank r <=
n_train - 1), every w splits into V beta and a part orthogonal to Z's rows, which changes no logit and
only adds to the penalty: the optimum lies in V's span. There Z w = Q beta with Q = U S (n_train x r), the
samples' principal coordinates, and ||w|| = ||beta||, so the wide problem is the narrow one on Q, exactly:

    minimise  loss(Q beta + b) + penalty / 2 ||beta||^2,   then  w = V beta = Z' U S^-1 beta.

U and S come from the eigendecomposition of the n_train x n_train kernel Z Z' (one product per fold and
step; directions whose eigenvalue is below 1e-12 of the largest are dropped: their coordinates are 0 to
rounding). The narrow problem is :func:`._logistic.fit_logistic`'s own solver with r features instead of p
(its preconditioner Q'Q + penalty I is diagonal here): 300 x 4 x 4096, 10 classes, 5 folds, 2.3 s with
the conjugate gradients on p = 4096 unknowns per class and Woodbury's preconditioner, against scikit-learn's
lbfgs 1.1 s (AMD EPYC, 1 thread; the figures in docs/analysis/decoding.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._linear import LinearFit, time_blocks

DROP = 1e-12  # eigenvalues of Z Z' below this share of the largest: directions dropped


def fit_in_coordinates(x: np.ndarray, y: np.ndarray, folds: list[np.ndarray], *, scale: bool, narrow: Any,
                       n_out: int) -> LinearFit:  # fmt: skip
    """Every fold's fit (``narrow(q, y_train)``: the narrow solver on the coordinates q (n_train, T, r), one
    fold of all its samples, returning a LinearFit with n_out columns per target set) mapped back to the
    features' original units. Blocks of time steps keep each fold's copies within 256 MiB.
    """
    n, n_times, p = x.shape
    n_cols = y.shape[1] * n_out
    coef, intercept = np.empty((len(folds), n_times, p, n_cols)), np.empty((len(folds), n_times, n_cols))
    for block in time_blocks(n_times, 8 * n * (3 * p + n)):
        for f, train in enumerate(folds):
            z, mean, inv = _standardised(x[train, block], scale)  # (t, n_train, p)
            u, s = _coordinates(z)
            fit = narrow((u * s[:, None, :]).transpose(1, 0, 2), y[train])  # beta: fit.coef[0] (t, r, cols)
            w = np.matmul(z.transpose(0, 2, 1), np.matmul(u, _inverse(s)[:, :, None] * fit.coef[0]))
            coef[f, block] = w * inv[:, :, None]
            intercept[f, block] = fit.intercept[0] - np.einsum("tp,tpc->tc", mean * inv, w)
    return LinearFit(coef, intercept)


def _standardised(x: np.ndarray, scale: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Z (t, n, p) centred on the samples' means (and divided by their standard deviations, 1 where
    constant), the means (t, p), the inverse deviations (t, p), ones without ``scale``).
    """
    z = np.ascontiguousarray(x.transpose(1, 0, 2), dtype=np.float64)
    mean = z.mean(axis=1)
    z -= mean[:, None, :]
    inv = np.ones_like(mean)
    if scale:  # StandardScaler: population standard deviation
        std = np.sqrt((z * z).mean(axis=1))
        inv = np.where(std == 0, 1.0, 1 / np.where(std == 0, 1.0, std))
        z *= inv[:, None, :]
    return z, mean, inv


def _coordinates(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(U (t, n, r), S (t, r)) of Z's thin SVD from the kernel Z Z', largest first; r the largest rank among
    the steps, a step's dropped directions with S = 0.
    """
    values, vectors = np.linalg.eigh(np.matmul(z, z.transpose(0, 2, 1)))
    values, vectors = values[:, ::-1], vectors[:, :, ::-1]
    kept = values > DROP * values[:, :1]
    r = max(1, int(kept.sum(axis=1).max()))
    s = np.where(kept, np.sqrt(np.clip(values, 0, None)), 0.0)[:, :r]
    return vectors[:, :, :r] * (s > 0)[:, None, :], s


def _inverse(s: np.ndarray) -> np.ndarray:
    return np.divide(1.0, s, out=np.zeros_like(s), where=s > 0)

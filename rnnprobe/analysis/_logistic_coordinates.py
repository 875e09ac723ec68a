"""Multinomial logistic regression of a layer wider than its training samples, in their principal coordinates.

With Z (n_train x p) a fold's centred (and scaled) training samples and Z = U S V' its thin SVD (rank r <=
n_train - 1), every w splits into V beta and a part orthogonal to Z's rows, which changes no logit and
only adds to the penalty: the optimum lies in V's span. There Z w = Q beta with Q = U S (n_train x r), the
samples' principal coordinates, and ||w|| = ||beta||, so the wide problem is the narrow one on Q, exactly:

    minimise  loss(Q beta + b) + penalty / 2 ||beta||^2,   then  w = V beta = Z' U S^-1 beta.

U and S come from the eigendecomposition of each fold's n_train x n_train kernel Z Z' (the kernels of
:class:`._logistic_dual._Kernels`, which also maps U S^-1 beta back to the units; directions whose
eigenvalue is below 1e-12 of the largest are dropped: their coordinates are 0 to rounding). The narrow
problem is :func:`._logistic.fit_logistic`'s own solver with r features instead of p: 300 x 4 x 4096, 10
classes, 5 folds, 2.3 s with the conjugate gradients on p = 4096 unknowns per class and Woodbury's
preconditioner, against scikit-learn's lbfgs 1.1 s (AMD EPYC, 1 thread; the figures in
docs/analysis/decoding.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._linear import TimeBlock
from ._logistic_dual import _Kernels

DROP = 1e-12  # eigenvalues of Z Z' below this share of the largest: directions dropped


def fit_in_coordinates(data: TimeBlock, folds: list[np.ndarray], y: torch.Tensor, *, scale: bool,
                       narrow: Any) -> tuple[torch.Tensor, torch.Tensor, list]:  # fmt: skip
    """Every fold's decoders of one block of steps (on the CPU), in the decision columns: (w (tb, F, p, cols),
    b (tb, F, cols), the folds' moments), ``narrow(q, y_train)`` fitting the coordinates q (n_train, tb, r)
    as one fold of all its samples and returning a LinearFit with the decision columns.
    """
    kernels = _Kernels(data, folds, y, scale=scale)
    parts, intercepts = [], []
    for f, rows in enumerate(kernels.rows):
        n_f = len(rows)
        u, s = _coordinates(kernels.kernel[:, f, :n_f, :n_f].numpy())
        fit = narrow((u * s[:, None, :]).transpose(1, 0, 2), y[rows].numpy())  # beta: fit.coef[0] (tb, r, cols)
        parts.append(np.matmul(u, _inverse(s)[:, :, None] * fit.coef[0]))  # U S^-1 beta (tb, n_f, cols)
        intercepts.append(fit.intercept[0])
    tb, big = kernels.kernel.shape[0], kernels.kernel.shape[2]
    v = torch.zeros(tb, len(parts), big, parts[0].shape[2], dtype=torch.float64)
    for f, part in enumerate(parts):
        v[:, f, : part.shape[1]] = torch.from_numpy(part)
    return kernels.to_units(v), torch.from_numpy(np.stack(intercepts, 1)), kernels.moments


def _coordinates(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(U (t, n, r), S (t, r)) of Z's thin SVD from the kernel Z Z' (t, n, n), largest first; r the largest
    rank among the steps, a step's dropped directions with S = 0.
    """
    values, vectors = np.linalg.eigh(kernel)
    values, vectors = values[:, ::-1], vectors[:, :, ::-1]
    kept = values > DROP * values[:, :1]
    r = max(1, int(kept.sum(axis=1).max()))
    s = np.where(kept, np.sqrt(np.clip(values, 0, None)), 0.0)[:, :r]
    return vectors[:, :, :r] * (s > 0)[:, None, :], s


def _inverse(s: np.ndarray) -> np.ndarray:
    return np.divide(1.0, s, out=np.zeros_like(s), where=s > 0)

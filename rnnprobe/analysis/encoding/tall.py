"""Ridge and PLS encoding models of tall features, no more units than a fold's training stimuli (their primal
forms), from each fold's sums over blocks of stimuli: in memory, and for a dask-backed step larger than a block,
which is then never held whole.

Each fold's sums over its training stimuli (:mod:`.._stimulus_sums`: the count, the sums of the features and
targets, the features' Gram matrix and their products with the targets, centred on the first block's mean
for precision) give its centred Xc'Xc and Xc'Yc; a training set's sums are the other folds' where the folds
partition the stimuli (so a pass sums every fold's Gram matrix from n p^2 products, where fits of each
training set take (k - 1) n p^2), and the folds are summed in groups whose Gram matrices fit in
``blockwise.BLOCK_BYTES``, a pass each.

- **Ridge** (a penalty per target by efficient leave-one-out; :mod:`.ridge`): Xc'Xc = V S^2 V' gives each
  training stimulus's coordinates u_i = S^-1 V'x_ic and C = U'Yc = S^-1 V'(Xc'Yc). The leave-one-out errors of
  every penalty (leverage 1/n + sum_k u_ik^2 f_k, residual yc_i - u_i diag(f) C) are summed over a second pass
  of each group's training stimuli; the chosen penalties' coefficients are V diag(s / (s^2 + alpha)) C.
- **PLS** (``"pls"``, ``"pls_nipals"``): from Xc'Xc and Xc'Yc alone (:func:`.pls.fit_pls_covariance`; NIPALS
  also takes Yc'Yc, from the targets in memory), whose iterations then cost products with p x p and p x q
  matrices, not passes over the stimuli.

A last pass predicts each block's stimuli under the models of the folds that test them. A dask-backed step's
features averaged over conditions (``descriptor=``) are the conditions' means, each formed in the block that
reads its last stimulus (:class:`.._stimulus_sums.StepRows`). Equal to scikit-learn's RidgeCV and PLSRegression
(``tests/test_encoding.py``) and, read in blocks, to the in-memory fits to 1e-10 (``tests/test_cluster.py``).
Ridge with ``inner_cv`` chooses its penalties from the inner folds' sums (:func:`_inner_cv_models`). Every fold's
products with the targets and coefficients are held (p x q each), so many targets (voxels) whose sums would take
more than SUMS_BLOCKS blocks are fitted per fold from the training features instead (:func:`from_sums`; a
dask-backed step is then read whole).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from .._ridge_sums import FoldSums
from .._stimulus_sums import (
    ArrayRows,
    StepRows,
    fold_decisions,
    fold_sums,
    member_rows,
    models_from_sums,
    slot_groups,
)
from . import ridge as ridge_solver
from .pls import fit_pls_covariance, fit_pls_nipals_covariance

if TYPE_CHECKING:  # pragma: no cover
    from .fit import Estimator
    from .inputs import StepBlocks


SUMS_BLOCKS = 4  # blocks (BLOCK_BYTES) that the fits from sums may hold: Gram matrices, target products, coefficients


def from_sums(estimator: Estimator, p: int, q: int, n_folds: int) -> bool:
    """Whether tall features of ``p`` units, fitted to ``q`` targets, are fitted here: by ridge and PLS, where
    the sums and coefficients held, at most 8 p ((k + 1)(p + q) + k q) bytes for k folds (or inner folds), fit in
    SUMS_BLOCKS blocks. Many targets (voxels) are fitted per fold from the training features instead, one fold's
    coefficients at a time.
    """
    from .. import blockwise

    k = max(n_folds, estimator.inner_cv or 0)
    held = 8 * p * ((k + 1) * (p + q) + k * q)
    return estimator.name in ("ridge", "pls", "pls_nipals") and held <= SUMS_BLOCKS * blockwise.BLOCK_BYTES


def tall_predictions(x: np.ndarray | StepBlocks, y: np.ndarray, folds: list, estimator: Estimator) -> list[np.ndarray]:
    """Held-out predictions of each fold (its test stimuli, targets) of ridge or PLS on the features ``x`` (in
    memory, or a step read in blocks of stimuli): the sums' passes, ridge's leave-one-out pass, the predictions'.
    """
    from .inputs import StepBlocks

    rows = StepRows(x.x, x.layer, x.groups) if isinstance(x, StepBlocks) else ArrayRows(x)
    trains, tests = [np.asarray(train) for train, _ in folds], [np.asarray(test) for _, test in folds]
    centre = rows.first_mean()
    if estimator.inner_cv is not None:
        coef, intercept = _inner_cv_models(rows, trains, y, centre, estimator)
    else:
        if estimator.name == "ridge":
            fit = functools.partial(_ridge_models, rows=rows, trains=trains, y=y, centre=centre, estimator=estimator)
        else:
            fit = functools.partial(_pls_models, trains=trains, y=y, centre=centre, estimator=estimator)
        groups = slot_groups(trains, tests, rows.n, rows.p, cross=False)
        coef, intercept, _ = models_from_sums(rows, groups, centre, y, fit)
    return fold_decisions(rows, tests, coef, intercept)


def _centred(training: tuple[np.ndarray, ...]) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(n, mean of the centred features, mean of the targets, Xc'Xc, Xc'Yc) of a training set's sums."""
    n, x, y, gram, cross = training
    mean, y_mean = x / n, y / n
    return int(n), mean, y_mean, gram - n * np.outer(mean, mean), cross - n * np.outer(mean, y_mean)


def _pls_models(
    sums: FoldSums, folds: range, *, trains: list, y: np.ndarray, centre: np.ndarray, estimator: Estimator
) -> tuple[np.ndarray, np.ndarray]:
    """Each fold's PLS model (coef (folds, p, q), intercept (folds, q) of the raw features) from its sums."""
    coefs, intercepts = [], []
    for f, fold in enumerate(folds):
        n, mean, y_mean, gram, cross = _centred(sums.training(f))
        n_components = min(estimator.n_components, n, len(mean))
        if estimator.name == "pls":
            coef = fit_pls_covariance(gram, cross, n_components)
        else:
            yc = y[trains[fold]] - y_mean
            coef = fit_pls_nipals_covariance(gram, cross, yc.T @ yc, n_components)
        coefs.append(coef)
        intercepts.append(y_mean - (centre + mean) @ coef)
    return np.stack(coefs), np.stack(intercepts)


def _ridge_models(
    sums: FoldSums, folds: range, *, rows: StepRows, trains: list, y: np.ndarray, centre: np.ndarray,
    estimator: Estimator,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Each fold's ridge model (coef (folds, p, q), intercept (folds, q)), its penalties chosen by leave-one-out
    (:func:`_loo_errors`, a pass over the group's training rows); the grid-edge shares join ``estimator``'s.
    """
    paths = [_primal_path(sums.training(f)) for f in range(len(folds))]
    errors = _loo_errors(rows, centre, [trains[fold] for fold in folds], paths, y, estimator.alphas)
    models = [_ridge_model(path, np.argmin(error, axis=0), centre, estimator)
              for path, error in zip(paths, errors, strict=True)]  # fmt: skip
    return np.stack([coef for coef, _ in models]), np.stack([intercept for _, intercept in models])


def _ridge_model(path: tuple, chosen: np.ndarray, centre: np.ndarray, estimator: Estimator) -> tuple:
    """(coef, intercept) of the raw features under each target's chosen penalty (the first of the smallest errors,
    as :meth:`.ridge.RidgePath.best_alphas`), recorded in ``estimator``'s grid-edge shares.
    """
    v, s2, c, mean, y_mean, _ = path
    estimator.note_choice(chosen)
    coef = v @ ridge_solver.penalised(s2, c, estimator.alphas, chosen)
    return coef, y_mean - (centre + mean) @ coef


def _primal_path(training: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """(V, s^2, C = S^-1 V'Xc'Yc, mean of the centred features, mean of the targets, n) of a training set."""
    n, mean, y_mean, gram, cross = _centred(training)
    v, s2 = ridge_solver.factorise_gram(gram)
    return v, s2, (v.T @ cross) / np.sqrt(s2)[:, None], mean, y_mean, n


def _loo_errors(
    rows: StepRows, centre: np.ndarray, trains: list, paths: list, y: np.ndarray, alphas: np.ndarray
) -> list[np.ndarray]:
    """Each fold's mean squared leave-one-out errors (alphas, targets), summed over its training rows block by
    block: :meth:`.ridge.RidgePath.loo_errors` of the block's coordinates u_i = S^-1 V'x_ic with the fold's C.
    """
    errors = [np.zeros((alphas.size, y.shape[1])) for _ in paths]
    for f, where, values in member_rows(rows, trains, centre):
        v, s2, c, mean, y_mean, n = paths[f]
        u = ((values - mean) @ v) / np.sqrt(s2)
        path = ridge_solver.RidgePath(u, s2, c, y_mean, y[trains[f][where]] - y_mean, n)
        path.add_loo_errors(alphas, errors[f])
    return errors


def _inner_cv_models(
    rows: StepRows, trains: list, y: np.ndarray, centre: np.ndarray, estimator: Estimator
) -> tuple[np.ndarray, np.ndarray]:
    """Each fold's ridge model (coef (folds, p, q), intercept (folds, q)), its penalties chosen by k-fold
    cross-validation within its training stimuli (``inner_cv``; the splits of :func:`.fit._inner_alphas`). The inner
    test sets partition a training set, so their sums give the inner training sets' (a training set's sums, which
    are theirs together, minus each one's) and the training set's: a pass sums the inner test sets of a group of
    folds whose Gram matrices fit in BLOCK_BYTES, a second sums each penalty's squared errors on them.
    """
    from sklearn.model_selection import KFold

    from .. import blockwise

    k = estimator.inner_cv
    per_pass = max(1, blockwise.BLOCK_BYTES // (8 * rows.p * (rows.p + y.shape[1]) * k))
    models = []
    for start in range(0, len(trains), per_pass):
        group = trains[start : start + per_pass]
        splits = [KFold(k, shuffle=True, random_state=estimator.seed).split(train) for train in group]
        helds = [train[held] for train, split in zip(group, splits, strict=True) for _, held in split]
        sums = fold_sums(rows, (FoldSums, helds), centre, y)
        outer = [sums.select(slice(i * k, (i + 1) * k)) for i in range(len(group))]
        errors = _held_errors(rows, centre, helds, [_primal_path(o.training(g)) for o in outer for g in range(k)], y,
                              estimator.alphas)  # fmt: skip
        for i, inner in enumerate(outer):  # the penalties of the smallest errors summed over the inner folds
            chosen = np.argmin(sum(errors[i * k : (i + 1) * k]), axis=0)
            models.append(_ridge_model(_primal_path(inner.training(None)), chosen, centre, estimator))
    return np.stack([coef for coef, _ in models]), np.stack([intercept for _, intercept in models])


def _held_errors(
    rows: StepRows, centre: np.ndarray, helds: list, paths: list, y: np.ndarray, alphas: np.ndarray
) -> list[np.ndarray]:
    """Each inner fit's squared errors (alphas, targets) on its test rows under each penalty, block by block."""
    errors = [np.zeros((alphas.size, y.shape[1])) for _ in paths]
    for j, where, values in member_rows(rows, helds, centre):
        v, s2, c, mean, y_mean, _ = paths[j]
        z, observed = (values - mean) @ v, y[helds[j][where]]
        for i in range(alphas.size):
            residual = observed - (z @ ridge_solver.penalised(s2, c, alphas, np.full(y.shape[1], i)) + y_mean)
            errors[j][i] += np.einsum("ij,ij->j", residual, residual)
    return errors

"""Scores of batched predictions: the sklearn scorers the fast decoding path computes itself.

Each scorer takes the test targets and a stack of predictions for them (any leading axes: train
time, test time, permutation) and returns the scores with the leading axes, equal to the sklearn
metric of each prediction (tested).
"""

from __future__ import annotations

import numpy as np

from ._constant import rounding_only

CLASSIFICATION = ("accuracy", "balanced_accuracy", "roc_auc")
REGRESSION = ("r2", "neg_mean_squared_error", "neg_mean_absolute_error")


def predicted_classes(decision: np.ndarray) -> np.ndarray:
    """Class index from decision values (..., n, 1) of a binary problem (> 0: class 1) or
    (..., n, n_classes) (argmax), as sklearn's linear classifiers.
    """
    if decision.shape[-1] == 1:
        return (decision[..., 0] > 0).astype(np.int64)
    return decision.argmax(axis=-1)


def score(name: str, y: np.ndarray, decision: np.ndarray, n_classes: int | None) -> np.ndarray:
    """``name`` of every prediction in ``decision`` (..., n, k) against targets ``y`` (n,) or
    (..., n) (class indices for classification, values for regression).
    """
    if name in REGRESSION:
        pred = decision[..., 0]
        if name == "neg_mean_squared_error":
            return -((pred - y) ** 2).mean(axis=-1)
        if name == "neg_mean_absolute_error":
            return -np.abs(pred - y).mean(axis=-1)
        return _r2(y, pred)
    if name == "roc_auc":
        return _auc(y, decision[..., 0] if decision.shape[-1] == 1 else decision[..., 1] - decision[..., 0])
    pred = predicted_classes(decision)
    correct = pred == y
    if name == "accuracy":
        return correct.mean(axis=-1)
    # balanced accuracy: mean recall over the classes present in y (sklearn's default), for each
    # prediction's own targets (a class absent from them is left out: NaN in the mean over classes)
    y_b = np.broadcast_to(y, correct.shape)
    recalls = []
    for c in range(n_classes or int(y.max()) + 1):
        members = y_b == c
        count = members.sum(axis=-1)
        if np.all(count == 0):
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls.append((correct & members).sum(axis=-1) / np.where(count == 0, np.nan, count))
    return np.nanmean(recalls, axis=0)


def score_sets(name: str, decision: np.ndarray, y: np.ndarray, n_classes: int | None) -> np.ndarray:
    """:func:`score` of several target sets' decision values, ``decision`` (..., n, sets x k), each set's k columns
    together, against their targets ``y`` (n, sets): (sets, ...).
    """
    n, n_sets = y.shape
    by_set = np.moveaxis(decision.reshape(*decision.shape[:-1], n_sets, -1), -2, 0)  # (sets, ..., n, k)
    return score(name, y.T.reshape(n_sets, *[1] * (by_set.ndim - 3), n), by_set, n_classes)


def _r2(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """R^2 of predictions (..., n) of targets (n,) or (..., n), as scikit-learn's ``r2_score``: where the targets do
    not vary (also but for rounding: 0.1 on every stimulus keeps 1e-33 of spread), 1 for exact predictions and 0
    otherwise, not -inf (or -1e30 from rounding).
    """
    mean = y.mean(axis=-1, keepdims=True)
    total = ((y - mean) ** 2).sum(axis=-1)
    residual = ((y - pred) ** 2).sum(axis=-1)
    flat = rounding_only(total / y.shape[-1], mean[..., 0], y.shape[-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(flat, np.where(residual == 0, 1.0, 0.0), 1 - residual / total)


def _auc(y: np.ndarray, values: np.ndarray) -> np.ndarray:
    """ROC AUC of binary labels y (0/1) from decision values (Mann-Whitney U with tied ranks)."""
    from scipy.stats import rankdata

    y_b = np.broadcast_to(y, values.shape).astype(bool)
    ranks = rankdata(values, axis=-1)
    n_pos = y_b.sum(axis=-1)
    n_neg = y_b.shape[-1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * y_b).sum(axis=-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def permutation_p_values(observed: np.ndarray, null: np.ndarray, *, alternative: str = "greater") -> np.ndarray:
    """Permutation (or control) p-values of ``observed`` (...) against ``null`` (n, ...): one-sided,
    (1 + #{null >= observed}) / (1 + n), or with ``alternative="two-sided"`` twice the smaller tail,
    min(1, 2 min((1 + #{null <= observed}) / (1 + n), (1 + #{null >= observed}) / (1 + n))).

    A null value equal to the observed but for rounding (within 1e-12 of the larger magnitude at that point)
    counts as reaching it: relative, so that a score at 1e-14 (a mean squared error of a target at 1e-7) is
    not reached by every null value (p = 1), nor one at 1e12 by none. NaN where the observed value is NaN (no
    p-value for an undefined statistic) and where no null value is defined; null values that are NaN are left
    out of the count and of n.

    Examples
    --------
    >>> import numpy as np
    >>> permutation_p_values(np.array([2.0, 0.0]), np.array([[1.0, 1.0], [0.5, -1.0], [3.0, 0.0]]))
    array([0.5 , 0.75])
    >>> permutation_p_values(np.array([2.0, 0.0]), np.array([[1.0, 1.0], [0.5, -1.0], [3.0, 0.0]]),
    ...                      alternative="two-sided")
    array([1., 1.])
    """
    defined = ~np.isnan(null)
    n = defined.sum(axis=0)
    scale = np.maximum(np.abs(observed), np.abs(np.where(defined, null, 0.0)).max(axis=0, initial=0.0))
    tolerance = 1e-12 * scale
    p = (1 + (defined & (null >= observed - tolerance)).sum(axis=0)) / (1 + n)
    if alternative == "two-sided":
        low = (1 + (defined & (null <= observed + tolerance)).sum(axis=0)) / (1 + n)
        p = np.minimum(1.0, 2 * np.minimum(low, p))
    return np.where(np.isnan(observed) | (n == 0), np.nan, p)


def peak_position(values: np.ndarray) -> tuple[int, ...] | None:
    """The index (one int per axis) of the largest defined value of ``values``; None where every value is NaN
    (no peak, rather than numpy's All-NaN ValueError). The first of equal values, as ``np.nanargmax``.

    Examples
    --------
    >>> import numpy as np
    >>> peak_position(np.array([[0.1, np.nan], [0.7, 0.2]])), peak_position(np.array([np.nan, np.nan]))
    ((1, 0), None)
    """
    if np.isnan(values).all():
        return None
    return tuple(int(i) for i in np.unravel_index(int(np.nanargmax(values)), np.shape(values)))


def nan_argmax(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """The index of the largest defined value along ``axis``: NaN is no maximum, and where every value is NaN the
    index is 0 (check the value taken there). ``np.nanargmax`` raises on an all-NaN slice instead.

    Examples
    --------
    >>> import numpy as np
    >>> nan_argmax(np.array([[0.1, np.nan], [0.7, np.nan]]))
    array([1, 0])
    """
    values = np.asarray(values, dtype=float)
    return np.argmax(np.where(np.isnan(values), -np.inf, values), axis=axis)


def nan_median(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """``np.nanmedian`` along ``axis``, NaN where every value is NaN without numpy's all-NaN warning (a target or
    a layer without a defined score is reported as such, not warned about).

    Examples
    --------
    >>> import numpy as np
    >>> nan_median(np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]]))
    array([ 2., nan])
    """
    values = np.asarray(values, dtype=float)
    empty = np.isnan(values).all(axis=axis)
    if not empty.any():
        return np.nanmedian(values, axis=axis)
    filled = np.where(np.expand_dims(empty, axis), 0.0, values)
    return np.where(empty, np.nan, np.nanmedian(filled, axis=axis))

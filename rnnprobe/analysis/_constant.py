"""When a feature is constant: its variance is no more than the rounding of its values leaves.

A value that no float64 mean of it equals (0.1, 1/3) leaves a variance of about (eps mean)^2 once centred on
its computed mean, not 0: divided by its root, a constant unit would enter an analysis as a unit of spread 1
(a decoder's weight, a perfect autocorrelation, a correlation of rounding). scikit-learn's rule for its
``StandardScaler`` (``var <= n eps var + (n eps mean)^2``) tells the two apart; one form serves numpy, torch
and dask arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

EPS = float(np.finfo(np.float64).eps)


def rounding_only(variance: Any, mean: Any, n: int, *, shift: Any = 0.0, cancelled: Any = 0.0, eps: float = EPS) -> Any:
    """Where ``variance`` (of ``n`` values whose mean is ``mean``, in their original units) is no more than
    rounding leaves: scikit-learn's rule ``var <= n eps var + (n eps mean)^2`` for a variance of values centred
    on their mean; a variance from sums of squares about another point, less ``n shift^2`` (``shift``: the mean
    less that point), keeps rounding of about ``n eps shift^2`` more, which the rule takes in. A variance whose
    sums of squares are the difference of two larger sums (a training set's: every sample's less a test set's)
    keeps their rounding, about ``eps`` times both: ``cancelled`` is both sums over ``n`` (a unit at 0 on every
    training sample but not on some test samples has a variance of 0 that the difference leaves at about
    1e-16 times the test samples' squares, not 0). ``eps``: the arithmetic's (float32's on a device that computed
    in it).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.full(15, 0.1)
    >>> variance = ((x - x.mean()) ** 2).mean()
    >>> bool(variance > 0), bool(rounding_only(variance, x.mean(), 15))
    (True, True)
    """
    return variance <= n * eps * (variance + shift * shift + cancelled) + (n * eps * mean) ** 2


def centred(x: np.ndarray, axis: int, *, constant: float = np.nan) -> np.ndarray:
    """``x`` less its mean along ``axis``, ``constant`` along it where constant (:func:`rounding_only`): NaN
    (the default), so that no correlation is computed from rounding, or 0, so that what does not vary adds
    nothing, as if exactly constant.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.stack([np.full(15, 0.1), np.arange(15.0)], axis=1)
    >>> bool(np.isnan(centred(x, 0)[:, 0]).all()), float(centred(x, 0)[0, 1])
    (True, -7.0)
    """
    mean = x.mean(axis=axis, keepdims=True)
    x = x - mean
    return np.where(rounding_only((x * x).mean(axis=axis, keepdims=True), mean, x.shape[axis]), constant, x)

"""Crossnobis kernels: the folds (runs) of a design and the sums of products of their condition means.

For the conditions' summed states S_k (condition, time, unit) in each fold k, the crossnobis distance of
conditions i and j is the mean over folds of (a_i - a_j)' P (b_i - b_j) / n_units, with b the test means
S_k / c_k of fold k and a the training means of the other folds pooled (as rsatoolbox). Everything it
needs is the kernel K = sum_k A_k P B_k' (time, condition, condition): the distances are
K_ii + K_jj - K_ij - K_ji over folds and units. The kernels are written once for numpy and torch arrays
(the ``backend``'s ``asarray`` and ``transpose``) and serve the in-memory path and the blockwise one
(:mod:`.blockwise`, whose sums come from a dask graph or from blocks of steps read as tasks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._validation import check_grouping
from ...errors import ArgumentError, UnknownNameError, format_choices
from ...recording import Recording


@dataclass(frozen=True)
class FoldDesign:
    """Each stimulus's group ``fold * n_conditions + condition``, the fold and condition values, and the
    presentations of every (fold, condition), checked: at least 2 folds, every condition in every fold and
    in the other folds.
    """

    groups: np.ndarray
    folds: np.ndarray
    conditions: np.ndarray
    counts: np.ndarray  # (fold, condition)

    @property
    def n_groups(self) -> int:
        """The number of (fold, condition) groups."""
        return self.counts.size

    def kernels(self, sums: Any, precision: Any, backend: Any) -> Any:
        """K (time, condition, condition) from the groups' sums (group, time, unit) of a block of steps."""
        sums = sums.reshape(*self.counts.shape, *sums.shape[1:])
        balanced = precision is None and bool((self.counts == self.counts[:, :1]).all())
        kernels = _balanced_kernels if balanced else _fold_kernels
        return kernels(sums, self.counts, sums.sum(axis=0), self.counts.sum(axis=0), precision, backend)


def fold_design(recording: Recording, stimuli: np.ndarray, descriptor: str, cv_descriptor: str | None) -> FoldDesign:
    """The folds of the selected ``stimuli``: the values of ``cv_descriptor``, or by default the k-th presentation
    of each condition (a value of ``descriptor``) in fold k, as rsatoolbox.
    """
    conditions = check_grouping(np.asarray(recording.column(descriptor))[stimuli], name=f"descriptor {descriptor!r}")
    if cv_descriptor is None:  # k-th presentation of each condition = fold k
        folds_of = np.zeros(len(stimuli), dtype=np.int64)
        for value in np.unique(conditions):
            members = np.flatnonzero(conditions == value)
            folds_of[members] = np.arange(members.size)
    else:
        if cv_descriptor not in recording.columns:
            raise UnknownNameError(
                f"cv_descriptor: {cv_descriptor!r} is not a metadata column. Available: "
                f"{format_choices(recording.columns)}."
            )
        folds_of = check_grouping(np.asarray(recording.column(cv_descriptor))[stimuli], name="cv_descriptor")
    folds = np.unique(folds_of)
    if folds.size < 2:
        raise ArgumentError(
            f"cv_descriptor: crossnobis needs at least 2 folds (runs), found {folds.size}. Give each condition "
            f"several presentations in different folds."
        )
    all_conditions, condition_of = np.unique(conditions, return_inverse=True)
    groups = np.searchsorted(folds, folds_of) * all_conditions.size + condition_of
    counts = np.bincount(groups, minlength=folds.size * all_conditions.size).reshape(folds.size, -1)
    total = counts.sum(axis=0)
    for k, fold in enumerate(folds):
        for side in (total - counts[k], counts[k]):  # training, then test
            if not side.all():
                missing = all_conditions[side == 0][:5].tolist()
                raise ArgumentError(
                    f"cv_descriptor: fold {np.asarray(fold).item()!r} leaves conditions {missing} without data on one "
                    f"side of the split. Every condition needs presentations in every fold."
                )
    return FoldDesign(groups, folds, all_conditions, counts)


def _fold_kernels(sums: Any, counts: np.ndarray, total_sums: Any, total_counts: np.ndarray, precision: Any,
                  backend: Any) -> Any:  # fmt: skip
    """Sum over folds k of (training means) P (test means)': (time, condition, condition). ``sums``: (fold,
    condition, time, unit) of a block of steps; training means pool the other folds' observations.
    """
    total = None
    for k in range(sums.shape[0]):
        train = (total_sums - sums[k]) / (total_counts - counts[k])[:, None, None]
        test = sums[k] / counts[k][:, None, None]
        train, test = backend.asarray(train.transpose(1, 0, 2)), backend.asarray(test.transpose(1, 0, 2))
        if precision is not None:
            train = train @ precision
        kernel = train @ backend.transpose(test)
        total = kernel if total is None else total + kernel
    return total


def _balanced_kernels(sums: Any, counts: np.ndarray, total_sums: Any, total_counts: np.ndarray, precision: Any,
                      backend: Any) -> Any:  # fmt: skip
    """:func:`_fold_kernels` where each fold presents every condition equally often (c_k times) and the
    precision is the identity. The means are then sums scaled by one number per fold, so with
    w_k = 1 / ((N - c_k) c_k) and T the sums over all folds:
    sum_k w_k (T - S_k) S_k' = T (sum_k w_k S_k)' - sum_k w_k S_k S_k', with no per-fold copies of the data.
    """
    weights = 1.0 / ((total_counts[0] - counts[:, 0]) * counts[:, 0])
    weighted = weights[0] * sums[0]
    for k in range(1, sums.shape[0]):
        weighted += weights[k] * sums[k]
    total = backend.asarray(total_sums.transpose(1, 0, 2))
    kernel = total @ backend.transpose(backend.asarray(weighted.transpose(1, 0, 2)))
    for k in range(sums.shape[0]):
        fold = backend.asarray(sums[k].transpose(1, 0, 2))
        kernel -= float(weights[k]) * (fold @ backend.transpose(fold))  # (a Python float: also for device tensors)
    return kernel

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
from ..parallel import one_blas_thread
from .work import Work


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

    def whitening_saves(self, n_steps: int, n_units: int) -> float:
        """The multiplications :class:`Whitened` sums save over the products with a precision (R general products
        of the training and test means a step): balanced folds of one size take R + 1 symmetric products (2 for
        two folds), balanced folds of several sizes one general product and R symmetric ones, others R general
        products (no saving).
        """
        folds, n = self.counts.shape
        if not self.balanced(None):
            return 0.0
        weights = _fold_weights(self.counts)
        after = (2 if folds == 2 else folds + 1) / 2 if (weights == weights[0]).all() else 1 + folds / 2
        return max(folds - after, 0.0) * n * n * n_units * n_steps

    def balanced(self, precision: Any) -> bool:
        """Whether each fold presents every condition equally often, with no precision (the identity): the
        kernels then come from symmetric products (:func:`_balanced_kernels`), whose diagonals hold every
        (fold, condition) pattern's squared norm, so that a NaN or inf among the states makes them non-finite.
        """
        return precision is None and bool((self.counts == self.counts[:, :1]).all())

    def kernels(self, sums: np.ndarray, precision: Any, backend: Any, *, threads: int = 1, work: Work | None = None
                ) -> Any:  # fmt: skip
        """K (time, condition, condition) from the groups' sums (group, time, unit) of a block of steps, on the
        ``backend`` (``threads``: workers for each step's products, ``backend.gram`` and ``backend.product``;
        ``work``: the worker's arrays, reused from block to block). A :class:`Whitened` precision whitens the
        sums, whose kernels are then the identity's.
        """
        work = work or Work(backend.numpy, backend.dtype)
        if isinstance(precision, Whitened):  # (each step's sums times L: one product a step, rows on the threads)
            whitened = work.host("whitened", sums.shape)
            backend.product(sums.transpose(1, 0, 2), precision.factor, out=whitened.transpose(1, 0, 2), threads=threads)
            sums, precision = whitened, None
        sums = sums.reshape(*self.counts.shape, *sums.shape[1:])  # (fold, condition, time, unit)
        total = np.sum(sums, axis=0, out=work.host("total", sums.shape[1:]))
        kernels = _balanced_kernels if self.balanced(precision) else _fold_kernels
        return kernels(sums, self.counts, total, precision, backend, threads, work)


@dataclass(frozen=True)
class Whitened:
    """A noise precision P as its Cholesky factor L (P = L L'): a P b' = (a L)(b L)', so the folds' sums are
    whitened once (one product of theirs with L) and their kernels are those of the identity, from symmetric
    products where the folds are balanced (:func:`_balanced_kernels`) instead of a product with P and one of the
    training and test means per fold: 600 conditions x 2 runs x 512 units, 683 -> 499 million multiplications.
    """

    factor: np.ndarray  # (unit, unit), lower triangular

    @classmethod
    def for_mahalanobis(cls, precision: Any, backend: Any, shape: tuple[int, ...]) -> Any:
        """:meth:`where_possible` for Mahalanobis RDMs of (condition, time, unit) patterns of ``shape``: whitened, a
        step's general product becomes a symmetric one (n^2 p / 2 multiplications saved a step).
        """
        n, n_time, n_units = shape
        return cls.where_possible(precision, backend, saved=n * n * n_time * n_units / 2)

    @classmethod
    def where_possible(cls, precision: Any, backend: Any, *, saved: float) -> Any:
        """``precision`` as :class:`Whitened` where it is positive definite, a numpy backend's (whose sums are
        float64 on the host) and the multiplications whitening saves (``saved``) are at least p^3, three times the
        factorisation's p^3 / 3 (which runs slower than a product: 512 units, 4.5 ms, against 1.3 ms for all the
        products of a Mahalanobis RDM of 92 conditions), else ``precision`` itself (None, a device's array, one that
        is not definite, or too small a saving: the products with P).
        """
        if precision is None or not backend.numpy or saved < len(precision) ** 3:
            return precision
        try:
            with one_blas_thread():  # (woken BLAS threads would spin into the blocks of steps that follow)
                return cls(np.linalg.cholesky(precision))
        except np.linalg.LinAlgError:
            return precision


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


def _fold_kernels(sums: np.ndarray, counts: np.ndarray, total: np.ndarray, precision: Any, backend: Any, threads: int,
                  work: Work) -> Any:  # fmt: skip
    """Sum over folds k of (training means) P (test means)': (time, condition, condition). ``sums``: (fold,
    condition, time, unit) of a block of steps, ``total`` their sum over folds; training means pool the other
    folds' observations; each step's products in blocks of rows on ``threads`` workers (``backend.product``).
    """
    total_counts, result = counts.sum(axis=0), None
    shape = (total.shape[1], total.shape[0], total.shape[0])
    for k in range(len(sums)):
        train = np.subtract(total, sums[k], out=work.host("train", total.shape))
        train /= (total_counts - counts[k])[:, None, None]
        test = np.divide(sums[k], counts[k][:, None, None], out=work.host("test", total.shape))
        train, test = backend.asarray(train.transpose(1, 0, 2)), backend.asarray(test.transpose(1, 0, 2))
        if precision is not None:
            train = backend.product(train, precision, out=work.out("weighted train", tuple(train.shape)),
                                    threads=threads)  # fmt: skip
        into = work.out("kernel" if result is None else "product", shape)
        kernel = backend.product(train, backend.transpose(test), out=into, threads=threads)
        if result is None:
            result = kernel
        else:
            result += kernel
    return result


def _balanced_kernels(sums: np.ndarray, counts: np.ndarray, total: np.ndarray, precision: Any, backend: Any,
                      threads: int, work: Work) -> Any:  # fmt: skip
    """:func:`_fold_kernels` where each fold presents every condition equally often (c_k times) and the
    precision is the identity. The means are then sums scaled by one number per fold, so with
    w_k = 1 / ((N - c_k) c_k) and T the sums over all folds:
    sum_k w_k (T - S_k) S_k' = T (sum_k w_k S_k)' - sum_k w_k S_k S_k', with no per-fold copies of the data;
    with folds of one size (one w), w (T T' - sum_k S_k S_k'), symmetric products only (no weighted sums:
    92 conditions x 4 runs x 50 steps x 512 units, 67 -> 50 ms, AMD EPYC). The symmetric products are
    ``backend.gram``'s (numpy's symmetric product from 128 conditions, split over ``threads``). Two folds of
    one size take w (T T' - U U') / 2 with U = S_1 - S_2: two symmetric products instead of three
    (:func:`_split_half_kernels`).
    """
    weights = _fold_weights(counts)
    equal = bool((weights == weights[0]).all())
    shape = (total.shape[1], total.shape[0], total.shape[0])
    if equal and len(sums) == 2:
        return _split_half_kernels(sums, total, float(weights[0]), backend, threads, work)
    first = backend.asarray(total.transpose(1, 0, 2))
    if equal:
        kernel = backend.gram(first, threads=threads, out=work.out("kernel", shape))
    else:
        weighted = np.multiply(sums[0], weights[0], out=work.host("weighted", total.shape))
        for k in range(1, len(sums)):
            weighted += np.multiply(sums[k], weights[k], out=work.host("scaled", total.shape))
        second = backend.transpose(backend.asarray(weighted.transpose(1, 0, 2)))
        kernel = backend.product(first, second, out=work.out("kernel", shape), threads=threads)
    for k in range(len(sums)):
        fold = backend.asarray(sums[k].transpose(1, 0, 2))
        product = backend.gram(fold, threads=threads, out=work.out("product", shape))
        if not equal:
            product *= float(weights[k])  # (a Python float: also for device tensors)
        kernel -= product
    if equal:
        kernel *= float(weights[0])
    return kernel


def _split_half_kernels(sums: np.ndarray, total: np.ndarray, weight: float, backend: Any, threads: int, work: Work
                        ) -> Any:  # fmt: skip
    """:func:`_balanced_kernels` of two folds of one size: S_1 S_2' + S_2 S_1' = (T T' - U U') / 2 with T = S_1 +
    S_2 (``total``) and U = S_1 - S_2, so w (T T' - S_1 S_1' - S_2 S_2') = w (T T' - U U') / 2 from two symmetric
    products (600 conditions x 512 units, one thread, AMD EPYC Zen 3: 3 x 3.9 ms of products -> 2 x 3.9 ms). The
    diagonals, w (|t_i|^2 - |u_i|^2) / 2, are NaN or inf where a pattern is (as :meth:`FoldDesign.balanced`'s).
    """
    shape = (total.shape[1], total.shape[0], total.shape[0])
    difference = np.subtract(sums[0], sums[1], out=work.host("difference", total.shape))
    kernel = backend.gram(backend.asarray(total.transpose(1, 0, 2)), threads=threads, out=work.out("kernel", shape))
    kernel -= backend.gram(backend.asarray(difference.transpose(1, 0, 2)), threads=threads,
                           out=work.out("product", shape))  # fmt: skip
    kernel *= weight / 2
    return kernel


def _fold_weights(counts: np.ndarray) -> np.ndarray:
    """w_k = 1 / ((N - c_k) c_k) of balanced folds presenting each condition c_k times of N in all."""
    return 1.0 / ((counts.sum(axis=0)[0] - counts[:, 0]) * counts[:, 0])

"""Ridge decoders from sums over samples, per fold: what a decoder needs when no task holds its samples.

Ridge (with its StandardScaler) needs only sums over the training samples: their count, the sums of the
states and of the targets' codes, the states' Gram matrix and their products with the codes. Where the
folds' test sets partition the samples (k-fold), a training set's sums are the total minus its test set's,
so sums per fold's test set are all there is to accumulate (:class:`FoldSums`, over blocks of samples that
may be read anywhere) before :func:`solve_folds` solves every fold's decoder, as the in-memory fit solves
it. Folds that do not partition the samples also accumulate every sample's sums (:class:`ComplementSums`),
or each training set's where it is not the rest of the samples (:class:`TrainingSums`). Where the folds' Gram
matrices do not fit in memory together, folds are summed a group at a time beside every sample's sums, summed
once (:class:`ComplementGroup`, :class:`TrainingGroup`). Used by blockwise
memory decay (samples: (stimulus, step) pairs of a lag) and by the blockwise decoding of steps larger than a
block (samples: the stimuli at one step).
"""

from __future__ import annotations

import numpy as np


class FoldSums:
    """Per fold's test samples: count, sums of the (centred) states and codes, Gram matrix, the states'
    products with the codes. Sums of blocks add up (``+``).
    """

    def __init__(self, count: np.ndarray, x: np.ndarray, y: np.ndarray, gram: np.ndarray, cross: np.ndarray) -> None:
        self.count, self.x, self.y, self.gram, self.cross = count, x, y, gram, cross

    @classmethod
    def zeros(cls, folds: int, p: int, columns: int) -> FoldSums:
        return cls(np.zeros(folds), np.zeros((folds, p)), np.zeros((folds, columns)), np.zeros((folds, p, p)),
                   np.zeros((folds, p, columns)))  # fmt: skip

    def add(self, f: int, rows: np.ndarray, codes: np.ndarray) -> None:
        """Add samples ``rows`` (centred states) with their ``codes`` to fold f's test sums."""
        self.count[f] += len(rows)
        self.x[f] += rows.sum(axis=0)
        self.y[f] += codes.sum(axis=0)
        self.gram[f] += rows.T @ rows
        self.cross[f] += rows.T @ codes

    def __add__(self, other: FoldSums) -> FoldSums:
        return type(self)(*(getattr(self, k) + getattr(other, k) for k in FIELDS))

    @property
    def n_folds(self) -> int:
        return len(self.count)

    def select(self, slots: slice) -> FoldSums:
        """The sums of ``slots`` alone (test sets that partition a set of their own: an outer fold's inner folds)."""
        return FoldSums(*(getattr(self, k)[slots] for k in FIELDS))

    def training(self, f: int | None) -> tuple[np.ndarray, ...]:
        """(count, x, y, gram, cross) summed over fold f's training samples (every fold's test sums but its
        own: added, not the total less fold f's, whose difference would keep rounding of fold f's squares), or
        over every sample (``f`` None).
        """
        others = slice(None) if f is None else np.arange(self.n_folds) != f
        return tuple(getattr(self, k)[others].sum(axis=0) for k in FIELDS)

    def cancelled(self, f: int | None) -> np.ndarray | float:
        """The sums of squares per unit that fold f's training sums of squares are a difference of (see
        :func:`._constant.rounding_only`): none here.
        """
        return 0.0


FIELDS = ("count", "x", "y", "gram", "cross")


class _WithEverySample(FoldSums):
    """Sums per fold, then every sample's in the last slot (for folds whose test sets do not partition the
    samples).
    """

    @property
    def n_folds(self) -> int:
        return len(self.count) - 1

    def every(self) -> tuple[np.ndarray, ...]:
        """(count, x, y, gram, cross) of every sample."""
        return tuple(getattr(self, k)[-1] for k in FIELDS)


class ComplementSums(_WithEverySample):
    """Each fold's test sums, then every sample's: for folds whose training sets are the rest of the samples but
    whose test sets overlap (shuffled splits, repeated k-fold). A sample is added to the sums of every test set that
    holds it, and to the last; a training set's sums are every sample's minus its test set's.
    """

    def training(self, f: int | None) -> tuple[np.ndarray, ...]:
        """(count, x, y, gram, cross) of fold f's training samples, or of every sample (``f`` None)."""
        every = self.every()
        return every if f is None else tuple(e - getattr(self, k)[f] for e, k in zip(every, FIELDS, strict=True))

    def cancelled(self, f: int | None) -> np.ndarray | float:
        """Every sample's sums of squares per unit and fold f's test samples', which its training sums of squares
        are the difference of.
        """
        return 0.0 if f is None else np.diagonal(self.every()[3]) + np.diagonal(self.gram[f])


class TrainingSums(_WithEverySample):
    """Each fold's training sums, then every sample's: for training sets that are not the rest of the samples (a
    split that leaves samples out of both). A sample is added to the sums of every training set that holds it, and
    to the last.
    """

    def training(self, f: int | None) -> tuple[np.ndarray, ...]:
        """(count, x, y, gram, cross) of fold f's training samples, or of every sample (``f`` None)."""
        return self.every() if f is None else tuple(getattr(self, k)[f] for k in FIELDS)

    def cancelled(self, f: int | None) -> np.ndarray | float:
        """None of the training sums is a difference."""
        return 0.0


class _HeldEvery:
    """A group of folds' sums (a fold every slot), every sample's sums held apart in ``held`` (count, x, y, gram,
    cross), summed once for all the groups.
    """

    held: tuple[np.ndarray, ...] = ()
    count: np.ndarray

    @property
    def n_folds(self) -> int:
        return len(self.count)

    def every(self) -> tuple[np.ndarray, ...]:
        return self.held


class ComplementGroup(_HeldEvery, ComplementSums):
    """A group of folds' test sums (training sets: the rest of the samples), every sample's held apart."""


class TrainingGroup(_HeldEvery, TrainingSums):
    """A group of folds' training sums (training sets that are not the rest of the samples), every sample's held
    apart.
    """


def solve_folds(sums: FoldSums, centre: np.ndarray, *, penalty: float, scale: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every fold's ridge decoder of the raw states (coef (folds, p, columns), intercept (folds, columns)) from
    its training sums of states centred on ``centre`` (:func:`solve`).
    """
    fits = [solve(sums.training(f), centre, penalty=penalty, scale=scale, cancelled=sums.cancelled(f))
            for f in range(sums.n_folds)]  # fmt: skip
    return np.stack([coef for coef, _, _ in fits]), np.stack([intercept for _, intercept, _ in fits])


def solve(
    training: tuple[np.ndarray, ...],
    centre: np.ndarray,
    *,
    penalty: float,
    scale: bool,
    cancelled: np.ndarray | float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coef (p, columns), intercept (columns,), the states' covariance (p, p), over n - 1) of the ridge decoder
    of samples whose sums (count, x, y, gram, cross; states centred on ``centre``) are ``training``: the
    in-memory fit's equations. ``cancelled``: the sums of squares per unit that the training sums of squares
    are a difference of, if they are one (:func:`._constant.rounding_only`).
    """
    n, x, y, gram, cross = training
    mean, y_mean = x / n, y / n
    gram = gram - n * np.outer(mean, mean)  # the centred states' Gram matrix
    cross = cross - n * np.outer(mean, y_mean)
    import torch  # (here: encoding's fits from sums need no torch, whose import takes a worker 0.18 GiB)

    from ._linear import training_multipliers

    moments = torch.from_numpy(np.diagonal(gram) / n), torch.from_numpy(centre + mean), n
    cancelled = torch.as_tensor(np.asarray(cancelled, dtype=np.float64) / n)
    inv = training_multipliers(*moments, shift=torch.from_numpy(mean), cancelled=cancelled, scale=scale).numpy()
    scaled = gram * inv[:, None] * inv[None, :]
    scaled[np.diag_indices_from(scaled)] += penalty
    coef = np.linalg.solve(scaled, cross * inv[:, None]) * inv[:, None]
    return coef, y_mean - (centre + mean) @ coef, gram / (n - 1)

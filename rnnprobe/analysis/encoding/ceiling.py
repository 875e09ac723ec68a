"""Noise ceilings of responses with repetitions: split-half reliability, Spearman-Brown corrected."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._validation import MAX_RESAMPLES, check_finite, check_int, check_numeric, check_seed
from ...errors import ArgumentError, ShapeError, describe
from .._constant import centred
from .._scores import nan_median


@dataclass
class CeilingResult:
    """Split-half reliability of each target (neuron, voxel) and the ceiling it puts on scores.

    Attributes
    ----------
    reliability : ndarray, (..., n_targets)
        Spearman-Brown corrected split-half correlation: the expected correlation between two
        independent averages of ``n_repetitions`` repetitions. Also the ceiling on R^2.
    ceiling : ndarray
        sqrt(reliability): the expected correlation of a noiseless model with an average of
        ``n_repetitions`` repetitions, the ceiling on Pearson r (NaN where reliability <= 0).
    split_half : ndarray
        The uncorrected split-half correlation, averaged over splits.
    n_repetitions : int
        The number of repetitions averaged in the responses the ceiling is for.
    n_splits : int
    """

    reliability: np.ndarray
    ceiling: np.ndarray
    split_half: np.ndarray
    n_repetitions: int
    n_splits: int

    def summary(self) -> dict[str, Any]:
        """Key numbers: the median reliability and ceiling, and how many targets are unreliable."""
        return {
            "targets": int(self.reliability.size), "repetitions": self.n_repetitions, "splits": self.n_splits,
            "median reliability": float(nan_median(self.reliability.ravel(), axis=0)),
            "median ceiling (r)": self.median_ceiling(),
            "targets with reliability <= 0": int(np.sum(~(self.reliability > 0))),
        }  # fmt: skip

    def median_ceiling(self) -> float:
        """The median of the targets' ceilings on r (NaN where no target has one)."""
        return float(nan_median(self.ceiling.ravel(), axis=0))

    def draw(self, ax: Any) -> Any:
        """The distribution of the ceilings on r."""
        values = self.ceiling[np.isfinite(self.ceiling)].ravel()
        ax.hist(values, bins=30, color="#0072B2")
        ax.set_xlabel("noise ceiling (r)")
        ax.set_ylabel("targets")
        return ax

    def plot(self) -> Any:
        """A new figure of :meth:`draw`."""
        from ..plotting import pyplot

        fig, ax = pyplot().subplots(figsize=(4.5, 3.4), layout="constrained")
        self.draw(ax)
        return fig


def spearman_brown(r: np.ndarray, factor: float) -> np.ndarray:
    """Reliability of an average ``factor`` times as long: factor r / (1 + (factor - 1) r)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return factor * r / (1 + (factor - 1) * r)


def column_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each column of a with the same column of b (rows: stimuli); NaN where either is constant
    (:func:`.._constant.centred`: also a column of 0.1s, which keeps about 1e-17 of spread once centred and
    would correlate by rounding, a neuron of reliability 1).
    """
    a, b = centred(a, 0), centred(b, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.einsum("i...,i...->...", a, b) / np.sqrt(np.einsum("i...,i...->...", a, a)
                                                            * np.einsum("i...,i...->...", b, b))  # fmt: skip


def split_half_reliability(
    trials: Any, *, n_splits: int = 100, n_repetitions: int | None = None, seed: int | None = 0
) -> CeilingResult:
    """Noise ceilings from repetitions: split-half reliability with the Spearman-Brown correction.

    For each of ``n_splits`` random splits of the repetitions into two halves of h = n // 2 (the
    same split for every stimulus and target), the mean responses of the halves are correlated
    across stimuli, per target; the mean correlation r over splits is corrected to the reliability
    of an average of m = ``n_repetitions`` repetitions: k r / (1 + (k - 1) r), k = m / h. A split
    where a half is the same for every stimulus (a sparse neuron) has no correlation and is left out
    for that target; a target without any defined split is refused.

    Parameters
    ----------
    trials : array, (stimulus, repetition, ...)
        Responses per repetition; the trailing axes are targets (e.g. time x neuron).
    n_splits : int
        Random splits (seeded).
    n_repetitions : int, optional
        The number of repetitions averaged in the responses a model is scored against (default all
        of them); pass the number averaged in held-out data when it differs.
    seed : int, optional

    Returns
    -------
    CeilingResult

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> signal = rng.normal(size=(200, 1, 5))                      # 200 stimuli, 5 neurons
    >>> trials = signal + rng.normal(size=(200, 10, 5))            # 10 repetitions, noise variance 1
    >>> result = split_half_reliability(trials)
    >>> np.round(result.reliability, 1)                            # analytic: 1 / (1 + 1 / 10) = 0.91
    array([0.9, 0.9, 0.9, 0.9, 0.9])
    """
    array = check_finite(check_numeric(trials, name="trials").astype(np.float64), name="trials")
    if array.ndim < 3:
        raise ShapeError(f"trials: got {describe(array)}. Pass (stimulus, repetition, target) or more target axes.")
    return reliability_of_halves(trial_halves(array), array.shape, n_splits=n_splits, n_repetitions=n_repetitions,
                                 seed=seed)  # fmt: skip


HalfMeans = Callable[[list[np.ndarray], int], Iterator[tuple[np.ndarray, np.ndarray]]]


def trial_halves(trials: np.ndarray) -> HalfMeans:
    """The :data:`HalfMeans` of trials (stimulus, repetition, ...) in memory."""

    def halves(orders: list[np.ndarray], half: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return ((trials[:, o[:half]].mean(axis=1), trials[:, o[half : 2 * half]].mean(axis=1)) for o in orders)

    return halves


def reliability_of_halves(halves: HalfMeans, shape: tuple[int, ...], *, n_splits: int, n_repetitions: int | None,
                          seed: int | None) -> CeilingResult:  # fmt: skip
    """:func:`split_half_reliability` of trials of ``shape`` (stimulus, repetition, *targets) given by
    ``halves(orders, h)``: for each order of the repetitions, the two halves' means (stimulus, *targets) of
    its first h and next h repetitions (from trials in memory, or blockwise from a recording on disk).
    """
    n_stimuli, n_reps = shape[:2]
    if n_reps < 2:
        raise ShapeError(
            f"trials: {n_reps} repetition per stimulus; a split-half ceiling needs at least 2 (pass responses "
            f"with their repetitions, or give the ceiling yourself)."
        )
    if n_stimuli < 3:
        raise ShapeError(f"trials: {n_stimuli} stimuli; correlations across stimuli need at least 3.")
    n_splits = check_int("n_splits", n_splits, maximum=MAX_RESAMPLES // max(n_reps, 1))
    m = n_reps if n_repetitions is None else check_int("n_repetitions", n_repetitions)
    half = n_reps // 2
    rng = np.random.default_rng(check_seed(seed))
    orders = [rng.permutation(n_reps) for _ in range(n_splits)]  # the same for every stimulus and target
    total, defined = np.zeros(shape[2:]), np.zeros(shape[2:])
    for first, second in halves(orders, half):
        r = column_correlations(first, second)
        ok = np.isfinite(r)  # a half that is the same for every stimulus has no correlation: that split is left out
        total[ok] += r[ok]
        defined += ok
    _refuse_constant(defined)
    split = total / defined
    reliability = spearman_brown(split, m / half)
    with np.errstate(invalid="ignore"):
        ceiling = np.where(reliability > 0, np.sqrt(np.where(reliability > 0, reliability, 0)), np.nan)
    return CeilingResult(reliability, ceiling, split, m, n_splits)


def _refuse_constant(defined: np.ndarray) -> None:
    if (defined == 0).any():
        flat = np.flatnonzero(defined.ravel() == 0)
        positions = [tuple(int(i) for i in np.unravel_index(i, defined.shape)) for i in flat[:5]]
        raise ArgumentError(
            f"trials: {flat.size} target(s) (first at {positions}) have a half-average that is the same for every "
            f"stimulus in every split, so no reliability is defined. Drop constant targets (e.g. neurons that never "
            f"fire in a bin)."
        )

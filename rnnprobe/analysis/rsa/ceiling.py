"""Pooled RDMs and the noise ceiling from per-subject RDMs (Nili et al. 2014)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..._validation import check_grouping, check_option
from ...errors import ArgumentError, ShapeError, describe
from .._constant import rounding_only
from .compare import COMPARISONS, _nan_ranks, compare_rdms
from .kendall import Rows, tau_a
from .rdms import as_vectors


def pool_rdms(rdms: Any, *, comparison: str = "corr") -> np.ndarray:
    """The RDM (vector) with the best average similarity to ``rdms`` under ``comparison`` (rsatoolbox's ``pool_rdm``).

    Normalised means for "cosine"/"corr" (and their whitened variants), mean ranks for the rank methods.
    Pairs that are NaN in every RDM stay NaN (comparisons skip NaN pairs). An RDM with no normalised form (no
    similarity to any RDM) adds nothing: all zero (cosine), or constant over its pairs (corr; also where its
    spread is no more than rounding leaves, :func:`..._constant.rounding_only`: a constant 0.1, which no float64
    mean equals). rsatoolbox's pooled RDM is NaN everywhere with such an RDM.
    """
    check_option("comparison", comparison, COMPARISONS)
    v = as_vectors(rdms, "rdms")
    with warnings.catch_warnings():  # "mean of empty slice" for the pairs NaN in every RDM: NaN is their answer
        warnings.simplefilter("ignore", RuntimeWarning)
        return _pooled(v, comparison)


def _pooled(v: np.ndarray, comparison: str) -> np.ndarray:
    if comparison in ("cosine", "cosine_cov"):
        v = v / np.sqrt(np.nanmean(v**2, axis=1, keepdims=True))
        return np.nanmean(v, axis=0)
    if comparison in ("corr", "corr_cov"):
        mean = np.nanmean(v, axis=1, keepdims=True)
        v = v - mean
        spread = np.nanstd(v, axis=1, keepdims=True)
        v = v / np.where(rounding_only(spread**2, mean, (~np.isnan(v)).sum(axis=1, keepdims=True)), np.nan, spread)
        pooled = np.nanmean(v, axis=0)
        return pooled - np.nanmin(pooled)
    return _mean_ranks(_nan_ranks(v))  # RANK_COMPARISONS


def _mean_ranks(ranks: np.ndarray) -> np.ndarray:
    """The RDMs' mean ranks, NaN-aware: pairs NaN in every RDM stay NaN, without "mean of empty slice"."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(ranks, axis=0)


RANK_COMPARISONS = ("spearman", "rho-a", "tau-a")  # pooled as their RDMs' mean ranks


def noise_ceiling(
    subject_rdms: Any, *, comparison: str = "corr", groups: np.ndarray | None = None
) -> tuple[float, float]:
    """Lower and upper bound of the best possible model performance, from per-subject RDMs.

    Upper bound: mean similarity of each subject's RDM to the pooled RDM of all subjects; lower
    bound: to the pooled RDM of the other subjects (leave one out). Nili et al. 2014; equal to
    ``rsatoolbox.inference.boot_noise_ceiling`` without bootstrapping.

    Parameters
    ----------
    groups : ndarray, optional
        A subject id per RDM: RDMs sharing an id (e.g. copies drawn by a bootstrap) are left out
        together and count once, as rsatoolbox does. Default: each RDM is its own subject.

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.random.default_rng(0).random(45)
    >>> subjects = truth + np.random.default_rng(1).normal(0, 0.3, size=(6, 45))
    >>> low, high = noise_ceiling(subjects, comparison="corr")
    >>> bool(0 < low < high < 1)
    True
    """
    v = as_vectors(subject_rdms, "subject_rdms")
    groups = np.arange(v.shape[0]) if groups is None else check_grouping(groups, name="groups")
    if groups.shape != (v.shape[0],):
        raise ShapeError(f"groups: got {describe(groups)}. Pass one subject id per RDM ({v.shape[0]}).")
    ids = np.unique(groups)
    if ids.size < 2:
        raise ArgumentError(
            f"subject_rdms: got RDMs of {ids.size} subject; a noise ceiling needs at least 2 subjects/sessions."
        )
    _check_defined(v, comparison)
    ranks = _nan_ranks(v) if comparison in RANK_COMPARISONS else None  # each RDM ranked once, not in every pool

    def pooled(rows: Any) -> np.ndarray:
        return pool_rdms(v[rows], comparison=comparison) if ranks is None else _mean_ranks(ranks[rows])

    if comparison == "tau-a" and not np.isnan(v).any():
        return _tau_bounds(v, groups, ids, pooled)
    pooled_all = pooled(slice(None))
    lower, upper = [], []
    for subject in ids:
        mine = v[groups == subject][:1]  # copies of one subject are identical
        others = pooled(groups != subject)
        lower.append(compare_rdms(others, mine, comparison=comparison)[0, 0])
        upper.append(compare_rdms(pooled_all, mine, comparison=comparison)[0, 0])
    return float(np.mean(lower)), float(np.mean(upper))


def _tau_bounds(
    v: np.ndarray, groups: np.ndarray, ids: np.ndarray, pooled: Callable[[Any], np.ndarray]
) -> tuple[float, float]:
    """:func:`noise_ceiling`'s bounds under tau-a for complete RDMs, each RDM sorted once (:class:`.kendall.Rows`):
    the pooled RDM of all subjects against every subject at once, then each subject's leave-one-out pool against
    it (the same numbers as pair by pair: each tau-a is an exact count; a bootstrap's samples sorted the pooled RDM
    of all subjects once per subject, and each subject twice).
    """
    mine = Rows(v[[int(np.flatnonzero(groups == subject)[0]) for subject in ids]])  # (copies are identical)
    upper = tau_a(pooled(slice(None))[None], mine)[0]
    lower = [tau_a(pooled(groups != subject)[None], mine.take([k]))[0, 0] for k, subject in enumerate(ids)]
    return float(np.mean(lower)), float(np.mean(upper))


def _check_defined(v: np.ndarray, comparison: str) -> None:
    """Refuse subject RDMs whose similarity to any RDM is undefined (rather than a NaN ceiling and warnings):
    fewer than 2 dissimilarities that are not NaN, all zero (cosine), or constant (the correlations). Under rho-a
    and tau-a a constant RDM is defined: all its values tie, so its similarity to any RDM is 0 (as rsatoolbox).
    """
    check_option("comparison", comparison, COMPARISONS)
    missing = np.isnan(v)
    defined = (~missing).sum(axis=1)
    low = np.where(missing, np.inf, v).min(axis=1, initial=np.inf)  # +-inf for a row without values
    high = np.where(missing, -np.inf, v).max(axis=1, initial=-np.inf)
    cosine = comparison in ("cosine", "cosine_cov")
    undefined = (low == 0) & (high == 0) if cosine else (low == high) & (comparison not in ("rho-a", "tau-a"))
    bad = (defined < 2) | undefined
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = (
            "fewer than 2 dissimilarities that are not NaN"
            if defined[i] < 2
            else ("only zeros" if cosine else f"the same value ({low[i]:g}) everywhere")
        )
        raise ArgumentError(
            f"subject_rdms: RDM {i} ({int(bad.sum())} in all) has {what}, so its {comparison!r} similarity to any "
            f"RDM is undefined and the noise ceiling would be NaN. Drop such RDMs (e.g. a subject without data)."
        )

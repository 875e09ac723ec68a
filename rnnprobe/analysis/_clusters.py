"""Cluster-based permutation correction over time (1-D) or a generalization matrix (2-D).

Maris & Oostenveld (2007): each point's score is standardised against its permutation null
(z = (score - null mean) / null sd); points with z above the cluster-forming threshold (the
normal quantile of 1 - ``threshold_p``) form clusters of adjacent points (edges, not diagonals,
in 2-D); a cluster's mass is the sum of its z. The same is done to every permutation's map, and a
cluster's p-value is the share of permutations whose largest cluster mass reaches it:
(1 + #{max null mass >= mass}) / (1 + n_permutations). This controls the family-wise error of
claiming *any* cluster, not the extent of each one. A point whose null does not vary (every permutation's
score the same, but for rounding: a discrete score at 0.5333 keeps about 1e-16 of spread) never enters a
cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._constant import rounding_only


@dataclass
class Cluster:
    """A cluster of adjacent above-threshold points: a boolean ``mask`` of the score's shape,
    its ``mass`` (sum of z) and permutation ``p_value``.
    """

    mask: np.ndarray
    mass: float
    p_value: float


def _clusters(z: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels and masses of the clusters of ``z > threshold``."""
    from scipy import ndimage

    labels, n = ndimage.label(z > threshold)
    if n == 0:
        return labels, np.zeros(0)
    masses = ndimage.sum_labels(z, labels, index=np.arange(1, n + 1))
    return labels, np.asarray(masses, dtype=np.float64)


def _largest_masses(z: np.ndarray, threshold: float) -> np.ndarray:
    """The largest cluster mass of each map ``z[i]`` (0 for a map without a cluster): every map labelled at
    once, with no connection between maps, and each cluster's z summed in the same order as
    :func:`_clusters` sums it (the same numbers as labelling map by map, one ``ndimage.label`` call).
    """
    from scipy import ndimage

    within = np.zeros((3,) * z.ndim, dtype=bool)  # adjacent points of one map: edges, not diagonals
    within[1] = ndimage.generate_binary_structure(z.ndim - 1, 1)
    labels, n = ndimage.label(z > threshold, structure=within)
    largest = np.full(len(z), -np.inf)
    if n:
        masses = ndimage.sum_labels(z, labels, index=np.arange(1, n + 1))
        _, first = np.unique(labels.reshape(-1), return_index=True)  # label 0 (no cluster) first
        np.maximum.at(largest, first[1:] // (labels.size // len(z)), masses)  # each cluster's map
    return np.where(np.isinf(largest), 0.0, largest)


def _null_moments(null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each point's mean and standard deviation (ddof 1) over the permutations whose score there is defined (a NaN
    score, such as ROC AUC of a small test fold a permutation left with one class, is left out; it made the point's
    z NaN and kept it out of every cluster). The standard deviation is inf, so that the point never enters a
    cluster, where fewer than 2 scores are defined or they do not vary (also but for rounding: a null all at 8/15
    keeps 1e-16 of spread).
    """
    defined = ~np.isnan(null)
    count = defined.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(defined, null, 0.0).sum(axis=0) / count
        squares = (np.where(defined, null - mean, 0.0) ** 2).sum(axis=0)
        sd = np.sqrt(squares / (count - 1))
    flat = (count < 2) | rounding_only(squares / np.maximum(count, 1), mean, np.maximum(count, 1))
    return np.where(count > 0, mean, 0.0), np.where(flat, np.inf, sd)


def cluster_test(observed: np.ndarray, null: np.ndarray, *, threshold_p: float = 0.05) -> list[Cluster]:
    """Clusters of ``observed`` (1-D or 2-D scores) against ``null`` (n_permutations, *shape);
    sorted by p-value.
    """
    from scipy.stats import norm

    mean, sd = _null_moments(null)
    threshold = norm.ppf(1 - threshold_p)
    labels, masses = _clusters((observed - mean) / sd, threshold)
    null_max = _largest_masses((null - mean) / sd, threshold)
    clusters = [
        Cluster(labels == k + 1, float(mass), float((1 + (null_max >= mass).sum()) / (1 + len(null))))
        for k, mass in enumerate(masses)
    ]
    return sorted(clusters, key=lambda c: c.p_value)

"""How often each index was drawn in each bootstrap sample: the counts behind every weighted resample."""

from __future__ import annotations

import numpy as np


def draw_counts(draws: np.ndarray, n: int) -> np.ndarray:
    """(sample, n) float64 counts of each index 0..n-1 in each row of ``draws`` (sample, k): one ``bincount`` of
    the rows' indices offset by n per row (``np.add.at`` into a (sample, n) array is ~10x slower).
    """
    samples = draws.shape[0]
    flat = (draws + n * np.arange(samples)[:, None]).ravel()
    return np.bincount(flat, minlength=samples * n).reshape(samples, n).astype(np.float64)


def distinct_conditions(draws: np.ndarray) -> np.ndarray:
    """How many distinct conditions each bootstrap sample (a row of ``draws``) holds, from one sort (a
    ``np.unique`` per sample: 8 of 45 ms for 1000 samples of 92 conditions). Samples of fewer than 3 have no
    defined RDM comparison.
    """
    ordered = np.sort(draws, axis=1)
    return (ordered[:, 1:] != ordered[:, :-1]).sum(axis=1) + (draws.shape[1] > 0)

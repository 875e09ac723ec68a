"""Model RDMs the benchmarks build."""

from __future__ import annotations

import numpy as np


def categorical_rdms(labels: np.ndarray) -> np.ndarray:
    """(models, pairs) float RDM vectors of (models, conditions) category ``labels``: 0 within a category, 1
    between (the upper triangle row by row, rsatoolbox's order).
    """
    labels = np.atleast_2d(labels)
    rows, cols = np.triu_indices(labels.shape[1], 1)
    return (labels[:, rows] != labels[:, cols]).astype(float)

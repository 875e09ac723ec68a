"""Alignment metrics between representations of the same stimuli: shape metrics, CCA, CKA.

- :func:`compare_representations`: one metric between two layers (models, brains) at every pair of
  time steps, in sample or cross-validated.
- :func:`pairwise_distances`: the distance matrix of many representations and its MDS map.

The metrics (``metric=``): "shape" (Williams et al. 2021, with partial whitening ``alpha``), "cca",
"svcca", "pwcca", "cka", "debiased_cka". See docs/analysis/alignment.md for the equations.
"""

from .inputs import METRICS
from .over_time import AlignmentResult, compare_representations
from .pairwise import DistanceMatrixResult, classical_mds, pairwise_distances

__all__ = [
    "METRICS",
    "AlignmentResult",
    "DistanceMatrixResult",
    "classical_mds",
    "compare_representations",
    "pairwise_distances",
]

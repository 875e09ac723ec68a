"""Representational similarity analysis over time, equal to rsatoolbox's.

- :mod:`.rdms`: the `RDMs` container;
- :mod:`.compute`: `compute_rdms`, every time step of a layer in one batched product;
- :mod:`.compare`: `compare_rdms` (cosine, corr, spearman, rho-a, tau-a, whitened variants);
- :mod:`.kendall`: tau-a, exact from midranks where an RDM takes two values (categorical models);
- :mod:`.ceiling`: `pool_rdms` and `noise_ceiling`;
- :mod:`.model_data`: `compare_model_to_data` and its result.
"""

from .ceiling import noise_ceiling, pool_rdms
from .compare import COMPARISONS, compare_rdms, similarity_transform
from .compute import compute_rdms
from .model_data import RSAResult, compare_model_to_data
from .rdms import DISTANCES, RDMs, as_vectors, n_conditions, paired_vectors

__all__ = [
    "COMPARISONS",
    "DISTANCES",
    "RDMs",
    "RSAResult",
    "as_vectors",
    "compare_model_to_data",
    "compare_rdms",
    "compute_rdms",
    "n_conditions",
    "noise_ceiling",
    "paired_vectors",
    "pool_rdms",
    "similarity_transform",
]

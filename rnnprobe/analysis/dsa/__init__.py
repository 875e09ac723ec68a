"""Dynamical similarity analysis (Ostrow et al. 2023): delay embeddings, DMD operators, and their
comparison up to an orthogonal change of basis (rotations and reflections) or by their spectra.
"""

from .compare import DSAResult, compare_dynamics, fit_dmd, pairwise_dynamics
from .dmd import DMDResult

__all__ = ["DMDResult", "DSAResult", "compare_dynamics", "fit_dmd", "pairwise_dynamics"]

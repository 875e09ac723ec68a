"""Demixed principal component analysis (Kobak et al. 2016): components that each reconstruct one
marginalisation (time, a task parameter, an interaction) of condition-averaged population activity.
"""

from .fit import DPCAResult, fit_dpca
from .significance import dpca_significance

__all__ = ["DPCAResult", "dpca_significance", "fit_dpca"]

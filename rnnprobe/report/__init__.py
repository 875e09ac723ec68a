"""Reports: figures, tables, text and analysis results in one self-contained HTML file, and
side-by-side comparisons of several models (:func:`compare_models`)."""

from .compare import ModelComparison, compare_models
from .report import Report

__all__ = ["ModelComparison", "Report", "compare_models"]

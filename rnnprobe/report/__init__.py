"""Reports: figures, tables, text and analysis results in one self-contained HTML file."""

from .report import Report

__all__ = ["Report"]

"""Reports: figures, tables, text and analysis results in one self-contained HTML file.

:class:`Report` (``report.py``, HTML in ``_html.py``) and the figures of model comparisons
(``comparison_figures.py``); the comparisons themselves are run by
:func:`rnnprobe.analysis.compare_models`.
"""

from ._html import format_value
from .report import Report, write_atomic

__all__ = ["Report", "format_value", "write_atomic"]

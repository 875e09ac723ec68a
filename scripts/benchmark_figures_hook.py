"""mkdocs hook: docs/benchmarks.md shows the speed-ups as figures drawn from ``benchmarks/results``.

Every benchmark script that compares with an anchor saves its rows (``benchmarks/_machine.py``'s
``Results``) in ``benchmarks/results/<machine kind>/<script>.json``; this hook replaces the marker
``<!-- benchmark figures -->`` with one figure per machine kind (``benchmarks/_figures.py``) and the list
of files it was drawn from.
"""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = "<!-- benchmark figures -->"


def on_page_markdown(markdown, page, config, files):
    if MARKER not in markdown:
        return markdown
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from _figures import RESULTS, draw_ratios, load_results
    finally:
        sys.path.pop(0)
    parts = []
    for kind, results in load_results().items():
        fig = draw_ratios(results)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        fig.clf()
        import matplotlib.pyplot as plt

        plt.close(fig)
        png = base64.b64encode(buffer.getvalue()).decode()
        sources = ", ".join(f"`{(RESULTS / kind / (r['script'] + '.json')).relative_to(ROOT)}`" for r in results)
        parts += [f"### {kind}", "", f"![speed-ups on {kind}](data:image/png;base64,{png})", "",
                  f"Drawn from {sources}.", ""]  # fmt: skip
    return markdown.replace(MARKER, "\n".join(parts) or "No results saved yet.")

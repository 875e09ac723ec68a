"""The benchmarks page's figures, drawn from the scripts' own results files (``benchmarks/results/<kind>/``).

One figure per kind of CPU: every case's speed-up over its anchor package (log scale), its goal where the
issues set one (a tick; 1x, "not slower", otherwise), coloured by whether the goal is met. The docs build
(``scripts/benchmark_figures_hook.py``) puts them on docs/benchmarks.md, so the figures are always the
last saved runs, never numbers typed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def load_results(folder: Path = RESULTS) -> dict[str, list[dict]]:
    """{machine kind: [one script's results, ...]} from every ``<kind>/<script>.json``, checked."""
    kinds: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*/*.json")):
        data = json.loads(path.read_text())
        for row in data["rows"]:
            expected = row["anchor_s"] / row["ours_s"]
            if not (row["anchor_s"] > 0 and row["ours_s"] > 0 and abs(row["ratio"] - expected) <= 1e-9 * expected):
                raise ValueError(f"{path}: row {row['case']!r} has a ratio that its times do not give")
        kinds.setdefault(path.parent.name, []).append(data)
    return kinds


def draw_ratios(results: list[dict]):
    """A horizontal bar per case (speed-up over the anchor, log scale), goal ticks, met in blue, missed in
    orange; returns the figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(f"{r['anchor']}: {r['case']}", r["ratio"], r["goal"] or 1.0) for data in results for r in data["rows"]]
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.2), layout="constrained")
    y = range(len(rows))
    colors = ["#0072B2" if ratio >= goal else "#E69F00" for _, ratio, goal in rows]
    ax.barh(list(y), [ratio for _, ratio, _ in rows], color=colors, left=0)
    ax.scatter([goal for *_, goal in rows], list(y), marker="|", s=200, color="black", zorder=3, label="goal")
    ax.axvline(1.0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(list(y), [label for label, *_ in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("speed-up over the anchor (anchor time / rnnprobe time)")
    cpus = sorted({data["cpu"] for data in results})
    dates = sorted({data["date"] for data in results})
    ax.set_title(f"{', '.join(cpus)} ({dates[0]} to {dates[-1]})", fontsize=9)
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    return fig

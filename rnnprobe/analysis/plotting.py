"""Shared figure conventions: a colour-blind-safe palette (Okabe & Ito 2008) and lazy matplotlib."""

from __future__ import annotations

from typing import Any

import numpy as np

OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000")


def pyplot() -> Any:
    """matplotlib.pyplot, imported on first use (``import rnnprobe`` never loads matplotlib)."""
    import matplotlib.pyplot as plt

    return plt


def category_colors(values: np.ndarray) -> tuple[list[Any], dict[Any, str]]:
    """A colour per value (categorical, up to 8 categories from Okabe-Ito, then viridis)."""
    categories = list(dict.fromkeys(np.asarray(values).tolist()))
    try:
        categories.sort()
    except TypeError:  # mixed types: keep order of appearance
        pass
    if len(categories) <= len(OKABE_ITO):
        lookup = dict(zip(categories, OKABE_ITO, strict=False))
    else:
        cmap = pyplot().get_cmap("viridis", len(categories))
        lookup = {c: cmap(i) for i, c in enumerate(categories)}
    return [lookup[v] for v in np.asarray(values).tolist()], lookup


def mark_periods(ax: Any, periods: dict[str, tuple[float, float]] | None, *, axis: str | None = None) -> None:
    """Shade alternate periods of a trial (name -> (start, end) in the x axis's time coordinate) and name
    them at the top of an over-time panel; nothing where there are none. ``axis="x"`` or ``"y"`` (the
    axes of a time x time matrix): the periods' starts as thin white lines only.
    """
    if not periods:
        return
    if axis is not None:
        line = ax.axvline if axis == "x" else ax.axhline
        for start, _ in periods.values():
            line(start, color="white", lw=0.6, alpha=0.8)
        return
    from matplotlib.transforms import blended_transform_factory

    top = blended_transform_factory(ax.transData, ax.transAxes)
    for k, (name, (start, end)) in enumerate(sorted(periods.items(), key=lambda item: item[1][0])):
        if k % 2 == 0:
            ax.axvspan(start, end, color="0.92", lw=0, zorder=0)
        ax.axvline(start, color="0.6", lw=0.6, zorder=0.5)
        ax.text((start + end) / 2, 0.98, name, transform=top, ha="center", va="top", fontsize=7, color="0.35")

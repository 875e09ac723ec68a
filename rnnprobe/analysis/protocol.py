"""The result protocol every analysis result follows (used by :class:`~rnnprobe.Report`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


@runtime_checkable
class AnalysisResult(Protocol):
    """What every analysis result offers.

    ``summary()`` gives the key numbers as a flat dict (str -> number, str or list), JSON-ready;
    ``plot()`` draws a new matplotlib figure. Results that are one panel also have ``draw(ax)``,
    which draws into a given Axes (composite figures reuse it).

    Examples
    --------
    >>> import numpy as np
    >>> from rnnprobe import Recording
    >>> from rnnprobe.analysis import AnalysisResult, fit_pca
    >>> result = fit_pca(Recording({"h": np.random.default_rng(0).normal(size=(20, 5, 4))}), n_components=2)
    >>> isinstance(result, AnalysisResult)
    True
    """

    def summary(self) -> dict[str, Any]:
        """The key numbers of the result."""
        ...

    def plot(self) -> Figure:
        """A new figure of the result."""
        ...

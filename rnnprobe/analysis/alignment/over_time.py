"""compare_representations: an alignment metric between two layers at every pair of time steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._validation import check_device, check_option, check_progress
from ...errors import ShapeError
from ...recording import Recording
from ..plotting import mark_periods
from .engine import pair_values
from .inputs import (
    DISTANCE_METRICS,
    METRICS,
    check_before_reading,
    check_same_stimuli,
    check_settings,
    pair_argument,
    read_representation,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

METRIC_LABELS = {
    "shape": "shape distance (rad)",
    "cca": "mean canonical correlation",
    "svcca": "SVCCA (mean canonical correlation)",
    "pwcca": "PWCCA",
    "cka": "linear CKA",
    "debiased_cka": "debiased linear CKA",
    "rbf_cka": "RBF CKA",
}


@dataclass
class AlignmentResult:
    """An alignment metric between two representations at every pair of time steps.

    Attributes
    ----------
    values : ndarray, (n_times_a, n_times_b)
        The metric: a distance for "shape" (radians, 0 = the same shape), a similarity otherwise.
    metric : str
    kind : {"distance", "similarity"}
    layers : (str, str)
    times : (ndarray, ndarray)
        The time coordinates of the rows and columns.
    alpha : float
        Partial whitening of the shape metric (1: Procrustes, 0: CCA).
    cv : int or None
        Folds of the cross-validation (the alignment fitted on the other folds), or None: in sample.
    n_stimuli : int
    periods : (dict, dict)
        Each side's recording periods (marked on the figure).
    """

    values: np.ndarray
    metric: str
    kind: str
    layers: tuple[str, str]
    times: tuple[np.ndarray, np.ndarray]
    alpha: float
    cv: int | None
    n_stimuli: int
    periods: tuple[dict, dict] = ({}, {})

    @property
    def value(self) -> float:
        """The single value of a comparison of one time step with one."""
        if self.values.size != 1:
            raise ShapeError(f"value: this result holds {self.values.shape} values; use .values or .best().")
        return float(self.values[0, 0])

    def best(self) -> tuple[Any, Any, float]:
        """(time of a, time of b, value) of the most aligned pair (smallest distance, largest similarity)."""
        flat = int(np.argmin(self.values) if self.kind == "distance" else np.argmax(self.values))
        i, j = np.unravel_index(flat, self.values.shape)
        return self.times[0][i].item(), self.times[1][j].item(), float(self.values[i, j])

    def summary(self) -> dict[str, Any]:
        """Key numbers: the metric, the best-aligned time steps and their value, the diagonal's mean."""
        t_a, t_b, best = self.best()
        out: dict[str, Any] = {
            "metric": self.metric, "layers": f"{self.layers[0]} vs {self.layers[1]}", "stimuli": self.n_stimuli,
            "cross-validated folds": self.cv or 0, "best time a": t_a, "best time b": t_b, "best value": best,
        }  # fmt: skip
        if self.metric == "shape":
            out["alpha"] = self.alpha
        if self.values.shape[0] == self.values.shape[1]:
            out["mean over matched time steps"] = float(np.mean(np.diag(self.values)))
        return out

    def draw(self, ax: Axes) -> Any:
        """The time x time matrix (or the values over time where one side has one step)."""
        label = METRIC_LABELS[self.metric] + (" (held out)" if self.cv else "")
        if 1 in self.values.shape:
            side = 1 if self.values.shape[0] == 1 else 0
            ax.plot(self.times[side], self.values.ravel(), marker="o", ms=3, color="#0072B2")
            ax.set_xlabel(f"time ({self.layers[side]})")
            ax.set_ylabel(label)
            mark_periods(ax, self.periods[side])
            return ax
        image = ax.imshow(self.values, origin="lower", aspect="auto", cmap="viridis_r" if self.kind == "distance"
                          else "viridis", extent=_extent(self.times[1]) + _extent(self.times[0]))  # fmt: skip
        ax.set_xlabel(f"time ({self.layers[1]})")
        ax.set_ylabel(f"time ({self.layers[0]})")
        ax.figure.colorbar(image, ax=ax, label=label)
        mark_periods(ax, self.periods[1], axis="x")
        mark_periods(ax, self.periods[0], axis="y")
        return image

    def plot(self) -> Figure:
        """A new figure of :meth:`draw`."""
        from ..plotting import pyplot

        fig, ax = pyplot().subplots(figsize=(5, 4), layout="constrained")
        self.draw(ax)
        ax.set_title(f"{self.layers[0]} vs {self.layers[1]}")
        return fig


def _extent(times: np.ndarray) -> list[float]:
    t = np.asarray(times, dtype=float)
    step = (t[-1] - t[0]) / (len(t) - 1) if len(t) > 1 else 1.0
    return [t[0] - step / 2, t[-1] + step / 2]


def compare_representations(
    a: Any,
    b: Any,
    *,
    layer: Any = None,
    time: Any = None,
    metric: str = "shape",
    alpha: float = 1.0,
    variance: float = 0.99,
    sigma: float = 1.0,
    cv: int | None = None,
    seed: int | None = 0,
    device: str | None = None,
    progress: bool | None = None,
) -> AlignmentResult:
    r"""Compare two representations of the same stimuli with an alignment metric, at every pair of time steps.

    Parameters
    ----------
    a, b : Recording or ndarray
        Recordings, or arrays (stimulus, unit) or (stimulus, time, *units), of the same stimuli in
        the same order. Units may differ in number (shape metrics zero-pad, as netrep). A dask-backed
        Recording's layer is compared from sums over chunks of stimuli, never read whole: its Gram
        matrices across stimuli where it is wider than them, else its moments (docs/analysis/alignment.md).
    layer : str or (str, str), optional
        The layer of each Recording (one name for both, or a pair); default: each one's only layer.
    time : selection or (selection, selection), optional
        Time steps of each side (an int, slice or array of positions); default all.
    metric : {"shape", "cca", "svcca", "pwcca", "cka", "debiased_cka", "rbf_cka"}
        "shape": the angular shape distance of Williams et al. (2021) after centring and partial
        whitening ``alpha`` (netrep's ``LinearMetric``; a metric: symmetric, triangle inequality).
        "cca": the mean canonical correlation over min(rank a, rank b) directions; "svcca": the same
        after keeping the top principal components explaining ``variance`` (Raghu et al. 2017);
        "pwcca": canonical correlations weighted by how much of ``a``'s units each accounts for
        (Morcos et al. 2018; not symmetric). "cka": linear CKA (Kornblith et al. 2019);
        "debiased_cka": linear CKA from the unbiased HSIC (Song et al. 2012), about 0 for
        independent representations; it can be negative (less similar than chance), and is 0 where a
        side's unbiased self-HSIC is <= 0 (no structure distinguishable from noise). "rbf_cka": CKA of
        Gaussian kernels exp(-d^2 / (2 sigma^2 median d^2)) (Kornblith et al.'s ``gram_rbf``; n x n
        matrices).
    alpha : float in [0, 1]
        Partial whitening of "shape": 1 rotations only (Procrustes), 0 any invertible linear map (the
        CCA distance arccos(sum rho / sqrt(p q))).
    variance : float in (0, 1]
        The share of variance SVCCA keeps.
    sigma : float
        RBF CKA's kernel width, as a fraction of the median distance between stimuli.
    cv : int, optional
        Cross-validate: fit the alignment (rotation, canonical directions, weights) on ``cv - 1`` folds
        of shuffled stimuli and evaluate it on the held-out fold, averaged over folds. In sample, the
        CCA of a layer with at least as many units as stimuli - 1 is exactly 1 whatever its content;
        held out, CCA-like metrics refuse training folds of n stimuli where the two sides' ranks sum to
        n + 1 or more (the fitted directions would be arbitrary; docs/analysis/alignment.md).
    seed : int, optional
        Shuffles the folds.
    device : str, optional
        A torch device (e.g. "cuda") that holds both sides and computes every preparation (Gram
        matrices, eigendecompositions) and pair (cross products, singular values) in float64; the values
        equal the CPU's to rounding. A dask-backed Recording's layer is read whole onto the device.
    progress : bool, optional
        A progress bar over the pairs of time steps (None: only on a terminal).

    Returns
    -------
    AlignmentResult
        ``values[i, j]``: the metric between time step i of ``a`` and time step j of ``b``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(100, 10))
    >>> rotation = np.linalg.qr(rng.normal(size=(10, 10)))[0]
    >>> compare_representations(x, 3 * x @ rotation + 1).value < 1e-6    # same shape
    True
    >>> round(compare_representations(x, x @ rotation, metric="cka").value, 6)
    1.0
    """
    layer_a, layer_b = pair_argument(layer, "layer")
    time_a, time_b = pair_argument(time, "time")
    kernel = check_option("metric", metric, METRICS) == "rbf_cka"
    check_before_reading([a, b], metric, alpha, variance, cv, seed, sigma)
    device = check_device(device)
    whole = device is not None  # (a device holds the layer: a dask-backed one is read whole)
    rep_a = read_representation(a, layer_a, time_a, "a", kernel=kernel, whole=whole)
    same = b is a and layer_b == layer_a and time_b is time_a  # a layer against itself: read once
    rep_b = rep_a if same else read_representation(b, layer_b, time_b, "b", kernel=kernel, whole=whole)
    n = check_same_stimuli(rep_a.states.shape[0], rep_b.states.shape[0])
    settings = check_settings(metric, alpha, variance, cv, seed, n, sigma)
    steps_a, steps_b = rep_a.states.shape[1], rep_b.states.shape[1]
    pairs = [(0, i, 1, j) for i in range(steps_a) for j in range(steps_b)]
    from tqdm.auto import tqdm

    with tqdm(total=len(pairs) * (settings.cv or 1), desc="alignment", unit="pair",
              disable=not check_progress(progress)) as bar:  # fmt: skip
        values = pair_values([rep_a.states, rep_b.states], [rep_a.label, rep_b.label], pairs, settings,
                             progress=bar.update, sources=[rep_a.source, rep_b.source], device=device)  # fmt: skip
    kind = "distance" if settings.metric in DISTANCE_METRICS else "similarity"
    values = values.reshape(steps_a, steps_b)
    periods = tuple(v.periods if isinstance(v, Recording) else {} for v in (a, b))
    return AlignmentResult(values, settings.metric, kind, (rep_a.label, rep_b.label), (rep_a.times, rep_b.times),
                           settings.alpha, settings.cv, n, periods)  # fmt: skip

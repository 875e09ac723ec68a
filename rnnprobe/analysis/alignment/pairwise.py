"""pairwise_distances: the distance matrix of many models' (or brains') representations, and its map."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._validation import (
    check_device,
    check_finite,
    check_int,
    check_numeric,
    check_option,
    check_progress,
    symmetric_with_zero_diagonal,
)
from ...errors import ArgumentError, ArgumentTypeError, ShapeError, describe
from .engine import pair_values
from .inputs import (
    DISTANCE_METRICS,
    METRICS,
    check_before_reading,
    check_same_stimuli,
    check_settings,
    read_representation,
)
from .over_time import METRIC_LABELS

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@dataclass
class DistanceMatrixResult:
    """Pairwise distances between representations of the same stimuli, and their 2-D map.

    Attributes
    ----------
    distances : ndarray, (n, n)
        Symmetric, zero diagonal. "shape": the shape distance; similarity metrics: arccos of the
        similarity (angular CKA / CCA, in radians; arccos of linear CKA is a metric).
    names : list of str
    embedding : ndarray, (n, 2)
        Classical (Torgerson) multidimensional scaling of the distances: the "map of models".
    metric : str
    alpha : float
    cv : int or None
    label : str, optional
        The distance's name on figures (default from the metric).
    """

    distances: np.ndarray
    names: list[str]
    embedding: np.ndarray
    metric: str
    alpha: float
    cv: int | None
    label: str | None = None

    def nearest(self) -> dict[str, str]:
        """Each representation's nearest other one."""
        masked = self.distances + np.diag(np.full(len(self.names), np.inf))
        return {name: self.names[int(np.argmin(row))] for name, row in zip(self.names, masked, strict=True)}

    def summary(self) -> dict[str, Any]:
        """Key numbers: the metric, the closest and farthest pairs, each one's nearest neighbour."""
        upper = np.triu_indices(len(self.names), 1)
        values = self.distances[upper]
        low, high = int(np.argmin(values)), int(np.argmax(values))
        pair = lambda k: f"{self.names[upper[0][k]]} - {self.names[upper[1][k]]}"  # noqa: E731
        return {
            "metric": self.metric, "representations": len(self.names), "cross-validated folds": self.cv or 0,
            "closest pair": pair(low), "closest distance": float(values[low]),
            "farthest pair": pair(high), "farthest distance": float(values[high]),
            **{f"nearest to {k}": v for k, v in self.nearest().items()},
        }  # fmt: skip

    def draw(self, ax: Axes) -> Any:
        """The map of representations (classical MDS of the distances)."""
        from ..plotting import OKABE_ITO

        colors = [OKABE_ITO[i % len(OKABE_ITO)] for i in range(len(self.names))]
        points = ax.scatter(self.embedding[:, 0], self.embedding[:, 1], c=colors, s=40)
        for (x, y), name in zip(self.embedding, self.names, strict=True):
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel("MDS 1")
        ax.set_ylabel("MDS 2")
        ax.set_aspect("equal", adjustable="datalim")
        return points

    def plot(self) -> Figure:
        """The distance matrix and the map."""
        from ..plotting import pyplot

        fig, (left, right) = pyplot().subplots(1, 2, figsize=(10, 4.2), layout="constrained")
        image = left.imshow(self.distances, cmap="viridis_r")
        ticks = np.arange(len(self.names))
        left.set_xticks(ticks, self.names, rotation=90, fontsize=7)
        left.set_yticks(ticks, self.names, fontsize=7)
        fig.colorbar(image, ax=left, label=self.label or _distance_label(self.metric))
        self.draw(right)
        right.set_title("map of representations")
        return fig


def _distance_label(metric: str) -> str:
    return METRIC_LABELS[metric] if metric in DISTANCE_METRICS else f"arccos({METRIC_LABELS[metric]}) (rad)"


def classical_mds(distances: np.ndarray, n_components: int = 2) -> np.ndarray:
    """Torgerson's classical MDS: the top eigenvectors of -J D^2 J / 2, scaled, signs fixed.

    Exact for distances between points of an ``n_components``-dimensional Euclidean space.
    """
    distances = check_finite(check_numeric(distances, name="distances").astype(np.float64), name="distances")
    if (
        distances.ndim != 2
        or distances.shape[0] != distances.shape[1]
        or distances.shape[0] < 2
        or not symmetric_with_zero_diagonal(distances)
    ):
        raise ShapeError(
            f"distances: got {describe(distances)}. Pass a symmetric (n, n) distance matrix with a zero diagonal, "
            f"n >= 2."
        )
    n_components = check_int("n_components", n_components, minimum=1)
    n = distances.shape[0]
    centring = np.eye(n) - 1 / n
    gram = -0.5 * centring @ (distances**2) @ centring
    values, vectors = np.linalg.eigh((gram + gram.T) / 2)
    order = np.argsort(values)[::-1][:n_components]
    coords = vectors[:, order] * np.sqrt(np.clip(values[order], 0, None))
    signs = np.sign(coords[np.argmax(np.abs(coords), axis=0), np.arange(coords.shape[1])])
    coords = coords * np.where(signs == 0, 1, signs)
    return np.pad(coords, ((0, 0), (0, n_components - coords.shape[1])))


def pairwise_distances(
    representations: Mapping[str, Any],
    *,
    layer: Any = None,
    time: Any = -1,
    metric: str = "shape",
    alpha: float = 1.0,
    variance: float = 0.99,
    sigma: float = 1.0,
    cv: int | None = None,
    seed: int | None = 0,
    n_jobs: int | None = None,
    device: str | None = None,
    progress: bool | None = None,
) -> DistanceMatrixResult:
    """The distance between every pair of representations of the same stimuli, and their map.

    Each representation is prepared (centred, whitened, factorised) once and reused by all its
    pairs (netrep refits both sides for every pair).

    Parameters
    ----------
    representations : dict of str to Recording or ndarray
        Name -> a Recording or an array (stimulus, unit) / (stimulus, time, *units), e.g. one entry per
        model and layer: ``{"BLT layer1": rec_blt, "B layer1": rec_b}``. Dask-backed Recordings are
        compared blockwise, as in :func:`compare_representations`.
    layer : str or dict of str to str, optional
        The layer of each Recording (one name for all, or name -> layer).
    time : int, default -1
        The time step (position) compared where a representation has several; -1: the last one.
    metric, alpha, variance, sigma, cv, seed
        As :func:`compare_representations`; similarities become distances by arccos.
    n_jobs : int, optional
        Pairs (and the representations' preparations) computed in this many threads (BLAS and LAPACK
        release the GIL); 1: one by one, each using the BLAS library's own threads. Default: the
        libraries' threads (torch's, else BLAS's), one thread each (the thread policy, docs/scale.md).
    device : str, optional
        A torch device (e.g. "cuda") that holds the representations and computes their preparations
        and pairs in float64, as :func:`compare_representations`.
    progress : bool, optional
        A progress bar over pairs.

    Returns
    -------
    DistanceMatrixResult

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> base = rng.normal(size=(60, 8))
    >>> nets = {f"net{i}": base + s * rng.normal(size=(60, 8)) for i, s in enumerate([0.1, 0.2, 2.0])}
    >>> result = pairwise_distances(nets)
    >>> result.nearest()["net0"]
    'net1'
    """
    if not isinstance(representations, Mapping) or len(representations) < 2:
        raise ArgumentTypeError(
            f"representations: got {describe(representations)}. Pass a dict of at least 2 names to Recordings "
            f"or arrays."
        )
    n_jobs = None if n_jobs is None else check_int("n_jobs", n_jobs, minimum=1, maximum=1024)
    names = [str(name) for name in representations]
    kernel = check_option("metric", metric, METRICS) == "rbf_cka"
    check_before_reading(list(representations.values()), metric, alpha, variance, cv, seed, sigma)
    device = check_device(device)
    steps, sources = [], []  # each (stimulus, 1, unit)
    for name, value in representations.items():
        chosen = layer.get(name) if isinstance(layer, Mapping) else layer
        rep = read_representation(value, chosen, _one_step(time), str(name), kernel=kernel, whole=device is not None)
        steps.append(rep.states)
        sources.append(rep.source)
    n = steps[0].shape[0]
    for x in steps[1:]:
        check_same_stimuli(n, x.shape[0])
    settings = check_settings(metric, alpha, variance, cv, seed, n, sigma)
    pairs = [(i, 0, j, 0) for i in range(len(steps)) for j in range(i + 1, len(steps))]
    from tqdm.auto import tqdm

    with tqdm(total=len(pairs) * (settings.cv or 1), desc="distances", unit="pair",
              disable=not check_progress(progress)) as bar:  # fmt: skip
        values = pair_values(steps, names, pairs, settings, n_jobs=n_jobs, progress=bar.update,
                             sources=sources, device=device)  # fmt: skip
    if settings.metric not in DISTANCE_METRICS:
        values = np.arccos(np.clip(values, -1.0, 1.0))
    distances = np.zeros((len(steps), len(steps)))
    rows, cols = np.triu_indices(len(steps), 1)
    distances[rows, cols] = distances[cols, rows] = values
    return DistanceMatrixResult(distances, names, classical_mds(distances), settings.metric, settings.alpha,
                                settings.cv)  # fmt: skip


def _one_step(time: Any) -> slice:
    if isinstance(time, bool) or not isinstance(time, int | np.integer):
        raise ArgumentError(f"time: got {describe(time)}. Pass one time position (an int; -1 for the last step).")
    return slice(int(time), int(time) + 1 or None)

"""Dynamical similarity analysis: compare_dynamics (two systems), pairwise_dynamics (many), fit_dmd."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._validation import check_int, check_numeric, check_option, check_progress, check_seed
from ...errors import ArgumentError, ArgumentTypeError, ShapeError, describe
from .dmd import DMDResult, check_embedding, fit_operator
from .similarity import orthogonal_similarity, spectral_distance

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from ..alignment import DistanceMatrixResult

METRICS = ("angular", "euclidean", "wasserstein")
LABELS = {
    "angular": "DSA angular distance (rad)",
    "euclidean": "DSA Euclidean distance",
    "wasserstein": "spectral distance (W2^2 of eigenvalues)",
}


@dataclass
class DSAResult:
    """The dynamical similarity of two systems.

    Attributes
    ----------
    distance : float
        "angular": arccos of the best ``cosine`` (radians, 0 for the same dynamics in any orthonormal
        basis); "euclidean": ||A - C B C'|| of the unit-norm operators = sqrt(2 - 2 cosine);
        "wasserstein": the squared 2-Wasserstein distance between the two sets of eigenvalues.
    metric : str
    cosine : float
        max over orthogonal C of <A, C B C'> / (||A|| ||B||) (NaN for "wasserstein").
    transform : ndarray or None
        The orthogonal C found (None for "wasserstein").
    reflection : bool
        Whether C has determinant -1 (a reflection; unreachable for a search over rotations only).
    dmd : tuple of DMDResult
        The two systems' operators.
    starts : int
        Starts of the search over O(n).
    converged : bool
        Whether the best start reached a local maximum (zero gradient, negative definite Hessian).
    """

    distance: float
    metric: str
    cosine: float
    transform: np.ndarray | None
    reflection: bool
    dmd: tuple[DMDResult, DMDResult]
    starts: int
    converged: bool

    def summary(self) -> dict[str, Any]:
        """Key numbers: the distance, the systems, their ranks and largest eigenvalues."""
        a, b = self.dmd
        return {
            "metric": self.metric, "distance": self.distance, "systems": f"{a.label} vs {b.label}",
            "rank": f"{a.rank} vs {b.rank}", "delays": a.n_delays, "reflection": self.reflection,
            "converged": self.converged, f"largest |eigenvalue| ({a.label})": float(np.abs(a.eigenvalues[0])),
            f"largest |eigenvalue| ({b.label})": float(np.abs(b.eigenvalues[0])),
        }  # fmt: skip

    def draw(self, ax: Any) -> Any:
        """Both systems' DMD eigenvalues in the complex plane (the spectra DSA compares)."""
        a, b = self.dmd
        a.draw(ax)
        points = ax.scatter(b.eigenvalues.real, b.eigenvalues.imag, s=18, marker="x", color="#D55E00", label=b.label)
        ax.legend(frameon=False, fontsize=8)
        ax.set_title(f"{LABELS[self.metric]}: {self.distance:.3g}", fontsize=9)
        return points

    def plot(self) -> Figure:
        """The eigenvalues, and A beside C B C' (B in A's basis) where an alignment was fitted."""
        from ..plotting import pyplot

        panels = 1 if self.transform is None else 3
        fig, axes = pyplot().subplots(1, panels, figsize=(4.2 * panels, 4), layout="constrained", squeeze=False)
        self.draw(axes[0, 0])
        if self.transform is not None:
            a, b = _padded(self.dmd[0].operator, self.dmd[1].operator)
            aligned = self.transform @ b @ self.transform.T
            scale = max(np.abs(a).max(), np.abs(aligned).max())
            for ax, matrix, title in ((axes[0, 1], a, self.dmd[0].label), (axes[0, 2], aligned, self.dmd[1].label)):
                image = ax.imshow(matrix, cmap="RdBu_r", vmin=-scale, vmax=scale)
                ax.set_title(f"operator: {title}" + (" (aligned)" if matrix is aligned else ""), fontsize=9)
            fig.colorbar(image, ax=axes[0, 2], shrink=0.8)
        return fig


def _padded(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad the smaller operator (extra coordinates that do not move) to the larger's size."""
    n = max(a.shape[0], b.shape[0])
    return (
        np.pad(a, ((0, n - a.shape[0]), (0, n - a.shape[0]))),
        np.pad(b, ((0, n - b.shape[0]), (0, n - b.shape[0]))),
    )


def _system(value: Any, layer: Any, time: Any, name: str, settings: tuple) -> DMDResult:
    """A DMDResult as given, or the DMD of a Recording's layer or of an array (trial, time, unit)."""
    if isinstance(value, DMDResult):
        return value
    from ..._validation import layer_states
    from ...recording import Recording

    n_delays, delay_interval, rank, ridge = settings
    if isinstance(value, Recording) and value.is_dask:  # blockwise where the fit allows (dsa.blockwise)
        from ..blockwise import dask_states
        from .blockwise import fit_operator_blockwise

        label = value.resolve_layer(layer)
        result = fit_operator_blockwise(dask_states(value, label, time=value.time_positions(label, time)),
                                        n_delays=n_delays, delay_interval=delay_interval, rank=rank, ridge=ridge,
                                        label=label)  # fmt: skip
        if result is not None:
            return result
    if not isinstance(value, Recording):
        if layer is not None:
            raise ArgumentError(f"layer: {name} is an array, which has no layers. Pass layer=None for arrays.")
        array = check_numeric(value, name=name)
        if array.ndim < 2 or 0 in array.shape:
            raise ShapeError(f"{name}: got {describe(array)}. Pass states (time, unit) or (trial, time, unit).")
        value = Recording({name: array[None] if array.ndim == 2 else array})  # the same checks as a layer's
    label, _, states = layer_states(value, layer, time=time, name=name)
    return fit_operator(states, n_delays=n_delays, delay_interval=delay_interval, rank=rank, ridge=ridge, label=label)


def fit_dmd(
    states: Any,
    layer: str | None = None,
    *,
    time: Any = None,
    n_delays: int = 1,
    delay_interval: int = 1,
    rank: int | None = None,
    ridge: float = 0.0,
) -> DMDResult:
    """The linear dynamics of a system in delay coordinates (HAVOK DMD), the operator DSA compares.

    Parameters
    ----------
    states : Recording or ndarray
        A Recording (its rows are trials: (trial, time, unit) per layer) or an array (trial, time, unit)
        or (time, unit).
    layer : str, optional
        The Recording's layer (default its only one).
    time : selection, optional
        Time steps used (default all).
    n_delays : int
        Delays in the embedding (1: the states themselves).
    delay_interval : int
        Steps between delays.
    rank : int, optional
        Leading delay coordinates kept (default all with nonzero singular value: the numerical rank).
    ridge : float
        Ridge penalty of the one-step regression.

    Returns
    -------
    DMDResult

    Examples
    --------
    >>> import numpy as np
    >>> theta = 0.3
    >>> rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    >>> x = np.empty((50, 2)); x[0] = [1.0, 0.0]
    >>> for t in range(49):
    ...     x[t + 1] = 0.95 * rotation @ x[t]
    >>> result = fit_dmd(x)
    >>> np.round(np.abs(result.eigenvalues), 3), np.round(np.abs(np.angle(result.eigenvalues)), 3)
    (array([0.95, 0.95]), array([0.3, 0.3]))
    """
    settings = check_embedding(n_delays, delay_interval, rank, ridge)
    return _system(states, layer, time, "states", settings)


def compare_dynamics(
    a: Any,
    b: Any,
    *,
    layer: Any = None,
    time: Any = None,
    n_delays: int = 1,
    delay_interval: int = 1,
    rank: int | None = None,
    ridge: float = 0.0,
    metric: str = "angular",
    n_init: int = 8,
    seed: int | None = 0,
) -> DSAResult:
    """Dynamical similarity analysis (Ostrow et al. 2023): how alike two systems' dynamics are.

    Each system's states are delay-embedded and reduced to a linear operator A (:func:`fit_dmd`); two
    operators are compared up to an orthogonal change of basis, rotations and reflections alike:
    arccos of max over C in O(n) of <A, C B C'> / (||A|| ||B||). The search is deterministic given
    ``seed`` (structured starts that are exact for orthogonally equivalent systems, ``n_init`` random
    ones, monotone minorise-maximise steps, then Newton steps to a verified local maximum). "wasserstein"
    compares only the operators' eigenvalues.

    Parameters
    ----------
    a, b : Recording, ndarray or DMDResult
        The systems: Recordings (rows are trials), arrays (trial, time, unit) or (time, unit), or
        operators from :func:`fit_dmd`. They may have different numbers of units and trials.
    layer : str or tuple of str, optional
        Layer of each Recording (one name for both, or (for a, for b)).
    time : selection, optional
        Time steps used (default all).
    n_delays, delay_interval, rank, ridge
        The embedding and regression (:func:`fit_dmd`); the same for both systems. Operators of
        different ranks are compared with the smaller one zero-padded.
    metric : {"angular", "euclidean", "wasserstein"}
    n_init : int
        Random starts in addition to the structured ones.
    seed : int, optional
        Seeds the random starts.

    Returns
    -------
    DSAResult

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = np.cumsum(rng.normal(size=(5, 100, 3)), axis=1)                  # 5 trials of a random walk
    >>> q = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    >>> q[:, 0] *= -np.sign(np.linalg.det(q))                                  # a reflection of the units
    >>> result = compare_dynamics(a, a @ q, n_delays=3)
    >>> bool(result.distance < 1e-6)
    True
    """
    settings = check_embedding(n_delays, delay_interval, rank, ridge)
    metric = check_option("metric", metric, METRICS)
    n_init = check_int("n_init", n_init, minimum=0, maximum=10_000)
    seed = check_seed(seed)
    layers = layer if isinstance(layer, tuple) else (layer, layer)
    if len(layers) != 2:
        raise ArgumentError(f"layer: got a tuple of {len(layers)}. Pass one name for both systems, or (for a, b).")
    dmd_a = _system(a, layers[0], time, "a", settings)
    dmd_b = _system(b, layers[1], time, "b", settings)
    return _pair(dmd_a, dmd_b, metric, n_init, seed)


def _pair(dmd_a: DMDResult, dmd_b: DMDResult, metric: str, n_init: int, seed: int | None) -> DSAResult:
    if metric == "wasserstein":
        distance = spectral_distance(dmd_a.eigenvalues, dmd_b.eigenvalues)
        return DSAResult(distance, metric, float("nan"), None, False, (dmd_a, dmd_b), 0, True)
    best = orthogonal_similarity(*_padded(dmd_a.operator, dmd_b.operator), n_init=n_init, seed=seed)
    # the angle between unit vectors from their chord, 2 arcsin(|u - v| / 2): accurate near 0, where arccos is not
    distance = 2 * float(np.arcsin(min(best.residual / 2, 1.0))) if metric == "angular" else best.residual
    reflection = bool(np.linalg.det(best.transform) < 0)
    return DSAResult(distance, metric, best.cosine, best.transform, reflection, (dmd_a, dmd_b), best.starts,
                     best.converged)  # fmt: skip


def pairwise_dynamics(
    systems: Mapping[str, Any],
    *,
    layer: Any = None,
    time: Any = None,
    n_delays: int = 1,
    delay_interval: int = 1,
    rank: int | None = None,
    ridge: float = 0.0,
    metric: str = "angular",
    n_init: int = 8,
    seed: int | None = 0,
    n_jobs: int = 1,
    progress: bool | None = None,
) -> DistanceMatrixResult:
    """The DSA distance between every pair of systems, and their map (classical MDS).

    Each system's operator is fitted once and reused by all its pairs.

    Parameters
    ----------
    systems : dict of str to Recording, ndarray or DMDResult
        Name -> system, as ``a`` and ``b`` of :func:`compare_dynamics`.
    layer : str or dict of str to str, optional
        The layer of each Recording (one name for all, or name -> layer).
    time, n_delays, delay_interval, rank, ridge, metric, n_init, seed
        As :func:`compare_dynamics`.
    n_jobs : int
        Pairs compared in parallel threads.
    progress : bool, optional
        A progress bar over pairs.

    Returns
    -------
    DistanceMatrixResult
        ``metric`` is "dsa_" + the metric.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(200)
    >>> ring = lambda w: np.stack([np.cos(w * t), np.sin(w * t)], axis=1)       # rotations at w rad/step
    >>> result = pairwise_dynamics({"slow": ring(0.1), "slow'": ring(0.1)[:, ::-1], "fast": ring(0.5)})
    >>> result.nearest()["slow"]
    "slow'"
    """
    from ..alignment.pairwise import DistanceMatrixResult, classical_mds

    if not isinstance(systems, Mapping) or len(systems) < 2:
        raise ArgumentTypeError(f"systems: got {describe(systems)}. Pass a dict of at least 2 names to systems.")
    settings = check_embedding(n_delays, delay_interval, rank, ridge)
    metric = check_option("metric", metric, METRICS)
    n_init, seed = check_int("n_init", n_init, minimum=0, maximum=10_000), check_seed(seed)
    n_jobs = check_int("n_jobs", n_jobs, minimum=1, maximum=1024)
    names = [str(name) for name in systems]
    dmds = [_system(value, layer.get(name) if isinstance(layer, Mapping) else layer, time, str(name), settings)
            for name, value in systems.items()]  # fmt: skip
    pairs = [(i, j) for i in range(len(dmds)) for j in range(i + 1, len(dmds))]
    from tqdm.auto import tqdm

    from ..parallel import worker_pool

    with worker_pool(n_jobs) as pmap, tqdm(total=len(pairs), desc="DSA", unit="pair",
                                           disable=not check_progress(progress)) as bar:  # fmt: skip
        values = []
        for result in pmap(lambda pair: _pair(dmds[pair[0]], dmds[pair[1]], metric, n_init, seed), pairs):
            values.append(result.distance)
            bar.update(1)
    distances = np.zeros((len(dmds), len(dmds)))
    rows, cols = np.triu_indices(len(dmds), 1)
    distances[rows, cols] = distances[cols, rows] = values
    return DistanceMatrixResult(distances, names, classical_mds(distances), f"dsa_{metric}", float("nan"), None,
                                label=LABELS[metric])  # fmt: skip

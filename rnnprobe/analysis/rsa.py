"""Representational dissimilarity matrices over time, batched, equal to rsatoolbox's.

For the condition patterns x_i (one per stimulus, or averaged per value of a
metadata column) of one layer at time step t, with n_units channels::

    euclidean     d_ij = ||x_i - x_j||^2 / n_units              (rsatoolbox 'euclidean': squared, per channel)
    euclidean_plain  d_ij = ||x_i - x_j||                        (plain Euclidean distance)
    correlation   d_ij = 1 - pearson(x_i, x_j)
    cosine        d_ij = 1 - x_i . x_j / (||x_i|| ||x_j||)
    mahalanobis   d_ij = (x_i - x_j)^T P (x_i - x_j) / n_units   (P: noise precision, n_units x n_units)
    crossnobis    d_ij = mean over folds f of (a_i - a_j)^T P (b_i - b_j) / n_units, with b the condition
                  means of the stimuli in fold f and a those of the other folds (cross-validated,
                  unbiased: Walther et al. 2016; rsatoolbox's calc_rdm_crossnobis)

All time steps are computed at once from Gram matrices (numpy's BLAS on the
CPU, with the symmetric rank-k product for large condition sets; torch on a
GPU; float64 accumulation by default), which is what makes this fast; results
equal ``rsatoolbox.rdm.calc_rdm``/``calc_rdm_movie`` to 1e-6
relative on the same data. Dissimilarities are stored as vectors of the upper
triangle in row-major order (``scipy.spatial.distance.squareform`` order, as
rsatoolbox does). Patterns with zero variance (correlation) or zero norm
(cosine) give NaN dissimilarities, as in rsatoolbox; rnnprobe warns when that happens.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._indexing import as_positions, normalize_index
from ..errors import (
    ArgumentError,
    ArgumentTypeError,
    RnnprobeWarning,
    ShapeError,
    UnknownNameError,
    check_option,
    describe,
    format_choices,
)
from ..recording import Recording
from ._ranks import rank_rows

if TYPE_CHECKING:  # pragma: no cover
    import rsatoolbox.rdm
    from matplotlib.figure import Figure

METHODS = ("euclidean", "euclidean_plain", "correlation", "cosine", "mahalanobis", "crossnobis")
_RSATOOLBOX_NAMES = {
    "euclidean": "squared euclidean",
    "euclidean_plain": "euclidean",
    "correlation": "correlation",
    "cosine": "cosine",
    "mahalanobis": "squared mahalanobis",
    "crossnobis": "crossnobis",
}


@dataclass
class RDMs:
    """A stack of RDMs (e.g. one per time step) over the same conditions.

    Attributes
    ----------
    dissimilarities : ndarray, (n_rdms, n_pairs)
        Upper triangles, row-major (squareform order).
    method : str
        One of ``METHODS`` (or a name taken over from rsatoolbox).
    conditions : dict of str to ndarray
        Per-condition descriptors (``rsatoolbox`` pattern descriptors), each of length n_conditions.
    rdm_descriptors : dict of str to ndarray
        Per-RDM descriptors (e.g. ``time``, ``time_index``), each of length n_rdms.
    descriptors : dict
        Descriptors of the whole stack (e.g. ``layer``).
    """

    dissimilarities: np.ndarray
    method: str
    conditions: dict[str, np.ndarray] = field(default_factory=dict)
    rdm_descriptors: dict[str, np.ndarray] = field(default_factory=dict)
    descriptors: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        d = np.asarray(self.dissimilarities, dtype=np.float64)
        if d.ndim == 1:
            d = d[None]
        n = (1 + np.sqrt(1 + 8 * d.shape[1])) / 2
        if d.ndim != 2 or n != int(n) or n < 2:
            raise ShapeError(
                f"dissimilarities: got {describe(self.dissimilarities)}, which is not a stack of upper triangles "
                f"of square matrices (n_pairs must be n (n - 1) / 2 with n >= 2)."
            )
        self.dissimilarities = d

    @property
    def n_rdms(self) -> int:
        return self.dissimilarities.shape[0]

    @property
    def n_conditions(self) -> int:
        return n_conditions(self.dissimilarities.shape[1])

    def matrices(self) -> np.ndarray:
        """Full symmetric matrices, (n_rdms, n_conditions, n_conditions), zero diagonal."""
        n = self.n_conditions
        out = np.zeros((self.n_rdms, n, n))
        rows, cols = np.triu_indices(n, k=1)
        out[:, rows, cols] = self.dissimilarities
        out[:, cols, rows] = self.dissimilarities
        return out

    def __repr__(self) -> str:
        return (
            f"<RDMs: {self.n_rdms} RDM(s) of {self.n_conditions} conditions, {self.method}"
            f"{', ' + ', '.join(f'{k}={v!r}' for k, v in self.descriptors.items()) if self.descriptors else ''}>"
        )

    def to_rsatoolbox(self) -> rsatoolbox.rdm.RDMs:
        """An ``rsatoolbox.rdm.RDMs`` with the same dissimilarities and descriptors (lossless)."""
        from rsatoolbox.rdm import RDMs as RsaRDMs

        return RsaRDMs(
            self.dissimilarities.copy(),
            dissimilarity_measure=_RSATOOLBOX_NAMES.get(self.method, self.method),
            descriptors=dict(self.descriptors),
            rdm_descriptors={k: np.asarray(v) for k, v in self.rdm_descriptors.items()},
            pattern_descriptors={k: np.asarray(v) for k, v in self.conditions.items()},
        )

    @classmethod
    def from_rsatoolbox(cls, rdms: rsatoolbox.rdm.RDMs) -> RDMs:
        """From an ``rsatoolbox.rdm.RDMs`` (dissimilarities and descriptors kept; rsatoolbox's own
        ``index`` descriptors are dropped, as rsatoolbox re-creates them)."""
        if not hasattr(rdms, "get_vectors") or not hasattr(rdms, "pattern_descriptors"):
            raise ArgumentTypeError(f"rdms: got {describe(rdms)}. Pass an rsatoolbox.rdm.RDMs.")
        names = {v: k for k, v in _RSATOOLBOX_NAMES.items()}
        measure = rdms.dissimilarity_measure or "unknown"
        return cls(
            np.array(rdms.get_vectors(), dtype=np.float64),
            names.get(measure, measure),
            conditions={k: np.asarray(v) for k, v in rdms.pattern_descriptors.items() if k != "index"},
            rdm_descriptors={k: np.asarray(v) for k, v in rdms.rdm_descriptors.items() if k != "index"},
            descriptors=dict(rdms.descriptors),
        )

    def mds(self, index: int = 0, *, n_components: int = 2, seed: int = 0) -> np.ndarray:
        """Metric MDS coordinates (n_conditions, n_components) of RDM ``index`` (scikit-learn, seeded).

        For squared measures ("euclidean", "mahalanobis") the square root is embedded, so that
        distances in the picture are distances, not squared distances.
        """
        from sklearn.manifold import MDS

        matrix = self.matrices()[index]
        if not np.isfinite(matrix).all():
            raise ArgumentError(f"index: RDM {index} has NaN dissimilarities; MDS needs a complete RDM.")
        if self.method in ("euclidean", "mahalanobis"):
            matrix = np.sqrt(np.clip(matrix, 0, None))
        import inspect

        options = {"n_components": n_components, "random_state": seed, "n_init": 4}
        if "metric_mds" in inspect.signature(MDS).parameters:  # scikit-learn >= 1.8
            options.update(metric_mds=True, metric="precomputed", init="random")
        else:
            options.update(dissimilarity="precomputed")
        return MDS(**options).fit_transform(matrix)

    def summary(self) -> dict[str, Any]:
        """Key numbers: how many RDMs of how many conditions, the method, the mean dissimilarity."""
        out: dict[str, Any] = {"RDMs": self.n_rdms, "conditions": self.n_conditions, "method": self.method}
        out.update({k: v for k, v in self.descriptors.items() if isinstance(v, str | int | float)})
        out["mean dissimilarity"] = float(np.nanmean(self.dissimilarities))
        return out

    def plot_mds(self, index: int = 0, *, color_by: str | None = None, seed: int = 0) -> Figure:
        """The conditions of RDM ``index`` in 2-D (metric MDS), coloured by a condition descriptor."""
        from ._plotting import category_colors, pyplot

        plt = pyplot()
        coords = self.mds(index, seed=seed)
        fig, ax = plt.subplots(figsize=(4.5, 4.2), layout="constrained")
        if color_by is not None:
            if color_by not in self.conditions:
                raise UnknownNameError(
                    f"color_by: {color_by!r} is not a condition descriptor. Available: "
                    f"{format_choices(self.conditions)}."
                )
            colors, legend = category_colors(self.conditions[color_by])
            for name, color in legend.items():
                ax.scatter([], [], color=color, label=str(name))
            ax.legend(title=color_by, fontsize=7, frameon=False)
        else:
            colors = "#0072B2"
        ax.scatter(coords[:, 0], coords[:, 1], c=colors, s=18)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal", adjustable="datalim")
        time = self.rdm_descriptors.get("time")
        ax.set_title(f"MDS ({self.method})" + (f", t = {time[index]}" if time is not None else ""))
        return fig

    def plot(self, *, max_panels: int = 12, condition_labels: str | None = None) -> Figure:
        """One panel per RDM (up to ``max_panels``, evenly spaced), shared colour scale (percentiles)."""
        from ._plotting import pyplot

        plt = pyplot()
        chosen = np.unique(np.linspace(0, self.n_rdms - 1, min(self.n_rdms, max_panels)).astype(int))
        mats = self.matrices()[chosen]
        finite = mats[np.isfinite(mats)]
        vmax = np.percentile(finite, 99) if finite.size else 1.0
        cols = min(len(chosen), 6)
        rows = int(np.ceil(len(chosen) / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols + 0.8, 2.2 * rows), squeeze=False,
                                 layout="constrained")  # fmt: skip
        labels = self.rdm_descriptors.get("time", np.arange(self.n_rdms))
        image = None
        for ax, index, mat in zip(axes.flat, chosen, mats, strict=False):
            image = ax.imshow(mat, cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
            ax.set_title(f"t = {labels[index]}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in list(axes.flat)[len(chosen) :]:
            ax.axis("off")
        if condition_labels is not None and self.n_conditions <= 30:
            names = [str(v) for v in self.conditions[condition_labels]]
            first = axes.flat[0]
            first.set_yticks(range(self.n_conditions), names, fontsize=6)
        if image is not None:
            fig.colorbar(image, ax=axes, shrink=0.8, label=f"dissimilarity ({self.method})")
        layer = self.descriptors.get("layer")
        if layer:
            fig.suptitle(f"RDMs of {layer} over time")
        return fig


def _condition_means(
    states: np.ndarray, recording: Recording, descriptor: str | None, stimuli: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Average (stimulus, time, units) states per value of ``descriptor`` (np.unique order, as rsatoolbox)."""
    if descriptor is None:
        conditions = {"stimulus": stimuli}
        conditions.update({c: np.asarray(recording.column(c))[stimuli] for c in recording.columns})
        return states, conditions
    values = np.asarray(recording.column(descriptor))[stimuli]
    unique, inverse = np.unique(values, return_inverse=True)
    sums = _group_sums(states, inverse, unique.size)
    counts = np.bincount(inverse, minlength=unique.size).astype(np.float64)
    return sums / counts[:, None, None], {descriptor: unique}


def _group_sums(states: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum of the (stimulus, ...) ``states`` of each group 0..n_groups-1: one sparse indicator product
    (one read of the states; ``np.add.at`` is ~10x slower)."""
    from scipy.sparse import csr_matrix

    indicator = csr_matrix((np.ones(groups.size), (groups, np.arange(groups.size))), shape=(n_groups, groups.size))
    flat = np.asarray(states, dtype=np.float64).reshape(groups.size, -1)
    return np.asarray(indicator @ flat).reshape(n_groups, *states.shape[1:])


def n_conditions(n_pairs: int) -> int:
    """Number of conditions n of RDMs with n (n - 1) / 2 upper-triangle dissimilarities."""
    return round((1 + np.sqrt(1 + 8 * n_pairs)) / 2)


class _Backend:
    """The few array operations that differ between numpy (CPU) and torch (e.g. on a GPU)."""

    def __init__(self, device: str | None, dtype: str) -> None:
        self.device, self.dtype = device, dtype
        self.numpy = device is None  # any named device (also "cpu") uses torch

    def asarray(self, array: np.ndarray) -> Any:
        if self.numpy:  # BLAS takes time-major views of stimulus-major stacks without a copy if units
            array = np.asarray(array, dtype=self.dtype)  # are contiguous
            return array if array.strides[-1] == array.itemsize else np.ascontiguousarray(array)
        import torch

        return torch.tensor(np.ascontiguousarray(array), dtype=getattr(torch, self.dtype), device=self.device)

    def to_numpy(self, array: Any) -> np.ndarray:
        return np.asarray(array if self.numpy else array.cpu().numpy(), dtype=np.float64)

    def mean(self, x: Any) -> Any:
        return x.mean(axis=2, keepdims=True) if self.numpy else x.mean(dim=2, keepdim=True)

    def norm(self, x: Any) -> Any:
        if self.numpy:
            return np.linalg.norm(x, axis=2, keepdims=True)
        import torch

        return torch.linalg.vector_norm(x, dim=2, keepdim=True)

    def diagonal(self, g: Any) -> Any:
        return np.diagonal(g, axis1=1, axis2=2) if self.numpy else g.diagonal(dim1=1, dim2=2)

    def sqrt_clipped(self, x: Any) -> Any:
        return np.sqrt(np.clip(x, 0, None)) if self.numpy else x.clamp(min=0).sqrt()

    def transpose(self, x: Any) -> Any:
        return x.transpose(0, 2, 1) if self.numpy else x.transpose(1, 2)

    def gram(self, x: Any, weighted: Any = None) -> Any:
        """Batched Gram matrices w x^T (w = x by default). With numpy and w = x, ``step @ step.T`` uses the
        symmetric rank-k product (half the flops) for large steps, one batched product for small ones."""
        if weighted is None and self.numpy and x.shape[1] >= 128:
            return np.stack([step @ step.T for step in x])
        return (x if weighted is None else weighted) @ self.transpose(x)


def _normalised_distances(patterns: np.ndarray, method: str) -> np.ndarray | None:
    """1 - cosine or 1 - Pearson r of every pair, (time, n_pairs), from raw Gram matrices and row
    means: no centred or normalised copies of the patterns (which cost as much as the products on
    this machine), and elementwise work on the upper triangles only. cov_ij = G_ij - p m_i m_j
    cancels digits when a pattern's mean is large against its spread; when mean^2 exceeds 1e6 times
    the variance anywhere (relative error above ~1e-10), or a pattern is constant, returns None and
    the caller centres explicitly."""
    n_units = patterns.shape[2]
    rows, cols = np.triu_indices(patterns.shape[1], k=1)
    gram = np.matmul(patterns, patterns.transpose(0, 2, 1))
    square = np.diagonal(gram, axis1=1, axis2=2)
    upper = gram[:, rows, cols]
    if method == "correlation":
        means = patterns.mean(axis=2)
        centred = square - n_units * means**2
        if not np.all(centred * (1 + 1e6) > square):
            return None
        upper -= n_units * means[:, rows] * means[:, cols]
        square = centred
    norms = np.sqrt(square)
    with np.errstate(invalid="ignore", divide="ignore"):
        upper /= norms[:, rows] * norms[:, cols]
    return np.subtract(1, upper, out=upper)


def _dissimilarities(patterns: Any, method: str, precision: Any, backend: _Backend) -> np.ndarray:
    """(time, n, units) patterns -> (time, n_pairs) upper triangles."""
    _, n, n_units = patterns.shape
    if backend.numpy and method in ("correlation", "cosine"):
        upper = _normalised_distances(patterns, method)
        if upper is not None:
            return upper
    if method == "correlation":
        patterns = patterns - backend.mean(patterns)
    if method in ("correlation", "cosine"):
        with np.errstate(invalid="ignore", divide="ignore"):
            patterns = patterns / backend.norm(patterns)
        full = 1 - backend.gram(patterns)
    else:
        gram = backend.gram(patterns, patterns @ precision if method == "mahalanobis" else None)
        diag = backend.diagonal(gram)
        full = diag[:, :, None] + diag[:, None, :] - 2 * gram
        full = backend.sqrt_clipped(full) if method == "euclidean_plain" else full / n_units
    rows, cols = np.triu_indices(n, k=1)
    return backend.to_numpy(full[:, rows, cols])


def _crossnobis(
    states: np.ndarray,
    recording: Recording,
    stim: np.ndarray,
    descriptor: str,
    cv_descriptor: str | None,
    precision: Any,
    backend: _Backend,
) -> np.ndarray:
    """Cross-validated Mahalanobis distances, all time steps at once; (time, n_pairs)."""
    conditions = np.asarray(recording.column(descriptor))[stim]
    if cv_descriptor is None:  # k-th presentation of each condition = fold k
        folds_of = np.zeros(len(stim), dtype=np.int64)
        for value in np.unique(conditions):
            members = np.flatnonzero(conditions == value)
            folds_of[members] = np.arange(members.size)
    else:
        if cv_descriptor not in recording.columns:
            raise UnknownNameError(
                f"cv_descriptor: {cv_descriptor!r} is not a metadata column. Available: "
                f"{format_choices(recording.columns)}."
            )
        folds_of = np.asarray(recording.column(cv_descriptor))[stim]
    folds = np.unique(folds_of)
    if folds.size < 2:
        raise ArgumentError(
            f"cv_descriptor: crossnobis needs at least 2 folds (runs), found {folds.size}. Give each condition "
            f"several presentations in different folds."
        )
    all_conditions, condition_of = np.unique(conditions, return_inverse=True)
    fold_of = np.searchsorted(folds, folds_of)
    n_cond, n_units = all_conditions.size, states.shape[2]
    # sums and counts of every (fold, condition) in one pass; each fold's training mean pools the
    # observations of all other folds (as rsatoolbox), its test mean those of the fold
    sums = _group_sums(states, fold_of * n_cond + condition_of, folds.size * n_cond)
    sums = sums.reshape(folds.size, n_cond, *states.shape[1:])
    counts = np.bincount(fold_of * n_cond + condition_of, minlength=folds.size * n_cond).reshape(folds.size, n_cond)
    total_sums, total_counts = sums.sum(axis=0), counts.sum(axis=0)
    for k, fold in enumerate(folds):
        for side in (total_counts - counts[k], counts[k]):  # training, then test
            if not side.all():
                missing = all_conditions[side == 0][:5].tolist()
                raise ArgumentError(
                    f"cv_descriptor: fold {fold!r} leaves conditions {missing} without data on one side of the "
                    f"split. Every condition needs presentations in every fold."
                )
    total = None
    for k in range(folds.size):
        train = (total_sums - sums[k]) / (total_counts - counts[k])[:, None, None]
        test = sums[k] / counts[k][:, None, None]
        train, test = backend.asarray(train.transpose(1, 0, 2)), backend.asarray(test.transpose(1, 0, 2))
        if precision is not None:
            train = train @ precision
        kernel = train @ backend.transpose(test)
        diag = backend.diagonal(kernel)
        d = diag[:, :, None] + diag[:, None, :] - kernel - backend.transpose(kernel)
        total = d if total is None else total + d
    full = total / folds.size / n_units
    rows, cols = np.triu_indices(n_cond, k=1)
    return backend.to_numpy(full[:, rows, cols])


def compute_rdms(
    recording: Recording,
    layer: str | None = None,
    *,
    method: str = "correlation",
    time: Any = None,
    descriptor: str | None = None,
    stimuli: Any = None,
    noise: np.ndarray | None = None,
    cv_descriptor: str | None = None,
    dtype: str = "float64",
    device: str | None = None,
) -> RDMs:
    """One RDM per time step of a layer (all steps computed in one batched product).

    Parameters
    ----------
    recording : Recording
    layer : str, optional
        May be omitted for a single-layer recording; units are flattened.
    method : {"euclidean", "euclidean_plain", "correlation", "cosine", "mahalanobis"}
        See the module docstring; "euclidean" is rsatoolbox's (squared, divided by the number of units).
    time : int, slice or sequence of int, optional
        Time steps (default: all).
    descriptor : str, optional
        Average the stimuli sharing a value of this metadata column into one condition
        (e.g. image id), as rsatoolbox's ``descriptor``.
    stimuli : optional
        Use only these stimuli (index, mask or list).
    noise : ndarray, (n_units, n_units), optional
        Noise precision matrix for "mahalanobis" (required) and "crossnobis" (default: identity).
    cv_descriptor : str, optional
        For "crossnobis": the metadata column giving each stimulus' fold (run, session). Default: the
        k-th presentation of each condition is fold k (as rsatoolbox).
    dtype : {"float64", "float32"}
        Accumulation precision (float32 is faster, also on a GPU).
    device : str, optional
        Compute with torch on this device, e.g. "cuda" (or "cpu" for torch on the CPU); by default
        numpy on the CPU (BLAS).

    Returns
    -------
    RDMs
        ``rdm_descriptors``: ``time`` and ``time_index``; ``descriptors``: ``layer``.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnprobe import Recording
    >>> rec = Recording({"h": np.random.default_rng(0).normal(size=(6, 4, 10))},
    ...                 metadata={"image": [0, 0, 1, 1, 2, 2]})
    >>> compute_rdms(rec, method="correlation", descriptor="image")
    <RDMs: 4 RDM(s) of 3 conditions, correlation, layer='h'>
    """
    if not isinstance(recording, Recording):
        raise ArgumentTypeError(f"recording: got {describe(recording)}. Pass an rnnprobe Recording.")
    check_option("method", method, METHODS)
    check_option("dtype", dtype, ("float64", "float32"))
    layer = recording._default_layer(layer)
    if descriptor is not None and descriptor not in recording.columns:
        raise UnknownNameError(
            f"descriptor: {descriptor!r} is not a metadata column. Available: {format_choices(recording.columns)}."
        )
    if method == "crossnobis" and descriptor is None:
        raise ArgumentError(
            "descriptor: method='crossnobis' needs the metadata column that names each condition (e.g. image id), "
            "with several presentations per condition across folds."
        )
    if cv_descriptor is not None and method != "crossnobis":
        raise ArgumentError(f"cv_descriptor: only used by method='crossnobis', got method={method!r}.")
    n_time = recording.shapes[layer][1]
    time_index = as_positions(normalize_index(time, n_time, name="time"), n_time)
    stim = recording.stimulus_index(stimuli)
    states = recording.get(layer, stimuli=stim, time=time_index, flatten=True)
    patterns, conditions = _condition_means(states.astype(np.float64, copy=False), recording, descriptor, stim)
    if patterns.shape[0] < 2:
        raise ArgumentError(
            f"stimuli/descriptor: got {patterns.shape[0]} condition(s); an RDM needs at least 2 (3 or more to "
            f"compare RDMs). Select more stimuli or another descriptor."
        )
    backend = _Backend(device, dtype)
    n_units = patterns.shape[2]
    precision = None
    if method in ("mahalanobis", "crossnobis") and not (method == "crossnobis" and noise is None):
        if noise is None:
            raise ArgumentError(
                "noise: method='mahalanobis' needs the noise precision matrix (n_units x n_units), e.g. the "
                "inverse of a shrinkage covariance estimate of the residuals."
            )
        precision = np.asarray(noise, dtype=np.float64)
        if precision.shape != (n_units, n_units):
            raise ShapeError(
                f"noise: got {describe(precision)}, but layer {layer!r} has {n_units} units. Pass a "
                f"({n_units}, {n_units}) precision matrix."
            )
        precision = backend.asarray(precision)
    elif noise is not None:
        raise ArgumentError(f"noise: only used by method='mahalanobis' or 'crossnobis', got method={method!r}.")
    if method == "crossnobis":
        dissim = _crossnobis(states, recording, stim, descriptor, cv_descriptor, precision, backend)
    else:
        # (time, condition, unit), contiguous (recordings hand out read-only, possibly strided views)
        dissim = _dissimilarities(backend.asarray(patterns.transpose(1, 0, 2)), method, precision, backend)
    bad = ~np.isfinite(dissim)
    if bad.any():
        warnings.warn(
            f"compute_rdms: {int(bad.sum())} dissimilarities are NaN at {int(bad.any(axis=1).sum())} time step(s): "
            f"some patterns are constant (correlation) or zero (cosine).",
            RnnprobeWarning,
            stacklevel=2,
        )
    times = np.asarray(recording.times[layer])[time_index]
    return RDMs(
        dissim,
        method,
        conditions=conditions,
        rdm_descriptors={"time": times, "time_index": time_index},
        descriptors={"layer": layer},
    )


COMPARE_METHODS = ("cosine", "corr", "spearman", "rho-a", "tau-a", "corr_cov", "cosine_cov")


def _vectors(rdms: Any, name: str) -> np.ndarray:
    """(n_rdms, n_pairs) float64 from our RDMs, rsatoolbox RDMs, or an array of upper triangles."""
    if isinstance(rdms, RDMs):
        return rdms.dissimilarities
    if hasattr(rdms, "get_vectors") and hasattr(rdms, "dissimilarity_measure"):
        return np.asarray(rdms.get_vectors(), dtype=np.float64)
    try:
        array = np.asarray(rdms, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(
            f"{name}: got {describe(rdms)}. Pass rnnprobe RDMs, rsatoolbox RDMs, or upper-triangle vectors."
        ) from exc
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2:
        raise ShapeError(f"{name}: got {describe(array)}. Pass (n_rdms, n_pairs) upper-triangle vectors.")
    return array


def paired_vectors(a: Any, b: Any, *, names: tuple[str, str] = ("a", "b")) -> tuple[np.ndarray, np.ndarray]:
    """Both stacks of RDMs as (n_rdms, n_pairs) vectors, checked to be over the same conditions."""
    va, vb = _vectors(a, names[0]), _vectors(b, names[1])
    if va.shape[1] != vb.shape[1]:
        raise ShapeError(
            f"{names[0]}, {names[1]}: RDMs of {va.shape[1]} and {vb.shape[1]} dissimilarities are not over the "
            f"same conditions. Compute both over the same stimuli/descriptor."
        )
    return va, vb


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norm_a = np.linalg.norm(a, axis=1)
    norm_b = np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a @ b.T) / np.outer(norm_a, norm_b)


DOT_METHODS = ("cosine", "corr", "spearman", "rho-a")


def similarity_transform(vectors: np.ndarray, method: str, *, ranked: bool = False) -> np.ndarray:
    """Rows f(v) such that ``method``'s similarity of RDMs a and b is the dot product f(a) . f(b).

    cosine: v / ||v||; corr: centred, then unit norm; spearman: ranks, centred, unit norm; rho-a:
    centred ranks times sqrt(12 / (n^3 - n)). Rows must be free of NaN; ``ranked=True`` says the
    rows already are ranks (spearman, rho-a).
    """
    v = np.asarray(vectors, dtype=np.float64)
    if method in ("spearman", "rho-a") and not ranked:
        v = rank_rows(v)
    if method != "cosine":
        v = v - v.mean(axis=1, keepdims=True)
    if method == "rho-a":
        n = v.shape[1]
        return v * np.sqrt(12 / (n**3 - n))
    with np.errstate(invalid="ignore", divide="ignore"):
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def _correlation_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of every row of ``a`` with every row of ``b``, from raw dot products and
    row sums (no centred copies of large stacks): cov = a.b - n mean_a mean_b."""
    n = a.shape[1]
    mean_a, mean_b = a.mean(axis=1), b.mean(axis=1)
    centred_norm_a = np.sqrt(np.maximum(np.einsum("ij,ij->i", a, a) - n * mean_a**2, 0))
    centred_norm_b = np.sqrt(np.maximum(np.einsum("ij,ij->i", b, b) - n * mean_b**2, 0))
    cov = a @ b.T - n * np.outer(mean_a, mean_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.outer(centred_norm_a, centred_norm_b)


def _whitened(vectors: np.ndarray, n_cond: int, sigma_k: np.ndarray | None) -> np.ndarray:
    """rsatoolbox's covariance weighting (no missing values, sigma_k None or per-condition variances):
    double-centred second-moment matrices, scaled, as vectors whose plain cosine is the weighted one."""
    rows, cols = np.triu_indices(n_cond, k=1)
    g = np.zeros((vectors.shape[0], n_cond, n_cond))
    g[:, rows, cols] = -0.5 * vectors
    g[:, cols, rows] = -0.5 * vectors
    g = g - g.mean(axis=1, keepdims=True) - g.mean(axis=2, keepdims=True) + g.mean(axis=(1, 2), keepdims=True)
    if sigma_k is not None:  # per-condition variances
        scale = 1 / np.sqrt(sigma_k)
        g = g * scale[None, :, None] * scale[None, None, :]
    diagonal = np.einsum("mii->mi", g)
    return np.concatenate([np.sqrt(2) * g[:, rows, cols], diagonal], axis=1)


def _cosine_full_covariance(a: np.ndarray, b: np.ndarray, n_cond: int, sigma_k: np.ndarray) -> np.ndarray:
    """cos = a^T V^-1 b / sqrt(a^T V^-1 a b^T V^-1 b), V = (C S C^T) o (C S C^T), C the pairwise contrasts
    (the dissimilarities' covariance under pattern noise S; rsatoolbox's definition for a full sigma_k)."""
    import scipy.linalg
    import scipy.sparse.linalg

    rows, cols = np.triu_indices(n_cond, k=1)
    xi = sigma_k[rows][:, rows] - sigma_k[rows][:, cols] - sigma_k[cols][:, rows] + sigma_k[cols][:, cols]
    v = xi * xi
    if v.shape[0] <= 8000:
        factor = scipy.linalg.cho_factor(v)
        a_m, b_m = scipy.linalg.cho_solve(factor, a.T).T, scipy.linalg.cho_solve(factor, b.T).T
    else:  # too large to factorise: conjugate gradients, one vector at a time
        a_m = np.array([scipy.sparse.linalg.cg(v, x, atol=0)[0] for x in a])
        b_m = np.array([scipy.sparse.linalg.cg(v, x, atol=0)[0] for x in b])
    norm_a = np.sqrt(np.einsum("ij,ij->i", a, a_m))
    norm_b = np.sqrt(np.einsum("ij,ij->i", b, b_m))
    return (a @ b_m.T) / np.outer(norm_a, norm_b)


def _tau_a(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall's tau-a from scipy's tau-b: tau_a = tau_b sqrt((n0 - t_a)(n0 - t_b)) / n0."""
    from scipy.stats import kendalltau

    n0 = a.shape[1] * (a.shape[1] - 1) / 2

    def ties(v: np.ndarray) -> float:
        _, counts = np.unique(v, return_counts=True)
        return float((counts * (counts - 1) / 2).sum())

    ties_a, ties_b = [ties(v) for v in a], [ties(v) for v in b]
    out = np.empty((a.shape[0], b.shape[0]))
    for i, (va, ta) in enumerate(zip(a, ties_a, strict=True)):
        for j, (vb, tb) in enumerate(zip(b, ties_b, strict=True)):
            tau_b = kendalltau(va, vb).statistic
            out[i, j] = 0.0 if np.isnan(tau_b) else tau_b * np.sqrt((n0 - ta) * (n0 - tb)) / n0
    return np.clip(out, -1, 1)


def compare_rdms(a: Any, b: Any, *, method: str = "corr", sigma_k: np.ndarray | None = None) -> np.ndarray:
    """Similarity of every RDM in ``a`` with every RDM in ``b``: an (n_a, n_b) matrix.

    Equals ``rsatoolbox.rdm.compare(a, b, method)`` to 1e-6, vectorised over many-vs-many (e.g.
    every model time step x every brain time point in one call).

    Parameters
    ----------
    a, b : RDMs, rsatoolbox RDMs, or (n_rdms, n_pairs) upper-triangle vectors
        Over the same conditions. Dissimilarities that are NaN in any RDM are left out of
        all comparisons (their positions must agree between ``a`` and ``b``, as in rsatoolbox).
    method : {"cosine", "corr", "spearman", "rho-a", "tau-a", "corr_cov", "cosine_cov"}
        Cosine similarity; Pearson correlation; Spearman correlation (ranks with ties averaged);
        rho-a (Spearman without tie correction, Nili et al. 2014); Kendall's tau-a;
        correlation or cosine after whitening with the dissimilarities' covariance under
        i.i.d. (or ``sigma_k``) pattern noise (Diedrichsen et al. 2021).
    sigma_k : ndarray, optional
        Pattern covariance for "corr_cov"/"cosine_cov": per-condition variances (n,) or (n, n). With a
        full (n, n) matrix the whitening solves V x = v directly (Cholesky); rsatoolbox uses conjugate
        gradients at scipy's default tolerance, so its values agree with these to about 1e-5 only.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> model, brain = rng.random((3, 45)), rng.random((5, 45))   # 3 model steps, 5 brain time points
    >>> compare_rdms(model, brain, method="spearman").shape
    (3, 5)
    """
    check_option("method", method, COMPARE_METHODS)
    va, vb = paired_vectors(a, b)
    nan_a, nan_b = np.isnan(va.sum(axis=0)), np.isnan(vb.sum(axis=0))  # no full-size boolean temporaries
    if not np.array_equal(nan_a, nan_b):
        raise ArgumentError(
            f"a, b: NaN dissimilarities at different positions ({int(nan_a.sum())} in a, {int(nan_b.sum())} in b). "
            f"Use the same conditions, or set the same pairs to NaN in both."
        )
    keep = ~nan_a
    if keep.sum() < 3:
        raise ArgumentError(f"a, b: only {int(keep.sum())} valid dissimilarities; comparisons need at least 3.")
    if method in ("corr_cov", "cosine_cov"):
        if not keep.all():
            raise ArgumentError(
                f"method={method!r} with NaN dissimilarities is not supported; leave out the conditions with "
                f"missing values, or use 'corr'/'cosine'."
            )
        n_cond = n_conditions(va.shape[1])
        if sigma_k is not None:
            sigma_k = np.asarray(sigma_k, dtype=np.float64)
            if sigma_k.shape not in ((n_cond,), (n_cond, n_cond)):
                raise ShapeError(f"sigma_k: got {describe(sigma_k)}. Pass ({n_cond},) or ({n_cond}, {n_cond}).")
        if method == "corr_cov":
            va, vb = va - va.mean(axis=1, keepdims=True), vb - vb.mean(axis=1, keepdims=True)
        if sigma_k is not None and sigma_k.ndim == 2:
            return _cosine_full_covariance(va, vb, n_cond, sigma_k)
        return _cosine_rows(_whitened(va, n_cond, sigma_k), _whitened(vb, n_cond, sigma_k))
    if not keep.all():
        va, vb = va[:, keep], vb[:, keep]
    if method == "corr":  # from dot products and sums: no centred copies of large stacks
        return _correlation_rows(va, vb)
    if method == "tau-a":
        return _tau_a(va, vb)
    if method == "cosine":
        return similarity_transform(va, method) @ similarity_transform(vb, method).T
    return _rank_similarity(va, vb, method)


def _rank_similarity(a: np.ndarray, b: np.ndarray, method: str, *, block_bytes: int = 2**25) -> np.ndarray:
    """Spearman or rho-a of every row of ``a`` with every row of ``b`` (rows free of NaN).

    The smaller stack is ranked once; the larger one is ranked in blocks of rows into one reused
    buffer (~32 MB), so large stacks never allocate their full rank matrix.
    """
    swap = len(a) > len(b)
    small, large = (b, a) if swap else (a, b)
    n = small.shape[1]
    ranks_small = rank_rows(small)
    out = np.empty((len(small), len(large)))
    rows = max(1, min(len(large), block_bytes // (8 * n)))
    buffer = np.empty((rows, n))
    for start in range(0, len(large), rows):
        ranks = rank_rows(large[start : start + rows], out=buffer[: min(rows, len(large) - start)])
        if method == "spearman":
            block = _correlation_rows(ranks_small, ranks)
        else:  # rho-a; ranks always have mean (n + 1) / 2
            block = (ranks_small @ ranks.T - n * ((n + 1) / 2) ** 2) * (12 / (n**3 - n))
        out[:, start : start + len(ranks)] = block
    return out.T if swap else out


def _nan_ranks(vectors: np.ndarray) -> np.ndarray:
    """Average-tie ranks of each row, ignoring NaN (which stays NaN), as rsatoolbox's _nan_rank_data."""
    from scipy.stats import rankdata

    out = np.full(vectors.shape, np.nan)
    for i, row in enumerate(vectors):
        valid = ~np.isnan(row)
        out[i, valid] = rankdata(row[valid])
    return out


def pool_rdms(rdms: Any, *, method: str = "corr") -> np.ndarray:
    """The RDM (vector) with the best average similarity to ``rdms`` under ``method`` (rsatoolbox's ``pool_rdm``).

    Normalised means for "cosine"/"corr" (and their whitened variants), mean ranks for the rank methods.
    """
    check_option("method", method, COMPARE_METHODS)
    v = _vectors(rdms, "rdms")
    if method in ("cosine", "cosine_cov"):
        v = v / np.sqrt(np.nanmean(v**2, axis=1, keepdims=True))
        return np.nanmean(v, axis=0)
    if method in ("corr", "corr_cov"):
        v = v - np.nanmean(v, axis=1, keepdims=True)
        v = v / np.nanstd(v, axis=1, keepdims=True)
        pooled = np.nanmean(v, axis=0)
        return pooled - np.nanmin(pooled)
    return np.nanmean(_nan_ranks(v), axis=0)  # spearman, rho-a, tau-a: averaged ranks (NaN-aware)


def noise_ceiling(subject_rdms: Any, *, method: str = "corr", groups: np.ndarray | None = None) -> tuple[float, float]:
    """Lower and upper bound of the best possible model performance, from per-subject RDMs.

    Upper bound: mean similarity of each subject's RDM to the pooled RDM of all subjects; lower
    bound: to the pooled RDM of the other subjects (leave one out). Nili et al. 2014; equal to
    ``rsatoolbox.inference.boot_noise_ceiling`` without bootstrapping.

    Parameters
    ----------
    groups : ndarray, optional
        A subject id per RDM: RDMs sharing an id (e.g. copies drawn by a bootstrap) are left out
        together and count once, as rsatoolbox does. Default: each RDM is its own subject.

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.random.default_rng(0).random(45)
    >>> subjects = truth + np.random.default_rng(1).normal(0, 0.3, size=(6, 45))
    >>> low, high = noise_ceiling(subjects, method="corr")
    >>> bool(0 < low < high < 1)
    True
    """
    v = _vectors(subject_rdms, "subject_rdms")
    groups = np.arange(v.shape[0]) if groups is None else np.asarray(groups)
    if groups.shape != (v.shape[0],):
        raise ShapeError(f"groups: got {describe(groups)}. Pass one subject id per RDM ({v.shape[0]}).")
    ids = np.unique(groups)
    if ids.size < 2:
        raise ArgumentError(
            f"subject_rdms: got RDMs of {ids.size} subject; a noise ceiling needs at least 2 subjects/sessions."
        )
    pooled_all = pool_rdms(v, method=method)
    lower, upper = [], []
    for subject in ids:
        mine = v[groups == subject][:1]  # copies of one subject are identical
        others = pool_rdms(v[groups != subject], method=method)
        lower.append(compare_rdms(others, mine, method=method)[0, 0])
        upper.append(compare_rdms(pooled_all, mine, method=method)[0, 0])
    return float(np.mean(lower)), float(np.mean(upper))


@dataclass
class ModelDataComparison:
    """How well each model RDM (e.g. per time step) matches each data RDM (e.g. per brain time point).

    Attributes
    ----------
    similarity : ndarray, (n_model, n_data)
    method : str
    model_times, data_times : ndarray
    noise_ceiling : tuple of float or None
        (lower, upper) bound for a single data RDM, from per-subject RDMs.
    model_label, data_label : str
    """

    similarity: np.ndarray
    method: str
    model_times: np.ndarray
    data_times: np.ndarray
    noise_ceiling: tuple[float, float] | None = None
    model_label: str = "model"
    data_label: str = "data"

    def best(self) -> dict[str, Any]:
        """The best-matching (model time, data time) and its similarity."""
        i, j = np.unravel_index(np.nanargmax(self.similarity), self.similarity.shape)
        return {
            "model_time": self.model_times[i].item(),
            "data_time": self.data_times[j].item(),
            "similarity": float(self.similarity[i, j]),
        }

    def summary(self) -> dict[str, Any]:
        """Key numbers: the best-matching model time (and data time), its similarity, the noise ceiling."""
        best = self.best()
        out: dict[str, Any] = {"method": self.method, f"best {self.model_label} time": best["model_time"]}
        if self.similarity.shape[1] > 1:
            out[f"best {self.data_label} time"] = best["data_time"]
        out["best similarity"] = best["similarity"]
        if self.noise_ceiling is not None:
            out["noise ceiling lower"], out["noise ceiling upper"] = map(float, self.noise_ceiling)
        return out

    def plot(self) -> Figure:
        """Similarity over model time (one data RDM; noise-ceiling band when known), or the
        model-time x data-time matrix (several data RDMs)."""
        from ._plotting import pyplot

        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5.5, 4), layout="constrained")
        if self.similarity.shape[1] == 1:
            if self.noise_ceiling is not None:
                low, high = self.noise_ceiling
                ax.axhspan(low, high, color="#999999", alpha=0.35, lw=0, label="noise ceiling")
            ax.plot(self.model_times, self.similarity[:, 0], color="#0072B2", marker="o", ms=4, label=self.model_label)
            ax.axhline(0, color="black", lw=0.6)
            ax.set_xlabel(f"{self.model_label} time step")
            ax.set_ylabel(f"RDM similarity ({self.method})")
            ax.legend(frameon=False)
            ax.set_title(f"{self.model_label} vs {self.data_label}")
        else:
            limit = float(np.nanmax(np.abs(self.similarity)))
            image = ax.imshow(self.similarity, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit)
            fig.colorbar(image, ax=ax, label=f"RDM similarity ({self.method})")
            ax.set_xlabel(f"{self.data_label} time point (index)")
            ax.set_ylabel(f"{self.model_label} time step (index)")
            ax.set_title(f"{self.model_label} time x {self.data_label} time")
        return fig


def compare_model_to_data(
    model: Any,
    data: Any,
    *,
    method: str = "corr",
    subjects: Any = None,
    model_label: str = "model",
    data_label: str = "data",
) -> ModelDataComparison:
    """Compare model RDMs (over model time) with data RDMs (one, or over data time), in one call.

    Parameters
    ----------
    model, data : RDMs (or rsatoolbox RDMs / vectors) over the same conditions
    method : str
        See :func:`compare_rdms`.
    subjects : RDMs, optional
        Per-subject (or per-session) RDMs of the data; gives the noise ceiling, and is averaged
        (pooled) into the data RDM when ``data`` is None.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> subjects = rng.random(45) + rng.normal(0, 0.2, size=(5, 45))
    >>> result = compare_model_to_data(rng.random((4, 45)), None, subjects=subjects)
    >>> result.similarity.shape, result.noise_ceiling is not None
    ((4, 1), True)
    """
    if data is None:
        if subjects is None:
            raise ArgumentError("data: got None without subjects. Pass data RDMs, or per-subject RDMs as subjects.")
        data_vectors = pool_rdms(subjects, method=method)[None]
    else:
        data_vectors = _vectors(data, "data")
    model_vectors = _vectors(model, "model")
    ceiling = noise_ceiling(subjects, method=method) if subjects is not None else None

    def times(rdms: Any, n: int) -> np.ndarray:
        return np.asarray(rdms.rdm_descriptors.get("time", np.arange(n))) if isinstance(rdms, RDMs) else np.arange(n)

    return ModelDataComparison(
        compare_rdms(model_vectors, data_vectors, method=method),
        method,
        times(model, model_vectors.shape[0]),
        times(data, data_vectors.shape[0]),
        ceiling,
        model_label,
        data_label,
    )

"""Representational dissimilarity matrices over time, batched, equal to rsatoolbox's.

For the condition patterns x_i (one per stimulus, or averaged per value of a
metadata column) of one layer at time step t, with n_units channels::

    euclidean     d_ij = ||x_i - x_j||^2 / n_units              (rsatoolbox 'euclidean': squared, per channel)
    euclidean_plain  d_ij = ||x_i - x_j||                        (plain Euclidean distance)
    correlation   d_ij = 1 - pearson(x_i, x_j)
    cosine        d_ij = 1 - x_i . x_j / (||x_i|| ||x_j||)
    mahalanobis   d_ij = (x_i - x_j)^T P (x_i - x_j) / n_units   (P: noise precision, n_units x n_units)

All time steps are computed at once from Gram matrices (one batched matrix
product in torch, float64 accumulation by default), which is what makes this
fast; results equal ``rsatoolbox.rdm.calc_rdm``/``calc_rdm_movie`` to 1e-6
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

if TYPE_CHECKING:  # pragma: no cover
    import rsatoolbox.rdm
    from matplotlib.figure import Figure

METHODS = ("euclidean", "euclidean_plain", "correlation", "cosine", "mahalanobis")
_RSATOOLBOX_NAMES = {
    "euclidean": "squared euclidean",
    "euclidean_plain": "euclidean",
    "correlation": "correlation",
    "cosine": "cosine",
    "mahalanobis": "squared mahalanobis",
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
        return round((1 + np.sqrt(1 + 8 * self.dissimilarities.shape[1])) / 2)

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
    sums = np.zeros((unique.size, *states.shape[1:]))
    np.add.at(sums, inverse, states)
    counts = np.bincount(inverse, minlength=unique.size).astype(np.float64)
    return sums / counts[:, None, None], {descriptor: unique}


def _dissimilarities(patterns: Any, method: str, precision: Any) -> Any:
    """(time, n, units) torch tensor -> (time, n_pairs) upper triangles."""
    import torch

    _, n, n_units = patterns.shape
    if method == "correlation":
        patterns = patterns - patterns.mean(dim=2, keepdim=True)
    if method in ("correlation", "cosine"):
        patterns = patterns / torch.linalg.vector_norm(patterns, dim=2, keepdim=True)
        gram = torch.bmm(patterns, patterns.transpose(1, 2))
        full = 1 - gram
    else:
        weighted = patterns @ precision if method == "mahalanobis" else patterns
        gram = torch.bmm(weighted, patterns.transpose(1, 2))
        diag = torch.diagonal(gram, dim1=1, dim2=2)
        full = diag[:, :, None] + diag[:, None, :] - 2 * gram
        if method == "euclidean_plain":
            full = torch.sqrt(torch.clamp(full, min=0))
        else:
            full = full / n_units
    rows, cols = torch.triu_indices(n, n, offset=1)
    return full[:, rows, cols]


def compute_rdms(
    recording: Recording,
    layer: str | None = None,
    *,
    method: str = "correlation",
    time: Any = None,
    descriptor: str | None = None,
    stimuli: Any = None,
    noise: np.ndarray | None = None,
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
        Noise precision matrix for "mahalanobis".
    dtype : {"float64", "float32"}
        Accumulation precision (float32 is faster, also on a GPU).
    device : str, optional
        Torch device for the computation, e.g. "cuda".

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
    import torch

    if not isinstance(recording, Recording):
        raise ArgumentTypeError(f"recording: got {describe(recording)}. Pass an rnnprobe Recording.")
    check_option("method", method, METHODS)
    check_option("dtype", dtype, ("float64", "float32"))
    layer = recording._default_layer(layer)
    if descriptor is not None and descriptor not in recording.columns:
        raise UnknownNameError(
            f"descriptor: {descriptor!r} is not a metadata column. Available: {format_choices(recording.columns)}."
        )
    n_time = recording.shapes[layer][1]
    time_index = as_positions(normalize_index(time, n_time, name="time"), n_time)
    stim = recording.stimulus_index(stimuli)
    states = recording.get(layer, stimuli=stim, time=time_index, flatten=True)
    patterns, conditions = _condition_means(states.astype(np.float64), recording, descriptor, stim)
    if patterns.shape[0] < 2:
        raise ArgumentError(
            f"stimuli/descriptor: got {patterns.shape[0]} condition(s); an RDM needs at least 2 (3 or more to "
            f"compare RDMs). Select more stimuli or another descriptor."
        )
    torch_dtype = getattr(torch, dtype)
    x = torch.from_numpy(np.ascontiguousarray(patterns.transpose(1, 0, 2))).to(device or "cpu", torch_dtype)
    precision = None
    if method == "mahalanobis":
        if noise is None:
            raise ArgumentError(
                "noise: method='mahalanobis' needs the noise precision matrix (n_units x n_units), e.g. the "
                "inverse of a shrinkage covariance estimate of the residuals."
            )
        precision = np.asarray(noise, dtype=np.float64)
        if precision.shape != (x.shape[2],) * 2:
            raise ShapeError(
                f"noise: got {describe(precision)}, but layer {layer!r} has {x.shape[2]} units. Pass a "
                f"({x.shape[2]}, {x.shape[2]}) precision matrix."
            )
        precision = torch.from_numpy(precision).to(x.device, torch_dtype)
    elif noise is not None:
        raise ArgumentError(f"noise: only used by method='mahalanobis', got method={method!r}.")
    with torch.no_grad():
        dissim = _dissimilarities(x, method, precision).cpu().numpy().astype(np.float64)
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

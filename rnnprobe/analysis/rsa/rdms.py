"""`RDMs`: a stack of representational dissimilarity matrices (e.g. one per time step)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import ArgumentError, ArgumentTypeError, ShapeError, UnknownNameError, describe, format_choices

if TYPE_CHECKING:  # pragma: no cover
    import rsatoolbox.rdm
    from matplotlib.figure import Figure

DISTANCES = ("euclidean", "euclidean_plain", "correlation", "cosine", "mahalanobis", "crossnobis")
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
    distance : str
        One of ``DISTANCES`` (or a name taken over from rsatoolbox).
    conditions : dict of str to ndarray
        Per-condition descriptors (``rsatoolbox`` pattern descriptors), each of length n_conditions.
    rdm_descriptors : dict of str to ndarray
        Per-RDM descriptors (e.g. ``time``, ``time_index``), each of length n_rdms.
    descriptors : dict
        Descriptors of the whole stack (e.g. ``layer``).
    """

    dissimilarities: np.ndarray
    distance: str
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
        """Number of RDMs in the stack."""
        return self.dissimilarities.shape[0]

    @property
    def n_conditions(self) -> int:
        """Number of conditions of each RDM."""
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
            f"<RDMs: {self.n_rdms} RDM(s) of {self.n_conditions} conditions, {self.distance}"
            f"{', ' + ', '.join(f'{k}={v!r}' for k, v in self.descriptors.items()) if self.descriptors else ''}>"
        )

    def to_rsatoolbox(self) -> rsatoolbox.rdm.RDMs:
        """An ``rsatoolbox.rdm.RDMs`` with the same dissimilarities and descriptors (lossless)."""
        from rsatoolbox.rdm import RDMs as RsaRDMs

        return RsaRDMs(
            self.dissimilarities.copy(),
            dissimilarity_measure=_RSATOOLBOX_NAMES.get(self.distance, self.distance),
            descriptors=dict(self.descriptors),
            rdm_descriptors={k: np.asarray(v) for k, v in self.rdm_descriptors.items()},
            pattern_descriptors={k: np.asarray(v) for k, v in self.conditions.items()},
        )

    @classmethod
    def from_rsatoolbox(cls, rdms: rsatoolbox.rdm.RDMs) -> RDMs:
        """From an ``rsatoolbox.rdm.RDMs`` (dissimilarities and descriptors kept; rsatoolbox's own
        ``index`` descriptors are dropped, as rsatoolbox re-creates them).
        """
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
        if self.distance in ("euclidean", "mahalanobis"):
            matrix = np.sqrt(np.clip(matrix, 0, None))
        import inspect

        options = {"n_components": n_components, "random_state": seed, "n_init": 4}
        if "metric_mds" in inspect.signature(MDS).parameters:  # scikit-learn >= 1.8
            options.update(metric_mds=True, metric="precomputed", init="random")
        else:
            options.update(dissimilarity="precomputed")
        return MDS(**options).fit_transform(matrix)

    def summary(self) -> dict[str, Any]:
        """Key numbers: how many RDMs of how many conditions, the distance, the mean dissimilarity."""
        out: dict[str, Any] = {"RDMs": self.n_rdms, "conditions": self.n_conditions, "distance": self.distance}
        out.update({k: v for k, v in self.descriptors.items() if isinstance(v, str | int | float)})
        out["mean dissimilarity"] = float(np.nanmean(self.dissimilarities))
        return out

    def plot_mds(self, index: int = 0, *, color_by: str | None = None, seed: int = 0) -> Figure:
        """The conditions of RDM ``index`` in 2-D (metric MDS), coloured by a condition descriptor."""
        from ..plotting import category_colors, pyplot

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
        ax.set_title(f"MDS ({self.distance})" + (f", t = {time[index]}" if time is not None else ""))
        return fig

    def plot(self, *, max_panels: int = 12, condition_labels: str | None = None) -> Figure:
        """One panel per RDM (up to ``max_panels``, evenly spaced), shared colour scale (percentiles)."""
        from ..plotting import pyplot

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
            fig.colorbar(image, ax=axes, shrink=0.8, label=f"dissimilarity ({self.distance})")
        layer = self.descriptors.get("layer")
        if layer:
            fig.suptitle(f"RDMs of {layer} over time")
        return fig


def n_conditions(n_pairs: int) -> int:
    """Number of conditions n of RDMs with n (n - 1) / 2 upper-triangle dissimilarities."""
    return round((1 + np.sqrt(1 + 8 * n_pairs)) / 2)


def as_vectors(rdms: Any, name: str) -> np.ndarray:
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
    # any number of pairs >= 1: resampled RDMs (bootstraps over conditions) keep a subset of the pairs
    if array.ndim != 2 or 0 in array.shape:
        raise ShapeError(f"{name}: got {describe(array)}. Pass (n_rdms, n_pairs) upper-triangle vectors.")
    if np.isinf(array).any():
        raise ArgumentError(f"{name}: holds infinite dissimilarities. Pass finite values (NaN marks a missing one).")
    return array


def check_whole(vectors: np.ndarray, name: str, why: str) -> int:
    """The number of conditions of RDM vectors that must be whole upper triangles (n (n - 1) / 2 values)."""
    n = n_conditions(vectors.shape[1])
    if n * (n - 1) // 2 != vectors.shape[1]:
        raise ShapeError(
            f"{name}: {vectors.shape[1]} dissimilarities are not the upper triangle of an RDM (n (n - 1) / 2 "
            f"values: 1, 3, 6, 10, ...); {why} needs whole RDMs."
        )
    return n


def paired_vectors(a: Any, b: Any, *, names: tuple[str, str] = ("a", "b")) -> tuple[np.ndarray, np.ndarray]:
    """Both stacks of RDMs as (n_rdms, n_pairs) vectors, checked to be over the same conditions."""
    va, vb = as_vectors(a, names[0]), as_vectors(b, names[1])
    if va.shape[1] != vb.shape[1]:
        raise ShapeError(
            f"{names[0]}, {names[1]}: RDMs of {va.shape[1]} and {vb.shape[1]} dissimilarities are not over the "
            f"same conditions. Compute both over the same stimuli/descriptor."
        )
    return va, vb

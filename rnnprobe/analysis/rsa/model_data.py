"""`compare_model_to_data`: model RDMs over model time against data RDMs, with the noise ceiling."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import ArgumentError
from .._scores import peak_position
from .ceiling import noise_ceiling, pool_rdms
from .compare import compare_rdms
from .rdms import RDMs, as_vectors

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


@dataclass
class RSAResult:
    """How well each model RDM (e.g. per time step) matches each data RDM (e.g. per brain time point).

    Attributes
    ----------
    similarity : ndarray, (n_model, n_data)
    comparison : str
    model_times, data_times : ndarray
    noise_ceiling : tuple of float or None
        (lower, upper) bound for a single data RDM, from per-subject RDMs.
    model_label, data_label : str
    periods : dict
        The model recording's periods (marked on the figure over model time).
    """

    similarity: np.ndarray
    comparison: str
    model_times: np.ndarray
    data_times: np.ndarray
    noise_ceiling: tuple[float, float] | None = None
    model_label: str = "model"
    data_label: str = "data"
    periods: dict[str, tuple[float, float]] = field(default_factory=dict)

    def best(self) -> dict[str, Any]:
        """The best-matching (model time, data time) and its similarity (None, None and NaN where no similarity is
        defined, rather than numpy's All-NaN ValueError).
        """
        peak = peak_position(self.similarity)
        if peak is None:
            return {"model_time": None, "data_time": None, "similarity": float("nan")}
        i, j = peak
        return {
            "model_time": self.model_times[i].item(),
            "data_time": self.data_times[j].item(),
            "similarity": float(self.similarity[i, j]),
        }

    def summary(self) -> dict[str, Any]:
        """Key numbers: the best-matching model time (and data time), its similarity, the noise ceiling."""
        best = self.best()
        out: dict[str, Any] = {"comparison": self.comparison, f"best {self.model_label} time": best["model_time"]}
        if self.similarity.shape[1] > 1:
            out[f"best {self.data_label} time"] = best["data_time"]
        out["best similarity"] = best["similarity"]
        if self.noise_ceiling is not None:
            out["noise ceiling lower"], out["noise ceiling upper"] = map(float, self.noise_ceiling)
        return out

    def plot(self) -> Figure:
        """Similarity over model time (one data RDM; noise-ceiling band when known), or the
        model-time x data-time matrix (several data RDMs).
        """
        from ..plotting import pyplot

        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5.5, 4), layout="constrained")
        if self.similarity.shape[1] == 1:
            if self.noise_ceiling is not None:
                low, high = self.noise_ceiling
                ax.axhspan(low, high, color="#999999", alpha=0.35, lw=0, label="noise ceiling")
            ax.plot(self.model_times, self.similarity[:, 0], color="#0072B2", marker="o", ms=4, label=self.model_label)
            ax.axhline(0, color="black", lw=0.6)
            ax.set_xlabel(f"{self.model_label} time step")
            ax.set_ylabel(f"RDM similarity ({self.comparison})")
            from ..plotting import mark_periods

            mark_periods(ax, self.periods)
            ax.legend(frameon=False)
            ax.set_title(f"{self.model_label} vs {self.data_label}")
        else:
            limit = float(np.nanmax(np.abs(self.similarity)))
            image = ax.imshow(self.similarity, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit)
            fig.colorbar(image, ax=ax, label=f"RDM similarity ({self.comparison})")
            ax.set_xlabel(f"{self.data_label} time point (index)")
            ax.set_ylabel(f"{self.model_label} time step (index)")
            ax.set_title(f"{self.model_label} time x {self.data_label} time")
            from ..plotting import mark_periods

            index = np.arange(len(self.model_times), dtype=float)  # the image's rows are model time indices
            rows = {name: tuple(np.interp(bounds, self.model_times, index)) for name, bounds in self.periods.items()}
            mark_periods(ax, rows, axis="y")
        return fig


def compare_model_to_data(
    model: Any,
    data: Any,
    *,
    comparison: str = "corr",
    subjects: Any = None,
    model_label: str = "model",
    data_label: str = "data",
) -> RSAResult:
    """Compare model RDMs (over model time) with data RDMs (one, or over data time), in one call.

    Parameters
    ----------
    model, data : RDMs (or rsatoolbox RDMs / vectors) over the same conditions
    comparison : str
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
        data_vectors = pool_rdms(subjects, comparison=comparison)[None]
    else:
        data_vectors = as_vectors(data, "data")
    model_vectors = as_vectors(model, "model")
    ceiling = noise_ceiling(subjects, comparison=comparison) if subjects is not None else None

    def times(rdms: Any, n: int) -> np.ndarray:
        return np.asarray(rdms.rdm_descriptors.get("time", np.arange(n))) if isinstance(rdms, RDMs) else np.arange(n)

    return RSAResult(
        compare_rdms(model_vectors, data_vectors, comparison=comparison),
        comparison,
        times(model, model_vectors.shape[0]),
        times(data, data_vectors.shape[0]),
        ceiling,
        model_label,
        data_label,
        model.descriptors.get("periods", {}) if isinstance(model, RDMs) else {},
    )

"""PCA of recorded states over time: trajectories, explained variance and dimensionality.

States of one layer, ``(stimulus, time, units)``, are pooled over stimuli and
(chosen) time steps and centred; the principal axes are the right singular
vectors of that matrix, with scikit-learn's sign convention (the largest-
magnitude loading of each component is positive, ``svd_flip(...,
u_based_decision=False)``), so results equal ``sklearn.decomposition.PCA`` to
float rounding. Projections give trajectories ``(stimulus, time, k)``; a basis
fitted on one recording projects another (compare models in one space).

Dimensionality per time step is the participation ratio of the covariance of
the states across stimuli at that step (Gao et al. 2017; Recanatesi et al. 2019)::

    PR(t) = (sum_i lambda_i(t))^2 / sum_i lambda_i(t)^2
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .._validation import (
    check_device,
    check_finite,
    check_int,
    check_numeric,
    check_recording,
    layer_states,
    refuse_non_finite_squares,
)
from ..errors import ArgumentError, ShapeError, UnknownNameError, describe, format_choices
from ..recording import Recording
from ..recording.indexing import as_slice_if_contiguous
from ._constant import rounding_only
from ._lapack import largest_eigh
from ._scores import peak_position
from .parallel import in_shares, library_threads

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


def svd_flip(vt: np.ndarray) -> np.ndarray:
    """Signs so that the largest-magnitude entry of each row of ``vt`` is positive (sklearn's convention)."""
    rows = np.arange(vt.shape[0])
    signs = np.sign(vt[rows, np.argmax(np.abs(vt), axis=1)])
    signs[signs == 0] = 1
    return vt * signs[:, None]


class Axes(NamedTuple):
    """Principal axes of a centred matrix x (samples, features), from :func:`right_singular` or :func:`gram_axes`."""

    singular: np.ndarray  # singular values, descending: the first k at least (every one where all were found)
    vt: np.ndarray  # the right singular vectors as rows, in the same order: the first k at least
    total: float  # the sum of every squared singular value (x's squared Frobenius norm)

    @classmethod
    def of_every(cls, singular: np.ndarray, vt: np.ndarray) -> Axes:
        """The axes of an SVD that found every singular value: the total is their squares' sum."""
        return cls(singular, vt, float(singular @ singular))


def _principal_axes(x: np.ndarray, device: Any, k: int) -> Axes:
    """:class:`Axes` of the centred matrix ``x`` (samples, features): :func:`right_singular`, or torch's SVD in
    float64 on ``device``.
    """
    if device is not None:
        import torch

        _, s, vt = torch.linalg.svd(torch.from_numpy(x).to(device), full_matrices=False)
        return Axes.of_every(s.cpu().numpy(), vt.cpu().numpy())
    return right_singular(x, k)


GRAM_CONDITION = 1e-8  # the k-th eigenvalue of x'x against the first, from which its eigendecomposition is used


def right_singular(x: np.ndarray, k: int) -> Axes:
    """:class:`Axes` of ``x`` (samples, features): the first ``k`` at least. From the eigendecomposition of the
    smaller Gram matrix where its k-th eigenvalue is at least ``GRAM_CONDITION`` of its first (one symmetric
    product, then a problem of the smaller side, as scikit-learn's ``covariance_eigh`` solver; numpy's SVD forms
    the singular vectors of both sides): x'x with at least as many samples as features (40,000 x 512, one thread,
    AMD EPYC: 2.9 s by the SVD, 0.26 s), else x x', whose eigenvectors u_i give v_i = x'u_i / s_i for the first
    ``k`` (fit_pca of 500 x 4096: 381 -> 80 ms). An eigenvalue's error is about eps x size x the first one, so
    the kept ones keep 1e-5 of their value at worst (1e-14 of well-spread spectra), their axes as many digits
    less the log of the first eigenvalue against their gaps (through x x' too: its computed eigenvectors are
    exact for a Gram matrix within eps of it, and v_i's error along a larger axis j, eps s_j / s_i, stays under
    1e-12). Else (a kept axis of so little variance, none at all) numpy's SVD of ``x``.
    """
    if k >= 1:
        tall = x.shape[0] >= x.shape[1]
        found = gram_axes(x.T @ x if tall else x @ x.T, k)
        if found is not None:
            return found if tall else found._replace(vt=(found.vt[:k] @ x) / found.singular[:k, None])
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    return Axes.of_every(s, vt)


def gram_axes(gram: np.ndarray, k: int) -> Axes | None:
    """:class:`Axes` of a matrix x from its Gram matrix x'x (features x features), where the k-th eigenvalue is
    at least ``GRAM_CONDITION`` of the first (:func:`right_singular`); else None. Of x x': the same singular
    values, and U' in place of Vt. Few axes kept of many features: the first k alone
    (:func:`._lapack.largest_eigh`, LAPACK's MRRR as scikit-learn's solver: the back-transformation of k vectors,
    not of all; 10 of 512: 46 -> 14-20 ms on one thread, AMD EPYC Zen 3). The total is the Gram matrix's trace.
    """
    values, vectors = largest_eigh(gram, k)
    values, vectors = values[::-1], vectors[:, ::-1]
    if values[k - 1] >= GRAM_CONDITION * values[0] > 0:
        singular = np.sqrt(np.clip(values, 0, None))
        return Axes(singular, np.ascontiguousarray(vectors.T), float(np.trace(gram)))
    return None


def participation_ratio(states: np.ndarray) -> np.ndarray:
    """PR(t) of ``states`` (stimulus, time, units): (sum of eigenvalues)^2 / sum of squared eigenvalues.

    Computed from the Gram matrix of the centred states at each step (tr C = ||X||_F^2 / (n-1),
    tr C^2 = ||X X^T||_F^2 / (n-1)^2), without an eigendecomposition. NaN at steps without variance
    across stimuli (constant states, or fewer than 2 stimuli). NaN or inf among the states, and states whose
    squares overflow, are refused (from each step's sum of squares: no pass of their own).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2000, 1, 5))  # isotropic: PR close to 5
    >>> round(float(participation_ratio(x)[0]), 1)
    5.0
    """
    x = check_numeric(states, name="states")
    if x.ndim != 3:
        raise ShapeError(f"states: got {describe(x)}. Pass (stimulus, time, units).")
    if x.shape[0] < 2:  # no variance across fewer than 2 stimuli: undefined at every step, as for constant states
        check_finite(x, name="states")
        return np.full(x.shape[1], np.nan)
    return StepMoments.of(x).require_finite(x, name="states", layer=None).participation_ratio()  # (NaN, inf)


@dataclass(frozen=True)
class StepMoments:
    """One pass over the steps of states x (stimulus, time, units), each step's states centred on their mean
    across stimuli (X_t, one float64 copy of the layer, kept in ``centred``): tr S_t and ||S_t||_F^2 of their
    Gram matrix S_t (the participation ratio's), and, given the steps a PCA pools (``pooled``: how many times
    each step is taken), the scatter matrix of those states about their pooled mean (:func:`_pooled_scatter`)
    from the S_t = X_t'X_t already formed, where that pays (:func:`_units_side`): PCA's Gram matrix without a
    second product over every sample (2000 stimuli x 20 steps x 512 units, one thread, AMD EPYC: fit_pca 620 ->
    363 ms). Else S_t is the smaller Gram matrix (the same nonzero spectrum). One step at a time (a stack of every
    step's: 42 MB for 20 steps of 512 units); the steps (their means, centring and Gram matrices) go in equal
    shares on the library threads, one BLAS thread each, from ``SPLIT_BYTES`` of states.
    """

    centred: np.ndarray  # (stimulus, time, units)
    means: np.ndarray  # (time, units)
    trace: np.ndarray  # (time,)
    trace_sq: np.ndarray  # (time,)
    scatter: np.ndarray | None = None  # (units, units), about ``pooled_mean``
    pooled_mean: np.ndarray | None = None  # (units,)

    @classmethod
    @np.errstate(invalid="ignore", over="ignore")  # (NaN, inf or overflow: refused by require_finite; and below)
    def of(cls, x: np.ndarray, pooled: np.ndarray | None = None) -> StepMoments:
        """The moments of ``x`` (stimulus, time, units), with the scatter of the steps ``pooled`` counts."""
        n, n_time, p = x.shape
        mean, centred = np.empty((n_time, p)), np.empty(x.shape)  # (float64: the one copy, no cast of x first)
        xt, sums = np.moveaxis(centred, 1, 0), np.full((n_time, p), np.nan)  # (sums of the pooled steps only)
        units_side = _units_side(n, p, n_time, pooled)
        trace, trace_sq = np.empty(n_time), np.empty(n_time)

        @np.errstate(invalid="ignore", over="ignore")  # (NaN, inf or overflow: see require_finite)
        def share(steps: slice) -> np.ndarray | None:
            x[:, steps].mean(axis=0, dtype=np.float64, out=mean[steps])
            np.subtract(x[:, steps], mean[steps], out=centred[:, steps])
            partial = np.zeros((p, p)) if units_side else None
            for t in range(steps.start, steps.stop):
                gram = xt[t].T @ xt[t] if units_side or n >= p else xt[t] @ xt[t].T
                trace[t], trace_sq[t] = np.trace(gram), np.einsum("ij,ij->", gram, gram)
                if units_side and pooled[t]:
                    partial += pooled[t] * gram if pooled[t] > 1 else gram
                    sums[t] = np.ones(n) @ xt[t]
            return partial

        threads = min(library_threads(), n_time) if x.nbytes >= SPLIT_BYTES else 1
        partials = in_shares(share, n_time, threads=threads)
        if not units_side:
            return cls(centred, mean, trace, trace_sq)
        used = pooled > 0
        return cls(
            centred, mean, trace, trace_sq, *_pooled_scatter(sum(partials), mean[used], sums[used], pooled[used], n)
        )

    def require_finite(self, states: np.ndarray, *, name: str, layer: str | None) -> StepMoments:
        """These moments where every step's trace (its states' sum of squares) is finite, else an error: NaN or inf
        among the ``states`` makes it NaN (the centring takes inf - inf to NaN; named by :func:`check_finite`), and
        finite states whose squares overflow (above about 1e154) make it inf. The states need no check of their
        own before (``fit_pca``: 17 of 361 ms for 2000 stimuli x 20 steps x 512 units, one thread, AMD EPYC).
        """
        if np.isfinite(self.trace).all():
            return self
        refuse_non_finite_squares(states, name=name, layer=layer, what="covariance",
                                  remedy="the axes are unchanged; variances scale by its square")  # fmt: skip

    def participation_ratio(self) -> np.ndarray:
        """PR per step (:func:`participation_ratio`)."""
        n = self.centred.shape[0]
        return ratio_of_traces(self.trace, self.trace_sq, np.linalg.norm(self.means, axis=1), n)


SPLIT_BYTES = 2**23  # states from which the steps go in shares on the library threads (108 x 40 x 200 float64,
# 6.9 MB, jPCA's condition averages: 14.5 / 20.4 ms on one / two threads, AMD EPYC)


def _units_side(n: int, p: int, n_time: int, pooled: np.ndarray | None) -> bool:
    """Whether :class:`StepMoments` takes each step's Gram matrix across units (p x p), to pool them into PCA's
    scatter matrix: given ``pooled``, where that costs no more multiplications than the smaller Gram matrices of
    the participation ratio and PCA's own product of the fitted states (the smaller of x'x and x x'). With as
    many stimuli as units always; with fewer, where the fitted states are many (n = 1000, p = 1024, 20 steps:
    one product of 20 n p^2 against 20 n^2 p + 20 n p^2).
    """
    if pooled is None:
        return False
    fitted = n * int(pooled.sum())
    return n >= p or n_time * n * p * p <= n_time * n * n * p + fitted * p * min(fitted, p)


def _pooled_scatter(
    grams: np.ndarray, means: np.ndarray, sums: np.ndarray, weights: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """(scatter matrix about the pooled mean c, c) of the states of steps taken ``weights`` times each, from
    ``grams`` = sum_t w_t X_t'X_t of each step's states centred on its mean m_t as computed (``means``), and the
    sums r_t of those centred states (zero but for rounding): x - c = (x - m_t) + d_t with d_t = m_t - c, so
    sum_t w_t (X_t'X_t + r_t d_t' + d_t r_t' + n d_t d_t'), for any c (here the weighted mean of the m_t). The r_t
    terms take out the rounding of the steps' means (1e-12 of states near 1e3), which d_t alone would carry into
    the scatter linearly (4e-13 of its largest entry against 1e-16 with them, as for the pooled states centred
    directly).
    """
    centre = weights @ means / weights.sum()
    spread = means - centre
    cross = (spread.T * weights) @ sums
    return grams + cross + cross.T + n * (spread.T * weights) @ spread, centre


def ratio_of_traces(trace: np.ndarray, trace_sq: np.ndarray, mean: np.ndarray, n: int, shift: Any = 0.0) -> np.ndarray:
    """PR per step, (tr C)^2 / ||C||_F^2, from tr(Xc'Xc) and ||Xc'Xc||_F^2 of the ``n`` centred states; NaN
    at a step without variance across stimuli: its total square no more than rounding of the states' ``mean``
    (each step's norm) leaves (:func:`._constant.rounding_only`; ``shift``: the norm of the mean less the
    point the squares were summed about). States of 0.1 for every stimulus keep about 1e-34 per unit once
    centred, whose ratio would be 1.
    """
    constant = rounding_only(trace / n, mean, n, shift=shift)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(constant | ~(trace_sq > 0), np.nan, trace**2 / trace_sq)


def principal_axes(samples: np.ndarray, n_components: int) -> np.ndarray:
    """The ``n_components`` leading principal axes (rows, unit norm) of samples (n, units), centred first
    (:func:`right_singular`); signs fixed by :func:`svd_flip`, so they do not depend on the LAPACK build or on
    how the axes were found.
    """
    return svd_flip(right_singular(samples - samples.mean(axis=0), n_components).vt[:n_components])


@dataclass
class PCAResult:
    """Principal axes of one layer's states and the recording's trajectories in them.

    Attributes
    ----------
    layer : str
    components : ndarray, (k, n_units)
        Principal axes (rows), sklearn's sign convention.
    mean : ndarray, (n_units,)
    explained_variance, explained_variance_ratio : ndarray, (k,)
        Variance along each axis (ddof=1) and its share of the total variance.
    trajectories : ndarray, (stimulus, time, k)
        The recording's states (all time steps) projected on the axes.
    participation_ratio : ndarray, (time,)
        Dimensionality of the states across stimuli at each time step.
    times : ndarray, (time,)
    fit_time : ndarray of int
        The time-step indices the axes were fitted on.
    metadata : dict of str to ndarray
        The recording's per-stimulus columns (for colouring plots).
    periods : dict
        The recording's periods (marked on the participation-ratio panel).
    """

    layer: str
    components: np.ndarray
    mean: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    trajectories: np.ndarray
    participation_ratio: np.ndarray
    times: np.ndarray
    fit_time: np.ndarray
    metadata: dict[str, np.ndarray]
    periods: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def n_components(self) -> int:
        """Number of kept principal axes."""
        return self.components.shape[0]

    def transform(self, recording: Recording | np.ndarray, layer: str | None = None) -> np.ndarray:
        """Project another recording's states (same number of units) on these axes: (stimulus, time, k).

        A dask-backed recording is projected blockwise (only the projections come back); NaN or inf
        states are refused.
        """
        name = layer if layer is not None else self.layer
        if isinstance(recording, Recording) and recording.is_dask:
            states = recording.to_dask(recording.resolve_layer(name))
        elif isinstance(recording, Recording):
            states = recording.get(name, flatten=True)
        else:
            states = check_numeric(recording, name="recording")
        states = states.reshape(*states.shape[:2], -1) if states.ndim > 3 else states
        if states.ndim != 3 or states.shape[-1] != self.components.shape[1]:
            raise ShapeError(
                f"recording: states {describe(states)} do not have the {self.components.shape[1]} units the "
                f"axes were fitted on ({self.layer!r}). Project a layer of the same size."
            )
        if isinstance(states, np.ndarray):  # refused before any arithmetic on them
            check_finite(states, name="recording", layer=name)
        projected = (states.astype(np.float64) - self.mean) @ self.components.T
        if isinstance(states, np.ndarray):
            return projected
        from .pca_blockwise import dask_projection  # lazy: computed with its finiteness check in one pass

        return dask_projection(projected, states, name)

    def summary(self) -> dict[str, Any]:
        """Key numbers: variance explained by the first components, and dimensionality over time."""
        ratio = self.explained_variance_ratio
        pr = self.participation_ratio
        defined = np.isfinite(pr)  # undefined (NaN) at steps where the states do not vary across stimuli
        peak = peak_position(pr)
        out = {
            "layer": self.layer,
            "components": self.n_components,
            "variance PC1": float(ratio[0]),
            "variance PC1-3": float(ratio[:3].sum()),
            f"variance PC1-{self.n_components}": float(ratio.sum()),
            "participation ratio (mean over time)": float(pr[defined].mean()) if defined.any() else None,
            "participation ratio (max)": float(pr[defined].max()) if defined.any() else None,
            "time of max participation ratio": None if peak is None else self.times[peak[0]].item(),
        }
        if not defined.all():
            out["steps without variance"] = int((~defined).sum())
        return out

    def plot(
        self,
        *,
        color_by: str | None = None,
        components: tuple[int, ...] = (0, 1),
        trajectories: np.ndarray | None = None,
        max_trajectories: int = 200,
    ) -> Figure:
        """Trajectories in PC space (coloured by a metadata column), and variance/dimensionality over time.

        Parameters
        ----------
        color_by : str, optional
            A metadata column; one colour per value (colour-blind-safe palette).
        components : tuple of 2 or 3 int
            Which axes to draw (0-based).
        trajectories : ndarray, optional
            Other trajectories to draw (e.g. ``result.transform(other)``) instead of this recording's.
        max_trajectories : int
            Draw at most this many stimuli (evenly spaced), to keep figures readable.
        """
        from .plotting import category_colors, pyplot

        plt = pyplot()
        if len(components) not in (2, 3) or max(components) >= self.n_components:
            raise ArgumentError(f"components: got {components!r}. Pass 2 or 3 axis indices below {self.n_components}.")
        traj = self.trajectories if trajectories is None else np.asarray(trajectories)
        chosen = np.unique(np.linspace(0, traj.shape[0] - 1, min(traj.shape[0], max_trajectories)).astype(int))
        if color_by is not None:
            if color_by not in self.metadata:
                raise UnknownNameError(
                    f"color_by: {color_by!r} is not a metadata column. Available: {format_choices(self.metadata)}."
                )
            colors, legend = category_colors(self.metadata[color_by][chosen])
        else:
            colors, legend = ["#0072B2"] * len(chosen), {}
        fig = plt.figure(figsize=(10, 4.2), layout="constrained")
        three_d = len(components) == 3
        ax = fig.add_subplot(1, 2, 1, projection="3d" if three_d else None)
        for row, color in zip(chosen, colors, strict=True):
            points = traj[row][:, list(components)]
            ax.plot(*points.T, color=color, lw=0.8, alpha=0.7)
            ax.scatter(*points[-1], color=color, s=8)
        for name, color in legend.items():
            ax.plot([], [], color=color, label=str(name))
        if legend:
            ax.legend(title=color_by, fontsize=7, frameon=False)
        for setter, c in zip((ax.set_xlabel, ax.set_ylabel, getattr(ax, "set_zlabel", None)), components,
                             strict=False):  # fmt: skip
            if setter is not None:
                setter(f"PC{c + 1} ({100 * self.explained_variance_ratio[c]:.1f}%)")
        ax.set_title(f"{self.layer}: trajectories (dot: last step)")
        ax2 = fig.add_subplot(1, 2, 2)
        ax2.plot(self.times, self.participation_ratio, color="#D55E00", marker="o", ms=3)
        ax2.set_xlabel("time step")
        ax2.set_ylabel("participation ratio (dimensions)", color="#D55E00")
        from .plotting import mark_periods

        mark_periods(ax2, self.periods)
        inset = ax2.inset_axes([0.55, 0.55, 0.42, 0.4])
        k = np.arange(1, self.n_components + 1)
        inset.bar(k, self.explained_variance_ratio, color="#0072B2")
        inset.plot(k, np.cumsum(self.explained_variance_ratio), color="#000000", lw=1)
        inset.set_xticks(k if k.size <= 10 else k[:: int(np.ceil(k.size / 10))])
        inset.set_xlabel("PC", fontsize=7)
        inset.set_ylabel("variance ratio", fontsize=7)
        inset.tick_params(labelsize=6)
        ax2.set_title("dimensionality over time")
        return fig


def _fit_in_memory(
    states: np.ndarray, layer: str, fit_stim: np.ndarray, fit_time: np.ndarray, device: Any, k: int
) -> tuple[np.ndarray, Axes, StepMoments]:
    """(mean of the fitted states, their :class:`Axes`, :class:`StepMoments` of every step, which refuse
    non-finite ``states``). Fitted on every stimulus, in numpy: from the scatter matrix the step moments pool
    where they do (:func:`_units_side`) and :func:`gram_axes` takes it; else from the fitted states themselves
    (:func:`_principal_axes`).
    """
    n_stimuli, n_time = states.shape[:2]
    every_stimulus = np.array_equal(fit_stim, np.arange(n_stimuli))
    pooled = np.bincount(fit_time, minlength=n_time) if every_stimulus and device is None else None
    moments = StepMoments.of(states, pooled).require_finite(states, name="recording", layer=layer)
    if moments.scatter is not None:
        mean = moments.pooled_mean
        found = gram_axes(moments.scatter, k)
        if found is not None:
            return mean, found, moments
    rows, steps = as_slice_if_contiguous(fit_stim), as_slice_if_contiguous(fit_time)  # (views where they run on)
    sample = states[rows][:, steps].reshape(-1, states.shape[2])
    mean = sample.mean(axis=0)
    return mean, _principal_axes(sample - mean, device, k), moments


def _trajectories(centred: np.ndarray, components: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """(x - m) C' = X_t C' + (m_t - m) C' of every stimulus and step: ``centred`` each step's centred states X_t
    (stimulus, time, units; held for the participation ratio), ``offset`` each step's mean less the fitted one.
    Shares of the stimuli on the library threads from ``SPLIT_BYTES`` of states: the product reads the states
    from memory, and numpy multiplies step by step (2000 x 20 x 512 on two threads: 24-26 -> 13-15 ms, AMD EPYC
    Zen 3); the same products, the same bits.
    """
    out, shift = np.empty((*centred.shape[:2], len(components))), offset @ components.T

    def share(rows: slice) -> None:
        np.matmul(centred[rows], components.T, out=out[rows])
        out[rows] += shift

    in_shares(share, len(centred), threads=library_threads() if centred.nbytes >= SPLIT_BYTES else 1)
    return out


def _n_axes(n_components: int | str | None, max_k: int) -> int:
    """The number of axes to keep: all (None), 10 or fewer ("auto": never more than the states have), or an int."""
    if n_components is None:
        return max_k
    if isinstance(n_components, str) and n_components == "auto":
        return min(10, max_k)
    return check_int("n_components", n_components, maximum=max_k)


def fit_pca(
    recording: Recording,
    layer: str | None = None,
    *,
    n_components: int | str | None = "auto",
    time: Any = None,
    stimuli: Any = None,
    device: str | None = None,
) -> PCAResult:
    """PCA of one layer's states, pooled over stimuli and time steps.

    Parameters
    ----------
    recording : Recording
    layer : str, optional
        May be omitted when the recording has one layer; units are flattened.
    n_components : int, "auto" or None
        Axes to keep: an int, None for all, or "auto" (default): 10, or fewer when the states have
        fewer units or samples.
    time : int, slice or sequence of int, optional
        Fit on these time steps only (e.g. ``slice(-5, None)``); trajectories cover all steps.
    stimuli : optional
        Fit on these stimuli only (index, mask or list); trajectories cover all stimuli.
    device : str, optional
        Compute the SVD with torch on this device ("cpu", "cuda"; same results to rounding); by default
        numpy's LAPACK (with more samples than units, the eigendecomposition of the states' Gram matrix
        across units where the kept axes' variances allow it: :func:`right_singular`), or, for a dask-backed
        recording (``Recording.load(path, chunks=...)``), blockwise with dask without reading the layer whole
        (:mod:`rnnprobe.analysis.pca_blockwise`; the same results to rounding).

    Returns
    -------
    PCAResult

    Examples
    --------
    >>> import numpy as np
    >>> from rnnprobe import Recording
    >>> rng = np.random.default_rng(0)
    >>> rec = Recording({"h": rng.normal(size=(30, 8, 5)) * [3, 1, 1, 0.1, 0.1]})
    >>> result = fit_pca(rec, n_components=2)
    >>> result.trajectories.shape, bool(result.explained_variance_ratio[0] > 0.5)
    ((30, 8, 2), True)
    """
    check_recording(recording)
    device = check_device(device)
    layer = recording.resolve_layer(layer)
    fit_time = recording.time_positions(layer, time)
    fit_stim = recording.stimulus_index(stimuli)
    n_samples, n_units = len(fit_stim) * len(fit_time), int(np.prod(recording.shapes[layer][2:]))
    if n_samples < 2:
        raise ArgumentError(f"time, stimuli: only {n_samples} state(s) selected for fitting. Select at least 2.")
    k = _n_axes(n_components, min(n_samples, n_units))
    if recording.is_dask and device is None:  # blockwise, never the whole layer in memory
        from .pca_blockwise import dask_pca, dask_trajectories

        mean, singular, vt, step_means = dask_pca(recording, layer, fit_time, fit_stim)
        axes = Axes.of_every(singular, vt)
        components = svd_flip(vt)[:k]
        trajectories, ratio = dask_trajectories(recording, layer, mean, step_means, components)
    else:
        _, _, states = layer_states(recording, layer, finite_checked_later=True)  # (by the step moments)
        mean, axes, moments = _fit_in_memory(states, layer, fit_stim, fit_time, device, k)
        components = svd_flip(axes.vt)[:k]
        trajectories = _trajectories(moments.centred, components, moments.means - mean)
        ratio = moments.participation_ratio()
    variance, total = axes.singular[:k] ** 2 / (n_samples - 1), axes.total / (n_samples - 1)
    if rounding_only(axes.total / n_samples, float(np.linalg.norm(mean)), n_samples):
        variance, total = np.zeros(k), 0.0  # states that do not vary but for rounding: as exactly constant ones
    return PCAResult(
        layer=layer,
        components=components,
        mean=mean,
        explained_variance=variance,
        explained_variance_ratio=variance / total if total > 0 else np.zeros(k),
        trajectories=trajectories,
        participation_ratio=ratio,
        times=np.asarray(recording.times[layer]),
        fit_time=fit_time,
        metadata={c: np.asarray(recording.column(c)) for c in recording.columns},
        periods=recording.periods,
    )

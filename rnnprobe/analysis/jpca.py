"""jPCA (Churchland et al. 2012): rotational dynamics in condition-averaged population activity.

The states X (condition, time, unit) are soft-normalised per unit (optionally), the cross-condition mean is
subtracted at each time, and the top ``n_components`` principal components are kept: Z. The
dynamics dZ(t) = Z(t + 1) - Z(t) are fitted by least squares twice, dZ = Z M with M unconstrained and
with M skew-symmetric (M' = -M: pure rotation, no expansion). A skew-symmetric M has eigenvalues
+-i omega; each pair spans a plane in which the states rotate at omega radians per step. jPC planes
are ordered by omega; ``r2_skew / r2`` says how much of the linear dynamics rotation explains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import check_finite_layer, check_int, check_number, check_recording, layer_states
from ..errors import ShapeError
from ._constant import centred, rounding_only
from .blockwise import dask_states

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from ..recording import Recording


@dataclass
class JPCAResult:
    """jPCA of condition-averaged states.

    Attributes
    ----------
    m, m_skew : ndarray, (k, k)
        The least-squares dynamics matrices (dZ = Z M), unconstrained and skew-symmetric, in PC space.
    r2, r2_skew : float
        Fraction of the variance of dZ each explains.
    skew_fraction : float
        ||(M - M') / 2|| / ||M||: how skew-symmetric the unconstrained fit is.
    frequencies : ndarray, (k // 2,)
        Rotation frequency of each jPC plane, cycles per time unit (per step / dt), largest first.
    planes : ndarray, (k // 2, 2, k)
        Orthonormal basis of each plane in PC space (jPC1, jPC2 of plane 1 first).
    projections : ndarray, (condition, time, 2)
        The states in the first jPC plane.
    components : ndarray, (k, n_units)
        The principal axes (of the normalised, mean-subtracted states).
    variance_captured : ndarray, (k // 2,)
        Share of the states' variance in each plane.
    times : ndarray
    layer : str
    """

    m: np.ndarray
    m_skew: np.ndarray
    r2: float
    r2_skew: float
    skew_fraction: float
    frequencies: np.ndarray
    planes: np.ndarray
    projections: np.ndarray
    components: np.ndarray
    variance_captured: np.ndarray
    times: np.ndarray
    layer: str

    @property
    def rotation_explains(self) -> float:
        """``r2_skew / r2``: how much of the linear dynamics rotation explains (NaN where they explain nothing)."""
        return self.r2_skew / self.r2 if self.r2 > 0 else float("nan")

    def summary(self) -> dict[str, Any]:
        """Key numbers: the fits' R^2, the skew fraction, plane 1's frequency and variance."""
        return {
            "layer": self.layer, "components": int(self.m.shape[0]), "R2 (unconstrained)": self.r2,
            "R2 (skew-symmetric)": self.r2_skew, "rotation explains": self.rotation_explains,
            "skew-symmetric fraction of M": self.skew_fraction, "plane 1 frequency": float(self.frequencies[0]),
            "plane 1 variance": float(self.variance_captured[0]),
        }  # fmt: skip

    def draw(self, ax: Any) -> Any:
        """Each condition's trajectory in the first jPC plane (circle: start), coloured in order."""
        from .plotting import pyplot

        cmap = pyplot().get_cmap("viridis", self.projections.shape[0])
        for c, path in enumerate(self.projections):
            ax.plot(path[:, 0], path[:, 1], color=cmap(c), lw=1)
            ax.plot(path[0, 0], path[0, 1], "o", color=cmap(c), ms=3)
            ax.annotate("", xy=path[-1], xytext=path[-2], arrowprops={"arrowstyle": "->", "color": cmap(c)})
        ax.set_xlabel("jPC1")
        ax.set_ylabel("jPC2")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(f"{self.layer}: rotation explains {self.r2_skew / max(self.r2, 1e-300):.0%}", fontsize=9)
        return ax

    def plot(self) -> Figure:
        """A new figure of :meth:`draw`."""
        from .plotting import pyplot

        fig, ax = pyplot().subplots(figsize=(4.5, 4.2), layout="constrained")
        self.draw(ax)
        return fig


def skew_least_squares(z: np.ndarray, dz: np.ndarray) -> np.ndarray:
    """The skew-symmetric M minimising ||dZ - Z M||_F, exactly (a linear system in M's k (k - 1) / 2
    free entries).
    """
    k = z.shape[1]
    rows, cols = np.triu_indices(k, 1)
    # column (i, j) of the design: Z (E_ij - E_ji), flattened
    design = np.zeros((z.shape[0] * k, rows.size))
    for p, (i, j) in enumerate(zip(rows, cols, strict=True)):
        basis = np.zeros((k, k))
        basis[i, j], basis[j, i] = 1.0, -1.0
        design[:, p] = (z @ basis).ravel()
    h = np.linalg.lstsq(design, dz.ravel(), rcond=None)[0]
    m = np.zeros((k, k))
    m[rows, cols] = h
    return m - m.T


def _counterclockwise(plane: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The plane with jPC2 flipped where needed so that the states' mean angular velocity is positive."""
    p = z @ plane.T
    dp = np.diff(p, axis=1)
    turning = float(np.sum(p[:, :-1, 0] * dp[..., 1] - p[:, :-1, 1] * dp[..., 0]))
    return plane if turning >= 0 else plane * np.array([[1.0], [-1.0]])


def jpc_planes(m_skew: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(planes (k // 2, 2, k), omegas) of a skew-symmetric matrix, fastest rotation first; directions
    without rotation (zero eigenvalues) fill the remaining planes with omega 0.
    """
    k = m_skew.shape[0]
    values, vectors = np.linalg.eig(m_skew)
    tol = 1e-12 * max(float(np.abs(values).max()), np.finfo(float).tiny)
    order = [i for i in np.argsort(-values.imag) if values[i].imag > tol][: k // 2]
    planes, omegas = [], []
    for i in order:
        v = vectors[:, i]
        peak = v[np.argmax(np.abs(v))]
        v = v * (abs(peak) / peak)  # the phase fixed: the largest entry real and positive (LAPACK leaves its sign)
        a, b = v.real, v.imag
        first = b / np.linalg.norm(b)  # the eigenvector's real and imaginary parts span the plane
        second = a - (a @ first) * first
        planes.append(np.stack([first, second / np.linalg.norm(second)]))
        omegas.append(values[i].imag)
    if len(planes) < k // 2:  # directions that do not rotate: paired up in an orthonormal complement, omega 0
        used = np.concatenate(planes) if planes else np.zeros((0, k))
        rest = np.linalg.svd(np.eye(k) - used.T @ used)[0][:, : k - used.shape[0]]
        for j in range(0, rest.shape[1] - 1, 2):
            planes.append(rest[:, j : j + 2].T)
            omegas.append(0.0)
    return np.array(planes), np.array(omegas)


def fit_jpca(
    recording: Recording,
    layer: str | None = None,
    *,
    n_components: int = 6,
    time: Any = None,
    soft_normalize: float | None = 5.0,
    dt: float | None = None,
) -> JPCAResult:
    """jPCA: rotational structure of condition-averaged states (Churchland et al. 2012).

    Parameters
    ----------
    recording : Recording
        Condition averages as rows (e.g. from :func:`~rnnprobe.analysis.conditions.condition_average`),
        (condition, time, unit).
    layer : str, optional
    n_components : int
        Principal components kept (even: planes come in pairs; Churchland et al. use 6).
    time : selection, optional
        The time steps analysed (e.g. ``rec.times["M1"] <= 350``).
    soft_normalize : float or None
        Each unit is divided by (its range + ``soft_normalize``) (5 spikes/s in the paper; 0: by its
        range). None: no normalisation (for states normalised already; any per-unit scaling distorts
        rotations into non-skew dynamics).
    dt : float, optional
        The time step's duration; default: the spacing of the layer's time coordinate (ms for neural
        data: frequencies are then cycles per ms, x 1000 for Hz), or 1 (cycles per step).

    Returns
    -------
    JPCAResult

    Examples
    --------
    >>> import numpy as np
    >>> from rnnprobe import Recording
    >>> t = np.arange(40) * 0.2
    >>> phases = np.linspace(0, np.pi, 8)[:, None]
    >>> circle = np.stack([np.cos(t + phases), np.sin(t + phases)], axis=-1)   # 8 conditions, 40 steps
    >>> ring = circle @ np.linalg.qr(np.random.default_rng(0).normal(size=(9, 2)))[0].T   # in 9 units
    >>> result = fit_jpca(Recording({"h": ring}), n_components=2, soft_normalize=None)
    >>> round(result.skew_fraction, 2), round(float(2 * np.pi * result.frequencies[0]), 2)  # radians per step
    (1.0, 0.2)
    """
    n_components = check_int("n_components", n_components, minimum=2)
    if n_components % 2:
        raise ShapeError(f"n_components: got {n_components}. jPC planes come in pairs; pass an even number.")
    check_recording(recording, "recording")
    if recording.is_dask:  # condition averages on disk: blockwise (see _dask_projection)
        layer = recording.resolve_layer(layer)
        positions = recording.time_positions(layer, time)
        shape = (recording.n_stimuli, len(positions), int(np.prod(recording.unit_shape(layer))))
    else:
        layer, positions, x = layer_states(recording, layer, time=time)
        shape = x.shape
    times = np.asarray(recording.times[layer])[positions]
    if dt is None:
        steps = np.diff(times.astype(float))
        dt = float(steps[0]) if steps.size and np.allclose(steps, steps[0]) and steps[0] > 0 else 1.0
    dt = check_number("dt", dt, minimum=0, inclusive=False)
    n_conditions, n_times, n_units = shape
    if n_times < 3 or n_conditions * (n_times - 1) < n_components or n_units < n_components:
        raise ShapeError(
            f"recording: {n_conditions} conditions x {n_times} time steps x {n_units} units cannot support "
            f"{n_components} components; jPCA needs more steps, conditions and units than components."
        )
    if soft_normalize is not None:
        soft_normalize = check_number("soft_normalize", soft_normalize, minimum=0)
    if n_conditions < 2:
        raise _no_conditions(n_conditions)
    if recording.is_dask:
        components, z, total = _dask_projection(recording, layer, positions, soft_normalize, n_components)
    else:
        components, z, total = _projection(x, soft_normalize, n_components)
    z = _held_where_constant(z)
    before, change = z[:, :-1].reshape(-1, n_components), np.diff(z, axis=1).reshape(-1, n_components)
    m = np.linalg.lstsq(before, change, rcond=None)[0]
    m_skew = skew_least_squares(before, change)
    changes = float(np.vdot(change, change))
    if changes == 0:
        raise ShapeError("recording: the states do not change over the time steps selected; no dynamics to fit.")
    planes, omegas = jpc_planes(m_skew)
    planes = np.stack([_counterclockwise(plane, z) for plane in planes])
    variance = np.array([float(np.sum((z @ plane.T) ** 2)) for plane in planes]) / total
    return JPCAResult(
        m=m, m_skew=m_skew, r2=1 - float(np.sum((change - before @ m) ** 2)) / changes,
        r2_skew=1 - float(np.sum((change - before @ m_skew) ** 2)) / changes,
        skew_fraction=float(np.linalg.norm((m - m.T) / 2) / np.linalg.norm(m)),
        frequencies=omegas / (2 * np.pi * dt), planes=planes, projections=z @ planes[0].T,
        components=components, variance_captured=variance, times=times,
        layer=layer,
    )  # fmt: skip


def _held_where_constant(z: np.ndarray) -> np.ndarray:
    """``z`` (condition, time, k) with each condition's coordinate that does not change over time but for
    rounding set to its mean: states that differ by condition but not over time (a drift common to every
    condition removed with the cross-condition mean leaves rounding) have no dynamics to fit, not a fit of that
    rounding.
    """
    mean = z.mean(axis=1, keepdims=True)
    return np.where(rounding_only(((z - mean) ** 2).mean(axis=1, keepdims=True), mean, z.shape[1]), mean, z)


def _no_conditions(n_conditions: int) -> ShapeError:
    return ShapeError(
        f"recording: {n_conditions} condition(s) whose states do not differ once the cross-condition mean is "
        f"removed; jPCA needs conditions (rows) that differ, e.g. condition averages of several reach targets."
    )


def _unit_scale(ranges: np.ndarray, soft_normalize: float) -> np.ndarray:
    """Each unit's divisor: its range + ``soft_normalize``, 1 where that is 0 (a constant unit, no offset)."""
    scale = ranges + soft_normalize
    return np.where(scale > 0, scale, 1.0)


def _projection(x: np.ndarray, soft_normalize: float | None, n_components: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(principal axes (k, unit), the states on them (condition, time, k), their total square) of the
    soft-normalised states with the cross-condition mean removed at each time; an error if nothing is left.
    """
    if soft_normalize is not None:
        x = x / _unit_scale(np.ptp(x.reshape(-1, x.shape[2]), axis=0), soft_normalize)
    x = centred(x, 0, constant=0.0)  # less the cross-condition mean at each time; 0 where the conditions agree
    total = float(np.sum(x**2))
    if total == 0:
        raise _no_conditions(x.shape[0])
    from .pca import principal_axes

    components = principal_axes(x.reshape(-1, x.shape[2]), n_components)
    return components, x @ components.T, total


def _dask_projection(recording: Recording, layer: str, positions: np.ndarray, soft_normalize: float | None,
                     n_components: int) -> tuple[np.ndarray, np.ndarray, float]:  # fmt: skip
    """:func:`_projection` of a dask-backed layer in three passes of dask graphs: each unit's range, the
    cross-condition mean and variance and whether the states are finite; the centred states' singular vectors by dask's
    tall-and-skinny QR (as fit_pca's) and their total square; the states on the axes. Only (time, unit),
    unit x unit and (condition, time, k) arrays come back.
    """
    import dask
    import dask.array as da

    from .pca import svd_flip
    from .pca_blockwise import tall_blocks

    x = dask_states(recording, layer, time=positions).rechunk({1: -1})
    finite, low, high, mean, variance = dask.compute(
        da.isfinite(x).all(), x.min(axis=(0, 1)), x.max(axis=(0, 1)), x.mean(axis=0), x.var(axis=0)
    )
    check_finite_layer(bool(finite), layer)
    scale = np.ones(x.shape[2]) if soft_normalize is None else _unit_scale(high - low, soft_normalize)
    states = da.where(rounding_only(variance, mean, x.shape[0]), 0.0, x / scale - mean / scale)
    _, _, vt = da.linalg.svd(tall_blocks(states.reshape(-1, x.shape[2])))
    vt, total = dask.compute(vt[:n_components], (states**2).sum())
    if total == 0:
        raise _no_conditions(x.shape[0])
    components = svd_flip(vt)
    return components, dask.compute(states @ components.T)[0], float(total)

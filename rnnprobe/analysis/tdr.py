"""Targeted dimensionality reduction (Mante et al. 2013): population axes of task variables.

Each unit's responses are z-scored over trials and time. At every time t and for every unit i, a
linear regression over trials k,

    r_i,t(k) = sum_v beta_v,i,t F_v(k) + beta_0,i,t,

gives the coefficients of the task variables F_v (e.g. choice, motion and colour coherence, context).
The coefficient vectors beta_v,t (one entry per unit) are denoised by projecting them on the leading
principal components of the condition-averaged responses; each variable's axis is its denoised vector at
the time where its norm peaks, and the axes are orthogonalised in the order given (QR), so the first
variable's axis is kept and each later one is the part not explained by those before. Condition averages
projected on the axes are the trajectories of the paper's Fig. 2-3.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import (
    check_finite_layer,
    check_grouping,
    check_int,
    check_recording,
    layer_states,
    refuse_non_finite_squares,
)
from ..errors import ArgumentError, ArgumentTypeError, UnknownNameError, describe, format_choices
from ._constant import rounding_only
from .blockwise import dask_states
from .parallel import in_shares, library_threads, one_blas_thread, small_blas

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from ..recording import Recording


@dataclass
class TDRResult:
    """Task-variable axes of a population and the condition averages projected on them.

    Attributes
    ----------
    axes : ndarray, (variable, unit)
        Orthonormal axes in the z-scored unit space, in the order of ``variables``.
    variables : list of str
    coefficients : ndarray, (variable, time, unit)
        Regression coefficients of the z-scored responses on each variable (the intercept left out).
    denoised : ndarray, (variable, time, unit)
        The coefficients projected on the leading ``n_components`` principal components.
    peak_times : ndarray, (variable,)
        The time (coordinate) at which each variable's denoised coefficient vector is largest.
    r2 : ndarray, (time,)
        Share of the z-scored responses' variance across trials the regression explains, per time.
    projections : ndarray, (condition, time, variable)
        Condition averages (z-scored) projected on the axes.
    conditions : dict of str to ndarray
        Each condition's values of the condition columns, and ``n_trials``.
    times : ndarray
    layer : str
    n_components : int
    mean, scale : ndarray, (unit,)
        The z-scoring, to project other states with :meth:`project`.
    periods : dict
        The recording's periods (marked on the figure over time).
    """

    axes: np.ndarray
    variables: list[str]
    coefficients: np.ndarray
    denoised: np.ndarray
    peak_times: np.ndarray
    r2: np.ndarray
    projections: np.ndarray
    conditions: dict[str, np.ndarray]
    times: np.ndarray
    layer: str
    n_components: int
    mean: np.ndarray
    scale: np.ndarray
    periods: dict[str, tuple[float, float]] = field(default_factory=dict)

    def project(self, states: np.ndarray) -> np.ndarray:
        """States (..., unit) of the same layer, z-scored as the fit and projected: (..., variable)."""
        return ((np.asarray(states, dtype=np.float64) - self.mean) / self.scale) @ self.axes.T

    def summary(self) -> dict[str, Any]:
        """Key numbers: each axis's peak time, the regression's best R^2, and how orthogonal the raw axes were."""
        peaks = self.denoised[np.arange(len(self.variables)), [int(np.argmin(np.abs(self.times - t)))
                                                              for t in self.peak_times]]  # fmt: skip
        unit = peaks / np.maximum(np.linalg.norm(peaks, axis=1, keepdims=True), 1e-300)
        overlap = np.abs(unit @ unit.T)[np.triu_indices(len(self.variables), 1)]
        return {
            "layer": self.layer, "variables": ", ".join(self.variables), "components": self.n_components,
            "conditions": int(self.projections.shape[0]), "max R2 over time": float(np.nanmax(self.r2)),
            "largest |cos| between raw axes": float(overlap.max()) if overlap.size else 0.0,
            **{f"peak time ({v})": float(t) for v, t in zip(self.variables, self.peak_times, strict=True)},
        }  # fmt: skip

    def draw(self, ax: Any, *, x: str | None = None, y: str | None = None, rows: Any = None, color: str | None = None
             ) -> Any:  # fmt: skip
        """Condition-averaged trajectories in the plane of two axes (circle: start), coloured by ``color``."""
        from .plotting import pyplot

        i, j = self._axis(x, 0), self._axis(y, 1)
        rows = np.arange(self.projections.shape[0]) if rows is None else np.asarray(rows)
        key = color if color is not None else self.variables[j] if self.variables[j] in self.conditions else None
        values = np.asarray(self.conditions[key], dtype=float)[rows] if key is not None else np.arange(rows.size)
        span = np.ptp(values) or 1.0
        cmap = pyplot().get_cmap("coolwarm")
        lines = []
        for value, row in zip(values, rows, strict=True):
            path = self.projections[row]
            shade = cmap((value - values.min()) / span)
            lines += ax.plot(path[:, i], path[:, j], color=shade, lw=1.2)
            ax.plot(path[0, i], path[0, j], "o", color=shade, ms=3)
        ax.set_xlabel(f"{self.variables[i]} axis")
        ax.set_ylabel(f"{self.variables[j]} axis")
        return lines

    def plot(self, *, x: str | None = None, y: str | None = None, by: str | None = None, color: str | None = None
             ) -> Figure:  # fmt: skip
        """Projections over time on every axis, and the trajectories in the (x, y) plane, one panel per value
        of the condition column ``by`` (e.g. the context, as in Mante et al. 2013, Fig. 2).
        """
        from .plotting import pyplot

        groups = [(None, None)] if by is None else [(v, np.flatnonzero(self.conditions[self._column(by)] == v))
                                                    for v in np.unique(self.conditions[by])]  # fmt: skip
        fig, axes = pyplot().subplots(1, 1 + len(groups), figsize=(4 * (1 + len(groups)), 3.8), layout="constrained",
                                      squeeze=False)  # fmt: skip
        over_time = axes[0, 0]
        for v, name in enumerate(self.variables):
            spread = self.projections[:, :, v]
            over_time.plot(self.times, spread.max(axis=0) - spread.min(axis=0), label=name)
        over_time.set_xlabel("time")
        over_time.set_ylabel("range over conditions")
        from .plotting import mark_periods

        mark_periods(over_time, self.periods)
        over_time.legend(frameon=False, fontsize=8)
        for ax, (value, rows) in zip(axes[0, 1:], groups, strict=True):
            self.draw(ax, x=x, y=y, rows=rows, color=color)
            if by is not None:
                ax.set_title(f"{by} = {value}", fontsize=9)
        return fig

    def _axis(self, name: str | None, default: int) -> int:
        if name is None:
            return min(default, len(self.variables) - 1)
        if name not in self.variables:
            raise UnknownNameError(f"axis: got {name!r}. Available: {format_choices(self.variables)}.")
        return self.variables.index(name)

    def _column(self, name: str) -> str:
        if name not in self.conditions:
            raise UnknownNameError(f"by: got {name!r}. Condition columns: {format_choices(self.conditions)}.")
        return name


def task_regressors(recording: Recording, variables: Sequence[str]) -> np.ndarray:
    """(trial, variable) numeric regressors: numeric columns as they are, two-valued columns as -1 / +1."""
    if isinstance(variables, str) or not isinstance(variables, Sequence) or not variables:
        raise ArgumentTypeError(f"variables: got {describe(variables)}. Pass a list of metadata column names.")
    columns = []
    for name in variables:
        if not isinstance(name, str) or name not in recording.columns:
            raise UnknownNameError(
                f"variables: {name!r} is not a metadata column. Available: {format_choices(recording.columns)}."
            )
        values = np.asarray(recording.column(name))
        if values.dtype.kind in "biuf":
            column = values.astype(np.float64)
        else:
            levels = np.unique(values.astype(str))
            if levels.size != 2:
                raise ArgumentError(
                    f"variables: column {name!r} has {levels.size} non-numeric values ({format_choices(levels)}); "
                    f"a task variable is numeric or has two values (coded -1, +1). Add a numeric column."
                )
            column = np.where(values.astype(str) == levels[1], 1.0, -1.0)
        if not np.isfinite(column).all() or np.ptp(column) == 0:
            raise ArgumentError(f"variables: column {name!r} is constant or not finite; it cannot be regressed on.")
        columns.append(column)
    return np.stack(columns, axis=1)


def _moments(
    recording: Recording, layer: str, positions: np.ndarray, design: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(unit means, unit standard deviations (1 where constant), regression coefficients of the z-scored
    states (regressors + constant, time, units), R^2 per time step, the states read) of the layer read
    into memory: the units' means, then their spreads (non-finite states refused from them, with no pass of their
    own: :func:`.._validation.refuse_non_finite_squares`), then each step's z-scored states, their coefficients
    (:func:`_least_squares`), residual and total squares, a step at a time, the steps in equal shares on the
    library threads, one BLAS thread each. Each share's temporaries are two arrays of a step's size, reused step
    after step: fresh ones (four a step) cost page faults, which two threads take in turns (fit_tdr of 2400 x 20
    x 256 on two threads: 3,049 faults and 8.2 ms of system time a call -> 2 and 1.5 ms; 95-133 -> 80-82 ms, AMD
    EPYC Zen 3); the same arithmetic, the same bits.
    """
    _, _, states = layer_states(recording, layer, time=positions, finite_checked_later=True)  # (from the spreads)
    n_trials, n_times, n_units = states.shape
    solve = _least_squares(design)
    coef, step_mean = np.empty((design.shape[1], n_times, n_units)), np.empty((n_times, n_units))
    total, residual = np.empty((n_times, n_units)), np.empty((n_times, n_units))

    @np.errstate(invalid="ignore", over="ignore")  # (states that are not finite: refused below)
    def sums(steps: slice) -> np.ndarray:
        return sum(states[:, t].sum(axis=0) for t in range(steps.start, steps.stop))

    @np.errstate(invalid="ignore", over="ignore")
    def spread(steps: slice) -> np.ndarray:
        work = np.empty((n_trials, n_units))
        return sum(np.square(np.subtract(states[:, t], mean, out=work), out=work).sum(axis=0)
                   for t in range(steps.start, steps.stop))  # fmt: skip

    def fit(steps: slice) -> None:
        z, work = np.empty((n_trials, n_units)), np.empty((n_trials, n_units))
        for t in range(steps.start, steps.stop):
            np.divide(np.subtract(states[:, t], mean, out=z), scale, out=z)
            coef[:, t] = solve(z)
            step_mean[t] = z.mean(axis=0)
            total[t] = np.square(np.subtract(z, step_mean[t], out=work), out=work).sum(axis=0)
            fitted = np.matmul(design, coef[:, t], out=work)  # (z less it: _residual's, into the buffer)
            residual[t] = np.square(np.subtract(z, fitted, out=work), out=work).sum(axis=0)

    threads, n = min(library_threads(), n_times), n_trials * n_times
    mean = sum(in_shares(sums, n_times, threads=threads)) / n
    variance = sum(in_shares(spread, n_times, threads=threads)) / n
    if not np.isfinite(variance).all():  # NaN or inf among the states makes a spread NaN, squares that overflow inf
        refuse_non_finite_squares(states, name="recording", layer=layer, what="spread across trials",
                                  remedy="the coefficients of the z-scored states are unchanged")  # fmt: skip
    scale = _unit_scale(variance, mean, n)
    in_shares(fit, n_times, threads=threads)
    return mean, scale, coef, _r_squared(residual, total, step_mean, n_trials), states


def _dask_moments(
    recording: Recording, layer: str, positions: np.ndarray, design: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """:func:`_moments` of a dask-backed layer, blockwise, in three passes of dask graphs over chunks of
    trials (on the active client if there is one): the units' means; their spreads, the products D'(x - mean)
    and each step's sums; each step's residual and total squares. Only (units), (regressors, time, units) and
    (time, units) arrays come back; the coefficients solve the normal equations of the small design. No
    states are returned (None): the condition averages are blockwise too.
    """
    import dask
    import dask.array as da

    x = dask_states(recording, layer, time=positions)
    n_trials, n_times, _ = x.shape
    mean, finite = dask.compute(x.mean(axis=(0, 1)), da.isfinite(x).all())
    check_finite_layer(finite, layer)
    y = x - mean
    rows = da.from_array(design, chunks=(x.chunks[0], -1))
    squares, cross, step_sums = dask.compute((y * y).sum(axis=(0, 1)), da.tensordot(rows, y, axes=(0, 0)),
                                             y.sum(axis=0))  # fmt: skip
    scale = _unit_scale(squares / (n_trials * n_times), mean, n_trials * n_times)
    coef = np.linalg.solve(design.T @ design, (cross / scale).reshape(len(cross), -1)).reshape(cross.shape)
    per_step = {"chunks": (-1, *x.chunks[1:])}
    step_mean = da.from_array(step_sums[None] / n_trials / scale, **per_step)
    fitted = da.from_array(coef, **per_step)
    z = y / scale
    residual = da.blockwise(_residual, "ntu", z, "ntu", rows, "nv", fitted, "vtu", dtype=z.dtype, concatenate=True)
    deviation = da.blockwise(np.subtract, "ntu", z, "ntu", step_mean, "ktu", dtype=z.dtype, concatenate=True)
    residual, total = dask.compute((residual**2).sum(axis=0), (deviation**2).sum(axis=0))
    return mean, scale, coef, _r_squared(residual, total, step_sums / n_trials / scale, n_trials), None


def _least_squares(design: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The least-squares coefficients of targets (trials, columns) on a full-rank ``design`` (trials, k), as a
    function of the targets: R^-1 Q' targets by the design's Householder QR, taken once, and one product with the
    targets (LAPACK's lstsq, an SVD solver, carried every column through its steps: 2400 trials x 4 regressors x
    5120 columns, one thread, AMD EPYC, 239 -> 10 ms). Backward stable, as lstsq; fit_tdr has refused a design of
    lower numerical rank before.
    """
    from scipy.linalg import solve_triangular

    with small_blas():  # (a thin QR: woken BLAS threads would spin into the shares of steps that follow)
        q, r = np.linalg.qr(design)

    def solve(targets: np.ndarray) -> np.ndarray:
        projected = q.T @ targets
        with one_blas_thread():  # (scipy's triangular solve on scipy's OpenBLAS, between numpy's products)
            return solve_triangular(r, projected)

    return solve


def _unit_scale(variance: np.ndarray, mean: np.ndarray, n: int) -> np.ndarray:
    """Each unit's standard deviation over trials and steps, 1 where it is constant (its spread no more than
    rounding leaves, :func:`._constant.rounding_only`): a constant unit stays about 0 once centred.
    """
    return np.where(rounding_only(variance, mean, n), 1.0, np.sqrt(variance))


def _r_squared(residual: np.ndarray, total: np.ndarray, step_mean: np.ndarray, n_trials: int) -> np.ndarray:
    """R^2 per step from each (step, unit)'s residual and total squares over the trials, the z-scored states'
    means ``step_mean``: a unit constant across the trials at a step (rounding's spread) adds to neither; NaN at
    a step where every unit is (no variance to explain).
    """
    constant = rounding_only(total / n_trials, step_mean, n_trials)
    residual, total = (np.where(constant, 0.0, a).sum(axis=1) for a in (residual, total))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 1 - residual / total, np.nan)


def _residual(z: np.ndarray, rows: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """The z-scored states of a block of trials minus the regression's fit (``rows``: their design rows)."""
    return z - np.tensordot(rows, coef, axes=(1, 0))


def fit_tdr(
    recording: Recording,
    layer: str | None = None,
    *,
    variables: Sequence[str],
    conditions: Sequence[str] | None = None,
    time: Any = None,
    n_components: int | None = None,
) -> TDRResult:
    """Targeted dimensionality reduction (Mante et al. 2013): one population axis per task variable.

    Parameters
    ----------
    recording : Recording
        Trials as rows, with the task variables as metadata columns. A dask-backed recording
        (``Recording.load(path, chunks=...)``) is fitted blockwise, never read whole.
    layer : str, optional
    variables : list of str
        Metadata columns regressed on, in the order of orthogonalisation (the paper: choice, motion,
        colour, context). Numeric columns are used as they are (e.g. signed coherence); columns of two
        values are coded -1 / +1 (the second value in sorted order is +1).
    conditions : list of str, optional
        Columns defining the conditions whose averages are projected and whose principal components
        denoise the coefficients (default ``variables``).
    time : selection, optional
    n_components : int, optional
        Principal components of the condition averages kept for denoising (default 12, as the paper, or
        as many as the condition averages have where fewer).

    Returns
    -------
    TDRResult

    Examples
    --------
    >>> import numpy as np
    >>> from rnnprobe import Recording
    >>> rng = np.random.default_rng(0)
    >>> choice, coherence = rng.choice([-1, 1], 200), rng.choice([-0.5, -0.1, 0.1, 0.5], 200)
    >>> w = np.linalg.qr(rng.normal(size=(20, 2)))[0]
    >>> ramp = np.linspace(0, 1, 15)[None, :, None]
    >>> states = ramp * (choice[:, None, None] * w[:, 0] + coherence[:, None, None] * w[:, 1])
    >>> rec = Recording({"h": states + 0.1 * rng.normal(size=(200, 15, 20))},
    ...                 metadata={"choice": choice, "coherence": coherence})
    >>> result = fit_tdr(rec, variables=["choice", "coherence"], n_components=4)
    >>> planted = w[:, 0] / result.scale                    # coefficients of z-scored units: w / s.d.
    >>> bool(abs(result.axes[0] @ planted / np.linalg.norm(planted)) > 0.99)
    True
    """
    check_recording(recording, "recording")
    regressors = task_regressors(recording, variables)
    variables = list(variables)
    columns = variables if conditions is None else list(conditions)
    for column in [] if conditions is None else columns:  # (the variables are checked as regressors)
        check_grouping(recording.column(column), name=f"conditions {column!r}")
    layer = recording.resolve_layer(layer)
    positions = recording.time_positions(layer, time)
    design = np.column_stack([regressors, np.ones(len(regressors))])
    with small_blas():
        deficient = len(design) <= design.shape[1] or np.linalg.matrix_rank(design) < design.shape[1]
    if deficient:
        raise ArgumentError(
            f"variables: the {len(variables)} variables and a constant are collinear over the {len(design)} trials "
            f"(or trials are too few); pass variables that vary independently."
        )
    from ..recording import Recording
    from .conditions import condition_average

    # regression and condition averages: in memory, or blockwise for a dask-backed recording
    moments = _dask_moments if recording.is_dask else _moments
    mean, scale, coef, r2, states = moments(recording, layer, positions, design)
    if np.isnan(r2).all():
        raise ArgumentError(
            f"recording: layer {layer!r} is the same on every trial at every selected time step; there is no "
            "variance for the task variables to explain. Select steps or a layer where the trials differ."
        )
    coefficients = coef[:-1]  # (variables, time, units); the last row is the constant's
    n_times, n_units = coefficients.shape[1:]
    # the states read already, else the dask-backed layer (averaged blockwise): never read twice
    trials = (recording.select(layer, time=positions) if states is None
              else Recording({layer: states}, metadata={c: recording.column(c) for c in columns}))  # fmt: skip
    averaged = condition_average(trials, columns, layers=layer)
    means = (averaged.get(layer).reshape(-1, n_times, n_units) - mean) / scale  # of the z-scored states
    available = min(means.shape[0] * n_times, n_units)
    n_components = min(12, available) if n_components is None else check_int("n_components", n_components)
    if n_components > available:
        raise ArgumentError(
            f"n_components: got {n_components}, but {means.shape[0]} conditions x {n_times} times x {n_units} units "
            f"have at most {min(means.shape[0] * n_times, n_units)} principal components."
        )
    from .pca import principal_axes

    # (small products on one BLAS thread: OpenBLAS's threads, once woken, spin on the cores for a while, and took
    # them from the next call's shares of steps: 2400 x 20 x 256 in calls in a row, 118 / 129 ms on 1 / 2 threads)
    with small_blas():
        basis = principal_axes(means.reshape(-1, n_units), n_components)
        denoised = coefficients @ basis.T @ basis
        peaks = np.argmax(np.linalg.norm(denoised, axis=2), axis=1)
        q, r = np.linalg.qr(denoised[np.arange(len(variables)), peaks].T)
        axes = (q * np.where(np.diagonal(r) < 0, -1.0, 1.0)).T
        projected = means @ axes.T
    times = np.asarray(recording.times[layer])[positions]
    condition_values = {c: np.asarray(averaged.column(c)) for c in [*columns, "n_trials"]}
    return TDRResult(axes, variables, coefficients, denoised, times[peaks], r2, projected, condition_values,
                     times, layer, n_components, mean, scale, recording.periods)  # fmt: skip

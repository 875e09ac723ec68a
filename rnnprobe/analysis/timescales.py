"""Intrinsic timescales of recorded units, and memory decay by decoding past inputs.

Intrinsic timescale (Murray et al. 2014): for each unit, the correlation across stimuli (trials)
between its activity at steps t and t + k, averaged over t, is its autocorrelation R(k) at lag k;
an exponential decay with an offset is fitted,

    R(k) = A (exp(-k / tau) + B),      k = 1 .. max_lag,

and tau (in time steps) is the unit's timescale. The fit of all units is vectorised: for each tau on a
fine logarithmic grid, A and A B follow in closed form by linear least squares (the basis exp(-k / tau)
is shared by every unit), the best grid point is refined by parabolic interpolation of the residual in
log tau, and A, B are solved again at the refined tau. Units without variance, or whose
autocorrelation does not decay (tau at the grid's edge, or R(1..max_lag) flat to 1e-10 of its mean: a unit
that holds each stimulus's value at every step has R = 1 at every lag, and a fit of its rounding gave any tau),
are marked invalid.

Memory decay (:func:`memory_decay`): how well the input at step t - lag can be decoded from the state
at step t, for increasing lags (cross-validated over stimuli, with :func:`~rnnprobe.analysis.decoding.decode`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import (
    check_finite_layer,
    check_int,
    check_number,
    check_recording,
    layer_states,
    refuse_non_finite_squares,
)
from ..errors import ArgumentError, ShapeError, describe
from ..recording import Recording
from ._constant import rounding_only
from .blockwise import dask_states
from .parallel import in_shares, library_threads, small_blas

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

TAU_GRID = np.geomspace(0.05, 1e4, 400)
FLAT = 1e-10  # an autocorrelation that changes over the lags by no more than this share of its mean does not decay


def autocorrelation(states: Any, max_lag: int) -> np.ndarray:
    """Autocorrelation across stimuli per unit and lag, (units, max_lag + 1), from (stimulus, time, units).

    R_u(k) = mean over t of corr_n(x[n, t, u], x[n, t + k, u]); NaN for units constant across stimuli. States
    that are not finite, or whose squares overflow, are refused (from each step's spread across stimuli, which
    they make NaN or inf: no pass of their own).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(500, 20, 2))
    >>> r = autocorrelation(x, 3)
    >>> r[:, 0], bool(np.abs(r[:, 1:]).max() < 0.05)
    (array([1., 1.]), True)
    """
    x = np.asarray(states, dtype=np.float64)
    if x.ndim != 3:
        raise ShapeError(f"states: got {describe(x)}. Pass (stimulus, time, units).")
    return _autocorrelation(x, max_lag, name="states", layer=None)


@np.errstate(invalid="ignore", over="ignore")  # (states that are not finite: refused below, from the spreads)
def _autocorrelation(x: np.ndarray, max_lag: int, *, name: str, layer: str | None) -> np.ndarray:
    """:func:`autocorrelation` of float64 (stimulus, time, units) ``x``, whose non-finite values are refused as
    ``name``'s (and ``layer``'s), from the spreads across stimuli that the lagged sums hold (lag 0). Shares of
    the stimuli on the library threads from ``SPLIT_BYTES`` of states: each share's sums, then their sum.
    """
    n, t, units = x.shape
    max_lag = _check_lags(n, t, max_lag)
    threads = library_threads() if x.nbytes >= SPLIT_BYTES else 1
    mean = sum(in_shares(lambda share: x[share].sum(axis=0), n, threads=threads)) / n
    lagged = sum(in_shares(lambda share: _lagged_sums(x[share], mean, max_lag), n, threads=threads))
    variance = lagged[0] / n
    if not np.isfinite(variance).all():  # NaN or inf among the states makes a spread NaN, squares that overflow inf
        refuse_non_finite_squares(x, name=name, layer=layer, what="spread across stimuli",
                                  remedy="the autocorrelation is unchanged")  # fmt: skip
    scale = _inverse_spread(variance, mean, n)  # (t, u), NaN where a unit is constant at a step
    out = np.empty((units, max_lag + 1))
    for k in range(max_lag + 1):
        out[:, k] = np.einsum("tu,tu,tu->u", lagged[k, : t - k], scale[: t - k], scale[k:]) / (n * (t - k))
    return out


SPLIT_BYTES = 2**23  # states from which the stimuli are split across the library threads
BLOCK_BYTES = 2**21  # the centred states of a block of stimuli, whose lagged products are summed in cache


@np.errstate(invalid="ignore", over="ignore")  # (states that are not finite: refused by the caller)
def _lagged_sums(x: np.ndarray, mean: np.ndarray, max_lag: int) -> np.ndarray:
    """(lags, time, units): at lag k and step t, the sum over the stimuli of ``x`` (stimulus, time, units) of the
    products of their states at steps t and t + k, each less its step's ``mean``; blocks of stimuli of
    ``BLOCK_BYTES`` centred in one buffer, which every lag's products read while it is in cache (the layer
    centred whole and read twice per lag from memory: 160 ms for 2000 x 20 x 512 and 10 lags on one thread,
    in blocks 75 ms, AMD EPYC).
    """
    n, t, units = x.shape
    size = max(1, min(n, BLOCK_BYTES // (8 * t * units)))
    centred, products = np.empty((size, t, units)), np.empty((t, units))
    sums = np.zeros((max_lag + 1, t, units))
    for start in range(0, n, size):
        block = np.subtract(x[start : start + size], mean, out=centred[: min(size, n - start)])
        for k in range(max_lag + 1):
            np.einsum("ntu,ntu->tu", block[:, : t - k], block[:, k:], out=products[: t - k])
            sums[k, : t - k] += products[: t - k]
    return sums


def _check_lags(n: int, t: int, max_lag: int) -> int:
    max_lag = check_int("max_lag", max_lag, minimum=1)
    if max_lag >= t:
        raise ArgumentError(
            f"max_lag: got {max_lag}, but the recording has {t} time steps; lags go up to {t - 1}. Pass max_lag <= "
            f"{t - 1} (fewer lags leave more pairs of steps per lag)."
        )
    if n < 3:
        raise ArgumentError(f"states: {n} stimuli; correlations across stimuli need at least 3.")
    return max_lag


def dask_autocorrelation(states: Any, max_lag: int, layer: str) -> np.ndarray:
    """:func:`autocorrelation` of a (stimulus, time, units) float64 dask array (``blockwise.dask_states``),
    blockwise: each step's mean and spread across stimuli, then the lagged products summed over chunks of
    stimuli (two passes on the active ``dask.distributed`` client, else dask's threads); only (time, units)
    and (units, lags) arrays come back. Equal to the in-memory function to rounding. NaN or inf states are
    refused.
    """
    import dask
    import dask.array as da

    x = states.rechunk({1: -1})
    n, t, _ = x.shape
    max_lag = _check_lags(n, t, max_lag)
    mean, finite = dask.compute(x.mean(axis=0), da.isfinite(x).all())
    check_finite_layer(finite, layer)
    (variance,) = dask.compute(((x - mean) ** 2).mean(axis=0))
    z = (x - mean) * _inverse_spread(variance, mean, n)  # (NaN, not inf: 0 x inf would warn in the tasks)
    lagged = [da.einsum("ntu,ntu->u", z[:, : t - k], z[:, k:]) / (n * (t - k)) for k in range(max_lag + 1)]
    return np.stack(dask.compute(*lagged), axis=1)


def _inverse_spread(variance: np.ndarray, mean: np.ndarray, n: int) -> np.ndarray:
    """1 / each (step, unit)'s spread across the ``n`` stimuli (the root of its ``variance``), NaN where the unit is
    constant at the step: its variance no more than rounding leaves (a unit constant at 0.1 has a spread of about
    1e-17 once centred, and divided by it, a correlation of 1 with itself at every lag).
    """
    constant = rounding_only(variance, mean, n)  # (a variance of 0 among them: no division by 0 below)
    return np.where(constant, np.nan, 1 / np.sqrt(np.where(constant, 1.0, variance)))


def fit_exponential(lags: np.ndarray, values: np.ndarray, grid: np.ndarray = TAU_GRID) -> dict[str, np.ndarray]:
    """Least-squares fit of values[u, i] ~ A_u (exp(-lags[i] / tau_u) + B_u) for every row at once.

    Returns ``tau``, ``amplitude`` (A), ``offset`` (B), ``sse`` and ``at_edge`` (tau at the grid's
    end: no decay, or faster than the grid resolves), each (units,).
    """
    lags = np.asarray(lags, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    y_mean = y.mean(axis=1, keepdims=True)
    yc = y - y_mean

    e = np.exp(-lags[None, :] / grid[:, None])  # (G, L): the basis at every grid tau
    ec = e - e.mean(axis=1, keepdims=True)
    ee = (ec**2).sum(axis=1)
    with small_blas():  # (a small product: OpenBLAS's threads, once woken, spin on the cores the next call needs)
        cross = yc @ ec.T  # (U, G)
    sse_grid = (yc**2).sum(axis=1, keepdims=True) - cross**2 / np.where(ee > 0, ee, np.inf)[None]
    best = np.argmin(sse_grid, axis=1)
    log_tau = np.log(grid)[best]
    h = np.log(grid[1] / grid[0])  # the grid's step in log tau

    def closed_form(log_tau: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per-row a, c (y ~ a e + c at that row's tau) and the residual sum of squares."""
        e_u = np.exp(-lags[None, :] / np.exp(log_tau)[:, None])  # (U, L)
        ec_u = e_u - e_u.mean(axis=1, keepdims=True)
        a = (yc * ec_u).sum(axis=1) / np.maximum((ec_u**2).sum(axis=1), 1e-300)
        c = y_mean[:, 0] - a * e_u.mean(axis=1)
        return a, c, ((y - (a[:, None] * e_u + c[:, None])) ** 2).sum(axis=1)

    # parabolic steps in log tau on ever finer brackets around the best grid point (h, h/2, ... h/2^7)
    interior = (best > 0) & (best < len(grid) - 1)
    for i in range(8):
        width = h / 2**i
        s_lo, s_mid, s_hi = (closed_form(log_tau + d)[2] for d in (-width, 0.0, width))
        curve = s_lo - 2 * s_mid + s_hi
        move = np.where(curve > 0, 0.5 * (s_lo - s_hi) / np.where(curve > 0, curve, 1), 0.0) * width
        log_tau = np.where(interior, log_tau + np.clip(move, -width, width), log_tau)
    tau = np.exp(log_tau)
    a, c, sse = closed_form(log_tau)
    with np.errstate(invalid="ignore", divide="ignore"):
        offset = np.where(a != 0, c / a, np.nan)
    return {"tau": tau, "amplitude": a, "offset": offset, "sse": sse,
            "at_edge": (best == 0) | (best == len(grid) - 1)}  # fmt: skip


@dataclass
class TimescaleResult:
    """Per-unit intrinsic timescales of one layer.

    Attributes
    ----------
    layer : str
    lags : ndarray, (max_lag + 1,)
    autocorrelation : ndarray, (units, max_lag + 1)
    tau : ndarray, (units,)
        Timescale in time steps (NaN where invalid).
    amplitude, offset : ndarray, (units,)
        A and B of the fit R(k) = A (exp(-k / tau) + B).
    r2 : ndarray, (units,)
        Variance of R(1..max_lag) explained by the fit.
    valid : ndarray of bool, (units,)
        Units with variance, an autocorrelation that changes over the lags (by more than 1e-10 of its mean), a
        decaying fit (A > 0) and tau inside the grid.
    dt : float
        Time per step (tau * dt is the timescale in time units).
    """

    layer: str
    lags: np.ndarray
    autocorrelation: np.ndarray
    tau: np.ndarray
    amplitude: np.ndarray
    offset: np.ndarray
    r2: np.ndarray
    valid: np.ndarray
    dt: float = 1.0

    def __repr__(self) -> str:
        v = self.tau[self.valid]
        median = f"median tau {np.median(v):.2f} steps" if v.size else "no valid fits"
        return f"<TimescaleResult: {self.layer!r}, {int(self.valid.sum())}/{len(self.tau)} units fitted, {median}>"

    def summary(self) -> dict[str, Any]:
        """Key numbers: units fitted, median and quartiles of tau, median fit R^2."""
        v = self.tau[self.valid]
        q = np.percentile(v, [25, 50, 75]) if v.size else [np.nan] * 3
        return {
            "layer": self.layer, "units": len(self.tau), "units fitted": int(self.valid.sum()),
            "median tau (steps)": float(q[1]), "tau 25th percentile": float(q[0]), "tau 75th percentile": float(q[2]),
            "median fit R2": float(np.nanmedian(self.r2[self.valid])) if v.size else float("nan"),
            "max lag": int(self.lags[-1]),
        }  # fmt: skip

    def plot(self, others: dict[str, TimescaleResult] | None = None) -> Figure:
        """Mean autocorrelation over lags with the fit at the median tau, and the distribution of
        log tau; ``others`` (label -> result) are drawn alongside (e.g. cell vs hidden states).
        """
        from .plotting import OKABE_ITO, pyplot

        results = {self.layer: self, **(others or {})}
        fig, (ax, ax2) = pyplot().subplots(1, 2, figsize=(9, 3.4), layout="constrained")
        taus = [r.tau[r.valid] for r in results.values()]
        finite = np.concatenate([t for t in taus if t.size]) if any(t.size for t in taus) else np.array([1.0])
        bins = np.geomspace(max(finite.min(), 1e-2) * 0.9, finite.max() * 1.1 + 1e-9, 30)
        for (label, r), color in zip(results.items(), OKABE_ITO[4:] + OKABE_ITO[:4], strict=False):
            mean = np.nanmean(r.autocorrelation[r.valid], axis=0) if r.valid.any() else np.full(len(r.lags), np.nan)
            ax.plot(r.lags, mean, "o", color=color, ms=3, label=f"{label}")
            if r.valid.any():
                tau = np.median(r.tau[r.valid])
                a, b = np.median(r.amplitude[r.valid]), np.median(r.offset[r.valid])
                k = np.linspace(1, r.lags[-1], 100)
                ax.plot(k, a * (np.exp(-k / tau) + b), color=color, lw=1)
                ax2.hist(r.tau[r.valid], bins=bins, color=color, alpha=0.5, label=f"{label} (median {tau:.2f})")
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xlabel("lag (time steps)")
        ax.set_ylabel("autocorrelation across stimuli")
        ax.legend(frameon=False, fontsize=8)
        ax.set_title("autocorrelation (mean of fitted units)")
        ax2.set_xscale("log")
        ax2.set_xlabel("timescale tau (time steps)")
        ax2.set_ylabel("units")
        if ax2.get_legend_handles_labels()[0]:
            ax2.legend(frameon=False, fontsize=8)
        else:  # (no unit's fit is valid: say so, rather than an empty panel and matplotlib's legend warning)
            ax2.text(0.5, 0.5, "no unit fitted", ha="center", va="center", transform=ax2.transAxes)
        ax2.set_title("intrinsic timescales")
        return fig


def fit_timescales(
    recording: Recording, layer: str | None = None, *, max_lag: int | None = None, time: Any = None, dt: float = 1.0
) -> TimescaleResult:
    """Intrinsic timescale of every unit of a layer (Murray et al. 2014), see the module docstring.

    Parameters
    ----------
    recording : Recording
        A dask-backed recording (``Recording.load(path, chunks=...)``) is fitted blockwise, never read whole.
    layer : str, optional
    max_lag : int, optional
        Largest lag fitted (default: half the steps, at least 1).
    time : selection of time steps, optional
        Use these steps only (e.g. ``slice(10, None)`` to skip the transient after onset).
    dt : float
        Time per step, kept for reporting tau * dt.

    Examples
    --------
    An AR(1) process x(t+1) = phi x(t) + noise has R(k) = phi^k, a timescale -1 / ln(phi):

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.zeros((400, 60, 1))
    >>> x[:, 0] = rng.normal(size=(400, 1)) / np.sqrt(1 - 0.8**2)
    >>> for t in range(59):
    ...     x[:, t + 1] = 0.8 * x[:, t] + rng.normal(size=(400, 1))
    >>> result = fit_timescales(Recording({"x": x}), max_lag=10)
    >>> truth = -1 / np.log(0.8)                      # 4.48 steps
    >>> bool(abs(result.tau[0] - truth) < 0.5)          # estimated from 400 trials
    True
    """
    check_recording(recording)
    dt = check_number("dt", dt, minimum=0, inclusive=False)
    layer = recording.resolve_layer(layer)
    steps = recording.time_positions(layer, time)
    if len(steps) > 1 and not (np.diff(steps) == 1).all():
        raise ArgumentError("time: pass consecutive time steps (a slice): lags are counted in steps.")
    max_lag = max(1, len(steps) // 2) if max_lag is None else max_lag
    if recording.is_dask:  # blockwise: the layer is never read whole
        ac = dask_autocorrelation(dask_states(recording, layer, time=steps), max_lag, layer)
    else:
        states = layer_states(recording, layer, time=steps, finite_checked_later=True)[2]  # (by the spreads)
        ac = _autocorrelation(states, max_lag, name="recording", layer=layer)
    lags = np.arange(max_lag + 1)
    usable = np.isfinite(ac).all(axis=1)
    fit = fit_exponential(lags[1:], np.where(usable[:, None], ac[:, 1:], 0.0))
    mean = ac[:, 1:].mean(axis=1)
    total = ((ac[:, 1:] - mean[:, None]) ** 2).sum(axis=1)
    # no decay to fit where R(1..max_lag) is flat but for rounding (a few eps of the sums over stimuli and steps)
    flat = total <= max_lag * (FLAT * mean) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(flat, np.nan, 1 - fit["sse"] / total)
    valid = usable & ~flat & (fit["amplitude"] > 0) & ~fit["at_edge"]
    return TimescaleResult(
        layer=layer, lags=lags, autocorrelation=ac, tau=np.where(valid, fit["tau"], np.nan),
        amplitude=fit["amplitude"], offset=fit["offset"], r2=np.where(usable, r2, np.nan), valid=valid, dt=float(dt),
    )  # fmt: skip


@dataclass
class MemoryDecayResult:
    """Decoding of the input at step t - lag from the state at step t, per lag.

    Attributes
    ----------
    lags : ndarray
    scores : ndarray, (n_lags,)
        Cross-validated score (folds split by stimulus), pooled over steps t >= lag.
    chance : float
    scoring : str
    layer : str
    """

    lags: np.ndarray
    scores: np.ndarray
    chance: float
    scoring: str
    layer: str

    def __repr__(self) -> str:
        pairs = ", ".join(f"{k}: {s:.2f}" for k, s in zip(self.lags, self.scores, strict=True))
        return f"<MemoryDecayResult of {self.layer!r} ({self.scoring}, chance {self.chance:.2f}): {pairs}>"

    def memory_span(self, margin: float = 0.05) -> int:
        """The largest lag whose score exceeds chance by ``margin`` (in score units); -1 if none."""
        above = self.lags[self.scores > self.chance + margin]
        return int(above.max()) if above.size else -1

    def summary(self) -> dict[str, Any]:
        """Key numbers: the decoding score at each lag, chance and the memory span."""
        out: dict[str, Any] = {"layer": self.layer, "scoring": self.scoring, "chance": self.chance}
        out.update({f"lag {k}": float(s) for k, s in zip(self.lags, self.scores, strict=True)})
        out["memory span (steps)"] = self.memory_span()
        return out

    def plot(self, others: dict[str, MemoryDecayResult] | None = None) -> Figure:
        """Score against lag, with the chance line (``others`` drawn alongside)."""
        from .plotting import OKABE_ITO, pyplot

        fig, ax = pyplot().subplots(figsize=(5, 3.4), layout="constrained")
        for (label, r), color in zip({self.layer: self, **(others or {})}.items(), OKABE_ITO[4:] + OKABE_ITO[:4],
                                     strict=False):  # fmt: skip
            ax.plot(r.lags, r.scores, color=color, marker="o", ms=3, label=label)
        ax.axhline(self.chance, color="black", ls="--", lw=0.8, label="chance")
        ax.set_xlabel("lag (time steps into the past)")
        ax.set_ylabel(self.scoring)
        ax.set_title("memory of past inputs")
        ax.legend(frameon=False, fontsize=8)
        return fig


def _varying_lags(inputs: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Whether the input varies over the stimuli and steps each lag decodes (steps 0 .. t - lag - 1); refused
    where it varies at no lag (a score of a constant target, R^2 or accuracy, is undefined: it was 0, read as no
    memory at all).
    """
    t = inputs.shape[1]
    varies = np.array([np.unique(inputs[:, : t - lag]).size > 1 for lag in lags])
    if not varies.any():
        value = inputs.ravel()[:1].tolist()[0]  # (as Python prints it: 0.1, not np.float64(0.1))
        raise ArgumentError(
            f"inputs: the same value ({value!r}) for every stimulus at every step the lags read; nothing varies to "
            f"be remembered. Pass inputs that differ across stimuli or steps."
        )
    return varies


def memory_decay(
    recording: Recording,
    layer: str | None = None,
    inputs: Any = None,
    *,
    lags: Any = None,
    estimator: Any = "ridge",
    cv: int = 5,
    scoring: str | None = None,
    seed: int | None = 0,
) -> MemoryDecayResult:
    """Decode the input ``lag`` steps back from the current state, for each lag.

    A lag at which the input does not vary (one value for every stimulus at every step it decodes) has no
    score (NaN); inputs that vary at no lag are refused.

    Parameters
    ----------
    recording : Recording
        A dask-backed recording (``Recording.load(path, chunks=...)``) with ridge decoders is never read
        whole: each fold's decoder is solved from sums over blocks of stimuli
        (:mod:`rnnprobe.analysis.memory_decay_blockwise`); logistic regression of at least as many samples as
        units is fitted by passes over blocks of stimuli, a task per lag; the same scores. Other decoders read
        the layer.
    layer : str, optional
    inputs : array-like (stimulus, time)
        The input to remember at each step (class labels, or values for regression).
    lags : sequence of int, optional
        Default 0 .. n_steps // 2.
    estimator, cv, scoring, seed
        As :func:`~rnnprobe.analysis.decoding.decode`; folds keep each stimulus's steps together.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> u = rng.integers(0, 2, size=(100, 12))
    >>> h = np.stack([u, np.roll(u, 1, axis=1)], axis=-1) + 0.1 * rng.normal(size=(100, 12, 2))
    >>> memory_decay(Recording({"h": h}), "h", u, lags=[0, 1, 2]).scores.round(1)  # h holds u(t) and u(t-1)
    array([1. , 1. , 0.5])
    """
    from .decoding import decode

    check_recording(recording)
    layer = recording.resolve_layer(layer)
    n, t = recording.shapes[layer][:2]
    u = np.asarray(inputs)
    if u.shape != (n, t):
        raise ShapeError(f"inputs: got {describe(u)}; pass one input per stimulus and step, shape ({n}, {t}).")
    lags = np.arange(t // 2 + 1) if lags is None else np.asarray(lags)
    if lags.ndim != 1 or not np.issubdtype(lags.dtype, np.integer) or lags.min() < 0:
        raise ArgumentError(f"lags: got {describe(lags)}. Pass non-negative integers.")
    if lags.max() >= t:
        raise ArgumentError(
            f"lags: got {int(lags.max())}, but the recording has {t} time steps; a lag must leave at least one step "
            f"(<= {t - 1})."
        )
    varies = _varying_lags(u, lags)
    if recording.is_dask:  # ridge from sums over blocks of stimuli: the layer is never read whole
        from .memory_decay_blockwise import memory_decay_blockwise

        settings = dict(estimator=estimator, cv=cv, scoring=scoring, seed=seed)
        found = memory_decay_blockwise(recording, layer, u, lags[varies], settings)
        if found is not None:
            scores = np.full(lags.size, np.nan)
            scores[varies] = found[0]
            return MemoryDecayResult(lags, scores, float(found[1]), found[2], layer)
    _, _, states = layer_states(recording, layer, dtype=None)
    scores, chance, name = [], 0.0, ""
    for lag, defined in zip(lags, varies, strict=True):
        if not defined:  # the input does not vary over the steps this lag reads: no score of it is defined
            scores.append(np.nan)
            continue
        x = states[:, lag:].reshape(n * (t - lag), 1, -1)
        y = u[:, : t - lag].reshape(-1)
        groups = np.repeat(np.arange(n), t - lag)
        pooled = Recording({layer: x})
        result = decode(pooled, layer, y, estimator=estimator, cv=cv, scoring=scoring, groups=groups, seed=seed,
                        progress=False)  # fmt: skip
        scores.append(float(result.scores[0]))
        chance, name = result.chance, result.scoring
    return MemoryDecayResult(lags, np.array(scores), float(chance), name, layer)

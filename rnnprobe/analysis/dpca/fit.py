"""fit_dpca: demixed principal components of trials grouped by task parameters (Kobak et al. 2016)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._validation import check_int, check_number, check_recording, check_seed
from ...errors import ArgumentError, ArgumentTypeError, ShapeError, UnknownNameError, describe, format_choices
from ..parallel import library_threads, task_pool
from .core import (
    TIME,
    Design,
    by_condition,
    fit_all,
    fit_path,
    held_out_error,
    marginalization_names,
    marginalize,
    trial_design,
)
from .trials import Trials, draw_held, split_means

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from ...recording import Recording

DEFAULT_REGULARIZERS = 1.4 ** np.arange(45) * 1e-7  # the dPCA package's grid for regularizer="auto"


@dataclass
class DPCAResult:
    """Demixed principal components.

    Attributes
    ----------
    encoders, decoders : dict of str to ndarray (unit, component)
        Per marginalisation: P (the components' directions in unit space, orthonormal) and D (the
        decoder: component = D' x for centred x). Components beyond a marginalisation's rank (e.g. a
        third for a parameter of 3 values without time) explain nothing and have arbitrary directions.
    components : dict of str to ndarray (component, *conditions, time)
        The condition averages projected by each marginalisation's decoders.
    explained_variance : dict of str to ndarray (component,)
        ||D_k' X||^2 / ||X||^2 per component (the dPCA package's ``explained_variance_ratio_``).
    marginal_variance : dict of str to float
        ||X_phi||^2 / ||X||^2: how the condition averages' variance splits over the marginalisations.
    parameters : list of str
    levels : dict of str to ndarray
        Each parameter's values (the conditions' axes, in this order).
    counts : ndarray
        Trials per condition.
    regularizer : float
    cv_scores : ndarray or None
        With regularizer="auto": the held-out reconstruction error per candidate (mean over splits).
    regularizers : ndarray or None
    significance : dict of str to ndarray (component, time) of bool
        From :func:`dpca_significance`: where each component separates its marginalisation's classes on
        held-out trials better than every label shuffle.
    marginalizations : dict of str to list of tuple
        The parameter sets each marginalisation joins.
    periods : dict
        The recording's periods (marked on the figures over time).
    times : ndarray
    layer : str
    mean : ndarray (unit,)
        Subtracted before projecting (:meth:`transform`).
    """

    encoders: dict[str, np.ndarray]
    decoders: dict[str, np.ndarray]
    components: dict[str, np.ndarray]
    explained_variance: dict[str, np.ndarray]
    marginal_variance: dict[str, float]
    parameters: list[str]
    levels: dict[str, np.ndarray]
    counts: np.ndarray
    regularizer: float
    times: np.ndarray
    layer: str
    mean: np.ndarray
    cv_scores: np.ndarray | None = None
    regularizers: np.ndarray | None = None
    significance: dict[str, np.ndarray] = field(default_factory=dict)
    marginalizations: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    time_positions: np.ndarray | None = None
    periods: dict[str, tuple[float, float]] = field(default_factory=dict)

    def transform(self, states: np.ndarray, marginalization: str) -> np.ndarray:
        """States (..., unit) of the same layer on one marginalisation's components: (..., component)."""
        if marginalization not in self.decoders:
            raise UnknownNameError(
                f"marginalization: got {marginalization!r}. Available: {format_choices(self.decoders)}."
            )
        return (np.asarray(states, dtype=np.float64) - self.mean) @ self.decoders[marginalization]

    def summary(self) -> dict[str, Any]:
        """Key numbers: the variance of each marginalisation, and of its first component."""
        out: dict[str, Any] = {
            "layer": self.layer, "parameters": ", ".join(self.parameters), "conditions": int(self.counts.size),
            "trials": int(self.counts.sum()), "fewest trials per condition": int(self.counts.min()),
            "regularizer": self.regularizer,
        }  # fmt: skip
        for name, share in self.marginal_variance.items():
            out[f"variance: {name}"] = share
            out[f"component 1 explains ({name})"] = float(self.explained_variance[name][0])
        return out

    def draw(self, ax: Any, marginalization: str | None = None, component: int = 0) -> Any:
        """One component over time for every condition (colour: the first parameter's value)."""
        from ..plotting import OKABE_ITO

        name = marginalization or next(iter(self.components))
        trace = self.components[name][component]  # (*conditions, time)
        flat = trace.reshape(-1, trace.shape[-1])
        first = np.indices(self.counts.shape)[0].ravel()
        styles = ["-", "--", ":", "-."]
        rest = np.ravel_multi_index(np.indices(self.counts.shape)[1:], self.counts.shape[1:]) if self.counts.ndim > 1 \
            else np.zeros(self.counts.shape, dtype=int)  # fmt: skip
        lines = []
        for row, (f, r) in enumerate(zip(first, rest.ravel(), strict=True)):
            lines += ax.plot(self.times, flat[row], color=OKABE_ITO[f % len(OKABE_ITO)], ls=styles[r % 4], lw=1.2)
        mask = self.significance.get(name)
        if mask is not None and component < mask.shape[0]:
            low = ax.get_ylim()[0]
            ax.plot(self.times[mask[component]], np.full(int(mask[component].sum()), low), "k.", ms=3)
        share = self.explained_variance[name][component]
        ax.set_title(f"{name}: component {component + 1} ({100 * share:.1f}%)", fontsize=9)
        ax.set_xlabel("time")
        from ..plotting import mark_periods

        mark_periods(ax, self.periods)
        return lines

    def plot(self) -> Figure:
        """The first component of every marginalisation over time, and each component's explained variance."""
        from ..plotting import OKABE_ITO, pyplot

        names = list(self.components)
        fig, axes = pyplot().subplots(1, len(names) + 1, figsize=(3.6 * (len(names) + 1), 3.4),
                                      layout="constrained", squeeze=False)  # fmt: skip
        for ax, name in zip(axes[0], names, strict=False):
            self.draw(ax, name)
        bars = axes[0, -1]
        order = sorted(((v, n) for n in names for v in self.explained_variance[n]), reverse=True)[:15]
        bars.bar(np.arange(len(order)), [100 * v for v, _ in order],
                 color=[OKABE_ITO[names.index(n) % len(OKABE_ITO)] for _, n in order])  # fmt: skip
        bars.set_xlabel("component")
        bars.set_ylabel("explained variance (%)")
        return fig


def _check_components(n_components: Any, names: list[str], n_units: int) -> dict[str, int]:
    if isinstance(n_components, dict):
        unknown = set(n_components) - set(names)
        if unknown:
            raise UnknownNameError(
                f"n_components: {sorted(unknown)} are not marginalisations: {format_choices(names)}."
            )
        return {n: check_int("n_components", n_components.get(n, 3), maximum=n_units) for n in names}
    q = check_int("n_components", n_components, maximum=n_units)
    return dict.fromkeys(names, q)


def _parameters(recording: Recording, parameters: Any) -> dict[str, np.ndarray]:
    if isinstance(parameters, str):
        parameters = [parameters]
    if not isinstance(parameters, Sequence) or not parameters or not all(isinstance(p, str) for p in parameters):
        raise ArgumentTypeError(f"parameters: got {describe(parameters)}. Pass metadata column names.")
    if TIME in parameters or len(set(parameters)) < len(parameters):
        raise ArgumentError(f"parameters: got {list(parameters)}; time is always a parameter; name each column once.")
    for name in parameters:
        if name not in recording.columns:
            raise UnknownNameError(
                f"parameters: {name!r} is not a metadata column. Available: {format_choices(recording.columns)}."
            )
    return {name: np.asarray(recording.column(name)) for name in parameters}


def fit_dpca(
    recording: Recording,
    layer: str | None = None,
    *,
    parameters: str | Sequence[str],
    time: Any = None,
    n_components: int | dict[str, int] = 3,
    join: Any = "time",
    regularizer: float | str = 0.0,
    regularizers: Any = None,
    n_splits: int = 3,
    seed: int | None = 0,
) -> DPCAResult:
    """Demixed principal component analysis (Kobak et al. 2016).

    Trials are averaged per condition (every combination of the ``parameters``' values; each condition
    weighs the same, however many trials it has), and the condition averages are split into
    marginalisations (what depends on time only, on a parameter, on their interactions); each
    marginalisation gets the components that reconstruct it best from the whole population.

    Parameters
    ----------
    recording : Recording
        Trials as rows; the parameters as metadata columns. A dask-backed recording
        (``Recording.load(path, chunks=...)``) is fitted blockwise, never read whole.
    layer : str, optional
    parameters : str or list of str
        Task parameters (e.g. ``["stimulus", "decision"]``); time is always one more.
    time : selection, optional
    n_components : int or dict
        Components per marginalisation (a dict: name -> count, 3 for the others).
    join : None, "time" or dict
        "time" (default, as the paper's figures): each parameter set joined with its interaction with
        time ("stimulus" holds stimulus and stimulus x time); None: every set apart (the dPCA package's
        default); a dict: name -> list of marginalisation names to join.
    regularizer : float or "auto"
        Ridge penalty, as a fraction (squared, of ||X||^2) like the dPCA package's; "auto": the candidate
        in ``regularizers`` with the smallest held-out reconstruction error over ``n_splits`` splits
        (one random trial per condition held out; conditions need at least 2 trials).
    regularizers : array, optional
        Candidates for "auto" (default the package's 45 values from 1e-7 to 0.27).
    n_splits : int
    seed : int, optional
        Seeds the held-out trials.

    Returns
    -------
    DPCAResult

    Examples
    --------
    >>> import numpy as np
    >>> from rnnprobe import Recording
    >>> rng = np.random.default_rng(0)
    >>> stimulus = np.repeat([0, 1, 2], 20)
    >>> t = np.linspace(0, 1, 25)
    >>> w_time, w_stim = rng.normal(size=(2, 12))
    >>> states = t[None, :, None] * w_time + (stimulus - 1)[:, None, None] * t[None, :, None] * w_stim
    >>> rec = Recording({"h": states + 0.05 * rng.normal(size=(60, 25, 12))}, metadata={"stimulus": stimulus})
    >>> result = fit_dpca(rec, parameters="stimulus", n_components=1)
    >>> sorted(result.marginal_variance), round(sum(result.marginal_variance.values()), 6)
    (['stimulus', 'time'], 1.0)
    """
    check_recording(recording, "recording")
    design = trial_design(_parameters(recording, parameters))
    layer = recording.resolve_layer(layer)
    positions = recording.time_positions(layer, time)
    if len(positions) < 2:
        raise ShapeError(f"time: {len(positions)} time step selected; dPCA needs at least 2.")
    trials = Trials(recording, layer, positions)  # blockwise for a dask-backed recording
    (sums,) = trials.sums([design])
    groups = marginalization_names(design.parameters, join)
    components = _check_components(n_components, list(groups), sums.shape[2])
    axes = [*design.parameters, TIME]
    x = by_condition(sums / design.counts.reshape(-1, 1, 1), design)
    mean = x.reshape(x.shape[0], -1).mean(axis=1)
    x = x - mean.reshape(-1, *([1] * (x.ndim - 1)))
    marginals = marginalize(x, axes, groups)
    candidates, scores = None, None
    if isinstance(regularizer, str) and regularizer == "auto":
        candidates = DEFAULT_REGULARIZERS if regularizers is None else np.asarray(regularizers, dtype=float).ravel()
        if candidates.size == 0 or not np.all(np.isfinite(candidates)) or np.any(candidates < 0):
            raise ArgumentError(f"regularizers: got {describe(regularizers)}. Pass non-negative finite values.")
        n_splits = check_int("n_splits", n_splits, maximum=10_000)
        scores = cross_validate(sums, trials, design, axes, groups, components, candidates, n_splits, check_seed(seed))
        regularizer = float(candidates[int(np.argmin(scores))])
    else:
        regularizer = check_number("regularizer", regularizer, minimum=0)
    encoders, decoders = fit_all(x, marginals, regularizer, components)
    flat = x.reshape(x.shape[0], -1)
    total = float(np.vdot(flat, flat))
    if total == 0:
        raise ShapeError(f"recording: layer {layer!r} does not vary over conditions and time; nothing to demix.")
    projected = {n: np.einsum("uk,u...->k...", decoders[n], x) for n in groups}
    explained = {n: np.sum(projected[n].reshape(components[n], -1) ** 2, axis=1) / total for n in groups}
    shares = {n: float(np.vdot(marginals[n], marginals[n]) / total) for n in groups}
    times = np.asarray(recording.times[layer])[positions]
    return DPCAResult(encoders, decoders, projected, explained, shares, design.parameters,
                      dict(zip(design.parameters, design.levels, strict=True)), design.counts, regularizer, times,
                      layer, mean, scores, candidates, {}, groups, positions, recording.periods)  # fmt: skip


def _centred(x: np.ndarray, *, batch: int = 0) -> np.ndarray:
    """The states (..., unit, *conditions, time) less each unit's mean, the ``batch`` leading axes apart."""
    lead = x.shape[: batch + 1]
    return x - x.reshape(*lead, -1).mean(axis=-1).reshape(*lead, *([1] * (x.ndim - batch - 1)))


def cross_validate(sums: np.ndarray, trials: Trials, design: Design, axes: list[str],
                   groups: dict, components: dict[str, int], candidates: np.ndarray, n_splits: int,
                   seed: int | None) -> np.ndarray:  # fmt: skip
    """Mean over splits of the held-out reconstruction error summed over marginalisations, per candidate."""
    if design.counts.min() < 2:
        raise ShapeError(
            f"regularizer: 'auto' holds out one trial per condition, but a condition has {design.counts.min()} "
            f"trial; pass a fixed regularizer or conditions with 2 or more trials."
        )
    held = draw_held(design, n_splits, np.random.default_rng(seed))
    scores = np.zeros((n_splits, candidates.size))

    def score(split: int, held_trials: np.ndarray) -> None:
        train, validation = (_centred(x) for x in split_means(sums, held_trials, design))
        train_marginals, valid_marginals = marginalize(train, axes, groups), marginalize(validation, axes, groups)
        for k, (encoders, decoders) in enumerate(fit_path(train, train_marginals, candidates.tolist(), components)):
            scores[split, k] = sum(held_out_error(validation, valid_marginals, encoders, decoders).values())

    # the splits are independent: each of as many workers as the libraries have threads takes the next split
    # when it is free (their held-out trials read in groups, as before, one reader at a time); after an error
    # no worker takes another
    splits, lock, failed = enumerate(trials.held_out(held)), threading.Lock(), threading.Event()

    def work(_: int) -> None:
        while not failed.is_set():
            with lock:
                item = next(splits, None)
            if item is None:
                return
            try:
                score(*item)
            except BaseException:
                failed.set()
                raise

    workers = min(library_threads(), n_splits)
    with task_pool(workers) as pmap:
        list(pmap(work, range(workers)))
    return scores.mean(axis=0)

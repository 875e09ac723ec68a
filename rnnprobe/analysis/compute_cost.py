"""The cost of recurrence: accuracy over time, FLOPs per step, confidence-threshold stopping, solution times.

After Spoerer, Kietzmann, Mehrer, Charest & Kriegeskorte 2020 (PLoS Comput Biol 16:e1008215). A model
with a readout at every time step (outputs (stimulus, time, classes)) is stopped, per stimulus, at
the first step t at which its readout is confident:

- ``criterion="entropy"``: the normalised entropy H(p_t) / log K falls below the threshold;
- ``criterion="probability"``: the largest class probability max_k p_t(k) exceeds it.

A stimulus never confident runs to the last step. Sweeping the threshold over (0, 1] traces
accuracy against mean compute, the mean over stimuli of the FLOPs spent up to the stopping step.
FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode``: 2 per multiply-add of every
matrix product and convolution (bias additions, activation functions and normalisation are not
counted), per stimulus, at every step the model executes.

A stimulus's solution time (comparable with a reaction time) is the first step from which the
probability of the correct class stays above ``solution_threshold`` until the last step; a stimulus
never solved gets ``inf``.

:func:`compute_matched` compares models at equal compute on the same stimuli: each model's
accuracy with no more mean FLOPs than each other model needs for its best accuracy, with
bootstrap intervals over stimuli.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import check_int, check_number, check_numeric, check_option, check_probability, check_seed
from ..errors import (
    ArgumentError,
    ArgumentTypeError,
    NonFiniteError,
    ShapeError,
    UnknownNameError,
    describe,
    format_choices,
)
from ._draws import draw_counts, percentile_interval

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure
    from torch import nn

CRITERIA = ("entropy", "probability")


def step_flops(model: nn.Module, stimulus: Any, *, step_module: str | None = None) -> np.ndarray:
    """FLOPs per stimulus spent in each time step, counted by torch.

    Parameters
    ----------
    model : torch.nn.Module
        A model on the step protocol (``init_state``/``step``), e.g. any model of :mod:`rnnprobe.models`;
        or any module whose time steps are the calls of one submodule (``step_module``).
    stimulus : Tensor or ndarray
        One stimulus batch as the model takes it, e.g. ``(1, channels, size, size)`` images; the
        count is divided by the batch size (these models spend the same compute on every stimulus).
    step_module : str, optional
        For models without a step method: the recordable module (e.g. the readout) whose calls end
        the time steps; step t holds the FLOPs after call t - 1 up to call t, and FLOPs after the
        last call are added to the last step.

    Returns
    -------
    ndarray, (time,)
        FLOPs of step t (2 per multiply-add of matrix products and convolutions).

    Examples
    --------
    >>> import torch
    >>> from rnnprobe.models import BLT
    >>> model = BLT("B", image_size=8, maps=4, layers=1, steps=2)
    >>> step_flops(model, torch.rand(1, 1, 8, 8))  # conv 2*64*4*9 + readout 2*4*10 per step
    array([4688., 4688.])
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.as_tensor(stimulus)
    if x.dim() == 0 or x.shape[0] == 0:
        raise ShapeError(f"stimulus: got {describe(stimulus)}. Pass a batch of at least one stimulus.")
    totals: list[int] = []
    counter = FlopCounterMode(display=False)
    place = _placer(model)
    with _step_marks(model, step_module, lambda: totals.append(counter.get_total_flops())), counter, torch.no_grad():
        model(place(x))
    if not totals:
        raise ArgumentError(f"model: {type(model).__name__} ran no step on the stimulus; nothing to count.")
    totals[-1] = counter.get_total_flops()
    return np.diff(np.asarray([0, *totals], dtype=float)) / x.shape[0]


def _placer(model: nn.Module) -> Callable[[Any], Any]:
    """Stimuli to the model's device, floating ones in its dtype (the meta device refused)."""
    from ..models.placement import model_placement, to_model

    device, dtype = model_placement(model)
    return lambda tensor: to_model(tensor, device, dtype)


def _step_marks(model: nn.Module, step_module: str | None, mark: Callable[[], None]) -> Any:
    """A context calling ``mark()`` at the end of every time step."""
    from ..models.base import watch_steps

    if step_module is None:
        return watch_steps(model, after=lambda t: mark())
    from ..recording.targets import named_modules

    modules = named_modules(model)
    if step_module not in modules:
        raise UnknownNameError(
            f"step_module: {step_module!r} is not a module of {type(model).__name__} ({format_choices(modules)})."
        )
    return _Hooked(modules[step_module], mark)


class _Hooked:
    """A forward hook for the duration of a with-block."""

    def __init__(self, module: nn.Module, mark: Callable[[], None]) -> None:
        self.module, self.mark, self.handle = module, mark, None

    def __enter__(self) -> None:
        self.handle = self.module.register_forward_hook(lambda *_: self.mark())

    def __exit__(self, *exc: Any) -> None:
        self.handle.remove()


def readout_over_time(
    model: nn.Module, stimuli: Any, *, interventions: Any = None, batch_size: int = 256
) -> np.ndarray:
    """The model's outputs at every step, (stimulus, time, classes), under optional interventions.

    Examples
    --------
    >>> import torch
    >>> from rnnprobe.models import BLT
    >>> readout_over_time(BLT("BL", image_size=8, maps=4, steps=3), torch.rand(5, 1, 8, 8)).shape
    (5, 3, 10)
    """
    import torch

    from ..recording import intervene

    x = torch.as_tensor(stimuli)
    batch_size = check_int("batch_size", batch_size)
    place = _placer(model)
    outputs = []
    was_training = model.training
    model.eval()
    try:
        with intervene(model, [] if interventions is None else interventions), torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                outputs.append(model(place(x[start : start + batch_size])).double().cpu().numpy())
    finally:
        model.train(was_training)
    out = np.concatenate(outputs)
    if out.ndim != 3:
        raise ShapeError(f"model: gave outputs of shape {out.shape}; a readout over time is (stimulus, time, classes).")
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def confidence(probabilities: np.ndarray, criterion: str) -> np.ndarray:
    """Per stimulus and step: normalised entropy (in [0, 1]) or the largest probability."""
    if criterion == "probability":
        return probabilities.max(axis=-1)
    p = np.clip(probabilities, 1e-300, 1)
    return -(probabilities * np.log(p)).sum(axis=-1) / np.log(probabilities.shape[-1])


def stopping_steps(probabilities: np.ndarray, thresholds: np.ndarray, criterion: str) -> np.ndarray:
    """(threshold, stimulus): the first step at which the readout is confident (else the last)."""
    c = confidence(probabilities, criterion)  # (stimulus, time)
    crossed = c[None] < thresholds[:, None, None] if criterion == "entropy" else c[None] > thresholds[:, None, None]
    crossed[..., -1] = True
    return crossed.argmax(axis=-1)


def solution_times(probabilities: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    """First step from which the correct class's probability stays above ``threshold``; inf if never."""
    p_correct = np.take_along_axis(probabilities, labels[:, None, None], axis=-1)[..., 0]
    above = p_correct > threshold
    stays = np.flip(np.logical_and.accumulate(np.flip(above, axis=1), axis=1), axis=1)
    first = stays.argmax(axis=1).astype(float)
    first[~stays[:, -1]] = np.inf
    return first


@dataclass
class SpeedAccuracyResult:
    """Accuracy against mean compute for confidence-threshold stopping (see :func:`speed_accuracy`)."""

    name: str
    criterion: str
    thresholds: np.ndarray  # (threshold,)
    step_flops: np.ndarray  # (time,)
    correct: np.ndarray  # (stimulus, time): the argmax readout is the label
    stop_steps: np.ndarray  # (threshold, stimulus)
    solution_times: np.ndarray  # (stimulus,), inf: never solved
    solution_threshold: float
    labels: np.ndarray = field(repr=False)

    @property
    def cumulative_flops(self) -> np.ndarray:
        """FLOPs spent up to and including each step, (time,)."""
        return np.cumsum(self.step_flops)

    @property
    def accuracy_by_step(self) -> np.ndarray:
        """Accuracy when every stimulus stops at step t, (time,)."""
        return self.correct.mean(axis=0)

    def _per_stimulus(self) -> tuple[np.ndarray, np.ndarray]:
        """(correct, FLOPs) of every stimulus at its stopping step, each (threshold, stimulus)."""
        rows = np.arange(self.correct.shape[0])[None]
        return self.correct[rows, self.stop_steps].astype(float), self.cumulative_flops[self.stop_steps]

    @property
    def accuracy(self) -> np.ndarray:
        """Accuracy at each threshold, (threshold,)."""
        return self._per_stimulus()[0].mean(axis=1)

    @property
    def mean_flops(self) -> np.ndarray:
        """Mean FLOPs per stimulus at each threshold, (threshold,)."""
        return self._per_stimulus()[1].mean(axis=1)

    def best(self) -> tuple[float, float]:
        """(accuracy, mean FLOPs) of the operating point with the highest accuracy (the cheapest of ties)."""
        return _best(self.accuracy[None], self.mean_flops[None])[0]

    def bootstrap(self, *, n_bootstrap: int = 1000, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
        """Accuracy and mean FLOPs per threshold over bootstrap samples of the stimuli, each (sample, threshold)."""
        weights = _stimulus_weights(self.correct.shape[0], n_bootstrap, seed)
        correct, flops = self._per_stimulus()
        return weights @ correct.T, weights @ flops.T

    def solution_time_correlation(
        self, covariate: Any, *, n_bootstrap: int = 1000, seed: int | None = 0, level: float = 0.95
    ) -> dict[str, float]:
        """Spearman correlation of solution times with a per-stimulus covariate (e.g. occlusion), with a
        percentile bootstrap interval over stimuli. Unsolved stimuli rank last (tied).

        Where the solution times or the covariate are the same for every stimulus, rho is undefined (NaN) and
        so is the interval. A bootstrap sample in which either is the same for every stimulus drawn has no rho
        either: the interval is taken over the other samples (as RSA's bootstraps take the valid samples),
        and ``undefined_draws`` says how many were left out (many: rho rests on a few stimuli).
        """
        values = _covariate(covariate, self.correct.shape[0])
        times = np.where(np.isfinite(self.solution_times), self.solution_times, self.correct.shape[1])
        rng = np.random.default_rng(check_seed(seed))
        n = times.size
        samples = (rng.integers(0, n, n) for _ in range(check_int("n_bootstrap", n_bootstrap)))
        tail = (1 - check_probability("level", level)) / 2
        rho = _spearman(times, values)
        draws = np.array([_spearman(times[i], values[i]) for i in samples])
        defined = draws[~np.isnan(draws)]
        low, high = [np.nan] * 2
        if defined.size and not np.isnan(rho):
            low, high = np.percentile(defined, [100 * tail, 100 * (1 - tail)])
        unsolved = int(np.isinf(self.solution_times).sum())
        return {"rho": rho, "ci_low": float(low), "ci_high": float(high), "unsolved": unsolved,
                "undefined_draws": int(draws.size - defined.size)}  # fmt: skip

    def summary(self) -> dict[str, Any]:
        """Best accuracy and its cost, accuracy and cost at the last step, median solution time."""
        accuracy, flops = self.best()
        solved = self.solution_times[np.isfinite(self.solution_times)]
        return {
            "model": self.name,
            "criterion": self.criterion,
            "best_accuracy": accuracy,
            "mean_flops_at_best": flops,
            "accuracy_last_step": float(self.accuracy_by_step[-1]),
            "flops_last_step": float(self.cumulative_flops[-1]),
            "median_solution_time": float(np.median(solved)) if solved.size else float("nan"),
            "unsolved": int(self.solution_times.size - solved.size),
        }

    def draw(self, ax: Any, *, color: Any = None) -> Any:
        """Accuracy against mean FLOPs over the threshold sweep (line) and per fixed step (dots)."""
        order = np.argsort(self.mean_flops, kind="stable")
        (line,) = ax.plot(self.mean_flops[order], self.accuracy[order], "-", color=color, label=self.name)
        ax.plot(self.cumulative_flops, self.accuracy_by_step, "o", ms=3, color=line.get_color())
        ax.set_xlabel("mean FLOPs per stimulus")
        ax.set_ylabel("accuracy")
        ax.legend(frameon=False, fontsize="small")
        return ax

    def plot(self) -> Figure:
        """The speed-accuracy curve, and the distribution of solution times."""
        from .plotting import pyplot

        fig, (left, right) = pyplot().subplots(1, 2, figsize=(8, 3.4), layout="constrained")
        self.draw(left)
        steps = np.arange(self.correct.shape[1] + 1)
        times = np.where(np.isfinite(self.solution_times), self.solution_times, self.correct.shape[1])
        right.hist(times, bins=steps - 0.5, rwidth=0.8)
        right.set_xticks(steps, [*map(str, steps[:-1]), "never"])
        right.set_xlabel(f"solution time (step; p(correct) > {self.solution_threshold:g} from then on)")
        right.set_ylabel("stimuli")
        return fig


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of a and b; NaN where either is the same everywhere (no ranks to correlate), without
    scipy's warning.
    """
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic) if np.ptp(a) > 0 and np.ptp(b) > 0 else np.nan


def _covariate(values: Any, n: int) -> np.ndarray:
    array = check_numeric(values, name="covariate").astype(float)
    if array.shape != (n,):
        raise ShapeError(f"covariate: got {describe(values)}. Pass one number per stimulus ({n}).")
    if not np.all(np.isfinite(array)):
        raise NonFiniteError("covariate: holds NaN or inf; a correlation with it is undefined.")
    return array


def _stimulus_weights(n: int, n_bootstrap: int, seed: int | None) -> np.ndarray:
    """(sample, stimulus) resampling weights that sum to 1 per sample."""
    rng = np.random.default_rng(check_seed(seed))
    draws = rng.integers(0, n, size=(check_int("n_bootstrap", n_bootstrap), n))
    return draw_counts(draws, n) / n


def _best(accuracy: np.ndarray, flops: np.ndarray) -> list[tuple[float, float]]:
    """Per row: (highest accuracy, smallest mean FLOPs reaching it)."""
    out = []
    for acc, cost in zip(accuracy, flops, strict=True):
        top = acc >= acc.max() - 1e-12
        out.append((float(acc.max()), float(cost[top].min())))
    return out


def _default_thresholds(criterion: str) -> np.ndarray:
    if criterion == "entropy":
        return np.geomspace(1e-4, 1.0, 41)
    return np.concatenate([np.linspace(0.1, 0.9, 17), 1 - np.geomspace(0.09, 1e-5, 24)])


def _check_outputs(logits: Any, labels: Any, flops: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    logits = check_numeric(logits, name="logits").astype(float)
    if logits.ndim != 3 or logits.shape[2] < 2:
        raise ShapeError(f"logits: got {describe(logits)}. Pass readouts of shape (stimulus, time, classes).")
    if not np.all(np.isfinite(logits)):
        raise NonFiniteError("logits: hold NaN or inf; confidence and accuracy would be undefined. Check the model.")
    labels = np.asarray(labels)
    n, k = logits.shape[0], logits.shape[2]
    if labels.shape != (n,) or labels.dtype.kind not in "iu" or labels.min() < 0 or labels.max() >= k:
        raise ShapeError(f"labels: got {describe(labels)}. Pass one class index in [0, {k}) per stimulus ({n}).")
    flops = check_numeric(flops, name="step_flops").astype(float)
    if flops.shape != (logits.shape[1],) or not np.all(np.isfinite(flops)) or np.any(flops < 0):
        raise ShapeError(
            f"step_flops: got {describe(flops)}. Pass {logits.shape[1]} finite FLOP counts >= 0, one per step."
        )
    return logits, labels.astype(np.int64), flops


def _check_thresholds(thresholds: Any, criterion: str) -> np.ndarray:
    if thresholds is None:
        return _default_thresholds(criterion)
    try:
        values = np.atleast_1d(np.asarray(thresholds, dtype=float))
    except (TypeError, ValueError):
        values = np.array([])
    if values.ndim != 1 or not values.size or not np.all((values > 0) & (values <= 1)):
        raise ArgumentError(f"thresholds: got {describe(thresholds)}. Pass thresholds in (0, 1].")
    return values


def speed_accuracy_curve(
    logits: Any,
    labels: Any,
    step_flops: Any,
    *,
    thresholds: Any = None,
    criterion: str = "entropy",
    solution_threshold: float = 0.5,
    name: str = "model",
) -> SpeedAccuracyResult:
    """Confidence-threshold stopping on given readouts: accuracy against mean FLOPs, solution times.

    Parameters
    ----------
    logits : array, (stimulus, time, classes)
        Readout at every step (probabilities are their softmax).
    labels : array of int, (stimulus,)
    step_flops : array, (time,)
        FLOPs per stimulus of each step (:func:`step_flops`).
    thresholds : array in (0, 1], optional
        Stopping thresholds to sweep (default: 41 geometrically spaced for entropy, 41 for probability).
    criterion : {"entropy", "probability"}
    solution_threshold : float in (0, 1]
    name : str

    Examples
    --------
    >>> import numpy as np
    >>> logits = np.zeros((2, 3, 2)); logits[0, 1:, 0] = 5; logits[1, 2, 1] = 5
    >>> result = speed_accuracy_curve(logits, [0, 1], [10.0, 10.0, 10.0], thresholds=[0.5])
    >>> result.stop_steps.tolist(), result.accuracy.tolist(), result.mean_flops.tolist()
    ([[1, 2]], [1.0], [25.0])
    """
    check_option("criterion", criterion, CRITERIA)
    logits, labels, flops = _check_outputs(logits, labels, step_flops)
    thresholds = _check_thresholds(thresholds, criterion)
    level = check_number("solution_threshold", solution_threshold, minimum=0, maximum=1)
    if level <= 0:
        raise ArgumentError(f"solution_threshold: got {describe(solution_threshold)}. Pass a number in (0, 1].")
    probabilities = _softmax(logits)
    return SpeedAccuracyResult(
        name=str(name), criterion=criterion, thresholds=thresholds, step_flops=flops,
        correct=logits.argmax(axis=-1) == labels[:, None],
        stop_steps=stopping_steps(probabilities, thresholds, criterion),
        solution_times=solution_times(probabilities, labels, level), solution_threshold=level, labels=labels,
    )  # fmt: skip


def speed_accuracy(
    model: nn.Module,
    stimuli: Any,
    labels: Any,
    *,
    thresholds: Any = None,
    criterion: str = "entropy",
    solution_threshold: float = 0.5,
    interventions: Any = None,
    name: str | None = None,
    step_module: str | None = None,
    batch_size: int = 256,
) -> SpeedAccuracyResult:
    """Run a step-protocol classifier on ``stimuli`` and trace accuracy against mean compute.

    The readouts come from :func:`readout_over_time` (under ``interventions`` if given), the
    FLOPs per step from :func:`step_flops` (``step_module`` for models without a step method);
    see :func:`speed_accuracy_curve` for the rest.

    Examples
    --------
    >>> import torch
    >>> from rnnprobe.models import BLT
    >>> model = BLT("BL", image_size=8, maps=4, steps=3)
    >>> result = speed_accuracy(model, torch.rand(20, 1, 8, 8), torch.randint(0, 10, (20,)))
    >>> result.correct.shape, result.cumulative_flops.shape
    ((20, 3), (3,))
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ArgumentTypeError(f"model: got {describe(model)}. Pass a torch.nn.Module on the step protocol.")
    x = torch.as_tensor(stimuli)
    logits = readout_over_time(model, x, interventions=interventions, batch_size=batch_size)
    from ..recording import intervene

    with intervene(model, [] if interventions is None else interventions):
        flops = step_flops(model, x[:1], step_module=step_module)
    labels = labels.numpy() if isinstance(labels, torch.Tensor) else labels
    return speed_accuracy_curve(logits, labels, flops, thresholds=thresholds, criterion=criterion,
                                solution_threshold=solution_threshold, name=name or type(model).__name__)  # fmt: skip


@dataclass
class ComputeMatchedResult:
    """Each model's accuracy at the compute another model needs for its best accuracy (see :func:`compute_matched`)."""

    names: list[str]
    reference_flops: np.ndarray  # (model,): mean FLOPs of each model's best operating point
    best_accuracy: np.ndarray  # (model,)
    accuracy: np.ndarray  # (model i, reference j): i's best accuracy with mean FLOPs <= reference_flops[j]
    difference: np.ndarray  # accuracy[i, j] - best_accuracy[j]
    ci_low: np.ndarray  # of the difference (NaN where it is NaN)
    ci_high: np.ndarray
    level: float
    undefined_draws: np.ndarray | None = None  # (model i, reference j): bootstrap samples in which i cannot run
    # at j's cost in that sample, left out of the interval (many: the difference rests on a few stimuli)

    def table(self) -> Any:
        """A pandas DataFrame: one row per (model, reference) pair."""
        import pandas as pd

        rows = []
        for i, a in enumerate(self.names):
            for j, b in enumerate(self.names):
                rows.append({"model": a, "at_compute_of": b, "reference_flops": self.reference_flops[j],
                             "accuracy": self.accuracy[i, j], "reference_accuracy": self.best_accuracy[j],
                             "difference": self.difference[i, j], "ci_low": self.ci_low[i, j],
                             "ci_high": self.ci_high[i, j], "undefined_draws": self._undefined(i, j)})  # fmt: skip
        return pd.DataFrame(rows)

    def summary(self) -> dict[str, Any]:
        """Per model: best accuracy and its cost; per pair: the difference at equal compute and its interval."""
        out: dict[str, Any] = {"level": self.level}
        for i, a in enumerate(self.names):
            out[f"{a}_best_accuracy"] = float(self.best_accuracy[i])
            out[f"{a}_reference_flops"] = float(self.reference_flops[i])
            for j, b in enumerate(self.names):
                if i != j:
                    out[f"{a}_minus_{b}_at_{b}_compute"] = float(self.difference[i, j])
                    out[f"{a}_minus_{b}_ci"] = [float(self.ci_low[i, j]), float(self.ci_high[i, j])]
                    out[f"{a}_minus_{b}_undefined_draws"] = self._undefined(i, j)
        return out

    def _undefined(self, i: int, j: int) -> int:
        return 0 if self.undefined_draws is None else int(self.undefined_draws[i, j])

    def draw(self, ax: Any) -> Any:
        """The difference table as a heat map (rows: model; columns: at the compute of)."""
        span = np.nanmax(np.abs(self.difference)) or 1.0
        image = ax.imshow(self.difference, cmap="RdBu", vmin=-span, vmax=span)
        ax.set_xticks(range(len(self.names)), self.names, rotation=45, ha="right")
        ax.set_yticks(range(len(self.names)), self.names)
        for (i, j), value in np.ndenumerate(self.difference):
            text = "n/a" if np.isnan(value) else f"{value:+.3f}\n[{self.ci_low[i, j]:+.3f}, {self.ci_high[i, j]:+.3f}]"
            dark = not np.isnan(value) and abs(value) > 0.6 * span
            ax.text(j, i, text, ha="center", va="center", fontsize=6, color="white" if dark else "black")
        ax.set_xlabel("at the mean compute of (its best accuracy)")
        ax.set_ylabel("model")
        ax.figure.colorbar(image, ax=ax, label="accuracy difference")
        return ax

    def plot(self) -> Figure:
        """The difference table."""
        from .plotting import pyplot

        n = len(self.names)
        fig, ax = pyplot().subplots(figsize=(1.6 * n + 2, 1.3 * n + 1.5), layout="constrained")
        self.draw(ax)
        return fig


def _accuracy_at(accuracy: np.ndarray, flops: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """Best accuracy with mean FLOPs <= budget; accuracy, flops (..., threshold), budget (...); NaN if none."""
    allowed = flops <= budget[..., None] * (1 + 1e-12)
    masked = np.where(allowed, accuracy, -np.inf)
    best = masked.max(axis=-1)
    return np.where(np.isfinite(best), best, np.nan)


def compute_matched(
    results: Sequence[SpeedAccuracyResult] | Mapping[str, SpeedAccuracyResult],
    *,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    level: float = 0.95,
) -> ComputeMatchedResult:
    """Compare models at equal mean compute, on the same stimuli, with bootstrap intervals.

    For each reference model j, its cost is the mean FLOPs at which it reaches its best accuracy;
    each model i is scored by its best accuracy among operating points that need no more mean FLOPs
    than that (NaN where it cannot run that cheaply). The difference to j's best accuracy gets a
    percentile interval from resampling the stimuli, the whole procedure (operating points and
    costs) repeated on each resample, with the same resample for every model (the comparison is
    paired). A resample in which i cannot run at j's cost (in that resample) has no difference: the
    interval is taken over the others and their count kept (``undefined_draws``); where the difference
    itself is NaN, so is its interval. Operating points are chosen on the stimuli they are scored on,
    as in Spoerer et al. (2020); use stimuli held out from the models' training.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros(4, int)
    >>> slow = np.zeros((4, 2, 2)); slow[:, 0, 1] = 0.5; slow[:, 1, 0] = 3.0  # right only at step 1
    >>> fast = np.zeros((4, 2, 2)); fast[:, :, 0] = 3.0   # right from step 0
    >>> a = speed_accuracy_curve(slow, labels, [1.0, 1.0], name="slow")
    >>> b = speed_accuracy_curve(fast, labels, [1.0, 1.0], name="fast")
    >>> compute_matched([a, b], n_bootstrap=50).accuracy.tolist()
    [[1.0, 0.0], [1.0, 1.0]]
    """
    items = list(results.values()) if isinstance(results, Mapping) else list(results)
    if len(items) < 2 or not all(isinstance(r, SpeedAccuracyResult) for r in items):
        raise ArgumentTypeError(f"results: got {describe(results)}. Pass two or more SpeedAccuracyResults.")
    names = list(results) if isinstance(results, Mapping) else [r.name for r in items]
    if any(not np.array_equal(r.labels, items[0].labels) for r in items):
        raise ArgumentError(
            "results: were computed on different stimuli (their labels differ). Run every model on the same stimuli."
        )
    accuracy = np.stack([r.accuracy for r in items])
    flops = np.stack([r.mean_flops for r in items])
    best = _best(accuracy, flops)
    reference = np.array([cost for _, cost in best])
    best_accuracy = np.array([acc for acc, _ in best])
    matched = _accuracy_at(accuracy[:, None, :], flops[:, None, :], np.broadcast_to(reference, (len(items),) * 2))
    draws = [r.bootstrap(n_bootstrap=n_bootstrap, seed=seed) for r in items]  # same seed: same resamples
    boot_acc = np.stack([d[0] for d in draws], axis=1)  # (sample, model, threshold)
    boot_flops = np.stack([d[1] for d in draws], axis=1)
    boot = np.array([_best(boot_acc[s], boot_flops[s]) for s in range(boot_acc.shape[0])])  # (sample, model, 2)
    budgets = np.broadcast_to(boot[:, None, :, 1], (boot.shape[0], len(items), len(items)))
    boot_matched = _accuracy_at(boot_acc[:, :, None, :], boot_flops[:, :, None, :], budgets)
    boot_best = boot[:, :, 0]
    diffs = boot_matched - boot_best[:, None, :]
    difference = matched - best_accuracy[None, :]
    low, high = percentile_interval(diffs, difference, check_probability("level", level))
    undefined = np.isnan(diffs).sum(axis=0)
    return ComputeMatchedResult(names, reference, best_accuracy, matched, difference, low, high, level, undefined)

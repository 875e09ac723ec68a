"""What an intervention does: behaviour, representational geometry and decodability over time, with statistics.

:func:`intervention_effect` runs a model intact, changed (:mod:`rnnprobe.recording.interventions`)
and under control changes (the same change on random units or weights,
:func:`rnnprobe.recording.random_like`), all on the same stimuli, and reports at every time step:

- the change of a per-stimulus score (accuracy of the readout, mean |output|, or your own),
  mean(changed - intact), with a percentile bootstrap interval over stimuli (paired);
- its empirical two-sided p-value against the controls' changes,
  p = min(1, 2 min(#{c <= e} + 1, #{c >= e} + 1) / (n_controls + 1));
- for each recorded layer, the correlation of the changed model's RDM with the intact model's
  (RDMs: correlation distance between condition means) at the same step, with a bootstrap interval
  over stimuli (resampled within conditions), and the controls' correlations;
- optionally the cross-validated decoding accuracy of the labels from each layer, intact and changed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import check_grouping, check_int, check_probability, check_seed
from ..errors import ArgumentError, NonFiniteError, ShapeError, UnknownNameError, describe
from ._constant import centred as centred_values
from ._constant import rounding_only
from ._draws import draw_counts, percentile_interval
from ._scores import permutation_p_values

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure
    from torch import nn

    from ..recording import Recording

SCORES = ("accuracy", "mean_abs_output")


def accuracy_score(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(stimulus, time): 1 where the readout's largest output is the label."""
    return (outputs.argmax(axis=-1) == labels[:, None]).astype(float)


def mean_abs_output(outputs: np.ndarray, labels: Any = None) -> np.ndarray:
    """(stimulus, time): the mean absolute output (e.g. the energy-efficient RNN's preactivation)."""
    return np.abs(outputs).reshape(outputs.shape[0], outputs.shape[1], -1).mean(axis=-1)


def _run(model: nn.Module, stimuli: Any, changes: Any, layers: list[str], batch_size: int) -> tuple[np.ndarray, Any]:
    """(outputs (stimulus, time, ...), the recording of ``layers`` or None) in one pass under ``changes``."""
    import torch

    from ..recording import record

    outputs: list[np.ndarray] = []

    def forward(m: nn.Module, x: torch.Tensor) -> None:
        outputs.append(m(x).detach().double().cpu().numpy())

    recording = record(model, stimuli, layers=layers or None, batch_size=batch_size, forward=forward,
                       interventions=changes, progress=False)  # fmt: skip
    out = np.concatenate(outputs)
    if out.ndim < 3:
        raise ShapeError(f"model: gave outputs of shape {out.shape}; scores over time need (stimulus, time, ...).")
    if not np.all(np.isfinite(out)):
        raise NonFiniteError("model: its outputs hold NaN or inf under this change; no score or p-value is computed.")
    return out, (recording if layers else None)


def condition_rdms(states: np.ndarray, groups: list[np.ndarray], weights: np.ndarray | None = None) -> np.ndarray:
    """Correlation-distance RDMs of condition means; states (stimulus, time, units); with ``weights``
    (sample, stimulus) resampling weights within conditions, one RDM per sample: (sample, time, c, c).

    Each RDM comes from the Gram matrix of its condition means, centred over units: the means' products
    (:func:`_gram_of_means`, in blocks of samples), or, for many samples of few stimuli, s_a' K[a, b] s_b from
    each step's Gram matrix K of the stimuli centred over units (:func:`_gram_of_kernels`), by the fewer
    multiplications (n / samples + n / (conditions x units) < 1). A bootstrap's means were whole
    (sample, time, condition, units) arrays: 1000 samples x 4 steps x 10 conditions x 4096 units, 1.3 GB each.
    """
    if weights is None:
        weights = np.ones((1, states.shape[0]))
    (n, _, n_units), n_samples = states.shape, len(weights)
    shares = [weights[:, g] / weights[:, g].sum(1)[:, None] for g in groups]  # (sample, members of the condition)
    by_kernels = n / n_samples + n / (len(groups) * n_units) < 1
    gram, mean = (_gram_of_kernels if by_kernels else _gram_of_means)(states, groups, shares)
    squares = np.diagonal(gram, axis1=-2, axis2=-1)  # (sample, time, condition): n_units x each mean's variance
    if np.any(rounding_only(squares / n_units, mean, n_units)) or not np.all(squares > 0):
        raise ArgumentError(
            "layers: a condition mean is constant over units, so its correlation distance is undefined."
        )
    norms = np.sqrt(squares)
    return 1 - gram / norms[..., :, None] / norms[..., None, :]


MEANS_BYTES = 2**25  # condition means of a block of samples (32 MiB)


def _gram_of_means(states: np.ndarray, groups: list[np.ndarray], shares: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """((sample, time, c, c) products of the condition means of ``states`` (stimulus, time, units) centred over
    units, (sample, time, c) the means' means over units), the samples' means in blocks of ``MEANS_BYTES``, each
    centred once averaged: one pass over each condition's states (centring the states first, two passes more,
    took the plain RDMs of 1000 x 4 x 4096 from 10-15 to 30-31 ms). Far from 0 the averages keep the rounding of
    the states' size (3e-13 of RDMs at 1e3), as :func:`_gram_of_kernels`, which centres the stimuli first, does
    not (4e-16).
    """
    n_samples, (_, n_times, n_units) = len(shares[0]), states.shape
    block = max(1, MEANS_BYTES // (8 * n_times * len(groups) * n_units))
    kept = [np.take(states, g, axis=0) for g in groups] if n_samples > block else None  # (copied once, not a block)
    gram, mean = np.empty((n_samples, n_times, len(groups), len(groups))), np.empty((n_samples, n_times, len(groups)))
    for start in range(0, n_samples, block):
        part = slice(start, start + block)
        means = np.stack([np.tensordot(share[part], states[g] if kept is None else kept[i], axes=(1, 0))
                          for i, (share, g) in enumerate(zip(shares, groups, strict=True))], axis=2)  # fmt: skip
        mean[part] = means.mean(axis=-1)
        means -= mean[part][..., None]
        gram[part] = means @ np.swapaxes(means, -1, -2)
    return gram, mean


def _gram_of_kernels(states: np.ndarray, groups: list[np.ndarray], shares: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """:func:`_gram_of_means` as s_a' K[a, b] s_b, K each step's Gram matrix of the centred stimuli: for many
    samples of few stimuli (1000 samples of 120 stimuli x 4 steps x 1024 units: 4.2 s as whole means, 32-39 ms).
    """
    n_samples, n_times = len(shares[0]), states.shape[1]
    gram, mean = np.empty((n_samples, n_times, len(groups), len(groups))), np.empty((n_samples, n_times, len(groups)))
    for t in range(n_times):
        unit_means = states[:, t].mean(axis=-1)
        x = states[:, t] - unit_means[:, None]
        kernel = x @ x.T
        for i, (share, g) in enumerate(zip(shares, groups, strict=True)):
            mean[:, t, i] = share @ unit_means[g]
        for a, b in itertools.combinations_with_replacement(range(len(groups)), 2):
            block = kernel[np.ix_(groups[a], groups[b])]
            gram[:, t, a, b] = gram[:, t, b, a] = ((shares[a] @ block) * shares[b]).sum(-1)
    return gram, mean


def rdm_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of the upper triangles of RDMs (..., c, c), per leading index."""
    i, j = np.triu_indices(a.shape[-1], 1)
    x, y = centred_values(a[..., i, j], -1), centred_values(b[..., i, j], -1)  # (NaN for a constant RDM)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * y).sum(-1) / np.sqrt((x * x).sum(-1) * (y * y).sum(-1))


def within_condition_weights(groups: list[np.ndarray], n: int, n_bootstrap: int, seed: int | None) -> np.ndarray:
    """(sample, stimulus) counts of a bootstrap that resamples stimuli within each condition."""
    rng = np.random.default_rng(check_seed(seed))
    draws = [g[rng.integers(0, g.size, size=(n_bootstrap, g.size))] for g in groups]  # the same draws, in order
    return draw_counts(np.concatenate(draws, axis=1) if draws else np.zeros((n_bootstrap, 0), dtype=int), n)


@dataclass
class InterventionEffect:
    """The effect of a change on a model over time (see :func:`intervention_effect`)."""

    changes: list[dict[str, Any]]
    score_name: str
    intact: np.ndarray  # (stimulus, time) per-stimulus scores
    changed: np.ndarray  # (stimulus, time)
    effect: np.ndarray  # (time,) mean(changed - intact)
    ci_low: np.ndarray
    ci_high: np.ndarray
    control_effects: np.ndarray  # (control, time)
    p_values: np.ndarray | None  # (time,), None without controls
    rdm_similarity: dict[str, np.ndarray] = field(default_factory=dict)  # layer -> (time,)
    rdm_ci: dict[str, np.ndarray] = field(default_factory=dict)  # layer -> (2, time); NaN where r is NaN
    control_rdm_similarity: dict[str, np.ndarray] = field(default_factory=dict)  # layer -> (control, time)
    rdm_p_values: dict[str, np.ndarray] = field(default_factory=dict)
    decoding: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # layer -> {"intact", "changed"}
    level: float = 0.95

    def table(self) -> dict[str, list[Any]]:
        """One row per time step: mean scores, the change and its interval, the controls, the RDM correlations."""
        out: dict[str, list[Any]] = {"step": list(range(self.intact.shape[1]))}
        columns = {"intact": self.intact.mean(0), "changed": self.changed.mean(0), "effect": self.effect,
                   "ci_low": self.ci_low, "ci_high": self.ci_high}  # fmt: skip
        if self.control_effects.size:
            columns.update(control_effect_mean=self.control_effects.mean(0), p_values=self.p_values)
        for layer, r in self.rdm_similarity.items():
            columns[f"rdm_r_{layer}"] = r
            if layer in self.control_rdm_similarity:
                columns[f"control_rdm_r_{layer}"] = self.control_rdm_similarity[layer].mean(0)
        for layer, scores in self.decoding.items():
            columns.update({f"decoding_{layer}_{key}": values for key, values in scores.items()})
        return {**out, **{key: np.asarray(values, dtype=float).tolist() for key, values in columns.items()}}

    def summary(self) -> dict[str, Any]:
        """The score, the number of changes and controls, and every column of :meth:`table` as a list over steps."""
        steps = {key: values for key, values in self.table().items() if key != "step"}
        n_controls = int(self.control_effects.shape[0])
        return {"score": self.score_name, "changes": len(self.changes), "n_controls": n_controls, **steps}

    def draw(self, ax: Any) -> Any:
        """The score over time: intact, changed (with the interval of the change) and controls' band."""
        steps = np.arange(self.intact.shape[1])
        base = self.intact.mean(0)
        ax.plot(steps, base, "-o", color="black", ms=3, label="intact")
        ax.plot(steps, base + self.effect, "-o", color="#D55E00", ms=3, label="changed")
        ax.fill_between(steps, base + self.ci_low, base + self.ci_high, color="#D55E00", alpha=0.25, lw=0)
        if self.control_effects.size:
            low, high = np.percentile(self.control_effects, [2.5, 97.5], axis=0)
            ax.fill_between(steps, base + low, base + high, color="#0072B2", alpha=0.2, lw=0, label="random controls")
        ax.set_xlabel("time step")
        ax.set_ylabel(self.score_name)
        ax.legend(frameon=False, fontsize="small")
        ax.xaxis.get_major_locator().set_params(integer=True)
        return ax

    def plot(self) -> Figure:
        """The score over time, and each layer's RDM correlation with the intact model over time."""
        from .plotting import pyplot

        n = 1 + bool(self.rdm_similarity) + bool(self.decoding)
        fig, axes = pyplot().subplots(1, n, figsize=(4.2 * n, 3.4), layout="constrained", squeeze=False)
        self.draw(axes[0, 0])
        steps = np.arange(self.intact.shape[1])
        if self.rdm_similarity:
            ax = axes[0, 1]
            for layer, r in self.rdm_similarity.items():
                (line,) = ax.plot(steps, r, "-o", ms=3, label=layer)
                ax.fill_between(steps, *self.rdm_ci[layer], color=line.get_color(), alpha=0.25, lw=0)
                if layer in self.control_rdm_similarity:
                    ax.plot(steps, self.control_rdm_similarity[layer].mean(0), "--", color=line.get_color(),
                            label=f"{layer}, random controls")  # fmt: skip
            ax.set_xlabel("time step")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.set_ylabel("r(RDM changed, RDM intact)")
            ax.legend(frameon=False, fontsize="small")
        if self.decoding:
            ax = axes[0, -1]
            for layer, scores in self.decoding.items():
                (line,) = ax.plot(steps, scores["intact"], "-", label=f"{layer} intact")
                ax.plot(steps, scores["changed"], "--", color=line.get_color(), label=f"{layer} changed")
            ax.set_xlabel("time step")
            ax.set_ylabel("decoding accuracy")
            ax.legend(frameon=False, fontsize="small")
        return fig


def _score_function(score: Any, labels: np.ndarray | None) -> tuple[str, Callable[..., np.ndarray]]:
    if callable(score):
        return getattr(score, "__name__", "score"), score
    if score not in SCORES:
        raise UnknownNameError(f"score: got {describe(score)}. Pass one of {list(SCORES)} or a callable.")
    if score == "accuracy" and labels is None:
        raise ArgumentError("labels: the accuracy score needs one label per stimulus. Pass labels=...")
    return score, accuracy_score if score == "accuracy" else mean_abs_output


def _scores(fn: Callable[..., np.ndarray], outputs: np.ndarray, labels: Any, stimuli: np.ndarray) -> np.ndarray:
    values = np.asarray(fn(outputs, labels if labels is not None else stimuli), dtype=float)
    if values.shape != outputs.shape[:2]:
        raise ShapeError(f"score: returned shape {values.shape}; a score is (stimulus, time) = {outputs.shape[:2]}.")
    if not np.all(np.isfinite(values)):
        raise NonFiniteError("score: returned NaN or inf; no effect or p-value is computed from it.")
    return values


def _groups(conditions: Any, labels: Any, n: int) -> list[np.ndarray]:
    values = conditions if conditions is not None else labels
    if values is None:
        raise ArgumentError("conditions: RDMs over layers need conditions (or labels). Pass conditions=...")
    values = check_grouping(values, name="conditions" if conditions is not None else "labels")
    if values.shape != (n,):
        raise ShapeError(f"conditions: got {describe(values)}. Pass one condition per stimulus ({n}).")
    groups = [np.flatnonzero(values == v) for v in np.unique(values)]
    if len(groups) < 3:
        raise ArgumentError(f"conditions: {len(groups)} condition(s); an RDM correlation needs at least 3.")
    return groups


def _as_numpy(values: Any) -> Any:
    return values.detach().cpu().numpy() if hasattr(values, "detach") else values


def _layer_rdms(recording: Recording, layers: list[str], groups: list[np.ndarray], *weightings: Any) -> tuple:
    """Per weighting (None: the condition means; or bootstrap weights), the RDMs of every layer: one dict each,
    every layer read once.
    """
    out: tuple[dict[str, Any], ...] = tuple({} for _ in weightings)
    for layer in layers:
        states = np.asarray(recording.get(layer, flatten=True), dtype=np.float64)
        if not np.all(np.isfinite(states)):
            raise NonFiniteError(f"layers: {layer!r} holds NaN or inf under this change; its RDM is undefined.")
        for found, weights in zip(out, weightings, strict=True):
            found[layer] = condition_rdms(states, groups, weights)
    return out


def _effect(intact: np.ndarray, changed: np.ndarray, n_bootstrap: int, seed: Any, level: float) -> tuple:
    from .compute_cost import _stimulus_weights  # the same resampling of stimuli as speed_accuracy's bootstrap

    diff = changed - intact
    samples = _stimulus_weights(diff.shape[0], n_bootstrap, seed) @ diff  # (sample, time) resampled means
    tail = (1 - level) / 2
    low, high = np.percentile(samples, [100 * tail, 100 * (1 - tail)], axis=0)
    return diff.mean(0), low, high


def intervention_effect(
    model: nn.Module,
    stimuli: Any,
    interventions: Any,
    *,
    labels: Any = None,
    score: str | Callable[..., np.ndarray] = "accuracy",
    controls: Sequence[Any] | None = None,
    layers: Sequence[str] | None = None,
    conditions: Any = None,
    decode: bool = False,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    seed: int | None = 0,
    batch_size: int = 256,
) -> InterventionEffect:
    """The effect of interventions or lesions on a model's behaviour and representations, over time.

    Parameters
    ----------
    model : torch.nn.Module
        A model whose outputs are (stimulus, time, ...), e.g. any model of :mod:`rnnprobe.models`.
    stimuli : Tensor or ndarray
    interventions : Intervention, Lesion or list of them
        The targeted change.
    labels : array, optional
        Class per stimulus (for ``score="accuracy"``, the default RDM conditions and decoding).
    score : {"accuracy", "mean_abs_output"} or callable
        Per-stimulus score at each step; a callable gets (outputs, labels or, without labels, the
        stimuli) and returns (stimulus, time).
    controls : list of changes, optional
        Control changes (e.g. ``random_like(change, model, stimuli[:1], n_draws=20)``), each a
        change or a list of changes; they give the p-values.
    layers : list of str, optional
        Layers whose RDM (and decoding) change over time is reported.
    conditions : array, optional
        Condition per stimulus for the RDMs (default: the labels); at least 3 conditions.
    decode : bool
        Also decode the labels from each layer (5-fold cross-validated ridge classifier), intact and changed.
    n_bootstrap : int
        Bootstrap samples over stimuli for the intervals.
    level : float
        Confidence level of the intervals.
    seed : int, optional

    Examples
    --------
    >>> import torch
    >>> from rnnprobe.models import BLT
    >>> from rnnprobe.recording import Lesion
    >>> model = BLT("BL", image_size=8, maps=4, steps=3)
    >>> x, y = torch.rand(30, 1, 8, 8), torch.randint(0, 10, (30,))
    >>> result = intervention_effect(model, x, Lesion.cool("lateral", from_step=1), labels=y, n_bootstrap=100)
    >>> float(result.effect[0])  # the first step runs before the lesion
    0.0
    """
    labels = _as_numpy(labels)
    x = _as_numpy(stimuli)
    n = int(np.shape(x)[0])
    if labels is not None and np.shape(labels) != (n,):
        raise ShapeError(f"labels: got {describe(labels)}. Pass one label per stimulus ({n}).")
    name, fn = _score_function(score, labels)
    layers = [layers] if isinstance(layers, str) else list(layers or [])
    groups = _groups(conditions, labels, n) if layers else []
    controls = [] if controls is None else list(controls)
    n_bootstrap = check_int("n_bootstrap", n_bootstrap)
    level = check_probability("level", level)
    if decode and (labels is None or not layers):
        raise ArgumentError("decode: decoding needs labels and layers. Pass labels=... and layers=[...].")

    weights = within_condition_weights(groups, n, n_bootstrap, seed) if layers else None
    runs = {}
    for key, change in (("intact", []), ("changed", interventions)):
        outputs, recording = _run(model, stimuli, change, layers, batch_size)
        runs[key] = (_scores(fn, outputs, labels, x), recording, *_layer_rdms(recording, layers, groups, None, weights))
    effect, low, high = _effect(runs["intact"][0], runs["changed"][0], n_bootstrap, seed, level)
    control_effects, control_r = _controls(model, stimuli, controls, layers, groups, runs, fn, labels, x, batch_size)
    result = InterventionEffect(
        changes=_describe(interventions), score_name=name, intact=runs["intact"][0], changed=runs["changed"][0],
        effect=effect, ci_low=low, ci_high=high, control_effects=control_effects,
        p_values=permutation_p_values(effect, control_effects, alternative="two-sided") if controls else None,
        level=level,
    )  # fmt: skip
    _add_rdms(result, runs, control_r, level)
    if decode:
        result.decoding = _decoding(runs, layers, labels, seed)
    return result


def _describe(changes: Any) -> list[dict[str, Any]]:
    from ..recording.interventions import describe_changes

    return describe_changes(changes)


def _controls(model, stimuli, controls, layers, groups, runs, fn, labels, x, batch_size) -> tuple:
    """Each control's mean score change (control, time) and RDM correlations with the intact model."""
    effects, rdm_r = [], {layer: [] for layer in layers}
    base = runs["intact"][0]
    for change in controls:
        outputs, recording = _run(model, stimuli, change, layers, batch_size)
        effects.append((_scores(fn, outputs, labels, x) - base).mean(0))
        for layer, rdms in _layer_rdms(recording, layers, groups, None)[0].items():
            rdm_r[layer].append(rdm_correlation(rdms[0], runs["intact"][2][layer][0]))
    shape = (0, base.shape[1])
    return (np.array(effects) if effects else np.zeros(shape)), {k: np.array(v) for k, v in rdm_r.items() if v}


def _add_rdms(result: InterventionEffect, runs: dict[str, Any], control_r: dict[str, np.ndarray], level: float) -> None:
    for layer in runs["intact"][2]:
        r = rdm_correlation(runs["changed"][2][layer][0], runs["intact"][2][layer][0])
        samples = rdm_correlation(runs["changed"][3][layer], runs["intact"][3][layer])  # (sample, time)
        result.rdm_similarity[layer] = r
        result.rdm_ci[layer] = np.stack(percentile_interval(samples, r, level))
        if layer in control_r:
            result.control_rdm_similarity[layer] = control_r[layer]
            result.rdm_p_values[layer] = permutation_p_values(r, control_r[layer], alternative="two-sided")


def _decoding(runs: dict[str, Any], layers: list[str], labels: np.ndarray, seed: Any) -> dict[str, Any]:
    from .decoding import decode

    out = {}
    for layer in layers:
        out[layer] = {key: decode(runs[key][1], layer, labels, estimator="ridge", seed=seed, progress=False).scores
                      for key in ("intact", "changed")}  # fmt: skip
    return out

"""memory_decay() of dask-backed recordings with ridge decoders (fitted from sums over chunks of stimuli) and
logistic regression (by passes over blocks of stimuli).

memory_decay pools every (stimulus, step) sample of a lag into one decoder, so no block of time steps
holds a fit's samples. Ridge (with its StandardScaler) needs only sums over the samples, though: for each
fold's test set, the count, the sums of the states and of the targets' codes, the states' Gram matrix and
their products with the codes. The folds' test sets partition the samples (k-fold), so a training set's
sums are the total minus its test set's. Three passes of tasks over blocks of stimuli (each reads its
stimuli at every step; :func:`.blockwise.run_blocks`):

1. the states' mean over every stimulus and step (the centre the sums are taken about, for precision),
   and the finite check;
2. each lag's sums per fold (lags in groups whose p x p sums fit in ``BLOCK_BYTES``); the decoders are
   solved from them here, as the in-memory fit solves them;
3. each lag's decision values of every sample under its own fold's decoder, scored per fold.

The folds come from the same plan as the in-memory decode (``decoding._plan`` of the pooled targets), so
the scores equal the in-memory ones (tested to 1e-10).

Logistic regression (``estimator="logistic"``, or LogisticRegression alone or after a StandardScaler) of at
least as many pooled samples as units: a task per lag runs the in-memory Newton solver over the lag's samples
read in blocks of stimuli (:func:`._logistic_rows.fit_logistic_rows`: the first pass keeps the blocks in a
temporary folder that the later passes read), then each fold's test samples' decision values in a last pass;
the same scores (tested to 1e-10). Other decoders, and logistic regression of fewer samples than units (fitted
in memory on the samples' coordinates), read the layer into memory.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import layer_states
from . import _scores, blockwise
from ._logistic_rows import fit_logistic_rows
from ._ridge_sums import FoldSums, solve_folds
from ._stimulus_sums import StepRows, fold_decisions
from .decoding import _chance, _code, _plan, code_columns

if TYPE_CHECKING:  # pragma: no cover
    from ..recording import Recording


def memory_decay_blockwise(
    recording: Recording, layer: str, inputs: np.ndarray, lags: np.ndarray, settings: dict[str, Any]
) -> tuple[np.ndarray, float, str] | None:
    """(scores per lag, chance, scoring) of memory_decay on a dask-backed recording, or None where its
    decoders are not ridge or its folds do not partition the samples (the caller reads the layer).
    """
    n, t = inputs.shape
    plans = [_lag_plan(recording, layer, inputs, int(lag), settings) for lag in lags]
    p = int(np.prod(recording.unit_shape(layer)))
    if any(plan is None or (plan.kind == "logistic" and len(plan.y) < p) for plan in plans):
        return None  # (logistic regression of fewer samples than units: in memory, on the samples' coordinates)
    blocks = blockwise.stimulus_blocks(n, t * p, recording.to_dask(layer).chunks[0][0])
    last = plans[-1]
    chance = _chance(last.scoring, last.y, last.n_classes)
    if last.kind == "logistic":  # a task per lag, each a fit over blocks of its samples
        scores = blockwise.run_blocks(_logistic_lag, list(range(len(plans))), recording, layer, _Group(plans), blocks)
        return np.array(scores), chance, last.scoring
    totals = blockwise.run_blocks(_sums_block, blocks, recording, layer)
    centre = sum(total for total, _ in totals) / sum(count for _, count in totals)
    scores = []
    for lags_of_group in _lag_groups(plans, n, p):
        group = _Group([plans[i] for i in lags_of_group])
        # each block's sums are as large as the group's: added one block at a time, never all held
        sums = blockwise.sum_blocks(_moments_block, blocks, recording, layer, centre, group, add=_each_added)
        decoders = [solve_folds(sums[k], centre, penalty=plans[i].penalty, scale=plans[i].scale)
                    for k, i in enumerate(lags_of_group)]  # fmt: skip
        decided = blockwise.run_blocks(_decisions_block, blocks, recording, layer, group, decoders)
        for k, i in enumerate(lags_of_group):
            scores.append(_score(np.concatenate([part[k] for part in decided]), plans[i]))
    return np.array(scores), chance, last.scoring


@dataclasses.dataclass
class _LagPlan:
    """One lag's pooled targets (class indices or values, in the pooled order: stimulus-major), folds (the
    fold of each stimulus: its steps stay together) and decoder settings.
    """

    lag: int
    kind: str  # "ridge" or "logistic"
    n_steps: int  # the lag's samples per stimulus: steps lag .. t - 1
    y: np.ndarray
    n_classes: int | None
    scoring: str
    tests: list[np.ndarray]
    stimulus_fold: np.ndarray
    penalty: float
    scale: bool

    @property
    def columns(self) -> int:
        return code_columns(self.n_classes)


@dataclasses.dataclass
class _Group:
    """The plans of a group of lags (a dataclass: the workers receive it once, not with every task)."""

    plans: list[_LagPlan]


def _lag_plan(recording: Recording, layer: str, inputs: np.ndarray, lag: int, settings: dict) -> _LagPlan | None:
    """decode()'s plan of the lag's pooled samples (a placeholder layer: no states read), or None where
    the decoder is neither ridge nor logistic regression or the test sets do not partition the samples.
    """
    from ..recording import Recording

    n, t = inputs.shape
    samples = n * (t - lag)
    y = inputs[:, : t - lag].reshape(-1)
    pooled = Recording({layer: np.broadcast_to(np.zeros(1), (samples, 1, 1))})  # no memory: one value
    plan = _plan(pooled, layer, y, time=None, groups=np.repeat(np.arange(n), t - lag), test=None, generalize=False,
                 alpha=1.0, fast=None, n_permutations=0, patterns=False, device=None, **settings)  # fmt: skip
    if plan.spec is None:
        return None
    fold = np.full(samples, -1)
    for f, (_, test) in enumerate(plan.folds):
        if np.any(fold[test] >= 0):
            return None
        fold[test] = f
    if np.any(fold < 0):
        return None
    tests = [test for _, test in plan.folds]
    return _LagPlan(lag, plan.spec.kind, t - lag, plan.y, plan.n_classes, plan.scoring, tests, fold[:: t - lag],
                    plan.spec.penalty, plan.spec.scale)  # fmt: skip


def _lag_groups(plans: list[_LagPlan], n: int, p: int) -> list[list[int]]:
    """The lags in groups whose sums (folds x p x p) and decision values fit in BLOCK_BYTES (one lag at least)."""
    groups: list[list[int]] = [[]]
    used = 0
    for i, plan in enumerate(plans):
        size = 8 * (len(plan.tests) * p * (p + plan.columns + 2) + n * plan.n_steps * plan.columns)
        if groups[-1] and used + size > blockwise.BLOCK_BYTES:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += size
    return groups


def _read(recording: Recording, layer: str, block: slice) -> np.ndarray:
    """The block's stimuli at every step, (stimuli, time, units) float64; non-finite states refused."""
    return layer_states(recording, layer, stimuli=np.arange(block.start, block.stop))[2]


def _sums_block(block: slice, recording: Recording, layer: str) -> tuple[np.ndarray, int]:
    """Pass 1, one task: the sum of the block's states over stimuli and steps, and their count."""
    x = _read(recording, layer, block)
    return x.sum(axis=(0, 1)), x.shape[0] * x.shape[1]


def _lag_samples(x: np.ndarray, block: slice, plan: _LagPlan) -> tuple[np.ndarray, np.ndarray]:
    """The block's samples of a lag in the pooled order: states (samples, p) and each one's fold."""
    return x[:, plan.lag :].reshape(-1, x.shape[-1]), np.repeat(plan.stimulus_fold[block], plan.n_steps)


def _lag_codes(block: slice, plan: _LagPlan) -> np.ndarray:
    """The targets' codes of the block's samples of a lag (samples, columns), in the pooled order."""
    return _code(plan.y[block.start * plan.n_steps : block.stop * plan.n_steps, None], plan.n_classes)


def _moments_block(block: slice, recording: Recording, layer: str, centre: np.ndarray, group: _Group) -> list:
    """Pass 2, one task: per lag, per fold's test samples in the block, the sums of :class:`._ridge_sums.FoldSums`."""
    x = _read(recording, layer, block) - centre
    out = []
    for plan in group.plans:
        (rows, fold), codes = _lag_samples(x, block, plan), _lag_codes(block, plan)
        sums = FoldSums.zeros(len(plan.tests), rows.shape[1], codes.shape[1])
        for f in np.unique(fold):
            sums.add(f, rows[fold == f], codes[fold == f])
        out.append(sums)
    return out


def _each_added(first: list, second: list) -> list:
    """Two blocks' sums of the same lags, lag by lag."""
    return [a + b for a, b in zip(first, second, strict=True)]


def _decisions_block(block: slice, recording: Recording, layer: str, group: _Group, decoders: list) -> list:
    """Pass 3, one task: per lag, the decision values of the block's samples under their folds' decoders."""
    x = _read(recording, layer, block)
    out = []
    for plan, (coef, intercept) in zip(group.plans, decoders, strict=True):
        rows, fold = _lag_samples(x, block, plan)
        decision = np.empty((len(rows), coef.shape[-1]))
        for f in np.unique(fold):
            decision[fold == f] = rows[fold == f] @ coef[f] + intercept[f]
        out.append(decision)
    return out


class _LagRows(StepRows):
    """A lag's pooled samples (each stimulus's steps lag .. t - 1, stimulus-major) as the rows of
    :class:`._stimulus_sums.StepRows`, read in blocks of stimuli (``blocks``) at every step.
    """

    def __init__(self, recording: Recording, layer: str, plan: _LagPlan, blocks: list[slice]) -> None:
        self.recording, self.layer, self.lag, self.steps, self.groups = recording, layer, plan.lag, plan.n_steps, None
        self.blocks = [slice(block.start * self.steps, block.stop * self.steps) for block in blocks]
        self.n, self.p = len(plan.y), int(np.prod(recording.unit_shape(layer)))

    def _read(self, block: slice) -> np.ndarray:
        stimuli = slice(block.start // self.steps, block.stop // self.steps)
        return _read(self.recording, self.layer, stimuli)[:, self.lag :].reshape(-1, self.p)


def _logistic_lag(i: int, recording: Recording, layer: str, group: _Group, blocks: list[slice]) -> float:
    """One task: a lag's score by logistic regression of its pooled samples read in blocks of stimuli
    (:func:`._logistic_rows.fit_logistic_rows`, its later passes from a temporary folder), then each fold's test
    samples' decision values.
    """
    plan = group.plans[i]
    rows = _LagRows(recording, layer, plan, blocks)
    sample_fold = np.repeat(plan.stimulus_fold, plan.n_steps)
    trains = [sample_fold != f for f in range(len(plan.tests))]
    fit, _ = fit_logistic_rows(rows, plan.y[:, None], trains, n_classes=plan.n_classes, penalty=plan.penalty,
                               scale=plan.scale, spill=True)  # fmt: skip
    decision = np.empty((rows.n, fit.coef.shape[-1]))
    for test, values in zip(plan.tests, fold_decisions(rows, plan.tests, fit.coef[:, 0], fit.intercept[:, 0]),
                            strict=True):  # fmt: skip
        decision[test] = values
    return _score(decision, plan)


def _score(decision: np.ndarray, plan: _LagPlan) -> float:
    """The mean over folds of each fold's score on its test samples, as decode() averages them."""
    folds = [_scores.score(plan.scoring, plan.y[test], decision[test], plan.n_classes) for test in plan.tests]
    return float(np.mean(folds))

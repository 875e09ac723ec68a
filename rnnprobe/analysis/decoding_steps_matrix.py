"""The generalization matrix of decode() (every training step's decoders tested at every test step) of dask-backed
layers whose single time step is larger than a block, with ridge decoders and logistic regression (on the CPU): no
task holds a step whole.

Where :func:`.decoding_steps.large_steps` finds a step larger than ``blockwise.BLOCK_BYTES`` (of either
recording) and a ridge decoder, the matrix runs in passes of tasks, one task per step, each reading its step in
blocks:

1. **Fit**, a task per training step, in the form of :mod:`.decoding_steps`: with fewer stimuli than units, the
   folds' kernels K_f = Z_f Z_f' summed over blocks of units and the dual coefficients A_f = (K_f[train, train]
   + alpha I)^-1 (Y - mean Y) (logistic regression: U S^-1 beta) of every target set (stimuli x
   columns, kept in place of the step's weights, which are larger); with more stimuli than folds x units, each
   fold's sums over blocks of stimuli and its decoder's weights (units x columns); logistic regression of as many
   stimuli as units or more, by passes over blocks of stimuli (:mod:`._logistic_rows`). Haufe patterns as decode()
   over time computes them.
2. **Weights** (fewer stimuli than units only), a task per training step: W_f = Z_f[train]' A_f, scaled back to
   the raw units, summed block by block of units: one more read of the step.
3. **Test**, a task per test step: every training step's decision values x W_f + b_f on the step's test
   samples (each fold's; cross-decoding: the test recording's every stimulus), read in blocks of stimuli, then
   scored.

The target sets (true and permuted) are fitted in groups whose dual coefficients (or weights) of every training
step fit in BLOCK_BYTES, so a step's kernels are formed once per group; within a group, the weights a test
task receives and the decision values it holds fit in BLOCK_BYTES too (a group of sets over every training step,
or one set over a group of training steps, the test steps then read once per group). The folds and permutations
are the plan's, so the result equals the in-memory one (tested to 1e-10).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any

import numpy as np

from . import blockwise
from ._stimulus_sums import StepRows, fold_decisions, models_from_sums, stimulus_reads
from .decoding import _code
from .decoding_steps import (
    _Job,
    _patterns_from_sums,
    decoders_of,
    fold_kernels,
    job_of,
    kernel_decoder,
    logistic_models,
    patterns_of,
    standardised,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..recording import Recording
    from .decoding import _Plan


def generalize_large_steps(
    recording: Recording, plan: _Plan, how: str, *, patterns: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Fold scores (folds, T, T'), the null (permutations, T, T') and Haufe patterns (T, units, outputs) or None of
    the generalization matrix, every step read in blocks of ``how`` ("units" or "stimuli") by the passes above.
    """
    job = job_of(plan, patterns=patterns)
    tested_on = recording if plan.test is None else plan.test
    n_folds, n_sets, n_times = len(job.tests), job.sets.shape[1], len(plan.positions)
    p = int(np.prod(recording.unit_shape(plan.layer)))
    n_decided = tested_on.n_stimuli if plan.test is not None else sum(len(test) for test in job.tests)
    held = recording.n_stimuli if how == "units" else p  # a decoder's values per column as fitted: duals or weights
    training, testing = [int(t) for t in plan.positions], [int(t) for t in plan.test_positions]
    scores, haufe = np.empty((n_folds, n_sets, n_times, len(testing))), None
    for fits in _groups(n_sets, 8 * job.columns * n_folds * n_times * held):
        fitted = blockwise.run_blocks(_fit_step, training, recording, job, fits, how)
        if patterns and fits.start == 0:
            haufe = np.stack([pattern for _, pattern in fitted])
        for sets, steps in _test_groups(fits, n_times, 8 * job.columns * (n_folds * p + n_decided)):
            coef, intercept = _weights(fitted[steps], training[steps], recording, job, fits, sets, how)
            parts = blockwise.run_blocks(_test_step, testing, tested_on, job, sets, coef, intercept)
            scores[:, sets, steps] = np.stack(parts, axis=-1)
    return scores[:, 0], scores[:, 1:].mean(axis=0), haufe


def _groups(n_sets: int, per_set: int) -> list[slice]:
    """The target sets in groups whose ``per_set`` bytes each fit in BLOCK_BYTES together (one set at least)."""
    size = max(1, blockwise.BLOCK_BYTES // per_set)
    return [slice(a, min(a + size, n_sets)) for a in range(0, n_sets, size)]


def _test_groups(fits: slice, n_times: int, per: int) -> list[tuple[slice, slice]]:
    """(sets, training steps) of the test passes within a group of fitted sets: the weights and decision values
    (``per`` bytes per set and training step) of as many sets over every training step as fit in BLOCK_BYTES, or
    of one set over as many training steps.
    """
    if n_times * per <= blockwise.BLOCK_BYTES:
        groups = _groups(fits.stop - fits.start, n_times * per)
        return [(slice(fits.start + g.start, fits.start + g.stop), slice(0, n_times)) for g in groups]
    size = max(1, blockwise.BLOCK_BYTES // per)
    return [(slice(s, s + 1), slice(a, min(a + size, n_times))) for s in range(fits.start, fits.stop)
            for a in range(0, n_times, size)]  # fmt: skip


def _fit_step(position: int, recording: Recording, job: _Job, fits: slice, how: str) -> tuple[Any, np.ndarray | None]:
    """Pass 1, one task: the decoders of every fold and target set of ``fits`` at one training step (a list of
    each fold's (A, offset), :func:`.decoding_steps.kernel_decoder`; or (coef (folds, p, columns), intercept
    (folds, columns))) and its Haufe patterns (units, outputs) in the group of the true targets, else None.
    """
    x = blockwise.step_states(recording, job.layer, position)
    cross, patterns = job.y_test is not None, job.patterns and fits.start == 0
    if how == "stimuli" and job.kind == "logistic":  # by passes over the step's blocks, in groups of sets
        parts = list(logistic_models(x, job, fits, cross=cross))
        coef, intercept = (np.concatenate([part[i] for part in parts], axis=-1) for i in (2, 3))
        return (coef, intercept), parts[0][4]
    if how == "stimuli":
        rows, groups, centre = stimulus_reads(x, job.trains, job.tests, job.layer, cross=cross)
        fit = functools.partial(decoders_of, centre=centre, job=job, cross=cross)
        coef, intercept, sums = models_from_sums(rows, groups, centre, _code(job.sets[:, fits], job.n_classes), fit)
        return (coef, intercept), _patterns_from_sums(sums, centre, job) if patterns else None
    trains = [np.asarray(train) for train in job.trains]
    if patterns and not cross:  # the decoder of every sample (cross-decoding: the one fold's)
        trains.append(np.arange(x.shape[0]))
    duals, haufe = [], None
    for f, kernel in fold_kernels(x, trains, job):
        if f < len(job.tests):
            duals.append(kernel_decoder(kernel, trains[f], fits, job))
        if patterns and f == len(trains) - 1:
            haufe = patterns_of(x, kernel, job)
    return duals, haufe


def _weights(
    fitted: list, positions: list[int], recording: Recording, job: _Job, fits: slice, sets: slice, how: str
) -> tuple[np.ndarray, np.ndarray]:
    """The decoders of the target sets ``sets`` at the training steps of ``fitted`` as one array for the test
    tasks: coef (folds, p, steps x columns), intercept (folds, steps x columns), each step's columns together.
    """
    cols = slice((sets.start - fits.start) * job.columns, (sets.stop - fits.start) * job.columns)
    if how == "units":  # pass 2: the weights from the dual coefficients, a task per training step
        duals = _Duals([[(a[:, cols], mean[cols]) for a, mean in step] for step, _ in fitted])  # sent once
        decoders = blockwise.run_blocks(_primal_step, list(enumerate(positions)), recording, job, duals)
    else:
        decoders = [(coef[..., cols], intercept[..., cols]) for (coef, intercept), _ in fitted]
    coef = np.stack([coef for coef, _ in decoders], axis=2)  # (folds, p, steps, columns)
    intercept = np.stack([intercept for _, intercept in decoders], axis=1)
    return coef.reshape(*coef.shape[:2], -1), intercept.reshape(len(intercept), -1)


@dataclasses.dataclass
class _Duals:
    """Each training step's list of every fold's (A, offset) (a dataclass: the workers receive it once)."""

    steps: list


def _primal_step(block: tuple[int, int], recording: Recording, job: _Job, duals: _Duals) -> tuple[np.ndarray, ...]:
    """Pass 2, one task: every fold's weights in the raw units (coef (folds, p, columns), intercept (folds,
    columns)) from its dual coefficients A at one training step (``block``: its index among the steps of ``duals``
    and its position): W = inv * Z[train]' A, b = offset - mean W, summed block by block of units.
    """
    step, position = block
    duals = duals.steps[step]
    x = blockwise.step_states(recording, job.layer, position)
    p = int(np.prod(x.shape[1:]))
    coef, shift, at = np.empty((len(duals), p, duals[0][0].shape[1])), np.zeros((len(duals), duals[0][0].shape[1])), 0
    for units in blockwise.unit_blocks(x.shape[1:], x.shape[0]):
        values = blockwise.read_values(x, (slice(None), units), job.layer)
        for f, (train, (dual, _)) in enumerate(zip(job.trains, duals, strict=True)):
            z, mean, inv = standardised(values, train, job.scale)
            w = (z[train].T @ dual) * inv[:, None]
            coef[f, at : at + len(w)] = w
            shift[f] += mean @ w
        at += values.shape[1]
    return coef, np.stack([mean for _, mean in duals]) - shift


def _test_step(
    position: int, recording: Recording, job: _Job, sets: slice, coef: np.ndarray, intercept: np.ndarray
) -> np.ndarray:
    """Pass 3, one task: the scores (folds, sets, training steps) of every fold's decoders at one test step, its
    decision values from blocks of stimuli.
    """
    x = blockwise.step_states(recording, job.layer, position)
    n = x.shape[0]
    cross = job.y_test is not None
    tests = [np.arange(n)] if cross else [np.asarray(test) for test in job.tests]
    decisions = fold_decisions(StepRows(x, job.layer), tests, coef, intercept)
    width, n_steps = sets.stop - sets.start, coef.shape[-1] // (job.columns * (sets.stop - sets.start))
    out = np.empty((len(tests), width, n_steps))
    for f, decision in enumerate(decisions):
        steps = decision.reshape(len(decision), n_steps, -1)
        for t in range(n_steps):
            out[f, :, t] = job.score(None if cross else tests[f], sets, steps[:, t])
    return out

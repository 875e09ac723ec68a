"""decode() of dask-backed layers whose single time step is larger than a block, with ridge decoders and logistic
regression (on the CPU): a task per step reads its step in blocks and never holds it whole.

Blockwise decoding over time (:mod:`.decoding_blockwise`) reads blocks of whole time steps. A step of a
wide layer on many stimuli (a convolutional layer of 32 maps of 32 x 32 on 2000 images: 0.5 GB in
float64) can be more than a worker should hold. Where a step is larger than ``blockwise.BLOCK_BYTES`` and
the decoder is ridge (``estimator="ridge"``, or scikit-learn's Ridge or RidgeClassifier, alone or after a
StandardScaler), over time, each step is one task that reads the step (and the test recording's,
cross-decoding) in blocks, by whichever of two exact forms of ridge holds less:

- **Fewer stimuli than units: kernels, over blocks of units.** With Z_f the states centred on fold f's
  training mean (and scaled by its training standard deviation under a StandardScaler), K_f = Z_f Z_f'
  (stimuli x stimuli) is a sum over blocks of units, and fold f's decision values on its test samples are
  K_f[test, train] (K_f[train, train] + alpha I)^-1 (Y_train - mean Y_train) + mean Y_train, the in-memory
  dual form's equations (``_ridge._fit_dual``: W = Z_f' A). Haufe patterns need the decoder of every
  sample (its kernel is summed with the folds') and cov(x) W = X_c' s / (n - 1), s = K A: one more pass.
  The step is read once per group of folds whose kernels fit in BLOCK_BYTES (one group for 5 folds of up
  to 2896 stimuli), once more for the patterns. Cross-decoding: one decoder of every training stimulus,
  scored on the test recording's stimuli through the kernel across the two, Z_test Z' (the test states
  centred and scaled by the training moments), summed over the same blocks of units. Logistic regression on
  the CPU takes this form too, as its in-memory fit of wide layers (:mod:`._logistic_coordinates`): each fold's
  problem on the principal coordinates U S of K_f[train, train], whose solution beta gives A = U S^-1 beta in
  place of ridge's (decisions K_f[test, train] A + b).
- **More stimuli than twice the units: sums, over blocks of stimuli.** Each fold's test samples' count,
  sums, Gram matrix (units x units) and products with the targets' codes (:mod:`._ridge_sums`), where the
  folds partition the stimuli as k-fold's do, give every fold's decoder (a training set's sums are the other
  folds'); folds that do not (shuffled splits, repeated k-fold) also sum every stimulus (a training set's sums
  are then every stimulus's minus its test set's, or its own where it is not the rest). Where the folds' Gram
  matrices do not fit in BLOCK_BYTES together (wide layers: 5 of 4096 units take 671 MB), every stimulus's
  sums are summed first and held, then the folds in groups that fit beside them, a pass each
  (:func:`._stimulus_sums.slot_groups`; at least one fold a group, so more stimuli than 2 x units keep the sums
  smaller than the step). A last pass scores each block's stimuli under the decoders of the folds that test
  them (cross-decoding: the test recording's stimuli under the decoder of every training stimulus). The
  patterns come from the sums. Target sets (true and permuted) whose products with the states do not fit in
  BLOCK_BYTES together are taken in groups, their passes each.

The true and the permuted targets are columns of the same solves, on the CPU (numpy; ``device`` is for the
in-memory fits). The folds and permutations are the plan's, so the results equal the in-memory ones (tested
to 1e-10; logistic regression's patterns to its solver's precision, 1e-6 relative). The generalization matrix
of such steps is :mod:`.decoding_steps_matrix`'s, from the same two forms.
Logistic regression of as many stimuli as units or more, on the CPU, has no such exact reduction: its
iterations need every stimulus. It runs the in-memory solver with its products with the states summed block
by block of stimuli (:mod:`._logistic_rows`: a pass over the step per conjugate-gradient step and two per
Newton iteration, about 335 passes for a 10-class fit of 20,000 stimuli x 2048 units), holding what the
solver holds per stimulus and per unit and the p x p preconditioner; each group of target sets whose arrays
fit in BLOCK_BYTES is a fit of its own, its passes each. Its results equal the in-memory ones to the solver's
precision (tested: scores and null to 1e-10, patterns to 1e-6 relative). Other decoders, logistic regression
on a device, and ridge of steps whose sums would be larger than the step (stimuli between units and twice the
units) read whole steps.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import _scores, blockwise
from ._linear import inverse_std
from ._logistic_rows import fit_logistic_rows, set_bytes
from ._ridge_sums import FoldSums, solve, solve_folds
from ._stimulus_sums import StepRows, fold_decisions, held_slots, models_from_sums, slot_groups, stimulus_reads
from .decoding import _code, code_columns
from .parallel import one_blas_thread

if TYPE_CHECKING:  # pragma: no cover
    from ..recording import Recording
    from .decoding import _Plan


def large_steps(recording: Recording, plan: _Plan) -> str | None:
    """How decode() reads ``recording``'s steps (and the test recording's, cross-decoding), one of them larger
    than BLOCK_BYTES in float64 (over time, or the generalization matrix): "units" (blocks of units; kernels,
    stimuli x stimuli) with fewer stimuli than units, for ridge, and for logistic regression on the CPU (whose
    in-memory fit then works in the kernels' coordinates too); "stimuli" (blocks of stimuli; sums, a units x units
    Gram matrix per fold) for ridge where the sums held at once (:func:`._stimulus_sums.slot_groups`) are smaller
    than the step: folds x units < stimuli ((folds + 1) x units where the folds do not partition the stimuli), or,
    where the folds' Gram matrices do not fit in BLOCK_BYTES together, (group + 1) x units < stimuli, and for
    logistic regression on the CPU with as many stimuli as units or more (:mod:`._logistic_rows`: passes over the
    step, holding p x p arrays where the whole step's fit holds those and the step); None: whole steps.
    """
    if plan.spec is None or plan.spec.kind not in ("ridge", "logistic"):
        return None
    n, p = recording.n_stimuli, int(np.prod(recording.unit_shape(plan.layer)))
    n_tested = 0 if plan.test is None else plan.test.n_stimuli
    if 8 * max(n, n_tested) * p <= blockwise.BLOCK_BYTES:
        return None
    if plan.spec.kind == "logistic":  # on the CPU: the training samples' coordinates (as in memory), or passes
        on_cpu = plan.device is None or plan.device.type == "cpu"
        return ("units" if n < p else "stimuli") if on_cpu else None
    if n < p:
        return "units"
    groups = slot_groups([train for train, _ in plan.folds], [test for _, test in plan.folds], n, p,
                         cross=plan.test is not None)  # fmt: skip
    return "stimuli" if held_slots(groups) * p < n else None


def decode_large_steps(
    recording: Recording, plan: _Plan, how: str, *, patterns: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Fold scores (folds, T), the null (permutations, T) and Haufe patterns (T, units, outputs) or None: one
    task per step (:func:`.blockwise.run_blocks`), reading it (and the test recording's step) in blocks of
    ``how`` (:func:`large_steps`).
    """
    job = job_of(plan, patterns=patterns)
    step = _by_units if how == "units" else _by_stimuli
    positions = [(int(p), int(q)) for p, q in zip(plan.positions, plan.test_positions, strict=True)]
    parts = blockwise.run_blocks(step, positions, recording, plan.test, job)
    scores = np.stack([s for s, _ in parts], axis=1)  # (folds, T, sets)
    haufe = np.stack([h for _, h in parts]) if patterns else None
    return scores[..., 0], scores[..., 1:].mean(axis=0).T, haufe


def job_of(plan: _Plan, *, patterns: bool) -> _Job:
    """What every step's task needs of the plan: the decoder (ridge or logistic), the target sets, the folds."""
    return _Job(plan.spec.kind, plan.layer, plan.spec.penalty, plan.spec.scale, plan.scoring, plan.n_classes,
                np.column_stack([plan.y, *plan.y[plan.perms]]), [train for train, _ in plan.folds],
                [test for _, test in plan.folds], patterns, plan.y_test)  # fmt: skip


@dataclasses.dataclass
class _Job:
    """What every step's task needs (a dataclass: the workers receive it once, not with every task)."""

    kind: str  # "ridge" or "logistic"
    layer: str
    penalty: float
    scale: bool
    scoring: str
    n_classes: int | None
    sets: np.ndarray  # (n, 1 + permutations): the true targets, then the permuted ones
    trains: list[np.ndarray]
    tests: list[np.ndarray]
    patterns: bool
    y_test: np.ndarray | None  # cross-decoding: the test recording's targets (its every stimulus tested)

    @property
    def columns(self) -> int:
        return code_columns(self.n_classes)

    def score(self, test: np.ndarray | None, sets: slice, decision: np.ndarray) -> np.ndarray:
        """Scores (sets,) of the decision values (test samples, sets x columns) of a group of target sets: on
        the samples ``test``, or on the test recording's (``test`` None).
        """
        width = len(range(*sets.indices(self.sets.shape[1])))
        targets = self.sets[test, sets].T if test is not None else np.repeat(self.y_test[None], width, axis=0)
        decision = np.moveaxis(decision.reshape(len(decision), width, self.columns), 1, 0)
        return _scores.score(self.scoring, targets, decision, self.n_classes)


def _set_groups(sets: int | slice, per_set: int) -> list[slice]:
    """The target sets (the first ``sets``, or the slice ``sets``) in groups whose arrays (``per_set`` float64
    values each) fit in BLOCK_BYTES.
    """
    start, stop = (0, sets) if isinstance(sets, int) else (sets.start, sets.stop)
    size = max(1, blockwise.BLOCK_BYTES // (8 * per_set))
    return [slice(a, min(a + size, stop)) for a in range(start, stop, size)]


# --- fewer stimuli than units: kernels over blocks of units ------------------------------------------------


def _by_units(
    positions: tuple[int, int], recording: Recording, test: Recording | None, job: _Job
) -> tuple[np.ndarray, np.ndarray | None]:
    """One task: the scores (folds, sets) of every fold and target set at one step, and its Haufe patterns
    (units, outputs) or None. The folds' kernels are summed over blocks of units, a group of folds whose kernels
    fit in BLOCK_BYTES (one at least) per pass, each group scored before the next.
    """
    x = blockwise.step_states(recording, job.layer, positions[0])
    if test is not None:
        return _tested_by_units(x, blockwise.step_states(test, job.layer, positions[1]), job)
    n = x.shape[0]
    trains = [np.asarray(t) for t in job.trains]
    if job.patterns:
        trains.append(np.arange(n))  # the decoder of every sample, for the patterns
    scores, haufe = [], None
    for f, kernel in fold_kernels(x, trains, job):
        if f < len(job.tests):
            scores.append(_fold_scores(kernel, trains[f], job.tests[f], job))
        else:
            haufe = patterns_of(x, kernel, job)
    return np.stack(scores), haufe


def fold_kernels(x: Any, trains: list[np.ndarray], job: _Job) -> Iterator[tuple[int, np.ndarray]]:
    """(i, K_i) of every training set i, K_i = Z_i Z_i' summed over blocks of units: a pass over the step per group of
    training sets whose kernels fit in BLOCK_BYTES (one at least), each group's released before the next's.
    """
    per_pass = max(1, blockwise.BLOCK_BYTES // (8 * x.shape[0] ** 2))
    for start in range(0, len(trains), per_pass):
        yield from enumerate(_kernels(x, trains[start : start + per_pass], job), start)


def _tested_by_units(x: Any, tested: Any, job: _Job) -> tuple[np.ndarray, np.ndarray | None]:
    """Cross-decoding at one step: the decoder of every training stimulus (from its kernel K, which the patterns
    share) on the test recording's stimuli, through the kernel across them, Z_test Z' (test x training stimuli;
    the test states centred and scaled by the training moments), both summed over blocks of units.
    """
    n, every = x.shape[0], np.arange(x.shape[0])
    kernel, across = np.zeros((n, n)), np.zeros((tested.shape[0], n))
    for block in blockwise.unit_blocks(x.shape[1:], n + tested.shape[0]):
        z, mean, inv = standardised(blockwise.read_values(x, (slice(None), block), job.layer), every, job.scale)
        kernel += z @ z.T
        across += ((blockwise.read_values(tested, (slice(None), block), job.layer) - mean) * inv) @ z.T
    scores = np.empty(job.sets.shape[1])
    for sets in _set_groups(job.sets.shape[1], 4 * (n + tested.shape[0]) * job.columns):
        dual, offset = kernel_decoder(kernel, every, sets, job)
        scores[sets] = job.score(None, sets, across @ dual + offset)
    return scores[None], patterns_of(x, kernel, job) if job.patterns else None


def standardised(values: np.ndarray, train: np.ndarray, scale: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z, mean, inv): every sample centred on the training samples' mean of each unit and multiplied by inv, 1 /
    their standard deviation (StandardScaler; 1 without ``scale``).
    """
    mean = values[train].mean(axis=0)
    z = values - mean
    squares = torch.from_numpy((z[train] ** 2).mean(axis=0))
    inv = inverse_std(squares, torch.from_numpy(mean), int(train.sum())).numpy() if scale else np.ones_like(mean)
    z *= inv
    return z, mean, inv


def _kernels(x: Any, trains: list[np.ndarray], job: _Job) -> list[np.ndarray]:
    """K = Z Z' (n x n) of the states centred (and scaled) on each training set, summed over blocks of units."""
    n = x.shape[0]
    kernels = [np.zeros((n, n)) for _ in trains]
    for block in blockwise.unit_blocks(x.shape[1:], n):
        values = blockwise.read_values(x, (slice(None), block), job.layer)
        for kernel, train in zip(kernels, trains, strict=True):
            z = standardised(values, train, job.scale)[0]
            kernel += z @ z.T
    return kernels


def kernel_decoder(kernel: np.ndarray, train: np.ndarray, sets: slice, job: _Job) -> tuple[np.ndarray, np.ndarray]:
    """(A (training samples, sets x columns), offset (sets x columns)) of the decoders of the target sets ``sets``
    trained on the samples ``train``, from the kernel of the states centred (and scaled) on them: a sample z's
    decision values are (z Z[train]') A + offset, i.e. K[test, train] A + offset. Ridge: its dual form; logistic
    regression: :func:`_logistic_in_coordinates`.
    """
    if job.kind == "logistic":
        return _logistic_in_coordinates(kernel[np.ix_(train, train)], job.sets[train, sets], job)
    return dual_of(kernel, train, _code(job.sets[:, sets], job.n_classes), job.penalty)


def _logistic_in_coordinates(kernel: np.ndarray, y: np.ndarray, job: _Job) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression of every target set (``y`` (n, sets) classes) from the training samples'
    kernel (n x n), as the in-memory fit of wide layers (:mod:`._logistic_coordinates`): the narrow problem on
    the samples' principal coordinates Q = U S (the kernel's eigenvectors and square roots of eigenvalues) by
    :func:`._logistic.fit_logistic`, then beta mapped back to A = U S^-1 beta (w = Z' A).
    """
    from ._logistic import fit_logistic
    from ._logistic_coordinates import _coordinates, _inverse

    u, s = _coordinates(kernel[None])  # (1, n, r), (1, r)
    q = (u * s[:, None, :]).transpose(1, 0, 2)  # (n, 1 step, r)
    fit = fit_logistic(q, y, [np.ones(len(y), dtype=bool)], n_classes=job.n_classes, penalty=job.penalty, scale=False,
                       orthogonal=True)  # fmt: skip
    return np.matmul(u, _inverse(s)[:, :, None] * fit.coef[0])[0], fit.intercept[0, 0]


def dual_of(kernel: np.ndarray, train: np.ndarray, codes: np.ndarray, penalty: float) -> tuple[np.ndarray, np.ndarray]:
    """(A, mean codes): A = (K[train, train] + penalty I)^-1 (codes - their mean) over the training samples."""
    from scipy.linalg import cho_factor, cho_solve

    mean = codes[train].mean(axis=0)
    system = kernel[np.ix_(train, train)]
    system[np.diag_indices_from(system)] += penalty
    with one_blas_thread():  # (scipy's LAPACK on scipy's OpenBLAS, between numpy's products)
        return cho_solve(cho_factor(system), codes[train] - mean), mean


def _fold_scores(kernel: np.ndarray, train: np.ndarray, test: np.ndarray, job: _Job) -> np.ndarray:
    """Scores (sets,) of one fold's decoders of every target set on its test samples, the sets in groups
    whose codes and decision values fit in BLOCK_BYTES.
    """
    out = np.empty(job.sets.shape[1])
    for sets in _set_groups(job.sets.shape[1], 4 * len(kernel) * job.columns):
        dual, offset = kernel_decoder(kernel, train, sets, job)
        out[sets] = job.score(test, sets, kernel[np.ix_(test, train)] @ dual + offset)
    return out


def patterns_of(x: Any, kernel: np.ndarray, job: _Job) -> np.ndarray:
    """Haufe patterns cov(x) W cov(s)^-1 of the decoder of every sample (units, outputs): s = K A and
    cov(x) W = X_c' s / (n - 1), X_c' s summed block by block of units.
    """
    n = len(kernel)
    dual, _ = kernel_decoder(kernel, np.arange(n), slice(0, 1), job)
    sources = kernel @ dual  # (n, outputs): the centred states times the decoder's weights
    rows = []
    for block in blockwise.unit_blocks(x.shape[1:], n):
        values = blockwise.read_values(x, (slice(None), block), job.layer)
        # (the sources sum to zero, the kernel's states being centred: centring here only keeps digits)
        rows.append((values - values.mean(axis=0)).T @ sources / (n - 1))
    return np.concatenate(rows) @ np.linalg.pinv(sources.T @ sources / (n - 1))


# --- more stimuli than folds x units: sums over blocks of stimuli ------------------------------------------


def _by_stimuli(
    positions: tuple[int, int], recording: Recording, test: Recording | None, job: _Job
) -> tuple[np.ndarray, np.ndarray | None]:
    """One task: the scores (folds, sets) and Haufe patterns (or None) at one step, from each fold's sums over
    blocks of stimuli (centred on the first block's mean, for precision), then each block's decision values (of
    the test recording's stimuli, cross-decoding, under the decoder of every stimulus); two passes per group of
    target sets.
    """
    x = blockwise.step_states(recording, job.layer, positions[0])
    tested = None if test is None else blockwise.step_states(test, job.layer, positions[1])
    scores, haufe = np.empty((len(job.tests), job.sets.shape[1])), None
    every = slice(0, job.sets.shape[1])
    if job.kind == "logistic":
        models = logistic_models(x, job, every, cross=tested is not None)
    else:
        models = _ridge_models(x, job, every, tested=tested)
    for sets, rows, coef, intercept, patterns in models:
        if tested is None:
            decisions = fold_decisions(rows, job.tests, coef, intercept)
            for f, (test_rows, decision) in enumerate(zip(job.tests, decisions, strict=True)):
                scores[f, sets] = job.score(test_rows, sets, decision)
        else:  # the test recording's stimuli under the decoder of every training stimulus
            decisions = fold_decisions(StepRows(tested, job.layer), [np.arange(tested.shape[0])], coef, intercept)
            scores[0, sets] = job.score(None, sets, decisions[0])
        haufe = patterns if patterns is not None else haufe
    return scores, haufe


def _ridge_models(x: Any, job: _Job, sets: slice, *, tested: Any) -> Iterator[tuple]:
    """(sets, rows, coef (folds, p, columns), intercept (folds, columns), Haufe patterns or None) of each group
    of the target sets ``sets`` whose arrays fit in BLOCK_BYTES: ridge's decoders from each fold's sums over blocks
    of stimuli (centred on the first block's mean, for precision), the patterns in the first group of all.
    """
    n, p, cross = x.shape[0], int(np.prod(x.shape[1:])), tested is not None
    rows, groups, centre = stimulus_reads(x, job.trains, job.tests, job.layer, cross=cross)
    fit = functools.partial(decoders_of, centre=centre, job=job, cross=cross)
    n_decided = n if tested is None else tested.shape[0]
    for group in _set_groups(sets, job.columns * (3 * held_slots(groups) * p + n + n_decided)):
        coef, intercept, sums = models_from_sums(rows, groups, centre, _code(job.sets[:, group], job.n_classes), fit)
        patterns = job.patterns and group.start == 0
        yield group, rows, coef, intercept, _patterns_from_sums(sums, centre, job) if patterns else None


def logistic_models(x: Any, job: _Job, sets: slice, *, cross: bool) -> Iterator[tuple]:
    """As :func:`_ridge_models`, by logistic regression read in blocks of stimuli (:mod:`._logistic_rows`: two passes
    over the step per Newton iteration, one per conjugate-gradient step), each group of sets a fit; the patterns'
    decoder of every stimulus, with the first group, a fit of its own as in memory (cross-decoding: the one fold's).
    """
    rows = StepRows(x, job.layer)
    n = rows.n
    trains = [np.arange(n)] if cross else [np.asarray(train) for train in job.trains]
    masks = [np.isin(np.arange(n), train) for train in trains]
    settings = {"n_classes": job.n_classes, "penalty": job.penalty, "scale": job.scale, "spill": True}
    for group in _set_groups(sets, set_bytes(n, rows.p, len(masks), job.n_classes) // 8):
        fit, data = fit_logistic_rows(rows, job.sets[:, group], masks, **settings)
        haufe = None
        if job.patterns and group.start == 0:
            every = fit if cross else fit_logistic_rows(rows, job.sets[:, :1], [np.ones(n, dtype=bool)], **settings)[0]
            haufe = haufe_of(data.gram_all[0].numpy() / (n - 1), every.coef[0, 0, :, : job.columns])
        yield group, rows, fit.coef[:, 0], fit.intercept[:, 0], haufe


def decoders_of(
    sums: FoldSums, folds: range, *, centre: np.ndarray, job: _Job, cross: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Every fold's decoder (coef (folds, p, columns), intercept (folds, columns)) from the sums (of the folds at
    ``folds``); ``cross``: the decoder of every stimulus (its test sums are all there is), as the one fold.
    """
    if not cross:
        return solve_folds(sums, centre, penalty=job.penalty, scale=job.scale)
    coef, intercept, _ = solve(sums.training(None), centre, penalty=job.penalty, scale=job.scale)
    return coef[None], intercept[None]


def _patterns_from_sums(sums: FoldSums, centre: np.ndarray, job: _Job) -> np.ndarray:
    """Haufe patterns of the decoder of every sample (the true targets' columns) from its sums."""
    coef, _, cov = solve(sums.training(None), centre, penalty=job.penalty, scale=job.scale)
    return haufe_of(cov, coef[:, : job.columns])


def haufe_of(cov: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Haufe patterns cov(x) W (W' cov(x) W)^-1 (units, outputs) of the weights W (units, outputs)."""
    cov_xs = cov @ w
    return cov_xs @ np.linalg.pinv(w.T @ cov_xs)

"""decode() of dask-backed layers whose single time step is larger than a block: ridge decoders from the
samples' kernels, summed over blocks of units, so that no task holds a whole step.

Blockwise decoding over time (:mod:`.decoding_blockwise`) reads blocks of whole time steps. A step of a
wide layer on many stimuli (a convolutional layer of 32 maps of 32 x 32 on 2000 images: 0.5 GB in
float64) can be more than a worker should hold. Where a step is larger than ``blockwise.BLOCK_BYTES``,
has fewer stimuli than units, and the decoder is ridge (``estimator="ridge"``, or scikit-learn's Ridge or
RidgeClassifier, alone or after a StandardScaler), each step is one task that reads the step in blocks of
units. Everything ridge needs comes from the samples' kernels: with Z_f the states centred on fold f's
training mean (and scaled by its training standard deviation under a StandardScaler), K_f = Z_f Z_f'
(stimuli x stimuli) is a sum over blocks of units, and fold f's decision values on its test samples are

    K_f[test, train] (K_f[train, train] + alpha I)^-1 (Y_train - mean Y_train) + mean Y_train,

the in-memory dual form's equations (``_ridge._fit_dual``: W = Z_f' A). The true targets and the permuted
ones are columns of Y, solved with the same factor. Haufe patterns need the decoder fitted on every
sample (its kernel is summed with the folds') and cov(x) W = X_c' s / (n - 1), s = K A: one more pass
over the blocks of units. A step is thus read once per group of folds whose kernels fit in
BLOCK_BYTES (one group for 5 folds of up to 2896 stimuli), once more for the patterns. The folds and
permutations are the plan's, so the results equal the in-memory ones (tested to 1e-10).

The generalization matrix, cross-decoding (``test=``) and other decoders read whole steps
(:mod:`.decoding_blockwise`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._validation import all_finite, check_finite_layer
from . import _scores, blockwise
from ._linear import inverse_std
from .decoding import _code, code_columns

if TYPE_CHECKING:  # pragma: no cover
    from ..recording import Recording
    from .decoding import _Plan


def by_units(recording: Recording, plan: _Plan, *, generalize: bool) -> bool:
    """Whether decode() reads ``recording``'s steps in blocks of units: a ridge decoder over time (no
    generalization, no test recording) and a step of more float64 bytes than BLOCK_BYTES, with fewer stimuli
    than units (its kernels are then smaller than the step).
    """
    if generalize or plan.spec is None or plan.spec.kind != "ridge" or plan.test is not None:
        return False
    n, p = recording.n_stimuli, int(np.prod(recording.unit_shape(plan.layer)))
    return 8 * n * p > blockwise.BLOCK_BYTES and n < p


def decode_by_units(
    recording: Recording, plan: _Plan, *, patterns: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Fold scores (folds, T), the null (permutations, T) and Haufe patterns (T, units, outputs) or None:
    one task per step (:func:`.blockwise.run_blocks`), each reading its step in blocks of units.
    """
    job = _Job(plan.layer, plan.spec.penalty, plan.spec.scale, plan.scoring, plan.n_classes,
               np.column_stack([plan.y, *plan.y[plan.perms]]), [train for train, _ in plan.folds],
               [test for _, test in plan.folds], patterns)  # fmt: skip
    parts = blockwise.run_blocks(_step, [int(p) for p in plan.positions], recording, job)
    scores = np.stack([s for s, _ in parts], axis=1)  # (folds, T, sets)
    haufe = np.stack([h for _, h in parts]) if patterns else None
    return scores[..., 0], scores[..., 1:].mean(axis=0).T, haufe


@dataclasses.dataclass
class _Job:
    """What every step's task needs (a dataclass: the workers receive it once, not with every task)."""

    layer: str
    penalty: float
    scale: bool
    scoring: str
    n_classes: int | None
    sets: np.ndarray  # (n, 1 + permutations): the true targets, then the permuted ones
    trains: list[np.ndarray]
    tests: list[np.ndarray]
    patterns: bool


def _step(position: int, recording: Recording, job: _Job) -> tuple[np.ndarray, np.ndarray | None]:
    """One task: the scores (folds, sets) of every fold and target set at one step, and its Haufe patterns
    (units, outputs) or None. The folds' kernels are summed over blocks of units, a group of folds per pass.
    """
    x = recording.select(job.layer, time=[position]).to_dask(job.layer)[:, 0]  # (n, *units), lazy
    n = x.shape[0]
    trains = [np.asarray(t) for t in job.trains]
    if job.patterns:
        trains.append(np.arange(n))  # the decoder of every sample, for the patterns
    per_pass = max(1, blockwise.BLOCK_BYTES // (8 * n * n))
    kernels = []
    for start in range(0, len(trains), per_pass):
        kernels += _kernels(x, trains[start : start + per_pass], job)
    folds = zip(kernels[: len(job.tests)], job.trains, job.tests, strict=True)
    scores = np.stack([_fold_scores(kernel, np.asarray(train), test, job) for kernel, train, test in folds])
    if not job.patterns:
        return scores, None
    return scores, _patterns(x, kernels[-1], job)


def _unit_blocks(shape: tuple[int, ...], n: int) -> list[slice]:
    """Blocks along the first unit axis whose float64 states of ``n`` stimuli take at most a quarter of
    BLOCK_BYTES (a block, its centred copy and the kernels' products), one index at least.
    """
    inner = int(np.prod(shape[1:]))
    size = max(1, blockwise.BLOCK_BYTES // (32 * n * inner))
    return [slice(a, min(a + size, shape[0])) for a in range(0, shape[0], size)]


def _read(x: Any, block: slice, layer: str) -> np.ndarray:
    """One block of units of the step, (n, units) float64; non-finite states refused."""
    values = np.asarray(x[:, block].compute(), dtype=np.float64).reshape(x.shape[0], -1)
    check_finite_layer(all_finite(values), layer)
    return values


def _centred(values: np.ndarray, train: np.ndarray, scale: bool) -> np.ndarray:
    """Every sample centred on the training samples' mean, scaled by their standard deviation (StandardScaler)."""
    z = values - values[train].mean(axis=0)
    if scale:
        z *= inverse_std(torch.from_numpy((z[train] ** 2).mean(axis=0))).numpy()
    return z


def _kernels(x: Any, trains: list[np.ndarray], job: _Job) -> list[np.ndarray]:
    """K = Z Z' (n x n) of the states centred (and scaled) on each training set, summed over blocks of units."""
    n = x.shape[0]
    kernels = [np.zeros((n, n)) for _ in trains]
    for block in _unit_blocks(x.shape[1:], n):
        values = _read(x, block, job.layer)
        for kernel, train in zip(kernels, trains, strict=True):
            z = _centred(values, train, job.scale)
            kernel += z @ z.T
    return kernels


def _dual(kernel: np.ndarray, train: np.ndarray, codes: np.ndarray, penalty: float) -> tuple[np.ndarray, np.ndarray]:
    """(A, mean codes): A = (K[train, train] + penalty I)^-1 (codes - their mean) over the training samples."""
    from scipy.linalg import cho_factor, cho_solve

    mean = codes[train].mean(axis=0)
    system = kernel[np.ix_(train, train)]
    system[np.diag_indices_from(system)] += penalty
    return cho_solve(cho_factor(system), codes[train] - mean), mean


def _fold_scores(kernel: np.ndarray, train: np.ndarray, test: np.ndarray, job: _Job) -> np.ndarray:
    """Scores (sets,) of one fold's decoders of every target set on its test samples, sets taken in groups
    whose codes fit in a quarter of BLOCK_BYTES.
    """
    columns = code_columns(job.n_classes)
    n_sets = job.sets.shape[1]
    group = max(1, blockwise.BLOCK_BYTES // (32 * len(kernel) * columns))
    out = np.empty(n_sets)
    for start in range(0, n_sets, group):
        sets = job.sets[:, start : start + group]
        dual, mean = _dual(kernel, train, _code(sets, job.n_classes), job.penalty)
        decision = kernel[np.ix_(test, train)] @ dual + mean  # (n_test, sets x columns)
        decision = np.moveaxis(decision.reshape(len(test), sets.shape[1], columns), 1, 0)
        out[start : start + sets.shape[1]] = _scores.score(job.scoring, sets[test].T, decision, job.n_classes)
    return out


def _patterns(x: Any, kernel: np.ndarray, job: _Job) -> np.ndarray:
    """Haufe patterns cov(x) W cov(s)^-1 of the decoder of every sample (units, outputs): s = K A and
    cov(x) W = X_c' s / (n - 1), X_c' s summed block by block of units.
    """
    n = len(kernel)
    dual, _ = _dual(kernel, np.arange(n), _code(job.sets[:, :1], job.n_classes), job.penalty)
    sources = kernel @ dual  # (n, outputs): the centred states times the decoder's weights
    cov_s = sources.T @ sources / (n - 1)
    rows = []
    for block in _unit_blocks(x.shape[1:], n):
        values = _read(x, block, job.layer)
        # (the sources sum to zero, the kernel's states being centred: centring here only keeps digits)
        rows.append((values - values.mean(axis=0)).T @ sources / (n - 1))
    return np.concatenate(rows) @ np.linalg.pinv(cov_s)

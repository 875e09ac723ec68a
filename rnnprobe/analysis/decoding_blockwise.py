"""decode() of dask-backed recordings, blockwise: the layers are never read whole.

Over time (one decoder per step, tested at its own step), blocks of time steps are independent: each
block is one task that reads its steps (and the same steps of a ``test`` recording) and decodes them
in memory with the same folds, permutations and seeds; the blocks' results are joined.

The generalization matrix (every training step's decoders tested at every test step) needs every
training step's decoders at every test step, so it runs in two passes of tasks:

1. blocks of training steps: each task reads its steps and fits the decoders of every fold and target
   set (the true targets, then the permuted ones); only the decoders come back (the fast path's weights,
   folds x steps x units x outputs, or fitted scikit-learn estimators), with the Haufe patterns;
2. blocks of test steps: each task reads its steps and scores every decoder on them.

Each layer is thus read twice. With many permutations, the decoders of all target sets may not fit in
memory: the target sets are then taken in groups whose weights fit in ``blockwise.BLOCK_BYTES`` and
both passes run per group (the layer read twice per group). The folds and permutations are drawn once,
before any task, so the result equals the in-memory one (tested to 1e-10).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import layer_states
from . import blockwise
from ._clusters import cluster_test
from ._linear import LinearFit
from .decoding import (
    MAX_SETS_PER_PASS,
    code_columns,
    fast_fit,
    fast_test,
    generic_fit,
    generic_test,
    ridge_sets_per_pass,
    scored_values,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..recording import Recording
    from .decoding import DecodingResult, _Plan


def decode_blockwise(recording: Recording, plan: _Plan, target: Any, settings: dict) -> DecodingResult:
    """decode() over time in blocks of time steps as tasks (:func:`.blockwise.run_blocks`), joined."""
    n_units = int(np.prod(recording.unit_shape(plan.layer)))
    n_stimuli = recording.n_stimuli + (0 if plan.test is None else plan.test.n_stimuli)
    chunks = blockwise.stored_chunks(recording, plan.layer, plan.positions)
    blocks = blockwise.time_blocks(n_stimuli, n_units, np.arange(len(plan.positions)), chunks=chunks)
    parts = blockwise.run_blocks(_decode_block, blocks, recording, plan.positions, plan.test, plan.test_positions,
                                 plan.layer, target, settings)  # fmt: skip  # the same folds, seeds, permutations
    first = parts[0]
    joined = dataclasses.replace(
        first, scores=np.concatenate([p.scores for p in parts]), times=np.concatenate([p.times for p in parts]),
        fold_scores=np.concatenate([p.fold_scores for p in parts], axis=1),
        test_times=np.concatenate([p.test_times for p in parts]),
        patterns=None if first.patterns is None else np.concatenate([p.patterns for p in parts]),
    )  # fmt: skip
    if first.null is not None:
        joined.null = np.concatenate([p.null for p in parts], axis=1)
        joined.p_values = np.concatenate([p.p_values for p in parts])
        joined.clusters = cluster_test(joined.scores, joined.null, threshold_p=settings["cluster_threshold"])
    return joined


def _decode_block(
    block: np.ndarray, recording: Recording, positions: np.ndarray, test: Recording | None,
    test_positions: np.ndarray, layer: str, target: Any, settings: dict
) -> DecodingResult:  # fmt: skip
    """Decoding at one block of time steps (indices into the selected steps), read into memory (on a dask
    worker, or here); with the same steps of the test recording.
    """
    from .decoding import decode

    states = recording.select(layer, time=positions[block]).load_into_memory()
    tested = None if test is None else test.select(layer, time=test_positions[block]).load_into_memory()
    return decode(states, layer, target, test=tested, progress=False, **settings)


def generalize_blockwise(
    recording: Recording, plan: _Plan, run: dict, *, patterns: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Fold scores (F, T, T'), the null (permutations, T, T') and Haufe patterns of the generalization
    matrix, in the two passes of tasks described above.
    """
    tested_on = recording if plan.test is None else plan.test
    n_units = int(np.prod(recording.unit_shape(plan.layer)))
    train_chunks = blockwise.stored_chunks(recording, plan.layer, plan.positions)
    test_chunks = blockwise.stored_chunks(tested_on, plan.layer, plan.test_positions)
    train_blocks = blockwise.time_blocks(recording.n_stimuli, n_units, np.arange(len(plan.positions)),
                                         chunks=train_chunks)  # fmt: skip
    test_blocks = blockwise.time_blocks(tested_on.n_stimuli, n_units, np.arange(len(plan.test_positions)),
                                        chunks=test_chunks)  # fmt: skip
    sets = np.column_stack([plan.y, *plan.y[plan.perms]])  # (n, 1 + permutations): the true targets first
    outputs = code_columns(plan.n_classes)
    weight_bytes = len(plan.folds) * len(plan.positions) * n_units * outputs * 8
    group = max(1, blockwise.BLOCK_BYTES // weight_bytes)  # target sets whose weights fit in one block
    scores, haufe = [], None
    for start in range(0, sets.shape[1], group):
        part = sets[:, start : start + group]
        fitted = blockwise.run_blocks(_fit_block, train_blocks, recording, plan, part, patterns and start == 0)
        decoders = _joined([decoders for decoders, _ in fitted])
        if patterns and start == 0:
            haufe = np.concatenate([pattern for _, pattern in fitted])
        tested = blockwise.run_blocks(_test_block, test_blocks, tested_on, plan, part, decoders, run["scoring"])
        scores.append(np.concatenate(tested, axis=-1))  # (F, sets, T, T')
    everything = np.concatenate(scores, axis=1)
    return everything[:, 0], everything[:, 1:].mean(axis=0), haufe


def _passes(plan: _Plan, n_sets: int, n_samples: int, n_times: int, n_units: int, decisions: int = 0) -> list[slice]:
    """The target sets in passes, as in memory: of at most MAX_SETS_PER_PASS for logistic regression; for
    ridge as many as fit in PASS_BYTES (``decisions``: the values per set and column a fold's scoring holds).
    """
    size = MAX_SETS_PER_PASS
    if plan.spec.kind == "ridge":
        columns = code_columns(plan.n_classes)
        size = ridge_sets_per_pass(len(plan.folds), n_samples, n_times, n_units, columns, decisions)
    return [slice(a, a + size) for a in range(0, n_sets, size)]


def _fit_block(
    block: np.ndarray, recording: Recording, plan: _Plan, sets: np.ndarray, patterns: bool
) -> tuple[Any, np.ndarray | None]:
    """Pass 1, one task: the decoders of every fold and target set at one block of training steps (a
    LinearFit with every set's columns, or fitted estimators [set][fold][step]) and their Haufe patterns.
    """
    from .decoding import _haufe_patterns

    _, _, x = layer_states(recording, plan.layer, time=plan.positions[block])
    haufe = _haufe_patterns(plan.spec, x, plan.y, plan.n_classes, plan.device) if patterns else None
    if plan.spec is None:
        return [[generic_fit(plan.estimator, x, y, train) for train, _ in plan.folds] for y in sets.T], haufe
    passes = _passes(plan, sets.shape[1], *x.shape)
    fits = [fast_fit(plan.spec, x, sets[:, p], plan.folds, plan.n_classes, plan.device) for p in passes]
    return LinearFit(
        *(np.concatenate([getattr(f, name) for f in fits], axis=-1) for name in ("coef", "intercept"))
    ), haufe


def _joined(parts: list[Any]) -> Any:
    """The blocks' decoders joined over training time."""
    if isinstance(parts[0], LinearFit):
        return LinearFit(
            np.concatenate([p.coef for p in parts], axis=1), np.concatenate([p.intercept for p in parts], axis=1)
        )
    n_sets, n_folds = len(parts[0]), len(parts[0][0])
    return [[[model for p in parts for model in p[s][f]] for f in range(n_folds)] for s in range(n_sets)]


def _test_block(
    block: np.ndarray, recording: Recording, plan: _Plan, sets: np.ndarray, decoders: Any, scoring: str
) -> np.ndarray:
    """Pass 2, one task: every decoder's scores (F, sets, T, block's steps) at one block of test steps."""
    _, _, x = layer_states(recording, plan.layer, time=plan.test_positions[block],
                           name="recording" if plan.test is None else "test")  # fmt: skip
    if plan.spec is not None:
        columns = decoders.coef.shape[-1] // sets.shape[1]
        parts = []
        n_train_times = decoders.coef.shape[1]
        decisions = scored_values(plan.folds, None if plan.y_test is None else len(x), n_train_times, x.shape[1])
        for p in _passes(plan, sets.shape[1], len(plan.y), n_train_times, x.shape[2], decisions):
            cols = slice(p.start * columns, p.stop * columns)
            fit = LinearFit(decoders.coef[..., cols], decoders.intercept[..., cols])
            parts.append(fast_test(fit, x, sets[:, p], plan.folds, plan.y_test, scoring=scoring,
                                   n_classes=plan.n_classes, generalize=True))  # fmt: skip
        return np.concatenate(parts, axis=1)
    from sklearn.metrics import check_scoring

    scorer = check_scoring(plan.estimator, scoring=scoring)
    out = np.empty((len(plan.folds), sets.shape[1], len(decoders[0][0]), x.shape[1]))
    for s, y in enumerate(sets.T):
        for f, (_, test) in enumerate(plan.folds):
            xt, yt = (x[test], y[test]) if plan.y_test is None else (x, plan.y_test)
            out[f, s] = generic_test(decoders[s][f], scorer, xt, yt, generalize=True)
    return out

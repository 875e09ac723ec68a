"""Linear models of one time step read in blocks of stimuli, never whole: each fold's sums over its stimuli
(:mod:`._ridge_sums`: count, sums of the states and targets, the states' Gram matrix and their products with
the targets), a model per fold from them, then each block's predictions under the models of the folds that
test its stimuli. What a step of more stimuli than units needs of ridge decoders (:mod:`.decoding_steps`) and
of ridge and PLS encoding models (:mod:`.encoding.tall`), a pass for the sums of each group of folds whose
Gram matrices fit in ``blockwise.BLOCK_BYTES`` together and one for the predictions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import blockwise
from ._ridge_sums import ComplementGroup, ComplementSums, FoldSums, TrainingGroup, TrainingSums


def sum_slots(
    trains: list[np.ndarray], tests: list[np.ndarray], n: int, *, cross: bool
) -> tuple[type[FoldSums], list[np.ndarray]]:
    """(the sums' class, the stimuli of each of its slots) of ridge's sums over blocks of ``n`` stimuli: every
    stimulus in one slot, ``cross`` (the decoder of every training stimulus); each fold's test set where the test
    sets partition the stimuli and each training set is the rest (:class:`._ridge_sums.FoldSums`); else the same,
    or each fold's training set where one is not the rest, and every stimulus last (``ComplementSums``,
    ``TrainingSums``).
    """
    every = np.arange(n)
    if cross:
        return FoldSums, [every]
    complements = _complements(list(zip(trains, tests, strict=True)), n)
    held = np.zeros(n, dtype=np.intp)
    for test in tests:
        np.add.at(held, test, 1)
    if complements and np.all(held == 1):
        return FoldSums, [np.asarray(test) for test in tests]
    members = [np.asarray(rows) for rows in (tests if complements else trains)]
    return (ComplementSums if complements else TrainingSums), [*members, every]


def slot_groups(
    trains: list[np.ndarray], tests: list[np.ndarray], n: int, p: int, *, cross: bool
) -> list[tuple[type[FoldSums], list[np.ndarray]]]:
    """The slots of :func:`sum_slots` in groups summed a pass each: one group where their Gram matrices (p x p a
    slot) fit in BLOCK_BYTES together; else every stimulus's sums first, summed once and held, then groups of
    folds whose Gram matrices fit beside them (one fold at least; memory: 2 p^2), their sums a training set's
    complement (a partition's test sets, or test sets whose training sets are the rest: :class:`ComplementGroup`)
    or its own (:class:`TrainingGroup`).
    """
    kind, members = sum_slots(trains, tests, n, cross=cross)
    per_pass = blockwise.BLOCK_BYTES // (8 * p * p)
    if cross or len(members) <= per_pass:
        return [(kind, members)]
    folds = members if kind is FoldSums else members[:-1]
    size = max(1, per_pass - 1)
    group = TrainingGroup if kind is TrainingSums else ComplementGroup
    return [(FoldSums, [np.arange(n)]), *((group, folds[a : a + size]) for a in range(0, len(folds), size))]


def held_slots(groups: list[tuple[type[FoldSums], list[np.ndarray]]]) -> int:
    """The most slots of sums held at once in :func:`slot_groups`' passes (every stimulus's beside a group's)."""
    return max(len(members) for _, members in groups) + (len(groups) > 1)


def _complements(folds: list, n: int) -> bool:
    """Whether each fold's training set is the rest of the ``n`` stimuli."""
    return all(len(train) + len(test) == n and not np.intersect1d(train, test).size for train, test in folds)


def stimulus_reads(
    x: Any, trains: list[np.ndarray], tests: list[np.ndarray], layer: str, *, cross: bool
) -> tuple[list[slice], list[tuple], np.ndarray]:
    """(blocks, groups, centre) of a step read in blocks of stimuli: the blocks, the groups of slots summed a pass
    each (:func:`slot_groups`: the sums' class, the stimuli of each slot) and the first block's mean (the sums'
    centre, for precision).
    """
    n, p = x.shape[0], int(np.prod(x.shape[1:]))
    blocks = blockwise.stimulus_blocks(n, p, x.chunks[0][0])
    groups = slot_groups(trains, tests, n, p, cross=cross)
    return blocks, groups, blockwise.read_values(x, (blocks[0],), layer).mean(axis=0)


def models_from_sums(
    x: Any, blocks: list[slice], groups: list[tuple], centre: np.ndarray, codes: np.ndarray, layer: str,
    fit: Callable[[FoldSums, range], tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, FoldSums]:  # fmt: skip
    """Every fold's linear model (coef (folds, p, columns), intercept (folds, columns) of the raw states), each
    group of slots' (:func:`slot_groups`, a pass each) ``fit`` from its sums and the positions of its folds among
    all, and the last group's sums (whose ``training(None)``, every stimulus's, the decoders' patterns use).
    """
    parts, every, sums, start = [], None, None, 0
    for kind, members in groups:
        sums = None  # (the last group's sums released before the next group's are summed)
        sums = fold_sums(x, blocks, (kind, members), centre, codes, layer)
        if len(groups) > 1 and every is None:  # every stimulus's sums, held for the groups of folds after them
            every = sums.training(None)
            continue
        if every is not None:
            sums.held = every
        parts.append(fit(sums, range(start, start + sums.n_folds)))
        start += sums.n_folds
    return np.concatenate([coef for coef, _ in parts]), np.concatenate([intercept for _, intercept in parts]), sums


def fold_sums(x: Any, blocks: list[slice], slots: tuple, centre: np.ndarray, codes: np.ndarray, layer: str) -> FoldSums:
    """The sums (:mod:`._ridge_sums`) of the states centred on ``centre`` and of ``codes`` in each of the ``slots``
    (:func:`sum_slots`: the sums' class, each slot's stimuli), block by block of stimuli.
    """
    kind, members = slots
    sums = kind.zeros(len(members), len(centre), codes.shape[1])
    for block in blocks:
        values = blockwise.read_values(x, (block,), layer) - centre
        for f, rows in enumerate(members):
            at = rows[(rows >= block.start) & (rows < block.stop)]
            if len(at):
                sums.add(f, values[at - block.start], codes[at])
    return sums


def fold_decisions(
    x: Any, blocks: list[slice], tests: list[np.ndarray], coef: np.ndarray, intercept: np.ndarray, layer: str
) -> list[np.ndarray]:
    """Each fold's decision values (its test stimuli, columns) under its decoder (coef (folds, p, columns),
    intercept (folds, columns)), block by block of stimuli.
    """
    out = [np.empty((len(test), coef.shape[-1])) for test in tests]
    for block in blocks:
        values = blockwise.read_values(x, (block,), layer)
        for f, test in enumerate(tests):
            at = np.flatnonzero((test >= block.start) & (test < block.stop))
            if len(at):
                out[f][at] = values[test[at] - block.start] @ coef[f] + intercept[f]
    return out

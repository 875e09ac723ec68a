"""Linear models of one time step read in blocks of stimuli, never whole: each fold's sums over its stimuli
(:mod:`._ridge_sums`: count, sums of the states and targets, the states' Gram matrix and their products with
the targets), a model per fold from them, then each block's predictions under the models of the folds that
test its stimuli. What a step of more stimuli than units needs of ridge decoders (:mod:`.decoding_steps`) and
of ridge and PLS encoding models (:mod:`.encoding.tall`), a pass for the sums of each group of folds whose
Gram matrices fit in ``blockwise.BLOCK_BYTES`` together and one for the predictions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


class StepRows:
    """One step's rows read block by block of stimuli, never whole: iterating gives (pos, values), each block's rows'
    float64 values and the map of row index to position in them (``pos[i]``, -1 where row i is not in the block).
    The rows are the stimuli, or with ``groups`` (each condition's stimuli, disjoint) the conditions' means, each
    given in the block that reads its last stimulus; the sums of conditions whose stimuli span blocks are held until
    then (at most one a block boundary where each condition's stimuli are consecutive, as repetitions stored in
    order are; scattered conditions can hold up to every condition's sums).
    """

    def __init__(self, x: Any, layer: str, groups: list[np.ndarray] | None = None, *, chunk: int | None = None) -> None:
        self.x, self.layer, self.groups = x, layer, groups
        self.p = int(np.prod(x.shape[1:]))
        self.blocks = blockwise.stimulus_blocks(x.shape[0], self.p, x.chunks[0][0] if chunk is None else chunk)
        self.n = x.shape[0] if groups is None else len(groups)

    def _read(self, block: slice) -> np.ndarray:
        return blockwise.read_values(self.x, (block,), self.layer)

    def first_mean(self) -> np.ndarray:
        """The mean of the first block's stimuli: a centre near the rows, for the precision of sums."""
        return self._read(self.blocks[0]).mean(axis=0)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if self.groups is None:
            for block, values in self.slices():
                pos = np.full(self.n, -1)
                pos[block] = np.arange(block.stop - block.start)
                yield pos, values
            return
        yield from self._means()

    def slices(self) -> Iterator[tuple[slice, np.ndarray]]:
        """(block, values): each block of stimuli (a slice of them) and its float64 values (without ``groups``)."""
        for block in self.blocks:
            yield block, self._read(block)

    def _means(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        label = np.full(self.x.shape[0], -1)
        for c, rows in enumerate(self.groups):
            label[rows] = c
        counts = np.array([len(rows) for rows in self.groups])
        ends = np.searchsorted([block.stop for block in self.blocks], [rows.max() for rows in self.groups], "right")
        held: dict[int, np.ndarray] = {}  # the sums of conditions whose stimuli span blocks, until their last
        for b, block in enumerate(self.blocks):
            values = self._read(block)
            labels = label[block]
            order = np.argsort(labels, kind="stable")[np.count_nonzero(labels < 0) :]  # (stimuli of no condition)
            conditions, starts = np.unique(labels[order], return_index=True)
            sums = np.add.reduceat(values[order], starts, axis=0) if len(order) else values[:0]
            for i, c in enumerate(conditions):
                if c in held:
                    sums[i] += held.pop(c)
            done = ends[conditions] == b
            held.update(zip(conditions[~done].tolist(), sums[~done], strict=True))
            pos = np.full(self.n, -1)
            pos[conditions[done]] = np.arange(np.count_nonzero(done))
            yield pos, sums[done] / counts[conditions[done], None]


class ArrayRows(StepRows):
    """The rows of an in-memory (rows, units) array as :class:`StepRows` gives a step's, in the same blocks (the fits
    from sums hold no float64 copy of the whole array).
    """

    def __init__(self, x: np.ndarray) -> None:
        super().__init__(x, "", chunk=1)

    def _read(self, block: slice) -> np.ndarray:
        return np.asarray(self.x[block], dtype=np.float64)


def stimulus_reads(
    x: Any, trains: list[np.ndarray], tests: list[np.ndarray], layer: str, *, cross: bool
) -> tuple[StepRows, list[tuple], np.ndarray]:
    """(rows, slots, centre) of a step read in blocks of stimuli: its :class:`StepRows`, the groups of slots summed a
    pass each (:func:`slot_groups`: the sums' class, the stimuli of each slot) and the first block's mean (the sums'
    centre, for precision).
    """
    rows = StepRows(x, layer)
    return rows, slot_groups(trains, tests, rows.n, rows.p, cross=cross), rows.first_mean()


def models_from_sums(
    rows: StepRows, groups: list[tuple], centre: np.ndarray, codes: np.ndarray,
    fit: Callable[[FoldSums, range], tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, FoldSums]:  # fmt: skip
    """Every fold's linear model (coef (folds, p, columns), intercept (folds, columns) of the raw states), each
    group of slots' (:func:`slot_groups`, a pass over ``rows`` each) ``fit`` from its sums and the positions of its
    folds among all, and the last group's sums (whose ``training(None)``, every row's, the decoders' patterns use).
    """
    parts, every, sums, start = [], None, None, 0
    for kind, members in groups:
        sums = None  # (the last group's sums released before the next group's are summed)
        sums = fold_sums(rows, (kind, members), centre, codes)
        if len(groups) > 1 and every is None:  # every row's sums, held for the groups of folds after them
            every = sums.training(None)
            continue
        if every is not None:
            sums.held = every
        parts.append(fit(sums, range(start, start + sums.n_folds)))
        start += sums.n_folds
    return np.concatenate([coef for coef, _ in parts]), np.concatenate([intercept for _, intercept in parts]), sums


def member_rows(
    rows: StepRows, members: list[np.ndarray], centre: np.ndarray | None = None
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(i, where, values) block by block: the positions ``where`` in ``members[i]`` of its rows in the block (the
    rows members[i][where]) and their values, centred on ``centre`` where given.
    """
    for pos, values in rows:
        if centre is not None:
            values = values - centre
        for i, member in enumerate(members):
            where = np.flatnonzero(pos[member] >= 0)
            if len(where):
                yield i, where, values[pos[member[where]]]


def fold_sums(rows: StepRows, slots: tuple, centre: np.ndarray, codes: np.ndarray) -> FoldSums:
    """The sums (:mod:`._ridge_sums`) of the rows centred on ``centre`` and of ``codes`` in each of the ``slots``
    (:func:`sum_slots`: the sums' class, each slot's rows), block by block.
    """
    kind, members = slots
    sums = kind.zeros(len(members), len(centre), codes.shape[1])
    for f, where, values in member_rows(rows, members, centre):
        sums.add(f, values, codes[members[f][where]])
    return sums


def fold_decisions(
    rows: StepRows, tests: list[np.ndarray], coef: np.ndarray, intercept: np.ndarray
) -> list[np.ndarray]:
    """Each fold's decision values (its test rows, columns) under its model (coef (folds, p, columns), intercept
    (folds, columns)), block by block.
    """
    out = [np.empty((len(test), coef.shape[-1])) for test in tests]
    for f, where, values in member_rows(rows, tests):
        out[f][where] = values @ coef[f] + intercept[f]
    return out

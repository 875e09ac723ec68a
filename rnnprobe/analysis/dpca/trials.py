"""A layer's trials as dPCA reads them: the conditions' trial sums under one or more designs, trials by
index, and the held-out splits built from both (fit_dpca's regularizer search and dpca_significance).

A dask-backed recording is never read whole: the sums are the product of each design's condition indicator
with chunks of trials (one pass gives the sums of several designs: the label shuffles), and the splits read
only their held-out trials, one per condition, those of several designs in one read.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..._validation import check_finite_layer, layer_states
from ..blockwise import dask_states, group_sums
from ..conditions import sum_group_sets
from .core import Design, by_condition

if TYPE_CHECKING:  # pragma: no cover
    from ...recording import Recording

BUDGET = 2**28  # bytes of condition sums or held-out trials held at once (256 MiB)


class Trials:
    """The selected states (trial, time, unit) of one layer: read at once from an in-memory recording,
    blockwise from a dask-backed one (its NaN or inf refused on the first pass).
    """

    def __init__(self, recording: Recording, layer: str, positions: np.ndarray) -> None:
        self.recording, self.layer, self.positions = recording, layer, positions
        self.states = None if recording.is_dask else layer_states(recording, layer, time=positions)[2]
        self.checked = self.states is not None
        self.shape = (len(positions), int(np.prod(recording.unit_shape(layer))))  # (time, unit)

    def sums(self, designs: Sequence[Design]) -> list[np.ndarray]:
        """Each design's (cell, time, unit) sums of the trials of each condition cell, in one pass (one product
        per block of trials with the designs' stacked indicators).
        """
        cells, n_cells = np.stack([design.cells for design in designs]), int(np.prod(designs[0].shape))
        if self.states is not None:
            return list(sum_group_sets(self.states, cells, n_cells))
        import dask
        import dask.array as da

        x = dask_states(self.recording, self.layer, time=self.positions)
        sums, finite = dask.compute(group_sums(x, cells, n_cells), True if self.checked else da.isfinite(x).all())
        check_finite_layer(bool(finite), self.layer)
        self.checked = True
        return list(sums)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The trials ``rows`` (sorted, distinct: read in the store's order) as (trial, time, unit)."""
        if self.states is not None:
            return self.states[rows]
        return layer_states(self.recording, self.layer, time=self.positions, stimuli=rows)[2]

    def gather(self, helds: Sequence[np.ndarray]) -> tuple[Trials, list[np.ndarray]]:
        """The held-out trials of several designs (``helds``: (split, cell) trial indices each) read at once
        (one pass over a dask-backed layer) into an in-memory Trials, with each design's indices into it;
        where they exceed BUDGET together, these trials and ``helds`` unchanged (each design's splits are then
        read in groups, :meth:`held_out`). The gathered Trials's ``states`` are those trials, indexed as returned;
        it serves held-out reads only (its sums are not the layer's).
        """
        rows = np.unique(np.concatenate([held.ravel() for held in helds]))
        if 8 * rows.size * self.shape[0] * self.shape[1] > BUDGET:
            return self, list(helds)
        taken = copy.copy(self)
        taken.states, taken.checked = self.read(rows), True
        return taken, [np.searchsorted(rows, held) for held in helds]

    def groups(self, count: int, per_item: int) -> Iterator[slice]:
        """Consecutive groups of ``count`` items of ``per_item`` trials each, held at most BUDGET bytes at once."""
        size = max(1, BUDGET // (8 * per_item * self.shape[0] * self.shape[1]))
        return (slice(start, min(start + size, count)) for start in range(0, count, size))

    def held_out(self, held: np.ndarray) -> Iterator[np.ndarray]:
        """The held-out trials (cell, time, unit) of each split (row of ``held``: a trial index per cell),
        reading each group of splits' trials together.
        """
        for group in self.groups(held.shape[0], held.shape[1]):
            rows, where = np.unique(held[group], return_inverse=True)  # each distinct trial read once
            block = self.read(rows)
            yield from (block[split] for split in where.reshape(held[group].shape))


def draw_held(design: Design, n_splits: int, rng: np.random.Generator) -> np.ndarray:
    """(split, cell) indices of one random trial per condition cell held out, for each split."""
    members = [np.flatnonzero(design.cells == cell) for cell in range(design.counts.size)]
    return np.array([[rng.choice(m) for m in members] for _ in range(n_splits)], dtype=np.intp).reshape(n_splits, -1)


def split_means(sums: np.ndarray, held_trials: np.ndarray, design: Design) -> tuple[np.ndarray, np.ndarray]:
    """(training means, held-out trials), both (unit, *conditions, time): the training means are the
    conditions' sums less the held-out trial, over one trial fewer.
    """
    train = (sums - held_trials) / (design.counts.reshape(-1, 1, 1) - 1)
    return by_condition(train, design), by_condition(held_trials, design)

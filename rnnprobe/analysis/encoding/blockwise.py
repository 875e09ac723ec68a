"""fit_encoding's responses from a dask-backed recording of trials grouped by a descriptor, read blockwise.

The fit needs the responses' mean over repetitions (stimulus, time, target: its targets) and, for the
noise ceiling, each split's two half means. Both are weighted sums of each stimulus's repetitions: the
trials are taken into stimulus order (dask's shuffle, each chunk read once) in chunks of whole stimuli, and
each chunk gives the sums of its own stimuli, so the trials, repetitions times larger, are never held. The
split halves of as many splits as fit in ``BUDGET`` bytes come from one pass over the trials.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from ..._validation import check_finite_layer, check_recording
from ..blockwise import dask_states, take_in_order
from .inputs import Responses, repetitions

if TYPE_CHECKING:  # pragma: no cover
    from ...recording import Recording

BUDGET = 2**28  # bytes of split halves' means computed in one pass (256 MiB)


def dask_responses(recording: Recording, layer: str | None, time: object, descriptor: str) -> Responses:
    """The :class:`.inputs.Responses` of a dask-backed recording's trials grouped by ``descriptor``."""
    import dask
    import dask.array as da

    check_recording(recording, "responses")
    label = recording.resolve_layer(layer)
    positions = recording.time_positions(label, time)
    values, order, n_reps = repetitions(recording.column(descriptor), descriptor)
    x = dask_states(recording, label, time=positions)
    sums, finite = dask.compute(repetition_sums(x, order, n_reps, np.ones((1, n_reps))), da.isfinite(x).all())
    check_finite_layer(bool(finite), label)
    mean = sums[0] / n_reps

    def halves(orders: list[np.ndarray], half: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        per_pass = max(1, BUDGET // (2 * 8 * int(np.prod(mean.shape))))
        for start in range(0, len(orders), per_pass):
            parts = [part for o in orders[start : start + per_pass] for part in (o[:half], o[half : 2 * half])]
            weights = np.zeros((len(parts), n_reps))
            for row, part in zip(weights, parts, strict=True):
                row[part] = 1.0  # each half's repetitions summed per stimulus
            sums = repetition_sums(x, order, n_reps, weights).compute()
            yield from ((sums[k] / half, sums[k + 1] / half) for k in range(0, len(sums), 2))

    times = np.asarray(recording.times[label])[positions]
    return Responses(mean, n_reps, times, values, halves)


def repetition_sums(x: Any, order: np.ndarray, n_reps: int, weights: np.ndarray) -> Any:
    """Lazy (set, stimulus, ...) sums of each stimulus's ``n_reps`` repetitions weighted by ``weights`` (set,
    repetition), of the trials x (trial, ...) whose stimulus order (stable) is ``order``: the trials taken
    into that order and rechunked to whole stimuli, as many per chunk as x's first chunk holds trials, so
    that each chunk gives its own stimuli's sums. Summing each chunk of x into every stimulus (most of
    them zero there) made the cost grow with the chunks times the stimuli: the mean and 100 splits' halves of
    4,000 trials (400 stimuli x 10) in 40 chunks took 20.1 s, 4.8 s by chunks of whole stimuli (AMD EPYC,
    ``benchmarks/dask_ceiling.py``).
    """
    per_chunk = max(1, x.chunks[0][0] // n_reps)
    grouped = take_in_order(x, order).rechunk({0: per_chunk * n_reps})  # (stored stimulus by stimulus: no shuffle)
    chunks = (len(weights), tuple(rows // n_reps for rows in grouped.chunks[0]), *grouped.chunks[1:])
    return grouped.map_blocks(_weighted_repetitions, weights, n_reps, chunks=chunks, new_axis=0, dtype=np.float64)


def _weighted_repetitions(block: np.ndarray, weights: np.ndarray, n_reps: int) -> np.ndarray:
    """A chunk's (set, stimulus, ...) weighted sums of its stimuli's repetitions (consecutive rows)."""
    trials = np.asarray(block, dtype=np.float64).reshape(block.shape[0] // n_reps, n_reps, -1)
    return np.moveaxis(weights @ trials, 0, 1).reshape(len(weights), len(trials), *block.shape[1:])

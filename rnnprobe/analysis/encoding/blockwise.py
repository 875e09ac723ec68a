"""fit_encoding's responses from a dask-backed recording of trials grouped by a descriptor, read blockwise.

The fit needs the responses' mean over repetitions (stimulus, time, target: its targets) and, for the
noise ceiling, each split's two half means; both are products of an indicator with chunks of trials
(:func:`..blockwise.group_sums`), so the trials, repetitions times larger, are never held. The split
halves of as many splits as fit in ``BUDGET`` bytes come from one pass over the trials.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from ..._validation import check_finite_layer, check_recording
from ..blockwise import dask_states, group_sums
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
    n_stimuli = values.size
    stimulus, repetition = np.empty(order.size, dtype=np.intp), np.empty(order.size, dtype=np.intp)
    stimulus[order], repetition[order] = np.repeat(np.arange(n_stimuli), n_reps), np.tile(np.arange(n_reps), n_stimuli)
    x = dask_states(recording, label, time=positions)
    mean, finite = dask.compute(group_sums(x, stimulus, n_stimuli, mean=True), da.isfinite(x).all())
    check_finite_layer(bool(finite), label)

    def halves(orders: list[np.ndarray], half: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        per_pass = max(1, BUDGET // (2 * 8 * int(np.prod(mean.shape))))
        for start in range(0, len(orders), per_pass):
            parts = [part for o in orders[start : start + per_pass] for part in (o[:half], o[half : 2 * half])]
            # each half's trials summed per stimulus; the other trials go to one more group, left out
            lazy = [group_sums(x, np.where(np.isin(repetition, part), stimulus, n_stimuli), n_stimuli + 1)[:n_stimuli]
                    for part in parts]  # fmt: skip
            sums = dask.compute(*lazy)
            yield from ((sums[k] / half, sums[k + 1] / half) for k in range(0, len(sums), 2))

    times = np.asarray(recording.times[label])[positions]
    return Responses(mean, n_reps, times, values, halves)

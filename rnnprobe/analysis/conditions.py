"""condition_average: a Recording averaged over the stimuli (trials) that share metadata values."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .._validation import (
    check_finite_layer,
    check_grouping,
    check_int,
    check_recording,
    layer_states,
    refuse_non_finite_squares,
)
from ..errors import ArgumentTypeError, ShapeError, describe
from ..recording import Recording
from .blockwise import dask_states, group_sums
from .parallel import in_shares, library_threads, task_pool


def condition_average(
    recording: Recording, by: str | Sequence[str], *, layers: Any = None, sem: bool = False, min_trials: int = 1
) -> Recording:
    """Average a recording's stimuli (trials) per condition: every combination of the ``by`` columns.

    Parameters
    ----------
    recording : Recording
        Trials as rows, e.g. recorded task trials with their metadata. A dask-backed recording
        (``Recording.load(path, chunks=...)``) is averaged blockwise, never read whole.
    by : str or list of str
        The metadata column(s) defining conditions (e.g. ``["context", "coherence"]``).
    layers : str or list of str, optional
        Layers to average (default all).
    sem : bool
        Also return the standard error of the mean of each layer, as layers named ``"<layer>:sem"``
        (NaN for conditions of one trial).
    min_trials : int
        Refuse conditions with fewer trials.

    Returns
    -------
    Recording
        One row per condition, sorted by the ``by`` values; metadata: the ``by`` columns and
        ``n_trials``; the same time coordinates; provenance notes the averaging.

    Examples
    --------
    >>> import numpy as np
    >>> rec = Recording({"h": np.arange(12.0).reshape(4, 3, 1)}, metadata={"ctx": ["a", "b", "a", "b"]})
    >>> means = condition_average(rec, "ctx")
    >>> means.get("h")[:, :, 0], means.column("n_trials").tolist()
    (array([[3., 4., 5.],
           [6., 7., 8.]]), [2, 2])
    """
    check_recording(recording, "recording")
    columns = [by] if isinstance(by, str) else list(by) if isinstance(by, list | tuple) else None
    if not columns or not all(isinstance(name, str) for name in columns):
        raise ArgumentTypeError(
            f"by: got {describe(by)}. Name the metadata column(s) that define conditions: a str or a list of str."
        )
    min_trials = check_int("min_trials", min_trials, minimum=1)
    values = [check_grouping(recording.column(name), name=f"by {name!r}") for name in columns]
    keys, inverse, counts = _conditions(values)
    if counts.min() < min_trials:
        worst = int(np.argmin(counts))
        raise ShapeError(
            f"by: condition {dict(zip(columns, keys[worst], strict=True))} has {counts[worst]} trial(s), fewer than "
            f"min_trials={min_trials}. Drop it (Recording.select) or lower min_trials."
        )
    names = recording.layers if layers is None else [layers] if isinstance(layers, str) else list(layers)
    states: dict[str, np.ndarray] = {}
    for name in names:
        layer = recording.resolve_layer(name)
        average = _dask_average if recording.is_dask else _average  # blockwise: the layer is never gathered
        mean, spread = average(recording, layer, inverse, counts, sem=sem)
        shape = (len(keys), *recording.shapes[layer][1:])
        states[layer] = mean.reshape(shape)
        if sem:
            states[f"{layer}:sem"] = (spread / np.sqrt(counts)[:, None, None]).reshape(shape)
    metadata = {name: np.array([key[i] for key in keys]) for i, name in enumerate(columns)}
    metadata["n_trials"] = counts
    times = {name: recording.times[name.split(":sem")[0]] for name in states}
    provenance = {**recording.provenance, "condition_average": {"by": columns, "n_trials": int(counts.sum())}}
    return Recording(states, metadata=metadata, times=times, provenance=provenance)


def _average(
    recording: Recording, layer: str, inverse: np.ndarray, counts: np.ndarray, *, sem: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Each condition's mean (conditions, time, units) of the layer read into memory, and its trials'
    standard deviation (ddof 1; NaN for a condition of one trial). Non-finite states are refused from the means
    (NaN or inf in a trial makes its condition's mean so), with no pass of their own over the trials (2400 x 20 x
    256: 5.4 ms of fit_tdr's serial time, AMD EPYC Zen 3).
    """
    _, _, data = layer_states(recording, layer, finite_checked_later=True)  # (from the means, below)
    mean = sum_groups(data, inverse, len(counts)) / counts[:, None, None]
    if not np.isfinite(mean).all():
        refuse_non_finite_squares(data, name="recording", layer=layer, what="condition mean", overflowing="sums",
                                  remedy="the means scale by it")  # fmt: skip
    if not sem:
        return mean, None
    squares = np.zeros_like(mean)  # the trials' squared deviations from their means, a block of trials at a time
    for rows in _row_blocks(len(data), mean[0].size):
        squares += sum_groups((data[rows] - mean[inverse[rows]]) ** 2, inverse[rows], len(counts))
    return mean, _spread(squares, counts)


def _dask_average(
    recording: Recording, layer: str, inverse: np.ndarray, counts: np.ndarray, *, sem: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`_average` of a dask-backed layer, blockwise: the means are the product of the condition
    indicator with the states, summed over chunks of trials (:func:`.blockwise.group_sums`); the spread a second
    pass summing each trial's squared deviation from its condition's mean (two passes, as numpy's std).
    Only (conditions, time, units) arrays come back, on the active dask client if there is one.
    """
    import dask
    import dask.array as da

    x = dask_states(recording, layer)
    mean, finite = dask.compute(group_sums(x, inverse, len(counts), mean=True), da.isfinite(x).all())
    check_finite_layer(finite, layer)
    if not sem:
        return mean, None
    # each chunk of trials meets the means' block of its time steps (dask moves it as data, once per worker)
    means = da.from_array(mean, chunks=(len(counts), *x.chunks[1:]))
    rows = da.from_array(inverse, chunks=(x.chunks[0],))
    deviation = da.blockwise(_squared_deviation, "ntu", x, "ntu", means, "ktu", rows, "n", dtype=x.dtype,
                             concatenate=True)  # fmt: skip
    return mean, _spread(group_sums(deviation, inverse, len(counts)).compute(), counts)


def _spread(squares: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each condition's standard deviation (ddof 1) from its trials' summed squared deviations; NaN for a
    condition of one trial.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts[:, None, None] > 1, np.sqrt(squares / (counts[:, None, None] - 1)), np.nan)


def _squared_deviation(block: np.ndarray, means: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(x - its condition's mean)^2 for a block of trials (``rows``: their conditions)."""
    return (block - means[rows]) ** 2


ROW_BYTES = 2**26  # float64 bytes of the rows converted (or squared deviations formed) at once


def sum_groups(states: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """The float64 sums (group, ...) of the in-memory (stimulus, ...) ``states`` of each group 0..n_groups-1
    (``groups``: each stimulus's group), by sparse indicator products: one read of the states, each group's
    stimuli added in their order (float64 states: the same bits as ``np.add.at``, 10-20x faster: dPCA's 21
    label sets of 24,000 trials x 4 steps x 256 units, 0.2 s against 3.5 s, AMD EPYC). States of another
    dtype are converted ``ROW_BYTES`` at a time (blocks of rows, their sums added), never whole. Where each group
    is one stimulus in order, float64 ``states`` come back as they are (a view: callers do not write into the
    sums). The blockwise twin of a dask array is :func:`.blockwise.group_sums`.
    """
    flat = states.reshape(groups.size, -1)
    if groups.size == n_groups and np.bincount(groups, minlength=n_groups).max() == 1:  # one stimulus per group
        ordered = flat if (groups == np.arange(n_groups)).all() else flat[np.argsort(groups)]
        return np.asarray(ordered, dtype=np.float64).reshape(n_groups, *states.shape[1:])
    if flat.dtype == np.float64:
        return _split_sums(_indicator(groups, n_groups), flat).reshape(n_groups, *states.shape[1:])
    sums = np.zeros((n_groups, flat.shape[1]))
    for rows in _row_blocks(groups.size, flat.shape[1]):
        sums += _indicator(groups[rows], n_groups) @ flat[rows].astype(np.float64)
    return sums.reshape(n_groups, *states.shape[1:])


SPLIT_BYTES = 2**22  # float64 states from which sum_groups's groups are shared out to the library threads


def _split_sums(indicator: Any, flat: np.ndarray) -> np.ndarray:
    """``indicator @ flat`` (a sparse (group, stimulus) indicator, float64 (stimulus, values) states) as a dense
    array; from ``SPLIT_BYTES`` of states, its groups in equal shares on the library threads (:func:`in_shares`):
    each group's sums come from its own stimuli in their order, so the same bits as one product (2400 trials x
    5120 values in 24 groups, AMD EPYC: 9.0-9.3 ms, 4.8-5.6 ms on two threads).
    """
    n_groups = indicator.shape[0]
    if flat.nbytes < SPLIT_BYTES:
        return np.asarray(indicator @ flat)
    sums = np.empty((n_groups, flat.shape[1]))

    def share(groups: slice) -> None:
        sums[groups] = indicator[groups] @ flat

    in_shares(share, n_groups)
    return sums


DENSE_GROUPS = 24  # up to this many groups, the sets' stacked dense indicator (24,000 x 1024 states, one thread,
# AMD EPYC: 21 sets of 16 groups 294 against 497 ms by sparse products per set, of 32 groups 579 against 511 ms,
# 5 sets of 24 groups 114 against 120 ms, 2 sets of 10 groups 36 against 46 ms)


def sum_group_sets(states: np.ndarray, sets: np.ndarray, n_groups: int) -> np.ndarray:
    """The float64 sums (set, group, ...) of the in-memory (stimulus, ...) ``states`` under several sets of
    group labels ``sets`` (set, stimulus) (dPCA's label shuffles). Up to ``DENSE_GROUPS`` groups: one dense
    product with the sets' stacked indicator per block of ``ROW_BYTES`` of stimuli, so the states are read
    once for every set (21 sets of 10 groups, 24,000 x 1024 states: 0.47-0.6 s by :func:`sum_groups` per set,
    which reads them once per set; 0.2 s on one thread, AMD EPYC). More groups: :func:`sum_groups` per set (the
    dense product's flops grow with the groups).

    The values (columns of the flattened states) are split over the libraries' threads, each product on one
    BLAS thread (the same sums as one product: to the bit with OpenBLAS's Haswell kernel, to about 1e-14 relative
    with its SkylakeX one, whose order of additions depends on the product's width). On BLAS's own threads the
    sums took 0.1 s on two, but
    OpenBLAS's idle thread then spins for about 0.1 s on the second core, so the thread pool that followed
    (dPCA's shuffles' fits) ran at one core's speed: 118 ms on one thread, 68 on two, 117-127 right after.
    """
    if n_groups > DENSE_GROUPS:
        return np.stack([sum_groups(states, labels, n_groups) for labels in sets])
    flat = states.reshape(sets.shape[1], -1)
    sums = np.zeros((len(sets) * n_groups, flat.shape[1]))
    splits = np.array_split(np.arange(flat.shape[1]), min(library_threads(), max(1, flat.shape[1] // 64)))
    columns = [slice(split[0], split[-1] + 1) for split in splits]
    with task_pool(len(columns)) as pmap:
        for rows in _row_blocks(sets.shape[1], max(flat.shape[1], len(sets) * n_groups)):
            indicator = _stacked_indicator(sets[:, rows], n_groups)

            def add(part: slice, indicator: np.ndarray = indicator, rows: slice = rows) -> None:
                sums[:, part] += indicator @ flat[rows, part]

            list(pmap(add, columns))
    return sums.reshape(len(sets), n_groups, *states.shape[1:])


def _row_blocks(n_rows: int, values_per_row: int) -> Iterator[slice]:
    """Consecutive slices of rows whose ``values_per_row`` float64 values each take about ``ROW_BYTES``."""
    step = max(1, ROW_BYTES // (8 * max(1, values_per_row)))
    return (slice(start, start + step) for start in range(0, n_rows, step))


def _stacked_indicator(sets: np.ndarray, n_groups: int) -> np.ndarray:
    """The dense (set x group, stimulus) indicator of the stimuli's group labels ``sets`` (set, stimulus)."""
    rows = np.arange(len(sets))[:, None]
    indicator = np.zeros((len(sets), n_groups, sets.shape[1]))
    indicator[rows, sets, np.arange(sets.shape[1])] = 1.0
    return indicator.reshape(-1, sets.shape[1])


def _indicator(groups: np.ndarray, n_groups: int) -> Any:
    """The sparse (group, stimulus) indicator of the stimuli's ``groups``."""
    from scipy.sparse import csr_matrix

    return csr_matrix((np.ones(groups.size), (groups, np.arange(groups.size))), shape=(n_groups, groups.size))


def _conditions(values: list[np.ndarray]) -> tuple[list[tuple], np.ndarray, np.ndarray]:
    """(sorted unique value tuples, index of each row's condition, trials per condition)."""
    rows = list(zip(*[v.tolist() for v in values], strict=True))
    try:
        keys = sorted(set(rows))
    except TypeError:  # values that do not sort together: keep the order of appearance
        keys = list(dict.fromkeys(rows))
    lookup = {key: k for k, key in enumerate(keys)}
    inverse = np.array([lookup[row] for row in rows], dtype=np.intp)
    if not rows:
        raise ShapeError(f"recording: got {describe(rows)}: no trials to average.")
    return keys, inverse, np.bincount(inverse, minlength=len(keys))

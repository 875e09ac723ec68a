"""What fit_encoding reads and checks: model features, neural responses (with repetitions), folds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._validation import (
    check_finite,
    check_grouping,
    check_int,
    check_numeric,
    check_recording,
    check_seed,
    layer_states,
)
from ...errors import ArgumentError, ArgumentTypeError, ShapeError, UnknownNameError, describe
from ...recording import Recording
from .._group_folds import splitter_folds
from .ceiling import HalfMeans, trial_halves


@dataclass
class Responses:
    """Neural responses: their mean over repetitions (stimulus, time, target), the repetitions per stimulus,
    the time coordinate, the stimuli's descriptor values, and ``halves(orders, h)``, the means of each
    order's first and next h repetitions (split-half ceilings).
    """

    mean: np.ndarray
    n_repetitions: int
    times: np.ndarray
    conditions: np.ndarray | None
    halves: HalfMeans

    @property
    def shape(self) -> tuple[int, ...]:
        """The trials' shape, (stimulus, repetition, time, target)."""
        return (self.mean.shape[0], self.n_repetitions, *self.mean.shape[1:])

    @classmethod
    def of_trials(cls, trials: np.ndarray, times: np.ndarray, conditions: np.ndarray | None) -> Responses:
        """Responses whose trials (stimulus, repetition, time, target) are in memory."""
        return cls(trials.mean(axis=1), trials.shape[1], times, conditions, trial_halves(trials))


@dataclass
class Features:
    """One model layer: a reader of (stimulus, unit) states per model time step; for a dask-backed layer whose
    step is larger than a block, ``read_blocks``, a reader of a step that never holds it (:class:`StepBlocks`).
    """

    label: str
    times: np.ndarray
    read: Callable[[int], np.ndarray]
    blocks: list[np.ndarray] | None = None  # a dask-backed layer's blocks of step positions (run as tasks)
    read_blocks: Callable[[int], StepBlocks] | None = None


class StepBlocks:
    """One model time step of a dask-backed layer, never held whole: the features of a dual ridge fit, which
    needs only their Gram matrix across stimuli (or across the conditions' means, where ``groups`` is given).
    ``shape`` is that of the step's (stimulus or condition, unit) states.
    """

    def __init__(self, features: Recording, layer: str, position: int, groups: list[np.ndarray] | None) -> None:
        from ..blockwise import step_states

        self.x = step_states(features, layer, position)
        self.layer, self.groups = layer, groups
        self.shape = (len(self.x) if groups is None else len(groups), int(np.prod(self.x.shape[1:])))

    def gram(self) -> np.ndarray:
        """X X' in float64 from blocks of stimuli (whole stored chunks where they fit): groups of a block's worth
        (``blockwise.BLOCK_BYTES``) held in turn, each multiplied by itself and by the stimuli after it, read in
        blocks of half that. A step of g groups is read (1 + g) / 2 times; blocks of units would read it once per
        block, each read decompressing the stored chunks, which hold every unit. 4000 stimuli x 32,768 float32 units
        in chunks of 512 stimuli, AMD EPYC, 1 thread: 4 groups 12.1 s (reads 3.5 s), 16 groups of a quarter
        block 18.3 s (reads 9.3 s), the step read whole and its Gram matrix 9.9 s. Of the conditions' means:
        M X X' M', M the averaging matrix.
        """
        from ..blockwise import read_values, stimulus_blocks

        n, chunk = len(self.x), self.x.chunks[0][0]
        out = np.empty((n, n))
        for held in stimulus_blocks(n, self.shape[1], chunk, share=1):
            a = read_values(self.x, (held,), self.layer)
            out[held, held] = a @ a.T
            for block in stimulus_blocks(n - held.stop, self.shape[1], chunk, share=2):
                block = slice(held.stop + block.start, held.stop + block.stop)
                out[held, block] = a @ read_values(self.x, (block,), self.layer).T
                out[block, held] = out[held, block].T
        if self.groups is None:
            return out
        means = np.zeros((len(self.groups), n))
        for row, rows in zip(means, self.groups, strict=True):
            row[rows] = 1 / len(rows)
        return means @ out @ means.T


def read_responses(responses: Any, *, layer: str | None, time: Any, descriptor: str | None) -> Responses:
    """Trials (stimulus, repetition, time, target) from a Recording (trials grouped by ``descriptor``) or
    an array (stimulus, target), (stimulus, time, target) or (stimulus, repetition, time, target).
    """
    if isinstance(responses, Recording) and responses.is_dask and descriptor is not None:
        from .blockwise import dask_responses  # repetitions averaged blockwise

        return dask_responses(responses, layer, time, descriptor)
    if isinstance(responses, Recording):
        label, positions, states = layer_states(responses, layer, time=time, name="responses")
        times = np.asarray(responses.times[label])[positions]
        if descriptor is None:
            return Responses.of_trials(states[:, None], times, None)
        values, trials = _group_trials(states, responses.column(descriptor), descriptor)
        return Responses.of_trials(trials, times, values)
    if descriptor is not None:
        raise ArgumentError("descriptor: responses is an array, which has no columns. Pass descriptor=None.")
    array = check_numeric(responses, name="responses")
    shapes = {2: lambda a: a[:, None, None], 3: lambda a: a[:, None], 4: lambda a: a}
    if array.ndim not in shapes or 0 in array.shape:
        raise ShapeError(
            f"responses: got {describe(array)}. Pass (stimulus, target), (stimulus, time, target) or (stimulus, "
            f"repetition, time, target), or a Recording."
        )
    trials = shapes[array.ndim](array)
    # the time selection and finite check of Recordings: (stimulus, time, repetition x target) and back
    as_recording = Recording({"responses": np.moveaxis(trials, 1, 2)})
    _, positions, states = layer_states(as_recording, "responses", time=time, name="responses")
    trials = np.moveaxis(states.reshape(len(states), len(positions), *trials.shape[1:2], -1), 2, 1)
    return Responses.of_trials(trials, positions, None)


def _group_trials(states: np.ndarray, column: np.ndarray, descriptor: str) -> tuple[np.ndarray, np.ndarray]:
    """(sorted condition values, trials (condition, repetition, time, target)); equal repetitions required."""
    values, order, n_reps = repetitions(column, descriptor)
    return values, states[order].reshape(values.size, n_reps, *states.shape[1:])


def repetitions(column: np.ndarray, descriptor: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(sorted condition values, the trials in condition order (stable), repetitions per condition) of a
    descriptor column; the same number of repetitions for every condition required.
    """
    values, inverse, counts = np.unique(check_grouping(column, name=f"descriptor {descriptor!r}"), return_inverse=True,
                                        return_counts=True)  # fmt: skip
    if counts.min() != counts.max():
        raise ShapeError(
            f"responses: the {descriptor!r} conditions have {counts.min()} to {counts.max()} trials. A ceiling and "
            f"fair averages need the same number for each; keep that many per condition (e.g. load_zhang_desimone's "
            f"n_repetitions=)."
        )
    return values, np.argsort(inverse, kind="stable"), int(counts[0])


def read_features(
    features: Any, *, layers: Any, time: Any, descriptor: str | None, conditions: np.ndarray | None
) -> tuple[list[Features], list[np.ndarray] | None]:
    """One reader per layer of the model's Recording (averaged per ``descriptor`` value), or of an array;
    and the rows of each condition (None without a descriptor).
    """
    if not isinstance(features, Recording):
        array = check_numeric(features, name="features")
        if array.ndim not in (2, 3) or 0 in array.shape:
            raise ShapeError(f"features: got {describe(array)}. Pass (stimulus, unit), (stimulus, time, unit) or a "
                             f"Recording.")  # fmt: skip
        if layers is not None or descriptor is not None:
            raise ArgumentError("layers, descriptor: features is an array, which has no layers or columns.")
        features = Recording({"features": array if array.ndim == 3 else array[:, None]})
    check_recording(features, "features")
    names = features.layers if layers is None else [layers] if isinstance(layers, str) else list(layers)
    groups = None if descriptor is None else _feature_groups(features, descriptor, conditions)
    return [_reader(features, features.resolve_layer(name), time, groups) for name in names], groups


def _feature_groups(features: Recording, descriptor: str, conditions: np.ndarray) -> list[np.ndarray]:
    if descriptor not in features.columns:
        raise UnknownNameError(
            f"descriptor: {descriptor!r} is a column of the responses but not of the features. Add it to the model's "
            f"recording (rec.with_metadata({descriptor}=...)) so that stimuli and conditions can be matched."
        )
    column = features.column(descriptor)
    missing = [v for v in conditions.tolist() if v not in set(column.tolist())]
    if missing:
        raise ShapeError(f"descriptor: conditions {missing[:5]} of the responses have no stimulus in the features.")
    return [np.flatnonzero(column == value) for value in conditions]


def _reader(features: Recording, layer: str, time: Any, groups: list[np.ndarray] | None) -> Features:
    positions = features.time_positions(layer, time)

    def read(step: int) -> np.ndarray:
        states = np.asarray(features.get(layer, time=int(positions[step]), flatten=True))
        if states.dtype.kind not in "fc":
            states = states.astype(np.float64)
        check_finite(states, name="features", layer=layer)
        if groups is not None:
            states = np.stack([states[rows].mean(axis=0) for rows in groups])
        return states

    blocks, read_blocks = None, None
    if features.is_dask:
        from .. import blockwise

        n_units = int(np.prod(features.unit_shape(layer)))
        chunks = blockwise.stored_chunks(features, layer, positions)
        blocks = blockwise.time_blocks(features.n_stimuli, n_units, np.arange(len(positions)), chunks=chunks)
        dtype = features.dtypes[layer]
        itemsize = dtype.itemsize if dtype.kind in "fc" else 8  # what read() holds: floats as stored
        if itemsize * features.n_stimuli * n_units > blockwise.BLOCK_BYTES:  # a step larger than a block
            read_blocks = lambda step: StepBlocks(features, layer, int(positions[step]), groups)  # noqa: E731
    return Features(layer, np.asarray(features.times[layer])[positions], read, blocks, read_blocks)


def make_folds(
    n: int, cv: Any, *, seed: Any, stratify: Any = None, groups: Any = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs: an int k gives shuffled k-fold (stratified or grouped when given), a
    scikit-learn splitter or a sequence of (train, test) is used as given.
    """
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    seed = check_seed(seed)
    if isinstance(cv, bool) or not isinstance(cv, int | np.integer):
        splits = _given_splits(cv, n, stratify, groups)
    else:
        k = check_int("cv", cv, minimum=2, maximum=max(2, n // 3))
        if groups is not None:
            splitter: Any = GroupKFold(k, shuffle=True, random_state=seed)
        elif stratify is not None:
            splitter = StratifiedKFold(k, shuffle=True, random_state=seed)
        else:
            splitter = KFold(k, shuffle=True, random_state=seed)
        splits = _given_splits(splitter, n, stratify, groups)
    for i, (train, test) in enumerate(splits):
        if len(test) < 3 or len(train) < 3:
            raise ShapeError(f"cv: fold {i} has {len(train)} training and {len(test)} test stimuli; each needs >= 3.")
    return splits


def _is_pair(value: Any) -> bool:
    return isinstance(value, tuple | list) and len(value) == 2


def _given_splits(cv: Any, n: int, stratify: Any, groups: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    if not isinstance(cv, str) and hasattr(cv, "split"):
        splits = splitter_folds(cv, n, stratify, groups)
    elif not isinstance(cv, str) and isinstance(cv, Sequence) and cv and all(_is_pair(pair) for pair in cv):
        splits = list(cv)
    else:
        raise ArgumentTypeError(
            f"cv: got {describe(cv)}. Pass an int, a scikit-learn splitter or a list of (train, test) index arrays."
        )
    out = []
    for i, (train, test) in enumerate(splits):
        train, test = np.asarray(train), np.asarray(test)
        if (
            train.dtype.kind not in "iu"
            or test.dtype.kind not in "iu"
            or not all(part.ndim == 1 and part.size and part.min() >= 0 and part.max() < n for part in (train, test))
        ):
            raise ShapeError(f"cv: fold {i} is not two arrays of stimulus indices in [0, {n}).")
        if np.intersect1d(train, test).size:
            raise ShapeError(f"cv: fold {i} has stimuli in both its training and its test set.")
        out.append((train, test))
    return out


def stimulus_labels(
    values: Any, name: str, features: Any, groups: list[np.ndarray] | None, n: int
) -> np.ndarray | None:
    """Stratification or grouping labels, one per stimulus (condition): an array, or a features column."""
    if values is None:
        return None
    if isinstance(values, str):
        if not isinstance(features, Recording):
            raise ArgumentError(f"{name}: {values!r} names a column, but the features are an array. Pass the labels.")
        column = features.column(values)
        array = column if groups is None else np.array([column[rows[0]] for rows in groups])
    else:
        array = np.asarray(values)
    if array.ndim != 1 or array.size != n:
        raise ShapeError(f"{name}: got {describe(array)}; pass one value per stimulus ({n}).")
    return check_grouping(array, name=name)

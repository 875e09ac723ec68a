"""Index normalisation shared by in-memory and on-disk recordings."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArgumentError, ArgumentTypeError, describe


def normalize_index(index: Any, n: int, *, name: str) -> slice | np.ndarray:
    """Turn a user index along an axis of length ``n`` into a slice or int array.

    Slices come back with non-negative start/stop and a positive step (others
    become int arrays), so they compose and can be passed to zarr.

    Accepted: ``None`` (everything), an int, a slice, a boolean mask of length
    ``n``, or a sequence/array of ints (negative ints count from the end).
    An int becomes a length-1 int array; callers that drop the axis for a
    scalar index check ``isinstance(index, int)`` themselves.
    """
    if index is None:
        return slice(0, n, 1)
    if isinstance(index, slice):
        start, stop, step = index.indices(n)
        if step > 0:
            return slice(start, stop, step)
        return np.arange(n)[index]  # a negative-step slice has no non-negative slice form
    if isinstance(index, (bool, np.bool_)):
        raise ArgumentTypeError(
            f"{name}: got the boolean {index!r}. Pass an int, a slice, a boolean mask of length {n} or a list of ints."
        )
    if isinstance(index, (int, np.integer)):
        i = int(index)
        if not -n <= i < n:
            raise ArgumentError(
                f"{name}: index {i} is out of range for an axis of length {n}. Pass an index from {-n} to {n - 1}."
            )
        return np.array([i % n], dtype=np.intp)
    try:
        arr = np.asarray(index)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ArgumentTypeError(f"{name}: cannot use {describe(index)} as an index.") from exc
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ArgumentError(
                f"{name}: a boolean mask must have shape ({n},), got {describe(arr)}. Pass one True/False per element."
            )
        return np.flatnonzero(arr)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ArgumentTypeError(
            f"{name}: got {describe(index)}. Pass an int, a slice, a boolean mask of length {n} or a 1-d list of ints."
        )
    arr = arr.astype(np.intp, copy=False)
    bad = (arr < -n) | (arr >= n)
    if bad.any():
        raise ArgumentError(
            f"{name}: indices {arr[bad][:5].tolist()} are out of range for an axis of length {n}. "
            f"Pass indices from {-n} to {n - 1}."
        )
    return np.where(arr < 0, arr + n, arr)


def as_positions(index: slice | np.ndarray, n: int) -> np.ndarray:
    """Integer positions selected by a normalized index."""
    if isinstance(index, slice):
        return np.arange(n)[index]
    return index


def compose(outer: slice | np.ndarray, inner: slice | np.ndarray, n: int) -> slice | np.ndarray:
    """Index ``inner`` applied after ``outer`` (both normalized; ``n`` = base length)."""
    if isinstance(outer, slice) and isinstance(inner, slice):
        positions = range(n)[outer][inner]  # both have positive steps, so this one does too
        return slice(positions.start, positions.stop, positions.step)
    return as_positions(outer, n)[inner]


def as_slice_if_contiguous(index: slice | np.ndarray) -> slice | np.ndarray:
    """A step-1 increasing run of ints as a slice (faster reads, numpy views)."""
    if isinstance(index, slice) or index.size == 0:
        return index
    start = int(index[0])
    if index.size == 1 or np.array_equal(index, np.arange(start, start + index.size)):
        return slice(start, start + index.size, 1)
    return index


def index_length(index: slice | np.ndarray, n: int) -> int:
    if isinstance(index, slice):
        return len(range(n)[index])
    return int(index.size)

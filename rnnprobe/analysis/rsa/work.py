"""The arrays a worker of :func:`.compute._by_blocks_of_steps` reuses from block to block of time steps."""

from __future__ import annotations

from typing import Any

import numpy as np


class Work:
    """A worker's arrays for its blocks of steps, each allocated once (at the most steps asked) and reused:
    fresh arrays of a few MB per block were mapped by the allocator at each use and their pages faulted in
    (crossnobis, 92 conditions x 4 runs x 50 steps x 512 units in blocks of 13 steps: 7,500 page faults, 17 of
    72 ms per call, AMD EPYC; a first correlation RDM movie of 92 x 50 x 512: 2027 page faults, 924 since).
    ``host``: float64 (condition, time, unit) arrays, in the order of the sums they are made from; ``out``:
    (time, ...) arrays of a numpy backend's results (in its ``dtype``, or another asked), or None for another
    backend (a device's arrays come from its own allocator).
    """

    def __init__(self, numpy: bool, dtype: str = "float64") -> None:
        self.numpy, self.dtype = numpy, dtype
        self.arrays: dict[tuple, np.ndarray] = {}

    def host(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A float64 array of ``shape`` (condition, time, unit)."""
        return self._block_array(name, tuple(shape), 1, "float64")

    def out(self, name: str, shape: tuple[int, ...], dtype: Any = None) -> np.ndarray | None:
        """An array of ``shape`` (time, ...) in ``dtype`` (by default the backend's) for a numpy backend, else
        None.
        """
        return self._block_array(name, tuple(shape), 0, np.dtype(dtype or self.dtype).name) if self.numpy else None

    def _block_array(self, name: str, shape: tuple[int, ...], axis: int, dtype: str) -> np.ndarray:
        """The first ``shape[axis]`` steps (along ``axis``) of the worker's array ``name``."""
        key = (name, axis, shape[:axis] + shape[axis + 1 :], dtype)
        if key not in self.arrays or self.arrays[key].shape[axis] < shape[axis]:
            self.arrays[key] = np.empty(shape, dtype=dtype)
        return self.arrays[key][(slice(None),) * axis + (slice(shape[axis]),)]

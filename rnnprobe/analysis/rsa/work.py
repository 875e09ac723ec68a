"""The arrays a worker of :func:`.compute._by_blocks_of_steps` reuses from block to block of time steps, and
from call to call (:func:`kept_works`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..parallel import Shelf


class Work:
    """A worker's arrays for its blocks of steps, each allocated once (at the most steps asked) and reused:
    fresh arrays of a few MB per block were mapped by the allocator at each use and their pages faulted in
    (crossnobis, 92 conditions x 4 runs x 50 steps x 512 units in blocks of 13 steps: 7,500 page faults, 17 of
    72 ms per call, AMD EPYC; a first correlation RDM movie of 92 x 50 x 512: 2027 page faults, 924 since).
    ``host``: float64 (condition, time, unit) arrays, in the order of the sums they are made from; ``out``:
    (time, ...) arrays of a numpy backend's results (in its ``dtype``, or another asked), or None for another
    backend (a device's arrays come from its own allocator). Their values are scratch: every use writes an
    array before it reads it, and none is ever handed to the caller as a result.
    """

    def __init__(self, numpy: bool, dtype: str = "float64") -> None:
        self.numpy, self.dtype = numpy, dtype
        self.arrays: dict[tuple, np.ndarray] = {}

    @property
    def nbytes(self) -> int:
        """The bytes of its arrays."""
        return sum(array.nbytes for array in self.arrays.values())

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


KEEP_BYTES = 2**26  # the idle workers' arrays kept for the next call: at most 64 MiB in all (8 MiB until the
# fifty-second session: a single crossnobis RDM of 600 conditions in 2 runs, 13.6 MB of arrays, faulted 3278 pages
# in at each call, 17.3 against 11.0 ms with them kept; a correlation RDM of 1000 x 1024 28.7 against 23.9 ms)
KEEP_WORKS = 8  # and at most this many workers' arrays

_SHELF = Shelf([])  # workers' arrays no call is using, kept for the next


@contextlib.contextmanager
def kept_works(kind: type[Work], numpy: bool, dtype: str) -> Iterator[Callable[[], Work]]:
    """A function giving the calling thread its ``kind(numpy, dtype)`` (a :class:`Work`) for this call: one kept idle
    from an earlier call where there is one, else a new one; afterwards each is kept for the next call, the idle
    ones holding at most ``KEEP_BYTES`` (``KEEP_WORKS`` of them; those given back longest ago go first). A
    correlation RDM movie of 92 conditions x 50 steps x 512 units mapped and faulted in 1.76 MB of new Gram matrices
    and outer products per call (430 page faults, about 0.8 of 11.3 ms on one thread, AMD EPYC). A kept array is
    lent to one call at a time, never to two threads at once, and its values are never a result (:class:`Work`).
    """
    works: dict[int, Work] = {}

    def mine() -> Work:
        thread = threading.get_ident()
        if thread not in works:
            works[thread] = _take(kind, numpy, dtype)
        return works[thread]

    try:
        yield mine
    finally:
        for work in works.values():
            _give_back(work)


def _take(kind: type[Work], numpy: bool, dtype: str) -> Work:
    """An idle ``kind(numpy, dtype)``, taken off the shelf, else a new one."""
    with _SHELF.lock:
        for i, work in enumerate(_SHELF.idle):
            if type(work) is kind and (work.numpy, work.dtype) == (numpy, dtype):
                return _SHELF.idle.pop(i)
    return kind(numpy, dtype)


def _give_back(work: Work) -> None:
    """Keep ``work`` idle for the next call (unless it alone holds more than KEEP_BYTES), dropping the idle ones
    given back longest ago until they hold at most KEEP_BYTES and number at most KEEP_WORKS.
    """
    if work.nbytes > KEEP_BYTES:
        return
    with _SHELF.lock:
        idle = _SHELF.idle
        idle.append(work)
        while len(idle) > KEEP_WORKS or sum(kept.nbytes for kept in idle) > KEEP_BYTES:
            idle.pop(0)

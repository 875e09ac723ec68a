"""A step's blocks of stimuli kept in files of a temporary folder, for iterative fits that read the step many times.

Logistic regression read in blocks of stimuli (:mod:`._logistic_rows`) passes over a step hundreds of times. From a
store, each pass decompresses every stored chunk of the step (here: 0.28 s of a 0.45 s pass over 20,000 stimuli x
2048 float32 units, whose Hessian product takes 0.1 s). The first pass writes the values it reads to a file (float64,
as read), and once the centre is known, a pass over that file writes the values centred in float32 (the conjugate
gradients' products); later passes read the files, from the operating system's page cache where it holds them.
The process holds a block at a time, as before. The folder is the dask worker's local directory where there is one,
else the system's temporary folder; it is removed when the fit ends (or fails). Where that disk has less free space
than twice the files' size, nothing is kept and every pass reads the store.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


class Spill:
    """The blocks of a step of ``p`` values per stimulus in ``folder``: as read (float64) and centred (float32)."""

    def __init__(self, folder: Path, p: int) -> None:
        self.p, self.centre = p, None
        self.paths = dict(zip(self.DTYPES, (folder / "values.f8", folder / "centred.f4"), strict=True))
        for path in self.paths.values():
            path.touch()

    DTYPES = (np.float64, np.float32)  # the values as read, and centred

    @classmethod
    def size(cls, n: int, p: int) -> int:
        """The bytes of the files of ``n`` stimuli x ``p`` values."""
        return n * p * sum(np.dtype(dtype).itemsize for dtype in cls.DTYPES)

    def keep(self, block: slice, values: np.ndarray) -> None:
        """Write the block's values (float64, as read) in their place."""
        self._write(np.float64, block, values)

    def centred(self, centre: np.ndarray, blocks: list[slice]) -> None:
        """Write every block's values minus ``centre`` in float32, from the kept values."""
        self.centre = centre
        for block in blocks:
            self._write(np.float32, block, (self._read(np.float64, block) - centre).astype(np.float32))

    def read(self, block: slice, dtype: type) -> np.ndarray:
        """The block's values minus the centre, in float64 (from the values as read) or float32."""
        if dtype is np.float32:
            return self._read(np.float32, block)
        return self._read(np.float64, block) - self.centre

    def _write(self, dtype: type, block: slice, values: np.ndarray) -> None:
        with open(self.paths[dtype], "r+b") as file:
            file.seek(block.start * self.p * np.dtype(dtype).itemsize)
            file.write(memoryview(np.ascontiguousarray(values, dtype=dtype)))

    def _read(self, dtype: type, block: slice) -> np.ndarray:
        size = np.dtype(dtype).itemsize
        count = (block.stop - block.start) * self.p
        values = np.fromfile(self.paths[dtype], dtype=dtype, count=count, offset=block.start * self.p * size)
        return values.reshape(-1, self.p)


@contextlib.contextmanager
def spill_folder(n_bytes: int) -> Iterator[Path | None]:
    """A temporary folder for ``n_bytes`` of files, removed on exit: in the dask worker's local directory, or the
    system's temporary folder; None where that disk's free space is less than twice ``n_bytes``.
    """
    parent = _local_directory()
    if shutil.disk_usage(parent).free < 2 * n_bytes:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="rnnprobe-spill-", dir=parent) as folder:
        yield Path(folder)


def _local_directory() -> str:
    """The dask worker's local directory (in a worker), else the system's temporary folder."""
    try:
        from distributed import get_worker

        return get_worker().local_directory
    except (ImportError, ValueError):  # (no dask.distributed, or not in a worker)
        return tempfile.gettempdir()

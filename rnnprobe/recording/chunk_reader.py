"""A stored layer read block by block wherever dask runs the reads, never as zeros it could not find.

zarr reads a chunk that is not there as the array's fill value: a worker on a machine where the store's
folder is not mounted (or mounted elsewhere), or a worker whose working folder is not the caller's when the
store was opened by a relative path, got zeros in place of the states, without an error (found running the
command line on a scheduler and workers started by ``dask worker`` in folders of their own). rnnprobe's
stores write every chunk (``write_empty_chunks``), so a missing chunk file is always an error: the reader
below opens the store by its absolute path, and before each read checks that the store is there and that
every chunk file the read touches is.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ArgumentError, StoreFormatError


def unreachable(path: str | Path) -> ArgumentError:
    """The error for a store folder that this process (a dask worker) cannot see."""
    return ArgumentError(
        f"store: the worker on {os.uname().nodename} cannot reach {str(path)!r}. Put the store on a file system "
        f"every worker shares, at the same path."
    )


class StoredLayer:
    """One stored array of a zarr store (``root``: the store's folder, ``key``: the array's path in it) as an
    array-like for ``dask.array.from_array``: shape, dtype, ndim and ``__getitem__`` of basic selections.
    It pickles as its path, and each process opens the array at its first read.
    """

    def __init__(self, array: Any) -> None:
        self.root = Path(array.store.root).absolute()
        self.key = str(array.path)
        self.shape, self.dtype, self.ndim = tuple(array.shape), np.dtype(array.dtype), len(array.shape)
        self.chunks = tuple(array.chunks)
        self.metadata = array.metadata  # its chunk key encoding names the chunk files
        self._array: Any = array

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_array": None}

    def __getitem__(self, selection: Any) -> np.ndarray:
        if not (self.root / self.key / "zarr.json").is_file():
            raise unreachable(self.root)
        missing = self._missing_chunks(selection)
        if missing:
            raise StoreFormatError(
                f"store {str(self.root)!r}: {len(missing)} chunk file(s) of {self.key} that a read needs are not "
                f"there (first: {missing[0]}). The data there cannot be recovered from this store; record or save "
                f"it again."
            )
        if self._array is None:
            import zarr

            self._array = zarr.open_array(str(self.root / self.key), mode="r")
        return np.asarray(self._array[selection])

    def _missing_chunks(self, selection: Any) -> list[str]:
        """The chunk files (relative to the array's folder) that ``selection`` (slices, one per axis at most)
        touches and the store lacks.
        """
        selection = selection if isinstance(selection, tuple) else (selection,)
        ranges = []
        for axis, (size, chunk) in enumerate(zip(self.shape, self.chunks, strict=True)):
            part = selection[axis] if axis < len(selection) else slice(None)
            start, stop, _ = part.indices(size) if isinstance(part, slice) else (int(part), int(part) + 1, 1)
            ranges.append(range(start // chunk, -(-stop // chunk)) if stop > start else range(0))
        folder = self.root / self.key
        keys = (self.metadata.encode_chunk_key(coords) for coords in itertools.product(*ranges))
        return [key for key in keys if not (folder / key).is_file()]


def dask_layer(array: Any, *, chunks: Any = None, name: str | None = None) -> Any:
    """A stored zarr array as a dask array read through :class:`StoredLayer` (``chunks``: dask's, default the
    array's own).
    """
    import dask.array as da

    layer = StoredLayer(array)
    return da.from_array(layer, chunks=chunks or layer.chunks, name=name or False, lock=False, fancy=False,
                         meta=np.empty((0,) * layer.ndim, dtype=layer.dtype))  # fmt: skip

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
        selection = selection if isinstance(selection, tuple) else (selection,)
        parts = [selection[axis] if axis < len(selection) else slice(None) for axis in range(self.ndim)]
        check_chunk_files(self.root, self.key, self.metadata, parts)
        if self._array is None:
            import zarr

            self._array = zarr.open_array(str(self.root / self.key), mode="r")
        return np.asarray(self._array[selection])


def check_chunk_files(root: Path, key: str, metadata: Any, parts: list[Any]) -> None:
    """Refuse a read of array ``key`` of the store at ``root`` at ``parts`` (one slice, integer or integer
    positions per axis) whose chunks are not all there: the store's folder (`ArgumentError`, as a worker that
    cannot reach it) or a chunk file (`StoreFormatError`). ``metadata``: the array's zarr metadata (its shape,
    chunks and chunk key encoding).
    """
    folder = root / key
    if not (folder / "zarr.json").is_file():
        raise unreachable(root)
    shape, chunks = metadata.shape, metadata.chunk_grid.chunk_shape
    chunk_ids = [_chunk_ids(part, size, chunk) for part, size, chunk in zip(parts, shape, chunks, strict=True)]
    keys = (metadata.encode_chunk_key(coords) for coords in itertools.product(*chunk_ids))
    missing = [name for name in keys if not (folder / name).is_file()]
    if missing:
        raise StoreFormatError(
            f"store {str(root)!r}: {len(missing)} chunk file(s) of {key} that a read needs are not there (first: "
            f"{missing[0]}). The data there cannot be recovered from this store; record or save it again."
        )


def check_zarr_read(array: Any, stimuli: Any, time: Any) -> None:
    """:func:`check_chunk_files` for a read of ``array`` (a zarr array of a local store, shape (stimulus, time,
    *units)) at ``stimuli`` and ``time`` (slices or integer positions); other stores are not checked.
    """
    root = getattr(getattr(array, "store", None), "root", None)
    if root is None:
        return
    parts = [stimuli, time] + [slice(None)] * (len(array.shape) - 2)
    check_chunk_files(Path(root).absolute(), str(array.path), array.metadata, parts)


def _chunk_ids(part: Any, size: int, chunk: int) -> Any:
    """The indices of the chunks (of ``chunk`` elements along an axis of ``size``) that ``part`` reads: a slice,
    an integer or integer positions.
    """
    if isinstance(part, slice):
        start, stop, step = part.indices(size)
        if step == 1:
            return range(start // chunk, -(-stop // chunk)) if stop > start else range(0)
        part = np.arange(start, stop, step)
    return np.unique(np.asarray(part, dtype=np.int64).reshape(-1) % size // chunk).tolist()


def dask_layer(array: Any, *, chunks: Any = None, name: str | None = None) -> Any:
    """A stored zarr array as a dask array read through :class:`StoredLayer` (``chunks``: dask's, default the
    array's own).
    """
    import dask.array as da

    layer = StoredLayer(array)
    return da.from_array(layer, chunks=chunks or layer.chunks, name=name or False, lock=False, fancy=False,
                         meta=np.empty((0,) * layer.ndim, dtype=layer.dtype))  # fmt: skip

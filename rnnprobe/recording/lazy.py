"""Read-on-demand views of on-disk (stimulus, time, *units) arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RnnprobeError, StoreFormatError
from .chunk_reader import check_zarr_read, dask_layer
from .indexing import as_slice_if_contiguous, compose, index_length


class LazyArray:
    """A selection of an on-disk (stimulus, time, *units) array, read only when asked.

    Selections compose without reading anything; ``np.asarray(view)`` or
    ``view.read()`` reads just the chunks the selection touches.

    Parameters
    ----------
    base : zarr.Array
        The stored array, shape (stimulus, time, *units).
    stimuli, time : slice or ndarray of int, optional
        Normalized selections into ``base`` along its first two axes.
    unit_shape : tuple of int, optional
        Reshape the units to this (same size), e.g. ``(n_units,)`` to flatten.
    name : str, optional
        The layer, named in the error when a chunk fails its checksum.
    origin : Path, optional
        The store folder, for a ``base`` that does not know it (a dask array over the store's arrays).
    stored_steps : int, optional
        The time steps of the store's chunks, for a ``base`` that does not know them (a dask array over
        the store's arrays); see :meth:`time_chunk_ids`.

    A ``base`` that is a dask array is read by computing the selection (on the active
    ``dask.distributed`` client when there is one); :meth:`dask` gives the selection as a dask array.
    """

    def __init__(
        self,
        base: Any,
        stimuli: slice | np.ndarray | None = None,
        time: slice | np.ndarray | None = None,
        unit_shape: tuple[int, ...] | None = None,
        *,
        name: str | None = None,
        origin: Path | None = None,
        stored_steps: int | None = None,
    ) -> None:
        self.base = base
        self.name = name
        self.origin = origin
        self.stored_steps = stored_steps
        n_stim, n_time = base.shape[:2]
        self._stimuli = slice(0, n_stim, 1) if stimuli is None else stimuli
        self._time = slice(0, n_time, 1) if time is None else time
        base_units = tuple(base.shape[2:])
        self._unit_shape = base_units if unit_shape is None else tuple(unit_shape)
        if int(np.prod(self._unit_shape)) != int(np.prod(base_units)):
            raise ValueError(f"cannot reshape units {base_units} to {self._unit_shape}")

    @property
    def shape(self) -> tuple[int, ...]:
        n_stim, n_time = self.base.shape[:2]
        return (
            index_length(self._stimuli, n_stim),
            index_length(self._time, n_time),
            *self._unit_shape,
        )

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.base.dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def take(
        self,
        stimuli: slice | np.ndarray | None = None,
        time: slice | np.ndarray | None = None,
    ) -> LazyArray:
        """Compose a further (normalized) selection; reads nothing."""
        n_stim, n_time = self.base.shape[:2]
        new_stim = self._stimuli if stimuli is None else compose(self._stimuli, stimuli, n_stim)
        new_time = self._time if time is None else compose(self._time, time, n_time)
        return self._view(new_stim, new_time, self._unit_shape)

    def reshape_units(self, unit_shape: tuple[int, ...]) -> LazyArray:
        return self._view(self._stimuli, self._time, unit_shape)

    def _view(self, stimuli: Any, time: Any, unit_shape: tuple[int, ...]) -> LazyArray:
        return LazyArray(self.base, stimuli, time, unit_shape, name=self.name, origin=self.origin,
                         stored_steps=self.stored_steps)  # fmt: skip

    def time_chunk_ids(self) -> np.ndarray:
        """For each selected time step, the index of the stored chunk along time that holds it: a read of some
        steps decompresses every chunk they touch. The store's chunks (``stored_steps``, or a zarr base's
        own), else a dask base's chunks along time.
        """
        n_time = self.base.shape[1]
        steps = np.arange(n_time)[self._time]
        size = self.stored_steps
        if size is None and not self.is_dask:
            size = int(self.base.chunks[1])
        if size is not None:
            return steps // size
        edges = np.cumsum(self.base.chunks[1])  # a dask array's chunks: a tuple of sizes per axis
        return np.searchsorted(edges, steps, side="right")

    @property
    def is_dask(self) -> bool:
        """Whether the base is a dask array (read by computing)."""
        return hasattr(self.base, "dask") and hasattr(self.base, "compute")

    def dask(self) -> Any:
        """The selection as a dask array (from the store's chunks when the base is a zarr array)."""
        base = self.base if self.is_dask else dask_layer(self.base)
        stim = as_slice_if_contiguous(self._stimuli)
        time = as_slice_if_contiguous(self._time)
        out = base[stim] if isinstance(stim, slice) else base[np.asarray(stim)]
        out = out[:, time] if isinstance(time, slice) else out[:, np.asarray(time)]
        return out.reshape(out.shape[:2] + self._unit_shape)

    def read(self) -> np.ndarray:
        """Read the selection into memory."""
        stim = as_slice_if_contiguous(self._stimuli)
        time = as_slice_if_contiguous(self._time)
        try:
            if self.is_dask:
                return np.asarray(self.dask().compute())
            check_zarr_read(self.base, stim, time)  # (zarr reads a chunk it cannot find as zeros)
            data = self.base[stim, time] if isinstance(stim, slice) and isinstance(time, slice) else (
                self.base.oindex[stim, time])  # fmt: skip
        except RnnprobeError:
            raise  # a derived lazy layer's own refusal (e.g. non-finite states), not a damaged store
        except (ValueError, RuntimeError, OSError) as exc:
            positions = np.arange(self.base.shape[0])[self._stimuli]
            span = f"{positions.min()}..{positions.max()}" if positions.size else "none"
            raise StoreFormatError(
                f"store {self.source()!s}: layer {self.name!r}, stimuli {span}: a chunk could not be read "
                f"({type(exc).__name__}: {exc}). The store is damaged there; record or save it again."
            ) from None
        data = np.asarray(data)
        return data.reshape(data.shape[:2] + self._unit_shape)

    def source(self) -> Path | None:
        """The folder of the zarr store this array reads from (None if not a local store)."""
        if self.origin is not None:
            return Path(self.origin).resolve()
        root = getattr(getattr(self.base, "store", None), "root", None)
        return Path(root).resolve() if root is not None else None

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self.read()
        return data if dtype is None else data.astype(dtype, copy=False)

    def __repr__(self) -> str:
        return f"LazyArray(shape={self.shape}, dtype={self.dtype}, store={self.source()!s})"

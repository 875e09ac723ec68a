"""`Recording`: hidden states over time for a set of stimuli, per layer.

Every analysis in rnnprobe reads a `Recording`. For each recorded layer (or
state) it holds an array of shape ``(stimulus, time, *unit_shape)``; next to
them a table of per-stimulus metadata (label, condition, image id, ...), a time
coordinate per layer and a provenance record. Arrays live in memory
(``numpy``) or on disk in a chunked zarr store, read lazily.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import (
    ArgumentError,
    ArgumentTypeError,
    ShapeError,
    UnknownNameError,
    describe,
    format_choices,
)
from .indexing import as_positions, as_slice_if_contiguous, normalize_index
from .lazy import LazyArray

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import rsatoolbox.data
    import xarray as xr

__all__ = ["Recording", "concat"]

ArrayLike = Any


def _readonly(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _as_state_array(name: str, value: Any) -> np.ndarray | LazyArray:
    if isinstance(value, LazyArray):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise ArgumentTypeError(
            f"states[{name!r}]: got {describe(value)}. Pass a numpy array or torch tensor of "
            f"shape (stimulus, time, *units)."
        )
    if value.dtype.kind not in "biuf":
        raise ArgumentTypeError(
            f"states[{name!r}]: got {describe(value)}. States must be numbers (bool, int or float); convert "
            f"them with value.astype(float)."
        )
    if value.ndim < 2:
        raise ShapeError(
            f"states[{name!r}]: got {describe(value)}. A recorded state needs at least the "
            f"(stimulus, time) axes; add a time axis of length 1 with value[:, None]."
        )
    return _readonly(value)


def _take(array: np.ndarray, stimuli: slice | np.ndarray, time: slice | np.ndarray) -> np.ndarray:
    """Select along (stimulus, time): a read-only view where both are contiguous, else a copy."""
    stimuli, time = as_slice_if_contiguous(stimuli), as_slice_if_contiguous(time)
    if isinstance(stimuli, slice) and isinstance(time, slice):
        return array[stimuli, time]
    return array[stimuli][:, time]


def _as_column(values: Any) -> np.ndarray:
    """A 1-d column; a sequence mixing strings with other values stays an object column (numpy would
    turn ``[1, "a"]`` into the strings ``["1", "a"]``).
    """
    if not isinstance(values, np.ndarray) and isinstance(values, (list, tuple)):
        kinds = {isinstance(v, str) for v in values}
        if len(kinds) == 2:
            column = np.empty(len(values), dtype=object)
            column[:] = list(values)
            return column
    return np.asarray(values)


def normalize_metadata(metadata: Any, n_stimuli: int) -> dict[str, np.ndarray]:
    """Per-stimulus metadata as a dict of 1-d numpy columns of length ``n_stimuli``.

    Accepts ``None``, a mapping of column name to sequence, or a pandas
    DataFrame. Object columns holding only strings become numpy unicode columns.
    """
    if metadata is None:
        return {}
    if hasattr(metadata, "columns") and hasattr(metadata, "to_numpy"):  # pandas DataFrame
        if len(set(metadata.columns)) != len(metadata.columns):
            raise ArgumentError(f"metadata: the DataFrame has repeated column names {list(metadata.columns)}.")
        metadata = {c: metadata[c].to_numpy() for c in metadata.columns}
    if not isinstance(metadata, Mapping):
        raise ArgumentTypeError(
            f"metadata: got {describe(metadata)}. Pass a dict of column name -> sequence "
            f"(one value per stimulus) or a pandas DataFrame."
        )
    columns: dict[str, np.ndarray] = {}
    for key, values in metadata.items():
        if not isinstance(key, str):
            raise ArgumentTypeError(f"metadata: column names must be strings, got {key!r}.")
        if not isinstance(key, str):
            raise ArgumentTypeError(
                f"metadata: column names must be strings, got {key!r} ({type(key).__name__}). Rename the column "
                f"(e.g. frame.rename(columns=str)), keeping the names distinct."
            )
        if hasattr(values, "detach") and hasattr(values, "cpu"):
            values = values.detach().cpu().numpy()
        column = _as_column(values)
        if column.dtype == object and column.size and all(isinstance(v, str) for v in column):
            column = column.astype(str)
        if column.ndim != 1 or column.shape[0] != n_stimuli:
            raise ShapeError(
                f"metadata[{key!r}]: got {describe(column)}, but there are {n_stimuli} stimuli. "
                f"Pass one value per stimulus (a 1-d sequence of length {n_stimuli})."
            )
        columns[key] = _readonly(column)
    return columns


class Recording:
    """Hidden states over time for a set of stimuli, per layer.

    Parameters
    ----------
    states : mapping of str to array
        Layer (or state) name -> array of shape ``(stimulus, time, *units)``.
        All layers share the stimulus axis; time steps and unit shapes may differ.
    metadata : dict of sequences or pandas.DataFrame, optional
        Per-stimulus columns (label, condition, image id, ...).
    times : array or mapping of str to array, optional
        Time coordinate per layer (default ``0, 1, ..., T-1``). One array
        applies to every layer with that many time steps.
    provenance : dict, optional
        JSON-serialisable facts about how the states were made (model class,
        layer names, rnnprobe version, date, seed, ...).

    Examples
    --------
    >>> import numpy as np
    >>> rec = Recording({"h": np.zeros((4, 3, 2))}, metadata={"label": [0, 1, 0, 1]})
    >>> rec
    <Recording: 4 stimuli, 1 layer, in memory>
      h  (4, 3, 2)  float64  time 0..2
      metadata: label (int64)
    >>> rec.select(where={"label": 1}).get("h", time=-1).shape
    (2, 2)
    """

    def __init__(
        self,
        states: Mapping[str, ArrayLike],
        *,
        metadata: Any = None,
        times: Any = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(states, Mapping):
            raise ArgumentTypeError(
                f"states: got {describe(states)}. Pass a dict of layer name -> array of shape (stimulus, time, *units)."
            )
        if not states:
            raise ArgumentError("states: got an empty mapping. A Recording needs at least one layer.")
        for key in states:
            if not isinstance(key, str) or not key:
                raise ArgumentTypeError(
                    f"states: layer names must be non-empty strings, got {key!r} ({type(key).__name__}). Name "
                    f"each layer with a str (e.g. str(key)), keeping the names distinct."
                )
        arrays = {k: _as_state_array(k, v) for k, v in states.items()}
        n_stim = {name: a.shape[0] for name, a in arrays.items()}
        if len(set(n_stim.values())) != 1:
            raise ShapeError(
                f"states: layers disagree on the number of stimuli: {n_stim}. Every layer must "
                f"have one row per stimulus along axis 0."
            )
        self._states: dict[str, np.ndarray | LazyArray] = arrays
        self._n_stimuli = next(iter(n_stim.values()))
        self._metadata = normalize_metadata(metadata, self._n_stimuli)
        self._times = self._normalize_times(times)
        provenance = dict(provenance or {})
        try:
            json.dumps(provenance)
        except TypeError as exc:
            raise ArgumentTypeError(
                f"provenance: must be JSON-serialisable ({exc}). Convert values to str/int/float/list/dict."
            ) from exc
        self._provenance = provenance

    def _normalize_times(self, times: Any) -> dict[str, np.ndarray]:
        result = {}
        for name, array in self._states.items():
            n_time = array.shape[1]
            if times is None:
                value = np.arange(n_time)
            elif isinstance(times, Mapping):
                value = times.get(name, np.arange(n_time))
            else:
                value = times
            value = np.asarray(value)
            if value.shape != (n_time,):
                where = f"times[{name!r}]" if isinstance(times, Mapping) else "times"
                raise ShapeError(
                    f"{where}: got {describe(value)}, but layer {name!r} has {n_time} time steps. "
                    f"Pass one time value per step (a dict of layer -> times when layers differ)."
                )
            result[name] = _readonly(value)
        return result

    # ------------------------------------------------------------------ properties
    @property
    def layers(self) -> list[str]:
        """Names of the recorded layers/states, in recording order."""
        return list(self._states)

    @property
    def n_stimuli(self) -> int:
        """Number of stimuli (rows of every layer's array)."""
        return self._n_stimuli

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Layer -> array shape ``(stimulus, time, *units)``."""
        return {name: tuple(a.shape) for name, a in self._states.items()}

    @property
    def dtypes(self) -> dict[str, np.dtype]:
        """Layer -> dtype."""
        return {name: np.dtype(a.dtype) for name, a in self._states.items()}

    @property
    def times(self) -> dict[str, np.ndarray]:
        """Layer -> time coordinate (one value per time step)."""
        return dict(self._times)

    @property
    def columns(self) -> list[str]:
        """Names of the per-stimulus metadata columns."""
        return list(self._metadata)

    @property
    def metadata(self) -> pd.DataFrame:
        """Per-stimulus metadata as a new pandas DataFrame (one row per stimulus).

        A copy: assigning to it does not change the recording; use :meth:`with_metadata`.
        """
        import pandas as pd

        return pd.DataFrame({k: np.array(v) for k, v in self._metadata.items()}, index=np.arange(self._n_stimuli))

    @property
    def provenance(self) -> dict[str, Any]:
        """How the recording was made (a copy)."""
        return json.loads(json.dumps(self._provenance))

    @property
    def is_lazy(self) -> bool:
        """True if any layer is read from disk on demand."""
        return any(isinstance(a, LazyArray) for a in self._states.values())

    @property
    def nbytes(self) -> int:
        """Total size of the state arrays in bytes."""
        return sum(int(np.prod(a.shape)) * np.dtype(a.dtype).itemsize for a in self._states.values())

    def unit_shape(self, layer: str) -> tuple[int, ...]:
        """Shape of one time step of ``layer`` for one stimulus."""
        return tuple(self._states[self.resolve_layer(layer)].shape[2:])

    def column(self, name: str) -> np.ndarray:
        """One metadata column as a read-only numpy array."""
        if name not in self._metadata:
            raise UnknownNameError(
                f"column: {name!r} is not a metadata column. Available: "
                f"{format_choices(self._metadata)}. Pass one of these, or add it with "
                f"metadata=... when recording."
            )
        return self._metadata[name]

    def __len__(self) -> int:
        return self._n_stimuli

    def __contains__(self, layer: object) -> bool:
        return layer in self._states

    def __getitem__(self, layer: str) -> np.ndarray:
        return self.get(layer)

    def __repr__(self) -> str:
        where = "lazy, on disk" if self.is_lazy else "in memory"
        n_layers = len(self._states)
        lines = [f"<Recording: {self._n_stimuli} stimuli, {n_layers} layer{'s' * (n_layers != 1)}, {where}>"]
        width = max(len(n) for n in self._states)
        shape_width = max(len(str(tuple(a.shape))) for a in self._states.values())
        for name, array in self._states.items():
            t = self._times[name]
            span = f"{t[0]}..{t[-1]}" if t.size else "(empty)"
            lines.append(
                f"  {name:<{width}}  {tuple(array.shape)!s:<{shape_width}}  {np.dtype(array.dtype)}  time {span}"
            )
        if self._metadata:
            cols = ", ".join(f"{k} ({v.dtype})" for k, v in self._metadata.items())
            lines.append(f"  metadata: {cols}")
        return "\n".join(lines)

    # ------------------------------------------------------------------ selection
    def resolve_layer(self, layer: str | None = None) -> str:
        """The name of a recorded layer, checked; ``None`` names the only layer of a one-layer recording.

        Examples
        --------
        >>> import numpy as np
        >>> Recording({"h": np.zeros((2, 3, 4))}).resolve_layer()
        'h'
        """
        if layer is None:
            if len(self._states) != 1:
                raise ArgumentError(
                    f"layer: this recording has {len(self._states)} layers "
                    f"({format_choices(self._states)}). Name the one you want."
                )
            return next(iter(self._states))
        if not isinstance(layer, str):
            raise ArgumentTypeError(f"layer: got {describe(layer)}. Pass a layer name (str).")
        if layer not in self._states:
            raise UnknownNameError(
                f"layer: {layer!r} is not in this recording. Recorded layers: {format_choices(self._states)}."
            )
        return layer

    def time_positions(self, layer: str | None = None, time: Any = None) -> np.ndarray:
        """Positions of the time steps selected by ``time`` (int, slice, mask or list) in ``layer``.

        An int selects one step (and keeps it as a one-element array); ``None`` selects all; a
        selection of no step is refused.

        Examples
        --------
        >>> import numpy as np
        >>> Recording({"h": np.zeros((2, 5, 4))}).time_positions("h", slice(-2, None))
        array([3, 4])
        """
        layer = self.resolve_layer(layer)
        n_time = self._states[layer].shape[1]
        try:
            positions = as_positions(normalize_index(time, n_time, name="time"), n_time)
        except ArgumentError as exc:
            raise type(exc)(f"{exc} (layer {layer!r} has {n_time} time steps)") from None
        if positions.size == 0:
            raise ArgumentError(
                f"time: got {describe(time)}, which selects no time step of layer {layer!r} ({n_time} steps, "
                f"0..{n_time - 1}). Select at least one step."
            )
        return positions

    def stimulus_index(
        self,
        stimuli: Any = None,
        *,
        where: Mapping[str, Any] | None = None,
        query: str | None = None,
    ) -> np.ndarray:
        """Positions of the stimuli selected by an index/mask, metadata values and/or a query.

        Parameters
        ----------
        stimuli : int, slice, bool mask or sequence of int, optional
            Positional selection.
        where : dict, optional
            Column -> value, or column -> list of values (membership). A value no stimulus has in that column is
            refused (a typo, or ``"3"`` for the number 3, would select nothing).
        query : str, optional
            A pandas query over the metadata columns, e.g. ``"label == 3 and level > 0.2"``.

        Returns
        -------
        ndarray of int
            Selected positions, in the order given by ``stimuli`` (all criteria combined with AND).
        """
        positions = np.arange(self._n_stimuli)[normalize_index(stimuli, self._n_stimuli, name="stimuli")]
        if where is not None or query is not None:
            mask = np.ones(self._n_stimuli, dtype=bool)
            if where is not None:
                if not isinstance(where, Mapping):
                    raise ArgumentTypeError(
                        f"where: got {describe(where)}. Pass a dict of column -> value or list of values."
                    )
                for col, wanted in where.items():
                    mask &= _matching(self.column(col), col, wanted)
            if query is not None:
                mask &= self._query_mask(query)
            positions = positions[mask[positions]]
        return positions

    def _query_mask(self, query: str) -> np.ndarray:
        if not isinstance(query, str):
            raise ArgumentTypeError(f"query: got {describe(query)}. Pass a pandas query string.")
        frame = self.metadata
        try:
            mask = frame.eval(query)
        except Exception as exc:
            raise ArgumentError(
                f"query: {query!r} could not be evaluated over the metadata columns "
                f"{format_choices(frame.columns)}: {exc}"
            ) from exc
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (self._n_stimuli,):
            raise ArgumentError(f"query: {query!r} does not give one True/False per stimulus.")
        return mask

    def get(
        self,
        layer: str | None = None,
        *,
        stimuli: Any = None,
        time: Any = None,
        where: Mapping[str, Any] | None = None,
        query: str | None = None,
        flatten: bool = False,
    ) -> np.ndarray:
        """Read one layer's states into a numpy array.

        Parameters
        ----------
        layer : str, optional
            Layer name; may be omitted when only one layer was recorded.
        stimuli, where, query
            Stimulus selection, see :meth:`stimulus_index`.
        time : int, slice, bool mask or sequence of int, optional
            Time-step selection by index. An int drops the time axis.
        flatten : bool
            Flatten the unit axes into one (``n_units``).

        Returns
        -------
        ndarray
            ``(stimulus, time, *units)``; ``(stimulus, *units)`` for an int ``time``.
            Only the selected part is read from disk.
        """
        layer = self.resolve_layer(layer)
        array = self._states[layer]
        stim_index = self.stimulus_index(stimuli, where=where, query=query)
        n_time = array.shape[1]
        time_index = normalize_index(time, n_time, name="time")
        if isinstance(array, LazyArray):
            data = array.take(stim_index, time_index).read()
        else:
            data = _take(array, stim_index, time_index)
        if flatten:
            data = data.reshape((*data.shape[:2], -1))
        if isinstance(time, (int, np.integer)) and not isinstance(time, (bool, np.bool_)):
            data = data[:, 0]
        return data

    def to_numpy(self, layer: str | None = None, *, dtype: Any = None) -> np.ndarray:
        """The whole array of one layer, in memory; ``dtype`` casts it."""
        data = self.get(layer)
        return data if dtype is None else data.astype(dtype, copy=False)

    def select(
        self,
        layers: str | Sequence[str] | None = None,
        *,
        stimuli: Any = None,
        time: Any = None,
        where: Mapping[str, Any] | None = None,
        query: str | None = None,
    ) -> Recording:
        """A new Recording with a subset of layers, stimuli and/or time steps.

        A lazy (on-disk) recording stays lazy: nothing is read. ``time`` applies
        to every selected layer and keeps the time axis (an int selects one step).

        Examples
        --------
        >>> import numpy as np
        >>> rec = Recording({"a": np.zeros((6, 5, 2)), "b": np.ones((6, 5, 3))},
        ...                 metadata={"label": [0, 1, 2, 0, 1, 2]})
        >>> rec.select("b", time=slice(-2, None), query="label > 0").shapes
        {'b': (4, 2, 3)}
        """
        if layers is None:
            names = list(self._states)
        elif isinstance(layers, str):
            names = [self.resolve_layer(layers)]
        else:
            names = [self.resolve_layer(name) for name in layers]
            if not names:
                raise ArgumentError("layers: got an empty list. Name at least one layer, or pass None for all.")
        stim_index = self.stimulus_index(stimuli, where=where, query=query)
        states: dict[str, Any] = {}
        times: dict[str, np.ndarray] = {}
        for name in names:
            array = self._states[name]
            n_time = array.shape[1]
            try:
                time_index = normalize_index(time, n_time, name="time")
            except ArgumentError as exc:
                raise type(exc)(f"{exc} (layer {name!r} has {n_time} time steps)") from None
            if isinstance(array, LazyArray):
                states[name] = array.take(stim_index, time_index)
            else:
                states[name] = _take(array, stim_index, time_index)
            times[name] = self._times[name][time_index]
        metadata = {k: v[stim_index] for k, v in self._metadata.items()}
        return Recording(states, metadata=metadata, times=times, provenance=self._provenance)

    def with_metadata(self, metadata: Any = None, **columns: Any) -> Recording:
        """A new Recording with metadata columns added or replaced (states are shared, nothing is read).

        ``rec.metadata`` is a new DataFrame on every access: assigning to it changes nothing. Add a
        column with ``rec = rec.with_metadata(choice=values)`` (or a dict/DataFrame as ``metadata``).

        Examples
        --------
        >>> import numpy as np
        >>> rec = Recording({"h": np.zeros((3, 2, 1))}, metadata={"label": [0, 1, 0]})
        >>> rec.with_metadata(choice=[1, 1, 0]).columns
        ['label', 'choice']
        """
        added = normalize_metadata(metadata, self._n_stimuli)
        added.update(normalize_metadata(columns, self._n_stimuli) if columns else {})
        merged = {**self._metadata, **added}
        return Recording(self._states, metadata=merged, times=self._times, provenance=self._provenance)

    def with_times(self, times: Any) -> Recording:
        """A new Recording with new time coordinates (states are shared, nothing is read).

        ``times``: one array for every layer, or a dict of layer -> array (other layers keep theirs); one
        value per time step, e.g. milliseconds ``np.arange(n_steps) * dt`` for a task with a step of dt ms.

        Examples
        --------
        >>> import numpy as np
        >>> rec = Recording({"h": np.zeros((3, 4, 1))})
        >>> rec.with_times(np.arange(4) * 20.0).times["h"]
        array([ 0., 20., 40., 60.])
        """
        merged = {**self._times, **times} if isinstance(times, Mapping) else times
        return Recording(self._states, metadata=self._metadata, times=merged, provenance=self._provenance)

    @property
    def periods(self) -> dict[str, tuple[float, float]]:
        """Named periods of the trials (e.g. fixation, stimulus, delay), (start, end) in the time
        coordinate; figures over time mark them. Set with :meth:`with_periods`; empty by default.
        """
        return {name: (float(a), float(b)) for name, (a, b) in self._provenance.get("periods", {}).items()}

    def with_periods(self, periods: Mapping[str, Any]) -> Recording:
        """A new Recording whose over-time figures mark ``periods`` (name -> (start, end) in the time
        coordinate, e.g. ms); kept in the provenance, so saved and loaded with the recording.

        Examples
        --------
        >>> import numpy as np
        >>> rec = Recording({"h": np.zeros((2, 10, 1))}).with_periods({"fixation": (0, 3), "stimulus": (3, 10)})
        >>> rec.periods["stimulus"]
        (3.0, 10.0)
        """
        if not isinstance(periods, Mapping):
            raise ArgumentTypeError(f"periods: got {describe(periods)}. Pass a dict of name -> (start, end).")
        checked = {}
        for name, span in periods.items():
            try:
                start, end = (float(v) for v in span)
            except (TypeError, ValueError):
                raise ArgumentError(f"periods[{name!r}]: got {describe(span)}. Pass (start, end) numbers.") from None
            if not (np.isfinite(start) and np.isfinite(end) and start < end):
                raise ArgumentError(f"periods[{name!r}]: got ({start}, {end}). Pass finite start < end.")
            checked[str(name)] = [start, end]
        provenance = {**self._provenance, "periods": checked}
        return Recording(self._states, metadata=self._metadata, times=self._times, provenance=provenance)

    def flatten_units(self) -> Recording:
        """A view with every layer as ``(stimulus, time, n_units)``."""
        states: dict[str, Any] = {}
        for name, array in self._states.items():
            n_units = int(np.prod(array.shape[2:]))
            if isinstance(array, LazyArray):
                states[name] = array.reshape_units((n_units,))
            else:
                states[name] = array.reshape((*array.shape[:2], n_units))
        return Recording(states, metadata=self._metadata, times=self._times, provenance=self._provenance)

    def load_into_memory(self) -> Recording:
        """Read every lazy layer into memory (a no-op copy for in-memory recordings)."""
        return Recording(
            {name: self.get(name) for name in self._states},
            metadata=self._metadata,
            times=self._times,
            provenance=self._provenance,
        )

    # ------------------------------------------------------------------ persistence and interop
    def save(self, path: str | Path, *, overwrite: bool = False, chunk_stimuli: int | None = None) -> Path:
        """Save to a chunked zarr store (chunked along stimuli); returns the path.

        The round trip through :meth:`load` is exact: dtypes, metadata, times and provenance.
        A lazy recording is copied chunk by chunk, never loaded whole.
        """
        from .store import save_recording

        return save_recording(self, path, overwrite=overwrite, chunk_stimuli=chunk_stimuli)

    @classmethod
    def load(cls, path: str | Path, *, chunks: Any = None) -> Recording:
        """Open a recording saved with :meth:`save` or streamed by ``record(store=...)``.

        The states stay on disk and are read lazily when selected. A store whose
        writing was interrupted is refused with `IncompleteStoreError`.

        ``chunks`` opens the layers as dask arrays (dask needed): ``"auto"`` (whole store chunks
        along stimuli, about 64 MiB of states per dask chunk, every time step), a number of stimuli
        per chunk, or ``{"stimuli": n, "time": m}``. Selections then read through dask, on the
        active ``dask.distributed`` client when there is one, and :meth:`to_dask` /
        :meth:`to_xarray` keep the chunking.
        """
        from .store import load_recording

        return load_recording(path, chunks)

    @property
    def is_dask(self) -> bool:
        """Whether any layer is read through dask (``Recording.load(path, chunks=...)``)."""
        return any(isinstance(a, LazyArray) and a.is_dask for a in self._states.values())

    def time_chunks(self, layer: str | None = None) -> np.ndarray | None:
        """For each time step of ``layer``, the stored chunk along time that holds it; None in memory.

        A read of some steps of an on-disk or dask-backed layer decompresses every stored chunk the steps
        touch, so blockwise analyses cut their blocks of steps at these chunks' edges.

        Examples
        --------
        >>> Recording({"h": np.zeros((2, 3, 4))}).time_chunks("h") is None
        True
        """
        array = self._states[self.resolve_layer(layer)]
        return array.time_chunk_ids() if isinstance(array, LazyArray) else None

    def to_dask(self, layer: str | None = None) -> Any:
        """One layer as a dask array ``(stimulus, time, *units)``, or a dict of every layer (dask needed).

        Dask-backed layers keep their chunks; on-disk layers use the store's chunks; in-memory layers
        are wrapped with dask's automatic chunks along stimuli.
        """
        import dask.array as da

        def one(name: str) -> Any:
            array = self._states[name]
            if isinstance(array, LazyArray):
                return array.dask()
            return da.from_array(array, chunks=("auto", *array.shape[1:]))

        if layer is None and len(self._states) > 1:
            return {name: one(name) for name in self._states}
        return one(self.resolve_layer(layer))

    def to_xarray(self, layer: str | None = None) -> xr.DataArray | xr.Dataset:
        """An xarray DataArray of one layer, or a Dataset of all layers (xarray needed)."""
        from .interop import to_xarray

        return to_xarray(self, layer)

    def to_rsatoolbox(
        self, layer: str | None = None, *, time: int | None = None
    ) -> rsatoolbox.data.Dataset | rsatoolbox.data.TemporalDataset:
        """One layer as an rsatoolbox ``Dataset`` (at step ``time``) or ``TemporalDataset`` (all steps).

        Stimulus metadata become ``obs_descriptors``; units become channels.
        """
        from .interop import to_rsatoolbox

        return to_rsatoolbox(self, layer, time=time)

    def sources(self) -> set[Path]:
        """The store folders this recording reads from (empty for an in-memory recording)."""
        found = {a.source() for a in self._states.values() if isinstance(a, LazyArray)}
        return found - {None}

    # internal accessor used by store/interop (read-only arrays)
    def _raw_metadata(self) -> dict[str, np.ndarray]:
        return dict(self._metadata)


def _shown(values: np.ndarray) -> str:
    """A short text of an array's values for an error message (the first and last few of a long one)."""
    return np.array2string(np.asarray(values), threshold=8, edgeitems=3, separator=", ")


def concat(recordings: Iterable[Recording]) -> Recording:
    """Concatenate recordings of the same layers along the stimulus axis (in memory).

    Layers, time coordinates, unit shapes and metadata columns must agree. The provenance is the
    shared one (with ``concatenated_from``), or, when the recordings' provenances differ (e.g. two
    models), ``{"concatenated_from": n, "parts": [each recording's provenance]}``.

    Examples
    --------
    >>> import numpy as np
    >>> a = Recording({"h": np.zeros((2, 3, 4))}, metadata={"label": [0, 1]})
    >>> b = Recording({"h": np.ones((5, 3, 4))}, metadata={"label": [2, 3, 4, 5, 6]})
    >>> concat([a, b]).shapes
    {'h': (7, 3, 4)}
    """
    recs = list(recordings)
    if not recs or not all(isinstance(r, Recording) for r in recs):
        raise ArgumentTypeError(f"recordings: got {describe(recs)}. Pass a non-empty sequence of Recording objects.")
    first = recs[0]
    for i, rec in enumerate(recs[1:], start=1):
        if rec.layers != first.layers:
            raise ArgumentError(
                f"recordings[{i}]: has layers {rec.layers}, but recordings[0] has {first.layers}. "
                f"Select the same layers (Recording.select) before concatenating."
            )
        for name in first.layers:
            if rec.unit_shape(name) != first.unit_shape(name):
                raise ShapeError(
                    f"recordings[{i}]: layer {name!r} has units of shape {rec.unit_shape(name)}, but recordings[0] "
                    f"has {first.unit_shape(name)}. Only the stimulus axis may differ."
                )
            if not np.array_equal(rec._times[name], first._times[name]):
                raise ShapeError(
                    f"recordings[{i}]: layer {name!r} has times {_shown(rec._times[name])}, but recordings[0] has "
                    f"{_shown(first._times[name])}. Only the stimulus axis may differ: record the same steps, or "
                    f"select the common ones (Recording.select(time=...))."
                )
        if set(rec.columns) != set(first.columns):
            raise ArgumentError(
                f"recordings[{i}]: metadata columns {rec.columns} differ from recordings[0]'s "
                f"{first.columns}. Give every recording the same columns."
            )
    states = {name: np.concatenate([r.get(name) for r in recs], axis=0) for name in first.layers}
    metadata = {col: np.concatenate([r._metadata[col] for r in recs]) for col in first.columns}
    provenances = [r.provenance for r in recs]
    if all(p == provenances[0] for p in provenances):
        provenance = dict(provenances[0], concatenated_from=len(recs))
    else:  # recordings of different models or settings: keep every one's provenance
        provenance = {"concatenated_from": len(recs), "parts": provenances}
    return Recording(states, metadata=metadata, times=first._times, provenance=provenance)


def _matching(values: np.ndarray, column: str, wanted: Any) -> np.ndarray:
    """Which stimuli have one of the ``wanted`` values (a value, or a list of them) in ``column``; a wanted value no
    stimulus has is refused: a typo, or a value of another type (``"3"`` for the number 3), matched nothing and
    gave an empty selection without a sign.
    """
    listed = list(wanted) if isinstance(wanted, (list, tuple, set, np.ndarray)) else [wanted]
    mask = np.isin(values, listed)
    wanted_values = np.empty(len(listed), dtype=object)  # (object: a list mixing 3 and "3" stays as given)
    wanted_values[:] = listed
    absent = [w for w, found in zip(listed, np.isin(wanted_values, values), strict=True) if not found]
    if absent:
        present = format_choices(list(dict.fromkeys(values.tolist()))[:10])
        raise UnknownNameError(
            f"where: {absent[:5]!r} matches no stimulus in column {column!r} (its values include {present}). Pass "
            f"values of the column, of its type (3 and '3' differ)."
        )
    return mask

"""On-disk recordings: a zarr v3 group chunked along stimuli.

Layout of a store ``path``::

    path/                    zarr group; attrs["rnnprobe"] holds the header below
      states/<i>             layer i, shape (stimulus, time, *units), chunks (c_i, s_i, *units)
      times/<i>              time coordinate of layer i
      metadata/<j>           numeric/bool/datetime metadata column j (others are in the header)

The header records the format version, layer names, number of stimuli, the
metadata columns (and string columns' values), provenance, every array's number
of chunks and ``complete``.

Nothing half-written is ever taken for a result, and nothing is lost:

- a store is written into a hidden folder beside its path
  (``.<name>.rnnprobe-partial-<id>``) and renamed into place only when every row is
  written and ``complete: true``; an existing store at the path survives until then
  (``overwrite=True`` moves it aside, renames the new one in, then deletes the old);
- of concurrent writers to one path exactly one wins; the others get
  `StoreExistsError`; a writer killed mid-way leaves only its hidden partial folder
  (marked incomplete, never loaded), which a later write to the same path removes;
- every chunk carries a CRC32C checksum (format 2) and the header the number of
  chunks per array: a missing chunk is refused on load, a corrupt one on read, with
  the layer (and stimuli) named;
- only rnnprobe stores (by their header) or empty folders are ever deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import (
    ArgumentTypeError,
    IncompleteStoreError,
    RnnprobeError,
    StoreExistsError,
    StoreFormatError,
    StoreNotFoundError,
    describe,
)
from .lazy import LazyArray

if TYPE_CHECKING:  # pragma: no cover
    from .container import Recording

FORMAT = "rnnprobe.recording"
FORMAT_VERSION = 2  # 2: CRC32C per chunk, chunk counts in the header; 1 (no checksums) is still read
READABLE_VERSIONS = (1, 2)
TARGET_CHUNK_BYTES = 8 * 2**20
MIN_CHUNK_BYTES = 2**20  # chunks of a layer's steps split along time down to this size
PARTIAL = ".rnnprobe-partial-"
OLD = ".rnnprobe-old-"


def _header_of(path: Path) -> dict[str, Any] | None:
    """The rnnprobe header of a store folder, or None if ``path`` is not one."""
    meta = path / "zarr.json"
    if not meta.is_file():
        return None
    try:
        header = json.loads(meta.read_text()).get("attributes", {}).get("rnnprobe", {})
    except (OSError, ValueError, AttributeError):
        return None
    return header if isinstance(header, dict) and header.get("format") == FORMAT else None


def _is_store(path: Path) -> bool:
    return _header_of(path) is not None


def _is_ours(path: Path) -> bool:
    """What rnnprobe may delete: one of its stores, or an empty folder."""
    return _is_store(path) or (path.is_dir() and not any(path.iterdir()))


def _writer_alive(header: dict[str, Any]) -> bool:
    writer = header.get("writer", {})
    if writer.get("host") != socket.gethostname() or not isinstance(writer.get("pid"), int):
        return True  # another machine's writer (a shared file system): leave it alone
    try:
        os.kill(writer["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_partials(path: Path) -> None:
    """Partial folders of writers to ``path`` that died (SIGKILL, power loss) on this machine."""
    for leftover in path.parent.glob(f".{path.name}{PARTIAL}*"):
        header = _header_of(leftover)
        if header is not None and header.get("complete") is not True and not _writer_alive(header):
            shutil.rmtree(leftover, ignore_errors=True)


def check_store_path(path: str | Path, *, overwrite: bool) -> Path:
    """Validate a destination before any work is done; nothing is deleted here."""
    if not isinstance(path, (str, Path)):
        raise ArgumentTypeError(f"store: got {describe(path)}. Pass a directory path (str or pathlib.Path).")
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise StoreExistsError(
                f"store: {str(path)!r} already exists. Pass overwrite=True to replace it, or choose a new path."
            )
        if not _is_ours(path):
            raise StoreExistsError(
                f"store: {str(path)!r} exists and is not an rnnprobe store; refusing to delete it even with "
                f"overwrite=True. Choose another path."
            )
    return path


def default_chunk_stimuli(bytes_per_stimulus: int, n_stimuli: int) -> int:
    """Stimuli per chunk so that one chunk holds about 8 MiB."""
    return int(min(max(1, TARGET_CHUNK_BYTES // max(1, bytes_per_stimulus)), max(1, n_stimuli)))


def default_chunk_steps(chunk_bytes: int, n_steps: int) -> int:
    """Steps per chunk: the fewest that keep a chunk of ``chunk_bytes`` (every step of a chunk of stimuli) at
    ``MIN_CHUNK_BYTES`` or more. A block of steps then reads and decompresses little more than its steps:
    the analyses that take time steps as tasks (decoding, encoding) and a time selection of a lazy recording
    (61,035 stimuli x 4 steps x 1024 float32 units: one step in 0.14 s against 1.08 s with chunks of every
    step, the whole layer in the same time).
    """
    return int(min(n_steps, max(1, -(-MIN_CHUNK_BYTES * n_steps // max(1, chunk_bytes)))))


def _encode_metadata(metadata: Mapping[str, np.ndarray]) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Split columns into header entries and arrays stored natively by zarr."""
    header: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    for j, (name, column) in enumerate(metadata.items()):
        kind = column.dtype.kind
        if kind in "biufcmM":
            key = f"metadata/{j}"
            header.append({"name": name, "storage": "array", "key": key, "dtype": column.dtype.str})
            arrays[key] = column
        elif kind == "U":
            header.append({"name": name, "storage": "json", "dtype": column.dtype.str, "values": column.tolist()})
        elif kind == "O":
            values = column.tolist()
            if not all(v is None or isinstance(v, (str, bool, int, float)) for v in values):
                bad = next(v for v in values if not (v is None or isinstance(v, (str, bool, int, float))))
                raise ArgumentTypeError(
                    f"metadata[{name!r}]: holds {describe(bad)}, which cannot be saved. Store "
                    f"str/int/float/bool/None values (convert with str() or a category code)."
                )
            header.append({"name": name, "storage": "json", "dtype": "|O", "values": values})
        else:
            raise ArgumentTypeError(
                f"metadata[{name!r}]: dtype {column.dtype} cannot be saved. Use numbers, bools, datetimes or strings."
            )
    return header, arrays


def _decode_metadata(group: Any, header: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    for entry in header:
        if entry["storage"] == "array":
            columns[entry["name"]] = np.asarray(group[entry["key"]][:]).astype(np.dtype(entry["dtype"]), copy=False)
        else:
            dtype = np.dtype(entry["dtype"])
            values = entry["values"]
            if dtype.kind == "O":
                column = np.empty(len(values), dtype=object)
                column[:] = values
            else:
                column = np.array(values, dtype=dtype) if values else np.empty(0, dtype=dtype)
            columns[entry["name"]] = column
    return columns


class StoreWriter:
    """Write a recording into a zarr store, buffering rows into whole chunks.

    Full chunks are compressed and written by one background thread while the
    caller computes the next batch; at most one write is in flight. Peak memory
    is two chunks (plus one batch) per layer. Until :meth:`close` the header says
    ``complete: false``, and ``n_written`` counts rows whose writes have finished.
    """

    def __init__(self, path: str | Path, *, overwrite: bool = False) -> None:
        self.path = check_store_path(path, overwrite=overwrite)
        self._group: Any = None
        self._arrays: dict[str, Any] = {}
        self._buffers: dict[str, np.ndarray] = {}
        self._spares: dict[str, np.ndarray] = {}
        self._filled: dict[str, int] = {}
        self._flushed: dict[str, int] = {}  # rows handed to the writer thread
        self._done: dict[str, int] = {}  # rows whose write finished
        self._pending: tuple[Future, str, int] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._header: dict[str, Any] = {}
        self.overwrite = overwrite
        self.staging: Path | None = None

    def create(
        self,
        *,
        n_stimuli: int,
        layers: Mapping[str, tuple[tuple[int, ...], np.dtype]],
        times: Mapping[str, np.ndarray],
        metadata: Mapping[str, np.ndarray],
        provenance: Mapping[str, Any],
        chunk_stimuli: int | Mapping[str, int] | None = None,
    ) -> None:
        """Create the group and empty arrays in the hidden partial folder beside the path.

        ``layers`` maps name -> (per-stimulus shape, dtype).
        """
        import zarr

        _remove_stale_partials(self.path)
        self.staging = self.path.parent / f".{self.path.name}{PARTIAL}{uuid.uuid4().hex[:12]}"
        meta_header, meta_arrays = _encode_metadata(metadata)
        group = zarr.open_group(str(self.staging), mode="w-")
        chunks: dict[str, int] = {}
        for key, column in meta_arrays.items():
            chunks[key] = _create(group, key, data=column).nchunks
        for i, (name, (shape, dtype)) in enumerate(layers.items()):
            dtype = np.dtype(dtype)
            bytes_per = int(np.prod(shape)) * dtype.itemsize
            if isinstance(chunk_stimuli, Mapping):
                chunk = int(chunk_stimuli[name])
            elif chunk_stimuli is not None:
                chunk = int(chunk_stimuli)
            else:
                chunk = default_chunk_stimuli(bytes_per, n_stimuli)
            chunk = max(1, min(chunk, max(1, n_stimuli)))
            steps = max(1, default_chunk_steps(chunk * bytes_per, shape[0]))  # (stimulus, time, *units) layers
            self._arrays[name] = _create(group, f"states/{i}", shape=(n_stimuli, *shape), dtype=dtype, fill_value=0,
                                         chunks=(chunk, steps, *shape[1:]))  # fmt: skip
            chunks[f"states/{i}"] = self._arrays[name].nchunks
            chunks[f"times/{i}"] = _create(group, f"times/{i}", data=np.asarray(times[name])).nchunks
            self._buffers[name] = np.empty((chunk, *shape), dtype=dtype)
            self._spares[name] = np.empty((chunk, *shape), dtype=dtype)
            self._filled[name] = 0
            self._flushed[name] = 0
            self._done[name] = 0
        self._header = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "complete": False,
            "n_stimuli": int(n_stimuli),
            "n_written": 0,
            "layers": list(layers),
            "metadata": meta_header,
            "chunks": chunks,
            "provenance": dict(provenance),
            "writer": {"pid": os.getpid(), "host": socket.gethostname()},
        }
        group.attrs["rnnprobe"] = self._header
        self._group = group
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnnprobe-store")

    @property
    def chunk_rows(self) -> dict[str, int]:
        """Stimuli per on-disk chunk, per layer (known after :meth:`create`)."""
        return {name: buffer.shape[0] for name, buffer in self._buffers.items()}

    def append(self, batch: Mapping[str, np.ndarray]) -> None:
        """Append the next rows (same count for every layer) to each layer."""
        for name, rows in batch.items():
            offset = 0
            while offset < rows.shape[0]:
                buffer = self._buffers[name]  # swapped on every flush: never hold on to the one in flight
                take = min(buffer.shape[0] - self._filled[name], rows.shape[0] - offset)
                buffer[self._filled[name] : self._filled[name] + take] = rows[offset : offset + take]
                self._filled[name] += take
                offset += take
                if self._filled[name] == buffer.shape[0]:
                    self._flush(name)
        self._update_progress()

    def _flush(self, name: str) -> None:
        filled = self._filled[name]
        if not filled:
            return
        self._wait()  # the spare buffer may still be in flight
        data = self._buffers[name]
        self._buffers[name], self._spares[name] = self._spares[name], data
        start = self._flushed[name]
        future = self._pool.submit(self._arrays[name].__setitem__, slice(start, start + filled), data[:filled])
        self._pending = (future, name, filled)
        self._flushed[name] += filled
        self._filled[name] = 0

    def _wait(self) -> None:
        """Finish the write in flight; its error, if any, is raised here."""
        if self._pending is not None:
            future, name, rows = self._pending
            self._pending = None
            future.result()
            self._done[name] += rows

    def _update_progress(self) -> None:
        written = min(self._done.values()) if self._done else 0
        if written != self._header["n_written"]:
            self._header["n_written"] = written
            self._group.attrs["rnnprobe"] = self._header

    def close(self) -> None:
        """Flush the last rows and mark the store complete (only if every row was written)."""
        try:
            for name in self._buffers:
                self._flush(name)
            self._wait()
        finally:
            self._shutdown()
        n = self._header["n_stimuli"]
        short = {name: count for name, count in self._done.items() if count != n}
        if short:
            shutil.rmtree(self.staging, ignore_errors=True)
            raise IncompleteStoreError(
                f"store {str(self.path)!r}: only {short} of {n} stimuli were written; nothing was saved (a store "
                f"that was at the path is still there)."
            )
        self._header["n_written"] = n
        self._header["complete"] = True
        self._header.pop("writer", None)
        self._group.attrs["rnnprobe"] = self._header
        publish_store(self.staging, self.path, overwrite=self.overwrite)

    def complete_external(self, *, cleanup: list[Path] = ()) -> None:
        """Mark complete a store whose rows other processes wrote (a cluster's workers), then publish it.

        The caller has checked that every region was written; ``cleanup`` are folders of its own to
        remove from the store first.
        """
        self._shutdown()
        for folder in cleanup:
            shutil.rmtree(folder, ignore_errors=True)
        self._header["n_written"] = self._header["n_stimuli"]
        self._header["complete"] = True
        self._header.pop("writer", None)
        self._group.attrs["rnnprobe"] = self._header
        publish_store(self.staging, self.path, overwrite=self.overwrite)

    def abort(self) -> None:
        """Stop after a failure: let the write in flight finish, then remove the partial folder.

        The path itself was never touched: a store that was there is still there.
        """
        if self._group is None:
            return
        try:
            self._wait()
        except Exception:
            pass
        finally:
            self._shutdown()
            shutil.rmtree(self.staging, ignore_errors=True)

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _create(group: Any, key: str, **kwargs: Any) -> Any:
    """A zarr array with a CRC32C checksum per chunk, every chunk written (also all-zero ones)."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    # zstd level 1: ~1.8x on ReLU maps, faster than zarr's default level
    return group.create_array(key, compressors=[ZstdCodec(level=1), Crc32cCodec()],
                              config={"write_empty_chunks": True}, **kwargs)  # fmt: skip


def publish_store(staging: Path, path: Path, *, overwrite: bool) -> None:
    """Rename the complete ``staging`` store to ``path``; an old store there is moved aside, then deleted.

    Of concurrent writers, the first rename wins; the others raise `StoreExistsError` and remove
    their own staging folder.
    """
    old = None
    if path.exists() or path.is_symlink():
        if not overwrite or not _is_ours(path):
            shutil.rmtree(staging, ignore_errors=True)
            raise StoreExistsError(
                f"store: {str(path)!r} was created by someone else while this recording was written"
                + (" and is not an rnnprobe store" if overwrite else "")
                + "; nothing was replaced. Choose a new path, or pass overwrite=True."
            )
        old = path.parent / f".{path.name}{OLD}{uuid.uuid4().hex[:12]}"
        try:
            path.rename(old)
        except FileNotFoundError:  # another writer moved it first
            old = None
    try:
        staging.rename(path)
    except OSError as exc:  # another writer's store got there first (a non-empty folder)
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        raise StoreExistsError(
            f"store: another writer finished {str(path)!r} first ({type(exc).__name__}); its store is complete "
            f"and was kept, this one was discarded."
        ) from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def save_recording(
    recording: Recording, path: str | Path, *, overwrite: bool = False, chunk_stimuli: int | None = None
) -> Path:
    """Write ``recording`` to ``path`` (see :meth:`Recording.save`)."""
    writer = StoreWriter(path, overwrite=overwrite)
    sources = recording.sources()
    if writer.path.exists() and writer.path.resolve() in sources:
        raise StoreExistsError(
            f"path: {str(path)!r} is the store this recording reads from; saving over it would replace the data "
            f"under the recording. Save to a new path (and move it over the old one afterwards), or "
            f"load_into_memory() first if it fits."
        )
    layers = {name: (tuple(recording.shapes[name][1:]), recording.dtypes[name]) for name in recording.layers}
    writer.create(
        n_stimuli=recording.n_stimuli,
        layers=layers,
        times=recording.times,
        metadata=recording._raw_metadata(),
        provenance=recording.provenance,
        chunk_stimuli=chunk_stimuli,
    )
    n = recording.n_stimuli
    step = min(writer.chunk_rows.values())
    try:
        for start in range(0, n, step):
            stop = min(n, start + step)
            writer.append({name: recording.get(name, stimuli=slice(start, stop)) for name in recording.layers})
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return writer.path


def read_header(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Open a store read-only and return (group, header), validating the format."""
    import zarr

    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(f"path: got {describe(path)}. Pass the store's directory (str or pathlib.Path).")
    path = Path(path)
    if not path.exists():
        raise StoreNotFoundError(f"path: {str(path)!r} does not exist. Pass the directory written by save/record.")
    if not (path / "zarr.json").is_file():
        raise StoreFormatError(f"path: {str(path)!r} is not a zarr store written by rnnprobe (no zarr.json).")
    try:
        group = zarr.open_group(str(path.absolute()), mode="r")  # (its arrays read elsewhere: dask's workers)
        header = group.attrs.get("rnnprobe")
    except Exception as exc:  # a truncated or hand-edited zarr.json
        raise StoreFormatError(
            f"path: {str(path)!r} has an unreadable zarr.json ({type(exc).__name__}: {exc})."
        ) from None
    if not isinstance(header, Mapping) or header.get("format") != FORMAT:
        raise StoreFormatError(f"path: {str(path)!r} is a zarr store, but not an rnnprobe recording.")
    version = header.get("format_version")
    if version not in READABLE_VERSIONS:
        newer = isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION
        raise StoreFormatError(
            f"path: {str(path)!r} says store format {version!r}; this rnnprobe reads formats "
            f"{', '.join(map(str, READABLE_VERSIONS))}." + (" Upgrade rnnprobe." if newer else "")
        )
    missing = [key for key in ("complete", "n_stimuli", "layers", "metadata", "provenance") if key not in header]
    if missing:
        raise StoreFormatError(f"path: {str(path)!r} has a damaged header: {', '.join(missing)} missing.")
    return group, dict(header)


def _check_chunks(path: Path, group: Any, header: dict[str, Any]) -> None:
    """Every chunk file the header counts is there (zarr would read a missing one as zeros)."""
    for key, expected in header.get("chunks", {}).items():
        folder = path / key / "c"
        found = sum(len(files) for _, _, files in os.walk(folder)) if folder.is_dir() else 0
        if found != expected:
            what = key
            if key.startswith("states/"):
                what = f"layer {header['layers'][int(key.split('/')[1])]!r}"
            elif key.startswith("metadata/"):
                what = f"metadata column {next(e['name'] for e in header['metadata'] if e.get('key') == key)!r}"
            raise StoreFormatError(
                f"path: {str(path)!r} is damaged: {what} has {found} of its {expected} chunk files ({key}). "
                f"The data there cannot be recovered from this store; record or save it again."
            )


def load_recording(path: str | Path, chunks: Any = None) -> Recording:
    """Open a complete store as a lazy `Recording` (see :meth:`Recording.load`); with ``chunks``, dask-backed."""
    from .container import Recording

    group, header = read_header(path)
    if header.get("complete") is not True:
        raise IncompleteStoreError(
            f"path: {str(path)!r} is incomplete: its writing stopped after {header.get('n_written', 0)} of "
            f"{header.get('n_stimuli')} stimuli (interrupted or failed). Its contents are not a result; "
            f"record again with overwrite=True."
        )
    _check_chunks(Path(path), group, header)
    names = header["layers"]
    try:
        stored = {name: group[f"states/{i}"] for i, name in enumerate(names)}
        if chunks is None:
            states = {name: LazyArray(array, name=name) for name, array in stored.items()}
        else:
            from .cluster import dask_states

            arrays = dask_states(stored, chunks)
            states = {name: LazyArray(arrays[name], name=name, origin=Path(path), stored_steps=int(array.chunks[1]))
                      for name, array in stored.items()}  # fmt: skip
        times = {name: np.asarray(group[f"times/{i}"][:]) for i, name in enumerate(names)}
        metadata = _decode_metadata(group, header["metadata"])
    except RnnprobeError:  # a bad argument (chunks), not a damaged store
        raise
    except (KeyError, ValueError, TypeError) as exc:
        raise StoreFormatError(
            f"path: {str(path)!r} is damaged ({type(exc).__name__}: {exc}); record or save it again."
        ) from None
    return Recording(states, metadata=metadata, times=times, provenance=header["provenance"])

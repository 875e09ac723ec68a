"""Recordings on a dask cluster: stimuli recorded in shards by workers into one store, and layers read as dask arrays.

``record(model, stimuli, store=path, client=client)`` records one stimulus in this process to learn the
layers' shapes, creates the store (marked incomplete) in its hidden partial folder beside ``path``, and
submits one task per region of stimuli (whole chunks, so that no two tasks write one chunk) to the
workers of a ``dask.distributed`` client. Each worker records its region in memory with the same
settings and writes it into the store's arrays, then leaves a marker for the region. The store is
marked complete and moved into place only when every task has returned and every region's marker is
there; a task that fails (or whose worker dies more often than the scheduler allows) leaves no store
at ``path``. The store's folder must be reachable by every worker (a shared file system).

``Recording.load(path, chunks=...)`` opens the layers as dask arrays (``Recording.to_dask``), read
block by block by whatever computes on them: the active ``dask.distributed`` client, or dask's threads.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_int
from ..errors import ArgumentError, ArgumentTypeError, RnnprobeError, ShapeError, describe
from .chunk_reader import dask_layer, unreachable
from .model_pickle import pickled, unpickled

MARKERS = ".rnnprobe-regions"
TASK_BYTES = 2**28  # states of one task's region (256 MiB), recorded and written piece by piece
AUTO_CHUNK_BYTES = 2**26  # chunks="auto": whole store chunks of stimuli, about 64 MiB of states per dask chunk


def check_client(client: Any) -> Any:
    """A ``dask.distributed.Client``, else `ArgumentTypeError`."""
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - dask is an optional dependency
        raise ArgumentTypeError(
            "client: dask.distributed is not installed. Install it (pip install 'dask[distributed]') to record on a "
            "cluster."
        ) from None
    if not isinstance(client, Client):
        raise ArgumentTypeError(
            f"client: got {describe(client)}. Pass a dask.distributed.Client (e.g. Client(LocalCluster()) or "
            f"Client('tcp://scheduler:8786'))."
        )
    return client


def regions(n_stimuli: int, chunk: int, per_task: int) -> list[tuple[int, int]]:
    """Stimulus ranges of whole chunks, about ``per_task`` stimuli each (the last may be shorter)."""
    size = max(chunk, (per_task // chunk) * chunk)
    return [(start, min(n_stimuli, start + size)) for start in range(0, n_stimuli, size)]


def _record_region(
    shared: bytes, inputs: list[Any], start: int, stop: int, staging: str, names: list[str]
) -> tuple[int, int, dict[str, np.ndarray]]:
    """On a worker: record stimuli [start, stop) piece by piece (whole chunks, about one batch each: memory
    stays bounded by one piece), write each into the store, then mark the region done.
    """
    import zarr

    model, settings = unpickled(shared)  # (with the settings: a ``forward`` of the caller's own code)
    if not Path(staging).is_dir():
        raise unreachable(staging)
    group = zarr.open_group(staging, mode="r+")
    targets = [group[f"states/{i}"] for i in range(len(names))]
    chunk = targets[0].chunks[0]
    piece = chunk * max(1, -(-int(settings.get("batch_size", 64)) // chunk))
    bad: dict[str, np.ndarray] = {}
    for a in range(start, stop, piece):
        b = min(stop, a + piece)
        _write_piece(model, [item[a - start : b - start] for item in inputs], a, b, names, targets, settings, bad)
    marker = Path(staging) / MARKERS / f"{start}-{stop}"
    temporary = marker.with_name(f".{marker.name}.{uuid.uuid4().hex[:8]}")
    temporary.write_text("written")
    temporary.rename(marker)  # atomic: a marker is there only once its region is
    return start, stop, bad


def _write_piece(model: Any, inputs: list[Any], a: int, b: int, names: list[str], targets: list[Any],
                 settings: dict[str, Any], bad: dict[str, np.ndarray]) -> None:  # fmt: skip
    """Record stimuli [a, b) in memory and write them into the store's arrays; count NaN/inf per step."""
    from .recorder import record

    rec = record(
        model, inputs[0] if len(inputs) == 1 else tuple(inputs), progress=False, **_piece_settings(settings, a)
    )
    for name, target in zip(names, targets, strict=True):
        data = rec.get(name)
        if tuple(data.shape[1:]) != tuple(target.shape[1:]):
            raise ShapeError(
                f"layers: {name!r} gave {data.shape[1:]} per stimulus for stimuli {a}..{b - 1}, but "
                f"{target.shape[1:]} for the first stimulus. Every stimulus must give the same shapes."
            )
        target[a:b] = data
        if data.dtype.kind == "f" and not np.isfinite(data.sum(dtype=data.dtype)):
            counts = (~np.isfinite(data)).reshape(data.shape[0], data.shape[1], -1).sum(axis=(0, 2))
            bad[name] = bad.get(name, 0) + counts


def _piece_settings(settings: dict[str, Any], start: int) -> dict[str, Any]:
    """``record``'s settings for the piece whose first stimulus is ``start``: ``seed`` and every noise
    intervention's seed replaced by the piece's own (:func:`piece_seed`), so that each piece draws its own noise.
    """
    import dataclasses

    from .interventions import Intervention, as_changes

    out = dict(settings)
    if out.get("seed") is not None:
        out["seed"] = piece_seed(out["seed"], start)
    if out.get("interventions"):
        out["interventions"] = [
            dataclasses.replace(c, seed=piece_seed(c.seed or 0, start))
            if isinstance(c, Intervention) and c.kind == "noise" else c
            for c in as_changes(out["interventions"])
        ]  # fmt: skip
    return out


def piece_seed(seed: int, start: int) -> int:
    """The seed of the piece of a sharded recording whose first stimulus is ``start`` (for ``record``'s ``seed``
    and for each noise intervention's): one stream per piece, reproducible whichever worker records it. With
    ``seed`` itself in every piece, every piece drew the same noise: stimuli a piece apart had identical noise.

    Examples
    --------
    >>> piece_seed(1, 0) == piece_seed(1, 0) != piece_seed(1, 64)
    True
    """
    return int(np.random.SeedSequence([seed, start]).generate_state(1, np.uint64)[0] >> 1)


def record_on_cluster(
    model: Any,
    inputs: list[Any],
    *,
    client: Any,
    writer: Any,
    probe: Callable[[list[Any]], Any],
    metadata: Mapping[str, np.ndarray],
    settings: dict[str, Any],
    chunk_stimuli: int | None,
    per_task: int | None,
) -> tuple[Any, dict[str, np.ndarray]]:
    """Record in shards on ``client``'s workers into ``writer``'s store; (the loaded Recording, NaN counts)."""
    from .store import default_chunk_stimuli, load_recording

    first = probe([item[:1] for item in inputs])  # one stimulus here: the layers' shapes, dtypes and times
    n = int(inputs[0].shape[0])
    names = first.layers
    per_stimulus = max(int(np.prod(first.shapes[name][1:])) * first.dtypes[name].itemsize for name in names)
    chunk = check_int("chunk_stimuli", chunk_stimuli) if chunk_stimuli else default_chunk_stimuli(per_stimulus, n)
    chunk = min(chunk, n)
    payload = pickled((model, settings), what="model")  # (before the store is made: a model that does not pickle)
    writer.create(
        n_stimuli=n, layers={name: (first.shapes[name][1:], first.dtypes[name]) for name in names},
        times=first.times, metadata=metadata, chunk_stimuli=chunk,
        provenance={**first.provenance, "n_stimuli": n, "cluster": {"scheduler": client.scheduler.address}},
    )  # fmt: skip
    try:
        if per_task is None:  # regions of at most TASK_BYTES of states: many tasks, balanced by dask
            per_task = min(-(-n // _n_workers(client)), max(1, TASK_BYTES // max(1, per_stimulus)))
        parts = regions(n, chunk, check_int("per_task", per_task))
        (writer.staging / MARKERS).mkdir()
        # fresh keys (hash=False): the same model or stimuli scattered by an earlier call would share its key,
        # and that call's release could drop the data these tasks need
        shared = client.scatter(payload, broadcast=True, hash=False)
        shards = client.scatter([[item[a:b] for item in inputs] for a, b in parts], hash=False)  # data, not graph
        staging = str(writer.staging.absolute())  # a worker's working folder is not the caller's
        futures = [client.submit(_record_region, shared, shard, a, b, staging, names,
                                 key=f"rnnprobe-record-{a}-{b}-{uuid.uuid4().hex[:8]}", pure=False)
                   for shard, (a, b) in zip(shards, parts, strict=True)]  # fmt: skip
        results = _gather(client, futures)
        missing = [f"{a}-{b}" for a, b in parts if not (writer.staging / MARKERS / f"{a}-{b}").is_file()]
        if missing:
            raise RnnprobeError(f"store: regions {missing} were not marked written; the store is not complete.")
        writer.complete_external(cleanup=[writer.staging / MARKERS])
    except BaseException:
        writer.abort()
        raise
    bad: dict[str, np.ndarray] = {}
    for _, _, counts in results:
        for name, per_step in counts.items():
            bad[name] = bad.get(name, 0) + per_step
    return load_recording(writer.path), bad


def _n_workers(client: Any) -> int:
    return max(1, len(client.scheduler_info().get("workers", {})))


def _executing(dask_worker: Any) -> list[str]:
    """On a worker: the keys of the tasks it is running now."""
    return [str(ts.key) for ts in getattr(dask_worker.state, "executing", ())]


def _stop(client: Any, futures: list[Any], timeout: float = 120.0) -> None:
    """Cancel the tasks and wait until no worker still runs one (a running task is not interrupted by a cancel,
    and would otherwise write into the partial folder after it is removed).
    """
    import time

    keys = {str(f.key) for f in futures}
    client.cancel(futures)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            running = {key for keys_ in client.run(_executing).values() for key in keys_}
        except Exception:  # a worker going away mid-call: ask again
            running = keys
        if not running & keys:
            return
        time.sleep(0.2)


def _gather(client: Any, futures: list[Any]) -> list[Any]:
    """Every task's result; a failed task (or a worker lost too often) cancels the rest and is one rnnprobe error."""
    try:
        return client.gather(futures)
    except RnnprobeError:
        _stop(client, futures)
        raise
    except Exception as exc:
        _stop(client, futures)
        raise RnnprobeError(
            f"client: a shard of the recording failed on a worker ({type(exc).__name__}: {exc}); nothing was saved "
            f"(a store that was at the path is still there)."
        ) from exc


def dask_states(arrays: dict[str, Any], chunks: Any) -> dict[str, Any]:
    """The store's layers (zarr arrays by name) as dask arrays chunked along stimuli and time (``chunks``: see
    Recording.load).
    """
    return {name: dask_layer(array, chunks=_chunks(chunks, array), name=f"rnnprobe-{name}-{uuid.uuid4().hex[:8]}")
            for name, array in arrays.items()}  # fmt: skip


def _chunks(chunks: Any, array: Any) -> tuple[int, ...]:
    """Chunk sizes: "auto" (whole store chunks of stimuli, about AUTO_CHUNK_BYTES, every time step), an int
    (stimuli per chunk), or a dict {"stimuli": n, "time": m}; units are never split.

    "auto" groups the store's chunks (about 8 MiB each) because every dask chunk is a task of each graph
    that reads it, and a task's overhead on a ``dask.distributed`` worker is about a millisecond: the RDMs
    and decoding of benchmarks/dask_scaling.py's 20 GB on one worker took 147.4 s with a dask chunk per
    store chunk and 86.5 s with grouped ones (AMD EPYC).
    """
    t = array.shape[1]
    units = tuple(array.shape[2:])
    if isinstance(chunks, str) and chunks == "auto":
        stored = array.chunks[0]
        per_chunk = stored * t * int(np.prod(units)) * array.dtype.itemsize
        return (stored * max(1, AUTO_CHUNK_BYTES // max(1, per_chunk)), t, *units)
    if isinstance(chunks, (int, np.integer)) and not isinstance(chunks, bool):
        return (check_int("chunks", int(chunks)), t, *units)
    if isinstance(chunks, Mapping) and set(chunks) <= {"stimuli", "time"}:
        return (check_int("chunks['stimuli']", chunks.get("stimuli", array.chunks[0])),
                check_int("chunks['time']", chunks.get("time", t)), *units)  # fmt: skip
    raise ArgumentError(
        f"chunks: got {describe(chunks)}. Pass 'auto' (whole store chunks), a number of stimuli per chunk, or "
        f"{{'stimuli': n, 'time': m}}; the units of a stimulus and step are never split."
    )

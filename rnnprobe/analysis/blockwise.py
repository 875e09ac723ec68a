"""Analyses as tasks on the active dask client: blocks of time steps of dask-backed recordings, and
blocks of resamples.

A recording opened with ``Recording.load(path, chunks=...)`` is never gathered whole: an analysis
that is independent across time steps (decoding and encoding over time) runs on blocks of steps,
each block read and analysed by one task (on a ``dask.distributed`` worker when a client is active,
else here, one block after another), and the blocks' results are joined. Every block sees the same
folds, permutations and seeds, so the joined result equals the one computed on the whole layer.

Permutation and bootstrap samples are independent too: with an active client, the drawn samples
(drawn here, from the seed, as without one) are split into blocks evaluated as tasks
(:func:`sample_blocks`), so the result is the same with and without a cluster.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import operator
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

BLOCK_BYTES = 2**28  # states of one block (float64): 256 MiB
SCATTER_BYTES = 2**20  # array arguments larger than this are sent to the workers once, not with every task
TASKS_PER_THREAD = 4  # resampling blocks per worker thread: balance without many tiny tasks


def time_blocks(
    n_stimuli: int, n_units: int, positions: np.ndarray, budget: int | None = None, *, chunks: np.ndarray | None = None,
    result_bytes: int = 0,
) -> list[np.ndarray]:  # fmt: skip
    """The time positions split into consecutive blocks whose float64 states (and ``result_bytes`` a step of the
    block's results) fit in ``budget`` bytes (default BLOCK_BYTES) and of no more than an equal share of the
    active client's worker threads (rounded up: each block is a task; 4 steps of 65 MB in blocks of 3 and 1 kept
    one of 2 workers waiting for the other for half the time). ``chunks``: the stored chunk of each position
    (``Recording.time_chunks``). A block's read decompresses every chunk it touches, so the blocks then read the
    fewest chunks (:func:`chunk_cuts`): 50 steps in chunks of 7 with room for 10 steps a block give 7 blocks that
    decompress 50 steps, not 5 blocks that decompress 78.
    """
    from ._linear import time_blocks as slices

    per_step = n_stimuli * n_units * 8 + result_bytes
    budget = BLOCK_BYTES if budget is None else budget
    client = active_client()
    threads = 1 if client is None else worker_threads(client)
    if chunks is None:
        return [positions[block] for block in slices(len(positions), per_step, budget=budget, parts=threads)]
    most = max(1, min(budget // max(1, per_step), -(-len(positions) // threads)))
    cuts = chunk_cuts(np.asarray(chunks), most)
    return [positions[a:b] for a, b in itertools.pairwise(cuts)]


def stimulus_blocks(n: int, values_per_stimulus: int, chunk: int, *, share: int = 4) -> list[slice]:
    """Consecutive blocks of ``n`` stimuli whose float64 values (``values_per_stimulus`` each) fit in 1 / ``share``
    of BLOCK_BYTES (by default a quarter: a task holds them, a centred copy and what it computes from them),
    whole chunks of ``chunk`` stimuli where one fits.
    """
    size = max(1, BLOCK_BYTES // (8 * share * values_per_stimulus))
    size = size // chunk * chunk or size
    return [slice(a, min(a + size, n)) for a in range(0, n, size)]


def unit_blocks(shape: tuple[int, ...], n: int) -> list[slice]:
    """Blocks along the first axis of a step's unit ``shape`` whose float64 states of ``n`` stimuli take at most a
    quarter of BLOCK_BYTES (a block, a centred copy and what is computed from them), one index at least: the
    reads of a step too large to hold.
    """
    inner = int(np.prod(shape[1:]))
    size = max(1, BLOCK_BYTES // (32 * n * inner))
    return [slice(a, min(a + size, shape[0])) for a in range(0, shape[0], size)]


def step_states(recording: Any, layer: str, position: int) -> Any:
    """One time step (a position) of a layer as a lazy (stimulus, *units) dask array: read by :func:`read_values`."""
    return recording.select(layer, time=[position]).to_dask(layer)[:, 0]


def read_values(x: Any, index: tuple, layer: str) -> np.ndarray:
    """``x[index]`` of a lazy (stimulus, *units) step as (stimuli, units) float64; non-finite states refused."""
    from .._validation import all_finite, check_finite_layer

    values = np.asarray(x[index].compute(), dtype=np.float64)
    values = values.reshape(len(values), -1)
    check_finite_layer(all_finite(values), layer)
    return values


def chunk_cuts(chunks: np.ndarray, most: int) -> list[int]:
    """Where to cut a sequence of positions, ``chunks[i]`` the stored chunk of position i, into consecutive
    blocks of at most ``most`` positions: the fewest chunk reads (each block reads every chunk it touches),
    then the fewest blocks. A dynamic programme over the cut points: the reads of positions j..i-1 are the
    runs of equal chunks among them.
    """
    n = len(chunks)
    run = np.concatenate([[0], np.cumsum(np.diff(chunks) != 0)])  # the run of equal chunks of each position
    cost = np.zeros(n + 1, dtype=np.int64)  # reads x (n + 1) + blocks of the best cuts of the first i positions
    before = np.zeros(n + 1, dtype=np.int64)
    for i in range(1, n + 1):
        j = np.arange(max(0, i - most), i)
        total = cost[j] + (run[i - 1] - run[j] + 1) * (n + 1) + 1
        best = int(np.argmin(total))
        cost[i], before[i] = total[best], j[best]
    cuts = [n]
    while cuts[-1] > 0:
        cuts.append(int(before[cuts[-1]]))
    return cuts[::-1]


def stored_chunks(recording: Any, layer: str, positions: np.ndarray) -> np.ndarray | None:
    """The stored chunk along time of each of ``layer``'s steps at ``positions`` (None in memory): the
    ``chunks`` of :func:`time_blocks`.
    """
    chunks = recording.time_chunks(layer)
    return None if chunks is None else chunks[positions]


def dask_states(recording: Any, layer: str, *, stimuli: Any = None, time: Any = None) -> Any:
    """A dask-backed layer's selected states as a lazy (stimulus, time, units) float64 dask array, the units
    flattened into one chunk: the input of the blockwise RDMs, PCA and timescales.
    """
    x = recording.select(layer, stimuli=stimuli, time=time).to_dask(layer)
    return x.reshape(x.shape[0], x.shape[1], -1).astype(np.float64).rechunk({2: -1})


# group_sums shuffles stimuli into group order where chunks x this < groups x values, by the scheduler that will run
# it. Threads: a piece of dask's shuffle (chunks squared of them) cost 50-170 µs against 2.7-3.8 ns per value of a
# chunk's sums into every group (AMD EPYC, benchmarks/dask_group_sums.py), and this takes pieces ten times dearer.
# dask.distributed (a LocalCluster of 2 processes, the pieces and the sums crossing between them): 20 chunks of
# 2000 groups x 4 of 4096 values, shuffled 0.81x the parts' speed; of 4000 x 2, 1.64x; 8000 x 1, 2.53x; 40 chunks
# of 2000 x 4, 0.49x; 20 of 1000 x 8 of 8192 values, 1.04x: twice the threads' constant splits them.
SHUFFLE_VALUES = {"threads": 330_000, "distributed": 660_000}


def shuffle_values() -> int:
    """SHUFFLE_VALUES for the scheduler a graph built now will run on: the active client's, else threads."""
    return SHUFFLE_VALUES["threads" if active_client() is None else "distributed"]


def group_sums(x: Any, groups: np.ndarray, n_groups: int, *, mean: bool = False) -> Any:
    """Lazy (group, ...) sums (or means, ``mean``) over the stimuli of a dask array x (stimulus, ...), stimulus
    i in group ``groups[i]`` (the blockwise condition means of RDMs, averages, TDR, dPCA and encoding).
    ``groups`` (set, stimulus), several sets of labels (dPCA's label shuffles): lazy (set, group, ...) sums,
    each chunk read once for every set.

    Each chunk of stimuli adds its own part, computed as in memory (:func:`.conditions.sum_group_sets`: a
    dense product with the indicator for few groups, a sparse one for many). A chunk's part covers every group,
    so with one label set of more groups than a chunk has stimuli (images presented a few times each) the
    parts outgrow the chunks; where the stimuli are in group order, chunks of whole groups each sum their own
    instead (:func:`_sums_by_group_chunks`). Stimuli out of order are first taken into order by dask's shuffle
    where its pieces (the chunks squared) cost less than the parts would (:func:`shuffle_values`).
    """
    sets = np.atleast_2d(groups)
    many = len(sets) == 1 and n_groups > max(x.chunks[0], default=0)  # more groups than a chunk has stimuli
    order = np.argsort(sets[0], kind="stable") if many else None
    if many and (in_order(order) or len(x.chunks[0]) * shuffle_values() < n_groups * int(np.prod(x.shape[1:]))):
        sums = _sums_by_group_chunks(take_in_order(x, order), sets[0][order], n_groups)[None]
    else:
        sums = _sums_by_stimulus_chunks(x, sets, n_groups)
    if mean:
        counts = np.stack([np.bincount(labels, minlength=n_groups) for labels in sets]).astype(np.float64)
        sums = sums / np.maximum(counts, 1).reshape(*counts.shape, *[1] * (x.ndim - 1))
    return sums if np.ndim(groups) == 2 else sums[0]


def in_order(order: np.ndarray) -> bool:
    """Whether ``order`` is 0, 1, ..., n - 1 (the stimuli already in that order)."""
    return bool(np.array_equal(order, np.arange(order.size)))


def take_in_order(x: Any, order: np.ndarray) -> Any:
    """The dask array x's stimuli in ``order`` (dask's shuffle), x itself where they already are."""
    return x if in_order(order) else x[order]


def _sums_by_stimulus_chunks(x: Any, sets: np.ndarray, n_groups: int) -> Any:
    """Lazy (set, group, ...) sums of x's stimuli under each label set (set, stimulus): each chunk of stimuli
    sums its own into every group, and the parts are added.
    """
    import dask.array as da

    # the graph holds the labels (compact integers), each task forms its chunk's sums: a dense indicator in the
    # graph took 8 x groups bytes per stimulus (dpca_significance's 21 label sets of 12,000 trials in 10
    # conditions: a 20 MB graph), and a dense product per chunk grew with the groups (3,000 groups of 12,000 x
    # 1024 states: 1.6 s, against 13 ms for the sparse product in memory)
    x = _split_values(x, len(sets) * n_groups)
    labels = da.from_array(sets.astype(np.min_scalar_type(max(n_groups - 1, 0))), chunks=(len(sets), x.chunks[0]))
    other = "abcdefgh"[: x.ndim - 1]
    parts = da.blockwise(_chunk_group_sums, "nk" + other, x, "n" + other, labels, "sn", n_groups=n_groups,
                         new_axes={"k": len(sets) * n_groups}, adjust_chunks={"n": 1}, concatenate=True,
                         dtype=np.float64)  # fmt: skip
    return parts.sum(axis=0).reshape(len(sets), n_groups, *x.shape[1:])


PART_BYTES = 2**25  # bytes of one chunk's sums into every group (its values split along the other axes beyond)


def _split_values(x: Any, n_rows: int) -> Any:
    """The dask array x rechunked along its axes after the stimuli so that ``n_rows`` float64 rows of a chunk's
    values take at most ``PART_BYTES``: a chunk's sums into every group are as large whatever its stimuli (1000
    conditions of 50 steps x 4096 units: 1.6 GB a task). The last axes are kept whole while they fit.
    """
    allowed = max(1, PART_BYTES // (8 * n_rows))
    if int(np.prod([max(c) for c in x.chunks[1:]])) <= allowed:
        return x
    chunks = {}
    for axis in range(x.ndim - 1, 0, -1):
        size = max(x.chunks[axis])
        chunks[axis] = min(size, allowed)
        allowed = max(1, allowed // size)
    return x.rechunk(chunks)


def _chunk_group_sums(block: np.ndarray, labels: np.ndarray, n_groups: int) -> np.ndarray:
    """A chunk's (1, set x group, ...) float64 sums of its stimuli ``block`` under their ``labels`` (set,
    stimulus).
    """
    from .conditions import sum_group_sets

    return sum_group_sets(block, labels, n_groups).reshape(1, -1, *block.shape[1:])


def _sums_by_group_chunks(x: Any, groups: np.ndarray, n_groups: int) -> Any:
    """Lazy (group, ...) sums of x's stimuli in group order (``groups`` ascending), rechunked into chunks of whole
    groups of about x's chunk size, each chunk summing its own groups (an empty group's zeros go with the
    chunk before it): each group's stimuli are added in their order, in one chunk, so the sums are
    :func:`.conditions.sum_groups`'s in memory. 2,000 images x 4 presentations of 4096 values in 20 chunks:
    0.87 s by every chunk's parts over all groups, 0.031 s (AMD EPYC, ``benchmarks/dask_group_sums.py``).
    Stimuli out of group order need dask's shuffle first, whose pieces (chunks squared) can cost more than
    the parts they save (1000 x 20 trials of 1024 values in 200 chunks: 2.0 s against 0.55 s; 2000 x 4 of
    4096 in 20 chunks: 0.10 against 0.62 s): see ``SHUFFLE_VALUES``.
    """
    import dask.array as da

    first = np.append(np.searchsorted(groups, np.arange(n_groups)), groups.size)  # each group's first stimulus
    target = max(x.chunks[0])
    edges = [0]
    for cut in np.unique(np.searchsorted(first[:-1], np.arange(target, groups.size, target))):
        if first[edges[-1]] < first[cut] < groups.size:  # a chunk of at least one stimulus, not after the last
            edges.append(int(cut))
    edges.append(n_groups)
    rows = tuple(int(n) for n in np.diff(first[edges]))
    labels = da.from_array(groups.reshape(-1, *[1] * (x.ndim - 1)), chunks=(rows, *[1] * (x.ndim - 1)))
    return da.map_blocks(_group_range_sums, x.rechunk({0: rows}), labels, np.asarray(edges), dtype=np.float64,
                         chunks=(tuple(np.diff(edges).tolist()), *x.chunks[1:]))  # fmt: skip


def _group_range_sums(block: np.ndarray, labels: np.ndarray, edges: np.ndarray, block_info: Any = None) -> np.ndarray:
    """A chunk of whole groups' (group, ...) sums: groups edges[k]..edges[k + 1] - 1 of the k-th chunk."""
    from .conditions import sum_groups

    k = block_info[0]["chunk-location"][0]
    return sum_groups(block, labels.reshape(-1) - edges[k], int(edges[k + 1] - edges[k]))


def symmetric_gram(x: Any, *also: Any, weighted: Any = None) -> tuple[np.ndarray, ...]:
    """The Gram matrices ``weighted @ x^T`` (time, n, n) of a dask (time, n, p) array ``x`` (``weighted``: ``x``
    times a symmetric matrix, or None for ``x``), computed with the lazy ``also`` in one pass: the blocks of each
    pair of chunks of rows i <= j only, those below the diagonal mirrored; a diagonal block's product is BLAS's
    symmetric one (half the flops; :func:`_block_product`). One product of the whole arrays computed every block
    twice (2000 x 4096 in 2 chunks: 4 general products for 2 symmetric and 1 general).
    """
    import dask

    x, weighted = _rows_for_threads(x, weighted)
    n_chunks = len(x.chunks[1])
    pairs = [(i, j) for i in range(n_chunks) for j in range(i, n_chunks)]
    lazy = [_block_product(x, i, j, weighted) for i, j in pairs]
    blocks, *rest = dask.compute(lazy, *also)
    edges = np.cumsum((0, *x.chunks[1]))
    gram = np.empty((x.shape[0], edges[-1], edges[-1]))
    for (i, j), block in zip(pairs, blocks, strict=True):
        gram[:, edges[i] : edges[i + 1], edges[j] : edges[j + 1]] = block
        if i != j:
            gram[:, edges[j] : edges[j + 1], edges[i] : edges[i + 1]] = block.transpose(0, 2, 1)
    return gram, *rest


SHARED_ROWS = 512  # rows from which a Gram matrix's blocks are cut for the client's threads


def _rows_for_threads(x: Any, weighted: Any) -> tuple[Any, Any]:
    """``x`` (and ``weighted``) with at least SHARED_ROWS rows in fewer than two chunks per worker thread of the
    active client cut into that many (equal) chunks: with k chunks, the k diagonal blocks cost half an
    off-diagonal one, and 2 chunks on 2 workers left one with a diagonal block and the other with the rest
    (3 times the work); 2 x threads chunks share it evenly.
    """
    client = active_client()
    if client is None or x.shape[1] < SHARED_ROWS:
        return x, weighted
    parts = 2 * worker_threads(client)
    if len(x.chunks[1]) >= parts:
        return x, weighted
    size = -(-x.shape[1] // parts)
    return x.rechunk({1: size}), None if weighted is None else weighted.rechunk({1: size})


def _block_product(x: Any, i: int, j: int, weighted: Any) -> Any:
    """The lazy block (i, j) of ``weighted @ x^T`` (``weighted`` None: of ``x @ x^T``). A diagonal block of
    ``x`` with its units in one chunk is each chunk's own symmetric product (dask's matmul handed numpy two
    arrays, so BLAS took the general product: 2000 x 4096 in 2 chunks, 0.63 s a diagonal block against 0.46 s
    for the off-diagonal one, where the symmetric product takes about half).
    """
    a = x.blocks[:, i]
    if weighted is None and i == j and len(x.chunks[2]) == 1:
        return a.map_blocks(_self_product, chunks=(a.chunks[0], a.chunks[1], a.chunks[1]), dtype=a.dtype)
    return (a if weighted is None else weighted.blocks[:, i]) @ x.blocks[:, j].transpose(0, 2, 1)


def _self_product(block: np.ndarray) -> np.ndarray:
    """``block @ block^T`` of a (time, n, p) block: BLAS's symmetric product (numpy takes it for an array and its
    own transpose).
    """
    return block @ block.transpose(0, 2, 1)


def chunk_reduce(
    function: Callable[..., Any],
    arrays: list[Any],
    rows: list[np.ndarray],
    *args: Any,
    combine: Callable[[Any, Any], Any] | None = None,
) -> Any:
    """``function(blocks, *rows of the blocks' stimuli, *args)`` over chunks of stimuli of dask arrays chunked
    alike along their first axis (one task per chunk, the blocks whole along the other axes), the results
    combined in a tree (``combine``, default :func:`add_results`): one delayed value, a pass over the arrays
    that holds only the combined results (the blockwise moments of the alignment metrics and the DMD).
    """
    import dask

    combine = add_results if combine is None else combine
    bounds = np.cumsum((0, *arrays[0].chunks[0]))
    blocks = zip(*[x.to_delayed().ravel() for x in arrays], strict=True)
    parts = [dask.delayed(function)(list(chunk), *[r[a:b] for r in rows], *args)
             for chunk, a, b in zip(blocks, bounds[:-1], bounds[1:], strict=True)]  # fmt: skip
    while len(parts) > 1:
        pairs = [parts[i : i + 2] for i in range(0, len(parts), 2)]
        parts = [dask.delayed(combine)(*pair) if len(pair) == 2 else pair[0] for pair in pairs]
    return parts[0]


def add_results(first: Any, second: Any) -> Any:
    """Two chunks' results together: arrays added, finite flags joined, lists and tuples item by item."""
    if isinstance(first, list | tuple):
        return type(first)(add_results(a, b) for a, b in zip(first, second, strict=True))
    if isinstance(first, bool):
        return first and second
    return first + second


def active_client() -> Any:
    """The active ``dask.distributed`` client, or None (no cluster, or distributed not installed)."""
    distributed = sys.modules.get("distributed")  # a client exists only once distributed was imported
    if distributed is None:
        return None
    try:
        distributed.get_worker()
        return None  # inside a task: its work runs in it, never as tasks it would wait for
    except ValueError:
        pass
    try:
        return distributed.get_client()
    except ValueError:
        return None


def worker_threads(client: Any) -> int:
    """The threads of the client's workers together (at least 1)."""
    return max(1, sum(client.nthreads().values()))


def run_blocks(function: Callable[..., Any], blocks: list[Any], *args: Any) -> list[Any]:
    """``function(block, *args)`` for every block: as tasks on the active client, else here in order."""
    client = active_client()
    if client is None:
        return [function(block, *args) for block in blocks]
    futures = _submitted(client, function, blocks, args)
    try:
        return client.gather(futures)
    finally:  # (a task that failed leaves the others released too, not held by the error's traceback)
        _release(futures)


def sum_blocks(
    function: Callable[..., Any], blocks: list[Any], *args: Any, add: Callable[[Any, Any], Any] = operator.add
) -> Any:
    """The sum, in block order, of ``function(block, *args)`` over the blocks: as tasks on the active client, each
    result fetched when its turn comes, added and released, so that this process holds the running sum and one
    result, not every block's (partial sums of large Gram matrices); else here in turn.
    """
    parts = _results_in_turn(function, blocks, args)
    total = next(parts)
    for part in parts:
        total = add(total, part)
    return total


def blocks_into(out: np.ndarray, function: Callable[..., Any], blocks: list[Any], *args: Any) -> np.ndarray:
    """``out`` filled along its first axis, in block order, by ``function(block, *args)`` of every block (each
    result holding the next rows): as tasks on the active client, each result fetched when its turn comes, copied
    and released, so that this process holds ``out`` and one result, not every block's and their concatenation
    (Euclidean RDMs of 5000 conditions at 4 steps: 381 MiB, their concatenation a peak of 763 MiB); else here in
    turn. Rows the results leave unfilled, or results beyond ``out``, are an error: never a result half-written.
    """
    start = 0
    for part in _results_in_turn(function, blocks, args):
        if start + len(part) > len(out):
            raise RuntimeError(f"blocks_into: the blocks' results hold more than the {len(out)} rows of out")
        out[start : start + len(part)] = part
        start += len(part)
        del part  # (not held while the next is fetched)
    if start != len(out):
        raise RuntimeError(f"blocks_into: the blocks' results filled {start} of the {len(out)} rows of out")
    return out


def _results_in_turn(function: Callable[..., Any], blocks: list[Any], args: tuple) -> Iterator[Any]:
    """``function(block, *args)`` of each block in block order: on the active client (:func:`_in_turn`), else
    here, one at a time.
    """
    client = active_client()
    return (function(block, *args) for block in blocks) if client is None else _in_turn(client, function, blocks, args)


def _in_turn(client: Any, function: Callable[..., Any], blocks: list[Any], args: tuple) -> Iterator[Any]:
    """The tasks' results one at a time, in block order, each future released once fetched."""
    futures = _submitted(client, function, blocks, args)
    try:
        for i, future in enumerate(futures):
            result = future.result()
            futures[i] = None
            future.release()
            yield result
            del result  # (not held while the next is fetched)
    finally:  # a failed task, or a caller that stops early: the rest released
        _release([future for future in futures if future is not None])


def _release(futures: list[Any]) -> None:
    """Release tasks' futures (and cancel those still running): the client holds them, and their results on the
    workers, while any reference to them lives (an error's traceback in a notebook, say).
    """
    for future in futures:
        if not future.done():
            future.cancel()
        future.release()


def _submitted(client: Any, function: Callable[..., Any], blocks: list[Any], args: tuple) -> list[Any]:
    """``function(block, *args)`` of every block submitted as a task (large arrays sent once). The other
    arguments (estimators, settings, functions) go in one pickle with the caller's own code inside
    (:func:`rnnprobe.recording.model_pickle.pickled`): dask's plain pickle named the class of an estimator defined
    in the user's files, which workers started elsewhere cannot import.
    """
    from ..recording.model_pickle import pickled

    shared = [_scattered(client, arg) for arg in args]
    code = [i for i, arg in enumerate(args) if shared[i] is arg and not isinstance(arg, np.ndarray)]
    packed: Any = pickled([args[i] for i in code], what="estimator (or another argument of the analysis)")
    if len(packed) > SCATTER_BYTES:
        packed = client.scatter(packed, broadcast=True, hash=False)
    for i in code:
        shared[i] = None
    task = functools.partial(_in_task, function, code)
    n = len(blocks)
    return client.map(task, [packed] * n, blocks, *[[arg] * n for arg in shared], pure=False)


def _in_task(function: Callable[..., Any], code: list[int], packed: bytes, block: Any, *args: Any) -> Any:
    """``function(block, *args)`` on a worker, the arguments at positions ``code`` unpickled from ``packed``, its
    dask reads computed in the task itself (the synchronous scheduler): a worker's default would submit them to
    the cluster as tasks of their own and wait (AMD EPYC, one 500 MB step of a zarr layer read in a task of a
    1-thread worker: 3.1-4.5 s, 2.6 s so).
    """
    import dask

    from ..recording.model_pickle import unpickled

    arguments = list(args)
    for i, value in zip(code, unpickled(packed, what=UNPICKLED), strict=True):
        arguments[i] = value
    with dask.config.set(scheduler="synchronous"):
        return function(block, *arguments)


UNPICKLED = "estimator: a class or function among the analysis's arguments, such as its estimator's class"


def _scattered(client: Any, arg: Any) -> Any:
    """A large array or a dataclass of arrays as a future held by the workers (sent once, not with every
    task); anything else as it is.
    """
    large = isinstance(arg, np.ndarray) and arg.nbytes > SCATTER_BYTES
    if large or (dataclasses.is_dataclass(arg) and not isinstance(arg, type)):
        return client.scatter(arg, broadcast=True, hash=False)  # a fresh key: never one a released future frees
    return arg


def sample_blocks(n_samples: int) -> list[slice] | None:
    """Blocks of ``n_samples`` resamples for the active client's workers (about TASKS_PER_THREAD per
    worker thread), or None without a client (the caller evaluates them here).
    """
    client = active_client()
    if client is None:
        return None
    bounds = np.linspace(0, n_samples, min(n_samples, worker_threads(client) * TASKS_PER_THREAD) + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]

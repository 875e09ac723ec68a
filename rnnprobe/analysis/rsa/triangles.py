"""Dissimilarities from large Gram matrices, block of rows by block of rows.

An RDM of n conditions comes from each step's n x n Gram matrix by a few elementwise steps (the
correlation's scaling and shift, the Euclidean distance's diagonal sums) and the gather of its strict upper
triangle. Taken one whole matrix at a time, each step is a pass over memory (32 MB a matrix of 2000
conditions); here a block of rows at a time is corrected in place, while it sits in a core's cache, and its
triangle's part copied into the result.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..parallel import equal_shares, task_pool

ROWS_BYTES = 2**23  # from this size of a step's Gram matrix (1024 conditions in float64), RDMs come by rows
BLOCK_BYTES = 2**19  # a block of rows corrected at once: half of a core's L2 cache (1 MiB on the AMD EPYCs measured)


def by_rows(gram: object) -> bool:
    """Whether the RDMs of these (time, n, n) Gram matrices are taken by :func:`upper_triangle_rows`: numpy's,
    of at least ``ROWS_BYTES`` a step. Smaller ones stay in the shared cache, where passes over whole matrices
    (a few numpy calls for a block of steps) cost less than a block of rows' calls and copies (256 conditions x
    20 steps: 0.93-0.98x by rows; 1000 x 4: 0.95-1.05x; 2000 x 1: 1.02-1.12x, AMD EPYC Zen 4, 32 MiB of L3).
    """
    return isinstance(gram, np.ndarray) and gram.shape[-1] ** 2 * gram.itemsize >= ROWS_BYTES


def upper_triangle_rows(
    shape: tuple[int, int],
    rows: Callable[[int, slice], np.ndarray],
    out: np.ndarray | None = None,
    *,
    dtype: object = np.float64,
    threads: int = 1,
    block_bytes: int | None = None,
    whole_rows: bool = False,
) -> np.ndarray:
    """(time, n (n - 1) / 2): the strict upper triangles, row by row (rsatoolbox's order), of the ``shape`` =
    (time, n) n x n matrices whose rows ``rows(t, part)`` computes: step t's rows ``part``, their last columns
    (rows, m) for some m >= n - part.start: from column ``part.start`` on (products made block by block), or
    ``whole_rows`` (rows, n), contiguous rows of a Gram matrix, which it may overwrite; into ``out`` where given
    (else a new array of ``dtype``). The rows go in blocks of at most ``block_bytes`` (default ``BLOCK_BYTES``; one
    row at least), which grow as the rows shorten unless ``whole_rows``; with ``threads`` > 1 each step's rows are
    split into that many contiguous shares of equal pair counts (of equal rows, ``whole_rows``), one worker each.
    Whole rows, for the arithmetic on views of a Gram matrix: numpy's ufuncs took 2-3x as long a value on the
    strided views of their upper parts (50 x 1100 of 1200 columns: 38 against 11 us for 50 x 1200 contiguous).

    One pass over each matrix, where the whole-matrix form of the same arithmetic took five or six, and no
    n x n temporary beside the Gram matrix (2000 conditions, all after the product: correlation 20 -> 14 ms,
    Euclidean 20 -> 8 ms, AMD EPYC Zen 4; the whole RDM of 5000 conditions x 256 units, Euclidean, where the
    temporaries were fresh memory: 1047 -> 235 ms).
    ``rows`` is called once for each row (with threads, shares of rows at the same time): it may overwrite the
    rows it is given, and what it needs of other rows (a diagonal) it takes before the first call.

    Examples
    --------
    >>> gram = np.arange(16.0).reshape(1, 4, 4)
    >>> upper_triangle_rows((1, 4), lambda t, part: gram[t, part, part.start :])
    array([[ 1.,  2.,  3.,  6.,  7., 11.]])
    """
    n_time, n = shape
    if out is None:
        out = np.empty((n_time, n * (n - 1) // 2), dtype=dtype)
    starts = np.concatenate(([0], np.cumsum(np.arange(n - 1, 0, -1))))  # each row's first pair
    budget = (BLOCK_BYTES if block_bytes is None else block_bytes) // out.itemsize
    shares = equal_shares(n - 1, threads) if whole_rows else _pair_shares(starts, threads)
    starts = starts.tolist()

    def share(task: tuple[int, slice]) -> None:
        t, mine = task
        into = out[t]
        first = mine.start
        while first < mine.stop:
            last = min(first + max(1, budget // (n if whole_rows else n - first)), mine.stop)
            block = rows(t, slice(first, last))
            skip = 1 - n + block.shape[1]  # (row i's pairs: from column i + 1, at i + skip in the block)
            for i in range(first, last):
                into[starts[i] : starts[i + 1]] = block[i - first, i + skip :]
            first = last

    tasks = [(t, mine) for t in range(n_time) for mine in shares if mine.stop > mine.start]
    with task_pool(len(tasks), threads=threads) as pmap:
        list(pmap(share, tasks))
    return out


def _pair_shares(starts: np.ndarray, parts: int) -> list[slice]:
    """``parts`` contiguous shares of the rows that have pairs (``starts``: each row's first pair, and the total
    last) with about equal numbers of pairs: the first rows are the longest.
    """
    n_rows = len(starts) - 1
    edges = np.searchsorted(starts, np.linspace(0, starts[-1], parts + 1)[1:-1]).tolist()
    return [slice(a, b) for a, b in zip([0, *edges], [*edges, n_rows], strict=True)]

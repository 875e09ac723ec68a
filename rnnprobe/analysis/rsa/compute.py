"""Representational dissimilarity matrices over time, batched, equal to rsatoolbox's.

For the condition patterns x_i (one per stimulus, or averaged per value of a
metadata column) of one layer at time step t, with n_units channels::

    euclidean     d_ij = ||x_i - x_j||^2 / n_units              (rsatoolbox 'euclidean': squared, per channel)
    euclidean_plain  d_ij = ||x_i - x_j||                        (plain Euclidean distance)
    correlation   d_ij = 1 - pearson(x_i, x_j)
    cosine        d_ij = 1 - x_i . x_j / (||x_i|| ||x_j||)
    mahalanobis   d_ij = (x_i - x_j)^T P (x_i - x_j) / n_units   (P: noise precision, n_units x n_units)
    crossnobis    d_ij = mean over folds f of (a_i - a_j)^T P (b_i - b_j) / n_units, with b the condition
                  means of the stimuli in fold f and a those of the other folds (cross-validated,
                  unbiased: Walther et al. 2016; rsatoolbox's calc_rdm_crossnobis)

All time steps are computed at once from Gram matrices (numpy's BLAS on the
CPU, with the symmetric rank-k product for large condition sets; torch on a
GPU; float64 accumulation by default), which is what makes this fast; results
equal ``rsatoolbox.rdm.calc_rdm``/``calc_rdm_movie`` to 1e-6
relative on the same data. Dissimilarities are stored as vectors of the upper
triangle in row-major order (``scipy.spatial.distance.squareform`` order, as
rsatoolbox does). Patterns with zero variance (correlation) or zero norm
(cosine) give NaN dissimilarities, as in rsatoolbox; rnnprobe warns when that happens.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..._validation import (
    all_finite,
    check_device,
    check_finite,
    check_grouping,
    check_numeric,
    check_option,
    check_recording,
    layer_states,
    refuse_non_finite_squares,
)
from ...errors import (
    ArgumentError,
    RnnprobeWarning,
    ShapeError,
    UnknownNameError,
    describe,
    format_choices,
)
from ...recording import Recording
from .._arrays import to_device
from .._constant import EPS, rounding_only
from ..conditions import sum_groups
from ..parallel import equal_shares, library_threads, small_blas, task_pool
from . import triangles
from .crossnobis import FoldDesign, Whitened, fold_design
from .rdms import DISTANCES, RDMs
from .triangles import by_rows, upper_triangle_rows
from .work import Work, kept_works


def _conditions(
    recording: Recording, descriptor: str | None, stimuli: np.ndarray
) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, int] | None]:
    """The RDM's conditions (descriptors), and each stimulus's condition with their number (None: every
    stimulus is its own condition); ``descriptor`` values in np.unique order, as rsatoolbox.
    """
    if descriptor is None:
        conditions = {"stimulus": stimuli}
        conditions.update({c: np.asarray(recording.column(c))[stimuli] for c in recording.columns})
        return conditions, None
    values = check_grouping(np.asarray(recording.column(descriptor))[stimuli], name=f"descriptor {descriptor!r}")
    unique, inverse = np.unique(values, return_inverse=True)
    return {descriptor: unique}, (inverse, unique.size)


def _group_means(states: np.ndarray, groups: tuple[np.ndarray, int] | None) -> np.ndarray:
    """Average (stimulus, time, units) states per condition (``groups``: each stimulus's condition and their
    number, from :func:`_conditions`; None: the states themselves).
    """
    if groups is None:
        return states
    inverse, n_groups = groups
    sums = sum_groups(states, inverse, n_groups)
    counts = np.bincount(inverse, minlength=n_groups).astype(np.float64)
    return sums / counts[:, None, None]


class _Backend:
    """The few array operations that differ between numpy (CPU) and torch (e.g. on a GPU)."""

    def __init__(self, device: Any, dtype: str) -> None:  # a torch.device (check_device) or None
        self.device, self.dtype = device, dtype
        self.numpy = device is None  # any named device (also "cpu") uses torch
        # another device than the CPU: arrays are sent as they are and cast there (a cast on the host is
        # one more pass over the states on one core)
        self.cast_on_device = device is not None and device.type != "cpu"

    def asarray(self, array: np.ndarray) -> Any:
        if self.numpy:  # BLAS takes time-major views of stimulus-major stacks without a copy if units
            array = np.asarray(array, dtype=self.dtype)  # are contiguous
            return array if array.strides[-1] == array.itemsize else np.ascontiguousarray(array)
        import torch

        dtype = getattr(torch, self.dtype)
        if not self.sendable(array):  # (cast by numpy: also dtypes torch does not hold, such as longdouble)
            return torch.tensor(np.ascontiguousarray(array, dtype=self.dtype), device=self.device)
        return self.send(array).to(dtype)

    def sendable(self, array: np.ndarray) -> bool:
        """Whether ``array`` goes to the device as it is, to be cast there: floats torch holds, not the CPU."""
        return self.cast_on_device and np.asarray(array).dtype in (np.float16, np.float32, np.float64)

    def send(self, array: np.ndarray) -> Any:
        """``array`` on the device in its own dtype (:func:`.._arrays.to_device`)."""
        return to_device(array, self.device)

    def time_blocks(self, patterns: np.ndarray) -> Any:
        """A function of a slice of time steps giving that block of (condition, time, unit) ``patterns``:
        (time, condition, unit), contiguous, on the backend. Where the device holds them with room to spare
        (a quarter of its free memory), the patterns are sent once and blocks taken there: no gather of each
        block on the host (26 ms for a block of 131 MB, more than its transfer, Intel Xeon with an H100).
        """
        if self.sendable(patterns) and 4 * patterns.nbytes < self.free_bytes():
            import torch

            whole, dtype = self.send(patterns), getattr(torch, self.dtype)
            return lambda steps: whole[:, steps].transpose(0, 1).to(dtype).contiguous()
        return lambda steps: self.asarray(patterns[:, steps].transpose(1, 0, 2))

    def free_bytes(self) -> int:
        """Free memory on a CUDA device (0 on others: blocks are sent one by one)."""
        import torch

        return torch.cuda.mem_get_info(self.device)[0] if self.device.type == "cuda" else 0

    def to_numpy(self, array: Any) -> np.ndarray:
        """Results back as float64 (cast on the device before the transfer)."""
        if self.numpy:
            return np.asarray(array, dtype=np.float64)
        import torch

        return array.to(torch.float64).cpu().numpy()

    def where(self, condition: Any, a: Any, b: Any) -> Any:
        if self.numpy:
            return np.where(condition, a, b)
        import torch

        return torch.where(condition, a, b)

    def diagonal(self, g: Any) -> Any:
        return np.diagonal(g, axis1=1, axis2=2) if self.numpy else g.diagonal(dim1=1, dim2=2)

    def sqrt_clipped(self, x: Any) -> Any:
        return np.sqrt(np.clip(x, 0, None)) if self.numpy else x.clamp(min=0).sqrt()

    def transpose(self, x: Any) -> Any:
        return x.transpose(0, 2, 1) if self.numpy else x.transpose(1, 2)

    def gram(self, x: Any, weighted: Any = None, *, threads: int = 1, out: np.ndarray | None = None) -> Any:
        """Batched Gram matrices w x^T (w = x by default), into ``out`` where given (numpy). With numpy and
        w = x, ``step @ step.T`` uses the symmetric rank-k product (half the flops) for large steps, one batched
        product for small ones; ``threads`` > 1: each large step's product in blocks of rows on that many
        workers (:func:`symmetric_product`).
        """
        if weighted is None and self.numpy and x.shape[1] >= 128:
            out = np.empty((x.shape[0], x.shape[1], x.shape[1]), dtype=x.dtype) if out is None else out
            for step, into in zip(x, out, strict=True):
                symmetric_product(step, into, threads)
            return out
        return self.product(x if weighted is None else weighted, self.transpose(x), out=out, threads=threads)

    def product(self, a: Any, b: Any, *, out: np.ndarray | None = None, threads: int = 1) -> Any:
        """``a @ b`` of (time, n, k) ``a`` and (k, m) or (time, k, m) ``b``, into ``out`` where given (numpy's
        only: a device's arrays come from its own allocator). With numpy, ``threads`` > 1 and at least
        ``SPLIT_ROWS`` rows, each step's rows in ``threads`` blocks on that many workers of one BLAS thread:
        OpenBLAS's own threads, once they split a product, spin for a while and take a core from the workers
        of the products after it (:func:`symmetric_product`).
        """
        if not self.numpy:
            return a @ b
        if threads <= 1 or a.shape[1] < SPLIT_ROWS:
            return np.matmul(a, b, out=out)
        if out is None:
            out = np.empty((len(a), a.shape[1], b.shape[-1]), dtype=np.result_type(a, b))
        tasks = [(t, rows) for t in range(len(a)) for rows in equal_shares(a.shape[1], threads)]

        def one(task: tuple[int, slice]) -> None:
            t, rows = task
            np.matmul(a[t, rows], b if b.ndim == 2 else b[t], out=out[t, rows])

        with task_pool(len(tasks), threads=threads) as pmap:
            list(pmap(one, tasks))
        return out


SPLIT_ROWS = 512  # rows from which one step's Gram matrix is split across threads


def symmetric_product(x: np.ndarray, out: np.ndarray, threads: int) -> None:
    """``out[:] = x @ x.T``; with ``threads`` > 1 and at least SPLIT_ROWS rows, from ``threads`` blocks of rows:
    the products of pairs of blocks (one symmetric product per diagonal block, the largest first) on
    ``threads`` workers of one BLAS thread each, taken as they come free (two threads: one off-diagonal product,
    then the two diagonal ones of half its cost). OpenBLAS's own threads split the symmetric product less
    well (2000 x 4096, AMD EPYC, 2 threads: 158 ms against 145 ms; 277 ms on one). Twice as many blocks, as
    before the fifty-second session, made smaller products and more mirrored copies (AMD EPYC Zen 4, 2 threads:
    600 x 512 2.82-2.86 -> 2.45-2.46 ms, 2000 x 4096 171-175 -> 163 ms).
    """
    n = len(x)
    if threads <= 1 or n < SPLIT_ROWS:
        np.matmul(x, x.T, out=out)
        return
    blocks = equal_shares(n, threads)
    pairs = [(i, j) for i in range(len(blocks)) for j in range(i + 1, len(blocks))]
    pairs += [(i, i) for i in range(len(blocks))]  # the off-diagonal blocks cost twice the diagonal ones

    def one(pair: tuple[int, int]) -> None:
        rows, columns = blocks[pair[0]], blocks[pair[1]]
        np.matmul(x[rows], x[columns].T, out=out[rows, columns])
        if pair[0] != pair[1]:
            out[columns, rows] = out[rows, columns].T

    with task_pool(len(pairs), threads=threads) as pmap:
        list(pmap(one, pairs))


def upper_triangles(full: Any, out: np.ndarray | None = None) -> Any:
    """(time, n, n) -> (time, n (n - 1) / 2), the strict upper triangles row by row (rsatoolbox's order).

    numpy: large matrices row by row (contiguous slices, no index arrays: 3x faster than a fancy-index
    gather at n = 1000), small ones by one ``take`` of flat indices, into ``out`` where given; torch: indices
    made on its device.
    """
    n = full.shape[-1]
    if not isinstance(full, np.ndarray):
        import torch

        rows, columns = torch.triu_indices(n, n, 1, device=full.device)  # made there: no transfer
        return full[:, rows, columns]
    if out is None:
        out = np.empty((full.shape[0], n * (n - 1) // 2), dtype=full.dtype)
    if n < 128:  # ("wrap": in range; "raise" would buffer the output)
        return np.take(full.reshape(full.shape[0], -1), _upper_flat(n), axis=1, out=out, mode="wrap")
    start = 0
    for i in range(n - 1):
        out[:, start : start + n - 1 - i] = full[:, i, i + 1 :]
        start += n - 1 - i
    return out


@functools.lru_cache(maxsize=16)
def _upper_flat(n: int) -> np.ndarray:
    """The flat indices of an n x n matrix's strict upper triangle, row by row (read-only; made once per n: a
    block of 13 steps of 92 conditions, 73 -> 60 us, AMD EPYC).
    """
    flat = np.flatnonzero(~np.tri(n, dtype=bool))
    flat.flags.writeable = False
    return flat


def _normalised_distances(
    patterns: np.ndarray, distance: str, backend: _Backend, threads: int, out: np.ndarray | None, work: Work
) -> np.ndarray | None:
    """1 - cosine or 1 - Pearson r of every pair, (time, n_pairs) (into ``out`` where given; the n x n arrays
    from ``work``), from raw Gram matrices and row means: no centred or normalised copies of the patterns (which
    cost as much as the products on this machine). With D = diag(cov)^-1/2 and a = sqrt(p) D m,
    r = D G D - a a' (cov = G - p m m'), taken in place on each Gram matrix by two outer products of vectors
    (streaming passes over each matrix, faster than gathering each pair's means and norms: 17.7 -> 14.1 ms for 50
    steps of 92 conditions x 512 units, AMD EPYC; large matrices block of rows by block of rows,
    :func:`by_rows`). cov_ij = G_ij - p m_i m_j
    cancels digits when a pattern's mean is large against its spread; when mean^2 exceeds 1e6 times the variance
    anywhere (relative error above ~1e-10), or a pattern is constant, returns None and the caller centres
    explicitly. The means' product runs on one BLAS thread where the Gram matrix is split over ``threads``
    workers: OpenBLAS's threads, once they split a product, spin for a while and took a core from those workers
    (800 conditions x 1024 units on two threads: 20.4 ms, 0.88x one thread's time).
    """
    _, n, n_units = patterns.shape
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite patterns: refused just below
        gram = backend.gram(patterns, threads=threads, out=work.out("gram", (len(patterns), n, n)))
    square = np.diagonal(gram, axis1=1, axis2=2).copy()
    require_finite_norms(square)
    if distance == "correlation":
        with small_blas() if threads > 1 else contextlib.nullcontext():  # (see below)
            means = patterns @ np.full(n_units, 1 / n_units)  # BLAS's product: 2.8x faster than .mean here
        centred = square - n_units * means**2
        if not np.all(centred * (1 + 1e6) > square):
            return None
        square = centred
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero pattern: NaN, as 1 - 0 / 0
        scale = 1 / np.sqrt(square)
        shifted = np.sqrt(n_units) * means * scale if distance == "correlation" else None
    if by_rows(gram):
        rows = _normalised_rows(gram_rows(gram), scale, shifted)
        return upper_triangle_rows(gram.shape[:2], rows, out, dtype=gram.dtype, threads=threads, whole_rows=True)
    with np.errstate(invalid="ignore"):  # (einsum: 1.4x faster than a broadcast product here)
        outer = np.einsum("ti,tj->tij", scale, scale, out=work.out("outer", gram.shape, scale.dtype))
        gram *= outer
        if shifted is not None:
            gram -= np.einsum("ti,tj->tij", shifted, shifted, out=outer)
    return one_minus_clipped(upper_triangles(gram, out))


def gram_rows(gram: np.ndarray) -> Callable[[int, slice], np.ndarray]:
    """:func:`upper_triangle_rows`'s whole raw rows of (time, n, n) matrices: step t's rows ``part``, a view."""
    return lambda t, part: gram[t, part]


def _normalised_rows(
    products: Callable[[int, slice], np.ndarray], scale: np.ndarray, shifted: np.ndarray | None
) -> Callable[..., np.ndarray]:
    """:func:`upper_triangle_rows`'s rows of 1 - r from the rows of raw Gram matrices that ``products`` gives,
    r = s_i s_j G_ij - a_i a_j (cosine: ``shifted`` a is None), as :func:`_normalised_distances` takes them on
    whole matrices (the same numbers).
    """

    def rows(t: int, part: slice) -> np.ndarray:
        block = products(t, part)
        columns = slice(scale.shape[1] - block.shape[1], None)  # (whole rows, or from the diagonal on)
        with np.errstate(invalid="ignore"):  # (NaN of a zero pattern)
            block *= np.multiply.outer(scale[t, part], scale[t, columns])
            if shifted is not None:
                block -= np.multiply.outer(shifted[t, part], shifted[t, columns])
        return one_minus_clipped(block)

    return rows


def one_minus_clipped(similarities: np.ndarray) -> np.ndarray:
    """1 - r in place, clipped to [0, 2]: |r| past 1 by rounding never makes a dissimilarity negative."""
    np.subtract(1, similarities, out=similarities)
    return np.clip(similarities, 0, 2, out=similarities)


def _dissimilarities(
    patterns: Any, distance: str, precision: Any, backend: _Backend, threads: int = 1, out: np.ndarray | None = None,
    work: Work | None = None,
) -> np.ndarray:  # fmt: skip
    """(time, n, units) patterns -> (time, n_pairs) upper triangles (``threads``: workers for each step's
    Gram matrix, :func:`symmetric_product`); into ``out`` where given; n x n work arrays from ``work``.
    """
    _, n, n_units = patterns.shape
    upper = None
    into = out if out is not None and out.dtype == np.dtype(backend.dtype) else None
    work = work or Work(backend.numpy, backend.dtype)
    if row_products(backend, n, n_units):
        upper = _row_product_dissimilarities(patterns, distance, precision, backend, threads, into)
    elif _normalised_from_raw_gram(backend, distance, n, n_units):
        upper = _normalised_distances(patterns, distance, backend, threads, into, work)
    if upper is None:
        if distance in ("correlation", "cosine"):
            eps = float(np.finfo(backend.dtype).eps)
            patterns = unit_patterns(patterns, distance, backend.where, eps=eps)
            gram = backend.gram(patterns, threads=threads, out=work.out("gram", (len(patterns), n, n)))
        else:
            gram = _plain_gram(patterns, distance, precision, backend, threads, work)
        upper = distances_from_gram(gram, distance, n_units, backend, out=into, threads=threads)
    if out is None or upper is out:
        return upper
    out[...] = upper
    return out


ROW_PRODUCTS = 6  # conditions per unit from which large RDMs come from products by blocks of rows
PRODUCT_BYTES = 2**22  # a block of rows' products: 4 MiB (over 100 rows of 5000 conditions: GEMM's pace)


def row_products(backend: _Backend, n: int, n_units: int) -> bool:
    """Whether RDMs of ``n`` conditions come from products by blocks of rows, never an n x n matrix
    (:func:`_row_product_dissimilarities`): with numpy, for RDMs taken by rows (:func:`by_rows`) of at least
    ``ROW_PRODUCTS`` conditions per unit. Few units make the symmetric product slow against GEMM on blocks of
    rows (5000 x 256: 157 ms against 134 ms on the upper triangle) and the Gram matrix's passes over memory the
    larger part of the rest. Euclidean RDMs, one thread, AMD EPYC Zen 4, Gram matrix / blocks of rows: 5000 x 32,
    128, 256, 512 units 2.19x, 1.43x, 1.23x, 1.04x the time; 2000 x 128, 256 1.33x, 1.12x; 1200 x 64, 128, 256
    1.25x, 1.11x, 0.90x; 3000 x 512 1.01x (correlation alike, 0.98x at 1200 x 128; two threads 0.90-1.62x).
    """
    size = n * n * np.dtype(backend.dtype).itemsize
    return backend.numpy and size >= triangles.ROWS_BYTES and n >= ROW_PRODUCTS * n_units


def _row_product_dissimilarities(
    patterns: np.ndarray, distance: str, precision: Any, backend: _Backend, threads: int, out: np.ndarray | None
) -> np.ndarray:
    """(time, n_pairs) dissimilarities of (time, n, units) numpy patterns from the products of blocks of rows
    with the patterns from their first row on (the upper triangle's part: half a Gram matrix's products, in
    ``PRODUCT_BYTES`` at a time), corrected as :func:`distances_from_gram` corrects a Gram matrix's rows; on
    ``threads`` workers (shares of rows). Normalised patterns (:func:`unit_patterns`) for "correlation" and
    "cosine"; else the squared norms are checked (:func:`require_finite_norms`) and patterns far from the
    origin centred first (:func:`offset_dominates`).
    """
    n_time, n, n_units = patterns.shape
    if distance in ("correlation", "cosine"):
        x = weighted = unit_patterns(patterns, distance, np.where, eps=float(np.finfo(patterns.dtype).eps))
        squares = None
    else:
        x, weighted, squares = _weighted_squares(patterns, distance, precision, backend, threads)
    size = max(PRODUCT_BYTES // patterns.itemsize, n)  # (a block holds one row at least)
    with kept_works(Work, True, patterns.dtype.name) as mine:

        def products(t: int, part: slice) -> np.ndarray:  # into the worker's kept array: fresh ones of 4 MiB
            shape = (part.stop - part.start, n - part.start)  # a block cost 36 of 216 ms at 5000 x 256
            into = mine().out("products", (size,))[: shape[0] * shape[1]].reshape(shape)
            return np.matmul(weighted[t, part], x[t, part.start :].T, out=into)

        rows = _distance_rows(products, squares, distance, n_units)
        return upper_triangle_rows((n_time, n), rows, out, dtype=patterns.dtype, threads=threads,
                                   block_bytes=PRODUCT_BYTES)  # fmt: skip


def _weighted_squares(
    patterns: np.ndarray, distance: str, precision: Any, backend: _Backend, threads: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, w, squares) for :func:`_row_product_dissimilarities`: the patterns x (centred across conditions where
    their offset from the origin would cost digits), w = x P ("mahalanobis") or x, and the squared norms
    w_i . x_i, the Gram matrix's diagonal (checked: non-finite patterns and overflow are refused). The offset
    from sums of patterns: the Gram matrix's sum is (sum_i w_i) . (sum_j x_j).
    """
    n = patterns.shape[1]

    def weighed(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if isinstance(precision, Whitened):  # x P x' = (x L)(x L)'
            x = backend.product(x, precision.factor, threads=threads)
        w = backend.product(x, precision, threads=threads) if _weighs(distance, precision) else x
        return x, w, np.einsum("tij,tij->ti", w, x)

    with np.errstate(over="ignore", invalid="ignore"):  # (refused just below)
        x, weighted, squares = weighed(patterns)
    require_finite_norms(squares)
    total = np.einsum("tk,tk->t", weighted.sum(axis=1), x.sum(axis=1))
    if _far_from_origin(total / n**2, squares.sum(axis=1) / n):
        x, weighted, squares = weighed(patterns - patterns.mean(axis=1, keepdims=True))
    return x, weighted, squares


def _weighs(distance: str, precision: Any) -> bool:
    """Whether the patterns are weighted by the precision's product (mahalanobis, a precision not whitened)."""
    return distance == "mahalanobis" and not isinstance(precision, Whitened)


def _normalised_from_raw_gram(backend: _Backend, distance: str, n: int, n_units: int) -> bool:
    """Whether correlation or cosine distances come from raw Gram matrices corrected in place
    (:func:`_normalised_distances`): with numpy, unless conditions outnumber units twice (normalised copies of
    the patterns cost more from there on; the n x n corrections cost more below: 1000 conditions x 1024 units
    33 -> 29 ms per step, x 256 equal, x 10 units 1.4 -> 2.6 ms, AMD EPYC).
    """
    return backend.numpy and distance in ("correlation", "cosine") and 2 * n_units >= n


def refuses_non_finite_itself(backend: _Backend, distance: str, n: int, n_units: int) -> bool:
    """Whether :func:`_dissimilarities` refuses non-finite patterns itself, from the squared norms on the
    diagonals of the raw Gram matrices it computes anyway (:func:`require_finite_norms`): with numpy, for the
    Euclidean distances and for correlation and cosine from raw Gram matrices. The states then need no pass of
    their own (one read of the layer: 0.6 of 10 ms for the RDM movie of 92 x 50 x 512, AMD EPYC). Not for
    mahalanobis (a weighted Gram matrix: a BLAS that skips zero weights could miss a NaN), normalised patterns
    (NaN by design where a pattern is constant) or a device.
    """
    euclidean = backend.numpy and distance in ("euclidean", "euclidean_plain")
    return euclidean or _normalised_from_raw_gram(backend, distance, n, n_units)


def crossnobis_refuses_non_finite_itself(backend: _Backend, design: FoldDesign, precision: Any) -> bool:
    """Whether :func:`_crossnobis_block` refuses non-finite states itself, from its kernels' diagonals: with numpy,
    where the folds present every condition equally often and no precision weighs the units
    (:meth:`FoldDesign.balanced`: the kernels are then symmetric products, whose diagonals hold every (fold,
    condition) pattern's squared norm). ``compute_rdms`` checks the states first otherwise.
    """
    return backend.numpy and design.balanced(precision)


class NonFinitePatterns(Exception):
    """A pattern's squared norm is NaN or inf (:func:`require_finite_norms`); ``compute_rdms`` turns it into
    :class:`~rnnprobe.errors.NonFiniteError`, naming the states' non-finite values or the overflow.
    """


def require_finite_norms(squares: np.ndarray) -> None:
    """Raise :class:`NonFinitePatterns` unless every squared norm (a Gram matrix's diagonal) is finite. NaN or
    inf among a pattern's values makes its sum of squares NaN or inf whatever the order of the additions (a
    square is never negative: no inf - inf; BLAS multiplies a NaN by itself there, never skipped as a zero);
    finite values give a finite sum unless their squares overflow (above about 1e154 in float64).
    """
    if not np.isfinite(squares).all():
        raise NonFinitePatterns


def _plain_gram(patterns: Any, distance: str, precision: Any, backend: _Backend, threads: int, work: Work) -> Any:
    """The Gram matrices of the patterns (weighted by the precision for "mahalanobis"), of the patterns
    centred across conditions where their offset from the origin would cost digits (:func:`offset_dominates`),
    in ``work``'s array. With numpy, their (weighted) squared norms are checked: states that are not finite are
    refused there (:func:`refuses_non_finite_itself`; mahalanobis's were checked before, and overflow is refused
    here).
    """
    n = patterns.shape[1]

    def weighted_gram(x: Any) -> Any:
        if isinstance(precision, Whitened):  # x P x' = (x L)(x L)': a symmetric product
            x = backend.product(x, precision.factor, threads=threads)
        weighted = backend.product(x, precision, threads=threads) if _weighs(distance, precision) else None
        return backend.gram(x, weighted, threads=threads, out=work.out("gram", (len(x), n, n)))

    with np.errstate(over="ignore", invalid="ignore") if backend.numpy else contextlib.nullcontext():  # (below)
        gram = weighted_gram(patterns)
    if backend.numpy:
        require_finite_norms(np.diagonal(gram, axis1=1, axis2=2))
    if offset_dominates(gram):  # distances from patterns far from the origin: centred across conditions first
        gram = weighted_gram(patterns - patterns.mean(axis=1, keepdims=True))
    return gram


OFFSET_RATIO = 1e4  # squared norm of the conditions' mean pattern against their mean squared distance from it


def offset_dominates(gram: Any) -> bool:
    """Whether at some step the conditions' mean pattern lies so far from the origin, against their spread about
    it, that distances from the Gram matrix G (G_ii + G_jj - 2 G_ij) lose digits: a relative error of about eps
    ||m||^2 / spread (1e-3 for patterns 1e3 from the origin that differ by 1e-3; 12% at 1e4, as rsatoolbox's).
    Distances do not change when every pattern moves by the same vector, so centring them on m recovers the
    digits. From G alone (numpy or torch; (time, n, n)): ||m||^2 = sum(G) / n^2, the spread trace(G) / n - ||m||^2.
    """
    n = gram.shape[1]
    return _far_from_origin(gram.sum(axis=(1, 2)) / n**2, gram.diagonal(0, 1, 2).sum(axis=1) / n)


def _far_from_origin(mean_square: Any, mean_norm: Any) -> bool:
    """:func:`offset_dominates` from each step's ||m||^2 and mean squared norm (the spread about m: their
    difference).
    """
    return bool((mean_square > OFFSET_RATIO * (mean_norm - mean_square)).any())


def unit_patterns(x: Any, distance: str, where: Any, *, eps: float = EPS) -> Any:
    """Each pattern (the last of 3 axes: units) scaled to length 1, centred first for "correlation", as numpy,
    torch or dask arrays (``where``: their ``where``; ``eps``: the arithmetic's). A pattern that is zero
    (cosine) or constant across units (correlation) becomes NaN: no correlation is defined. Constant includes
    a spread no more than rounding leaves (:func:`.._constant.rounding_only`): a pattern of 0.1s, which no
    float64 mean equals, keeps about 1e-17 per unit once centred, and scaled to length 1 it would correlate
    by chance with every other pattern (rsatoolbox gives such a pattern a dissimilarity of 1, an exactly
    constant one NaN).
    """
    n = x.shape[2]
    if distance == "correlation":
        mean = x.mean(axis=2, keepdims=True)
        x = x - mean
    squares = (x * x).sum(axis=2, keepdims=True)
    if distance == "correlation":
        squares = where(rounding_only(squares / n, mean, n, eps=eps), np.nan, squares)
    with np.errstate(invalid="ignore", divide="ignore"):  # (0 / 0: NaN)
        return x / squares**0.5


def distances_from_gram(
    gram: Any, distance: str, n_units: int, backend: _Backend | None = None, *, out: np.ndarray | None = None,
    threads: int = 1,
) -> np.ndarray:  # fmt: skip
    """(time, n_pairs) dissimilarities from (time, n, n) Gram matrices: of normalised patterns for
    "correlation" and "cosine" (1 - G), else of the raw (or precision-weighted) patterns
    (-2 G_ij + G_ii + G_jj, over ``n_units`` or its square root for "euclidean_plain"). ``gram`` is
    overwritten. Large ones by blocks of rows (:func:`by_rows`, :func:`upper_triangle_rows`: into ``out`` where
    given, on ``threads`` workers); else on whole matrices, in place: no n x n temporary (the sums of the
    diagonals in a temporary of their own cost a pass more; fresh ones of 4 MiB per block of rows, 60 of 220 ms
    for the RDM of 5000 conditions x 256 units, AMD EPYC Zen 4). The same numbers to the bit either way.
    """
    backend = backend or _Backend(None, "float64")
    if by_rows(gram):
        squares = None if distance in ("correlation", "cosine") else np.diagonal(gram, axis1=1, axis2=2).copy()
        rows = _distance_rows(gram_rows(gram), squares, distance, n_units)  # (the diagonal taken before the rows)
        return upper_triangle_rows(gram.shape[:2], rows, out, dtype=gram.dtype, threads=threads, whole_rows=True)
    if distance in ("correlation", "cosine"):
        return np.clip(backend.to_numpy(1 - upper_triangles(gram)), 0, 2)  # (|r| past 1 by rounding)
    diag = backend.diagonal(gram)
    diag = diag.copy() if backend.numpy else diag.clone()  # (taken before the diagonal changes)
    _squared_from_gram(gram, diag, diag)
    if not backend.numpy:
        upper = upper_triangles(gram)
        return backend.to_numpy(backend.sqrt_clipped(upper) if distance == "euclidean_plain" else upper / n_units)
    return backend.to_numpy(_from_squared(upper_triangles(gram, out), distance, n_units))


def _squared_from_gram(block: Any, rows: Any, columns: Any) -> Any:
    """Squared distances -2 G_ij + G_ii + G_jj in place of (..., rows, columns) Gram entries ``block`` (numpy
    or torch), from the squared norms of its ``rows`` and ``columns`` (..., rows) and (..., columns): the
    one order of operations of whole matrices and blocks of rows.
    """
    block *= -2
    block += rows[..., :, None]
    block += columns[..., None, :]
    return block


def _from_squared(squared: np.ndarray, distance: str, n_units: int) -> np.ndarray:
    """Squared Euclidean distances (a numpy array) made ``distance``'s dissimilarities in place: their square roots
    for "euclidean_plain" (rounding below 0 clipped), else divided by ``n_units``.
    """
    if distance == "euclidean_plain":
        return np.sqrt(np.clip(squared, 0, None, out=squared), out=squared)
    squared /= n_units
    return squared


def _distance_rows(
    products: Callable[[int, slice], np.ndarray], squares: np.ndarray | None, distance: str, n_units: int
) -> Callable[..., np.ndarray]:
    """:func:`upper_triangle_rows`'s rows of :func:`distances_from_gram`'s dissimilarities (the same numbers) from
    the rows of Gram matrices that ``products`` gives: of normalised patterns for "correlation" and "cosine",
    else of raw (or weighted) ones, whose squared norms (the diagonals) are ``squares``, (time, n).
    """
    if distance in ("correlation", "cosine"):
        return lambda t, part: one_minus_clipped(products(t, part))

    def rows(t: int, part: slice) -> np.ndarray:
        block = products(t, part)
        columns = squares[t, squares.shape[1] - block.shape[1] :]  # (whole rows, or from the diagonal on)
        return _from_squared(_squared_from_gram(block, squares[t, part], columns), distance, n_units)

    return rows


BLOCK_BYTES = 2**28  # the n x n work arrays of one block of time steps stay under 256 MiB
CACHE_BYTES = 2**20  # Gram matrices per block of steps: small blocks stay in cache (92 x 92 x 50 steps, AMD EPYC:
# blocks of 15 steps 9.3 ms, all 50 at once 12.4 ms; 1000 x 1000 x 4: one step at a time 7% faster)


def _blocked_dissimilarities(patterns: np.ndarray, distance: str, precision: Any, backend: _Backend) -> np.ndarray:
    """(condition, time, unit) patterns -> (time, n_pairs), in :func:`_by_blocks_of_steps`; a positive definite
    precision as its Cholesky factor (:class:`Whitened`: the patterns whitened, then symmetric products).
    """
    block = backend.time_blocks(patterns)  # (recordings hand out read-only, possibly strided views)
    if distance == "mahalanobis":
        precision = Whitened.for_mahalanobis(precision, backend, patterns.shape)

    def one(steps: slice, threads: int, out: np.ndarray, work: Work) -> None:
        _dissimilarities(block(steps), distance, precision, backend, threads, out, work)

    return _by_blocks_of_steps(patterns.shape[0], patterns.shape[1], backend, one)


def _by_blocks_of_steps(
    n: int, n_time: int, backend: _Backend, block: Callable[[slice, int, np.ndarray, Work], None], *,
    arrays: int = 3,
) -> np.ndarray:  # fmt: skip
    """The (time, n_pairs) RDMs of ``n`` conditions that ``block(steps, threads, out, work)`` writes into ``out``
    for each block of time steps: blocks whose n x n matrices fit in ``CACHE_BYTES`` on the CPU (``arrays`` of
    them in ``BLOCK_BYTES`` on a device; one step at least). Memory stays bounded by the result and one block
    per thread, and an interrupt (Ctrl-C) is taken between blocks. On the CPU with more than one library thread,
    blocks run on that many workers of one thread each (the products per step are too small for BLAS to split;
    ``threads`` 1); with fewer blocks than threads (one large RDM), a block gets every thread, for its steps'
    products and rows. ``work``: the worker's arrays (:class:`Work`), reused from block to block and kept for the
    next call (:func:`.work.kept_works`).
    """
    threads = library_threads() if backend.numpy else 1
    budget = CACHE_BYTES if backend.numpy else BLOCK_BYTES // arrays  # a device: few large blocks
    most = max(1, budget // (8 * n * n))  # steps per block within the budget
    n_blocks = threads * -(-n_time // (threads * most))  # a multiple of the threads: the workers get equal shares
    step = -(-n_time // n_blocks)
    out = np.empty((n_time, n * (n - 1) // 2))
    starts = range(0, n_time, step)
    inner = threads if len(starts) < threads else 1

    with kept_works(Work, backend.numpy, backend.dtype) as mine, task_pool(len(starts), threads=threads) as pmap:

        def one(start: int) -> None:
            steps = slice(start, start + step)
            block(steps, inner, out[steps], mine())

        list(pmap(one, starts))
    return out


def crossnobis_dissimilarities(
    states: np.ndarray, design: FoldDesign, precision: Any, backend: _Backend | None = None
) -> np.ndarray:
    """Cross-validated Mahalanobis distances of (stimulus, time, unit) states, in blocks of steps; (time, n_pairs)
    (numpy in float64 without a ``backend``; ``precision`` on the backend).
    """
    # sums of every (fold, condition) in one pass (the states themselves, a view, where each is one stimulus);
    # each fold's training mean pools the observations of all other folds (as rsatoolbox), its test mean those
    # of the fold. (Summed block by block on the workers instead, each block's strided steps were copied into
    # fresh memory for the sparse product: folds of two sizes, 92 conditions x 50 steps x 512 units, 73 -> 81 ms
    # on one thread, 48-51 ms on two either way.)
    return crossnobis_of_sums(sum_groups(states, design.groups, design.n_groups), design, precision, backend)


def crossnobis_of_sums(sums: np.ndarray, design: FoldDesign, precision: Any, backend: _Backend | None = None
                       ) -> np.ndarray:  # fmt: skip
    """:func:`crossnobis_dissimilarities` from the sums (group, time, unit) of the design's groups, in
    :func:`_by_blocks_of_steps` (on the CPU, kernels of a block within ``CACHE_BYTES``, the blocks on the library
    threads; 92 conditions x 4 runs x 50 steps x 512 units had taken every step at once, on one core).
    """
    backend = backend or _Backend(None, "float64")
    saved = design.whitening_saves(sums.shape[1], sums.shape[2])
    precision = Whitened.where_possible(precision, backend, saved=saved)  # (factored once for every block)

    def block(steps: slice, threads: int, out: np.ndarray, work: Work) -> None:
        _crossnobis_block(sums[:, steps], design, precision, backend, threads, out, work)

    return _by_blocks_of_steps(design.conditions.size, sums.shape[1], backend, block, arrays=4)


def _crossnobis_block(
    sums: np.ndarray, design: FoldDesign, precision: Any, backend: _Backend, threads: int, out: np.ndarray,
    work: Work,
) -> None:  # fmt: skip
    """``out[:]`` = the crossnobis distances of a block of steps. Where its kernels are so large against its
    distances (K_ii + K_jj - K_ij - K_ji) that the differences lose digits (patterns far from the origin against
    their spread: 1e4 from it, differing by 1e-3, were 5% off), its observations are taken less their grand mean
    first (the group sums less their counts times it): distances do not change when every pattern moves by the
    same vector.
    """
    folds, units = design.folds.size, sums.shape[2]
    checked = crossnobis_refuses_non_finite_itself(backend, design, precision)
    with np.errstate(invalid="ignore", over="ignore") if checked else contextlib.nullcontext():
        kernel = design.kernels(sums, precision, backend, threads=threads, work=work)
    if checked:
        require_finite_norms(np.diagonal(kernel, axis1=1, axis2=2))
    _kernel_distances(kernel, folds, units, backend, out, threads, work)
    if largest(kernel) > DIGITS_RATIO * folds * units * largest(out):
        counts = design.counts.reshape(-1, 1, 1).astype(np.float64)
        centred = sums - counts * (sums.sum(axis=0) / counts.sum())
        kernel = design.kernels(centred, precision, backend, threads=threads, work=work)
        _kernel_distances(kernel, folds, units, backend, out, threads, work)


DIGITS_RATIO = 1e5  # kernel entries against distances beyond which the differences keep fewer than ~10 digits


def largest(x: Any) -> float:
    """The largest magnitude in a numpy array (from its maximum and minimum: no temporary) or a torch tensor."""
    if isinstance(x, np.ndarray):
        return max(float(x.max()), -float(x.min()))
    return float(x.abs().max())


def _kernel_distances(
    kernel: Any, folds: int, units: int, backend: _Backend, out: np.ndarray, threads: int, work: Work
) -> None:
    """``out[:]`` = the upper triangles of (K_ii + K_jj - K_ij - K_ji) / folds / units (time, condition,
    condition) of the kernels K summed over the folds: the crossnobis distances. Large ones by blocks of rows
    (:func:`by_rows`; ``threads`` workers), with no n x n array beside the kernels; else whole, in place (in
    ``work``'s arrays).
    """
    if by_rows(kernel):
        upper_triangle_rows(kernel.shape[:2], _difference_rows(kernel, folds, units), out, threads=threads,
                            whole_rows=True)  # fmt: skip
        return
    diag = backend.diagonal(kernel)  # the diagonal of the sum is the sum of the folds' diagonals
    if backend.numpy:
        total = np.add(diag[:, :, None], diag[:, None, :], out=work.out("differences", kernel.shape))
    else:
        total = diag[:, :, None] + diag[:, None, :]
    total -= kernel
    total -= backend.transpose(kernel)
    total /= folds
    total /= units
    if backend.numpy and total.dtype == out.dtype:
        upper_triangles(total, out)
    else:  # (float32 kernels: the triangles cast)
        out[...] = backend.to_numpy(upper_triangles(total))


def _difference_rows(kernel: np.ndarray, folds: int, units: int) -> Callable[..., np.ndarray]:
    """:func:`upper_triangle_rows`'s rows of :func:`_kernel_distances` (the same numbers). The kernels are read,
    not overwritten: a block of rows needs the same columns of every row.
    """
    diag = np.diagonal(kernel, axis1=1, axis2=2)

    def rows(t: int, part: slice) -> np.ndarray:
        block = np.add.outer(diag[t, part], diag[t])
        block -= kernel[t, part]
        block -= kernel[t, :, part].T
        block /= folds
        block /= units
        return block

    return rows


def compute_rdms(
    recording: Recording,
    layer: str | None = None,
    *,
    distance: str = "correlation",
    time: Any = None,
    descriptor: str | None = None,
    stimuli: Any = None,
    noise: np.ndarray | None = None,
    cv_descriptor: str | None = None,
    dtype: str = "float64",
    device: str | None = None,
) -> RDMs:
    """One RDM per time step of a layer (all steps computed in one batched product).

    Parameters
    ----------
    recording : Recording
        A dask-backed recording (``Recording.load(path, chunks=...)``) is computed blockwise, never read
        whole, for every distance without ``device`` (in float64; :mod:`rnnprobe.analysis.rsa.blockwise`).
    layer : str, optional
        May be omitted for a single-layer recording; units are flattened.
    distance : {"euclidean", "euclidean_plain", "correlation", "cosine", "mahalanobis", "crossnobis"}
        See the module docstring; "euclidean" is rsatoolbox's (squared, divided by the number of units).
    time : int, slice or sequence of int, optional
        Time steps (default: all).
    descriptor : str, optional
        Average the stimuli sharing a value of this metadata column into one condition
        (e.g. image id), as rsatoolbox's ``descriptor``.
    stimuli : optional
        Use only these stimuli (index, mask or list).
    noise : ndarray, (n_units, n_units), optional
        Noise precision matrix for "mahalanobis" (required) and "crossnobis" (default: identity): finite and
        symmetric (to 1e-8 of its largest value; an asymmetric one is refused, as its distances would not be
        Mahalanobis distances).
    cv_descriptor : str, optional
        For "crossnobis": the metadata column giving each stimulus' fold (run, session). Default: the
        k-th presentation of each condition is fold k (as rsatoolbox).
    dtype : {"float64", "float32"}
        Accumulation precision (float32 is faster on the CPU; on a GPU the host's work dominates and both
        take about as long). Results are float64 either way.
    device : str, optional
        Compute with torch on this device, e.g. "cuda" (or "cpu" for torch on the CPU); by default
        numpy on the CPU (BLAS). States go to a GPU in their own dtype and are cast there; a layer that
        takes under a quarter of the GPU's free memory is sent once, a larger one in blocks of time steps.

    Returns
    -------
    RDMs
        ``rdm_descriptors``: ``time`` and ``time_index``; ``descriptors``: ``layer``.

    Notes
    -----
    Memory on the CPU, besides the states: the RDMs (time x n (n - 1) / 2 float64) and, on each thread, the
    Gram matrices of a block of steps (n x n each; a step at a time from 363 conditions on: 128 MiB at 4096),
    with normalised copies of the block's patterns where conditions outnumber units twice. From 1024
    conditions (8 MiB a step) the distances are formed from each Gram matrix by blocks of rows that stay in
    cache, with no other n x n array (``rnnprobe.analysis.rsa.triangles``; a single step's rows on the threads);
    with at least 6 conditions per unit there, no Gram matrix at all: each block of rows's products (4 MiB) made,
    turned into dissimilarities and copied into the RDMs in turn (5000 x 256: 287 -> 100 MiB at the peak, the
    RDM 95 MiB). A call's n x n work arrays are kept idle for the next call, at most 64 MiB of them in the process
    (``rnnprobe.analysis.rsa.work.kept_works``): fresh ones were page-faulted in at each call.
    Crossnobis: the sums of each (run, condition) over the layer where a run presents a condition more than once
    (else the states themselves), and on each thread up to four (condition, step, unit) arrays of a block of
    steps (one of them the sums whitened by the Cholesky factor of a positive definite noise precision) and three
    n x n arrays a step, reused from block to block.

    Examples
    --------
    >>> import numpy as np
    >>> from rnnprobe import Recording
    >>> rec = Recording({"h": np.random.default_rng(0).normal(size=(6, 4, 10))},
    ...                 metadata={"image": [0, 0, 1, 1, 2, 2]})
    >>> compute_rdms(rec, distance="correlation", descriptor="image")
    <RDMs: 4 RDM(s) of 3 conditions, correlation, layer='h'>
    """
    check_recording(recording)
    check_option("distance", distance, DISTANCES)
    check_option("dtype", dtype, ("float64", "float32"))
    layer = recording.resolve_layer(layer)
    if descriptor is not None and descriptor not in recording.columns:
        raise UnknownNameError(
            f"descriptor: {descriptor!r} is not a metadata column. Available: {format_choices(recording.columns)}."
        )
    if distance == "crossnobis" and descriptor is None:
        raise ArgumentError(
            "descriptor: distance='crossnobis' needs the metadata column that names each condition (e.g. image id), "
            "with several presentations per condition across folds."
        )
    if cv_descriptor is not None and distance != "crossnobis":
        raise ArgumentError(f"cv_descriptor: only used by distance='crossnobis', got distance={distance!r}.")
    stim = recording.stimulus_index(stimuli)
    n_units = int(np.prod(recording.unit_shape(layer)))
    precision = _precision(distance, noise, n_units, layer)
    design = fold_design(recording, stim, descriptor, cv_descriptor) if distance == "crossnobis" else None
    conditions, groups = _conditions(recording, descriptor, stim)
    n_patterns = stim.size if groups is None else groups[1]
    if n_patterns < 2:
        raise ArgumentError(
            f"stimuli/descriptor: got {n_patterns} condition(s); an RDM needs at least 2 (3 or more to "
            f"compare RDMs). Select more stimuli or another descriptor."
        )
    if recording.is_dask and device is None:  # blockwise: the layer is never read whole
        from . import blockwise

        time_index = recording.time_positions(layer, time)
        if design is not None:
            dissim = blockwise.dask_crossnobis(recording, layer, time_index, stim, design, precision)
        else:
            dissim = blockwise.dask_dissimilarities(recording, layer, time_index, stim, groups, distance, precision)
        return _result(dissim, distance, conditions, recording, layer, time_index)
    backend = _Backend(check_device(device), dtype)
    dissim = rdms_of_layer(recording, layer, time, stim, groups, design, distance, precision, backend)
    return _result(dissim, distance, conditions, recording, layer, recording.time_positions(layer, time))


def rdms_of_layer(
    recording: Recording, layer: str, time: Any, stimuli: np.ndarray, groups: tuple[np.ndarray, int] | None,
    design: FoldDesign | None, distance: str, precision: Any, backend: _Backend,
) -> np.ndarray:  # fmt: skip
    """(time, n_pairs) dissimilarities of ``layer``'s ``stimuli`` at the steps ``time`` selects, read into memory
    (or a block of steps of a dask-backed layer: :mod:`.blockwise`): crossnobis of ``design``'s folds, else of
    the ``groups``' condition means (or of the stimuli, None). Non-finite states are refused, by a pass of their
    own or from the squared norms the RDMs compute anyway (:func:`refuses_non_finite_itself`).
    """
    n_patterns = stimuli.size if groups is None else groups[1]
    n_units = int(np.prod(recording.unit_shape(layer)))
    if design is not None:  # crossnobis: from its kernels' diagonals where they hold squared norms
        later = crossnobis_refuses_non_finite_itself(backend, design, precision)
    else:
        later = refuses_non_finite_itself(backend, distance, n_patterns, n_units)
    _, _, states = layer_states(recording, layer, time=time, stimuli=stimuli, dtype=None,
                                finite_checked_later=later)  # fmt: skip
    precision = None if precision is None else backend.asarray(precision)
    try:
        if design is not None:  # each fold's means come later: no means of all the data
            return crossnobis_dissimilarities(states, design, precision, backend)
        patterns = _group_means(states, groups)  # float64 sums; states alone stay as they are (cast per block)
        return _blocked_dissimilarities(patterns, distance, precision, backend)
    except NonFinitePatterns:  # (refused outside the handler: the error comes with no chained context)
        pass
    refuse_non_finite_squares(
        states, name="recording", layer=layer, what=f"Gram matrix in {backend.dtype}, and no RDM",
        remedy=_remedy(distance, backend.dtype),
    )  # fmt: skip


def _remedy(distance: str, dtype: str) -> str:
    """What dividing the states by a constant does to ``distance``'s dissimilarities (the overflow's advice)."""
    effect = {
        "correlation": "correlations are unchanged",
        "cosine": "cosines are unchanged",
        "euclidean_plain": "the distances scale by it",
    }.get(distance, "the dissimilarities scale by its square")
    return effect + (", or use dtype='float64'" if dtype == "float32" else "")  # fmt: skip


def _precision(distance: str, noise: Any, n_units: int, layer: str) -> np.ndarray | None:
    """The checked noise precision matrix (float64), or None (crossnobis without one: the identity)."""
    if distance not in ("mahalanobis", "crossnobis"):
        if noise is not None:
            raise ArgumentError(
                f"noise: only used by distance='mahalanobis' or 'crossnobis', got distance={distance!r}."
            )
        return None
    if noise is None:
        if distance == "crossnobis":
            return None
        raise ArgumentError(
            "noise: distance='mahalanobis' needs the noise precision matrix (n_units x n_units), e.g. the "
            "inverse of a shrinkage covariance estimate of the residuals."
        )
    precision = check_finite(check_numeric(noise, name="noise").astype(np.float64, copy=False), name="noise")
    if precision.shape != (n_units, n_units):
        raise ShapeError(
            f"noise: got {describe(precision)}, but layer {layer!r} has {n_units} units. Pass a "
            f"({n_units}, {n_units}) precision matrix."
        )
    symmetric = precision + precision.T  # (one pass over the transpose, 0.8 ms at 512 units: 2.0 -> 1.1 ms here)
    deviation = np.multiply(precision, 2.0)
    deviation -= symmetric  # P - P' (to rounding)
    asymmetry = max(float(deviation.max()), -float(deviation.min()))
    if asymmetry > PRECISION_SYMMETRY * max(float(precision.max()), -float(precision.min())):
        raise ArgumentError(
            f"noise: the precision matrix is not symmetric (largest |P - P'| is {asymmetry:.3g}). A noise precision "
            f"(the inverse of a covariance) is symmetric, and distances from an asymmetric one are not the "
            f"Mahalanobis distances (x_i - x_j)' P (x_i - x_j). Pass (P + P.T) / 2 if that is what you meant."
        )
    symmetric *= 0.5  # (P + P') / 2, symmetric to the bit: the Gram matrices are, and blocks mirror
    return symmetric


PRECISION_SYMMETRY = 1e-8  # |P - P'| beyond this times P's largest value: not a precision matrix (inverses of
# covariances computed in float64 are symmetric to about 1e-16 relative, times their condition number)


def _result(dissim: np.ndarray, distance: str, conditions: dict[str, np.ndarray], recording: Recording, layer: str,
            time_index: np.ndarray) -> RDMs:  # fmt: skip
    """The RDMs with their descriptors; NaN dissimilarities (constant or zero patterns) are warned about."""
    if not all_finite(dissim):
        bad = ~np.isfinite(dissim)
        warnings.warn(
            f"compute_rdms: {int(bad.sum())} dissimilarities are NaN at {int(bad.any(axis=1).sum())} time step(s): "
            f"some patterns are constant (correlation) or zero (cosine).",
            RnnprobeWarning,
            stacklevel=3,
        )
    times = np.asarray(recording.times[layer])[time_index]
    return RDMs(
        dissim,
        distance,
        conditions=conditions,
        rdm_descriptors={"time": times, "time_index": time_index},
        descriptors={"layer": layer, **({"periods": recording.periods} if recording.periods else {})},
    )

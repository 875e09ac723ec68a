"""The DMD of a dask-backed recording, from sums over chunks of trials: the layer is never read whole.

:func:`.dmd.fit_operator` needs of the delay embedding H (samples x d units) only its Gram matrix H'H
(whose eigendecomposition gives the leading coordinates V = H U_r / s_r where they are well conditioned)
and, of V, the one-step products V-'V- and V-'V+ and each coordinate's largest entry (its sign). Both are
sums over trials: a first pass over chunks of trials sums each chunk's embedding's Gram matrix (and checks
the states are finite), a second projects each chunk's embedding on the leading directions and sums its
one-step products, keeping each coordinate's entry of largest modulus (the first such, in sample order,
as numpy's argmax). The signs are applied to the summed products (S P S), so the operator equals the
in-memory fit. Where the in-memory fit takes an SVD instead (kept singular values too spread for the Gram
matrix: with no ``rank``, all of them, so rank-deficient states), dask's tall-and-skinny QR of the
embedding (built chunk by chunk) gives H's singular values, its numerical rank and the leading directions
W_r / s_r for the second pass, where the kept singular values are within SVD_SPREAD. Otherwise (an
embedding not at least twice as tall as wide, or more spread singular values) None is returned and the
caller reads the selection.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validation import all_finite, check_finite_layer
from ..blockwise import chunk_reduce
from .dmd import (
    DMDResult,
    delay_embedding,
    dmd_result,
    embedding_steps,
    gram_directions,
    one_step_operator,
    svd_rank,
)

SVD_SPREAD = 1e4  # kept singular values within this factor of the largest: H W_r / s_r accurate to about 1e-12


def fit_operator_blockwise(x: Any, *, n_delays: int, delay_interval: int, rank: int | None, ridge: float,
                           label: str) -> DMDResult | None:  # fmt: skip
    """The DMD of lazy float64 states (trial, time, unit) chunked along trials, or None (see the module)."""
    import dask

    x = x.rechunk({1: -1, 2: -1})
    n_trials, n_times, n_units = x.shape
    steps = embedding_steps(n_times, n_delays, delay_interval, label)
    if n_trials * steps <= 2 * n_delays * n_units:
        return None
    (gram, finite) = dask.compute(chunk_reduce(_block_gram, [x], [], n_delays, delay_interval))[0]
    check_finite_layer(finite, label)
    leading = gram_directions(gram, n_delays * n_units if rank is None else rank)  # None: all, if well conditioned
    if leading is None:
        leading = _svd_directions(x, rank, n_delays, delay_interval, label)
        if leading is None:
            return None
    projection, s = leading
    rank = projection.shape[1]
    products = chunk_reduce(_block_steps, [x], [np.arange(n_trials)], projection, n_delays, delay_interval,
                            combine=_combine)  # fmt: skip
    (before, cross, (_, signed, _)) = dask.compute(products)[0]
    signs = np.sign(signed)
    operator = one_step_operator(signs[:, None] * before * signs, signs[:, None] * cross * signs, ridge)
    return dmd_result(operator, s, rank, n_delays, delay_interval, ridge, label)


def _svd_directions(x: Any, rank: int | None, n_delays: int, delay_interval: int, label: str
                    ) -> tuple[np.ndarray, np.ndarray] | None:  # fmt: skip
    """(W_r / s_r, all singular values) of the embedding H = U S W' by dask's tall-and-skinny QR (as fit_pca's:
    the R factors of chunks of trials' embeddings, then of the stacked factors), with ``rank`` or the
    numerical rank the in-memory SVD would keep; None where the kept singular values are more than
    SVD_SPREAD apart (the projections H W_r / s_r would lose accuracy: the in-memory SVD is needed).
    """
    import dask
    import dask.array as da

    from ..pca_blockwise import tall_blocks

    steps = embedding_steps(x.shape[1], n_delays, delay_interval, label)
    width = n_delays * x.shape[2]
    rows = tuple(c * steps for c in x.chunks[0])  # each chunk of trials' embedding, built where it is read
    embedding = x.map_blocks(lambda block: delay_embedding(block, n_delays, delay_interval).reshape(-1, width),
                             drop_axis=1, chunks=(rows, (width,)), dtype=x.dtype)  # fmt: skip
    _, s, wt = dask.compute(*da.linalg.svd(tall_blocks(embedding)))
    rank = svd_rank(s, embedding.shape, rank, label, x.shape[0], steps)
    if s[rank - 1] * SVD_SPREAD < s[0]:
        return None
    return wt[:rank].T / s[:rank], s


def _block_gram(blocks: list[np.ndarray], n_delays: int, delay_interval: int) -> tuple[np.ndarray, bool]:
    """(H'H of a chunk of trials' delay embedding, whether its states are finite)."""
    (block,) = blocks
    embedding = delay_embedding(block, n_delays, delay_interval).reshape(-1, n_delays * block.shape[2])
    return embedding.T @ embedding, all_finite(block)


def _block_steps(blocks: list[np.ndarray], trials: np.ndarray, projection: np.ndarray, n_delays: int,
                 delay_interval: int) -> tuple:  # fmt: skip
    """A chunk of trials' (V-'V-, V-'V+, (each coordinate's largest |v|, that v, its sample index)) with
    V = H U_r / s_r its leading coordinates, unsigned.
    """
    (block,) = blocks
    embedding = delay_embedding(block, n_delays, delay_interval)  # (trial, step, d units)
    v = embedding @ projection  # (trial, step, rank)
    before, after = v[:, :-1].reshape(-1, v.shape[2]), v[:, 1:].reshape(-1, v.shape[2])
    flat = v.reshape(-1, v.shape[2])
    where = np.argmax(np.abs(flat), axis=0)
    columns = np.arange(v.shape[2])
    index = trials[where // v.shape[1]] * v.shape[1] + where % v.shape[1]  # in the whole embedding's order
    return before.T @ before, before.T @ after, (np.abs(flat[where, columns]), flat[where, columns], index)


def _combine(first: tuple, second: tuple) -> tuple:
    """Two chunks' sums added; per coordinate, the entry of larger modulus kept (the earlier on a tie)."""
    (size_a, value_a, index_a), (size_b, value_b, index_b) = first[2], second[2]
    take_b = (size_b > size_a) | ((size_b == size_a) & (index_b < index_a))
    peak = (np.where(take_b, size_b, size_a), np.where(take_b, value_b, value_a), np.where(take_b, index_b, index_a))
    return first[0] + second[0], first[1] + second[1], peak

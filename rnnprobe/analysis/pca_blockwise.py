"""PCA of a dask-backed recording, computed blockwise: the layer is never gathered in one place.

For ``Recording.load(path, chunks=...)``, :func:`~rnnprobe.analysis.fit_pca` reads the states in three
passes of dask graphs (on the active ``dask.distributed`` client when there is one, else dask's threads):

1. the mean of the fitted states (stimuli x fitted steps, pooled), each step's mean state and whether the
   layer is finite;
2. the singular values and right singular vectors of the centred fitted states by dask's tall-and-skinny
   QR (``dask.array.linalg.svd``: a QR per block of at least 2p rows, then of the stacked p x p factors,
   recursively in groups; a task holds one block, 16 p^2 bytes or the recording's chunk if larger: 268 MB
   for 4096 units), the same decomposition as in memory, so the axes and variances equal it to rounding
   (not the covariance matrix's eigenvectors, which would square its condition number);
3. the trajectories (every stimulus and step projected on the axes) and, per step, the Gram matrix of the
   states across stimuli (centred on the step's mean from pass 1), p x p or n x n whichever is smaller,
   summed over chunks of stimuli, for the participation ratio. Steps go in groups whose Gram matrices
   take at most ``GRAM_BUDGET`` bytes (a group per pass; more passes re-read the states).

Only the results (mean, axes, trajectories, one Gram matrix per step) come back to this process.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_finite_layer
from .blockwise import dask_states
from .pca import ratio_of_traces

GRAM_BUDGET = 2**28  # bytes of per-step Gram matrices summed in one pass (256 MiB)


def dask_pca(recording: Any, layer: str, fit_time: np.ndarray, fit_stim: np.ndarray) -> tuple[np.ndarray, ...]:
    """(mean of the fitted states, singular values, Vt, mean state of every step (time, units)).

    Passes 1 and 2 of the module docstring; a layer with NaN or inf anywhere is refused.
    """
    import dask
    import dask.array as da

    states = dask_states(recording, layer)
    fit = dask_states(recording, layer, stimuli=fit_stim, time=fit_time)
    rows = tall_blocks(fit.rechunk({1: -1}).reshape(-1, fit.shape[2]))
    mean, step_means, finite = dask.compute(rows.mean(axis=0), states.mean(axis=0), da.isfinite(states).all())
    check_finite_layer(finite, layer)
    _, singular, vt = da.linalg.svd(rows - mean)
    singular, vt = dask.compute(singular, vt)
    return mean, singular, vt, step_means


def tall_blocks(rows: Any) -> Any:
    """``rows`` (samples, p) in blocks of at least 2p rows, one block if there are fewer: dask's TSQR then
    reduces the stacked R factors recursively in groups of a block's size (blocks of fewer rows than 2p
    would make it stack every chunk's factor in one task), and a short, wide matrix is one block.
    """
    n_rows, p = rows.shape
    size = max(max(rows.chunks[0]), 2 * p)
    return rows.rechunk({0: -1 if n_rows <= size else size})


def dask_trajectories(
    recording: Any, layer: str, mean: np.ndarray, step_means: np.ndarray, components: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(trajectories (stimulus, time, k), participation ratio (time,)): pass 3 of the module docstring.

    The states are centred on each step's mean (constant steps become exact zeros, as in memory); the
    trajectories, (x - mean) C', add back each step's (m_t - mean) C'.
    """
    import dask

    states = dask_states(recording, layer) - step_means
    n, n_time, p = states.shape
    trajectories = states @ components.T
    small = n <= p
    size = max(1, min(n_time, GRAM_BUDGET // (8 * min(n, p) ** 2)))
    ratio = np.full(n_time, np.nan)
    for start in range(0, n_time, size):
        steps = slice(start, min(n_time, start + size))
        pieces = _gram_pieces(states[:, steps], small)
        if start == 0:
            trajectories, *pieces = dask.compute(trajectories, *pieces)
        else:
            pieces = dask.compute(*pieces)
        ratio[steps] = _participation(*pieces, n, small, np.linalg.norm(step_means[steps], axis=1))
    return np.asarray(trajectories) + (step_means - mean) @ components.T, ratio


def _gram_pieces(x: Any, small: bool) -> tuple[Any, Any]:
    """Lazy (Gram matrices per step, sums over stimuli per step) of centred states x (stimulus, steps, units):
    n x n (chunk pairs of stimuli) when ``small``, else p x p.
    """
    # batched matmuls (BLAS per block; dask's einsum runs numpy's own loops: 8x slower at 2000 x 4 x 512)
    steps_first = x.transpose(1, 0, 2)  # (steps, stimulus, units)
    gram = steps_first @ steps_first.transpose(0, 2, 1) if small else steps_first.transpose(0, 2, 1) @ steps_first
    return gram, x.sum(axis=0)


def _participation(gram: np.ndarray, sums: np.ndarray, n: int, small: bool, mean: np.ndarray) -> np.ndarray:
    """PR per step, (tr C)^2 / ||C||_F^2, from the Gram matrices of states centred on chunk-summed means
    (the centring is made exact with the sums; ``mean``: the norms of those means); NaN without variance across
    stimuli (as :func:`~rnnprobe.analysis.participation_ratio`).
    """
    if n < 2:
        return np.full(gram.shape[0], np.nan)
    if small:  # H G H with H the centring matrix, from G's row sums
        rows = gram.sum(axis=2)
        total = rows.sum(axis=1)
        centred = gram - rows[:, :, None] / n - rows[:, None, :] / n + total[:, None, None] / n**2
    else:  # Y'Y - s s' / n
        centred = gram - sums[:, :, None] * sums[:, None, :] / n
    trace = np.trace(centred, axis1=1, axis2=2)
    trace_sq = np.einsum("tij,tij->t", centred, centred)
    return ratio_of_traces(trace, trace_sq, mean, n, shift=np.linalg.norm(sums, axis=1) / n)


def dask_projection(projected: Any, states: Any, layer: str) -> np.ndarray:
    """The lazy projections of dask-backed ``states`` computed with their finiteness check in one pass."""
    import dask
    import dask.array as da

    result, finite = dask.compute(projected, da.isfinite(states).all())
    check_finite_layer(finite, layer)
    return np.asarray(result)

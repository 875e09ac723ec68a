"""The alignment metrics of dask-backed recordings, without reading a wide layer whole.

Every metric here depends on a representation's states X (n stimuli x p units) only through its centred
states Xc, and is unchanged by rotating their units (Xc -> Xc Q, Q with orthonormal columns), in sample
and held out (the folds split stimuli, not units). A layer wider than the stimuli (p > n) therefore
enters as its principal coordinates Z = U sqrt(lam) (n x r, r <= n), the eigendecomposition of the
stimuli's Gram matrix Xc Xc' (n x n per step), which dask computes from products of panels of stimuli:
Z Z' = Xc Xc', so Z = Xc Q. First a pass for the units' means (and the finite check), as numpy centres;
then the centred Gram matrices, in passes over blocks of steps whose states fit in GRAM_BYTES (every pair
of panels of stimuli is a product, so a pass holds its steps' panels). A layer no wider than the stimuli
(p <= n) enters as sums over its stimuli (:mod:`.moments`).

PWCCA weights each canonical variate h by sum_j |<h, x_j>| over the layer's own units, which no rotation
keeps: those loadings Xc' h are read from the layer, a product over chunks of stimuli per pair of time
steps, all in one pass (:func:`read_weights`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validation import check_finite_layer
from ..blockwise import BLOCK_BYTES, dask_states, symmetric_gram
from . import _core

GRAM_BYTES = 2**30  # float64 states one pass of Gram matrices holds (dask keeps a panel while it is needed)


def compressed_states(recording: Any, layer: str, positions: np.ndarray, *, kernel: bool) -> tuple[Any, Any]:
    """(states to compare, the units behind them or None): a layer with more units than stimuli (or any
    layer, ``kernel``: for a metric of the stimuli's n x n kernel) as the coordinates (stimulus, time, r) of
    each step, Z = U sqrt(lam) from its centred Gram matrix (zero-padded to the steps' largest rank), with
    its selected states as a lazy (stimulus, time, unit) dask array; a narrower layer as those lazy states
    (summed over chunks by :mod:`.moments`) and None.
    """
    import dask
    import dask.array as da

    x = dask_states(recording, layer, time=positions)
    n, steps, p = x.shape
    if p <= n and not kernel:
        return x, None
    mean, finite = dask.compute(x.mean(axis=0), da.isfinite(x).all())
    check_finite_layer(finite, layer)
    group = max(1, GRAM_BYTES // (8 * n * p))  # steps per pass: a pass holds its steps' panels
    kernels = np.concatenate(
        [_gram_matrices(x[:, s : s + group] - mean[s : s + group]) for s in range(0, steps, group)]
    )
    return coordinates_over_time(kernels, mean), x


def coordinates_over_time(kernels: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Each step's principal coordinates (stimulus, time, r) from its centred Gram matrix across stimuli
    (time, stimulus, stimulus), zero-padded to the steps' largest rank; zero at a step whose states are the same
    for every stimulus (their total square, the trace, no more than rounding of their ``mean`` (time, unit)
    leaves: :func:`._core.spread`).
    """
    n = kernels.shape[1]
    factors = [_core.coordinates((kernel + kernel.T) / 2)[0] if _core.spread(float(np.trace(kernel)), m, n) > 0
               else np.zeros((n, 0)) for kernel, m in zip(kernels, mean, strict=True)]  # fmt: skip
    z = np.zeros((kernels.shape[1], len(factors), max(1, max(f.shape[1] for f in factors))))
    for t, factor in enumerate(factors):
        z[:, t, : factor.shape[1]] = factor
    return z


def compress_wide(sides: list[Any], sources: list[Any]) -> tuple[list[Any], list[Any]]:
    """In-memory sides wider than their stimuli as their principal coordinates (with themselves as the units
    behind them, for PWCCA), so that the sums over stimuli (:mod:`.moments`) hold n x n, not p x p, matrices.
    """
    sides, sources = list(sides), list(sources)
    for i, side in enumerate(sides):
        if isinstance(side, np.ndarray) and sources[i] is None and side.shape[2] > side.shape[0]:
            mean = side.mean(axis=0)
            steps_first = (side - mean).transpose(1, 0, 2)
            sides[i], sources[i] = coordinates_over_time(steps_first @ steps_first.transpose(0, 2, 1), mean), side
    return sides, sources


def _gram_matrices(centred: Any) -> np.ndarray:
    """Each step's Gram matrix across stimuli (time, stimulus, stimulus) of centred lazy states, from panels
    of stimuli as large as BLOCK_BYTES allows: each pair of panels is one matrix product by BLAS (a store's
    small chunks of stimuli would make many products too thin for it; :func:`symmetric_gram`).
    """
    _, steps, p = centred.shape
    panels = centred.rechunk((max(1, BLOCK_BYTES // (8 * steps * p)), -1, -1)).transpose(1, 0, 2)
    return symmetric_gram(panels)[0]


def read_weights(requests: list[Any], rows: Any) -> list[np.ndarray]:
    """PWCCA's weights: an array as it is; for a (lazy step (stimulus, unit), variates h (rows x k)) request,
    sum_j |<h_i, x_j>| over the step's units, on its ``rows`` (the stimuli the variates were fitted on). All
    in one dask computation, which reads each step once; the variates are centred, so Xc' h = X' h.
    """
    import dask

    pending = [r for r in requests if isinstance(r, tuple)]
    products = [(step if isinstance(rows, slice) else step[rows]).T @ (h - h.mean(axis=0)) for step, h in pending]
    computed = iter(dask.compute(*products))
    return [np.abs(np.asarray(next(computed))).sum(axis=0) if isinstance(r, tuple) else r for r in requests]

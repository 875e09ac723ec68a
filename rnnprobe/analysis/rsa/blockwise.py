"""RDMs of a dask-backed recording, computed blockwise: the layer is never gathered in one place.

For ``Recording.load(path, chunks=...)``: the condition means (a product with the condition indicator),
the centring and normalisation of each pattern (within a chunk: units are never split) and the Gram
matrices of every time step (products of the pairs of chunks i <= j along stimuli, the rest mirrored;
weighted by the noise precision for "mahalanobis") are one dask graph, computed on the active
``dask.distributed`` client when there is one (else dask's threads). Only the Gram matrices (time x
condition x condition) come back; the distances are formed from them as in memory. Results equal the
in-memory path's to about 1e-12 (both accumulate in float64; the summation order differs). Where conditions
outnumber units sixfold (from 1024 conditions), whose states are smaller than their Gram matrices, blocks of
time steps run as tasks instead, each computing its RDMs as in memory (the same numbers). "crossnobis"
needs the sums of every (fold, condition): one graph where they are small, else (with one presentation per
fold and condition they are as large as the states) blocks of time steps as tasks, each computed as in
memory (the same numbers).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._validation import check_finite_layer, layer_states
from ..blockwise import (
    BLOCK_BYTES,
    blocks_into,
    dask_states,
    group_sums,
    stored_chunks,
    symmetric_gram,
    time_blocks,
)
from ..parallel import library_threads
from .crossnobis import FoldDesign, Whitened


def dask_dissimilarities(
    recording: Any, layer: str, time_index: np.ndarray, stimuli: np.ndarray, groups: tuple[np.ndarray, int] | None,
    distance: str, precision: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """(time, n_pairs) dissimilarities of the selected stimuli (or of their condition means, ``groups``:
    (condition of each stimulus, number of conditions)) at the selected time steps; ``precision``: the noise
    precision of "mahalanobis".
    """
    import dask.array as da

    from .compute import _Backend, row_products  # (compute imports this module)

    n_units = int(np.prod(recording.unit_shape(layer)))
    if row_products(_Backend(None, "float64"), stimuli.size if groups is None else groups[1], n_units):
        return _rdms_by_blocks_of_steps(recording, layer, time_index, stimuli, groups, distance, precision, n_units)
    x = dask_states(recording, layer, stimuli=stimuli, time=time_index)
    finite = da.isfinite(x).all()
    if groups is not None:
        inverse, n_groups = groups
        x = group_sums(x, inverse, n_groups, mean=True)
    if distance in ("correlation", "cosine"):
        from .compute import unit_patterns  # (compute imports this module)

        x = unit_patterns(x, distance, da.where)
    from .compute import distances_from_gram, offset_dominates  # (compute imports this module)

    gram, finite = _gram_matrices(x, distance, precision, finite)
    check_finite_layer(finite, layer)
    if distance not in ("correlation", "cosine") and offset_dominates(gram):  # (see offset_dominates)
        (gram,) = _gram_matrices(x - x.mean(axis=0), distance, precision)
    return distances_from_gram(gram, distance, x.shape[2], threads=library_threads())  # (here, on the client)


def _rdms_by_blocks_of_steps(
    recording: Any, layer: str, time_index: np.ndarray, stimuli: np.ndarray, groups: tuple[np.ndarray, int] | None,
    distance: str, precision: np.ndarray | None, n_units: int,
) -> np.ndarray:  # fmt: skip
    """:func:`dask_dissimilarities` where conditions outnumber units sixfold (from 1024 conditions:
    :func:`.compute.row_products`), whose states are smaller than their Gram matrices: blocks of steps as tasks on
    the active client (else here, in turn), each reading its steps of the selected stimuli and computing their
    RDMs as in memory (the same numbers), its states and RDMs within ``BLOCK_BYTES``; only the RDMs come back
    (5000 conditions x 256 units: 100 MB a step, where the Gram matrices were 200 MB, and the distances formed on
    the workers, not here).
    """
    n = stimuli.size if groups is None else groups[1]
    blocks = time_blocks(stimuli.size, n_units, time_index, chunks=stored_chunks(recording, layer, time_index),
                         result_bytes=n * (n - 1) // 2 * 8)  # fmt: skip
    out = np.empty((len(time_index), n * (n - 1) // 2))
    return blocks_into(out, _rdm_block, blocks, recording, layer, stimuli, groups, distance, precision)


def _rdm_block(
    positions: np.ndarray, recording: Any, layer: str, stimuli: np.ndarray, groups: tuple[np.ndarray, int] | None,
    distance: str, precision: np.ndarray | None,
) -> np.ndarray:  # fmt: skip
    from .compute import _Backend, rdms_of_layer

    return rdms_of_layer(recording, layer, positions, stimuli, groups, None, distance, precision,
                         _Backend(None, "float64"))  # fmt: skip


def _gram_matrices(x: Any, distance: str, precision: np.ndarray | None, *also: Any) -> tuple[np.ndarray, ...]:
    """The Gram matrices (time, condition, condition) of (condition, time, unit) dask patterns, weighted by the
    (symmetric) noise precision for "mahalanobis", computed with the lazy ``also`` (:func:`symmetric_gram`): a
    positive definite one as its Cholesky factor L (:class:`.crossnobis.Whitened`), the patterns times L, whose
    diagonal blocks are then symmetric products, as in memory.
    """
    from .compute import _Backend  # (compute imports this module)

    steps_first = x.transpose(1, 0, 2)  # (time, condition, unit): batched matmuls, BLAS per block (dask's
    weighted = None  # einsum: numpy's loops, 3-8x slower)
    if distance == "mahalanobis":
        whitened = Whitened.for_mahalanobis(precision, _Backend(None, "float64"), x.shape)
        if isinstance(whitened, Whitened):  # x P x' = (x L)(x L)'
            steps_first = steps_first @ whitened.factor
        else:
            weighted = steps_first @ precision
    return symmetric_gram(steps_first, *also, weighted=weighted)


def dask_crossnobis(
    recording: Any, layer: str, time_index: np.ndarray, stimuli: np.ndarray, design: FoldDesign,
    precision: np.ndarray | None,
) -> np.ndarray:  # fmt: skip
    """(time, n_pairs) crossnobis distances. Where the sums of every (fold, condition) fit in ``BLOCK_BYTES``
    (few folds and conditions against many trials), they are one dask graph, as the condition means of the
    other distances (one read of each chunk). Else (by default each fold holds one presentation of each
    condition, so the sums are as large as the states), blocks of steps (``BLOCK_BYTES`` of float64 states
    each) run as tasks on the active client, each reading its steps of the selected stimuli and computing
    them as in memory (the same numbers).
    """
    import dask
    import dask.array as da

    from .compute import crossnobis_of_sums  # (compute imports this module)

    n_units = int(np.prod(recording.unit_shape(layer)))
    if design.n_groups * time_index.size * n_units * 8 <= BLOCK_BYTES:
        x = dask_states(recording, layer, stimuli=stimuli, time=time_index)
        sums, finite = dask.compute(group_sums(x, design.groups, design.n_groups), da.isfinite(x).all())
        check_finite_layer(finite, layer)
        return crossnobis_of_sums(sums, design, precision)
    n = len(design.conditions)
    blocks = time_blocks(stimuli.size, n_units, time_index, chunks=stored_chunks(recording, layer, time_index),
                         result_bytes=n * (n - 1) // 2 * 8)  # fmt: skip
    out = np.empty((len(time_index), n * (n - 1) // 2))
    return blocks_into(out, _crossnobis_block, blocks, recording, layer, stimuli, design, precision)


def _crossnobis_block(
    positions: np.ndarray, recording: Any, layer: str, stimuli: np.ndarray, design: FoldDesign,
    precision: np.ndarray | None,
) -> np.ndarray:  # fmt: skip
    from .compute import crossnobis_dissimilarities

    _, _, states = layer_states(recording, layer, time=positions, stimuli=stimuli, dtype=None)
    return crossnobis_dissimilarities(states, design, precision)

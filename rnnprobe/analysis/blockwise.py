"""Analyses of dask-backed recordings in blocks of time steps, as tasks on the active dask client.

A recording opened with ``Recording.load(path, chunks=...)`` is never gathered whole: an analysis
that is independent across time steps (decoding over time) runs on blocks of steps, each block read
and analysed by one task (on a ``dask.distributed`` worker when a client is active, else here, one
block after another), and the blocks' results are joined. Every block sees the same folds,
permutations and seeds, so the joined result equals the one computed on the whole layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

BLOCK_BYTES = 2**28  # states of one block (float64): 256 MiB


def time_blocks(n_stimuli: int, n_units: int, positions: np.ndarray, budget: int | None = None) -> list[np.ndarray]:
    """The time positions split into blocks whose float64 states fit in ``budget`` bytes (default BLOCK_BYTES)."""
    from ._linear import time_blocks as slices

    per_step = n_stimuli * n_units * 8
    budget = BLOCK_BYTES if budget is None else budget
    return [positions[block] for block in slices(len(positions), per_step, budget=budget)]


def active_client() -> Any:
    """The active ``dask.distributed`` client, or None (no cluster, or distributed not installed)."""
    try:
        from distributed import get_client
    except ImportError:  # pragma: no cover - optional dependency
        return None
    try:
        return get_client()
    except ValueError:
        return None


def run_blocks(function: Callable[..., Any], blocks: list[Any], *args: Any) -> list[Any]:
    """``function(block, *args)`` for every block: as tasks on the active client, else here in order."""
    client = active_client()
    if client is None:
        return [function(block, *args) for block in blocks]
    futures = client.map(function, blocks, *[[arg] * len(blocks) for arg in args], pure=False)
    return client.gather(futures)

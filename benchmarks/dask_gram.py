"""Gram matrices of a layer on disk on a LocalCluster: dask's product of the whole arrays against rnnprobe's
blocks of pairs of chunks (issue 20, goal 4; the products behind blockwise RDMs and alignment metrics).

Run:  OMP_NUM_THREADS=1 python benchmarks/dask_gram.py [--stimuli 2000] [--units 4096] [--repeats 3]

A float32 layer (stimuli x 4 steps x units, stored in chunks of whole steps) opened dask-backed
(``Recording.load(path, chunks="auto")``: about 64 MiB of states per dask chunk), its states as float64 with the
steps first, and each step's Gram matrix across stimuli taken on a LocalCluster of 2 worker processes (1 thread
each) three ways: dask's product of the whole arrays (``x @ x^T``: every block, both triangles, each by BLAS's
general product), ``rnnprobe.analysis.blockwise.symmetric_gram`` with the store's chunks (the pairs i <= j, a
diagonal block by the symmetric product, the rest mirrored), and ``symmetric_gram`` as the analyses call it
(rows also cut into 2 chunks per worker thread, so that the workers share the blocks evenly). The three results
are checked equal (1e-12 relative) first; then the medians of ``--repeats`` calls after a warm-up, and the
product in this process on one thread (numpy, the states in memory) for scale.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
from _dask import layer_arguments
from _machine import against_first, median_time, print_machine


def main() -> None:
    args = layer_arguments(__doc__, stimuli=2000, units=4096, allocator=False)
    from distributed import Client, LocalCluster

    from rnnprobe import Recording
    from rnnprobe.analysis import blockwise

    print_machine()
    states = np.random.default_rng(0).normal(size=(args.stimuli, 4, args.units)).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        Recording({"h": states}).save(Path(folder) / "layer.zarr")
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            with Client(cluster):
                layer = Recording.load(Path(folder) / "layer.zarr", chunks="auto").to_dask("h")
                x = layer.astype(np.float64).transpose(1, 0, 2)
                ways = {
                    "dask's product of the whole arrays": lambda: (x @ x.transpose(0, 2, 1)).compute(),
                    "pairs i <= j, the store's chunks": lambda: _without_cut(blockwise, x),
                    "pairs i <= j, 2 chunks per thread": lambda: blockwise.symmetric_gram(x)[0],
                }
                _report(ways, x, states, args.repeats)


def _without_cut(blockwise, x) -> np.ndarray:
    """symmetric_gram on the chunks as they are (no cut for the workers' threads)."""
    shared = blockwise.SHARED_ROWS
    blockwise.SHARED_ROWS = 1 << 62
    try:
        return blockwise.symmetric_gram(x)[0]
    finally:
        blockwise.SHARED_ROWS = shared


def _report(ways: dict, x, states: np.ndarray, repeats: int) -> None:
    print(f"\n[Gram matrices of {states.shape[0]} stimuli x {states.shape[2]} units at 4 steps; rows in chunks of "
          f"{x.chunks[1]}; a LocalCluster of 2 workers x 1 thread]")  # fmt: skip
    reference = None
    for way in ways.values():
        got = way()
        reference = got if reference is None else reference
        np.testing.assert_allclose(got, reference, rtol=1e-12, atol=1e-9)
    print("  results equal (1e-12)")
    for name, _, seconds, ratio in against_first(ways, repeats):
        print(f"  {name:40s} {seconds:7.2f} s  ({ratio:.2f}x)")
    steps_first = np.ascontiguousarray(states.transpose(1, 0, 2), dtype=np.float64)
    seconds, _ = median_time(lambda: steps_first @ steps_first.transpose(0, 2, 1), repeats, warmup=True)
    print(f"  {'numpy in this process, 1 thread':40s} {seconds:7.2f} s  (the states in memory)")


if __name__ == "__main__":
    main()

"""RDMs of many conditions and few units from a layer on disk on a LocalCluster: the graph of Gram matrices
against blocks of steps as tasks (issue 20, goals 1 and 4).

Run:  OMP_NUM_THREADS=1 python benchmarks/dask_rdm_blocks.py [--stimuli 5000] [--units 256] [--repeats 3]
      [--mmap-threshold BYTES]

A float64 layer (stimuli x 4 steps x units, stored in chunks of 1000 stimuli) opened dask-backed, and its
Euclidean RDMs computed on a LocalCluster of 2 worker processes (1 thread each) two ways: the graph of each
step's Gram matrix across stimuli (the products of pairs of chunks on the workers, the Gram matrices brought to
this process, which forms the distances from them: the blockwise path of every RDM until the forty-third
session, kept where units are many) and blocks of steps as tasks (each worker reads its steps and computes their
RDMs as in memory, only the RDMs come back: where conditions outnumber units fourfold, from 1024 conditions).
Both are checked equal to the in-memory RDMs (1e-10) first; then the medians of ``--repeats`` calls after a
warm-up, the peak of this process's traced memory during one call (tracemalloc: numpy's arrays), and the
in-memory RDMs in this process on one thread for scale.
"""

from __future__ import annotations

import os
import sys
import tempfile
import tracemalloc
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
from _dask import layer_arguments, set_worker_allocator
from _machine import against_first, median_time, print_machine


def main() -> None:
    args = layer_arguments(__doc__, stimuli=5000, units=256)
    from distributed import Client, LocalCluster

    from rnnprobe import Recording
    from rnnprobe.analysis import compute_rdms

    print_machine()
    set_worker_allocator(args.mmap_threshold)
    states = np.random.default_rng(0).normal(size=(args.stimuli, 4, args.units))
    with tempfile.TemporaryDirectory() as folder:
        Recording({"h": states}).save(Path(folder) / "layer.zarr")
        chunked = Recording.load(Path(folder) / "layer.zarr", chunks={"stimuli": 1000})
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            with Client(cluster):
                ways = {
                    "graph of Gram matrices": lambda: _gram_graph(chunked, compute_rdms),
                    "blocks of steps as tasks": lambda: compute_rdms(chunked, "h", distance="euclidean"),
                }
                memory = lambda: compute_rdms(Recording({"h": states}), "h", distance="euclidean")  # noqa: E731
                _report(ways, memory, states, args.repeats)


def _gram_graph(recording, compute_rdms) -> object:
    """The RDMs by the graph of Gram matrices (the conditions-per-unit threshold raised out of reach)."""
    from rnnprobe.analysis.rsa import compute

    threshold = compute.ROW_PRODUCTS
    compute.ROW_PRODUCTS = float("inf")
    try:
        return compute_rdms(recording, "h", distance="euclidean")
    finally:
        compute.ROW_PRODUCTS = threshold


def _peak_mib(fn) -> float:
    """The peak of this process's traced memory (MiB) during one call of ``fn``."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def _report(ways: dict, memory, states: np.ndarray, repeats: int) -> None:
    n, _, units = states.shape
    result_mib = 4 * n * (n - 1) / 2 * 8 / 2**20
    print(f"\n[Euclidean RDMs of {n} stimuli x {units} units at 4 steps; chunks of 1000 stimuli; a LocalCluster of "
          f"2 workers x 1 thread; the RDMs: {result_mib:.0f} MiB]")  # fmt: skip
    reference = memory().dissimilarities
    for way in ways.values():
        np.testing.assert_allclose(way().dissimilarities, reference, rtol=0, atol=1e-10)
    print("  results equal to the in-memory RDMs (1e-10)")
    for name, way, seconds, ratio in against_first(ways, repeats):
        print(f"  {name:28s} {seconds:7.2f} s  ({ratio:.2f}x)   peak here {_peak_mib(way):6.0f} MiB")
    seconds, _ = median_time(memory, repeats, warmup=True)
    print(f"  {'in memory, this process':28s} {seconds:7.2f} s            peak here {_peak_mib(memory):6.0f} MiB")


if __name__ == "__main__":
    main()

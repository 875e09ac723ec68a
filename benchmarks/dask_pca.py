"""PCA of a layer on disk: read whole in one process vs blockwise on a LocalCluster of 1 and 2 workers.

Run:  OMP_NUM_THREADS=1 python benchmarks/dask_pca.py [--gb 0.5] [--units 2048] [--dir /path/with/space]

A float32 layer of ``--gb`` GB (stimuli x 4 steps x ``--units``, written by a separate process) is fitted by
``fit_pca`` three ways: in a fresh process that reads it whole (``Recording.load(path)``), and dask-backed
(``Recording.load(path, chunks="auto")``) with a client on a LocalCluster of 1 and of 2 worker processes
(1 thread each), where the layer is never gathered (rnnprobe.analysis.pca_blockwise). The components,
variances, trajectories and participation ratios are checked equal first (1e-8 relative to their scale).
Printed: the machine, each way's time and the peak resident memory of each process that held data.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
from _dask import add_allocator_argument, set_worker_allocator
from _machine import Results, peak_rss, print_machine

STEPS = 4
FIELDS = ("components", "explained_variance", "trajectories", "participation_ratio")


def make_store(path: Path, n: int, units: int) -> None:
    """Write the layer in pieces (low-rank signal plus noise) without holding it whole."""
    from rnnprobe import Recording

    rng = np.random.default_rng(0)
    basis = rng.normal(size=(8, units)).astype(np.float32)
    piece = 2000
    parts = []
    for start in range(0, n, piece):
        m = min(piece, n - start)
        latent = rng.normal(size=(m, STEPS, 8)).astype(np.float32) * np.arange(8, 0, -1, dtype=np.float32)
        parts.append(path.parent / f"part{start}.npy")
        np.save(parts[-1], latent @ basis + rng.normal(size=(m, STEPS, units)).astype(np.float32))
    states = np.concatenate([np.load(p, mmap_mode="r") for p in parts])  # one copy, then written
    Recording({"h": states}).save(path)
    for p in parts:
        p.unlink()


def in_process(path: Path, out: Path) -> None:
    """Fit reading the layer whole, in this (fresh) process; save the result and the process's peak."""
    from rnnprobe import Recording
    from rnnprobe.analysis import fit_pca

    t0 = time.perf_counter()
    result = fit_pca(Recording.load(path), "h")
    seconds = time.perf_counter() - t0
    np.savez(out, **{name: getattr(result, name) for name in FIELDS})
    out.with_suffix(".json").write_text(json.dumps({"seconds": seconds, "peak": [peak_rss()]}))


def on_cluster(path: Path, workers: int) -> tuple[dict, float, list[int]]:
    from distributed import Client, LocalCluster

    from rnnprobe import Recording
    from rnnprobe.analysis import fit_pca

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      memory_limit="4GiB") as cluster, Client(cluster) as client:  # fmt: skip
        t0 = time.perf_counter()
        result = fit_pca(Recording.load(path, chunks="auto"), "h")
        seconds = time.perf_counter() - t0
        peaks = list(client.run(peak_rss).values())
    return {name: getattr(result, name) for name in FIELDS}, seconds, peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=0.5, help="GB of float32 states")
    parser.add_argument("--units", type=int, default=2048)
    parser.add_argument("--dir", default=None, help="folder for the store")
    parser.add_argument("--make", default=None, help=argparse.SUPPRESS)  # (the writer process)
    parser.add_argument("--whole", nargs=2, default=None, help=argparse.SUPPRESS)  # (the in-process fit)
    add_allocator_argument(parser)
    args = parser.parse_args()
    n = int(args.gb * 1e9 / (4 * STEPS * args.units))
    if args.make:
        return make_store(Path(args.make), n, args.units)
    if args.whole:
        return in_process(Path(args.whole[0]), Path(args.whole[1]))
    print_machine()
    set_worker_allocator(args.mmap_threshold)
    print(f"{n} stimuli x {STEPS} steps x {args.units} units, float32: {n * STEPS * args.units * 4 / 1e9:.2f} GB")
    folder = Path(tempfile.mkdtemp(prefix="rnnprobe-pca-", dir=args.dir))
    me = [sys.executable, __file__, "--gb", str(args.gb), "--units", str(args.units)]
    try:
        path, whole = folder / "layer.zarr", folder / "whole.npz"
        subprocess.run([*me, "--make", str(path)], check=True)
        subprocess.run([*me, "--whole", str(path), str(whole)], check=True)
        reference, measured = dict(np.load(whole)), json.loads(whole.with_suffix(".json").read_text())
        ways = {"in-process, read whole": (measured["seconds"], measured["peak"])}
        for workers in (1, 2):
            got, seconds, peaks = on_cluster(path, workers)
            for name in FIELDS:  # equal first
                scale = np.abs(reference[name]).max()
                np.testing.assert_allclose(got[name], reference[name], rtol=0, atol=1e-8 * scale, err_msg=name)
            ways[f"LocalCluster, {workers} worker(s), blockwise"] = (seconds, peaks)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("results equal across the three ways (components, variances, trajectories, participation ratio)")
    for who, (seconds, peaks) in ways.items():
        print(f"  {who:36s} {seconds:7.1f} s   peak RSS per process (GiB): "
              f"{', '.join(f'{p / 2**30:.2f}' for p in peaks)}")  # fmt: skip
    results = Results(__file__)
    whole_s = ways["in-process, read whole"][0]
    for workers in (1, 2):
        results.add(f"fit_pca blockwise, {workers} worker(s)", "read whole", whole_s,
                    ways[f"LocalCluster, {workers} worker(s), blockwise"][0], goal=None)  # fmt: skip
    results.save()


if __name__ == "__main__":
    main()

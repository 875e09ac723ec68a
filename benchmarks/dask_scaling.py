"""A recording larger than memory on a dask cluster: in-process vs a LocalCluster of 1 and 2 workers.

Run:  OMP_NUM_THREADS=1 python benchmarks/dask_scaling.py [--gb 20] [--dir /path/with/space]

A BLT-style recurrent convnet (benchmarks/_models.py, 32 maps, 32 x 32 images, 4 steps: about 0.66 MB of
states per stimulus) records ``--gb`` GB of states into a zarr store three ways: in this process
(``record(store=...)``), and sharded on a LocalCluster (``record(store=..., client=...)``) of 1 and of 2
worker processes (1 thread each). Then, on the store opened with ``Recording.load(path, chunks=...)``:
RDMs of the 10 class means of every layer at every step (``compute_rdms``, one dask graph) and decoding
of the class from layer 2 over time on the first 2000 stimuli (blocks of steps as tasks). Results are
checked equal across the three ways first. Printed: the machine, the times and their ratios, and each
worker's peak resident memory. The workers' allocator: see benchmarks/_dask.py (``--mmap-threshold``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
import torch
from _dask import add_allocator_argument, set_worker_allocator
from _machine import peak_rss, print_machine
from _models import ConvRecurrent

import rnnprobe
from rnnprobe import Recording
from rnnprobe.analysis import compute_rdms, decode

LAYERS = ["layer1", "layer2"]


def stimuli(n: int) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(0)
    label = rng.integers(0, 10, n)
    templates = rng.normal(size=(10, 1, 32, 32)).astype(np.float32)
    x = rng.normal(size=(n, 1, 32, 32)).astype(np.float32) + 0.5 * templates[label]
    return torch.from_numpy(x), label


def analyses(path: Path) -> tuple[dict, np.ndarray, float]:
    rec = Recording.load(path, chunks="auto")
    t0 = time.perf_counter()
    rdms = {layer: compute_rdms(rec, layer, descriptor="label").dissimilarities for layer in LAYERS}
    subset = rec.select(stimuli=slice(0, 2000))
    scores = decode(subset, "layer2", "label", progress=False).scores
    return rdms, scores, time.perf_counter() - t0


def run(workers: int, model: torch.nn.Module, x: torch.Tensor, label: np.ndarray, folder: Path) -> dict:
    from distributed import Client, LocalCluster

    path = folder / f"rec-{workers}.zarr"
    out: dict = {"workers": workers}
    if workers == 0:
        t0 = time.perf_counter()
        rnnprobe.record(model, x, metadata={"label": label}, store=path, layers=LAYERS, batch_size=64, progress=False)
        out["record_s"] = time.perf_counter() - t0
        out["rdms"], out["scores"], out["analyses_s"] = analyses(path)
        out["peak_rss"] = [peak_rss()]
        return out
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      memory_limit="4GiB") as cluster, Client(cluster) as client:  # fmt: skip
        t0 = time.perf_counter()
        rnnprobe.record(model, x, metadata={"label": label}, store=path, layers=LAYERS, batch_size=64, client=client,
                        progress=False)  # fmt: skip
        out["record_s"] = time.perf_counter() - t0
        out["rdms"], out["scores"], out["analyses_s"] = analyses(path)
        out["peak_rss"] = list(client.run(peak_rss).values())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gb", type=float, default=2.0, help="GB of states to record (the issue's goal: 20)")
    parser.add_argument("--dir", default=None, help="folder for the stores (needs about 0.55 x gb of disk)")
    add_allocator_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print_machine()
    set_worker_allocator(args.mmap_threshold)
    torch.manual_seed(0)
    model = ConvRecurrent(maps=32, steps=4).eval()
    per_stimulus = 32 * 32 * 32 * 4 * 4 + 32 * 16 * 16 * 4 * 4
    n = int(args.gb * 1e9 / per_stimulus)
    x, label = stimuli(n)
    print(f"{n} stimuli, {n * per_stimulus / 1e9:.1f} GB of states (layers {', '.join(LAYERS)})")
    folder = Path(tempfile.mkdtemp(prefix="rnnprobe-dask-", dir=args.dir))
    try:
        results = [run(workers, model, x, label, folder) for workers in (0, 1, 2)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    base = results[0]
    for r in results[1:]:  # equal first
        for layer in LAYERS:
            assert np.allclose(r["rdms"][layer], base["rdms"][layer], rtol=0, atol=1e-10), layer
        assert np.allclose(r["scores"], base["scores"], rtol=0, atol=1e-10)
    print("results equal across the three ways (RDMs and decoding scores to 1e-10)")
    for r in results:
        who = "in-process" if r["workers"] == 0 else f"LocalCluster, {r['workers']} worker(s)"
        peaks = ", ".join(f"{p / 2**30:.2f}" for p in r["peak_rss"])
        print(f"  {who:26s} record {r['record_s']:7.1f} s   RDMs + decoding {r['analyses_s']:6.1f} s   "
              f"peak RSS per process (GiB): {peaks}")  # fmt: skip
    one, two = results[1], results[2]
    print(f"  2 workers / 1 worker: record {two['record_s'] / one['record_s']:.2f}, "
          f"analyses {two['analyses_s'] / one['analyses_s']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()

"""Decoding a wide layer on disk whose single time step is larger than a block (issue 20, goal 4).

Run:  OMP_NUM_THREADS=1 python benchmarks/dask_wide_steps.py [--stimuli 2000] [--steps 2] [--dir /path]

A convolutional layer of 32 maps of 32 x 32 (32,768 units, float32) over ``--steps`` steps of ``--stimuli``
stimuli (10 classes) is saved to a store and opened dask-backed. One step is 0.26 GB stored, 0.52 GB in
float64: more than a block (``blockwise.BLOCK_BYTES``, 256 MiB). ``decode(..., n_permutations=)`` with the
default ridge decoder runs on a LocalCluster of one worker process (1 thread) two ways:

- whole steps (the way before the twenty-third session): a task per step reads the step and decodes it in
  memory (``decoding_blockwise``);
- blocks of units (``decoding_units``, what decode does now): a task per step sums the folds' kernels over
  blocks of units (each block read decompresses the step's stored chunks), then solves and scores.

Both are checked equal (1e-10) first. Printed: the machine, each way's time and the worker's peak resident
memory (a fresh cluster per way).
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
from _machine import Results, peak_rss, print_machine

SHAPE = (32, 32, 32)


def make(path: Path, n: int, steps: int) -> None:
    from rnnprobe import Recording

    rng = np.random.default_rng(0)
    label = np.arange(n) % 10
    states = rng.normal(size=(n, steps, *SHAPE)).astype(np.float32)
    states[:, :, 0, :4, :4] += (label[:, None, None, None] * 0.3).astype(np.float32)
    Recording({"conv": states}, metadata={"label": label}).save(path)


def run(path: Path, way: str, permutations: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(fold scores, null, seconds, the worker's peak RSS) of one way on a fresh 1-worker LocalCluster."""
    from distributed import Client, LocalCluster

    from rnnprobe import Recording
    from rnnprobe.analysis import decode, decoding_units

    by_units = decoding_units.by_units
    if way == "whole steps":  # decided in this process: the tasks then read whole steps
        decoding_units.by_units = lambda *args, **kwargs: False
    try:
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                          memory_limit="8GiB") as cluster, Client(cluster) as client:  # fmt: skip
            rec = Recording.load(path, chunks="auto")
            t0 = time.perf_counter()
            result = decode(rec, "conv", "label", n_permutations=permutations, progress=False)
            seconds = time.perf_counter() - t0
            peak = max(client.run(peak_rss).values())
    finally:
        decoding_units.by_units = by_units
    return result.fold_scores, result.null, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stimuli", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--permutations", type=int, default=20)
    parser.add_argument("--dir", default=None, help="folder for the store (needs about 0.27 GB a step)")
    args = parser.parse_args()
    print_machine()
    folder = Path(tempfile.mkdtemp(prefix="rnnprobe-wide-", dir=args.dir))
    try:
        make(folder / "wide.zarr", args.stimuli, args.steps)
        ways = {way: run(folder / "wide.zarr", way, args.permutations) for way in ("whole steps", "blocks of units")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    (scores, null, *_), (units_scores, units_null, *_) = ways.values()
    assert np.allclose(units_scores, scores, rtol=0, atol=1e-10) and np.allclose(units_null, null, rtol=0, atol=1e-10)
    print(f"equal (fold scores and null to 1e-10); {args.stimuli} stimuli x {args.steps} steps x 32,768 units, "
          f"{args.permutations} permutations, 5 folds, 10 classes; mean score {scores.mean():.3f}")  # fmt: skip
    for way, (*_, seconds, peak) in ways.items():
        print(f"  {way:16s} {seconds:7.1f} s   worker's peak RSS {peak / 2**30:.2f} GiB")
    whole, units = ways["whole steps"], ways["blocks of units"]
    print(f"  time whole / units {whole[2] / units[2]:.2f}x, peak memory whole / units {whole[3] / units[3]:.2f}x")
    out = Results(__file__)
    out.add(f"decode, {args.stimuli} x {args.steps} x 32768 on disk, {args.permutations} permutations (time)",
            "whole steps", whole[2], units[2])  # fmt: skip
    out.save()


if __name__ == "__main__":
    main()

"""Decoding a layer on disk whose single time step is larger than a block (issue 20, goal 4).

Run:  OMP_NUM_THREADS=1 python benchmarks/dask_large_steps.py [--only wide|tall] [--steps 2] [--dir /path]

Two layers (float32, 10 classes) are saved to a store each and opened dask-backed; one step of either is
more than a block (``blockwise.BLOCK_BYTES``, 256 MiB) in float64:

- wide: a convolutional layer of 32 maps of 32 x 32 (32,768 units) on 2000 stimuli (0.52 GB a step);
- tall: 8 maps of 16 x 16 (2048 units) on 20,000 stimuli (0.33 GB a step).

``decode(..., n_permutations=)`` with the default ridge decoder runs on a LocalCluster of one worker process
(1 thread) two ways:

- whole steps (the way before the twenty-third session): a task per step reads the step and decodes it in
  memory (``decoding_blockwise``);
- in blocks (``decoding_steps``, what decode does now): a task per step sums the folds' kernels over blocks
  of units (wide: each block's read decompresses the step's stored chunks), or the folds' sums over blocks
  of stimuli (tall), then solves and scores.

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

CASES = {"wide": (2000, (32, 32, 32)), "tall": (20_000, (8, 16, 16))}  # stimuli, units


def make(path: Path, n: int, steps: int, shape: tuple[int, ...]) -> None:
    from rnnprobe import Recording

    rng = np.random.default_rng(0)
    label = np.arange(n) % 10
    states = rng.normal(size=(n, steps, *shape)).astype(np.float32)
    states[:, :, 0, :4, :4] += (label[:, None, None, None] * 0.3).astype(np.float32)
    Recording({"conv": states}, metadata={"label": label}).save(path)


def run(path: Path, way: str, permutations: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(fold scores, null, seconds, the worker's peak RSS) of one way on a fresh 1-worker LocalCluster."""
    from distributed import Client, LocalCluster

    from rnnprobe import Recording
    from rnnprobe.analysis import decode, decoding_steps

    large_steps = decoding_steps.large_steps
    if way == "whole steps":  # decided in this process: the tasks then read whole steps
        decoding_steps.large_steps = lambda *args, **kwargs: None
    try:
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                          memory_limit="8GiB") as cluster, Client(cluster) as client:  # fmt: skip
            rec = Recording.load(path, chunks="auto")
            t0 = time.perf_counter()
            result = decode(rec, "conv", "label", n_permutations=permutations, progress=False)
            seconds = time.perf_counter() - t0
            peak = max(client.run(peak_rss).values())
    finally:
        decoding_steps.large_steps = large_steps
    return result.fold_scores, result.null, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=list(CASES), default=None)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--permutations", type=int, default=20)
    parser.add_argument("--dir", default=None, help="folder for the stores (needs about 0.27 GB a step)")
    args = parser.parse_args()
    print_machine()
    out = Results(__file__)
    for case in [args.only] if args.only else list(CASES):
        compare(case, args, out)
    out.save()


def compare(case: str, args: argparse.Namespace, out: Results) -> None:
    """Both ways on one case's store, checked equal first."""
    n, shape = CASES[case]
    folder = Path(tempfile.mkdtemp(prefix="rnnprobe-large-", dir=args.dir))
    try:
        make(folder / "layer.zarr", n, args.steps, shape)
        ways = {way: run(folder / "layer.zarr", way, args.permutations) for way in ("whole steps", "in blocks")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    (scores, null, *_), (block_scores, block_null, *_) = ways.values()
    assert np.allclose(block_scores, scores, rtol=0, atol=1e-10) and np.allclose(block_null, null, rtol=0, atol=1e-10)
    units = int(np.prod(shape))
    print(f"{case}: equal (fold scores and null to 1e-10); {n} stimuli x {args.steps} steps x {units} units, "
          f"{args.permutations} permutations, 5 folds, 10 classes; mean score {scores.mean():.3f}")  # fmt: skip
    for way, (*_, seconds, peak) in ways.items():
        print(f"  {way:12s} {seconds:7.1f} s   worker's peak RSS {peak / 2**30:.2f} GiB")
    whole, blocks = ways["whole steps"], ways["in blocks"]
    print(f"  time whole / blocks {whole[2] / blocks[2]:.2f}x, peak memory whole / blocks {whole[3] / blocks[3]:.2f}x")
    out.add(f"decode, {n} x {args.steps} x {units} on disk, {args.permutations} permutations (time)",
            "whole steps", whole[2], blocks[2])  # fmt: skip


if __name__ == "__main__":
    main()

"""Blocks of steps cut at a store's chunks along time vs blocks of equal size (issue 20, goal 4).

Run:  OMP_NUM_THREADS=1 python benchmarks/dask_time_chunks.py [--stimuli 12500] [--steps 50] [--units 256] [--dir /path]

A float32 layer (stimuli x steps x units, a class signal over the steps) is saved to a store, whose chunks
hold about 8 MiB of stimuli split along time into at least 1 MiB (7 of 50 steps by default), and opened
dask-backed (``chunks="auto"``). ``decode`` over time (ridge, 5 folds) then reads it in blocks of steps of
256 MiB of float64 states (10 steps by default), one after another here (dask's synchronous scheduler,
1 thread). Each read of some steps decompresses every stored chunk they touch: blocks cut at the chunks'
edges (what ``decode`` does) against blocks of equal size (the recording's ``time_chunks`` hidden), alternating,
median of ``--repeats``; then the blocks' reads alone. The fold scores are checked equal first. Printed: the
machine, each way's time and the steps it decompressed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
from _machine import Results, print_machine


def make(path: Path, n: int, steps: int, units: int) -> None:
    from rnnprobe import Recording

    rng = np.random.default_rng(0)
    label = np.arange(n) % 4
    states = rng.normal(size=(n, steps, units)).astype(np.float32)
    states[:, steps // 2 :, :8] += 0.3 * label[:, None, None].astype(np.float32)
    Recording({"h": states}, metadata={"label": label}).save(path)


def decompressed(recording, blocks: list[np.ndarray]) -> int:
    """Steps decompressed by reading ``blocks`` of steps: every step of each chunk a block touches."""
    chunks = recording.time_chunks("h")
    sizes = np.bincount(chunks)
    return sum(int(sizes[np.unique(chunks[block])].sum()) for block in blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stimuli", type=int, default=12500)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=None, help="folder for the store")
    args = parser.parse_args()
    print_machine()
    import dask

    from rnnprobe import Recording
    from rnnprobe.analysis import blockwise, decode

    folder = Path(tempfile.mkdtemp(prefix="rnnprobe-chunks-", dir=args.dir))
    try:
        make(folder / "layer.zarr", args.stimuli, args.steps, args.units)
        aligned = Recording.load(folder / "layer.zarr", chunks="auto")
        plain = Recording.load(folder / "layer.zarr", chunks="auto")
        plain.time_chunks = lambda layer=None: None  # blocks of equal size, as before
        chunks = aligned.time_chunks("h")
        print(f"{args.stimuli} stimuli x {args.steps} steps x {args.units} units, float32 "
              f"({args.stimuli * args.steps * args.units * 4 / 1e9:.2f} GB); stored chunks along time of "
              f"{np.bincount(chunks).tolist()} steps")  # fmt: skip
        positions, n_units = np.arange(args.steps), args.units
        ways = {
            "cut at the chunks": blockwise.time_blocks(args.stimuli, n_units, positions, chunks=chunks),
            "equal blocks": blockwise.time_blocks(args.stimuli, n_units, positions),
        }
        for name, blocks in ways.items():
            print(f"  {name:18s} blocks of {[len(b) for b in blocks]} steps, "
                  f"{decompressed(aligned, blocks)} steps decompressed")  # fmt: skip
        times: dict[str, list[float]] = {"cut at the chunks": [], "equal blocks": []}
        reads: dict[str, list[float]] = {"cut at the chunks": [], "equal blocks": []}
        cpu: dict[str, list[float]] = {"cut at the chunks": [], "equal blocks": []}
        with dask.config.set(scheduler="synchronous"):
            results = {}
            for _ in range(args.repeats):
                for name, recording in (("cut at the chunks", aligned), ("equal blocks", plain)):
                    t0 = time.perf_counter()
                    results[name] = decode(recording, "h", "label", progress=False).fold_scores
                    times[name].append(time.perf_counter() - t0)
                    t0, c0 = time.perf_counter(), time.process_time()  # the blocks' reads alone, as decode's
                    for block in ways[name]:  # tasks make them; CPU time: zarr's codec threads too
                        recording.select("h", time=block).load_into_memory()
                    reads[name].append(time.perf_counter() - t0)
                    cpu[name].append(time.process_time() - c0)
        np.testing.assert_allclose(results["cut at the chunks"], results["equal blocks"], rtol=0, atol=1e-12)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print("fold scores equal")
    cut, equal = (statistics.median(times[k]) for k in ("cut at the chunks", "equal blocks"))
    print(f"  decode over time: equal blocks {equal:.2f} s, cut at the chunks {cut:.2f} s: {equal / cut:.2f}x "
          f"(all: {', '.join(f'{t:.2f}' for t in times['equal blocks'])} / "
          f"{', '.join(f'{t:.2f}' for t in times['cut at the chunks'])} s)")  # fmt: skip
    cut_read, equal_read = (statistics.median(reads[k]) for k in ("cut at the chunks", "equal blocks"))
    cut_cpu, equal_cpu = (statistics.median(cpu[k]) for k in ("cut at the chunks", "equal blocks"))
    print(f"  the blocks' reads alone: equal blocks {equal_read:.2f} s, cut at the chunks {cut_read:.2f} s: "
          f"{equal_read / cut_read:.2f}x; CPU time {equal_cpu:.2f} s against {cut_cpu:.2f} s: "
          f"{equal_cpu / cut_cpu:.2f}x")  # fmt: skip
    out = Results(__file__)
    out.add(f"reading {args.steps} steps in chunks in blocks, cut at the chunks", "equal blocks", equal_read, cut_read)
    out.add(f"decode over time, {args.steps} steps in chunks, blocks cut at the chunks", "equal blocks", equal, cut)
    out.save()


if __name__ == "__main__":
    main()

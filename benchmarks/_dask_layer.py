"""A float32 layer on disk analysed three ways: read whole in a fresh process, and blockwise on a
LocalCluster of 1 and of 2 worker processes (1 thread each). Shared by the dask_*.py scripts of layers on disk.

The layer (stimuli x 4 steps x units: a low-rank signal plus noise; with ``labelled``, a class label per
stimulus whose mean shifts the signal, and a run of 4 in turn) is written by a separate process without
being held whole. The scripts' results are checked equal across the three ways first (1e-8 relative to
their scale); printed: the machine, each way's time and the peak resident memory of each process that
held data.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _dask import add_allocator_argument, set_worker_allocator
from _machine import Results, peak_rss, print_machine

STEPS = 4
CLASSES = 10
RUNS = 4


def make_store(path: Path, n: int, units: int, *, labelled: bool) -> None:
    """Write the layer in pieces without holding it whole."""
    from rnnprobe import Recording

    rng = np.random.default_rng(0)
    basis = rng.normal(size=(8, units)).astype(np.float32)
    label = np.random.default_rng(1).integers(0, CLASSES, n)
    shift = (
        np.random.default_rng(2).normal(size=(CLASSES, STEPS, 8)).astype(np.float32) * np.linspace(0, 1, STEPS)[:, None]
    )
    piece = 2000
    parts = []
    for start in range(0, n, piece):
        m = min(piece, n - start)
        latent = rng.normal(size=(m, STEPS, 8)).astype(np.float32) * np.arange(8, 0, -1, dtype=np.float32)
        if labelled:  # the class appears over the steps
            latent += 4 * shift[label[start : start + m]]
        parts.append(path.parent / f"part{start}.npy")
        np.save(parts[-1], latent @ basis + rng.normal(size=(m, STEPS, units)).astype(np.float32))
    states = np.concatenate([np.load(p, mmap_mode="r") for p in parts])  # one copy, then written
    metadata = {"label": label, "run": np.arange(n) % RUNS} if labelled else None  # runs: crossnobis's folds
    Recording({"h": states}, metadata=metadata).save(path)
    for p in parts:
        p.unlink()


def _in_process(analyse: Callable, path: Path, out: Path) -> None:
    """The analysis reading the layer whole, in this (fresh) process; the result and the process's peak saved."""
    from rnnprobe import Recording

    t0 = time.perf_counter()
    result = analyse(Recording.load(path))
    seconds = time.perf_counter() - t0
    np.savez(out, **result)
    out.with_suffix(".json").write_text(json.dumps({"seconds": seconds, "peak": [peak_rss()]}))


def _on_cluster(analyse: Callable, path: Path, workers: int) -> tuple[dict, float, list[int]]:
    from distributed import Client, LocalCluster

    from rnnprobe import Recording

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      memory_limit="4GiB") as cluster, Client(cluster) as client:  # fmt: skip
        t0 = time.perf_counter()
        result = analyse(Recording.load(path, chunks="auto"))
        seconds = time.perf_counter() - t0
        peaks = list(client.run(peak_rss).values())
    return result, seconds, peaks


def main(script: str, description: str, analyse: Callable, *, case: str, labelled: bool, gb: float, units: int,
         variant: Callable[[int, int], str] | None = None) -> None:  # fmt: skip
    """The command line of a script: ``analyse(recording)`` returns the named arrays compared across the ways;
    ``variant(stimuli, units)``: a name for the kind of layer, added to the case and the results file's name.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=gb, help="GB of float32 states")
    parser.add_argument("--units", type=int, default=units)
    parser.add_argument("--dir", default=None, help="folder for the store")
    parser.add_argument("--make", default=None, help=argparse.SUPPRESS)  # (the writer process)
    parser.add_argument("--whole", nargs=2, default=None, help=argparse.SUPPRESS)  # (the in-process analysis)
    add_allocator_argument(parser)
    args = parser.parse_args()
    n = int(args.gb * 1e9 / (4 * STEPS * args.units))
    if args.make:
        return make_store(Path(args.make), n, args.units, labelled=labelled)
    if args.whole:
        return _in_process(analyse, Path(args.whole[0]), Path(args.whole[1]))
    print_machine()
    set_worker_allocator(args.mmap_threshold)
    print(f"{n} stimuli x {STEPS} steps x {args.units} units, float32: {n * STEPS * args.units * 4 / 1e9:.2f} GB")
    folder = Path(tempfile.mkdtemp(prefix="rnnprobe-layer-", dir=args.dir))
    me = [sys.executable, script, "--gb", str(args.gb), "--units", str(args.units)]
    try:
        path, whole = folder / "layer.zarr", folder / "whole.npz"
        subprocess.run([*me, "--make", str(path)], check=True)
        subprocess.run([*me, "--whole", str(path), str(whole)], check=True)
        reference, measured = dict(np.load(whole)), json.loads(whole.with_suffix(".json").read_text())
        ways = {"in-process, read whole": (measured["seconds"], measured["peak"])}
        for workers in (1, 2):
            got, seconds, peaks = _on_cluster(analyse, path, workers)
            for name, expected in reference.items():  # equal first
                scale = max(np.abs(expected).max(), 1e-300)
                np.testing.assert_allclose(got[name], expected, rtol=0, atol=1e-8 * scale, err_msg=name)
            ways[f"LocalCluster, {workers} worker(s), blockwise"] = (seconds, peaks)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"results equal across the three ways ({', '.join(reference)})")
    for who, (seconds, peaks) in ways.items():
        print(f"  {who:36s} {seconds:7.1f} s   peak RSS per process (GiB): "
              f"{', '.join(f'{p / 2**30:.2f}' for p in peaks)}")  # fmt: skip
    results = Results(script)
    if variant is not None:
        case = f"{case}, {variant(n, args.units)}"
        results.script += "_" + variant(n, args.units).split()[0].lower()
    whole_s = ways["in-process, read whole"][0]
    for workers in (1, 2):
        results.add(f"{case} blockwise, {workers} worker(s)", "read whole", whole_s,
                    ways[f"LocalCluster, {workers} worker(s), blockwise"][0], goal=None)  # fmt: skip
    results.save()

"""Streaming a recording larger than memory into a zarr store, with bounded peak memory.

Run:  OMP_NUM_THREADS=1 python benchmarks/record_streaming.py [--n 1700] [--dir /tmp]

Records a BLT-style recurrent convnet (64 maps, 8 time steps, 32x32 inputs; about
2.6 MB of states per stimulus) for enough stimuli that the states exceed 4 GB,
streaming them into a zarr store. Prints the states' size, the time, MB/s, and the
process's peak resident memory (VmHWM), then reopens the store lazily and checks
a few stimuli against recording them again in memory.
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
from _machine import peak_rss, print_machine
from _models import ConvRecurrent

import rnnprobe


def main() -> None:
    print_machine()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1700, help="number of stimuli")
    parser.add_argument("--dir", default=None, help="where to write the store (deleted afterwards)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = ConvRecurrent(maps=64, steps=8)
    stimuli = torch.randn(args.n, 1, 32, 32)
    layers = ["layer1", "layer2", "readout"]
    print(
        f"rnnprobe {rnnprobe.__version__}, torch {torch.__version__}, 1 thread; peak RSS before: "
        f"{peak_rss() / 2**20:.0f} MiB"
    )
    tmp = tempfile.mkdtemp(dir=args.dir)
    try:
        path = Path(tmp) / "big.zarr"
        t0 = time.perf_counter()
        rec = rnnprobe.record(model, stimuli, layers=layers, batch_size=32, store=path, progress=False)
        elapsed = time.perf_counter() - t0
        peak = peak_rss()
        disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        print(rec)
        print(
            f"states: {rec.nbytes / 1e9:.2f} GB ({disk / 1e9:.2f} GB on disk) for {args.n} stimuli "
            f"in {elapsed:.1f} s = {rec.nbytes / 1e6 / elapsed:.0f} MB/s of states"
        )
        print(f"peak RSS of the whole process: {peak / 2**30:.2f} GiB (goal < 1.5 GB)")
        check = [0, args.n // 2, args.n - 1]
        again = rnnprobe.record(model, stimuli[check], layers=layers, progress=False)
        for name in layers:
            np.testing.assert_allclose(rec.get(name, stimuli=check), again[name], rtol=0, atol=1e-5)
        print("spot check: stored states equal a fresh in-memory recording of the same stimuli")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

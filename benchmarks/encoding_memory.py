"""Encoding a 100,000-unit layer on 3,000 stimuli from a zarr store, with bounded memory (issue 17: < 4 GB).

Run:  python benchmarks/encoding_memory.py [--units 100000] [--stimuli 3000] [--dir /tmp]

Records a wide random layer (a linear map of 64 latent inputs, then tanh, float32: 1.2 GB of states for
the defaults) into a store, streaming batches. Then, in a fresh process, reads it lazily and fits ridge
encoding models (5 folds, 20 penalties) to 200 synthetic neurons driven by the same latents: the layer
has more units than stimuli, so the dual form runs from a float64 Gram matrix accumulated over blocks
of units. Prints the time and the fitting process's peak resident memory (VmHWM).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))


def latents(n: int):
    import numpy as np

    return np.random.default_rng(0).normal(size=(n, 64)).astype(np.float32)


def write_store(path: Path, n: int, units: int) -> None:
    import torch

    from rnnprobe import record

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, units), torch.nn.Tanh())
    record(model, latents(n), layers=["1"], store=path, batch_size=100, progress=False)


def fit(path: Path) -> None:
    import numpy as np
    from _machine import peak_rss, print_machine

    from rnnprobe import Recording
    from rnnprobe.analysis import fit_encoding

    print_machine()
    rec = Recording.load(path)
    n = len(rec)
    rng = np.random.default_rng(1)
    signal = latents(n) @ rng.normal(size=(64, 200))
    trials = signal[:, None, None] + rng.normal(0, 4, size=(n, 4, 1, 200))
    before = peak_rss()
    t0 = time.perf_counter()
    result = fit_encoding(rec, trials, alphas=np.logspace(-1, 8, 20), cv=5)
    seconds = time.perf_counter() - t0
    print(f"layer {rec.shapes}, {rec.dtypes}; {n} stimuli, 200 neurons x 4 repetitions, 5 folds")
    print(f"  fit_encoding: {seconds:.1f} s, peak resident memory {peak_rss() / 2**30:.2f} GiB "
          f"(before the fit {before / 2**30:.2f} GiB); median held-out r {np.median(result.scores['1']):.3f}, "
          f"ceiled {np.nanmedian(result.ceiled('1')):.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--stimuli", type=int, default=3000)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--fit", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fit:
        return fit(Path(args.fit))
    folder = Path(tempfile.mkdtemp(dir=args.dir))
    try:
        store = folder / "wide.zarr"
        t0 = time.perf_counter()
        write_store(store, args.stimuli, args.units)
        print(f"recorded {args.stimuli} x {args.units} float32 in {time.perf_counter() - t0:.1f} s")
        subprocess.run([sys.executable, __file__, "--fit", str(store)], check=True)
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()

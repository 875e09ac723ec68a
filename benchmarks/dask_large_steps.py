"""Decoding and encoding from a layer on disk whose single time step is larger than a block (issue 20, goal 4).

Run:  OMP_NUM_THREADS=1 python benchmarks/dask_large_steps.py [--steps 2] [--dir /path]
      [--only wide|tall|encoding|encoding-pls|wide-matrix|tall-matrix|wide-logistic|wide-binary|tall-shuffled|
             between|encoding-tall|encoding-tall-pls|tall-logistic]

Layers (float32, 10 classes) are saved to a store each and opened dask-backed; one step of each is more
than a block (``blockwise.BLOCK_BYTES``, 256 MiB) as the analysis holds it:

- wide: a convolutional layer of 32 maps of 32 x 32 (32,768 units) on 2000 stimuli (0.52 GB a step in
  float64, as decode reads it);
- tall: 8 maps of 16 x 16 (2048 units) on 20,000 stimuli (0.33 GB a step in float64);
- encoding: the wide layer on 4000 stimuli (0.52 GB a step in float32, as fit_encoding reads it);
- between: 16 maps of 16 x 16 (4096 units) on 10,000 stimuli (0.33 GB a step in float64): more stimuli than
  twice the units but fewer than 5 folds x units, whose 5 Gram matrices (0.67 GB) do not fit in a block;
- encoding-tall: the tall layer on 40,000 stimuli (0.33 GB a step in float32, as fit_encoding reads it).

Each case runs on a LocalCluster of one worker process (1 thread) two ways, a fresh cluster per way:

- whole steps (the way before the twenty-third session): a task per step reads the step whole;
- in blocks (what rnnprobe does now): a task per step reads it in blocks of units or of stimuli.

Cases: ``decode(..., n_permutations=)`` with the default ridge decoder from both layers (in blocks:
``decoding_steps``, the folds' kernels summed over blocks of units (wide: each block's read decompresses the step's
stored chunks), or the folds' sums over blocks of stimuli (tall)); and ``fit_encoding`` of 100 simulated neurons
from the encoding layer (ridge in its dual form, ``ceiling=False``; in blocks: the Gram matrix across stimuli from
blocks of stimuli); ``encoding-pls``: the same with PLS(25), in its dual form from that Gram matrix since the
twenty-fifth session (the whole step's fit too). ``wide-matrix`` and ``tall-matrix``: the decode cases'
generalization matrix (in blocks: ``decoding_steps_matrix``, the same fits, then each training step's weights and
each test step's decision values from blocks). ``wide-logistic``: the wide case with ``estimator="logistic"`` (in
blocks: each fold's multinomial fit on the principal coordinates of its kernel, as in memory); ``wide-binary``: the
same with 2 classes (the label's halves, 0-4 and 5-9; in blocks as the multinomial case, which binary problems on
the CPU take since the twenty-fifth session). ``tall-shuffled``: the tall case with 5 shuffled splits
(``ShuffleSplit(5, test_size=0.2)``, no partition; in blocks: each split's training sums and every stimulus's).
``between``: ridge decoding of the between layer (in blocks: every stimulus's sums in a pass, held, then each fold's
test sums a pass each, the decisions in a last; before the twenty-fifth session such steps were read whole).
``encoding-tall`` and ``encoding-tall-pls``: fit_encoding (ridge; PLS(25)) of the encoding-tall layer, in its
primal form (in blocks since the twenty-sixth session: ``encoding.tall``, each fold's sums over blocks of stimuli,
ridge's leave-one-out errors in a second pass, the predictions in a last; PLS from the sums alone).
``tall-logistic``: the tall case with ``estimator="logistic"`` and no permutations (10 classes; in blocks since the
twenty-seventh session: ``_logistic_rows``, the in-memory Newton solver with its products summed over blocks of
stimuli, a pass per conjugate-gradient step; before, whole steps). Both
ways are checked equal first (1e-10; encoding 1e-8, see ``compare``). Printed: the machine, each way's time and the
worker's peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
from _machine import Results, peak_rss, print_machine

# stimuli, units: decode (wide, tall) and fit_encoding (whose whole steps stay float32: twice the stimuli)
CASES = {
    "wide": (2000, (32, 32, 32)),
    "tall": (20_000, (8, 16, 16)),
    "encoding": (4000, (32, 32, 32)),
    "encoding-pls": (4000, (32, 32, 32)),
    "wide-matrix": (2000, (32, 32, 32)),
    "tall-matrix": (20_000, (8, 16, 16)),
    "wide-logistic": (2000, (32, 32, 32)),
    "wide-binary": (2000, (32, 32, 32)),
    "tall-shuffled": (20_000, (8, 16, 16)),
    "between": (10_000, (16, 16, 16)),
    "encoding-tall": (40_000, (8, 16, 16)),
    "encoding-tall-pls": (40_000, (8, 16, 16)),
    "tall-logistic": (20_000, (8, 16, 16)),
}  # -matrix: generalize=True; -logistic, -binary: estimator="logistic"; -shuffled: ShuffleSplit folds


PERMUTATIONS = {"tall-logistic": 0}  # (cases whose permutations would each take a fit of minutes: none)


def make(path: Path, n: int, steps: int, shape: tuple[int, ...]) -> None:
    from rnnprobe import Recording

    rng = np.random.default_rng(0)
    label = np.arange(n) % 10
    states = rng.normal(size=(n, steps, *shape)).astype(np.float32)
    states[:, :, 0, :4, :4] += (label[:, None, None, None] * 0.3).astype(np.float32)
    Recording({"conv": states}, metadata={"label": label, "half": label // 5}).save(path)


def run(path: Path, case: str, way: str, args: argparse.Namespace) -> tuple[list[np.ndarray], float, float]:
    """(results, seconds, the worker's peak RSS) of one case and way on a fresh 1-worker LocalCluster."""
    from distributed import Client, LocalCluster

    from rnnprobe import Recording
    from rnnprobe.analysis import decode, decoding_steps, fit_encoding

    large_steps = decoding_steps.large_steps
    if way == "whole steps":  # decode decides in this process: the tasks then read whole steps
        decoding_steps.large_steps = lambda *args, **kwargs: None
    try:
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                          memory_limit="8GiB") as cluster, Client(cluster) as client:  # fmt: skip
            if way == "whole steps":
                client.run(_whole_encoding_steps)  # fit_encoding decides in its tasks
            rec = Recording.load(path, chunks="auto")
            t0 = time.perf_counter()
            if case.startswith("encoding"):
                pls = {"estimator": "pls", "n_components": 25} if case.endswith("pls") else {}
                result = fit_encoding(rec, responses(path), ceiling=False, progress=False, **pls)
                out = [result.scores["conv"], result.r2["conv"]]
            else:
                result = decode(rec, "conv", "half" if case.endswith("binary") else "label", progress=False,
                                n_permutations=PERMUTATIONS.get(case, args.permutations),
                                estimator="logistic" if case.endswith(("logistic", "binary")) else "ridge",
                                generalize=case.endswith("matrix"), cv=folds(case))  # fmt: skip
                out = [result.fold_scores, result.null]
            seconds = time.perf_counter() - t0
            peak = max(client.run(peak_rss).values())
    finally:
        decoding_steps.large_steps = large_steps
    return out, seconds, peak


def folds(case: str) -> Any:
    """decode()'s ``cv`` of a case: 5 shuffled splits (no partition of the stimuli) or the default k-fold."""
    from sklearn.model_selection import ShuffleSplit

    return ShuffleSplit(5, test_size=0.2, random_state=0) if case.endswith("shuffled") else 5


def _whole_encoding_steps() -> None:
    """On a worker: fit_encoding reads every step whole (the way before)."""
    from rnnprobe.analysis.encoding import fit

    fit._step_features = lambda feature, step, *args: feature.read(step)


def responses(path: Path) -> np.ndarray:
    """100 simulated neurons (stimulus, time, neuron): a random mixture of 64 of the layer's units at its first
    step, plus noise.
    """
    from rnnprobe import Recording

    rng = np.random.default_rng(1)
    units = Recording.load(path).get("conv", time=0)[:, 0, :8, :8].reshape(-1, 64).astype(np.float64)
    return (units @ rng.normal(size=(64, 100)) + rng.normal(0, 8.0, size=(len(units), 100)))[:, None]


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
        n, shape = CASES[case]
        folder = Path(tempfile.mkdtemp(prefix="rnnprobe-large-", dir=args.dir))
        try:
            make(folder / "layer.zarr", n, args.steps, shape)
            compare(case, folder / "layer.zarr", n, shape, args, out)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    out.save()


def compare(case: str, path: Path, n: int, shape: tuple, args: argparse.Namespace, out: Results) -> None:
    """Both ways of one case, checked equal first."""
    ways = {way: run(path, case, way, args) for way in ("whole steps", "in blocks")}
    (expected, *_), (got, *_) = ways.values()
    # encoding: the Gram matrix computed from other blocks moves the scores by up to 4e-9 here, as much as the
    # in-memory fit moves with its own block size (fit.GRAM_BLOCK 4096 -> 2048: 3.6e-9): the fits' conditioning
    tolerance = 1e-8 if case.startswith("encoding") else 1e-10
    differences = [float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True) if e is not None]
    assert max(differences) <= tolerance, differences
    units = int(np.prod(shape))
    permutations = PERMUTATIONS.get(case, args.permutations)
    what = "fit_encoding of 100 neurons" if case.startswith("encoding") else f"decode, {permutations} permutations"
    kinds = {"matrix": "generalization matrix", "logistic": "logistic", "binary": "binary logistic", "pls": "PLS(25)",
             "shuffled": "5 shuffled splits", "tall": "ridge, more stimuli than units"}  # fmt: skip
    what += f", {kinds[case.rpartition('-')[2]]}" if "-" in case else ""
    print(f"{case}: equal (to {tolerance:g}; largest difference {max(differences):.1e}); {n} stimuli x "
          f"{args.steps} steps x {units} units; {what}")  # fmt: skip
    for way, (_, seconds, peak) in ways.items():
        print(f"  {way:12s} {seconds:7.1f} s   worker's peak RSS {peak / 2**30:.2f} GiB")
    whole, blocks = ways["whole steps"], ways["in blocks"]
    print(f"  time whole / blocks {whole[1] / blocks[1]:.2f}x, peak memory whole / blocks {whole[2] / blocks[2]:.2f}x")
    out.add(f"{what}, {n} x {args.steps} x {units} on disk (time)", "whole steps", whole[1], blocks[1])


if __name__ == "__main__":
    main()

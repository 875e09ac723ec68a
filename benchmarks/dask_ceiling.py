"""The noise ceiling's split halves of neural trials on disk: sums per chunk of whole stimuli (issue 20, goal 4).

Run:  OMP_NUM_THREADS=1 python benchmarks/dask_ceiling.py [--stimuli 400] [--reps 10] [--splits 100] [--dir /path]

Neural trials (stimuli x repetitions, in shuffled order; 20 time bins x 100 neurons, float32) are saved to
a store and opened dask-backed in chunks of 100 trials. ``fit_encoding(..., descriptor=)`` needs their
mean over repetitions and, for the noise ceiling, each split's two half means. Two ways of computing these
from the chunks, with dask's threaded scheduler:

- per chunk of trials into every stimulus (``blockwise.group_sums`` of each half's labels, the way before
  the twenty-second session): each chunk's sums cover all stimuli, most of them zero there;
- per chunk of whole stimuli (``encoding.blockwise.repetition_sums``, what ``fit_encoding`` does): the
  trials taken into stimulus order by dask's shuffle and each chunk summing its own stimuli's repetitions.

Both are checked equal (1e-10) to the halves of the trials in memory, then timed alternating (median of
``--repeats``), with ``fit_encoding``'s own passes (256 MiB of halves each).
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


def make(path: Path, n_stimuli: int, n_reps: int) -> None:
    from rnnprobe import Recording

    rng = np.random.default_rng(0)
    signal = rng.normal(size=(n_stimuli, 20, 100))
    stimulus = rng.permutation(np.repeat(np.arange(n_stimuli), n_reps))
    trials = (signal[stimulus] + rng.normal(0, 2.0, size=(stimulus.size, 20, 100))).astype(np.float32)
    Recording({"IT": trials}, metadata={"image": stimulus}).save(path)


def halves_by_stimulus_chunks(x, order, n_reps, splits, half, per_pass) -> list[np.ndarray]:
    from rnnprobe.analysis.encoding.blockwise import repetition_sums

    out = [repetition_sums(x, order, n_reps, np.ones((1, n_reps))).compute()[0] / n_reps]
    for start in range(0, len(splits), per_pass):
        parts = [p for o in splits[start : start + per_pass] for p in (o[:half], o[half : 2 * half])]
        weights = np.zeros((len(parts), n_reps))
        for row, part in zip(weights, parts, strict=True):
            row[part] = 1.0
        out += list(repetition_sums(x, order, n_reps, weights).compute() / half)
    return out


def halves_by_trial_chunks(x, order, n_reps, splits, half, per_pass) -> list[np.ndarray]:
    import dask

    from rnnprobe.analysis.blockwise import group_sums

    n = order.size // n_reps
    stimulus, repetition = np.empty(order.size, dtype=np.intp), np.empty(order.size, dtype=np.intp)
    stimulus[order], repetition[order] = np.repeat(np.arange(n), n_reps), np.tile(np.arange(n_reps), n)
    out = [group_sums(x, stimulus, n, mean=True).compute()]
    for start in range(0, len(splits), per_pass):
        parts = [p for o in splits[start : start + per_pass] for p in (o[:half], o[half : 2 * half])]
        lazy = [group_sums(x, np.where(np.isin(repetition, p), stimulus, n), n + 1)[:n] for p in parts]
        out += [s / half for s in dask.compute(*lazy)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stimuli", type=int, default=400)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--splits", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=None, help="folder for the store")
    args = parser.parse_args()
    print_machine()
    import dask

    from rnnprobe import Recording
    from rnnprobe.analysis.blockwise import dask_states
    from rnnprobe.analysis.encoding import blockwise
    from rnnprobe.analysis.encoding.inputs import repetitions

    folder = Path(tempfile.mkdtemp(prefix="rnnprobe-ceiling-", dir=args.dir))
    try:
        make(folder / "trials.zarr", args.stimuli, args.reps)
        recording = Recording.load(folder / "trials.zarr", chunks=100)
        _, order, n_reps = repetitions(recording.column("image"), "image")
        x = dask_states(recording, "IT")
        rng = np.random.default_rng(1)
        splits, half = [rng.permutation(n_reps) for _ in range(args.splits)], n_reps // 2
        per_pass = max(1, blockwise.BUDGET // (2 * 8 * args.stimuli * 20 * 100))
        trials = x.compute()[order].reshape(args.stimuli, n_reps, 20, 100).astype(np.float64)
        expected = [trials.mean(axis=1)] + [trials[:, p].mean(axis=1) for o in splits
                                            for p in (o[:half], o[half : 2 * half])]  # fmt: skip
        print(f"{args.stimuli} stimuli x {args.reps} repetitions, 20 bins x 100 neurons, stored float32, read as "
              f"{x.dtype} ({x.nbytes / 1e6:.0f} MB), {len(x.chunks[0])} chunks of 100 trials; the mean and "
              f"{args.splits} splits' halves, {per_pass} splits per pass")  # fmt: skip
        ways = {"per chunk of trials": halves_by_trial_chunks, "per chunk of whole stimuli": halves_by_stimulus_chunks}
        times: dict[str, list[float]] = {name: [] for name in ways}
        with dask.config.set(scheduler="threads"):
            for name, way in ways.items():
                got = way(x, order, n_reps, splits, half, per_pass)
                for g, e in zip(got, expected, strict=True):
                    np.testing.assert_allclose(g, e, rtol=0, atol=1e-10, err_msg=name)
            print("both equal the halves of the trials in memory (1e-10)")
            for _ in range(args.repeats):
                for name, way in ways.items():
                    t0 = time.perf_counter()
                    way(x, order, n_reps, splits, half, per_pass)
                    times[name].append(time.perf_counter() - t0)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    before, now = (statistics.median(times[name]) for name in ways)
    for name in ways:
        print(f"  {name:28s} {statistics.median(times[name]):6.2f} s  (all: "
              f"{', '.join(f'{t:.2f}' for t in times[name])})")  # fmt: skip
    print(f"  ratio {before / now:.2f}x")
    out = Results(__file__)
    out.add(f"noise ceiling's halves, {args.stimuli} x {args.reps} trials on disk, {args.splits} splits",
            "per chunk of trials", before, now)  # fmt: skip
    out.save()


if __name__ == "__main__":
    main()

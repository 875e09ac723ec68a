"""rnnprobe's shape metrics vs netrep's LinearMetric, side by side in one run; results checked equal first.

Run:  python benchmarks/alignment_vs_netrep.py [--threads 1] [--repeats 5]

netrep is not on PyPI: install it from its source repository (github.com/ahwillia/netrep, the version
benchmarked is 0.0.2, commit 0186b8a) with ``pip install --no-deps <checkout>``.

Cases (from issue 17):
  one pair, 5000 stimuli x 500 units: Procrustes (alpha=1) and CCA (alpha=0), in sample
  pairwise distances of 10 networks of 1000 stimuli x 100 units, Procrustes (netrep's
      pairwise_distances with its process pool over pairs; rnnprobe prepares each network once)
``--threads`` pins torch, BLAS and OpenMP threads for both (default 1; pass 2 to measure threading).
"""

from __future__ import annotations

import argparse
import os
import sys


def _pin(threads: int) -> None:
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[key] = str(threads)


def timed(fn, repeats: int) -> tuple[float, object]:
    """Median time after one warm-up call (first calls load kernels)."""
    from _machine import median_time  # imported after the threads are pinned

    return median_time(fn, repeats, warmup=True)


def row(label: str, ours: float, theirs: float, results, case: str) -> None:
    print(f"  {label:44s} netrep {theirs * 1e3:8.1f} ms   rnnprobe {ours * 1e3:8.1f} ms   {theirs / ours:6.1f}x")
    results.add(case, "netrep", theirs, ours, goal=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    _pin(args.threads)
    import numpy as np
    import torch
    from _machine import print_machine

    torch.set_num_threads(args.threads)
    try:
        from netrep.metrics import LinearMetric
    except ImportError:
        sys.exit("netrep is not installed: pip install --no-deps <a checkout of github.com/ahwillia/netrep>")
    from rnnprobe.analysis import compare_representations, pairwise_distances

    print_machine()
    from _machine import Results

    results = Results(__file__.replace(".py", f"_{args.threads}threads.py"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 500))
    y = x @ rng.normal(size=(500, 500)) / 20 + rng.normal(size=(5000, 500))
    print(f"one pair, {x.shape[0]} stimuli x {x.shape[1]} units ({args.threads} thread(s)):")
    floor, _ = timed(lambda: x.T @ y, args.repeats)  # every exact method forms this float64 product
    for alpha, label in ((1.0, "Procrustes (alpha=1)"), (0.0, "CCA (alpha=0)")):
        theirs, expected = timed(lambda a=alpha: LinearMetric(alpha=a).fit_score(x, y), args.repeats)
        ours, result = timed(lambda a=alpha: compare_representations(x, y, alpha=a).value, args.repeats)
        assert abs(result - expected) < 1e-6, (result, expected)
        row(f"{label}, distance {expected:.6f}", ours, theirs, results, f"one pair, {label}, {args.threads} thread(s)")
        print(f"    ceiling: one float64 X'Y alone takes {floor * 1e3:.1f} ms = netrep / {theirs / floor:.1f}")

    nets = [rng.normal(size=(1000, 100)) @ rng.normal(size=(100, 100)) for _ in range(10)]
    print("pairwise distances, 10 networks of 1000 stimuli x 100 units, Procrustes:")
    metric = LinearMetric(alpha=1.0)
    theirs, (expected, _) = timed(
        lambda: metric.pairwise_distances(nets, processes=args.threads, verbose=False), args.repeats
    )
    named = {f"net{i}": net for i, net in enumerate(nets)}
    ours, result = timed(lambda: pairwise_distances(named, n_jobs=args.threads).distances, args.repeats)
    np.testing.assert_allclose(result, expected, atol=1e-6)
    row("45 pairs", ours, theirs, results, f"45 pairs of 10 networks, {args.threads} thread(s)")
    results.save()


if __name__ == "__main__":
    main()

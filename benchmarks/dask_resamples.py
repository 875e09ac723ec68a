"""Resamples as dask tasks: permutation tests, bootstraps and decoding permutations, in-process vs a
LocalCluster of 1 and 2 worker processes (issue 20, goal 4).

Run:  OMP_NUM_THREADS=1 python benchmarks/dask_resamples.py [--repeats 3] [--quick]

Every library runs on 1 thread, in this process and in each worker (1 thread per worker), so the cluster
adds cores, not threads. Each case runs in-process (no client), then with a client on a LocalCluster of
1 and of 2 workers, where its samples become blocks of tasks (``rnnprobe.analysis.blockwise``). The
results are checked equal to the in-process ones (1e-10) before any time is printed. Printed: the
machine, the median times and the ratios in-process / cluster and 1 worker / 2 workers (goal: 2 workers
take at most 0.6 of 1 worker's time, 1.67x).

The workers' allocator: see benchmarks/_dask.py (``--mmap-threshold``).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from _dask import add_allocator_argument, set_worker_allocator
from _machine import Results, median_time, print_machine


def cases(quick: bool) -> dict:
    """{name: a function returning the numbers of one resampling analysis}."""
    from sklearn.linear_model import LogisticRegression

    from rnnprobe import Recording
    from rnnprobe.analysis import bootstrap_subjects, decode, permutation_test

    rng = np.random.default_rng(0)
    k = 4 if quick else 1
    truth = rng.random(92 * 91 // 2)  # 92 conditions, as the Kriegeskorte 2008 set
    models = np.stack([truth + rng.normal(0, s, truth.size) for s in (0.5, 1.0, 2.0, 4.0)])
    subjects = truth + rng.normal(0, 1.0, size=(15, truth.size))
    label = np.arange(200) % 2
    rec = Recording({"h": rng.normal(size=(200, 10, 20)) + 0.3 * label[:, None, None]}, metadata={"label": label})
    return {
        f"permutation_test corr, 92 conditions, {20000 // k} permutations": lambda: (
            permutation_test(models, subjects, n_permutations=20000 // k, comparison="corr", seed=1).null
        ),
        f"bootstrap_subjects spearman with noise ceiling, {2000 // k} samples": lambda: bootstrap_numbers(
            bootstrap_subjects(models, subjects, n_bootstrap=2000 // k, comparison="spearman", seed=2)
        ),
        f"decode LogisticRegression (fast=False) 200 x 10 x 20, {40 // k} permutations": lambda: (
            decode(
                rec, "h", "label", estimator=LogisticRegression(), fast=False, n_permutations=40 // k, progress=False
            ).null
        ),
    }


def bootstrap_numbers(result) -> np.ndarray:
    """A bootstrap's evaluations and noise ceilings, as one vector."""
    return np.concatenate([result.evaluations.ravel(), result.noise_ceiling.ravel()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller cases (a smoke run)")
    add_allocator_argument(parser)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    print_machine()
    set_worker_allocator(args.mmap_threshold)
    work = cases(args.quick)
    times = {name: {} for name in work}
    expected = {name: fn() for name, fn in work.items()}
    for name, fn in work.items():
        times[name]["in-process"], _ = median_time(fn, args.repeats)
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
            with Client(cluster):
                for name, fn in work.items():
                    np.testing.assert_allclose(fn(), expected[name], rtol=0, atol=1e-10)  # equal (and warm)
                    times[name][f"{workers} worker(s)"], _ = median_time(fn, args.repeats)
    results = Results(__file__)
    print(f"\n{'case':<62} {'in-process':>10} {'1 worker':>9} {'2 workers':>9} {'1w/2w':>6}")
    for name, t in times.items():
        base, one, two = t["in-process"], t["1 worker(s)"], t["2 worker(s)"]
        print(f"{name:<62} {base:>9.3f}s {one:>8.3f}s {two:>8.3f}s {one / two:>5.2f}x")
        results.add(name + " (2 workers vs in-process)", "in-process", base, two)
        results.add(name + " (2 workers vs 1)", "1 worker", one, two, goal=1 / 0.6)
    if not args.quick:
        results.save()


if __name__ == "__main__":
    main()

"""Bootstraps under spearman on 1 and on 2 threads, of conditions, of subjects and of both (issue 20, goal 3).

Run:  python benchmarks/rank_bootstraps.py [--conditions 92] [--samples 200] [--rounds 4]

4 model RDMs and 15 data RDMs of ``--conditions`` conditions, ``--samples`` fixed draws (``indices``) of each
kind, with every sample's noise ceiling. Each case alternates 1 and 2 threads (threadpoolctl and
``torch.set_num_threads``), 4 consecutive calls each, the first not counted (on this VM the first call on two
threads after the second core idled takes about 20 ms more), ``--rounds`` rounds, medians. The results at 2
threads are checked equal to those at 1 (to 1e-12) first. To compare with an earlier commit, run the same
command with ``PYTHONPATH`` set to a worktree of it, and compare the evaluations the two runs save with
``--save PREFIX`` (``PREFIX_<case>.npy``).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from _machine import print_machine
from threadpoolctl import threadpool_limits


def cases(n_cond: int, n_samples: int) -> dict:
    """{name: a function returning (evaluations, noise ceiling)}."""
    from rnnprobe.analysis import bootstrap_conditions, bootstrap_conditions_and_subjects, bootstrap_subjects

    rng = np.random.default_rng(0)
    truth = rng.random(n_cond * (n_cond - 1) // 2)
    models = np.stack([truth + rng.normal(0, s, truth.size) for s in (0.5, 1, 2, 4)])
    data = truth + rng.normal(0, 1, (15, truth.size))
    conditions, subjects = rng.integers(0, n_cond, (n_samples, n_cond)), rng.integers(0, 15, (n_samples, 15))
    calls = {
        "conditions": lambda: bootstrap_conditions(models, data, comparison="spearman", indices=conditions,
                                                   progress=False),
        "subjects": lambda: bootstrap_subjects(models, data, comparison="spearman", indices=subjects, progress=False),
        "conditions and subjects": lambda: bootstrap_conditions_and_subjects(
            models, data, comparison="spearman", indices=(conditions, subjects), progress=False),
    }  # fmt: skip
    return {
        name: (lambda call=call: (lambda r: (r.evaluations, r.noise_ceiling))(call())) for name, call in calls.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conditions", type=int, default=92)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--save", default="", help="save each case's evaluations and ceilings to PREFIX_<case>.npy")
    args = parser.parse_args()
    print_machine()
    print(f"[4 models, 15 data RDMs of {args.conditions} conditions, {args.samples} samples, spearman, ceilings]")
    for name, call in cases(args.conditions, args.samples).items():
        times, results = {1: [], 2: []}, {}
        for _ in range(args.rounds):
            for threads in (1, 2):
                with threadpool_limits(limits=threads):
                    torch.set_num_threads(threads)
                    for call_index in range(4):
                        start = time.perf_counter()
                        results[threads] = call()
                        if call_index:
                            times[threads].append(time.perf_counter() - start)
        for one, two in zip(results[1], results[2], strict=True):
            np.testing.assert_allclose(two, one, rtol=1e-12, atol=1e-14, equal_nan=True, err_msg=name)
        if args.save:
            np.save(f"{args.save}_{name.replace(' ', '_')}.npy", np.c_[results[1][0], results[1][1].T])
        t1, t2 = statistics.median(times[1]), statistics.median(times[2])
        print(f"  {name:24s} 1 thread {t1 * 1e3:8.1f} ms   2 threads {t2 * 1e3:8.1f} ms   {t1 / t2:5.2f}x", flush=True)


if __name__ == "__main__":
    main()

"""The heavy analyses on 1 and on 2 cores: does a second core make them faster? (issue 20, goal 3)

Run:  python benchmarks/threads.py [--repeats 3] [--quick] [--only "fixed points"]

Threading is what this script measures, so it sets the thread counts itself: each case runs with every
library limited to 1 thread (threadpoolctl for BLAS/OpenMP, ``torch.set_num_threads``) and with 2,
alternating, median after a warm-up. Cases under 0.1 s run in blocks of consecutive calls (about 0.2 s,
the first call of each block not counted), alternating blocks, about 1 s of each thread count: on this VM a
single call of a few ms made after the second core idled pays that core's wake-up (the RDM movie
92 x 50 x 512 on 2 threads: 7.5 ms alternating single calls, 4.9 ms in a row), which a script that
analyses many layers does not. Longer cases alternate single calls, ``--repeats`` of each; those under 1 s are
timed in blocks as well and printed on a second line, since on this VM they too ran faster in a row on two
threads (the permutation test of 10,000: 73-77 ms alternating, 68-71 ms in a row; one thread alike). The results at
2 threads are checked equal to those at 1 (to 1e-9 relative) before any time is printed. Goal: at least
1.7x on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from _machine import Results, print_machine
from _rdms import categorical_rdms
from threadpoolctl import threadpool_limits


def cases(quick: bool) -> dict:
    """{name: a function returning an array of the analysis's numbers}."""
    from rnnprobe import Recording
    from rnnprobe.analysis import (
        bootstrap_conditions,
        bootstrap_subjects,
        compare_representations,
        compute_rdms,
        decode,
        dpca_significance,
        find_fixed_points,
        fit_dpca,
        fit_encoding,
        fit_pca,
        fit_tdr,
        fit_timescales,
        permutation_test,
    )
    from rnnprobe.models import shipped

    rng = np.random.default_rng(0)
    k = 4 if quick else 1
    big = Recording({"x": rng.normal(size=(2000 // k, 1, 4096 // k))})
    narrow = Recording({"x": rng.normal(size=(5000 // k, 1, 256 // k))})  # many stimuli, a narrow layer
    movie = Recording({"x": rng.normal(size=(92, 50, 512 // k))})
    big_movie = Recording({"x": rng.normal(size=(500 // k, 50, 2048 // k))})  # a convolutional layer's movie
    runs = {"image": np.tile(np.arange(92), 4), "run": np.repeat(np.arange(4), 92)}  # each image once in each run
    runs_movie = Recording({"x": rng.normal(size=(4 * 92, 50, 512 // k))}, metadata=runs)
    cross = {"distance": "crossnobis", "descriptor": "image", "cv_descriptor": "run"}
    layer = Recording({"h": rng.normal(size=(2000 // k, 20, 512)) @ np.diag(np.geomspace(1, 0.01, 512))})
    labels = rng.integers(0, 2, 600 // k)
    states = rng.normal(size=(600 // k, 30, 128)) + 0.3 * labels[:, None, None]
    decoding = Recording({"h": states}, metadata={"label": labels})
    big_labels = rng.integers(0, 2, 2000 // k)
    big_states = rng.normal(size=(2000 // k, 30, 512 // k)) + 0.3 * big_labels[:, None, None]
    big_decoding = Recording({"h": big_states}, metadata={"label": big_labels})
    wide_labels = rng.integers(0, 10, 500 // k)  # a convolutional layer (BLT's layer0): more units than trials
    wide_states = rng.normal(size=(500 // k, 4, 4096 // k)) + 0.2 * wide_labels[:, None, None] * rng.normal(
        size=4096 // k)  # fmt: skip
    wide_decoding = Recording({"h": np.maximum(wide_states, 0)}, metadata={"label": wide_labels})
    features, weights = rng.normal(size=(1000 // k, 512)), rng.normal(size=(512, 1000 // k))
    responses = features @ weights / 20 + rng.normal(size=(1000 // k, 1000 // k))
    models, data = rng.random((5, 92 * 91 // 2)), rng.random((10, 92 * 91 // 2))
    categorical = categorical_rdms(rng.integers(0, 4, (5, 92)))  # random partitions into four groups
    subjects = models[0] + rng.normal(0, 1, (15, models.shape[1]))
    dpca_labels = rng.integers(0, 10, 24000 // k)
    dpca_trials = Recording({"h": rng.normal(size=(24000 // k, 4, 256)) + 0.2 * dpca_labels[:, None, None]},
                            metadata={"label": dpca_labels})  # fmt: skip
    dpca_fit = fit_dpca(dpca_trials, parameters="label", n_components=3)
    stimulus, decision = np.repeat(np.arange(6), 40 // k), np.tile([0, 1], 120 // k)
    auto_trials = Recording({"h": rng.normal(size=(240 // k, 15, 400)) + 0.3 * stimulus[:, None, None]
                             * rng.normal(size=400) + 0.2 * decision[:, None, None]},
                            metadata={"stimulus": stimulus, "decision": decision})  # fmt: skip
    task = {
        name: rng.integers(0, levels, 2400 // k).astype(float)
        for name, levels in (("stimulus", 6), ("decision", 2), ("context", 2))
    }
    tdr_trials = Recording({"h": rng.normal(size=(2400 // k, 20, 256)) + task["stimulus"][:, None, None]
                            * rng.normal(size=256) * 0.3}, metadata=task)  # fmt: skip
    align_a = rng.normal(size=(1000 // k, 10, 256))  # two layers over time, compared at every pair of steps
    align_b = np.tanh(align_a @ rng.normal(size=(256, 256)) / 16) + rng.normal(size=align_a.shape)
    flipflop, flipflop64 = shipped.load("flipflop-gru"), shipped.load("flipflop-gru64")
    starts = rng.normal(scale=0.5, size=(512 // k, 16))
    starts64 = rng.normal(scale=0.5, size=(512 // k, 64))
    return {
        "RDM, correlation, 2000 x 4096": lambda: compute_rdms(big, "x", distance="correlation").dissimilarities,
        "RDM, euclidean, 5000 x 256": lambda: compute_rdms(narrow, "x", distance="euclidean").dissimilarities,
        "RDM movie, correlation, 92 x 50 x 512": lambda: compute_rdms(movie, "x").dissimilarities,
        "RDM movie, correlation, 500 x 50 x 2048": lambda: compute_rdms(big_movie, "x").dissimilarities,
        "RDM movie, crossnobis, 92 x 4 runs x 50 x 512": lambda: compute_rdms(runs_movie, "x", **cross).dissimilarities,
        "decoding with generalization, 600 x 30 x 128": lambda: decode(decoding, "h", "label", generalize=True,
                                                                      progress=False).scores,
        "decoding with generalization, 2000 x 30 x 512": lambda: decode(big_decoding, "h", "label",
                                                                       generalize=True, progress=False).scores,
        "decoding, wide layer (dual form), 500 x 4 x 4096, 10 classes": lambda: decode(wide_decoding, "h", "label",
                                                                                        progress=False).scores,
        "decoding, wide layer, 100 permutations, 500 x 4 x 4096, 10 classes": lambda: decode(
            wide_decoding, "h", "label", n_permutations=100 // k, progress=False).null,
        "decoding, 200 permutations, 600 x 30 x 128": lambda: decode(decoding, "h", "label", n_permutations=200,
                                                                    progress=False).p_values,
        "encoding, ridge, 1000 x 512 -> 1000": lambda: fit_encoding(features, responses, cv=5, ceiling=False,
                                                                    progress=False).scores["features"],
        "RSA bootstrap, 1000 samples, 92 conditions": lambda: bootstrap_conditions(models, data, n_bootstrap=1000,
                                                                                   progress=False).evaluations,
        "RSA bootstrap, spearman, 300 samples, 92 conditions": lambda: bootstrap_conditions(
            models, data, comparison="spearman", n_bootstrap=300 // k, progress=False).evaluations,
        "RSA bootstrap of subjects, spearman, 1000 samples, 15 subjects": lambda: bootstrap_subjects(
            models, subjects, comparison="spearman", n_bootstrap=1000 // k, progress=False).evaluations,
        "RSA permutation test, 10000, 92 conditions": lambda: permutation_test(models, data[:1],
                                                                               progress=False).null,
        "RSA permutation test, tau-a, categorical models, 10000, 92 conditions": lambda: permutation_test(
            categorical, data[:1], comparison="tau-a", progress=False).null,
        "RSA permutation test, tau-a, 512, 92 conditions": lambda: permutation_test(
            models, data[:1], comparison="tau-a", n_permutations=512 // k, progress=False).null,
        "dPCA significance, 20 shuffles x 5 splits, 24000 x 4 x 256": lambda: np.stack([
            flags for flags in dpca_significance(dpca_trials, dpca_fit, n_shuffles=20, n_splits=5)
            .significance.values()]).astype(float),
        "dPCA regularizer='auto', 10 splits x 45, 240 x 15 x 400": lambda: fit_dpca(
            auto_trials, parameters=["stimulus", "decision"], regularizer="auto", n_splits=10).cv_scores,
        "alignment over time, CCA, 1000 x 10 x 256 vs 1000 x 10 x 256": lambda: compare_representations(
            align_a, align_b, metric="cca").values,
        "alignment over time, shape held out (cv=3), 1000 x 10 x 256 vs 1000 x 10 x 256": lambda:
            compare_representations(align_a, align_b, metric="shape", cv=3).values,
        "PCA, 2000 x 20 x 512": lambda: fit_pca(layer, "h").trajectories,
        "timescales, 2000 x 20 x 512": lambda: fit_timescales(layer, "h").autocorrelation,
        "TDR, 3 variables, 2400 x 20 x 256": lambda: fit_tdr(tdr_trials, "h", variables=list(task)).coefficients,
        "TDR at one step, 3 variables, 2400 x 256": lambda: fit_tdr(tdr_trials, "h", variables=list(task),
                                                                    time=[10]).coefficients,
        "fixed points, flip-flop GRU, 512 starts": lambda: np.sort(find_fixed_points(
            flipflop, initial_states=starts, progress=False).states, axis=0),
        "fixed points, flip-flop GRU-64, 512 starts": lambda: np.sort(find_fixed_points(
            flipflop64, initial_states=starts64, progress=False).states, axis=0),
    }  # fmt: skip


def run(fn, threads: int, calls: int = 1) -> tuple[list[float], np.ndarray]:
    """(the time of each of ``calls`` consecutive calls, the last result) with every library on ``threads``."""
    with threadpool_limits(limits=threads):
        torch.set_num_threads(threads)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return times, np.asarray(out, dtype=float)


def thread_times(fn, repeats: int, *, in_a_row: bool | None = None) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Median seconds of ``fn`` on 1 and on 2 threads, and its results on each (the module's docstring: a
    warm-up, then alternating single calls, ``repeats`` of each, or for cases under 0.1 s, or ``in_a_row``,
    alternating blocks of consecutive calls whose first call is not counted).
    """
    (first,), one = run(fn, 1)  # warm-up
    _, two = run(fn, 2)
    times = {1: [], 2: []}
    in_a_row = first <= 0.1 if in_a_row is None else in_a_row
    calls = max(3, int(0.2 / first)) if in_a_row else 1  # short cases: blocks of consecutive calls
    rounds = repeats if calls == 1 else max(repeats, round(1.0 / (calls * first)))
    for _ in range(rounds):
        for threads in (1, 2):
            block = run(fn, threads, calls)[0]
            times[threads] += block[1:] if calls > 1 else block  # (a block's first call: the cores wake)
    return statistics.median(times[1]), statistics.median(times[2]), one, two


def arguments(description: str) -> argparse.Namespace:
    """--repeats, --quick and --only (the cases whose name contains it), as this script and threads_ceiling.py
    take them."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="", help="run the cases whose name contains this (results not saved)")
    return parser.parse_args()


def main() -> None:
    args = arguments(__doc__)
    print_machine()
    print("threads set per case: 1 (threadpoolctl + torch.set_num_threads), then 2; goal >= 1.7x")
    results = Results(__file__)
    for name, fn in cases(args.quick).items():
        if args.only not in name:
            continue
        t1, t2, one, two = thread_times(fn, args.repeats)
        np.testing.assert_allclose(two, one, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=name)
        print(f"  {name:52s} 1 thread {t1 * 1e3:8.1f} ms   2 threads {t2 * 1e3:8.1f} ms   {t1 / t2:5.2f}x", flush=True)
        results.add(name + " (2 threads vs 1)", "1 thread", t1, t2, goal=1.7)
        if 0.1 < t1 < 1.0:  # (also as an analysis of many layers calls it: in a row)
            t1, t2, *_ = thread_times(fn, args.repeats, in_a_row=True)
            print(f"  {'  the same, calls in a row':52s} 1 thread {t1 * 1e3:8.1f} ms   2 threads {t2 * 1e3:8.1f} ms   "
                  f"{t1 / t2:5.2f}x", flush=True)  # fmt: skip
            results.add(name + " (2 threads vs 1, calls in a row)", "1 thread", t1, t2, goal=1.7)
    if not args.quick and not args.only:
        results.save()


if __name__ == "__main__":
    main()

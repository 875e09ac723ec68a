"""Crossnobis RDMs against rsatoolbox, on 1 and 2 threads, with their peak memory (issue 20, goals 1 and 3).

Run:  python benchmarks/crossnobis.py [--repeats 3] [--quick] [--only TEXT]

Cases: the RDM movie of ``rsa_vs_rsatoolbox.py`` (92 conditions x 512 channels x 50 steps, 4 runs, each
condition once per run), a movie of folds of two sizes (run 1 twice: the weighted path), and single RDMs of
600, 1200 and 2000 conditions in 2 runs (from 1024 conditions the distances come by blocks of rows); the movie
and the 600 conditions also with a noise precision (the inverse of a covariance of correlated units).
rsatoolbox's ``calc_rdm_movie`` / ``calc_rdm`` runs where its pairs' differences (pairs x channels float64 per
fold pair) take at most 1 GiB, on one thread (threadpoolctl); rnnprobe on 1 and 2 threads as ``threads.py``
times them (alternating; cases under 0.1 s in blocks of consecutive calls); every result checked equal to
rsatoolbox's (1e-6 relative) and the 2-thread one to the 1-thread one (1e-12) before any time is printed. Peak memory:
tracemalloc's peak over one call on 1 thread (the states, made before, are not counted; the work arrays kept
from the calls before are, dropped first). Goals: the movie >= 10x rsatoolbox (goal 1), 2 threads >= 1.7x 1
thread (goal 3).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import torch
from _machine import Results, print_machine
from threadpoolctl import threadpool_limits
from threads import arguments, run, thread_times

RSATOOLBOX_BYTES = 2**30  # rsatoolbox's pairs x channels differences per pair of folds, at most


def cases(quick: bool) -> list[tuple[str, int, int, int, int, bool, bool]]:
    """(name, conditions, runs, steps, units, folds of two sizes, a noise precision)."""
    k = 4 if quick else 1
    return [
        (f"movie, {92} x 4 runs x {50 // k} x 512", 92, 4, 50 // k, 512, False, False),
        (f"movie, {92} x 4 runs (run 1 twice) x {50 // k} x 512", 92, 4, 50 // k, 512, True, False),
        (f"movie, {92} x 4 runs x {50 // k} x 512, noise precision", 92, 4, 50 // k, 512, False, True),
        (f"RDM, {600 // k} conditions x 2 runs x 512", 600 // k, 2, 1, 512, False, False),
        (f"RDM, {600 // k} conditions x 2 runs x 512, noise precision", 600 // k, 2, 1, 512, False, True),
        (f"RDM, {1200 // k} conditions x 2 runs x 2 steps x 256", 1200 // k, 2, 2, 256, False, False),
        (f"RDM, {2000 // k} conditions x 2 runs x 512", 2000 // k, 2, 1, 512, False, False),
    ]


def precision(rng, units: int) -> np.ndarray:
    """A noise precision: the inverse of a covariance with correlated units (positive definite)."""
    mixing = rng.normal(size=(units, units)) / np.sqrt(units)
    return np.linalg.inv(mixing @ mixing.T + np.eye(units))


def recording(rng, conditions: int, runs: int, steps: int, units: int, twice: bool):
    from rnnprobe import Recording

    image, run = np.tile(np.arange(conditions), runs), np.repeat(np.arange(runs), conditions)
    if twice:
        image, run = np.r_[image, image[run == 1]], np.r_[run, run[run == 1]]
    signal = rng.normal(size=(conditions, steps, units))
    states = signal[image] + rng.normal(size=(image.size, steps, units))
    return Recording({"x": states}, metadata={"image": image, "run": run})


def peak_bytes(fn) -> int:
    from rnnprobe.analysis.rsa import work

    work._SHELF.idle.clear()  # (the work arrays kept from the timed calls: counted as the call's own)
    with threadpool_limits(limits=1):
        torch.set_num_threads(1)
        tracemalloc.start()
        fn()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def rsatoolbox_rdms(rec, steps: int, noise: np.ndarray | None) -> tuple[float, np.ndarray] | None:
    import rsatoolbox

    n_cond, units = np.unique(rec.column("image")).size, rec.get("x").shape[2]
    if n_cond * (n_cond - 1) // 2 * units * 8 > RSATOOLBOX_BYTES:
        return None
    kw = {"method": "crossnobis", "descriptor": "image", "cv_descriptor": "run", "noise": noise}
    if steps > 1:
        data = rec.to_rsatoolbox("x")
        fn = lambda: rsatoolbox.rdm.calc_rdm_movie(data, **kw).get_vectors()  # noqa: E731
    else:
        data = rec.to_rsatoolbox("x", time=0)
        fn = lambda: rsatoolbox.rdm.calc_rdm(data, **kw).get_vectors()  # noqa: E731
    times, out = run(fn, 1)
    return times[0], out


def main() -> None:
    from rnnprobe.analysis import compute_rdms

    args = arguments(__doc__)  # --repeats, --quick, --only (as threads.py)
    print_machine()
    print("rnnprobe on 1 and 2 threads (threadpoolctl + torch.set_num_threads); rsatoolbox on 1; medians")
    results, rng = Results(__file__), np.random.default_rng(0)
    for name, conditions, runs, steps, units, twice, weighted in cases(args.quick):
        if args.only not in name:
            continue
        rec, noise = recording(rng, conditions, runs, steps, units, twice), precision(rng, units) if weighted else None
        fn = lambda rec=rec, noise=noise: compute_rdms(rec, distance="crossnobis", descriptor="image",  # noqa: E731
                                                       cv_descriptor="run", noise=noise).dissimilarities  # fmt: skip
        t1, t2, one, two = thread_times(fn, args.repeats)
        np.testing.assert_allclose(two, one, rtol=1e-12, atol=1e-14, err_msg=name)
        theirs = rsatoolbox_rdms(rec, steps, noise)
        if theirs is not None:
            np.testing.assert_allclose(one, theirs[1], rtol=1e-6, atol=1e-9, err_msg=name)
        extra = peak_bytes(fn) / 2**20
        line = f"  {name:50s} 1 thread {t1 * 1e3:8.1f} ms  2 threads {t2 * 1e3:8.1f} ms ({t1 / t2:4.2f}x)"
        line += f"  peak {extra:7.1f} MiB"
        if theirs is not None:
            line += f"  rsatoolbox {theirs[0]:7.3f} s ({theirs[0] / t1:5.1f}x)"
            goal = 10 if steps > 1 else None  # (goal 1 is the movie's)
            results.add(f"crossnobis {name}", "rsatoolbox", theirs[0], t1, goal=goal)
        print(line, flush=True)
        results.add(f"crossnobis {name} (2 threads vs 1)", "1 thread", t1, t2, goal=1.7)
    if not args.quick and not args.only:
        results.save()


if __name__ == "__main__":
    main()

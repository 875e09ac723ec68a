"""rnnprobe's DSA vs dsa-metric (Ostrow et al. 2023), side by side in one run; results checked first.

Run:  python benchmarks/dsa_vs_dsa_metric.py [--threads 1]      (pip install dsa-metric)

Case (issue 18): 3 systems of 20 trials x 200 steps x 32 units (a line attractor, a point attractor, a
limit cycle; rnnprobe.testing.make_dynamics), 10 delays, rank 30, all pairs.
Checks before timing:
  - the spectral variant (score_method="wasserstein") equals dsa-metric's on the same data, both in float64;
  - on the same operators, both angular distances are printed: both minimise the same non-convex objective
    (dsa-metric by 1500 Adam steps over rotations only, from a random start, in float32; rnnprobe from
    deterministic starts over rotations and reflections), so each can stop at a local optimum;
  - a system against itself with its units rotated by a reflection: rnnprobe 0, dsa-metric printed.
"""

from __future__ import annotations

import argparse
import os
import time


def _pin(threads: int) -> None:
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[key] = str(threads)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    _pin(args.threads)
    import warnings

    import numpy as np
    import torch
    from _machine import print_machine

    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    from DSA import DSA, SimilarityTransformDist

    from rnnprobe.analysis import compare_dynamics, fit_dmd, pairwise_dynamics
    from rnnprobe.testing import make_dynamics

    print_machine()
    settings = {"n_delays": 10, "rank": 30}
    kinds = ("line", "point", "cycle")
    data = [make_dynamics(kind, seed=k) for k, kind in enumerate(kinds)]
    named = dict(zip(kinds, data, strict=True))

    torch.set_default_dtype(torch.float64)  # dsa-metric's embedding follows torch's default dtype
    ours = pairwise_dynamics(named, metric="wasserstein", **settings).distances
    theirs = np.asarray(DSA(data, score_method="wasserstein", **settings).fit_score()).reshape(3, 3)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-12)  # eigenvalues of non-normal operators
    print(f"spectral variant equal to dsa-metric (float64): max difference {np.abs(ours - theirs).max():.1e}")

    torch.set_default_dtype(torch.float32)  # dsa-metric's rotation search runs in float32
    operators = [fit_dmd(x, **settings).operator for x in data]
    for i, j in ((0, 1), (0, 2), (1, 2)):
        theirs = SimilarityTransformDist(iters=1500, lr=5e-3, score_method="angular").fit_score(
            torch.from_numpy(operators[i]).float(), torch.from_numpy(operators[j]).float()
        )
        mine = compare_dynamics(fit_dmd(data[i], **settings), fit_dmd(data[j], **settings)).distance
        print(f"  angular {kinds[i]:5s} vs {kinds[j]:5s}: dsa-metric {float(theirs):.6f}   rnnprobe {mine:.6f}")
    rng = np.random.default_rng(1)
    q = np.linalg.qr(rng.normal(size=(32, 32)))[0]
    q[:, 0] *= -np.sign(np.linalg.det(q))  # a reflection
    theirs = np.asarray(DSA(data[0], data[0] @ q, score_method="angular", **settings).fit_score()).item()
    mine = compare_dynamics(data[0], data[0] @ q, **settings).distance
    assert mine < 1e-6, mine
    print(f"  a line attractor vs itself with reflected units: dsa-metric {theirs:.6f}   rnnprobe {mine:.1e}")

    print(f"timing: the 3 pairs from the data, angular, {args.threads} thread(s)")
    t0 = time.perf_counter()
    DSA(data, score_method="angular", **settings).fit_score()
    theirs = time.perf_counter() - t0
    t0 = time.perf_counter()
    pairwise_dynamics(named, metric="angular", **settings)
    mine = time.perf_counter() - t0
    print(f"  dsa-metric {theirs:.2f} s   rnnprobe {mine:.2f} s   {theirs / mine:.1f}x")
    from _machine import Results

    results = Results(__file__)
    results.add(f"3 pairs, angular, from the data, {args.threads} thread(s)", "dsa-metric", theirs, mine, goal=10)
    results.save()


if __name__ == "__main__":
    main()

"""fit_pca against scikit-learn's PCA, on 1 and 2 threads (issue 20: every core, every CPU).

Run:  python benchmarks/pca.py [--repeats 3] [--quick] [--only TEXT]

Layers (stimulus x step x unit) pooled over stimuli and steps, 10 axes kept: tall ones (more samples than
units, where fit_pca takes the eigendecomposition of the states' Gram matrix across units, as scikit-learn's
``covariance_eigh`` solver), a tall one whose kept axes span variances of 1e-12 (where it takes the SVD), and a
wide one (the SVD). scikit-learn's ``PCA(svd_solver="full")`` (LAPACK's SVD: the exact reference) and its
default (``"auto"``), ``fit_transform`` (the axes and every state projected), on one thread; rnnprobe's
``fit_pca`` (the axes, every state projected, and the participation ratio of every step, which scikit-learn
does not compute) on 1 and 2 threads as ``threads.py`` times them. Before any time
is printed, rnnprobe's axes, variances and trajectories are checked equal to the full solver's (axes to
1e-6, variances to 1e-6 relative) and its 2-thread result to its 1-thread one.
"""

from __future__ import annotations

import numpy as np
from _machine import Results, median_time, print_machine
from sklearn.decomposition import PCA
from threadpoolctl import threadpool_limits
from threads import arguments, thread_times


def cases(quick: bool) -> list[tuple[str, tuple[int, int, int], float]]:
    """(name, (stimuli, steps, units), the smallest spread against the largest)."""
    k = 4 if quick else 1
    return [
        (f"{2000 // k} x 20 x 512", (2000 // k, 20, 512), 0.01),
        (f"{1000 // k} x 20 x 1024", (1000 // k, 20, 1024), 0.01),
        (f"{108} x 40 x 200 (jPCA's conditions)", (108, 40, 200), 0.01),
        (f"{2000 // k} x 20 x 12, spread 1 to 1e-7", (2000 // k, 20, 12), 1e-7),  # 10th variance 4e-12 of 1st
        (f"{500 // k} x 1 x 4096 (wide)", (500 // k, 1, 4096), 0.01),
    ]


def layer(rng, shape: tuple[int, int, int], spread: float) -> np.ndarray:
    units = shape[2]
    mixing = np.linalg.qr(rng.normal(size=(units, units)))[0] * np.geomspace(1, spread, units)
    return rng.normal(size=shape) @ mixing + 3.0


def main() -> None:
    from rnnprobe import Recording
    from rnnprobe.analysis import fit_pca

    args = arguments(__doc__)  # --repeats, --quick, --only (as threads.py)
    print_machine()
    print("scikit-learn on 1 thread; rnnprobe on 1 and 2 threads (threadpoolctl + torch.set_num_threads); medians")
    results, rng = Results(__file__), np.random.default_rng(0)
    for name, shape, spread in cases(args.quick):
        if args.only not in name:
            continue
        states = layer(rng, shape, spread)
        rec, flat = Recording({"h": states}), states.reshape(-1, shape[2])
        t1, t2, one, two = thread_times(lambda rec=rec: fit_pca(rec, "h", n_components=10).trajectories, args.repeats)
        np.testing.assert_allclose(two, one, rtol=1e-9, atol=1e-9, err_msg=name)
        with threadpool_limits(limits=1):
            full, _ = median_time(lambda x=flat: PCA(n_components=10, svd_solver="full").fit_transform(x), args.repeats)
            auto, _ = median_time(lambda x=flat: PCA(n_components=10).fit_transform(x), args.repeats)
            ref = PCA(n_components=10, svd_solver="full").fit(flat)
            res = fit_pca(rec, "h", n_components=10)
        np.testing.assert_allclose(res.components, ref.components_, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(res.explained_variance, ref.explained_variance_, rtol=1e-6, err_msg=name)
        np.testing.assert_allclose(res.trajectories.reshape(len(flat), -1), ref.transform(flat), atol=1e-6)
        print(f"  {name:40s} sklearn full {full * 1e3:8.1f} ms, auto {auto * 1e3:8.1f} ms; rnnprobe "
              f"{t1 * 1e3:8.1f} ms ({full / t1:5.1f}x full, {auto / t1:4.1f}x auto), 2 threads {t2 * 1e3:8.1f} ms "
              f"({t1 / t2:4.2f}x)", flush=True)  # fmt: skip
        results.add(f"fit_pca {name} vs PCA(svd_solver='full')", "scikit-learn", full, t1)
        results.add(f"fit_pca {name} vs PCA() (auto)", "scikit-learn", auto, t1)
        results.add(f"fit_pca {name} (2 threads vs 1)", "1 thread", t1, t2, goal=1.7)
    if not args.quick and not args.only:
        results.save()


if __name__ == "__main__":
    main()

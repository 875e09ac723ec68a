"""Encoding models: rnnprobe's fit_encoding vs scikit-learn, himalaya and a Brain-Score-style PLS, in one run.

Run:  python benchmarks/encoding.py [--threads 1] [--quick]

Cases (from issue 17; results checked first, then timed):
  ridge, a penalty per target from 20 alphas: 2000 training stimuli x 512 features -> 2000 targets,
      scored on 500 held-out stimuli. scikit-learn's RidgeCV(alpha_per_target=True) (efficient
      leave-one-out, the same criterion as rnnprobe: predictions checked equal to 1e-6) and himalaya's
      RidgeCV(cv=5) on its numpy CPU backend (5-fold selection: a different criterion, so its scores
      are compared, not required equal).
  PLS(25), 10 splits (90% train), 2000 stimuli x 512 features -> 200 targets: scikit-learn's
      PLSRegression(25, scale=False) per split as Brain-Score runs it, vs rnnprobe's exact PLS (scores
      equal within NIPALS's tolerance, printed).
  PLS(25) of a wide layer, 5 folds, 1000 stimuli x 8192 features -> 100 targets: rnnprobe fits it from the
      Gram matrix across stimuli (PLS's dual form, twenty-fifth session), against the same model from the
      units (rnnprobe's fit_pls per fold, the form before; held-out r checked equal to 1e-9 first) and
      scikit-learn's PLSRegression(25, scale=False) per fold, whose NIPALS iterations estimator="pls_nipals"
      runs (r checked equal to 1e-8).
  Tall features (twenty-sixth session), 5 folds, 20,000 stimuli x 1024 features -> 100 targets: ridge (25
      alphas by leave-one-out, or by 5 inner folds) and PLS(25), which rnnprobe now fits from each fold's sums
      (the features' Gram matrix, a training set's the other folds' sums: ``encoding.tall``), against the same
      models fitted per fold from the training features (the form before: ``fit._ridge_predictions``,
      ``fit_pls``, ``fit_pls_nipals``; predictions checked equal to 1e-8 relative first) and scikit-learn's
      RidgeCV(alpha_per_target=True) and PLSRegression(25, scale=False) per fold; NIPALS on the first 5000
      stimuli (its iterations on the units take 40 s a fold of 16,000 stimuli).
``--threads`` pins BLAS threads for every tool (default 1).
"""

from __future__ import annotations

import argparse
import os
import time


def _pin(threads: int) -> None:
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[key] = str(threads)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


ROWS: list[tuple] = []  # (case, anchor, anchor seconds, rnnprobe seconds), saved by main for full-size runs


def row(label: str, theirs: float, ours: float, extra: str) -> None:
    print(f"  {label:38s} {theirs:7.2f} s   rnnprobe {ours:6.2f} s   {theirs / ours:5.1f}x   {extra}")
    anchor, _, case = label.partition(" ")  # "scikit-learn RidgeCV (...)": anchor, then the case
    ROWS.append((case, anchor, theirs, ours))


def pearson(a, b):
    import numpy as np

    a, b = a - a.mean(0), b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def ridge_case(rng, quick: bool) -> None:
    import numpy as np
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV as HimalayaRidgeCV
    from sklearn.linear_model import RidgeCV

    from rnnprobe.analysis import fit_encoding

    n_train, n_test, p, targets = (2000, 500, 512, 2000) if not quick else (500, 200, 128, 300)
    alphas = np.logspace(-1, 6, 20)
    x = rng.normal(size=(n_train + n_test, p)) * np.linspace(0.2, 2, p)
    y = x @ rng.normal(size=(p, targets)) * rng.uniform(0, 0.1, targets) + rng.normal(size=(n_train + n_test, targets))
    train, test = np.arange(n_train), np.arange(n_train, n_train + n_test)
    small = (slice(0, 60), slice(0, 5))  # warm-up: imports and first calls are not timed
    fit_encoding(x[small[0], :5], y[small], alphas=alphas, cv=3, ceiling=False)
    RidgeCV(alphas=alphas, alpha_per_target=True).fit(x[small[0], :5], y[small])
    set_backend("numpy")
    HimalayaRidgeCV(alphas=alphas, cv=5).fit(x[small[0], :5], y[small])
    print(f"ridge: {n_train} training stimuli x {p} features -> {targets} targets, {alphas.size} alphas, "
          f"{n_test} held out")  # fmt: skip
    ours_s, ours = timed(lambda: fit_encoding(x, y, alphas=alphas, cv=[(train, test)], ceiling=False))
    sk_s, sk = timed(lambda: RidgeCV(alphas=alphas, alpha_per_target=True).fit(x[train], y[train]).predict(x[test]))
    r_sk = pearson(sk, y[test])
    r_ours = ours.scores["features"][0, 0]
    assert np.abs(r_ours - r_sk).max() < 1e-6, np.abs(r_ours - r_sk).max()
    model = HimalayaRidgeCV(alphas=alphas, cv=5)
    him_s, him = timed(lambda: model.fit(x[train], y[train]).predict(x[test]))
    r_him = pearson(np.asarray(him), y[test])
    row("scikit-learn RidgeCV (leave-one-out)", sk_s, ours_s, f"max |r difference| {np.abs(r_ours - r_sk).max():.1e}")
    row("himalaya RidgeCV (5-fold, numpy)", him_s, ours_s,
        f"median r {np.median(r_him):.4f} vs {np.median(r_ours):.4f} (median |difference| "
        f"{np.median(np.abs(r_him - r_ours)):.1e})")  # fmt: skip


def pls_case(rng, quick: bool) -> None:
    import numpy as np
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.model_selection import ShuffleSplit

    from rnnprobe.analysis import fit_encoding

    n, p, targets, splits = (2000, 512, 200, 10) if not quick else (500, 128, 50, 3)
    x = rng.normal(size=(n, p)) @ rng.normal(size=(p, p)) / np.sqrt(p)
    y = x @ rng.normal(size=(p, targets)) * 0.05 + rng.normal(size=(n, targets))
    folds = list(ShuffleSplit(splits, test_size=0.1, random_state=0).split(x))
    print(f"PLS(25): {n} stimuli x {p} features -> {targets} targets, {splits} splits (90% train)")

    def brain_score():
        return np.mean([pearson(PLSRegression(25, scale=False).fit(x[tr], y[tr]).predict(x[te]), y[te])
                        for tr, te in folds], axis=0)  # fmt: skip

    sk_s, r_sk = timed(brain_score)
    ours_s, ours = timed(lambda: fit_encoding(x, y, estimator="pls", n_components=25, cv=folds, ceiling=False))
    r_ours = ours.scores["features"][0, 0]
    row(
        "scikit-learn PLSRegression (NIPALS)",
        sk_s,
        ours_s,
        f"max |r difference| {np.abs(r_ours - r_sk).max():.1e} (NIPALS stops at tol 1e-6)",
    )


def wide_pls_case(rng, quick: bool) -> None:
    import numpy as np
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.model_selection import KFold

    from rnnprobe.analysis import fit_encoding
    from rnnprobe.analysis.encoding.pls import fit_pls, predict_pls

    n, p, targets = (1000, 8192, 100) if not quick else (300, 2048, 30)
    x = rng.normal(size=(n, p))
    y = x[:, :20] @ rng.normal(size=(20, targets)) + rng.normal(size=(n, targets)) * 3
    folds = list(KFold(5, shuffle=True, random_state=0).split(x))
    print(f"PLS(25), wide: {n} stimuli x {p} features -> {targets} targets, 5 folds")

    def fold_r(predict) -> np.ndarray:
        return np.mean([pearson(predict(tr, te), y[te]) for tr, te in folds], axis=0)

    def ours(estimator: str) -> np.ndarray:
        result = fit_encoding(x, y, estimator=estimator, n_components=25, cv=folds, ceiling=False)
        return result.scores["features"][0, 0]

    units_s, r_units = timed(lambda: fold_r(lambda tr, te: predict_pls(fit_pls(x[tr], y[tr], 25), x[te])))
    exact_s, r_exact = timed(lambda: ours("pls"))
    nipals_s, r_nipals = timed(lambda: ours("pls_nipals"))
    sk_s, r_sk = timed(lambda: fold_r(lambda tr, te: PLSRegression(25, scale=False).fit(x[tr], y[tr]).predict(x[te])))
    exact_gap, nipals_gap = np.abs(r_exact - r_units).max(), np.abs(r_nipals - r_sk).max()
    assert exact_gap < 1e-9 and nipals_gap < 1e-8, (exact_gap, nipals_gap)
    row("rnnprobe-units-form PLS(25) wide, exact", units_s, exact_s, f"r equal ({exact_gap:.1e})")
    row("scikit-learn PLSRegression (NIPALS) wide, pls_nipals", sk_s, nipals_s, f"r equal ({nipals_gap:.1e})")
    row("scikit-learn PLSRegression (NIPALS) wide, exact", sk_s, exact_s,
        f"max |r difference| {np.abs(r_exact - r_sk).max():.1e} (NIPALS stops at tol 1e-6)")  # fmt: skip


def tall_case(rng, quick: bool) -> None:
    import numpy as np
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold

    from rnnprobe.analysis.encoding.fit import Estimator, _ridge_predictions
    from rnnprobe.analysis.encoding.pls import fit_pls, fit_pls_nipals, predict_pls
    from rnnprobe.analysis.encoding.tall import tall_predictions

    n, p, targets = (20_000, 1024, 100) if not quick else (4000, 256, 30)
    alphas = np.logspace(-3, 9, 25)
    x = rng.normal(size=(n, p)) * np.linspace(0.2, 2, p) + 1
    # 40 directions of decreasing weight: singular values of X'Y apart, so that NIPALS converges in tens of
    # iterations (close ones take it to its 500 on every component: an hour here)
    y = x[:, :40] @ (rng.normal(size=(40, targets)) * np.geomspace(1, 0.01, 40)[:, None])
    y += rng.normal(size=(n, targets)) * 2
    folds = list(KFold(5, shuffle=True, random_state=0).split(x))
    print(f"tall: {n} stimuli x {p} features -> {targets} targets, 5 folds")

    def check(ours: list, theirs: list) -> float:
        gap = max(np.abs(a - b).max() / np.abs(b).max() for a, b in zip(ours, theirs, strict=True))
        assert gap < 1e-8, gap
        return gap

    def per_fold(make) -> list:
        return [make(tr, te) for tr, te in folds]

    ridge, inner = Estimator("ridge", alphas=alphas), {"alphas": alphas, "inner_cv": 5, "seed": 0}
    for name, estimator, before in [
        ("ridge", ridge, lambda: _ridge_predictions(x, y, folds, Estimator("ridge", alphas=alphas))),
        ("ridge inner_cv=5", Estimator("ridge", **inner), lambda: _ridge_predictions(x, y, folds,
                                                                                     Estimator("ridge", **inner))),
        ("pls", Estimator("pls", n_components=25),
         lambda: per_fold(lambda tr, te: predict_pls(fit_pls(x[tr], y[tr], 25), x[te]))),
    ]:  # fmt: skip
        before_s, theirs = timed(before)
        ours_s, ours = timed(lambda estimator=estimator: tall_predictions(x, y, folds, estimator))
        row(f"rnnprobe-per-fold {name}, tall", before_s, ours_s, f"predictions equal ({check(ours, theirs):.1e})")
    sk_s, sk = timed(lambda: per_fold(lambda tr, te: RidgeCV(alphas=alphas, alpha_per_target=True)
                                      .fit(x[tr], y[tr]).predict(x[te])))  # fmt: skip
    ours_s, ours = timed(lambda: tall_predictions(x, y, folds, ridge))
    row("scikit-learn RidgeCV (leave-one-out) tall", sk_s, ours_s, f"predictions equal ({check(ours, sk):.1e})")
    x, y = x[: n // 4], y[: n // 4]  # NIPALS on the units takes 40 s a fold of 16,000 x 1024: a quarter of them
    folds = list(KFold(5, shuffle=True, random_state=0).split(x))
    print(f"tall, NIPALS: {len(x)} stimuli x {p} features -> {targets} targets, 5 folds")
    nipals = Estimator("pls_nipals", n_components=25)
    before_s, theirs = timed(lambda: per_fold(lambda tr, te: predict_pls(fit_pls_nipals(x[tr], y[tr], 25), x[te])))
    ours_s, ours = timed(lambda: tall_predictions(x, y, folds, nipals))
    row("rnnprobe-per-fold pls_nipals, tall", before_s, ours_s, f"predictions equal ({check(ours, theirs):.1e})")
    sk_s, sk = timed(lambda: per_fold(lambda tr, te: PLSRegression(25, scale=False).fit(x[tr], y[tr]).predict(x[te])))
    row("scikit-learn PLSRegression (NIPALS) tall, pls_nipals", sk_s, ours_s,
        f"predictions equal ({check(ours, sk):.1e})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    _pin(args.threads)
    import numpy as np
    from _machine import print_machine

    print_machine()
    rng = np.random.default_rng(0)
    ridge_case(rng, args.quick)
    pls_case(rng, args.quick)
    wide_pls_case(rng, args.quick)
    tall_case(rng, args.quick)
    if not args.quick:
        from _machine import Results

        results = Results(__file__.replace(".py", f"_{args.threads}threads.py"))
        for case, anchor, theirs, ours in ROWS:
            results.add(f"{case}, {args.threads} thread(s)", anchor, theirs, ours, goal=1)
        results.save()


if __name__ == "__main__":
    main()

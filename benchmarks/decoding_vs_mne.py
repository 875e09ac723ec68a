"""rnnprobe's decoding vs MNE-Python's GeneralizingEstimator, side by side in one run (1 thread).

Run:  OMP_NUM_THREADS=1 python benchmarks/decoding_vs_mne.py [--repeats 3] [--quick] [--large]

Cases (from issue 5): 600 trials x 128 features x 30 time points, 2 classes, 5-fold stratified CV,
temporal generalization (train time x test time):
  MNE GeneralizingEstimator(make_pipeline(StandardScaler(), RidgeClassifier())) with
      cross_val_multiscore, against rnnprobe's decode(..., generalize=True) on the same folds
      (scores checked equal first);
  MNE GeneralizingEstimator(make_pipeline(StandardScaler(), LogisticRegression())) against
      decode(..., estimator=<the same pipeline>, generalize=True), rnnprobe's batched Newton
      solver (scores within 0.01 of sklearn's: the largest difference is printed).
--large adds 5000 x 1024 x 50 (ridge), where MNE takes minutes (run once, no repeats).
--wide adds 300 x 4096 x 4 (ridge and logistic), with 2 and with 10 classes: a convolutional layer (BLT
      layer0: 16 maps of 16 x 16), more units than training trials, where rnnprobe (like sklearn) solves
      ridge in its dual form and logistic regression in the training samples' principal coordinates (binary
      problems by Newton's method in the samples' space before the twenty-fifth session; a device's solver);
      and the binary case over time with 20 permutations, rnnprobe's principal coordinates against its
      samples' space Newton (the solver it used before), scores and null within 0.01.
Times are CPU seconds of this process (time.process_time) and wall seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from _machine import print_machine

ISSUE_5_CASE = (600, 128, 30, 2)  # trials, features, time points, classes: ridge's generalization >= 10x MNE's


def timed(fn, repeats: int) -> tuple[float, float, object]:
    cpu, wall, out = [], [], None
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(cpu), statistics.median(wall), out


def case(n: int, p: int, steps: int, repeats: int, *, logistic: bool, classes: int = 2, results=None) -> None:
    import mne
    from mne.decoding import GeneralizingEstimator, cross_val_multiscore
    from sklearn.linear_model import LogisticRegression, RidgeClassifier
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from rnnprobe import Recording
    from rnnprobe.analysis.decoding import decode

    mne.set_log_level("ERROR")
    rng = np.random.default_rng(0)
    label = np.repeat(np.arange(classes), n // classes)
    x = rng.normal(size=(n, steps, p))
    # the class appears a third of the way in (several classes: each raises its own of 8 units)
    own = label[:, None, None] if classes == 2 else label[:, None, None] == np.arange(8) % classes
    x[:, steps // 3 :, :8] += 0.3 * (2 * own - 1)
    rec = Recording({"h": x}, metadata={"label": label})
    epochs = np.ascontiguousarray(x.transpose(0, 2, 1))  # MNE's (trials, features, times)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    print(f"\n[{n} trials x {p} features x {steps} time points, {classes} classes, 5-fold, generalization matrix]")
    name = f"{n} x {p} x {steps}" + (f", {classes} classes" if classes > 2 else "")

    pipe = make_pipeline(StandardScaler(), RidgeClassifier())

    def theirs():
        gen = GeneralizingEstimator(pipe, scoring="accuracy", n_jobs=None)
        return cross_val_multiscore(gen, epochs, label, cv=cv).mean(axis=0)

    cpu_m, wall_m, ref = timed(theirs, repeats)
    cpu_r, wall_r, res = timed(lambda: decode(rec, "h", "label", estimator=pipe, cv=cv, generalize=True), repeats)
    np.testing.assert_allclose(res.scores, ref, atol=1e-12)
    print(
        f"  ridge    MNE {cpu_m:8.2f} s CPU ({wall_m:7.2f} s wall)   rnnprobe {cpu_r:7.3f} s CPU "
        f"({wall_r:6.3f} s wall)   {cpu_m / cpu_r:6.1f}x CPU, {wall_m / wall_r:6.1f}x wall   scores equal"
    )
    if results is not None:  # CPU seconds: the machine is shared, CPU time is what each side used
        goal = 10 if (n, p, steps, classes) == ISSUE_5_CASE else 1  # (the other sizes: not slower)
        results.add(f"ridge, {name}, generalization", "MNE", cpu_m, cpu_r, goal=goal)
    if logistic:
        log_pipe = make_pipeline(StandardScaler(), LogisticRegression())

        def theirs_log():
            gen = GeneralizingEstimator(log_pipe, scoring="accuracy", n_jobs=None)
            return cross_val_multiscore(gen, epochs, label, cv=cv).mean(axis=0)

        cpu_l, wall_l, ref_l = timed(theirs_log, repeats)
        cpu_o, wall_o, res_l = timed(
            lambda: decode(rec, "h", "label", estimator=log_pipe, cv=cv, generalize=True), repeats
        )
        gap = np.abs(res_l.scores - ref_l).max()
        assert gap <= 0.01, gap
        print(
            f"  logistic MNE {cpu_l:8.2f} s CPU ({wall_l:7.2f} s wall)   rnnprobe {cpu_o:7.3f} s CPU "
            f"({wall_o:6.3f} s wall)   {cpu_l / cpu_o:6.1f}x CPU, {wall_l / wall_o:6.1f}x wall   largest score "
            f"difference {gap:.4f}"
        )
        if results is not None:
            results.add(f"logistic, {name}, generalization", "MNE", cpu_l, cpu_o, goal=1)


def permutations_case(repeats: int, results=None) -> None:
    """Binary logistic regression of a wide layer with 20 permutations: rnnprobe's CPU solver (the training
    samples' principal coordinates) against its samples' space Newton (a device's solver, run on the CPU).
    """
    from rnnprobe import Recording
    from rnnprobe.analysis import _logistic
    from rnnprobe.analysis.decoding import decode

    n, p, steps = 300, 4096, 4
    rng = np.random.default_rng(0)
    label = np.repeat(np.arange(2), n // 2)
    x = rng.normal(size=(n, steps, p))
    x[:, steps // 3 :, :8] += 0.3 * (2 * label[:, None, None] - 1)
    rec = Recording({"h": x}, metadata={"label": label})
    print(f"\n[{n} trials x {p} features x {steps} time points, 2 classes, 5-fold, over time, 20 permutations]")

    def ours():
        return decode(rec, "h", "label", estimator="logistic", n_permutations=20, progress=False)

    coordinates_on = _logistic._coordinates_on
    _logistic._coordinates_on = lambda device: False
    try:
        cpu_n, _, newton = timed(ours, repeats)
    finally:
        _logistic._coordinates_on = coordinates_on
    cpu_c, _, now = timed(ours, repeats)
    gap = max(np.abs(now.fold_scores - newton.fold_scores).max(), np.abs(now.null - newton.null).max())
    assert gap <= 0.01, gap
    print(f"  samples' space Newton {cpu_n:6.2f} s CPU   principal coordinates {cpu_c:6.3f} s CPU   "
          f"{cpu_n / cpu_c:5.1f}x   largest score difference {gap:.4f}")  # fmt: skip
    if results is not None:
        results.add(f"logistic, {n} x {p} x {steps}, 20 permutations", "samples' space Newton", cpu_n, cpu_c)


def relu_layer_case(repeats: int, results=None, *, n_permutations: int = 100, anchored: int = 20) -> None:
    """A wide layer after a ReLU (BLT's layer0: 4096 units), 10 classes, over time: logistic regression against
    MNE's SlidingEstimator; ridge with permutations by the kernel matrices' route against the SlidingEstimator
    fitted to each of ``anchored`` permutations (the same folds and permutations: scores checked equal) and
    against rnnprobe's weights route (the route before the forty-ninth session) with ``n_permutations``.
    """
    import mne
    from mne.decoding import SlidingEstimator, cross_val_multiscore
    from sklearn.linear_model import LogisticRegression, RidgeClassifier
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from rnnprobe import Recording
    from rnnprobe.analysis import decoding
    from rnnprobe.analysis.decoding import decode

    mne.set_log_level("ERROR")
    n, p, steps, classes = 500, 4096, 4, 10
    rng = np.random.default_rng(0)
    label = rng.integers(0, classes, n)
    x = np.maximum(rng.normal(size=(n, steps, p)) + 0.2 * label[:, None, None] * rng.normal(size=p), 0)
    rec = Recording({"h": x}, metadata={"label": label})
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(x[:, 0], label))
    print(f"\n[{n} trials x {p} features x {steps} time points, {classes} classes, 5-fold, over time, permutations]")

    epochs = np.ascontiguousarray(x.transpose(0, 2, 1))
    log_pipe = make_pipeline(StandardScaler(), LogisticRegression())
    cpu_l, _, ref_l = timed(lambda: cross_val_multiscore(SlidingEstimator(log_pipe, scoring="accuracy"), epochs,
                                                         label, cv=folds), 1)  # fmt: skip
    cpu_o, _, res_l = timed(lambda: decode(rec, "h", "label", estimator=log_pipe, cv=folds, progress=False), repeats)
    gap = np.abs(res_l.fold_scores - ref_l).max()
    print(f"  logistic: MNE {cpu_l:7.2f} s CPU   rnnprobe {cpu_o:6.3f} s CPU   {cpu_l / cpu_o:6.1f}x   largest score "
          f"difference {gap:.3f} (lbfgs's default stops at 1e-4; at its optimum the scores agree)")  # fmt: skip

    def ours(k):
        return decode(rec, "h", "label", cv=folds, n_permutations=k, seed=0, progress=False)

    def theirs():  # the true labels, then each permutation decode draws (its generator, its seed)
        draws = np.random.default_rng(0)
        orders = [np.arange(n)] + [draws.permutation(n) for _ in range(anchored)]
        sliding = SlidingEstimator(make_pipeline(StandardScaler(), RidgeClassifier()), scoring="accuracy")
        return [cross_val_multiscore(sliding, epochs, label[order], cv=folds) for order in orders]

    cpu_m, _, ref = timed(theirs, 1)
    cpu_a, _, res = timed(lambda: ours(anchored), repeats)
    np.testing.assert_allclose(res.fold_scores, ref[0], atol=1e-12)
    np.testing.assert_allclose(res.null, np.mean(ref[1:], axis=1), atol=1e-12)
    print(f"  {anchored} permutations: MNE {cpu_m:7.2f} s CPU   rnnprobe {cpu_a:6.3f} s CPU   {cpu_m / cpu_a:6.1f}x   "
          f"scores and null equal")  # fmt: skip
    cpu_k, _, kernel = timed(lambda: ours(n_permutations), repeats)
    pays = decoding.kernel_route_pays
    decoding.kernel_route_pays = lambda *args: False
    try:
        cpu_w, _, weights = timed(lambda: ours(n_permutations), repeats)
    finally:
        decoding.kernel_route_pays = pays
    gap = max(np.abs(kernel.fold_scores - weights.fold_scores).max(), np.abs(kernel.null - weights.null).max())
    assert gap <= 1e-12, gap
    print(f"  {n_permutations} permutations: weights route {cpu_w:6.2f} s CPU   kernel matrices {cpu_k:6.3f} s CPU   "
          f"{cpu_w / cpu_k:5.1f}x   equal ({gap:.1e})")  # fmt: skip
    if results is not None:
        results.add(f"logistic, {n} x {p} x {steps} after a ReLU, {classes} classes", "MNE", cpu_l, cpu_o, goal=1)
        name = f"ridge, {n} x {p} x {steps}, {classes} classes"
        results.add(f"{name}, {anchored} permutations", "MNE", cpu_m, cpu_a, goal=1)
        results.add(f"{name}, {n_permutations} permutations", "weights route", cpu_w, cpu_k)


def main() -> None:
    print_machine()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--large", action="store_true", help="also 5000 x 1024 x 50 (MNE takes minutes)")
    parser.add_argument("--wide", action="store_true", help="also 300 x 4096 x 4 (more units than trials)")
    parser.add_argument("--only-relu", action="store_true", help="the 500 x 4096 x 4 ReLU layer's cases alone")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    from importlib.metadata import version

    print(f"mne {version('mne')}, scikit-learn {version('scikit-learn')}, numpy {np.__version__}, 1 thread, "
          f"median of {args.repeats}")  # fmt: skip
    if args.quick:
        case(200, 32, 10, 1, logistic=False)
        return
    if args.only_relu:
        relu_layer_case(args.repeats)
        return
    from _machine import Results

    results = Results(__file__)
    case(600, 128, 30, args.repeats, logistic=True, results=results)
    if args.wide:
        case(300, 4096, 4, args.repeats, logistic=True, results=results)
        case(300, 4096, 4, args.repeats, logistic=True, classes=10, results=results)  # multinomial
        permutations_case(args.repeats, results=results)
        relu_layer_case(args.repeats, results=results)
    if args.large:
        case(5000, 1024, 50, 1, logistic=False, results=results)
    results.save()


if __name__ == "__main__":
    main()

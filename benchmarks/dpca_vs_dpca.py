"""rnnprobe's dPCA vs the dPCA package (Kobak et al. 2016), side by side in one run; fits checked first.

Run:  OMP_NUM_THREADS=1 python benchmarks/dpca_vs_dpca.py [--repeats 3] [--quick]  (bench extra: dPCA, numexpr, numba)

Cases: trials of 6 stimuli x 2 decisions (20 each) with stimulus, decision, interaction and time signals,
(a) 100 units x 20 steps (fewer units than the 240 condition x time samples) and (b) 400 units x 15 steps
(more units than the 180 samples: rnnprobe's fits in the samples' dimension). Marginalisations joined with
their time interactions, 3 components, a fixed regularizer. Checked before timing: decoders and encoders
equal the package's (n_iter=60, its randomised SVD seeded; it converges to about 1e-8 here) to 1e-7 on
every component with explained variance, up to sign. Timed: the fit; the fit with ``regularizer="auto"``
(45 values x 20 splits, the package's ``n_trials``: its splits are its own, so the values chosen are printed,
not compared); the significance by 20 label shuffles x 20 held-out splits (``significance_analysis(axis=
True)``: the package draws its own shuffles and splits and shuffles responses across units too, so only the
work is the same: its flags are not compared). The package's numba functions are compiled by a first
untimed call.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def trials(n_units: int, n_times: int, seed: int = 0):
    """(stimulus, decision, states (trial, time, unit)) of 20 trials per condition."""
    import numpy as np

    rng = np.random.default_rng(seed)
    stim, dec = np.repeat(np.arange(6), 40), np.tile(np.repeat([0, 1], 20), 6)
    t = np.linspace(0, 1, n_times)
    w = rng.normal(size=(4, n_units))
    signal = (t[None, :, None] * w[0] + (stim - 2.5)[:, None, None] * t[None, :, None] * w[1] / 3
              + (dec - 0.5)[:, None, None] * np.sin(3 * t)[None, :, None] * w[2]
              + ((stim - 2.5) * (dec - 0.5))[:, None, None] * w[3] / 6)  # fmt: skip
    return stim, dec, signal + rng.normal(size=signal.shape)


def package_layout(stim, dec, states):
    """The package's (unit, stimulus, decision, time) means and (trial, unit, stimulus, decision, time) trials."""
    import numpy as np

    n_units, n_times = states.shape[2], states.shape[1]
    trial_x = np.zeros((20, n_units, 6, 2, n_times))
    for s in range(6):
        for d in range(2):
            trial_x[:, :, s, d] = states[(stim == s) & (dec == d)].transpose(0, 2, 1)
    return trial_x.mean(axis=0), trial_x


def timed(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def check_equal(ours, model) -> None:
    """Decoders and encoders equal on components with explained variance, up to sign."""
    from rnnprobe.testing import assert_components_equal

    names = {"s": "stimulus", "d": "decision", "sd": "stimulus x decision", "t": "time"}
    for key in model.marginalizations:
        name = names[key]
        assert_components_equal([ours.decoders[name], ours.encoders[name]], [model.D[key], model.P[key]],
                                columns=ours.explained_variance[name] > 1e-12, atol=1e-7)  # fmt: skip


def run_case(n_units: int, n_times: int, n_shuffles: int, n_splits: int, repeats: int, results) -> None:
    """One case: the fits checked equal, then the fit and the significance timed."""
    import numpy as np
    from dPCA.dPCA import dPCA

    from rnnprobe import Recording
    from rnnprobe.analysis import dpca_significance, fit_dpca

    stim, dec, states = trials(n_units, n_times)
    x, trial_x = package_layout(stim, dec, states)
    rec = Recording({"h": states}, metadata={"stimulus": stim, "decision": dec})
    joined = {"s": ["s", "st"], "d": ["d", "dt"], "sd": ["sd", "sdt"]}
    case = f"{n_units} units x {n_times} steps, 6 x 2 conditions x 20 trials"

    def theirs_fit():
        np.random.seed(0)  # noqa: NPY002 (the package's randomised SVD draws from numpy's global generator)
        model = dPCA(labels="sdt", join=joined, n_components=3, regularizer=1e-4, n_iter=60)
        model.protect = ["t"]  # (the package's significance reads it: time is never shuffled)
        model.fit_transform(x)
        return model

    def ours_fit():
        return fit_dpca(rec, parameters=["stimulus", "decision"], n_components=3, join="time", regularizer=1e-4)

    model, ours = theirs_fit(), ours_fit()
    check_equal(ours, model)
    print(f"{case}: decoders and encoders equal the package's (1e-7)")
    with contextlib.redirect_stdout(io.StringIO()):
        model.significance_analysis(x, trial_x, n_shuffles=2, n_splits=2, axis=True)  # numba compiles here
    fit_s = (timed(theirs_fit, repeats), timed(ours_fit, repeats))
    with contextlib.redirect_stdout(io.StringIO()):  # (the package prints its progress)
        theirs_s = timed(lambda: model.significance_analysis(x, trial_x, n_shuffles=n_shuffles, n_splits=n_splits,
                                                             axis=True), 1)  # fmt: skip
    sig_s = (theirs_s, timed(lambda: dpca_significance(rec, ours, n_shuffles=n_shuffles, n_splits=n_splits), repeats))
    auto_s, chosen = auto_times(x, trial_x, rec, joined, n_splits, repeats)
    print(f"  regularizer='auto' chose: dPCA package {chosen[0]:.3g}, rnnprobe {chosen[1]:.3g} (different splits)")
    cases = (("fit", fit_s), (f"significance, {n_shuffles} shuffles x {n_splits} splits", sig_s),
             (f"regularizer='auto', {n_splits} splits x 45 values", auto_s))  # fmt: skip
    for what, (a, b) in cases:
        print(f"  {what:45s} dPCA package {a:8.3f} s   rnnprobe {b:7.3f} s   {a / b:6.1f}x")
        results.add(f"{case}: {what}", "dPCA package", a, b)


def auto_times(x, trial_x, rec, joined, n_splits: int, repeats: int) -> tuple[tuple[float, float], tuple]:
    """Times of the fit with the regularizer chosen by cross-validation (the package's 45 values, ``n_splits``
    splits each: its ``n_trials``), and the values each chose.
    """
    from dPCA.dPCA import dPCA

    from rnnprobe.analysis import fit_dpca

    with contextlib.redirect_stdout(io.StringIO()):  # (the package prints its progress, and advice on protect)
        model = dPCA(labels="sdt", join=joined, n_components=3, regularizer="auto", n_iter=60)
        model.protect, model.n_trials = ["t"], n_splits
        theirs_s = timed(lambda: model.fit(x, trial_x), 1)
    ours = []
    settings = {"parameters": ["stimulus", "decision"], "n_components": 3, "join": "time", "n_splits": n_splits}
    ours_s = timed(lambda: ours.append(fit_dpca(rec, regularizer="auto", **settings)), repeats)
    return (theirs_s, ours_s), (model.regularizer, ours[-1].regularizer)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    import warnings

    from _machine import Results, print_machine

    warnings.filterwarnings("ignore")
    print_machine()
    results = Results(__file__)
    n_shuffles, n_splits = (5, 5) if args.quick else (20, 20)
    for n_units, n_times in ((100, 20), (400, 15)):
        run_case(n_units, n_times, n_shuffles, n_splits, args.repeats, results)
    if not args.quick:  # (a smoke run's figures are not the machine's)
        results.save()


if __name__ == "__main__":
    main()

"""Intrinsic timescales of 10^4 units: rnnprobe's vectorised fit vs scipy's curve_fit per unit, in one run.

Run:  OMP_NUM_THREADS=1 python benchmarks/timescales.py [--units 10000]

Data: AR(1) units with timescales from 1 to 30 steps (phi = exp(-1 / tau)), 200 trials x 60 steps;
autocorrelation up to lag 15 (rnnprobe.analysis.timescales.autocorrelation, shared by both), then the
fit R(k) = A (exp(-k / tau) + B): scipy.optimize.curve_fit unit by unit (the usual loop, p0 = (R(1), 5, 0))
against fit_exponential (all units at once). Prints both times, the ratio, the agreement of the fitted
taus and both fits' errors against the true taus.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from _machine import median_time, print_machine


def main() -> None:
    print_machine()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=10_000)
    args = parser.parse_args()
    from scipy.optimize import curve_fit

    from rnnprobe.analysis.timescales import autocorrelation, fit_exponential

    rng = np.random.default_rng(0)
    u, n, t, max_lag = args.units, 200, 60, 15
    true_tau = np.exp(rng.uniform(np.log(1), np.log(30), u))
    phi = np.exp(-1 / true_tau)
    x = np.empty((n, t, u), dtype=np.float64)
    x[:, 0] = rng.standard_normal((n, u)) / np.sqrt(1 - phi**2)
    for s in range(t - 1):
        x[:, s + 1] = phi * x[:, s] + rng.standard_normal((n, u))
    t0 = time.perf_counter()
    ac = autocorrelation(x, max_lag)
    t_ac = time.perf_counter() - t0
    lags = np.arange(1, max_lag + 1, dtype=float)

    # (the median of 3: a first call's time depends on the allocator's state after the autocorrelation, 0.07-0.12 s)
    t_ours, ours = median_time(lambda: fit_exponential(lags, ac[:, 1:]), 3)

    def model(k, a, tau, b):
        return a * (np.exp(-k / tau) + b)

    theirs = np.full(u, np.nan)
    sse_theirs = np.full(u, np.nan)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(u):
            try:
                p, _ = curve_fit(model, lags, ac[i, 1:], p0=(ac[i, 1], 5.0, 0.0), maxfev=5000)
            except RuntimeError:
                continue
            theirs[i] = p[1]
            sse_theirs[i] = ((model(lags, *p) - ac[i, 1:]) ** 2).sum()
    t_scipy = time.perf_counter() - t0

    ok = np.isfinite(theirs) & (theirs > 0)
    agree = np.median(np.abs(np.log(ours["tau"][ok] / theirs[ok])))
    better = np.mean(ours["sse"][ok] <= sse_theirs[ok] * (1 + 1e-6) + 1e-15)
    ours_err = np.median(np.abs(np.log(ours["tau"] / true_tau)))
    scipy_err = np.median(np.abs(np.log(theirs[ok] / true_tau[ok])))
    print(f"{u} units, {n} trials x {t} steps, lags 1..{max_lag}; autocorrelation {t_ac:.2f} s (shared)")
    print(f"  scipy curve_fit per unit {t_scipy:8.2f} s ({int((~ok).sum())} failed to converge)")
    print(f"  rnnprobe fit_exponential {t_ours:8.3f} s   {t_scipy / t_ours:7.1f}x")
    from _machine import Results

    results = Results(__file__)
    results.add(f"{u} units, exponential fits", "scipy curve_fit", t_scipy, t_ours, goal=1)
    if args.units == 10_000:  # the documented size only
        results.save()
    print(f"  median |log(tau_rnnprobe / tau_scipy)| {agree:.2e}; rnnprobe's SSE <= scipy's for {100 * better:.1f}%")
    print(f"  median |log(tau / true tau)|: rnnprobe {ours_err:.3f}, scipy {scipy_err:.3f}")


if __name__ == "__main__":
    main()

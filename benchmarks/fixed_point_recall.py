"""Recall of find_fixed_points against an independent float64 root search from the same starts.

Run:  OMP_NUM_THREADS=1 python benchmarks/fixed_point_recall.py [--models flipflop-gru,flipflop-rnn] [--period 1]

For each shipped flip-flop model, 1024 states are sampled from its trajectories (64 test trials); from
each, scipy.optimize.root (MINPACK's hybr, float64, tol 1e-14) searches a root of F^k(x) - x. A root is
counted when its residual is below 1e-10 max(1, |x|) and it lies in find_fixed_points' range (within
``outlier_distance`` = 10 times the starts' spread of their centre); roots within 1e-6 of each other are
one. find_fixed_points runs from the same 1024 starts; recall = its points that match a scipy root
(within 1e-6) / scipy's distinct roots, and every point it returns is checked to be a root (precision).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from _machine import print_machine


def starts_of(model, n: int = 1024, seed: int = 0) -> np.ndarray:
    from rnnprobe import record
    from rnnprobe.analysis.fixed_points import recorded_states
    from rnnprobe.tasks.flipflop import FlipFlop

    rec = record(model, FlipFlop(3).sample(64, split="test").x, progress=False)
    pooled = recorded_states(rec, list(rec.shapes))
    rng = np.random.default_rng(seed)
    return pooled[np.sort(rng.choice(len(pooled), size=n, replace=False))]


def residual_function(model, period: int):
    m = model.double()
    u = torch.zeros(1, m.input_size, dtype=torch.float64)

    def residual(v: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            state = m.unpack_state(torch.as_tensor(v[None]))
            for _ in range(period):
                state = m.step(u, state)[1]
            return m.pack_state(state)[0].numpy() - v

    return residual


def scipy_roots(residual, starts: np.ndarray) -> np.ndarray:
    from scipy.optimize import root

    centre = starts.mean(axis=0)
    spread = np.sqrt(((starts - centre) ** 2).sum(axis=1).mean())
    radius = 10 * max(spread, 0.1 * np.sqrt((starts**2).sum(axis=1).mean()))
    found = []
    for start in starts:
        solution = root(residual, start, method="hybr", tol=1e-14)
        x = solution.x
        if np.linalg.norm(residual(x)) < 1e-10 * max(1.0, np.linalg.norm(x)) and np.linalg.norm(x - centre) <= radius:
            found.append(x)
    from fixed_points import _merge  # the comparison benchmark's merging of roots

    return _merge(np.array(found).reshape(-1, starts.shape[1]), 1e-6)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="flipflop-gru,flipflop-rnn")
    parser.add_argument("--period", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from rnnprobe.analysis import find_fixed_points
    from rnnprobe.models import shipped

    print_machine()
    for name in args.models.split(","):
        model = shipped.load(name)
        starts = starts_of(model)
        residual = residual_function(model, args.period)
        t0 = time.perf_counter()
        reference = scipy_roots(residual, starts)
        t_scipy = time.perf_counter() - t0
        t0 = time.perf_counter()
        fp = find_fixed_points(model, initial_states=starts, period=args.period, progress=False)
        t_ours = time.perf_counter() - t0
        true = [np.linalg.norm(residual(p)) < 1e-10 * max(1.0, np.linalg.norm(p)) for p in fp.states]
        matched = sum(any(np.linalg.norm(p - r) <= 1e-6 for p in fp.states) for r in reference)
        extra = sum(not any(np.linalg.norm(p - r) <= 1e-6 for r in reference) for p in fp.states)
        print(f"{name} (period {args.period}): scipy hybr {len(reference)} distinct roots ({t_scipy:.1f} s); "
              f"find_fixed_points {len(fp)} points ({t_ours:.1f} s), {sum(true)}/{len(fp)} true roots, "
              f"recall {matched}/{len(reference)}, {extra} not found by scipy, {fp.n_deflated} found by deflation; "
              f"{len(fp.slow)} slow points, "
              f"{fp.n_unconverged} unconverged")  # fmt: skip


if __name__ == "__main__":
    main()

"""rnnprobe's find_fixed_points vs the usual approach (FixedPointFinder), side by side in one run.

Run:  OMP_NUM_THREADS=1 python benchmarks/fixed_points.py [--models flipflop-gru,flipflop-lstm,flipflop-gru64]

The usual approach, reimplemented faithfully after FixedPointFinder's PyTorch port: all candidates
are one tensor optimised by Adam on the *mean* of q over candidates (lr 1.0, ReduceLROnPlateau with
factor 0.95 and patience 5), until mean q < tol_q = 1e-12, the change of mean q < 1e-20, or 5000
iterations; points within 1e-3 of each other are merged ("unique fixed points") and far outliers
(10x the initial spread) dropped. It runs in float32 as the published finder does.

Both start from the same 1024 states sampled from the model's trajectories on flip-flop trials
(the shipped checkpoints, 3-bit flip-flop). Every returned point is then checked with an
independent root finder (scipy.optimize.root, hybr, in float64) started at the point: the point is
*true* when the root's residual is < 1e-10 and the root lies within 1e-3 of the point (the usual
finder's own uniqueness radius, so its float32 points count when they approximate a real fixed
point); otherwise *spurious*. rnnprobe's points are themselves roots to float64 precision.
Distinct true points are counted after merging roots within 1e-6, and stable ones (all
|lambda| < 1) are read out through the model's readout.
Times are wall seconds, 1 thread, including each method's first call.

``--scale`` runs the searches on large states instead (no Adam comparison; it cannot run there
either without a dense Jacobian per candidate): the shipped BLT family on occluded digits at one
constant image (packed state of 4096 + 1024 = 5120 units; method="matrix-free", memory-aware
chunks), started from states of 300-step runs on four test images; and the fast-weights RNN of the
associative-retrieval task (state (h, A) of 20 + 400 units) at zero input, dense against matrix-free.
Every point is checked by scipy.optimize.root started at it (method "krylov" for the BLT states,
"hybr" for the fast weights), and BLT's stable points against the state reached by running the
model forward for 2000 steps.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from _machine import print_machine


def trajectory_states(model, n_trials: int = 64) -> np.ndarray:
    """Every state of the model on flip-flop trials, packed (its taps l0.h, and l0.c for an LSTM)."""
    from rnnprobe import record
    from rnnprobe.analysis.fixed_points import recorded_states
    from rnnprobe.tasks.flipflop import FlipFlop

    rec = record(model, FlipFlop(3).sample(n_trials, split="test").x, progress=False)
    return recorded_states(rec, list(rec.shapes))


def adam_on_mean_q(model, starts: np.ndarray, *, max_iters: int = 5000, tol_q: float = 1e-12) -> tuple:
    """FixedPointFinder's optimisation: one Adam over all candidates on mean q, plateau lr decay."""
    m = model.float()
    x = torch.tensor(starts, dtype=torch.float32, requires_grad=True)
    u = torch.zeros(len(starts), m.input_size)
    opt = torch.optim.Adam([x], lr=1.0)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.95, patience=5, cooldown=0)
    previous, iterations = np.inf, 0
    for iterations in range(1, max_iters + 1):  # noqa: B007 - the count is reported
        opt.zero_grad()
        state = m.unpack_state(x)
        nxt = m.pack_state(m.step(u, state)[1])
        q = 0.5 * ((nxt - x) ** 2).sum(dim=1)
        mean_q = q.mean()
        mean_q.backward()
        opt.step()
        sched.step(mean_q.item())
        value = mean_q.item()
        if value < tol_q or abs(previous - value) < 1e-20:
            break
        previous = value
    points = x.detach().double().numpy()
    centre = starts.mean(axis=0)
    spread = np.sqrt(((starts - centre) ** 2).sum(axis=1).mean())
    points = points[np.linalg.norm(points - centre, axis=1) <= 10 * spread]
    return _merge(points, 1e-3), iterations


def _merge(points: np.ndarray, radius: float) -> np.ndarray:
    keep: list[np.ndarray] = []
    for p in points:
        if all(np.linalg.norm(p - k) > radius for k in keep):
            keep.append(p)
    return np.array(keep).reshape(-1, points.shape[1])


def verify(model, points: np.ndarray) -> tuple[int, np.ndarray]:
    """(spurious count, distinct true roots) of returned points, by scipy.optimize.root in float64."""
    from scipy.optimize import root

    m = model.double()
    u = torch.zeros(1, m.input_size, dtype=torch.float64)

    def residual(v: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            nxt = m.pack_state(m.step(u, m.unpack_state(torch.as_tensor(v[None])))[1])[0].numpy()
        return nxt - v

    roots, spurious = [], 0
    for p in points:
        solution = root(residual, p, method="hybr", tol=1e-14)
        close = np.linalg.norm(solution.x - p) <= 1e-3
        if close and np.linalg.norm(residual(solution.x)) < 1e-10:
            roots.append(solution.x)
        else:
            spurious += 1
    distinct = _merge(np.array(roots).reshape(-1, points.shape[1]), 1e-6)
    return spurious, distinct


def stable_patterns(model, roots: np.ndarray) -> tuple[int, int]:
    """(stable roots, distinct readout sign patterns among them)."""
    from torch.func import jacfwd

    m = model.double()
    u = torch.zeros(1, m.input_size, dtype=torch.float64)
    stable, patterns = 0, set()
    for r in roots:
        x = torch.as_tensor(r)
        jac = jacfwd(lambda v: m.pack_state(m.step(u, m.unpack_state(v[None]))[1])[0])(x)
        if np.abs(np.linalg.eigvals(jac.detach().numpy())).max() < 1:
            stable += 1
            with torch.no_grad():
                out = m.step(u, m.unpack_state(x[None]))[0][0].detach().numpy()
            patterns.add(tuple(np.sign(out).astype(int)))
    return stable, len(patterns)


def scipy_roots(model, image: torch.Tensor, points: np.ndarray, method: str) -> int:
    """How many of the points scipy.optimize.root confirms (residual < 1e-10 max(1, |x|), within 1e-6 |x|)."""
    from scipy.optimize import root

    m = model.double()
    u = image.double()

    def residual(v: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return m.pack_state(m.step(u, m.unpack_state(torch.as_tensor(v[None])))[1])[0].numpy() - v

    confirmed = 0
    for p in points:
        scale = max(1.0, np.linalg.norm(p))
        options = {"fatol": 1e-10 * scale / np.sqrt(len(p))} if method == "krylov" else {}
        solution = root(residual, p, method=method, options=options) if options else root(residual, p, tol=1e-14)
        confirmed += bool(
            np.linalg.norm(residual(solution.x)) < 1e-10 * scale and np.linalg.norm(solution.x - p) < 1e-6 * scale
        )
    return confirmed


def scale_runs() -> None:
    from rnnprobe.analysis.fixed_points import find_fixed_points
    from rnnprobe.models import shipped
    from rnnprobe.models.recipes import _occluded, _retrieval

    data = _occluded().sample(4, split="test")
    image = data.x[:1]
    print(f"torch {torch.__version__}, 1 thread; BLT at test image 0 (digit {int(data.y[0])})")
    for name in ("occluded-b", "occluded-bl", "occluded-blt"):
        model = shipped.load(name)
        with torch.no_grad():
            state, runs = model.init_state(4), []
            for t in range(300):
                state = model.step(data.x, state)[1]
                if t % 10 == 9:
                    runs.append(model.pack_state(state))
            far = model.double().init_state(1)
            for _ in range(2000):
                far = model.step(image.double(), far)[1]
            far = model.pack_state(far)[0].numpy()
        starts = torch.cat(runs).double().numpy()
        starts = starts[np.random.default_rng(0).choice(len(starts), 32, replace=False)]
        fp = find_fixed_points(shipped.load(name), inputs=image, initial_states=starts, solver="matrix-free")
        confirmed = scipy_roots(shipped.load(name), image, fp.states, "krylov")
        stable = fp.states[fp.stable]
        gap = np.linalg.norm(stable - far, axis=1).min() / np.linalg.norm(far) if len(stable) else np.nan
        lead = np.abs(fp.eigenvalues[:, 0]).round(3).tolist()
        classes = fp.outputs.argmax(axis=1).tolist() if len(fp) else []
        print(
            f"  {name:13s} state {starts.shape[1]}: {fp.seconds:6.2f} s, {len(fp)} points "
            f"({int(fp.stable.sum())} stable; leading |lambda| {lead}; readout class {classes}), "
            f"{fp.n_unconverged} of {fp.n_candidates} unconverged, {len(fp.slow)} slow; "
            f"scipy confirms {confirmed}/{len(fp)}; relative distance of the stable point "
            f"to the state after 2000 forward steps {gap:.1e}"
        )

    model = shipped.load("retrieval-fastweights")
    task = _retrieval()
    x = task.sample(64, split="test").x
    with torch.no_grad():
        state, runs = model.init_state(64), []
        for t in range(x.shape[1]):
            state = model.step(x[:, t], state)[1]
            runs.append(model.pack_state(state))
    starts = torch.cat(runs).double().numpy()
    starts = starts[np.random.default_rng(0).choice(len(starts), 64, replace=False)]
    zero = torch.zeros(1, model.input_size)
    print(f"fast-weights RNN (retrieval), state {starts.shape[1]} = h 20 + A 400, zero input, 64 starts")
    for method in ("dense", "matrix-free"):
        fp = find_fixed_points(shipped.load("retrieval-fastweights"), inputs=zero, initial_states=starts, solver=method)
        confirmed = scipy_roots(shipped.load("retrieval-fastweights"), zero, fp.states, "hybr")
        lead = np.abs(fp.eigenvalues[:, 0]).round(3).tolist()
        print(
            f"  {method:11s} {fp.seconds:6.2f} s, {len(fp)} points ({int(fp.stable.sum())} stable; leading |lambda| "
            f"{lead}), {fp.n_unconverged} unconverged; scipy confirms {confirmed}/{len(fp)}"
        )


def main() -> None:
    print_machine()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="flipflop-gru,flipflop-lstm,flipflop-gru64")
    parser.add_argument("--n-initial", type=int, default=1024)
    parser.add_argument("--scale", action="store_true", help="BLT and fast-weights runs instead")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.scale:
        scale_runs()
        return
    from rnnprobe.analysis.fixed_points import find_fixed_points
    from rnnprobe.models import shipped

    print(f"torch {torch.__version__}, 1 thread, {args.n_initial} initial states from flip-flop trajectories")
    from _machine import Results

    results = Results(__file__)
    for name in args.models.split(","):
        model = shipped.load(name)
        traj = trajectory_states(model)
        starts = traj[np.random.default_rng(0).choice(len(traj), args.n_initial, replace=False)]
        t0 = time.perf_counter()
        theirs, iters = adam_on_mean_q(shipped.load(name), starts)
        t_theirs = time.perf_counter() - t0
        t0 = time.perf_counter()
        ours = find_fixed_points(shipped.load(name), initial_states=starts)
        t_ours = time.perf_counter() - t0
        print(f"\n[{name}: state of {starts.shape[1]}]")
        for label, points, seconds, extra in (
            ("Adam on mean q", theirs, t_theirs, f"{iters} iterations"),
            ("rnnprobe", ours.states, t_ours, f"{len(ours.slow)} slow points kept apart"),
        ):
            spurious, roots = verify(model, points)
            stable, patterns = stable_patterns(model, roots)
            print(
                f"  {label:15s} {seconds:7.2f} s   returned {len(points):5d}   true {len(points) - spurious:4d} "
                f"({len(roots)} distinct; {stable} stable, {patterns} bit patterns)   spurious {spurious:5d}   {extra}"
            )
        print(f"  speed-up {t_theirs / t_ours:.1f}x")
        results.add(f"{name} ({starts.shape[1]} units)", "Adam on mean q", t_theirs, t_ours,
                    goal=5 if name == "flipflop-gru" else None)  # fmt: skip
    results.save()


if __name__ == "__main__":
    main()

"""rnnprobe's RDMs and RDM comparisons vs rsatoolbox, side by side in one run (1 thread).

Run:  OMP_NUM_THREADS=1 python benchmarks/rsa_vs_rsatoolbox.py [--repeats 3] [--quick] [--only movie ...]

Cases (from issue 4; float64 inputs; medians of --repeats; results checked equal first):
  calc_rdm correlation and euclidean, 2000 conditions x 4096 channels (+ achieved GFLOP/s vs this
      machine's float64 GEMM peak measured on the same shapes), and 5000 conditions x 256 channels (many
      stimuli, a narrow layer: the RDM's 12.5 million pairs cost more than the product)
  calc_rdm_movie, 92 conditions x 512 channels x 50 time points, euclidean and correlation, and
      crossnobis with 4 runs (leave-one-run-out)
  compare 1 vs 1000 RDMs of 500 conditions: corr, spearman, rho-a; tau-a of 2 categorical (two-valued) models,
      and of a model of three values, vs 200 RDMs of 92 conditions; of 5 continuous models vs 20 such RDMs
  eval_bootstrap_pattern: 5 fixed models, 10 data RDMs, 92 conditions, 100 bootstraps: corr, rho-a
      (with the noise ceiling of every sample, as rsatoolbox computes it); 20 bootstraps of tau-a with 5
      categorical (two-valued) models
  a time-resolved case from a real recording: the shipped BLT on 1000 occluded digits, RDMs of every
      layer at every step (correlation distance)
"""

from __future__ import annotations

import argparse
import os
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # rsatoolbox's bootstrap progress bars

import numpy as np
import rsatoolbox
import torch
from _machine import Results, median_time, print_machine
from _rdms import categorical_rdms

from rnnprobe import Recording
from rnnprobe.analysis.rsa import compare_rdms, compute_rdms

RESULTS = Results(__file__)
GOALS = {
    "calc_rdm correlation": 20,
    "calc_rdm_movie correlation": 10,
    "crossnobis": 10,
    "compare spearman": 5,
    "compare rho-a": 5,
    "time-resolved BLT, all layers": 20,
}  # issue 20; every other case: not slower (1x)


def row(label: str, ours: float, theirs: float, extra: str = "", *, case: str | None = None) -> None:
    print(f"  {label:38s} rsatoolbox {theirs:8.3f} s   rnnprobe {ours:8.4f} s   {theirs / ours:7.1f}x  {extra}")
    case = case or label
    goal = next((g for key, g in GOALS.items() if case.startswith(key)), 1)
    RESULTS.add(case, "rsatoolbox", theirs, ours, goal)


SECTIONS = ("calc_rdm", "movie", "compare", "bootstrap", "blt")


def main() -> None:
    print_machine()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run, not the issue's)")
    parser.add_argument(
        "--only", choices=SECTIONS, action="append", help="only these sections (default: all; results not saved)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    scale = 4 if args.quick else 1
    from importlib.metadata import version

    print(f"rsatoolbox {version('rsatoolbox')}, torch {torch.__version__}, 1 thread, median of {args.repeats}")
    cases = {
        "calc_rdm": lambda rng: calc_rdm_cases(args.repeats, rng, scale),
        "movie": lambda rng: movie_case(args.repeats, rng),
        "compare": lambda rng: compare_case(args.repeats, rng, 500 // scale, 1000 // scale),
        "bootstrap": lambda rng: bootstrap_case(args.repeats, rng),
        "blt": lambda rng: blt_case(args.repeats, 1000 // scale),
    }
    for i, name in enumerate(SECTIONS):
        if not args.only or name in args.only:
            cases[name](np.random.default_rng(i))  # each section its own data, whichever run
    if not args.quick and not args.only:  # the figures on docs/benchmarks.md are drawn from full runs only
        RESULTS.save()


def calc_rdm_cases(repeats: int, rng: np.random.Generator, scale: int) -> None:
    """The issue's 2000 x 4096 (named "calc_rdm"), then many conditions of a narrow layer."""
    calc_rdm_case(repeats, rng, 2000 // scale, 4096 // scale)
    calc_rdm_case(repeats, rng, 5000 // scale, 256, name=f"calc_rdm {5000 // scale} x 256")


def calc_rdm_case(repeats: int, rng: np.random.Generator, n: int, p: int, *, name: str = "calc_rdm") -> None:
    x = rng.normal(size=(n, p))
    rec = Recording({"x": x[:, None, :]})
    ds = rsatoolbox.data.Dataset(x)
    a = rng.normal(size=(n, p))
    gemm, _ = median_time(lambda: a @ a.T, repeats)
    flops = 2.0 * n * n * p  # one Gram matrix
    print(f"\n[calc_rdm, {n} conditions x {p} channels]  float64 GEMM peak here: {flops / gemm / 1e9:.1f} GFLOP/s")
    for method in ("correlation", "euclidean"):
        theirs, ref = median_time(lambda m=method: rsatoolbox.rdm.calc_rdm(ds, method=m), repeats)
        ours, res = median_time(lambda m=method: compute_rdms(rec, distance=m), repeats)
        np.testing.assert_allclose(res.dissimilarities, ref.get_vectors(), rtol=1e-6, atol=1e-9)
        row(
            method,
            ours,
            theirs,
            f"{flops / ours / 1e9:.1f} GFLOP/s ({gemm / ours:.2f} of GEMM peak)",
            case=f"{name} {method}",
        )


def movie_case(repeats: int, rng: np.random.Generator) -> None:
    conds, chans, steps = 92, 512, 50
    movie = rng.normal(size=(conds, chans, steps))
    tds = rsatoolbox.data.TemporalDataset(movie, time_descriptors={"time": np.arange(steps)})
    # each tool gets its own layout: rsatoolbox (condition, channel, time), a Recording (stimulus, time, unit)
    rec_movie = Recording({"x": np.ascontiguousarray(np.moveaxis(movie, 2, 1))})
    print(f"\n[calc_rdm_movie, {conds} conditions x {chans} channels x {steps} time points]")
    for method in ("euclidean", "correlation"):
        # one untimed call each first, then calls for a second at least: calls of 10 ms timed three times moved by
        # 30% from run to run (8.0-11.5x)
        theirs, ref = median_time(lambda m=method: rsatoolbox.rdm.calc_rdm_movie(tds, method=m), repeats,
                                  warmup=True, at_least=1.0)  # fmt: skip
        ours, res = median_time(lambda m=method: compute_rdms(rec_movie, distance=m), repeats, warmup=True,
                                at_least=1.0)  # fmt: skip
        np.testing.assert_allclose(res.dissimilarities, ref.get_vectors(), rtol=1e-6, atol=1e-9)
        row(method, ours, theirs, case=f"calc_rdm_movie {method}")
    runs = 4
    movie_runs = rng.normal(size=(conds * runs, chans, steps))
    labels = {"conds": np.tile(np.arange(conds), runs), "runs": np.repeat(np.arange(runs), conds)}
    tds_runs = rsatoolbox.data.TemporalDataset(
        movie_runs, obs_descriptors=labels, time_descriptors={"time": np.arange(steps)}
    )
    rec_runs = Recording({"x": np.ascontiguousarray(np.moveaxis(movie_runs, 2, 1))}, metadata=labels)
    kw = {"descriptor": "conds", "cv_descriptor": "runs"}
    theirs, ref = median_time(lambda: rsatoolbox.rdm.calc_rdm_movie(tds_runs, method="crossnobis", **kw), repeats)
    ours, res = median_time(lambda: compute_rdms(rec_runs, distance="crossnobis", **kw), repeats)
    np.testing.assert_allclose(res.dissimilarities, ref.get_vectors(), rtol=1e-6, atol=1e-9)
    row(f"crossnobis, {runs} runs", ours, theirs, case="crossnobis")


def compare_case(repeats: int, rng: np.random.Generator, n_cond: int, n_rdms: int) -> None:
    pairs = n_cond * (n_cond - 1) // 2
    one, many = rng.random((1, pairs)), rng.random((n_rdms, pairs))
    r_one, r_many = rsatoolbox.rdm.RDMs(one), rsatoolbox.rdm.RDMs(many)
    print(f"\n[compare 1 vs {n_rdms} RDMs of {n_cond} conditions]")
    for method in ("corr", "spearman", "rho-a"):
        theirs, ref = median_time(lambda m=method: rsatoolbox.rdm.compare(r_one, r_many, method=m), repeats)
        ours, res = median_time(lambda m=method: compare_rdms(one, many, comparison=m), repeats)
        np.testing.assert_allclose(res, ref, rtol=1e-6, atol=1e-9)
        row(method, ours, theirs, case=f"compare {method}")
    categorical_case(repeats, rng)


def tau_row(label: str, models: np.ndarray, data: np.ndarray, r_data, repeats: int) -> None:
    """Time tau-a of ``models`` with ``data`` both ways (rsatoolbox's ``r_data``: the same RDMs), check them equal
    (1e-12) and print the row."""
    r_models = rsatoolbox.rdm.RDMs(np.atleast_2d(models))
    theirs, ref = median_time(lambda: rsatoolbox.rdm.compare(r_models, r_data, method="tau-a"), repeats)
    ours, res = median_time(lambda: compare_rdms(models, data, comparison="tau-a"), repeats)
    np.testing.assert_allclose(res, ref, rtol=1e-12, atol=1e-15)
    row(label, ours, theirs, case=f"compare {label}")


def categorical_case(repeats: int, rng: np.random.Generator, n_cond: int = 92, n_rdms: int = 200) -> None:
    """Tau-a of two categorical (two-valued) model RDMs with continuous data RDMs: an animate / inanimate split
    (0 within a category, 1 between) and a random partition into four groups; then of their sum (three values)."""
    halves, groups = np.arange(n_cond) < n_cond // 2, rng.integers(0, 4, n_cond)
    models = categorical_rdms(np.stack([halves, groups]))
    data = models[0] + rng.normal(0, 2, (n_rdms, models.shape[1]))
    r_data = rsatoolbox.rdm.RDMs(data)
    print(f"\n[compare tau-a: 2 categorical models vs {n_rdms} RDMs of {n_cond} conditions]")
    tau_row("tau-a, categorical models", models, data, r_data, repeats)
    tau_row("tau-a, a model of three values", models.sum(axis=0), data, r_data, repeats)  # 3 values: 0, 1, 2
    continuous_tau_case(repeats, rng, n_cond)


def continuous_tau_case(repeats: int, rng: np.random.Generator, n_cond: int, n_rdms: int = 20) -> None:
    """Tau-a of 5 continuous model RDMs with continuous data RDMs (every pair counted; rsatoolbox: scipy's
    ``kendalltau`` pair by pair)."""
    truth = rng.random(n_cond * (n_cond - 1) // 2)
    models = np.stack([truth + rng.normal(0, s, truth.size) for s in (0.2, 0.5, 1, 2, 4)])
    data = truth + rng.normal(0, 0.5, (n_rdms, truth.size))
    print(f"\n[compare tau-a: 5 continuous models vs {n_rdms} RDMs of {n_cond} conditions]")
    tau_row("tau-a, continuous models", models, data, rsatoolbox.rdm.RDMs(data), repeats)


def bootstrap_case(repeats: int, rng: np.random.Generator) -> None:
    from rsatoolbox.inference import eval_bootstrap_pattern
    from rsatoolbox.model import ModelFixed

    from rnnprobe.analysis.inference import bootstrap_conditions

    n_cond, n_boot = 92, 100
    truth = rng.random(n_cond * (n_cond - 1) // 2)
    data = truth + rng.normal(0, 0.5, size=(10, truth.size))
    models = np.stack([truth + rng.normal(0, s, truth.size) for s in (0.2, 0.5, 1, 2, 4)])
    rsa_models = [ModelFixed(f"m{i}", rsatoolbox.rdm.RDMs(m[None])) for i, m in enumerate(models)]
    rsa_data = rsatoolbox.rdm.RDMs(data)
    print(f"\n[eval_bootstrap_pattern: 5 fixed models, 10 data RDMs, {n_cond} conditions, {n_boot} bootstraps]")
    for method in ("corr", "rho-a"):
        state = np.random.RandomState(11)  # rsatoolbox draws from numpy's global RNG: replay its draws
        draws = np.stack([state.randint(0, n_cond, size=n_cond) for _ in range(n_boot)])

        def theirs_run(m=method):
            np.random.seed(11)  # noqa: NPY002
            return eval_bootstrap_pattern(rsa_models, rsa_data, method=m, N=n_boot)

        theirs, ref = median_time(theirs_run, repeats)
        ours, res = median_time(
            lambda m=method, d=draws: bootstrap_conditions(models, data, comparison=m, indices=d), repeats
        )
        np.testing.assert_allclose(res.evaluations, ref.evaluations, rtol=1e-6, atol=1e-9)
        row(method, ours, theirs, case=f"eval_bootstrap_pattern {method}")
    categorical_bootstrap_case(repeats, rng, n_cond)


def categorical_bootstrap_case(repeats: int, rng: np.random.Generator, n_cond: int, n_boot: int = 20) -> None:
    """eval_bootstrap_pattern under tau-a of 5 categorical models (random partitions into four groups)."""
    from rsatoolbox.inference import eval_bootstrap_pattern
    from rsatoolbox.model import ModelFixed

    from rnnprobe.analysis.inference import bootstrap_conditions

    models = categorical_rdms(rng.integers(0, 4, (5, n_cond)))
    data = models[0] + rng.normal(0, 2, (10, models.shape[1]))
    rsa_models = [ModelFixed(f"m{i}", rsatoolbox.rdm.RDMs(m[None])) for i, m in enumerate(models)]
    rsa_data = rsatoolbox.rdm.RDMs(data)
    state = np.random.RandomState(11)
    draws = np.stack([state.randint(0, n_cond, size=n_cond) for _ in range(n_boot)])

    def theirs_run():
        np.random.seed(11)  # noqa: NPY002
        return eval_bootstrap_pattern(rsa_models, rsa_data, method="tau-a", N=n_boot)

    print(f"\n[eval_bootstrap_pattern, tau-a: 5 categorical models, 10 data RDMs, {n_cond} conditions, {n_boot} "
          f"bootstraps]")  # fmt: skip
    theirs, ref = median_time(theirs_run, repeats)
    ours, res = median_time(lambda: bootstrap_conditions(models, data, comparison="tau-a", indices=draws), repeats)
    np.testing.assert_allclose(res.evaluations, ref.evaluations, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(res.noise_ceiling, ref.noise_ceiling, rtol=1e-12, atol=1e-15)
    row("tau-a, categorical models", ours, theirs, case="eval_bootstrap_pattern tau-a, categorical models")


def blt_case(repeats: int, n_stimuli: int) -> None:
    import rnnprobe

    model = rnnprobe.models.load("occluded-blt")
    task = rnnprobe.models.task_from_checkpoint(model)
    data = task.sample(n_stimuli, split="test")
    rec = rnnprobe.record(model, data.x, metadata=data.metadata, progress=False)
    print(f"\n[time-resolved: shipped BLT, {n_stimuli} occluded test digits, every layer x every step]")
    total_ours = total_theirs = 0.0
    for layer in rec.layers:
        tds = rec.to_rsatoolbox(layer)
        theirs, ref = median_time(lambda t=tds: rsatoolbox.rdm.calc_rdm_movie(t, method="correlation"), repeats)
        ours, res = median_time(lambda name=layer: compute_rdms(rec, name, distance="correlation"), repeats)
        np.testing.assert_allclose(res.dissimilarities, ref.get_vectors(), rtol=1e-6, atol=1e-8)
        total_ours, total_theirs = total_ours + ours, total_theirs + theirs
        units = int(np.prod(rec.unit_shape(layer)))
        row(f"{layer} ({units} units x {rec.shapes[layer][1]} steps)", ours, theirs, case=f"time-resolved BLT, {layer}")
    row("all layers", total_ours, total_theirs, case="time-resolved BLT, all layers")


if __name__ == "__main__":
    main()

"""Every ``device=`` path of rnnprobe on a GPU against the CPU results, with timings (issue 20, goal 5).

Run on a machine with CUDA:   OMP_NUM_THREADS=1 python scripts/gpu_check.py       (2-3 minutes, mostly the CPU side)
Smoke test without a GPU:     OMP_NUM_THREADS=1 python scripts/gpu_check.py --device cpu --small

For each path the same call runs on the CPU (rnnprobe's default: numpy, or torch on the CPU for
``record``) and on ``--device``; the results are compared with the tolerance printed beside them, then
both are timed (after one warm-up; the median of ``--repeats`` calls). Paths: record (a BLT-style convnet),
compute_rdms (correlation and euclidean, float64 and float32; crossnobis), decode (ridge and logistic over time,
with generalization; ridge with 100 permutations of a wide layer), fit_pca, fit_encoding (ridge, dual and primal),
compare_representations and pairwise_distances (alignment metrics: in sample and held out, layers narrower and wider
than the stimuli), find_fixed_points (the shipped 64-unit flip-flop GRU), train (a GRU moved to the device),
readout_over_time (speed_accuracy's readouts of a BLT moved to the device). Exits with status 1 when a comparison
fails.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import numpy as np
import torch
from _machine import print_machine

import rnnprobe
from rnnprobe import Recording
from rnnprobe.analysis import (
    compare_representations,
    compute_rdms,
    decode,
    find_fixed_points,
    fit_encoding,
    fit_pca,
    pairwise_distances,
    readout_over_time,
)

REPEATS = [1]  # timed calls after the warm-up (--repeats)
ONLY = [""]  # run only the paths whose name contains this (--only)


def timed(fn, device: str) -> tuple[float, object]:
    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    out = fn()  # warm-up (kernels, allocator)
    sync()
    times = []
    for _ in range(REPEATS[0]):
        t0 = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def check(name: str, cpu, dev, device: str, compare, tolerance: str) -> bool | None:
    if ONLY[0] not in name:
        return None
    (t_cpu, a), (t_dev, b) = timed(cpu, "cpu"), timed(dev, device)
    ok, detail = compare(a, b)
    print(f"  {name:44s} cpu {t_cpu * 1e3:9.1f} ms  {device} {t_dev * 1e3:9.1f} ms  x{t_cpu / t_dev:6.2f}  "
          f"{'equal' if ok else 'DIFFERENT'} ({detail}; tolerance {tolerance})", flush=True)  # fmt: skip
    return ok


def max_abs(a: np.ndarray, b: np.ndarray, tol: float) -> tuple[bool, str]:
    diff = float(np.nanmax(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))))
    return diff <= tol, f"max |diff| {diff:.2e}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--small", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--repeats", type=int, default=1, help="timed calls per path after a warm-up (median)")
    parser.add_argument("--only", default="", help="run only the paths whose name contains this")
    args = parser.parse_args()
    REPEATS[0], ONLY[0] = args.repeats, args.only
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: run on a GPU machine, or pass --device cpu for a smoke test")
        return 2
    torch.set_num_threads(1)
    print_machine()
    if device.startswith("cuda"):
        print(f"  GPU: {torch.cuda.get_device_name(device)}")
        # torch runs float32 convolutions in TF32 by default on Ampere and later (about 1e-3 relative
        # error): the record path is compared in full float32, and TF32's difference is printed beside it
        print(
            f"  torch defaults: cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}, "
            f"cuda.matmul.allow_tf32={torch.backends.cuda.matmul.allow_tf32}; both set False for the checks"
        )
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    n = 200 if args.small else 2000
    rng = np.random.default_rng(0)
    results = []

    torch.manual_seed(0)
    from rnnprobe.models import BLT

    model = BLT("BLT", image_size=32, maps=32, steps=4)
    images = torch.rand(n, 1, 32, 32)
    results.append(check(
        f"record BLT (32 maps, 32 x 32, 4 steps), {n} images",
        lambda: rnnprobe.record(model, images, batch_size=100, progress=False).get("layer1"),
        lambda: rnnprobe.record(model, images, batch_size=100, device=device, progress=False).get("layer1"),
        device, lambda a, b: max_abs(a, b, 1e-4), "1e-4 (float32 convolutions)",
    ))  # fmt: skip
    on_device = copy.deepcopy(model).to(device)  # speed_accuracy runs the model where it is
    results.append(check(
        f"readout_over_time BLT (speed_accuracy's readouts), {n} images",
        lambda: readout_over_time(model, images), lambda: readout_over_time(on_device, images),
        device, lambda a, b: max_abs(a, b, 1e-4), "1e-4 (float32 convolutions)",
    ))  # fmt: skip
    if device.startswith("cuda") and ONLY[0] in "record BLT":
        torch.backends.cudnn.allow_tf32 = True
        cpu, dev = (
            rnnprobe.record(model, images[:200], device=d, progress=False).get("layer1") for d in (None, device)
        )
        print(f"  (not a check) record BLT with torch's default TF32 convolutions, 200 images: "
              f"{max_abs(cpu, dev, np.inf)[1]}")  # fmt: skip
        torch.backends.cudnn.allow_tf32 = False

    units = 1024 if args.small else 4096
    rec = Recording({"h": rng.normal(size=(n, 8, units))}, metadata={"label": rng.integers(0, 10, n)})
    for distance in ("correlation", "euclidean"):
        for dtype, tol in (("float64", 1e-10), ("float32", 1e-4)):
            results.append(check(
                f"compute_rdms {distance} {dtype}, {n} x 8 x {units}",
                lambda d=distance, t=dtype: compute_rdms(rec, distance=d, dtype=t).dissimilarities,
                lambda d=distance, t=dtype: compute_rdms(rec, distance=d, dtype=t, device=device).dissimilarities,
                device, lambda a, b, tol=tol: max_abs(a, b, tol), f"{tol:g}",
            ))  # fmt: skip

    runs = Recording({"h": rng.normal(size=(4 * 92, 8, 512))},
                     metadata={"image": np.tile(np.arange(92), 4), "run": np.repeat(np.arange(4), 92)})  # fmt: skip
    results.append(check(
        "compute_rdms crossnobis float64, 4 runs x 92 x 8 x 512",
        lambda: compute_rdms(runs, distance="crossnobis", descriptor="image", cv_descriptor="run").dissimilarities,
        lambda: compute_rdms(runs, distance="crossnobis", descriptor="image", cv_descriptor="run",
                             device=device).dissimilarities,
        device, lambda a, b: max_abs(a, b, 1e-10), "1e-10",
    ))  # fmt: skip

    n_decode = min(n, 600)  # the CPU's logistic fits dominate the script's time
    label = rng.integers(0, 4, n_decode)
    states = rng.normal(size=(n_decode, 10, 512))
    states[:, 5:] += label[:, None, None] * 0.3
    dec = Recording({"h": states}, metadata={"label": label})
    for estimator in ("ridge", "logistic"):
        for generalize in (False, True):
            results.append(check(
                f"decode {estimator}{' generalize' if generalize else ''}, {n_decode} x 10 x 512",
                lambda e=estimator, g=generalize: decode(dec, "h", "label", estimator=e, generalize=g,
                                                         progress=False).scores,
                lambda e=estimator, g=generalize: decode(dec, "h", "label", estimator=e, generalize=g, device=device,
                                                         progress=False).scores,
                device, lambda a, b: max_abs(a, b, 0.01),
                "0.01 accuracy" + (" (iterative fits)" if estimator == "logistic" else ""),
            ))  # fmt: skip

    wide_label = rng.integers(0, 10, 300)  # more units than training stimuli: the kernel matrices' route
    wide = Recording({"h": rng.normal(size=(300, 4, 2048)) + 0.2 * wide_label[:, None, None] * rng.normal(size=2048)},
                     metadata={"label": wide_label})  # fmt: skip
    results.append(check(
        "decode ridge, 100 permutations, 300 x 4 x 2048, 10 classes",
        lambda: decode(wide, "h", "label", n_permutations=100, progress=False).null,
        lambda: decode(wide, "h", "label", n_permutations=100, device=device, progress=False).null,
        device, lambda a, b: max_abs(a, b, 0.01), "0.01 accuracy",
    ))  # fmt: skip

    # a full SVD of (stimuli x steps) x units: 4096 units would take a minute per call on one CPU core
    pca = Recording({"h": rec["h"][..., :1024]})
    results.append(check(
        f"fit_pca, {n} x 8 x 1024",
        lambda: np.abs(fit_pca(pca, n_components=10).explained_variance_ratio),
        lambda: np.abs(fit_pca(pca, n_components=10, device=device).explained_variance_ratio),
        device, lambda a, b: max_abs(a, b, 1e-8), "1e-8",
    ))  # fmt: skip

    n_targets = 200 if args.small else 1000
    for units in (2048, 256):  # more units than training stimuli (dual form), then fewer (primal)
        features = rng.normal(size=(n, 3, units))
        targets = features[:, 1, :64] @ rng.normal(size=(64, n_targets)) + rng.normal(size=(n, n_targets))
        results.append(check(
            f"fit_encoding ridge, {n} x 3 x {units} -> {n_targets} targets",
            lambda f=features, t=targets: fit_encoding(f, t, ceiling=False).r2["features"],
            lambda f=features, t=targets: fit_encoding(f, t, ceiling=False, device=device).r2["features"],
            device, lambda a, b: max_abs(a, b, 1e-6), "1e-6 of R^2 (a target's penalties whose leave-one-out errors "
            "tie to rounding, all far below the kernel's eigenvalues, may be chosen differently: 1e-8 here)",
        ))  # fmt: skip

    alignment_checks(rng, n, device, results)

    gru = rnnprobe.models.load("flipflop-gru64")
    n_initial = 256 if args.small else 1024
    trials = rnnprobe.models.task_from_checkpoint(gru).sample(100, split="test", index=0)
    trajectories = rnnprobe.record(gru, trials.x, layers=["l0.h"], progress=False)
    search = dict(initial_states=trajectories, layer="l0.h", n_initial=n_initial, seed=0, progress=False)

    def count(result) -> tuple[int, int]:
        return len(result), int(result.stable.sum())

    results.append(check(
        f"find_fixed_points flip-flop GRU64, {n_initial} starts",
        lambda: count(find_fixed_points(gru, **search)),
        lambda: count(find_fixed_points(gru, device=device, **search)),
        device, lambda a, b: (a == b, f"(fixed points, stable) cpu {a}, {device} {b}"), "the same counts",
    ))  # fmt: skip
    training_check(device, results, small=args.small)
    results = [ok for ok in results if ok is not None]
    print(f"{sum(results)} of {len(results)} paths equal")
    return 0 if all(results) else 1


def training_check(device: str, results: list, *, small: bool) -> None:
    """`train` of a model moved to the device (torch's fused GRU: cuDNN there), against the same start on the CPU:
    the weights after the steps, float32 throughout (TF32 off, as for every check).
    """
    steps = 20 if small else 50
    torch.manual_seed(0)
    start = rnnprobe.models.GRU(3, 64, 3).state_dict()
    task = rnnprobe.tasks.FlipFlop(3, n_steps=100)

    def trained(where: str) -> np.ndarray:
        model = rnnprobe.models.GRU(3, 64, 3).to(where)
        model.load_state_dict(start)
        rnnprobe.train(model, task, steps=steps, batch_size=64, eval_size=64, progress=False)
        return torch.cat([p.detach().flatten().cpu() for p in model.parameters()]).numpy()

    results.append(check(
        f"train GRU-64, flip-flop, {steps} steps of 64 x 100",
        lambda: trained("cpu"), lambda: trained(device),
        device, lambda a, b: max_abs(a, b, 1e-5), "1e-5 of the weights (float32 vs float64: 2e-7 here)",
    ))  # fmt: skip


def alignment_checks(rng: np.random.Generator, n: int, device: str, results: list) -> None:
    """compare_representations over time (a narrow layer in sample, a wide one held out) and pairwise_distances."""
    narrow = rng.normal(size=(n, 6, 256))
    other = np.tanh(narrow[:, ::-1, :128] @ rng.normal(size=(128, 200))) + rng.normal(size=(n, 6, 200))
    m = min(n, 1000)  # held out, a wide layer's folds are eigendecomposed at each step: m x m on the CPU
    wide = np.maximum(narrow[:m, :4] @ rng.normal(size=(256, 2048)), 0)
    cases = [
        (f"compare_representations cca, {n} x 6 x 256 vs {n} x 6 x 200", narrow, other, dict(metric="cca")),
        (f"compare_representations shape alpha=0.5 cv=3, {m} x 4 x 256 vs {m} x 4 x 2048", narrow[:m, :4], wide,
         dict(metric="shape", alpha=0.5, cv=3)),
        (f"compare_representations debiased_cka, {m} x 4 x 2048 vs itself", wide, wide, dict(metric="debiased_cka")),
    ]  # fmt: skip
    for name, a, b, kwargs in cases:
        results.append(check(
            name,
            lambda a=a, b=b, k=kwargs: compare_representations(a, b, **k).values,
            lambda a=a, b=b, k=kwargs: compare_representations(a, b, device=device, **k).values,
            device, lambda x, y: max_abs(x, y, 1e-8), "1e-8 (eigen- and singular value solvers differ)",
        ))  # fmt: skip
    nets = {f"net {i}": narrow[:, i] for i in range(6)}
    results.append(check(
        f"pairwise_distances svcca, 6 representations of {n} x 256",
        lambda: pairwise_distances(nets, metric="svcca").distances,
        lambda: pairwise_distances(nets, metric="svcca", device=device).distances,
        device, lambda x, y: max_abs(x, y, 1e-8), "1e-8",
    ))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())

"""The cost of recurrence and the causal tests of issue 19, at full size, and the overhead of interventions.

Run:  OMP_NUM_THREADS=1 python benchmarks/cost_of_recurrence.py [--quick]

1. Speed-accuracy of the shipped BLT family on 2000 held-out occluded digits (normalised-entropy
   stopping, FLOPs by torch's FlopCounterMode), the compute-matched table with 2000 bootstrap samples,
   and the correlation of BL's and BLT's solution times with occlusion.
2. Virtual cooling of BLT's lateral and top-down connections from the second step on, on 1000 digits,
   against 99 removals of as many random connections (accuracy, RDM correlation with the intact model).
3. The energy-efficient RNN's prediction units silenced against 999 sets of as many random units.
4. Overhead: the same forward passes plain, under a unit intervention (a hook) and under a lesion
   (parameter swaps at step boundaries), alternated, median of repeats. The anchor's figure is from its
   documentation (TorchLens records with over 10x overhead), not measured here: it is not installable
   beside this project's torch.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
import torch
from _machine import median_time, print_machine

import rnnprobe
from rnnprobe.analysis import compute_matched, intervention_effect, speed_accuracy
from rnnprobe.models import input_prediction, prediction_units
from rnnprobe.recording import Intervention, Lesion, intervene, random_like

NAMES = {"B": "occluded-b", "B-K": "occluded-bk", "B-F": "occluded-bf", "BL": "occluded-bl", "BLT": "occluded-blt"}


def speed(n: int, n_bootstrap: int) -> dict:
    models = {short: rnnprobe.models.load(name) for short, name in NAMES.items()}
    data = rnnprobe.models.task_from_checkpoint(models["BLT"]).sample(n, split="test", index=0)
    curves = {short: speed_accuracy(model, data.x, data.y, name=short) for short, model in models.items()}
    print(f"\n1. speed-accuracy on {n} held-out occluded digits (entropy stopping)")
    for short, curve in curves.items():
        s = curve.summary()
        print(f"  {short:4s} accuracy per step {np.round(curve.accuracy_by_step, 3)}, "
              f"FLOPs per step {np.round(curve.step_flops / 1e6, 3)} M, best {s['best_accuracy']:.3f} "
              f"at {s['mean_flops_at_best'] / 1e6:.3f} M mean FLOPs")  # fmt: skip
    matched = compute_matched(curves, n_bootstrap=n_bootstrap, seed=0)
    table = matched.table()
    print(table[table.model != table.at_compute_of].round(4).to_string(index=False))
    for short in ("BL", "BLT"):
        rt = curves[short].solution_time_correlation(data.metadata["occlusion"], n_bootstrap=n_bootstrap, seed=0)
        print(f"  {short} solution time vs occlusion: Spearman rho {rt['rho']:.3f} "
              f"[{rt['ci_low']:.3f}, {rt['ci_high']:.3f}], {rt['unsolved']} of {n} never solved")  # fmt: skip
    return models


def cooling(blt: torch.nn.Module, n: int, n_controls: int, n_bootstrap: int) -> None:
    data = rnnprobe.models.task_from_checkpoint(blt).sample(n, split="test", index=1)
    print(f"\n2. cooling BLT from the second step on, {n} digits, {n_controls} random-connection controls")
    for connection in ("lateral", "top-down"):
        change = Lesion.cool(connection, from_step=1)
        controls = random_like(change, blt, data.x[:1], n_draws=n_controls, seed=0)
        began = time.perf_counter()
        r = intervention_effect(blt, data.x, change, labels=data.y, controls=controls, layers=["layer0", "layer1"],
                                n_bootstrap=n_bootstrap, seed=0)  # fmt: skip
        took, peak = time.perf_counter() - began, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  {connection}: intervention_effect {took:.1f} s (the process's peak memory so far {peak:.0f} MiB)")
        print(f"  {connection}: accuracy intact {np.round(r.intact.mean(0), 3)}, change {np.round(r.effect, 3)}")
        print(f"    95% CI low {np.round(r.ci_low, 3)} high {np.round(r.ci_high, 3)}")
        print(f"    random controls' change {np.round(r.control_effects.mean(0), 3)}, p {np.round(r.p_values, 3)}")
        for layer in ("layer0", "layer1"):
            controls_r = np.round(r.control_rdm_similarity[layer].mean(0), 3)
            low, p = np.round(r.rdm_ci[layer][0], 3), np.round(r.rdm_p_values[layer], 3)
            print(f"    {layer} RDM r with intact {np.round(r.rdm_similarity[layer], 3)} (CI low {low}), "
                  f"controls {controls_r}, p {p}")  # fmt: skip


def energy(n: int, n_controls: int, n_bootstrap: int) -> None:
    model = rnnprobe.models.load("energy-efficient")
    data = rnnprobe.models.task_from_checkpoint(model).sample(n, split="test", index=0)
    a_last = rnnprobe.record(model, data.x, layers=["a"], progress=False).get("a")[:, -1]
    units = np.unique(np.concatenate(list(prediction_units(a_last, data.metadata["last"]).values())))
    silence = Intervention.zero("h", units=units)
    controls = random_like(silence, model, data.x[:1], n_draws=n_controls, seed=0)
    print(f"\n3. energy-efficient RNN: {units.size} prediction units of 64 silenced, {n_controls} random sets, "
          f"{n} sequences")  # fmt: skip

    def predicted(preactivations, inputs):
        return input_prediction(preactivations, inputs)

    for score in ("mean_abs_output", predicted):
        r = intervention_effect(model, data.x, silence, score=score, controls=controls, n_bootstrap=n_bootstrap)
        print(f"  {r.score_name}: intact {r.intact[:, 1:].mean():.4f}, silenced {r.changed[:, 1:].mean():.4f}; "
              f"last step change {r.effect[-1]:+.4f} [{r.ci_low[-1]:+.4f}, {r.ci_high[-1]:+.4f}], random sets "
              f"{r.control_effects[:, -1].mean():+.4f} (2.5-97.5%: {np.percentile(r.control_effects[:, -1], 2.5):+.4f}"
              f" .. {np.percentile(r.control_effects[:, -1], 97.5):+.4f}), p {r.p_values[-1]:.4f}")  # fmt: skip


def overhead(blt: torch.nn.Module, repeats: int) -> None:
    x = rnnprobe.models.task_from_checkpoint(blt).sample(256, split="test", index=2).x
    unit = Intervention.zero("layer1", units=np.arange(0, 1024, 2), steps=[1, 2, 3])
    lesion = Lesion.cool("lateral", from_step=1)

    def plain():
        with torch.no_grad():
            return blt(x)

    def under(change):
        def run():
            with intervene(blt, change), torch.no_grad():
                return blt(x)

        return run

    times = {"plain": [], "unit": [], "lesion": []}
    for fn in (plain, under(unit), under(lesion)):  # warm-up
        fn()
    for _ in range(repeats):  # alternated, so that drifts of the machine hit all three alike
        for name, fn in (("plain", plain), ("unit", under(unit)), ("lesion", under(lesion))):
            times[name].append(median_time(fn, 1)[0])
    base = np.median(times["plain"])
    print(f"\n4. overhead, BLT on 256 digits, median of {repeats}: plain {base * 1e3:.1f} ms")
    for name in ("unit", "lesion"):
        print(f"  {name}: {np.median(times[name]) * 1e3:.1f} ms, x{np.median(times[name]) / base:.3f} of plain")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer stimuli, controls and bootstrap samples")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print_machine()
    start = time.perf_counter()
    quick = args.quick
    models = speed(500 if quick else 2000, 200 if quick else 2000)
    cooling(models["BLT"], 300 if quick else 1000, 9 if quick else 99, 200 if quick else 2000)
    energy(300 if quick else 1000, 19 if quick else 999, 200 if quick else 2000)
    overhead(models["BLT"], 5 if quick else 21)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()

# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Is recurrence required, and is it worth its compute? Interventions and the cost of recurrence
#
# Two claims about recurrent vision models, tested on the shipped BLT family (Spoerer et al. 2017: B
# feedforward, B-K and B-F parameter-matched feedforward controls, BL with lateral and BLT with lateral
# and top-down recurrence, all trained on occluded digits):
#
# 1. "Spending computation on recurrence is worth it" (Spoerer et al. 2020): a recurrent network that
#    stops when its readout is confident is compared with the feedforward controls at equal mean
#    compute (FLOPs counted by torch), and its stopping times behave like reaction times (longer for
#    heavier occlusion).
# 2. "Recurrence is required" (Kietzmann et al. 2019): virtually cooling BLT's lateral or top-down
#    connections from the second step on, against cooling as many random connections.
#
# A third: the energy-efficient RNN's prediction units (Ali et al. 2022) are lesioned against as many
# random units. Every number below is computed here; the docs page "Interventions and the cost of
# recurrence" has the larger runs of benchmarks/cost_of_recurrence.py.

# %%
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

torch.set_num_threads(1)

import rnnprobe
from rnnprobe.analysis import compare_rdms, compute_matched, compute_rdms, intervention_effect, speed_accuracy
from rnnprobe.models import input_prediction, prediction_units
from rnnprobe.recording import Intervention, Lesion, random_like

# %% [markdown]
# ## Accuracy against compute
#
# `speed_accuracy` runs a model with a readout at every step, counts the FLOPs of every step, and stops
# each stimulus at the first step whose readout's normalised entropy falls below a threshold; sweeping
# the threshold traces accuracy against mean FLOPs.

# %%
names = {"B": "occluded-b", "B-K": "occluded-bk", "B-F": "occluded-bf", "BL": "occluded-bl", "BLT": "occluded-blt"}
models = {short: rnnprobe.models.load(name) for short, name in names.items()}
data = rnnprobe.models.task_from_checkpoint(models["BLT"]).sample(1000, split="test", index=0)
curves = {short: speed_accuracy(model, data.x, data.y, name=short) for short, model in models.items()}
for short, curve in curves.items():
    s = curve.summary()
    best = f"best {s['best_accuracy']:.3f} at {s['mean_flops_at_best'] / 1e6:.2f} M"
    cost = f"FLOPs per step {np.round(curve.step_flops / 1e6, 2)} M"
    print(f"{short:4s} accuracy per step {np.round(curve.accuracy_by_step, 3)}  {cost}  {best}")

# %%
fig, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
for curve in curves.values():
    curve.draw(ax)
ax.set_xscale("log")
fig.savefig("speed_accuracy.png", dpi=120)

# %% [markdown]
# ## Compute-matched comparison
#
# Each model's cost is the mean FLOPs at which it reaches its best accuracy; `compute_matched` scores
# every model at every other model's cost (its best accuracy with no more compute), with intervals from
# resampling the stimuli. NaN: the model cannot run that cheaply. BL's and BLT's first step costs what
# B's single pass costs (no recurrent input yet, so no recurrent FLOPs), but every later step costs 1.8
# to 2.1 M FLOPs, more than a whole pass of a feedforward control: at the controls' compute, the
# recurrent models stop almost every stimulus at the first step.

# %%
matched = compute_matched(curves, n_bootstrap=500, seed=0)
table = matched.table()
print(table[table.model != table.at_compute_of].round(3).to_string(index=False))
matched.plot().savefig("compute_matched.png", dpi=120)

# %%
best_ff = max(("B", "B-K", "B-F"), key=lambda k: matched.best_accuracy[matched.names.index(k)])
for recurrent in ("BL", "BLT"):
    i, j = matched.names.index(best_ff), matched.names.index(recurrent)
    print(f"{best_ff} at {recurrent}'s compute ({matched.reference_flops[j] / 1e6:.2f} M FLOPs): "
          f"{matched.difference[i, j]:+.3f} [{matched.ci_low[i, j]:+.3f}, {matched.ci_high[i, j]:+.3f}] "
          f"accuracy against {recurrent}")  # fmt: skip
    assert matched.ci_high[i, j] < 0  # more feedforward compute does not buy the recurrent models' accuracy
    k = matched.names.index(recurrent)
    print(f"{recurrent} at {best_ff}'s compute: {matched.accuracy[k, i]:.3f} (its first step only)")

# %% [markdown]
# ## Solution times grow with occlusion
#
# A stimulus's solution time is the first step from which the correct class's probability stays above
# 0.5, comparable with a reaction time. Spearman's correlation with the number of occluding fragments:

# %%
for recurrent in ("BL", "BLT"):
    rt = curves[recurrent].solution_time_correlation(data.metadata["occlusion"], n_bootstrap=500, seed=0)
    print(
        f"{recurrent}: rho = {rt['rho']:.3f} [{rt['ci_low']:.3f}, {rt['ci_high']:.3f}], {rt['unsolved']} never solved"
    )
    assert rt["ci_low"] > 0
curves["BLT"].plot().savefig("blt_solution_times.png", dpi=120)

# %% [markdown]
# ## Virtual cooling of BLT's lateral and top-down connections
#
# `Lesion.cool(connection, from_step=1)` removes a connection type from the second step on without
# touching the weights (they are swapped for zeros while the model runs and put back). Controls remove
# as many connections drawn at random among all of BLT's convolution weights (`random_like`).
# `intervention_effect` reports the accuracy change with a bootstrap interval, its p-value among the
# controls, and how each step's RDM (correlation distance between digit means) correlates with the
# intact model's.

# %%
blt, x, y = models["BLT"], data.x[:500], data.y[:500]
cooling = {}
for connection in ("lateral", "top-down"):
    change = Lesion.cool(connection, from_step=1)
    controls = random_like(change, blt, x[:1], n_draws=19, seed=0)
    cooling[connection] = intervention_effect(blt, x, change, labels=y, controls=controls, layers=["layer1"],
                                              n_bootstrap=500, seed=0)  # fmt: skip
    r = cooling[connection]
    print(f"cooling {connection}: accuracy change per step {np.round(r.effect, 3)}")
    print(f"  95% interval {np.round(r.ci_low, 3)} .. {np.round(r.ci_high, 3)}")
    print(f"  random controls {np.round(r.control_effects.mean(0), 3)}; p {np.round(r.p_values, 3)}")
    print(f"  RDM r with intact, layer1: {np.round(r.rdm_similarity['layer1'], 3)}; controls "
          f"{np.round(r.control_rdm_similarity['layer1'].mean(0), 3)}")  # fmt: skip
    assert r.effect[0] == 0 and r.ci_high[-1] < 0  # steps before the lesion are untouched; after, accuracy falls
    r.plot().savefig(f"cooling_{connection}.png", dpi=120)

# %% [markdown]
# Cooling either kind of recurrence from the second step on collapses BLT's accuracy, while the
# representational geometry of its second layer drifts away from the intact model's step by step. Random
# removal of as many weights is also harmful (the lateral weights are about half the network's), so the
# p-values, whose smallest possible value with 19 controls is 0.1, say how the targeted cooling ranks
# among random ones; the docs page has the run with 99 controls.
#
# ## The same change as a Recording
#
# `record(..., interventions=...)` records the changed model; its provenance says what was changed, and
# every analysis runs on it. RDMs of the cooled and intact model at the last step, compared in one call:

# %%
change = Lesion.cool("lateral", from_step=1)
intact = rnnprobe.record(blt, x, metadata={"label": y.numpy()}, layers=["layer1"], progress=False)
cooled = rnnprobe.record(blt, x, metadata={"label": y.numpy()}, layers=["layer1"], interventions=change, progress=False)
print(cooled.provenance["interventions"])
rdms = [compute_rdms(rec, "layer1", time=[-1], descriptor="label") for rec in (intact, cooled)]
print("RDM correlation, last step:", np.round(compare_rdms(rdms[0], rdms[1], comparison="corr"), 3))

# %% [markdown]
# Unit-level interventions use the same hooks: silence chosen units at chosen steps, replace them by
# their mean over a reference recording, clamp them, add seeded noise, scale them, or remove a subspace.
# Removing the top 5 principal components of layer 1 at every step:

# %%
states = intact.get("layer1", flatten=True).reshape(-1, 16 * 8 * 8)
_, _, vt = np.linalg.svd(states - states.mean(0), full_matrices=False)
projected = intervention_effect(blt, x, Intervention.project_out("layer1", vt[:5]), labels=y, n_bootstrap=500)
print("accuracy change without the top 5 PCs of layer1:", np.round(projected.effect, 3))

# %% [markdown]
# ## The energy-efficient RNN's prediction units
#
# Ali et al. (2022): a network trained to minimise its preactivation on digit sequences learns to
# predict the next digit; prediction units carry the class-specific prediction. Silencing them (their
# h at every step) against silencing as many random units (99 draws), on two scores: the mean |a_t|
# and the fraction of the input predicted by the recurrent drive (`input_prediction`).

# %%
energy = rnnprobe.models.load("energy-efficient")
sequences = rnnprobe.models.task_from_checkpoint(energy).sample(1000, split="test", index=0)
a_last = rnnprobe.record(energy, sequences.x, layers=["a"], progress=False).get("a")[:, -1]
units = np.unique(np.concatenate(list(prediction_units(a_last, sequences.metadata["last"]).values())))
silence = Intervention.zero("h", units=units)
controls = random_like(silence, energy, sequences.x[:1], n_draws=99, seed=0)
print(f"{units.size} prediction units of 64")


def predicted(preactivations, inputs):
    return input_prediction(preactivations, inputs)


for score in ("mean_abs_output", predicted):
    r = intervention_effect(energy, sequences.x, silence, score=score, controls=controls, n_bootstrap=500)
    print(f"{r.score_name}: intact {r.intact[:, 1:].mean():.3f}, silenced {r.changed[:, 1:].mean():.3f}, "
          f"change at the last step {r.effect[-1]:+.3f} [{r.ci_low[-1]:+.3f}, {r.ci_high[-1]:+.3f}], random units "
          f"{r.control_effects[:, -1].mean():+.3f}, p = {r.p_values[-1]:.3f}")  # fmt: skip

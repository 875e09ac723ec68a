# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Macaque IT as neural data: ceilings, decoding over time, position invariance, RDMs
#
# Zhang et al. (2011) recorded 132 neurons in macaque inferior temporal cortex (IT), one after another,
# while a monkey saw 7 objects at 3 positions, about 20 times each. Meyers et al. decoded object identity
# from pseudo-populations of these neurons and found it (a) rises about 100 ms after image onset and (b)
# transfers across positions: a decoder trained at one position reads the object at the others. This
# tutorial reproduces both with rnnprobe, treating the neurons exactly like a model's units: a Recording
# of (trial, time bin, neuron), with noise ceilings from the repetitions and RDMs per time bin.
#
# The rasters are read from `shared/data/zhang_desimone2011_it_7objects` beside the working folder or a
# parent (set `RNNPROBE_DATA` to the folder holding it to read it from elsewhere).

# %%
import os
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib
import numpy as np

matplotlib.use("Agg")

from rnnprobe.analysis import compute_rdms, decode, fit_encoding, split_half_reliability
from rnnprobe.neural import load_zhang_desimone
from rnnprobe.report import Report

# %% [markdown]
# ## A pseudo-population
#
# `load_zhang_desimone` counts spikes in 50 ms bins from 100 ms before to 500 ms after image onset and
# matches trials across neurons at random within each condition (object x position), with a seed: the
# neurons were not recorded together, so trial k of one neuron and trial k of another are independent.

# %%
it = load_zhang_desimone(bin_ms=50, start_ms=-100, stop_ms=500, seed=0)
print(it)
times = it.times["IT"]  # bin starts in ms from image onset

# %% [markdown]
# ## Noise ceilings per neuron
#
# How reliable is each neuron's object tuning? Averaging its rate from 100 to 400 ms, grouping trials by
# object (all positions: 57 trials per object), and correlating the object means of random half-splits
# of the trials, corrected by Spearman-Brown to all trials, gives its split-half reliability; its square
# root is the ceiling on how well any model could correlate with that neuron's tuning.

# %%
window = (times >= 100) & (times < 400)
objects = it.column("object")
order = np.argsort(objects, kind="stable")
per_object = np.unique(objects, return_counts=True)[1][0]
tuning = it.get("IT")[order][:, window].mean(axis=1).reshape(7, per_object, -1)  # object x trial x neuron
ceiling = split_half_reliability(tuning, n_splits=100, seed=0)
print(ceiling.summary())
print(f"median split-half r (uncorrected): {np.median(ceiling.split_half):.2f}")
assert 0.7 < np.median(ceiling.split_half) < 0.95  # DATA.md: about 0.85 for 7-object tuning, 100-400 ms

# %% [markdown]
# ## Object identity over time
#
# A ridge classifier (penalty 100: rates are in spikes/s) decodes the object from the 132 neurons at each
# time bin (5-fold, stratified): chance is 1/7 before onset, and the code appears roughly 100 ms after it.

# %%
decoding = decode(it, "IT", "object", cv=5, alpha=100.0, seed=0, progress=False)
print(decoding.summary())
before, after = decoding.scores[times < 50].max(), decoding.scores[(times >= 100) & (times < 300)].mean()
print(f"accuracy before 50 ms: at most {before:.2f}; 100-300 ms: {after:.2f} (chance {1 / 7:.2f})")
assert before < 0.3 and after > 0.5

# %% [markdown]
# ## Position invariance
#
# Train at one position, test at the other two (`decode(..., test=...)`): Meyers' invariance test. The
# decoder never saw the objects at the test positions.

# %%
positions = np.unique(it.column("position"))
invariance = {}
for position in positions:
    train = it.select(stimuli=it.column("position") == position)
    test = it.select(stimuli=it.column("position") != position)
    invariance[position] = decode(train, "IT", "object", test=test, alpha=100.0, progress=False)
    late = invariance[position].scores[(times >= 100) & (times < 300)].mean()
    print(f"trained at {position:6s}, tested at the others: {late:.2f} accuracy, 100-300 ms")
    assert late > 2 / 7  # well above chance at untrained positions

# %% [markdown]
# ## RDMs per time bin
#
# 21 x 21 RDMs (object x position conditions, trials averaged) at every bin: after onset, the same
# object at different positions is closer than different objects.

# %%
rdms = compute_rdms(it, "IT", descriptor="condition", distance="correlation")
matrices = rdms.matrices()
conditions = rdms.conditions["condition"]
same_object = np.equal.outer([c.split("_")[0] for c in conditions], [c.split("_")[0] for c in conditions])
off_diagonal = ~np.eye(len(conditions), dtype=bool)
late_bin = int(np.argmin(np.abs(times - 150)))
within = matrices[late_bin][same_object & off_diagonal].mean()
between = matrices[late_bin][~same_object].mean()
print(f"150 ms: same object, other position {within:.2f}; different objects {between:.2f}")
assert within < between

# %% [markdown]
# ## The neurons as an encoding target
#
# The same data are targets for encoding models: here a toy "model" (the object identity as one-hot
# features) predicts each neuron's mean rate per condition. Ceiled scores tell how much of each neuron's
# reliable tuning an object-identity code explains.

# %%
conditions_sorted = np.unique(it.column("condition"))
identity = np.array([[c.split("_")[0] == o for o in np.unique(objects)] for c in conditions_sorted], dtype=float)
trials = it.get("IT")[np.argsort(it.column("condition"), kind="stable")]
trials = trials[:, window].mean(axis=1).reshape(21, -1, 1, trials.shape[-1])  # condition x trial x 1 x neuron
encoding = fit_encoding(identity, trials, cv=3, seed=0)
print(f"object identity -> IT: median r {np.nanmedian(encoding.scores['features']):.2f}, "
      f"ceiled {np.nanmedian(encoding.ceiled('features')):.2f}")  # fmt: skip

# %%
report = Report("Macaque IT (Zhang et al. 2011) with rnnprobe")
report.add_result(ceiling, caption="Noise ceilings of the 132 neurons' object tuning (100-400 ms).")
report.add_result(decoding, caption="Object identity decoded over time from the pseudo-population.")
for position, result in invariance.items():
    report.add_result(result, caption=f"Trained at {position}, tested at the other positions.")
print("report:", report.save(Path(tempfile.mkdtemp()) / "macaque_it.html"))

# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Decoding over time and temporal generalization in a recurrent convnet
#
# BLT networks (Spoerer, McClure & Kriegeskorte 2017) reuse their convolutional layers over time
# steps, with lateral (L) and top-down (T) connections feeding each step's maps into the next. Shown
# a digit hidden behind debris, do they recover the digit over time? And is the code stable over time
# (a decoder trained at one step works at the others), or does it change (King & Dehaene 2014)?
# This tutorial answers with the shipped BLT checkpoint, as MNE-Python users would with MEG data.

# %%
import os
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
torch.set_num_threads(1)

import rnnprobe
from rnnprobe.analysis.decoding import decode

# %% [markdown]
# ## Record the network on occluded digits
#
# 600 held-out digits at four occlusion levels (0, 4, 8 and 12 fragments of other digits on top).

# %%
model = rnnprobe.models.load("occluded-blt")
task = rnnprobe.models.task_from_checkpoint(model)
data = task.sample(600, split="test")
rec = rnnprobe.record(model, data.x, metadata=data.metadata, progress=False)
print(rec)

# %% [markdown]
# ## Decoding over time, with a cluster-based permutation test
#
# A ridge classifier (standardised features) cross-validated at every time step of the top layer,
# 5 folds; 200 label permutations with the same folds give the null distribution, and clusters of
# consecutive significant steps are tested as in MNE's `permutation_cluster_1samp_test`.

# %%
result = decode(rec, "layer1", "label", n_permutations=200, seed=0)
print(result)
print(result.summary())
fig = result.plot()

# %% [markdown]
# ## Occlusion: when does the digit become readable?
#
# Decode separately for clean and heavily occluded digits (a Recording's stimuli can be selected by
# query). Each subset has about 150 digits, so these scores are noisier than the pooled ones.

# %%
by_level = {}
for level in (0, 12):
    subset = rec.select(query=f"occlusion == {level}")
    by_level[level] = decode(subset, "layer1", "label", cv=5, seed=0)
    print(f"occlusion {level:2d}: accuracy by step", np.round(by_level[level].scores, 3))

# %% [markdown]
# ## Temporal generalization
#
# Train at every step, test at every step. A square of high accuracy means a stable code; a diagonal
# means the code changes over time.

# %%
generalization = decode(rec, "layer1", "label", generalize=True, seed=0)
print(np.round(generalization.scores, 3))
fig = generalization.plot()

# %% [markdown]
# A check against scikit-learn: the fast path's scores are those of `cross_val_score` with the same
# folds, to rounding.

# %%
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

x = rec.get("layer1", flatten=True)
y = rec.column("label")
cv = StratifiedKFold(5, shuffle=True, random_state=0)
reference = [cross_val_score(make_pipeline(StandardScaler(), RidgeClassifier()), x[:, t], y, cv=cv).mean()
             for t in range(x.shape[1])]  # fmt: skip
print("sklearn:", np.round(reference, 4), " rnnprobe:", np.round(result.scores, 4))
assert np.allclose(reference, result.scores, atol=1e-12)

# %% [markdown]
# ## Cross-decoding: train on clean digits, test on occluded ones
#
# `test=` trains on one recording and tests on another: does the code for clean digits carry over to
# occluded ones, and from which step?

# %%
clean, occluded = rec.select(query="occlusion == 0"), rec.select(query="occlusion >= 8")
transfer = decode(clean, "layer1", "label", test=occluded, generalize=True)
print("train clean -> test occluded (diagonal):", np.round(transfer.diagonal(), 3))
assert transfer.diagonal()[-1] > transfer.diagonal()[0]

# %% [markdown]
# Within each step the code is specific to that step (the generalization matrix is diagonal), but the
# occluded digits' code moves towards the clean digits' over the steps: the recurrent steps complete
# what the debris hides.

# %% [markdown]
# ## Report

# %%
report = rnnprobe.Report("BLT: decoding the digit over time")
report.add_result(result, name="decoding", section="Decoding over time")
report.add_result(generalization, name="generalization", section="Temporal generalization")
report.add_result(transfer, name="clean-to-occluded", section="Cross-decoding")
out = report.save(Path(tempfile.mkdtemp()) / "decoding_blt.html", data=True)
print("report:", out)

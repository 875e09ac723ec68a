# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Which layer of which model aligns with which, over time: CKA, shape metrics and a map of models
#
# The shipped BLT family (Spoerer et al. 2017: B feedforward, BL with lateral, BLT with lateral and
# top-down recurrence) was trained on occluded digits. RDMs compare the models' *geometry* through a
# dissimilarity summary; alignment metrics compare the representations directly: linear CKA
# (Kornblith et al. 2019), the Procrustes shape distance (Williams et al. 2021) and CCA. This tutorial
# compares every time step of one model's layer with every time step of another's, cross-validates the
# fitted metrics, and draws a map of all the layers.

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
from rnnprobe.analysis import compare_representations, pairwise_distances
from rnnprobe.report import Report

# %% [markdown]
# ## Record the three models on the same 300 test digits

# %%
models = {
    name.split("-")[1].upper(): rnnprobe.models.load(name) for name in ("occluded-b", "occluded-bl", "occluded-blt")
}
data = rnnprobe.models.task_from_checkpoint(models["BLT"]).sample(300, split="test")
recordings = {
    name: rnnprobe.record(model, data.x, metadata=data.metadata, progress=False) for name, model in models.items()
}
print(recordings["BLT"])

# %% [markdown]
# ## BLT's second layer over time against BL's
#
# `compare_representations` gives a (BLT time x BL time) matrix. CKA is 1 for representations equal up
# to rotation and isotropic scaling; the diagonal is where the two models are at the same step.

# %%
cka = compare_representations(recordings["BLT"], recordings["BL"], layer="layer1", metric="cka")
print(np.round(cka.values, 2))
print("most aligned (BLT time, BL time, CKA):", cka.best())

# %% [markdown]
# The same question with the Procrustes shape distance (radians: 0 is the same shape), which, unlike
# CKA, is a metric. Alignments fitted to the stimuli overfit wide layers, so the shape distance is also
# computed cross-validated: the rotation is fitted on 4/5 of the digits and the distance measured on the
# other fifth.

# %%
shape = compare_representations(recordings["BLT"], recordings["BL"], layer="layer1", metric="shape")
held_out = compare_representations(recordings["BLT"], recordings["BL"], layer="layer1", metric="shape", cv=5)
print("in sample, diagonal:", np.round(np.diag(shape.values), 3))
print("held out, diagonal: ", np.round(np.diag(held_out.values), 3))
assert (np.diag(held_out.values) >= np.diag(shape.values) - 1e-9).all()  # fitting on the data flatters it

# %% [markdown]
# Debiased CKA corrects the bias of CKA towards 1 when units outnumber stimuli; both agree here on where
# the models align. As a control, the same layer against the digits' shuffled order is near 0.

# %%
debiased = compare_representations(recordings["BLT"], recordings["BL"], layer="layer1", metric="debiased_cka")
shuffled = recordings["BL"].get("layer1")[np.random.default_rng(0).permutation(300)]
control = compare_representations(recordings["BLT"].get("layer1"), shuffled, metric="debiased_cka")
print(f"debiased CKA, last steps: {debiased.values[-1, -1]:.3f}; against shuffled digits: {control.values[-1, -1]:.3f}")
assert abs(control.values[-1, -1]) < 0.1 < debiased.values[-1, -1]

# %% [markdown]
# ## A map of every model's layers
#
# `pairwise_distances` prepares each representation once and compares all pairs; classical MDS of the
# distances places them on a plane. Here the last time step of every layer of every model.

# %%
entries = {f"{name} {layer}": (name, layer) for name in recordings for layer in ("layer0", "layer1")}
distances = pairwise_distances(
    {key: recordings[name] for key, (name, _) in entries.items()},
    layer={key: layer for key, (_, layer) in entries.items()},
    metric="shape",
)
print(np.round(distances.distances, 3))
print(distances.nearest())  # nearest layer of each layer
# the shape distance is a metric: the map's distances obey the triangle inequality
D = distances.distances
assert (D[:, None, :] <= D[:, :, None] + D[None, :, :] + 1e-9).all()
# the feedforward B's first layer is closer to the other models' first layers than to their second ones
i = distances.names.index
for other in ("BL", "BLT"):
    assert D[i("B layer0"), i(f"{other} layer0")] < D[i("B layer0"), i(f"{other} layer1")]

# %%
report = Report("BLT family: alignment over time and a map of models")
report.add_result(cka, caption="Linear CKA between BLT's and BL's second layer at every pair of time steps.")
report.add_result(held_out, caption="Cross-validated Procrustes shape distance, same layers.")
report.add_result(distances, caption="Shape distances between every model's layers (last step), and their map.")
print("report:", report.save(Path(tempfile.mkdtemp()) / "alignment_blt.html"))

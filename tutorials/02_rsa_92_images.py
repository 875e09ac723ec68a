# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # RSA against human and monkey IT: the 92-image set
#
# Kriegeskorte et al. (2008) showed 92 images of faces, bodies, animals, natural and man-made objects
# to humans (fMRI) and monkeys (electrophysiology) and found that inferior temporal cortex (IT) of both
# species groups them the same way: animate vs inanimate first, faces and bodies within. This tutorial
# runs recurrent models on the same 92 images, computes one RDM per layer and time step, and asks how
# close each comes to human IT (with the noise ceiling from 4 subjects) and monkey IT.
#
# The data are read from `shared/data/92imageData` beside the working folder or a parent (set
# `RNNPROBE_DATA` to the folder holding `92imageData` to read it from elsewhere).

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
from rnnprobe import Recording
from rnnprobe.analysis.rsa import compare_rdms, noise_ceiling
from rnnprobe.neural import load_kriegeskorte92

# %% [markdown]
# ## The stimuli and the brain RDMs
#
# The images (175 x 175 RGB) come with their category flags. Human IT: one RDM per subject and session
# (4 x 2); we average each subject's two sessions, so that the noise ceiling is computed over 4
# independent subjects. Monkey IT: one RDM (674 neurons).

# %%
data = load_kriegeskorte92()  # the RDM files as rnnprobe RDMs (rnnprobe.neural)
images = data.images.astype(np.float32) / 255  # (92, 175, 175, 3)
category = data.category
animate = np.array(["inanimate" not in c for c in category])
print(images.shape, dict(zip(*np.unique(category, return_counts=True), strict=True)))

subjects = data.subjects  # each subject's two sessions averaged
monkey_it = data.monkey_it
print(data.sessions, subjects, monkey_it)

# %% [markdown]
# A sanity check against the paper's data description: the two published IT RDMs correlate at r = 0.49
# (rsatoolbox 0.3.2 gives 0.4912).

# %%
r = compare_rdms(data.monkey_it, data.human_it, comparison="corr")[0, 0]
print(f"human IT vs monkey IT: r = {r:.4f}")
assert abs(r - 0.4912) < 1e-3
low, high = noise_ceiling(subjects, comparison="corr")
print(f"human IT noise ceiling (4 subjects, Pearson r): {low:.3f} to {high:.3f}")

# %% [markdown]
# ## Run the models on the 92 images
#
# The shipped BLT-family networks were trained on 16 x 16 occluded digits, so we show them the images at
# their input size, in grey levels. A network that has never seen an object will not be IT; the
# question is how its layers and time steps order themselves, and the pixels give the floor.

# %%
from scipy.ndimage import zoom

grey = images @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # (92, 175, 175)
small = np.clip(zoom(grey, (1, 16 / 175, 16 / 175), order=1), 0, 1).astype(np.float32)
x = torch.from_numpy(1.0 - small[:, None])  # white background -> 0, as the digits' black background

metadata = {"image": np.arange(92), "category": category, "animate": animate}
recordings = {"pixels": Recording({"image": small.reshape(92, 1, -1)}, metadata=metadata)}
for name in ("occluded-b", "occluded-bl", "occluded-blt"):
    model = rnnprobe.models.load(name)
    recordings[name.split("-")[1].upper()] = rnnprobe.record(model, x, metadata=metadata, progress=False)
print(recordings["BLT"])

# %% [markdown]
# ## Compare every layer and time step with human and monkey IT
#
# `compare_models` computes the RDMs (1 - Pearson r, as the paper) of every layer at every step and
# compares each with the brain RDMs (Pearson r of the dissimilarities); with the subjects' RDMs it adds
# the noise ceiling. The same settings for every model.

# %%
result = rnnprobe.compare_models(
    recordings,
    neural={"human IT": None, "monkey IT": monkey_it},  # human IT: the mean of the subjects
    subjects={"human IT": subjects},
    analyses=["rdms", "rsa"],
    progress=False,
)
table = result.table()
for i, model in enumerate(table["model"]):
    print(f"{model:7s} human IT {table['human IT: similarity'][i]:.3f} ({table['human IT: best layer'][i]}, "
          f"t={table['human IT: best time'][i]})   monkey IT {table['monkey IT: similarity'][i]:.3f}")  # fmt: skip

# %% [markdown]
# An independent check of one number: rsatoolbox pools the subjects' RDMs the same way (each
# standardised, then averaged, for a correlation comparison) and compares the best BLT RDM with it to
# the same correlation.

# %%
import rsatoolbox

best = result.best_rsa("human IT", "BLT")
model_rdm = result.rdms["BLT"][best["layer"]]
t = int(np.flatnonzero(model_rdm.rdm_descriptors["time"] == best["model_time"])[0])
pooled = rsatoolbox.util.pooling.pool_rdm(subjects.to_rsatoolbox(), method="corr")
theirs = rsatoolbox.rdm.compare(rsatoolbox.rdm.RDMs(model_rdm.dissimilarities[[t]]), pooled, method="corr")[0, 0]
print(f"BLT {best['layer']} t={best['model_time']}: ours {best['similarity']:.6f}, rsatoolbox {theirs:.6f}")
assert abs(theirs - best["similarity"]) < 1e-9

# %% [markdown]
# ## Where do the models stand?
#
# The ceiling says how well the true model could do given the subjects' noise: far above any of these
# digit networks. The classic model RDMs shipped with the data put the numbers in context (an animacy
# RDM and monkey IT itself are close to the ceiling).

# %%
classics = data.models
human_mean = subjects.dissimilarities.mean(axis=0)
for name, vector in zip(classics.rdm_descriptors["name"], classics.dissimilarities, strict=True):
    print(f"{name:22s} r = {compare_rdms(vector, human_mean)[0, 0]:.3f}")

# %% [markdown]
# ## Report
#
# The RDM and RSA figures side by side, with the summary table, in one HTML file.

# %%
report = result.to_report(title="92 images: recurrent models vs human and monkey IT")
out = report.save(Path(tempfile.mkdtemp()) / "rsa_92_images.html", data=True)
print("report:", out)

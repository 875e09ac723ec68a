# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # The BLT family against 15 subjects' EVC and IT (Cichy et al. 2014)
#
# Cichy, Pantazis & Oliva (2014) measured fMRI responses of 15 people to the 92 images of Kriegeskorte
# et al. (2008) and published one RDM per subject for early visual cortex (EVC) and inferior temporal
# cortex (IT). This tutorial asks which layer and time step of each recurrent model matches each region,
# with leave-one-subject-out noise ceilings: the range where the true model of the region would fall.
#
# Data: `../shared/data/cichy2014_algonauts2019_fmri_rdms` (the RDMs) and `../shared/data/92imageData`
# (the images, in the same order). Set `RNNPROBE_DATA` to a folder holding both to read them elsewhere.

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
from rnnprobe.analysis import compare_rdms, noise_ceiling
from rnnprobe.neural import load_cichy_fmri, load_kriegeskorte92


def find_data() -> Path:
    """The shared data folder: $RNNPROBE_DATA, or shared/data beside a parent folder."""
    if "RNNPROBE_DATA" in os.environ:
        return Path(os.environ["RNNPROBE_DATA"])
    start = Path(globals().get("__file__", Path.cwd())).resolve()
    for folder in [start, *start.parents]:
        if (folder / "shared" / "data" / "cichy2014_algonauts2019_fmri_rdms").is_dir():
            return folder / "shared" / "data"
    raise FileNotFoundError("cichy2014_algonauts2019_fmri_rdms not found: set RNNPROBE_DATA to its parent folder")


DATA = find_data()

# %% [markdown]
# ## The subjects' RDMs and their noise ceilings
#
# The lower bound of the ceiling correlates each subject with the mean of the others (leave one subject
# out); the upper bound with the mean of all. Spearman's rho, as the Algonauts challenge. The data's
# description gives 0.45 for IT's lower bound.

# %%
regions = {
    region: load_cichy_fmri(DATA / "cichy2014_algonauts2019_fmri_rdms", region=region) for region in ("EVC", "IT")
}
for region, rdms in regions.items():
    low, high = noise_ceiling(rdms, comparison="spearman")
    print(f"{region}: {rdms.n_rdms} subjects x {rdms.n_conditions} images; ceiling {low:.3f} to {high:.3f}")
low_it = noise_ceiling(regions["IT"], comparison="spearman")[0]
assert abs(low_it - 0.45) < 0.03
kriegeskorte = load_kriegeskorte92(DATA / "92imageData")
rho = compare_rdms(regions["IT"].dissimilarities.mean(axis=0), kriegeskorte.human_it, comparison="spearman")[0, 0]
print(f"mean IT (15 subjects) vs Kriegeskorte's human IT (4 subjects): rho = {rho:.2f}")  # same images, same order

# %% [markdown]
# ## The models on the 92 images
#
# As in tutorial 2: the shipped B, BL and BLT (trained on 16 x 16 occluded digits) see the images in grey
# levels at their input size; the pixels are a baseline.

# %%
from scipy.ndimage import zoom

grey = kriegeskorte.images.astype(np.float32) / 255 @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
small = np.clip(zoom(grey, (1, 16 / 175, 16 / 175), order=1), 0, 1).astype(np.float32)
x = torch.from_numpy(1.0 - small[:, None])
recordings = {"pixels": Recording({"image": small.reshape(92, 1, -1)})}
for name in ("occluded-b", "occluded-bl", "occluded-blt"):
    recordings[name.split("-")[1].upper()] = rnnprobe.record(rnnprobe.models.load(name), x, progress=False)

# %% [markdown]
# ## Every layer and time step against EVC and IT
#
# `neural=None` with `subjects=` compares each model RDM with the subjects' pooled RDM and adds the
# noise ceiling band. The table gives, per model and region, the best layer and model time step.

# %%
result = rnnprobe.compare_models(
    recordings,
    neural={"EVC": None, "IT": None},
    subjects=regions,
    comparison="spearman",
    analyses=["rdms", "rsa"],
    progress=False,
)
table = result.table()
for i, model in enumerate(table["model"]):
    cells = [f"{r} {table[f'{r}: similarity'][i]:.3f} ({table[f'{r}: best layer'][i]}, t={table[f'{r}: best time'][i]})"
             for r in regions]  # fmt: skip
    print(f"{model:7s} " + "   ".join(cells))
for region, (low, high) in result.noise_ceilings().items():
    best = max(table[f"{region}: similarity"])
    print(f"{region}: best model {best:.3f}, {best / low:.0%} of the lower ceiling {low:.3f}")
    assert best < high  # no digit network reaches the ceiling of a region that sees natural images

# %% [markdown]
# ## Report

# %%
report = result.to_report(title="The BLT family vs EVC and IT (15 subjects, Cichy et al. 2014)")
print("report:", report.save(Path(tempfile.mkdtemp()) / "fmri_evc_it.html"))

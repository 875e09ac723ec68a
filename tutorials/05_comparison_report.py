# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # A comparison report of several models
#
# The figure a lab meeting asks for: several models, the same analyses with the same settings, side by
# side, with a summary table. `rnnprobe.compare_models` runs them; `to_report()` lays them out in a
# `rnnprobe.Report`, which you can extend with your own text, tables and figures, and save as one HTML
# file (plus PNG/SVG/PDF figures and the numbers as JSON).
#
# Here: the whole BLT family (Spoerer et al. 2017) on occluded digits. B is feedforward; BK and BF are
# feedforward controls with bigger kernels or more feature maps; BL adds lateral and BLT lateral and
# top-down recurrence.

# %%
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib
import torch

matplotlib.use("Agg")
torch.set_num_threads(1)

import rnnprobe
from rnnprobe.cli.demo import category_rdm

# %% [markdown]
# ## Record every model on the same stimuli

# %%
names = {"B": "occluded-b", "BK": "occluded-bk", "BF": "occluded-bf", "BL": "occluded-bl", "BLT": "occluded-blt"}
task = rnnprobe.models.task_from_checkpoint(rnnprobe.models.load("occluded-blt"))
data = task.sample(300, split="test")
recordings, accuracy = {}, {}
for label, name in names.items():
    model = rnnprobe.models.load(name)
    recordings[label] = rnnprobe.record(model, data.x, metadata=data.metadata, progress=False)
    accuracy[label] = model.checkpoint["metrics"]["test_accuracy"]
print({k: round(v, 3) for k, v in accuracy.items()})

# %% [markdown]
# ## Compare
#
# RSA of every layer at every step against the digit-category RDM (0 within a digit, 1 between),
# decoding of the digit over time from every layer, temporal generalization at each model's best
# layer, PCA trajectories and RDMs. `progress=True` (the default) shows a bar on stderr.

# %%
result = rnnprobe.compare_models(
    recordings,
    target="label",
    neural={"digit category": category_rdm(data.metadata["label"])},
    progress=False,
)
print(result)
table = result.table()
for key in ("digit category: best layer", "digit category: similarity", "decoding: best layer",
            "decoding: peak accuracy"):  # fmt: skip
    print(f"{key:28s}", table[key])

# %% [markdown]
# The recurrent models' best layers match the category structure more closely than the feedforward
# B's, as their higher test accuracy suggests.

# %%
sim = dict(zip(table["model"], table["digit category: similarity"], strict=True))
assert max(sim["BL"], sim["BLT"]) > sim["B"]

# %% [markdown]
# Single figures are available too, e.g. decoding over time for all models:

# %%
fig = result.plot("decoding")

# %% [markdown]
# ## The report
#
# `to_report` starts a report (or adds to yours); add anything else before saving.

# %%
report = result.to_report(title="BLT family on occluded digits")
report.section("Notes")
report.add_text("Checkpoints shipped with rnnprobe; 300 held-out digits at 4 occlusion levels.")
report.add_table({"model": list(accuracy), "test accuracy": list(accuracy.values())},
                 caption="Accuracy of the shipped checkpoints (their own test set).", name="accuracy")  # fmt: skip
folder = Path(tempfile.mkdtemp())
path = report.save(folder / "blt_family.html", export=["png", "pdf"], data=True)
print(path, sorted(p.name for p in (folder / "blt_family_figures").iterdir()))
numbers = json.loads(path.with_suffix(".json").read_text())
print([s["title"] for s in numbers["sections"]])

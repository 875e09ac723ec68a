# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Record your own model
#
# rnnprobe records the hidden states of any PyTorch module: a `torch.nn.LSTM` inside your network
# (with its cell states and gates, which PyTorch never returns), a recurrent loop you wrote yourself, or
# a module called once per time step. This tutorial trains a small LSTM for a few seconds on a
# delayed-recall task, records everything inside it, and reads the memory out of the cell states.

# %%
import os
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib
import numpy as np
import torch
from torch import nn

matplotlib.use("Agg")
torch.set_num_threads(1)

import rnnprobe

# %% [markdown]
# ## A model and a task
#
# Delayed recall: one of 4 input channels pulses at the first step, noise follows for 11 steps, and the
# network must report the pulsed channel at the last step.


# %%
def delayed_recall(n, *, steps=12, n_classes=4, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, size=n)
    x = noise * rng.standard_normal((n, steps, n_classes)).astype(np.float32)
    x[np.arange(n), 0, labels] += 1.0
    return torch.from_numpy(x), labels


class Recall(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.lstm = nn.LSTM(4, hidden, num_layers=2, batch_first=True)
        self.readout = nn.Linear(hidden, 4)

    def forward(self, x):
        return self.readout(self.lstm(x)[0])


torch.manual_seed(0)
model = Recall()
optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
for step in range(400):
    x, y = delayed_recall(64, seed=step + 1)
    loss = nn.functional.cross_entropy(model(x)[:, -1], torch.from_numpy(y))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
x_test, y_test = delayed_recall(1000, seed=10_000)
with torch.no_grad():
    accuracy = (model(x_test)[:, -1].argmax(-1).numpy() == y_test).mean()
print(f"held-out accuracy {accuracy:.3f} (chance 0.25)")

# %% [markdown]
# ## What can be recorded?
#
# `rnnprobe.recordable(model)` lists every module and, for PyTorch RNNs, the states inside them:
# `lstm:l0.c` is the first layer's cell state, `lstm:l1.f` the second layer's forget gate. rnnprobe
# gets them by unrolling the recurrence with the module's own weights (equal to `nn.LSTM` to 1e-6).

# %%
names = rnnprobe.recordable(model)
print(names)

# %%
rec = rnnprobe.record(
    model,
    x_test,
    layers=["lstm:l0.h", "lstm:l0.c", "lstm:l1.h", "lstm:l1.c", "lstm:l1.f", "readout"],
    metadata={"label": y_test},
    sequence=["readout"],  # readout is called once on the whole sequence: time is its axis 1
    progress=False,
)
print(rec)

# %% [markdown]
# The unrolled states are exact to float32 rounding: the recorded hidden state of the top layer is the
# LSTM's own output.

# %%
with torch.no_grad():
    out, _ = model.lstm(x_test)
print("max |h - lstm output|:", float(np.abs(rec.get("lstm:l1.h") - out.numpy()).max()))
assert np.allclose(rec.get("lstm:l1.h"), out.numpy(), atol=1e-4)  # float32 rounding over 12 steps

# %% [markdown]
# ## Working with a Recording
#
# Arrays are (stimulus, time, units). Select by time, by stimulus or by a query on the metadata; save to
# a chunked zarr store and open it lazily; hand it to xarray or rsatoolbox.

# %%
print(rec.get("lstm:l1.c", time=-1, query="label == 2").shape)
store = Path(tempfile.mkdtemp()) / "recall.zarr"
rec.save(store)
lazy = rnnprobe.Recording.load(store)
print(lazy)
print(lazy.to_xarray("lstm:l1.c").dims)
temporal = rec.to_rsatoolbox("lstm:l1.c")
print(type(temporal).__name__, temporal.measurements.shape)  # rsatoolbox TemporalDataset

# %% [markdown]
# ## Where is the memory? Cell states vs hidden states
#
# Decode the remembered channel from each state at every step. The class is readable from both the cell
# state c and the hidden state h = o * tanh(c) of both layers across all 11 noisy steps; the
# forget gates (recorded as `lstm:l1.f`) show how the memory is kept: a unit whose gate stays near 1
# carries its cell state over from step to step.

# %%
from rnnprobe.analysis.decoding import decode

for layer in ("lstm:l0.h", "lstm:l0.c", "lstm:l1.h", "lstm:l1.c"):
    scores = decode(rec, layer, "label", cv=5).scores
    print(f"{layer:10s}", " ".join(f"{s:.2f}" for s in scores))
c_scores = decode(rec, "lstm:l1.c", "label").scores
assert c_scores.min() > 0.5  # the class is readable from the top cell state at every step
per_unit = rec.get("lstm:l1.f")[:, 1:].mean(axis=(0, 1))
print("layer 1 forget gates, mean over stimuli and steps, highest first:", np.round(np.sort(per_unit)[::-1][:8], 2))

# %% [markdown]
# ## A recurrent loop of your own
#
# Any module called once per time step is recorded with one entry per call: here a hand-written
# Elman cell in a Python loop.


# %%
class Loop(nn.Module):
    def __init__(self):
        super().__init__()
        self.cell = nn.RNNCell(4, 16)

    def forward(self, x):
        h = torch.zeros(len(x), 16)
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
        return h


loop_rec = rnnprobe.record(Loop(), x_test[:100], layers=["cell"], progress=False)
print(loop_rec.shapes)  # every call of `cell` is a time step

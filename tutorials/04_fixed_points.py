# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Fixed points of a flip-flop network
#
# A network trained on the 3-bit flip-flop task (Sussillo & Barak 2013) must hold three bits, each
# flipped by a pulse on its input channel, for as long as no pulse comes. The classic reading: the
# network stores the 8 bit patterns as 8 stable fixed points of its dynamics at zero input, and the
# saddles between them route the flips. This tutorial finds them in the shipped GRU, checks them,
# and puts them in a report.
#
# Run it as a script (`python tutorials/04_fixed_points.py`) or open it as a notebook with jupytext.

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
from rnnprobe.analysis.fixed_points import find_fixed_points
from rnnprobe.tasks import FlipFlop

# %% [markdown]
# ## Record the network on flip-flop trials
#
# The trajectories tell the search where to look: its initial states are sampled from them.

# %%
model = rnnprobe.models.load("flipflop-gru")
trials = FlipFlop(3).sample(64, split="test")
rec = rnnprobe.record(model, trials.x, progress=False)
print(rec.shapes)  # (trial, time, units) of the GRU's hidden state

# %% [markdown]
# ## Search
#
# 1024 states sampled from the recording, the constant input zero (no pulse). Every candidate is
# optimised on its own (Levenberg-Marquardt with its own damping, then Newton): true fixed points end
# at float64 precision, candidates that stall at a minimum of q = 1/2 ||F(x) - x||^2 are kept apart as
# slow points, and nothing unconverged is returned.

# %%
fp = find_fixed_points(model, inputs=np.zeros(3), initial_states=rec, layer="l0.h", n_initial=1024, seed=0)
print(fp)
print(fp.summary())

# %% [markdown]
# ## The 8 attractors store the 8 bit patterns
#
# Read each stable point out through the model's own readout: the signs are the stored bits.

# %%
bits = np.sign(fp.outputs[fp.stable]).astype(int)
print(bits)
assert len({tuple(b) for b in bits}) == 8, "one stable point per bit pattern"

# %% [markdown]
# The saddles have one or more unstable modes; their unstable eigenvectors point towards the
# attractors they separate.

# %%
saddles = np.flatnonzero(~fp.stable)
print("unstable modes per saddle:", fp.n_unstable[saddles])
print("largest |eigenvalue| per saddle:", np.abs(fp.eigenvalues[saddles, 0]).round(3))

# %% [markdown]
# ## An independent check
#
# Every returned point is a root of F(x) - x: scipy's root finder started there stays there.

# %%
from scipy.optimize import root

double = model.double()


def residual(v):
    """F(x) - x with the model's own step, through its packed state (the GRU's state is (layers, batch, units))."""
    with torch.no_grad():
        state = double.unpack_state(torch.as_tensor(v[None]))
        return double.pack_state(double.step(torch.zeros(1, 3, dtype=torch.float64), state)[1])[0].numpy() - v


for x in fp.states:
    solution = root(residual, x, tol=1e-14)
    assert np.linalg.norm(residual(x)) < 1e-10 and np.linalg.norm(solution.x - x) < 1e-9
print(f"all {len(fp)} points confirmed by scipy.optimize.root")

# %% [markdown]
# ## Linearised dynamics
#
# Around a point, dx(t+1) = A dx(t) + B du(t). An attractor's slowest mode says how long a bit's
# perturbation lasts: a decay by |lambda| per step.

# %%
a, b = fp.linearize(int(np.flatnonzero(fp.stable)[0]))
slowest = np.abs(np.linalg.eigvals(a)).max()
print(f"slowest mode |lambda| = {slowest:.3f}: a perturbation halves in {np.log(0.5) / np.log(slowest):.1f} steps")

# %% [markdown]
# ## Figure and report
#
# `fp.plot(rec)` draws the points on the trajectories' first two principal components (stable filled,
# unstable open, unstable directions as lines) and the eigenvalues with the unit circle. A `Report`
# keeps the figure and the numbers in one HTML file.

# %%
fig = fp.plot(rec, layer="l0.h")

report = rnnprobe.Report("Flip-flop GRU: fixed points")
report.add_text("Fixed points of the shipped 3-bit flip-flop GRU at zero input.")
report.add_result(fp, name="fixed-points")
report.add_table({"stable point": list(range(8)), "bits": [" ".join(map(str, b)) for b in bits]}, name="bits")
out = report.save(Path(tempfile.mkdtemp()) / "fixed_points.html", data=True)
print("report:", out)

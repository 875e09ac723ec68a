# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Rotational dynamics in motor cortex: condition averages and jPCA
#
# Churchland et al. (2012) found that, during reaching, the population activity of motor cortex rotates:
# projected on the right plane, every reach condition traces a rotation in the same direction, a
# signature of a dynamical system rather than of tuning to movement parameters. jPCA finds that plane by
# fitting the population's change per time step with a skew-symmetric (purely rotational) linear map.
#
# This tutorial runs jPCA on the condition-averaged motor-cortex tensor shipped in
# `../shared/data/churchland2012_m1_tme_tensor` (10 conditions x 61 times x 50 neurons; set
# `RNNPROBE_DATA` to read it elsewhere), compares it with a control whose time order is scrambled, and
# shows `condition_average` on trials of a recurrent network.

# %%
import os
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib
import numpy as np

matplotlib.use("Agg")

from rnnprobe import Recording
from rnnprobe.analysis import condition_average, fit_jpca
from rnnprobe.neural import load_churchland
from rnnprobe.report import Report

# %% [markdown]
# ## jPCA of the reach epoch
#
# The tensor is normalised and mean-centred already (its DATA.md), so no soft normalisation; the window
# is -50..350 ms around movement onset, as in the TME demo.

# %%
m1 = load_churchland()  # found under shared/data beside the working directory (or in $RNNPROBE_DATA)
result = fit_jpca(m1, time=m1.times["M1"] <= 350, soft_normalize=None)
for key, value in result.summary().items():
    print(f"{key:32s} {value:.3f}" if isinstance(value, float) else f"{key:32s} {value}")
print(f"plane 1 rotates at {result.frequencies[0] * 1000:.2f} Hz; plane 2 at {result.frequencies[1] * 1000:.2f} Hz")
assert abs(result.skew_fraction - 0.95) < 0.01  # DATA.md's check

# %% [markdown]
# Each condition's trajectory in the first jPC plane starts near the centre and turns counterclockwise;
# `p x dp` (the angular momentum in the plane) is positive for every condition.

# %%
p = result.projections
dp = np.diff(p, axis=1)
turning = (p[:, :-1, 0] * dp[..., 1] - p[:, :-1, 1] * dp[..., 0]).sum(axis=1)
print("conditions turning counterclockwise:", int((turning > 0).sum()), "of", len(turning))
assert (turning > 0).sum() >= 8

# %% [markdown]
# ## A control: scrambled time
#
# Rotation is a property of the *ordering* in time. Shuffling the time points (the same permutation for
# every condition and neuron) keeps every time point's population pattern but breaks the dynamics. A
# linear fit of the change per step still explains some of it, by "returning to the mean" (M near -I, a
# symmetric map, since each step jumps to an unrelated pattern), but rotation explains none of it.

# %%
window = m1.get("M1", time=m1.times["M1"] <= 350)
ms = m1.times["M1"][m1.times["M1"] <= 350]
order = np.random.default_rng(0).permutation(window.shape[1])
scrambled = fit_jpca(Recording({"M1": window[:, order]}), soft_normalize=None)
print(f"R^2 of the linear dynamics: data {result.r2:.2f}, scrambled {scrambled.r2:.2f}")
print(f"rotation explains: data {result.r2_skew / result.r2:.2f}, scrambled {scrambled.r2_skew / scrambled.r2:.2f}")
assert scrambled.r2_skew / scrambled.r2 < 0.2 < 0.8 < result.r2_skew / result.r2

# %% [markdown]
# ## Condition averages of trials
#
# jPCA, like most population analyses, takes condition averages. For trials recorded from a model or a
# brain, `condition_average` makes them: one row per combination of the given metadata columns, with the
# number of trials and, on request, standard errors. Here 200 noisy trials of the 10 reach conditions
# (the tensor plus noise) averaged back.

# %%
rng = np.random.default_rng(1)
condition = np.repeat(np.arange(10), 20)
trials = Recording({"M1": window[condition] + rng.normal(0, 0.2, size=(200, *window.shape[1:]))},
                   metadata={"condition": condition}, times={"M1": ms})  # fmt: skip
means = condition_average(trials, "condition", sem=True)
print(means)
error = np.abs(means.get("M1") - window).mean()
print(f"mean |average - tensor| {error:.3f}; mean s.e.m. {means.get('M1:sem').mean():.3f} (0.2 / sqrt(20) = 0.045)")
again = fit_jpca(means, layer="M1", soft_normalize=None)
print(f"jPCA of the averaged trials: rotation explains {again.r2_skew / again.r2:.2f}")

# %%
report = Report("Rotational dynamics in motor cortex (Churchland et al. 2012)")
report.add_result(result, caption="Reach conditions in the first jPC plane, -50..350 ms around movement onset.")
report.add_result(scrambled, caption="The same with the time points scrambled: no rotation.")
print("report:", report.save(Path(tempfile.mkdtemp()) / "jpca_motor_cortex.html"))

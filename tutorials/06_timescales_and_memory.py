# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Memory timescales: LSTM cell states, fast weights, and the CTRNN step size
#
# Cortical areas differ in how long their neurons' activity stays correlated with itself: the intrinsic
# timescale, estimated by Murray et al. (2014) from the autocorrelation of spike counts across trials.
# The same measure applied to a recurrent network's units says which of its states hold information
# for long. Three questions:
#
# 1. Do an LSTM's cell states c hold information longer than its hidden states h (the "long short-term
#    memory" reading)?
# 2. Does the fast-weights decay lambda set the timescale of a fast-weights RNN's memory?
# 3. How does the Euler step dt of a continuous-time RNN change its timescales, in steps and in ms?

# %%
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib
import numpy as np
import torch

matplotlib.use("Agg")
torch.set_num_threads(1)

import rnnprobe
from rnnprobe.analysis.timescales import fit_timescales, memory_decay
from rnnprobe.models import CTRNN, FastWeightsRNN

rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. LSTM: cell states vs hidden states
#
# The shipped associative-retrieval LSTM, driven by 400 random symbol streams of 40 steps. Timescales
# are fitted on steps 5-39 (after the onset transient), lags 1-15.

# %%
lstm = rnnprobe.models.load("retrieval-lstm")
symbols = rng.integers(0, 37, size=(400, 40))
streams = torch.from_numpy(np.eye(37, dtype=np.float32)[symbols])
rec = rnnprobe.record(lstm, streams, progress=False)
c = fit_timescales(rec, "l0.c", time=slice(5, None), max_lag=15)
h = fit_timescales(rec, "l0.h", time=slice(5, None), max_lag=15)
print(c)
print(h)
fig = c.plot(others={"l0.h": h})
assert np.nanmedian(c.tau) > np.nanmedian(h.tau)

# %% [markdown]
# The cell states' median timescale is longer than the hidden states'. (The shipped flip-flop LSTM shows
# no such difference: there both states follow the bit flips, which the task's pulse rate sets.)
#
# What do the states remember of the input itself? Decode the symbol seen `lag` steps ago from the state
# now (37 classes, chance about 0.03), with folds that keep each stream together.

# %%
for layer in ("l0.c", "l0.h"):
    print(memory_decay(rec, layer, symbols, lags=[0, 1, 2, 4, 8]))

# %% [markdown]
# The symbols are only weakly decodable even at lag 0 (this LSTM solves the retrieval task poorly: 42%
# held-out accuracy, against 94% for fast weights), and fade within a few steps, alike in c and h.
#
# ## 2. Fast weights: lambda sets the memory's timescale
#
# The fast-weights RNN (Ba et al. 2016) keeps a matrix A(t) = lambda A(t-1) + eta h h' of recent hidden
# states. With the shipped network's weights and different decays lambda, record A (400 entries per
# sample) on random streams and compare its timescale with -1 / ln(lambda), the decay's own.

# %%
base = rnnprobe.models.load("retrieval-fastweights")
long_streams = torch.from_numpy(np.eye(37, dtype=np.float32)[rng.integers(0, 37, size=(300, 60))])
rows = []
for decay in (0.5, 0.8, 0.9, 0.95):
    model = FastWeightsRNN(**{**base.config, "decay": decay, "record_fast_weights": True})
    model.load_state_dict(base.state_dict())
    fw = rnnprobe.record(model.eval(), long_streams, layers=["A", "h"], progress=False)
    tau_a = np.nanmedian(fit_timescales(fw, "A", time=slice(10, None), max_lag=20).tau)
    rows.append((decay, -1 / np.log(decay), tau_a))
    print(f"lambda {decay:.2f}: -1/ln(lambda) = {-1 / np.log(decay):5.2f} steps, fitted tau of A = {tau_a:5.2f} steps")
ratios = np.array([fitted / expected for _, expected, fitted in rows])
assert np.all(np.abs(np.log(ratios)) < 0.25)  # within 25% of the decay's timescale

# %% [markdown]
# ## 3. CTRNN: the Euler step dt
#
# A continuous-time RNN (tau = 100 ms) integrated with Euler steps dt = 20, 10 and 5 ms (`with_dt`: the
# same weights), driven by the same white-noise input held for 20 ms. Its timescale in *steps* grows as
# dt shrinks; in *milliseconds* it stays near the network's own, as it should for a well-discretised
# model.

# %%
torch.manual_seed(0)
ctrnn = CTRNN(2, 64, 1, tau=100.0, dt=20.0)
noise = rng.normal(size=(300, 100, 2)).astype(np.float32)
for dt in (20.0, 10.0, 5.0):
    steps = int(2000 / dt)
    x = torch.from_numpy(np.repeat(noise, int(20 / dt), axis=1)[:, :steps])
    states = rnnprobe.record(ctrnn.with_dt(dt).eval(), x, layers=["x"], progress=False)
    result = fit_timescales(states, "x", time=slice(steps // 4, None), max_lag=int(300 / dt), dt=dt)
    tau = np.nanmedian(result.tau)
    print(f"dt {dt:4.1f} ms: median tau {tau:6.2f} steps = {tau * dt:6.1f} ms")

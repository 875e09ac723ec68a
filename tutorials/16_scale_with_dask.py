# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Scale: a recording on disk, analysed blockwise on a dask cluster
#
# A recurrent convnet on thousands of images over many steps gives more states than a laptop holds. This
# tutorial records the shipped BLT network on occluded digits into a zarr store, sharded over the workers of
# a dask cluster, then opens the store as dask arrays and runs the analyses blockwise: time-resolved RDMs,
# decoding over time with a permutation test, and an encoding model, each equal to the in-memory result.
# The same code runs on a multi-machine cluster: pass `Client("tcp://scheduler:8786")` (or a
# dask-jobqueue cluster) where this tutorial starts a `LocalCluster` ([Scale](../scale.md)).

# %%
import os
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from distributed import Client, LocalCluster

torch.set_num_threads(1)

import rnnprobe
from rnnprobe import Recording
from rnnprobe.analysis import compute_rdms, decode, fit_encoding

folder = Path(tempfile.mkdtemp(prefix="rnnprobe-scale-"))

# %% [markdown]
# ## Record into a store, sharded over the workers
#
# `record(..., store=..., client=...)` gives each worker whole chunks of stimuli; each writes its region of
# one zarr store, and the store is marked complete only when every region is written (a worker lost
# mid-way leaves it incomplete, and `Recording.load` refuses it). Two workers of one thread each here,
# in this process (`processes=False`); on real machines, worker processes with one thread each
# (`threads_per_worker=1`) keep torch and BLAS from fighting over the cores.

# %%
model = rnnprobe.models.load("occluded-blt")
task = rnnprobe.models.task_from_checkpoint(model)
data = task.sample(800, split="test")
cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
client = Client(cluster)
stored = rnnprobe.record(model, data.x, metadata=data.metadata, store=folder / "blt.zarr", client=client,
                         chunk_stimuli=100, progress=False)  # fmt: skip
print(stored)

# %% [markdown]
# ## Open it as dask arrays
#
# `chunks=` opens every layer as a dask array (here 200 stimuli per chunk, every time step). Nothing is
# read until an analysis asks, and the analyses below never hold a whole layer: they run as tasks on the
# active client, each reading a block of stimuli or of time steps.

# %%
lazy = Recording.load(folder / "blt.zarr", chunks=200)
whole = Recording.load(folder / "blt.zarr").load_into_memory()  # the reference: the same states in memory
print(lazy.is_dask, lazy.to_dask("layer1"))

# %% [markdown]
# ## Time-resolved RDMs, blockwise
#
# One dask graph per layer: the Gram matrices of every step from products of chunk pairs; only the
# (step x condition x condition) matrices come back.

# %%
rdms = compute_rdms(lazy, "layer1", descriptor="label")
reference = compute_rdms(whole, "layer1", descriptor="label")
print(rdms)
np.testing.assert_allclose(rdms.dissimilarities, reference.dissimilarities, rtol=0, atol=1e-10)

# %% [markdown]
# ## Decoding over time with a permutation test, blockwise
#
# Blocks of time steps run as tasks; every block draws the same folds and permutations (from `seed`), so
# the scores, the null distribution and the p-values equal the in-memory ones. A single step larger than a
# block (256 MiB of float64 states: a wide convolutional layer on thousands of images) is itself read in
# blocks, of units or of stimuli, by ridge and by logistic regression of fewer stimuli than units.

# %%
decoded = decode(lazy, "layer1", "label", n_permutations=50, seed=0, progress=False)
in_memory = decode(whole, "layer1", "label", n_permutations=50, seed=0, progress=False)
print(decoded)
np.testing.assert_allclose(decoded.fold_scores, in_memory.fold_scores, rtol=0, atol=1e-10)
np.testing.assert_allclose(decoded.null, in_memory.null, rtol=0, atol=1e-10)
assert decoded.scores[-1] > 0.5  # the digit is recovered by the last step (chance 0.1)
fig = decoded.plot()

# %% [markdown]
# ## An encoding model of simulated neurons, blockwise
#
# Fifty "neurons", each a noisy mixture of layer1's units at the last step, predicted from every step of
# layer1 by PLS (25 components, Brain-Score's default). Blocks of steps run as tasks. With more units than
# training stimuli (1024 against 640), PLS (like ridge) is fitted from the Gram matrix across stimuli alone,
# so a step larger than a block is summed from blocks of stimuli and never held.

# %%
last = whole.get("layer1")[:, -1].reshape(len(whole.metadata), -1)
rng = np.random.default_rng(0)
neurons = last @ rng.normal(size=(last.shape[1], 50)) / np.sqrt(last.shape[1])
neurons += rng.normal(scale=neurons.std(), size=neurons.shape)
encoded = fit_encoding(lazy, neurons, layers="layer1", estimator="pls", ceiling=False, progress=False)
reference = fit_encoding(whole, neurons, layers="layer1", estimator="pls", ceiling=False, progress=False)
print(encoded.summary())
np.testing.assert_allclose(encoded.scores["layer1"], reference.scores["layer1"], rtol=0, atol=1e-8)
assert np.median(encoded.scores["layer1"][-1]) > np.median(encoded.scores["layer1"][0])

# %%
client.close()
cluster.close()

# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Assembly calculus: projection, association and merge, analysed like any network
#
# Papadimitriou et al. (2020) proposed that the brain computes with *assemblies*: sets of neurons that
# fire together, created and combined by three ingredients only: random synapses, inhibition that lets
# only the k most driven neurons of an area fire (the k-cap), and Hebbian plasticity. This tutorial runs
# the simulator in `rnnprobe.models.assemblies`, shows that projection converges to a stable assembly,
# that association makes two assemblies overlap, and records the runs as a Recording for RSA and PCA.

# %%
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import matplotlib

matplotlib.use("Agg")

from rnnprobe.analysis.pca import fit_pca
from rnnprobe.analysis.rsa import compute_rdms
from rnnprobe.models.assemblies import Brain, overlap, to_recording

# %% [markdown]
# ## Projection converges to an assembly
#
# An area of n = 2000 neurons with a cap of k = 45 (about sqrt(n)), synapses with probability p = 0.05,
# plasticity beta = 0.1. A stimulus of 45 neurons fires into the area for 15 rounds; the area also feeds
# back into itself. The overlap between consecutive rounds' winners rises to 1: a stable set.

# %%
brain = Brain(p=0.05, beta=0.1, seed=0)
brain.add_area("A", n=2000, k=45)
for name in ("x", "y", "z"):
    brain.add_stimulus(name, k=45)
runs = {}
for name in ("x", "y", "z"):
    brain.reset()
    runs[name] = brain.project(name, "A", rounds=15)
    print(f"project {name}: overlap of consecutive rounds", runs[name].overlaps[[0, 4, 9, -1]].round(2))
assert all(run.overlaps[-1] > 0.9 for run in runs.values())

# %% [markdown]
# Without plasticity the winners keep changing: the assembly is learnt.

# %%
static = Brain(p=0.05, beta=0.0, seed=0)
static.add_area("A", n=2000, k=45)
static.add_stimulus("x", k=45)
print("beta = 0: last overlaps", static.project("x", "A", rounds=15).overlaps[-3:].round(2))

# %% [markdown]
# ## The runs as a Recording
#
# (run, round, neuron) binary firing: RDMs between the three stimuli's firing patterns at each round show
# three distinct assemblies forming; PCA puts the trajectories of the three projections on their way to
# three points.

# %%
rec = to_recording(runs)
print(rec)
rdms = compute_rdms(rec, "A", distance="correlation", time=[0, 14])
print("RDM at round 0:\n", rdms.matrices()[0].round(2), "\nRDM at round 14:\n", rdms.matrices()[1].round(2))
pca = fit_pca(rec, "A", n_components=3)
print("variance explained by 3 PCs:", pca.explained_variance_ratio.round(3))
fig = pca.plot(color_by="run")

# %% [markdown]
# ## Association: firing two stimuli together makes their assemblies overlap
#
# Before: what x alone and y alone evoke in A (from silence, without learning) barely overlaps. Fire x and
# y together for 15 rounds; afterwards each evokes part of the other's assembly.

# %%
before = overlap(brain.respond("x", "A", rounds=3), brain.respond("y", "A", rounds=3))
brain.reset()
brain.associate("x", "y", "A", rounds=15)
after = overlap(brain.respond("x", "A", rounds=3), brain.respond("y", "A", rounds=3))
control = overlap(brain.respond("x", "A", rounds=3), brain.respond("z", "A", rounds=3))
print(f"overlap of x's and y's assemblies: before {before:.2f}, after association {after:.2f} (x and z: {control:.2f})")
assert after > before

# %% [markdown]
# ## Merge
#
# Assemblies of x in area B and of y in area C, fired together into area D, form one assembly of D that
# either alone evokes in part.

# %%
for area in ("B", "C", "D"):
    brain.add_area(area, n=2000, k=45)
brain.project("x", "B", rounds=15)
brain.project("y", "C", rounds=15)
merged = brain.merge("B", "C", "D", rounds=15).assembly
print("D's merged assembly evoked by B alone:", round(overlap(brain.respond("B", "D"), merged), 2),
      " by C alone:", round(overlap(brain.respond("C", "D"), merged), 2), f" (chance {45 / 2000:.3f})")  # fmt: skip

# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Context-dependent decisions: Mante et al. (2013) with rnnprobe alone
#
# Monkeys saw a cloud of dots that had both a motion direction and a colour, and a cue that told them
# which of the two to report. Prefrontal neurons represented both the relevant and the irrelevant
# evidence, yet only the relevant one moved the population along the choice axis. Mante, Sussillo,
# Shenoy & Newsome (2013) trained a recurrent network on the same task and explained how: in each
# context the network's dynamics form an approximate line attractor along the choice axis, and the
# *selection vector* (the left eigenvector of the line's slow mode) turns with the context so that only
# the relevant input is integrated.
#
# This tutorial trains a vanilla RNN (the paper's architecture), a GRU and an LSTM on rnnprobe's version
# of the task (`ContextDependentDecision`), then repeats the paper's analyses: psychometric accuracy,
# targeted dimensionality reduction (TDR), dPCA, slow points and selection vectors per context, and
# compares the three networks' dynamics with DSA. It runs in under a minute on one CPU core (set
# `RNNPROBE_FULL=1` for longer training); the numbers it prints say what is reproduced and what is not.

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
from rnnprobe.analysis import find_fixed_points, fit_dpca, fit_tdr, pairwise_dynamics, slow_manifolds
from rnnprobe.models import GRU, LSTM, VanillaRNN
from rnnprobe.report import Report
from rnnprobe.tasks import ContextDependentDecision

FULL = os.environ.get("RNNPROBE_FULL") == "1"
task = ContextDependentDecision(coherences=(0.05, 0.15, 0.5), n_steps=40, noise=1.0)
print(task)

# %% [markdown]
# ## Train three networks
#
# 64 units each, 4 inputs (motion and colour evidence, two context cues), 2 choice outputs scored on the
# last 5 steps. Training is deterministic given the seed (on one machine and torch version). The vanilla
# RNN learns at Adam's learning rate of 1e-3: at 3e-3 its accuracy ranged 0.67-0.78 over seeds 0-2, at
# 1e-3 0.78-0.81 over seeds 0-7 (the gated networks: 0.79-0.81 at 3e-3).

# %%
steps = {"RNN": 1200, "GRU": 600, "LSTM": 600}
lr = {"RNN": 1e-3, "GRU": 3e-3, "LSTM": 3e-3}
if FULL:
    steps = {name: 3 * n for name, n in steps.items()}
models = {}
for name, cls in (("RNN", VanillaRNN), ("GRU", GRU), ("LSTM", LSTM)):
    torch.manual_seed(0)
    models[name] = cls(task.input_size, 64, task.output_size)
    history = rnnprobe.train(models[name], task, steps=steps[name], lr=lr[name], batch_size=64, progress=False)
    print(f"{name}: {steps[name]} steps, {history.seconds:.1f} s")

# %% [markdown]
# ## Behaviour: accuracy per context and coherence
#
# An ideal observer that integrates the relevant evidence over the 35 evidence steps is right with
# probability Phi(c sqrt(35) / noise): 0.62, 0.81 and 1.00 for coherences 0.05, 0.15 and 0.5.

# %%
test = task.sample(1200, split="test")
strength = np.abs(test.metadata["relevant"])
choices = {}
for name, model in models.items():
    with torch.no_grad():
        logits = model(test.x)
    choices[name] = np.where(logits[:, -1].argmax(-1).numpy() == 1, 1, -1)
    correct = choices[name] == test.metadata["choice"]
    by_level = {c: round(float(correct[strength == c].mean()), 3) for c in task.coherences}
    by_context = {c: round(float(correct[test.metadata["context"] == c].mean()), 3) for c in ("motion", "colour")}
    print(f"{name}: accuracy {correct.mean():.3f}; by coherence {by_level}; by context {by_context}")
    assert correct.mean() > 0.75, f"{name} did not learn the task"  # chance 0.5, ideal observer 0.81

# %% [markdown]
# ## Recordings with the networks' own choices
#
# As in the paper, the regressions use the network's choice, not the correct one.

# %%
recordings = {
    name: rnnprobe.record(
        model, test.x, metadata={**test.metadata, "net_choice": choices[name]}, progress=False
    ).with_periods(task.periods())  # fixation, evidence, response: marked on every figure over time
    for name, model in models.items()
}
rec = recordings["RNN"]
print(rec)

# %% [markdown]
# ## Targeted dimensionality reduction
#
# Regress every unit on choice, motion and colour coherence and context at every time step, denoise in
# the top 12 principal components of the condition averages, and orthogonalise the axes. The paper's
# finding: the relevant coherence moves the state along the choice axis; the irrelevant one is
# represented along its own axis but does not move the choice.

# %%
tdr = fit_tdr(rec, "l0.h", variables=["net_choice", "motion", "colour", "context"],
              conditions=["context", "motion", "net_choice"])  # fmt: skip
print({k: round(v, 3) if isinstance(v, float) else v for k, v in tdr.summary().items()})
final = tdr.project(rec.get("l0.h")[:, -1])  # each trial's last state on the four axes
table = {}
for context in ("motion", "colour"):
    rows = rec.column("context") == context
    for evidence in ("motion", "colour"):
        coherence = rec.column(evidence)[rows]
        on_choice = np.corrcoef(final[rows, 0], coherence)[0, 1]
        on_own = np.corrcoef(final[rows, 1 if evidence == "motion" else 2], coherence)[0, 1]
        table[(context, evidence)] = (on_choice, on_own)
        print(f"{context} context, {evidence} coherence: r with the choice axis {on_choice:+.2f}, "
              f"with its own axis {on_own:+.2f}")  # fmt: skip
tdr.plot(x="net_choice", y="motion", by="context", color="motion")

# %% [markdown]
# ## dPCA
#
# Demix the condition averages by context and the network's choice (and time).

# %%
dpca = fit_dpca(rec, "l0.h", parameters=["context", "net_choice"], n_components=2)
for marginalization, share in dpca.marginal_variance.items():
    print(f"{marginalization:25s} {100 * share:5.1f}% of the variance; first component "
          f"{100 * dpca.explained_variance[marginalization][0]:5.1f}%")  # fmt: skip
dpca.plot()

# %% [markdown]
# ## Slow points, line attractors and selection vectors per context
#
# Search slow points at each context's input (cue on, no evidence), starting from the recorded states;
# `stop_q` keeps every candidate near where it started once its speed q is below 1e-6 (FixedPointFinder's
# q tolerance), instead of drifting along the line; `outlier_distance=2` drops candidates that leave the
# trajectories' region. The LSTM's (h, c) state slows down less within the iteration budget, so its
# search accepts slower points (q up to 1e-3). `slow_manifolds` then groups the points by context and
# linearises them; its "line" mode reports, among the 5 slowest modes, the one along the line.

# %%
contexts = np.array([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])  # motion cue, colour cue
lines, axes = {}, {}
settings = {"RNN": {"stop_q": 1e-6}, "GRU": {"stop_q": 1e-6},
            "LSTM": {"stop_q": 1e-5, "slow_q": 1e-3, "outlier_distance": 3.0}}  # fmt: skip
for name, model in models.items():
    layer = ["l0.h", "l0.c"] if name == "LSTM" else "l0.h"
    search = {"outlier_distance": 2.0, **settings[name]}
    fp = find_fixed_points(model, inputs=contexts, initial_states=recordings[name], layer=layer, n_initial=256,
                           initial_damping=1.0, **search)  # fmt: skip
    lines[name] = slow_manifolds(fp)
    readout = model.readout.weight.detach().numpy().astype(float)
    axes[name] = np.pad(readout[1] - readout[0], (0, fp.states.shape[1] - readout.shape[1]))  # the choice axis (h)
    axes[name] /= np.linalg.norm(axes[name])
    print(f"{name}: {fp}")
    line = lines[name]
    for k, cue in enumerate(line.inputs):
        context = "motion" if cue[2] == 1 else "colour"
        drive = np.abs(line.input_drive[k, :2])
        print(f"  {context} context: {line.n_points[k]} points, straightness {line.straightness[k]:.2f}, "
              f"|cos(line, choice axis)| {abs(line.direction[k] @ axes[name]):.2f}, slow mode |lambda| "
              f"{abs(line.slow_eigenvalue[k]):.3f}; drive along the line per unit input: motion {drive[0]:.3f}, "
              f"colour {drive[1]:.3f}")  # fmt: skip
lines["RNN"].plot(rec.get("l0.h")[:40].astype(float))

# %% [markdown]
# ## Dynamics compared: DSA
#
# The three networks' hidden-state dynamics (200 trials each, 5 delays, rank 10), and a second vanilla
# RNN trained from another seed as a reference for "the same solution".

# %%
torch.manual_seed(1)
second = VanillaRNN(task.input_size, 64, task.output_size)
rnnprobe.train(second, task, steps=steps["RNN"], lr=lr["RNN"], batch_size=64, progress=False)
systems = {name: recordings[name].get("l0.h")[:200].astype(float) for name in models}
systems["RNN (seed 1)"] = rnnprobe.record(second, test.x[:200], progress=False).get("l0.h").astype(float)
dsa = pairwise_dynamics(systems, n_delays=5, rank=10)
print(np.round(dsa.distances, 3))
print("nearest:", dsa.nearest())
dsa.plot()

# %% [markdown]
# ## What is reproduced
#
# The printout above gives, for this run:
#
# - accuracy per context and coherence against the ideal observer;
# - TDR: in each context the relevant coherence correlates with the last state's position on the choice
#   axis, the irrelevant one far less, while both are represented on their own axes (Mante et al.,
#   Fig. 2);
# - slow points per context, their line's alignment with the readout's choice axis, the slow mode's
#   eigenvalue, and how much each input drives the state along the line through the slow mode: for the
#   vanilla RNN the relevant input drives it more than the irrelevant one in both contexts, the
#   selection-vector mechanism (Fig. 5-6); gated networks (GRU, LSTM) need not use it;
# - DSA distances between the architectures and between two seeds.
#
# docs/mante2013.md lists the numbers of a full run and what is not reproduced.

# %%
relevant_first = all(table[(c, c)][0] > abs(table[(c, other)][0])
                     for c, other in (("motion", "colour"), ("colour", "motion")))  # fmt: skip
print("TDR: the relevant coherence drives the choice axis more than the irrelevant one in both contexts:",
      relevant_first)  # fmt: skip
for name, line in lines.items():
    relevant = [abs(line.input_drive[k, 0 if cue[2] == 1 else 1]) > abs(line.input_drive[k, 1 if cue[2] == 1 else 0])
                for k, cue in enumerate(line.inputs)]  # fmt: skip
    print(f"{name}: the relevant input drives the line more than the irrelevant one in {sum(relevant)} of "
          f"{len(relevant)} contexts with slow points")  # fmt: skip

report = Report("Context-dependent decisions (Mante et al. 2013)")
report.add_result(tdr, section="TDR: vanilla RNN")
report.add_result(dpca, section="dPCA: vanilla RNN")
report.add_result(lines["RNN"], section="Slow points and selection vectors: vanilla RNN")
report.add_result(dsa, section="DSA between networks")
out = Path(tempfile.gettempdir()) / "mante2013.html"
report.save(out)
print("report:", out)

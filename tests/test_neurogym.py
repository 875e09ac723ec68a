"""NeurogymTask on three neurogym tasks: trials equal the environment's own, deterministic samples, period
columns, training and recording, and bad input."""

import warnings

import numpy as np
import pytest
import torch

neurogym = pytest.importorskip("neurogym")

from rnnprobe import record  # noqa: E402
from rnnprobe.errors import ArgumentError  # noqa: E402
from rnnprobe.models import GRU  # noqa: E402
from rnnprobe.models.training import train  # noqa: E402
from rnnprobe.tasks import NeurogymTask  # noqa: E402

TASKS = ["PerceptualDecisionMaking-v0", "ContextDecisionMaking-v0", "DelayMatchSample-v0"]


@pytest.fixture(autouse=True)
def _quiet_gymnasium():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="gymnasium")  # its deprecation notices about wrappers
        yield


@pytest.mark.parametrize("name", TASKS)
def test_trials_are_the_environments_own_and_deterministic(name):
    task = NeurogymTask(name, dt=20, seed=3)
    data = task.sample(6, split="test", index=2)
    # the same trials, drawn from neurogym directly with the seed the task derives
    env = neurogym.make(name, dt=20).unwrapped
    env.seed(int(np.random.default_rng([3, 1, 2]).integers(2**31 - 1)))
    for k in range(6):
        info = env.new_trial()
        length = len(env.gt)
        np.testing.assert_array_equal(data.x[k, :length].numpy(), env.ob.astype(np.float32))
        np.testing.assert_array_equal(data.y[k, :length].numpy(), env.gt)
        assert data.mask[k].sum() == length == data.metadata["n_steps"][k]
        assert not data.x[k, length:].any() and not data.mask[k, length:].any()
        assert data.metadata["ground_truth"][k] == info["ground_truth"]
        for period in env.start_ind:
            assert data.metadata[f"{period}_start"][k] == env.start_ind[period]
            assert data.metadata[f"{period}_end"][k] == env.end_ind[period]
    again = task.sample(6, split="test", index=2)
    assert torch.equal(again.x, data.x) and torch.equal(again.y, data.y)
    assert not torch.equal(task.sample(6, split="train", index=2).x[:, :20], data.x[:, :20])
    assert (task.n_inputs, task.n_outputs) == (data.x.shape[2], env.action_space.n)
    assert task.period_names == list(env.timing)
    periods = task.periods(data)
    assert list(periods) == [p for p in env.timing if p in periods] and periods["fixation"][0] == 0  # in order
    assert task.periods(data, in_ms=True)["fixation"][1] == 20 * periods["fixation"][1]


def test_a_gru_trains_and_records_with_times_in_ms():
    torch.manual_seed(0)
    task = NeurogymTask("PerceptualDecisionMaking-v0", dt=100, seed=0)
    model = GRU(task.n_inputs, 16, task.n_outputs)
    history = train(model, task, steps=60, lr=1e-2, batch_size=32, progress=False)
    assert history.loss[-1] < 0.6 * history.loss[0]
    data = task.sample(50, split="test")
    assert 0.0 <= task.metric(model(data.x), data) <= 1.0
    rec = record(model, data.x, metadata=data.metadata, progress=False)
    layer = rec.layers[0]
    rec = rec.with_times(task.times(rec.shapes[layer][1]))
    assert rec.times[layer][1] == 100.0
    assert set(rec.columns) >= {"coh", "ground_truth", "stimulus_start", "decision_end"}


def test_bad_input_is_one_clear_error():
    with pytest.raises(ArgumentError, match="could not make"):
        NeurogymTask("NoSuchTask-v0")
    with pytest.raises(ArgumentError, match="n_steps"):
        NeurogymTask("PerceptualDecisionMaking-v0", dt=20, n_steps=5).sample(3)
    env = neurogym.make("PerceptualDecisionMaking-v0")
    with pytest.raises(ArgumentError, match="env_kwargs"):
        NeurogymTask(env, dt=20)

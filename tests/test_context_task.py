"""ContextDependentDecision: inputs and targets follow the design, samples are deterministic, and an ideal
observer's accuracy matches the closed form."""

import numpy as np
import pytest
import torch
from scipy.stats import norm

from rnnprobe.errors import ArgumentError
from rnnprobe.tasks import ContextDependentDecision


def test_inputs_targets_and_metadata_follow_the_design():
    task = ContextDependentDecision(coherences=(0.2,), n_steps=12, fixation_steps=3, response_steps=4, noise=0.0)
    data = task.sample(50, split="test")
    x, meta = data.x.numpy(), data.metadata
    assert not x[:, :3, :2].any()  # no evidence during fixation
    np.testing.assert_allclose(x[:, 3:, 0], meta["motion"][:, None] * np.ones((1, 9)), atol=1e-7)
    np.testing.assert_allclose(x[:, 3:, 1], meta["colour"][:, None] * np.ones((1, 9)), atol=1e-7)
    cue = np.where(meta["context"] == "motion", 2, 3)
    assert (x[np.arange(50), :, cue] == 1).all() and (x[:, :, 2] + x[:, :, 3] == 1).all()
    relevant = np.where(meta["context"] == "motion", meta["motion"], meta["colour"])
    np.testing.assert_array_equal(meta["relevant"], relevant)
    np.testing.assert_array_equal(data.y[:, -1].numpy(), (relevant > 0).astype(int))
    assert data.mask.sum(1).tolist() == [4] * 50 and data.mask[:, -4:].all()
    assert torch.equal(task.sample(50, split="test").x, data.x)


def test_an_ideal_observer_matches_the_closed_form():
    task = ContextDependentDecision(coherences=(0.1,), n_steps=30, fixation_steps=5, noise=1.0)
    data = task.sample(20000, split="test")
    evidence = data.x[:, 5:, :2].sum(1).numpy()
    relevant = np.where(data.metadata["context"] == "motion", evidence[:, 0], evidence[:, 1])
    accuracy = np.mean(np.sign(relevant) == data.metadata["choice"])
    assert accuracy == pytest.approx(norm.cdf(0.1 * np.sqrt(25)), abs=0.01)  # Phi(c sqrt(T) / noise)
    logits = torch.zeros(len(data), 30, 2)
    logits[:, -1, 1] = torch.as_tensor(relevant)
    assert task.metric(logits, data) == pytest.approx(accuracy)


def test_bad_settings():
    with pytest.raises(ArgumentError):
        ContextDependentDecision(coherences=(0.0,))
    with pytest.raises(ArgumentError):
        ContextDependentDecision(n_steps=10, fixation_steps=9)

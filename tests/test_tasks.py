import numpy as np
import pytest
import torch

from rnnprobe.errors import ArgumentError, UnknownNameError
from rnnprobe.tasks import AssociativeRetrieval, DigitSequences, FlipFlop, OccludedDigits
from rnnprobe.tasks.digits import _digits

TASKS = [FlipFlop(3, n_steps=30), AssociativeRetrieval(4), OccludedDigits(image_size=16), DigitSequences()]


@pytest.mark.parametrize("task", TASKS, ids=lambda t: type(t).__name__)
def test_deterministic_and_splits_differ(task):
    a = task.sample(16, split="train", index=3)
    b = task.sample(16, split="train", index=3)
    assert torch.equal(a.x, b.x)
    assert not torch.equal(a.x, task.sample(16, split="test", index=3).x)
    assert not torch.equal(a.x, task.sample(16, split="train", index=4).x)
    other_seed = type(task)(
        **{**task.config, "seed": 1, **({"levels": tuple(task.config["levels"])} if "levels" in task.config else {})}
    )
    assert not torch.equal(a.x, other_seed.sample(16, split="train", index=3).x)
    for column in a.metadata.values():
        assert column.shape == (16,)


def test_flipflop_targets_by_brute_force():
    data = FlipFlop(2, n_steps=40, p_pulse=0.2).sample(6)
    x, y, mask = data.x.numpy(), data.y.numpy(), data.mask.numpy()
    for i in range(6):
        for k in range(2):
            held = 0.0
            for t in range(40):
                if x[i, t, k] != 0:
                    held = x[i, t, k]
                assert y[i, t, k] == held and mask[i, t, k] == (held != 0)
    assert set(np.unique(x)) <= {-1.0, 0.0, 1.0}


def test_flipflop_metric_and_loss():
    task = FlipFlop(2, n_steps=20)
    data = task.sample(4)
    assert task.metric(data.y.clone(), data) == 1.0
    assert task.metric(-data.y, data) == 0.0
    assert float(task.loss(data.y.clone(), data)) == 0.0


def test_associative_retrieval_by_parsing_the_text():
    task = AssociativeRetrieval(5)
    data = task.sample(20)
    for x, y in zip(data.x, data.y, strict=True):
        text = task.decode(x)
        assert len(text) == 13 and text[-3:-1] == "??"
        pairs = dict(zip(text[0:10:2], text[1:10:2], strict=True))
        assert len(pairs) == 5  # distinct keys
        assert int(pairs[text[-1]]) == int(y)
    with pytest.raises(ArgumentError, match="n_pairs: got 27"):
        AssociativeRetrieval(27)


def test_occluded_digits_levels_and_disjoint_images():
    images, labels, splits = _digits(16)
    assert not set(splits["train"]) & set(splits["test"])
    task = OccludedDigits(image_size=16, levels=(0, 5))
    data = task.sample(64, split="test")
    ids, occ = data.metadata["image_id"], data.metadata["occlusion"]
    assert set(ids) <= set(splits["test"])
    np.testing.assert_array_equal(data.metadata["label"], labels[ids])
    clean = occ == 0
    np.testing.assert_array_equal(data.x[clean, 0].numpy(), images[ids[clean]])
    assert (data.x[~clean, 0].numpy() >= images[ids[~clean]]).all()  # debris only adds (max)
    assert (data.x[~clean, 0].numpy() > images[ids[~clean]]).any()
    with pytest.raises(UnknownNameError, match="split: got 'val'"):
        task.sample(2, split="val")


def test_digit_sequences_ascend():
    images, labels, _ = _digits(8)
    data = DigitSequences(length=12, steps_per_digit=2).sample(5, split="test")
    assert tuple(data.x.shape) == (5, 24, 64)
    flat = images.reshape(len(images), 64)
    for i in range(5):
        shown = []
        for t in range(0, 24, 2):
            assert torch.equal(data.x[i, t], data.x[i, t + 1])
            match = np.flatnonzero((flat == data.x[i, t].numpy()).all(axis=1))
            shown.append(set(labels[match]))
        start = data.metadata["start"][i]
        for k, candidates in enumerate(shown):
            assert (start + k) % 10 in candidates
    assert data.metadata["last"].tolist() == ((data.metadata["start"] + 11) % 10).tolist()

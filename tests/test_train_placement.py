"""`train` and `evaluate` put a task's batches where the model computes: its device, its floating dtype."""

import numpy as np
import pytest
import torch
from torch import nn

import rnnprobe.models as zoo
from rnnprobe.errors import ArgumentError
from rnnprobe.models.placement import batch_for, model_placement
from rnnprobe.models.training import evaluate, train
from rnnprobe.tasks import ContextDependentDecision, FlipFlop

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on CI)")


def reference_training(model, task, steps, forward, lr=1e-2, batch_size=16):
    """Adam with the gradient clipped at 1, the batches cast to float64 by hand."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for step in range(steps):
        data = task.sample(batch_size, split="train", index=step)
        data.x, data.y = data.x.double(), data.y.double() if data.y.is_floating_point() else data.y
        loss = task.loss(forward(data.x), data)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()
    return model


@pytest.mark.parametrize(
    ("make", "task", "path"),
    [
        (lambda: zoo.VanillaRNN(2, 6, 2), FlipFlop(2, n_steps=15), "fused_forward"),  # fused
        (lambda: zoo.CTRNN(4, 6, 2), ContextDependentDecision(), "__call__"),  # stepped; integer labels
    ],
)
def test_a_float64_model_trains_on_float64_batches(make, task, path):
    """A float64 model trained by `train` ends at the weights of a hand-written loop on float64 batches, exactly."""
    torch.manual_seed(0)
    model = make().double()
    reference = make().double()
    reference.load_state_dict(model.state_dict())
    history = train(model, task, steps=6, lr=1e-2, batch_size=16, progress=False)
    reference_training(reference, task, 6, getattr(reference, path))
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert p.dtype == torch.float64
        assert torch.equal(p, q)
    data = task.sample(512, split="test", index=0)
    with torch.no_grad():
        expected = task.metric(reference(data.x.double()), data)
    assert history.eval_metric[-1] == evaluate(model, task) == expected


def test_batch_for_casts_floating_tensors_only():
    model = zoo.GRU(3, 4, 2).double()
    data = ContextDependentDecision().sample(5)
    moved = batch_for(data, *model_placement(model))
    assert moved.x.dtype == torch.float64 and torch.equal(moved.x, data.x.double())
    assert moved.y.dtype == data.y.dtype == torch.int64 and torch.equal(moved.y, data.y)  # labels keep theirs
    assert moved.mask.dtype == torch.bool and torch.equal(moved.mask, data.mask)
    assert moved.metadata is data.metadata
    targets = batch_for(FlipFlop(2).sample(3), *model_placement(model))
    assert targets.y.dtype == torch.float64  # floating targets take the model's dtype
    assert batch_for(data, *model_placement(zoo.GRU(3, 4, 2))).x is data.x  # nothing to do: the same tensor


def test_a_model_on_the_meta_device_is_refused():
    model = zoo.GRU(2, 4, 2).to("meta")
    with pytest.raises(ArgumentError, match="meta device"):
        train(model, FlipFlop(2), steps=1, progress=False)
    with pytest.raises(ArgumentError, match="meta device"):
        evaluate(model, FlipFlop(2))


@CUDA
@pytest.mark.parametrize("make", [lambda: zoo.GRU(2, 16, 2), lambda: zoo.CTRNN(2, 16, 2)])
def test_a_cuda_model_trains_where_it_is(make, monkeypatch):
    """A model moved to the GPU trains there (batches moved to it), to the CPU's weights within rounding
    (cuDNN's TF32 turned off: float32 throughout, as on the CPU).
    """
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(0)
    cpu = make()
    gpu = make().to("cuda")
    gpu.load_state_dict(cpu.state_dict())
    task = FlipFlop(2, n_steps=20)
    history_cpu = train(cpu, task, steps=5, progress=False)
    history_gpu = train(gpu, task, steps=5, progress=False)
    for p, q in zip(cpu.parameters(), gpu.parameters(), strict=True):
        assert q.device.type == "cuda"
        scale = float(p.abs().max())
        np.testing.assert_allclose(q.detach().cpu().numpy(), p.detach().numpy(), atol=1e-4 * scale)
    np.testing.assert_allclose(history_gpu.loss, history_cpu.loss, rtol=1e-4)


@CUDA
@pytest.mark.parametrize("name", ["flipflop-gru", "occluded-bl"])
def test_a_recipes_cuda_model_is_evaluated_where_it_is(name, monkeypatch):
    """evaluate_recipe of a recipe's model moved to the GPU: its trials moved to it, the CPU's metrics (TF32 off)."""
    from rnnprobe.models.recipes import RECIPES, evaluate_recipe

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    model, task = RECIPES[name].build(seed=0)
    on_cpu = evaluate_recipe(name, model, task, n=64)
    on_gpu = evaluate_recipe(name, model.to("cuda"), task, n=64)
    np.testing.assert_allclose(list(on_gpu.values()), list(on_cpu.values()), rtol=1e-4)


@CUDA
def test_a_cuda_models_dropout_draws_from_the_seeded_device_generator():
    """Dropout on the GPU draws from the CUDA generator, which `train` seeds: two runs from the same weights end
    equal however far the generator had advanced (unseeded, the masks would differ)."""
    from torch import nn

    torch.manual_seed(0)
    start = zoo.from_module(nn.GRU(2, 16, num_layers=2, dropout=0.5, batch_first=True), readout=nn.Linear(16, 2))
    runs = []
    for advance in (0, 5):
        model = zoo.from_module(nn.GRU(2, 16, num_layers=2, dropout=0.5, batch_first=True), readout=nn.Linear(16, 2))
        model.load_state_dict(start.state_dict())
        model.to("cuda")
        torch.rand(advance + 1, device="cuda")  # the device's generator moved on between the runs
        train(model, FlipFlop(2, n_steps=20), steps=3, seed=5, progress=False)
        runs.append(model)
    for p, q in zip(runs[0].parameters(), runs[1].parameters(), strict=True):
        assert torch.equal(p, q)

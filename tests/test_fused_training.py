"""`TorchRNNStep.fused_forward` (torch's fused recurrent module) against the step loop, and where `train` uses it."""

import pytest
import torch
from torch import nn

import rnnprobe
from rnnprobe.models.base import watch_steps
from rnnprobe.models.recurrent import GRU, LSTM, TorchRNNStep, VanillaRNN, from_module
from rnnprobe.tasks import FlipFlop

MODELS = {
    "rnn-tanh": lambda: VanillaRNN(3, 12, 2),
    "rnn-relu-2": lambda: VanillaRNN(3, 12, 2, nonlinearity="relu", num_layers=2),
    "gru-2": lambda: GRU(3, 12, 2, num_layers=2),
    "lstm": lambda: LSTM(3, 12, 2),
    "lstm-embedded-2": lambda: LSTM(3, 12, 2, num_layers=2, embedding_size=5),
    "module-seq-first": lambda: from_module(nn.GRU(3, 12, bias=False), readout=nn.Linear(12, 2)),
}


def _random_state(model, batch, dtype):
    state = model.init_state(batch)
    leaves = state if isinstance(state, tuple) else (state,)
    drawn = tuple(torch.randn(leaf.shape, dtype=dtype) for leaf in leaves)
    return drawn if isinstance(state, tuple) else drawn[0]


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_forward_equals_the_step_loop_outputs_and_gradients(name, dtype):
    """Outputs and every parameter's gradient, from zero and from a given state: float64 to 1e-12, float32 to
    1e-5 (relative to the largest value)."""
    torch.manual_seed(0)
    model = MODELS[name]().to(dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    x = torch.randn(6, 9, 3, dtype=dtype)
    for state in (None, _random_state(model, 6, dtype)):
        runs = []
        for forward in (model.forward, model.fused_forward):
            model.zero_grad()
            out = forward(x, state)
            (out * torch.linspace(-1, 2, out.numel(), dtype=dtype).view_as(out)).sum().backward()
            runs.append([out.detach(), *(p.grad.clone() for p in model.parameters())])
        assert len(runs[0]) == 1 + len(list(model.parameters()))
        for loop, fused in zip(*runs, strict=True):
            torch.testing.assert_close(fused, loop, rtol=0, atol=tol * float(loop.abs().max()))


def test_fusable_only_where_nothing_watches_the_steps():
    model = GRU(3, 8, 2, num_layers=2)
    assert model.fusable()
    for part in (model.taps[0]["h"], model.rnn, model.readout):  # a tap recorded, the module, the readout
        handle = part.register_forward_hook(lambda *_: None)
        assert not model.fusable()
        handle.remove()
    tap = model.taps[1]["h"]
    for register in (tap.register_forward_pre_hook, tap.register_full_backward_hook,
                     tap.register_full_backward_pre_hook):  # fmt: skip
        handle = register(lambda *_: None)
        assert not model.fusable()
        handle.remove()
    handle = nn.modules.module.register_module_forward_hook(lambda *_: None)  # every module's
    assert not model.fusable()
    handle.remove()
    with watch_steps(model, after=lambda t: None):  # the step counter patches model.step
        assert not model.fusable()
    assert model.fusable()
    model.rnn.dropout = 0.5  # between layers: in training only
    assert not model.train().fusable() and model.eval().fusable()


def test_fusable_refuses_other_steps_readouts_and_projections():
    class Own(GRU):
        def step(self, x_t, state):
            return super().step(x_t, state)

    class LearnedStart(GRU):  # a learned initial state, which fused_forward would skip
        def init_state(self, batch_size):
            return super().init_state(batch_size) + 0.5

    class Noisy(GRU):  # noise added to the inputs in forward
        def forward(self, x, state=None, *, return_state=False):
            return super().forward(x + 0.1 * torch.randn_like(x), state, return_state=return_state)

    for cls in (Own, LearnedStart, Noisy):
        assert not cls(3, 8, 2).fusable(), cls.__name__
    assert not from_module(nn.GRU(3, 8, batch_first=True), readout=nn.Sequential(nn.Linear(8, 2))).fusable()
    assert not from_module(nn.LSTM(3, 8, batch_first=True, proj_size=4)).fusable()
    assert from_module(nn.LSTM(3, 8, batch_first=True)).fusable()


def _counted(monkeypatch):
    """{"fused": calls of TorchRNNStep.fused_forward}, counted from now on."""
    calls = {"fused": 0}
    fused = TorchRNNStep.fused_forward

    def counting(self, *args, **kwargs):
        calls["fused"] += 1
        return fused(self, *args, **kwargs)

    monkeypatch.setattr(TorchRNNStep, "fused_forward", counting)
    return calls


def test_train_runs_the_fused_forward_where_fusable_else_every_step(monkeypatch):
    calls = _counted(monkeypatch)
    task = FlipFlop(n_bits=2, n_steps=7)
    torch.manual_seed(0)
    model = GRU(2, 8, 2)
    rnnprobe.train(model, task, steps=3, batch_size=4, progress=False)
    assert calls["fused"] == 3
    seen = []  # a hook of the user's on a tap (an activity penalty, say) sees every step of every batch
    model.taps[0]["h"].register_forward_hook(lambda module, args, out: seen.append(out.shape))
    rnnprobe.train(model, task, steps=3, batch_size=4, progress=False)
    assert calls["fused"] == 3 and len([s for s in seen if s[0] == 4]) == 3 * 7


def test_train_fused_follows_the_step_loops_training():
    """Five Adam steps of a GRU and an LSTM through the fused module end at the step loop's weights (float32
    rounding apart: 1e-4 of the largest weight)."""
    task = FlipFlop(n_bits=2, n_steps=10)
    for cls in (GRU, LSTM):
        weights = []
        for fused in (True, False):
            torch.manual_seed(0)
            model = cls(2, 16, 2, num_layers=2)
            if not fused:  # a hook that changes nothing, which sends train through the step loop
                model.taps[0]["h"].register_forward_hook(lambda *_: None)
            rnnprobe.train(model, task, steps=5, lr=1e-2, batch_size=8, progress=False)
            weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        assert not torch.equal(weights[0], weights[1])  # two roundings
        torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=1e-4 * float(weights[1].abs().max()))

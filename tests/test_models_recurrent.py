import numpy as np
import pytest
import torch
from torch import nn

import rnnprobe
from rnnprobe import Tap
from rnnprobe.errors import ArgumentError, ArgumentTypeError, ShapeError
from rnnprobe.models.recurrent import GRU, LSTM, VanillaRNN, from_module


@pytest.mark.parametrize(
    "module",
    [
        nn.LSTM(3, 6, num_layers=2, batch_first=True),
        nn.LSTM(3, 6, num_layers=2, batch_first=True, proj_size=4),
        nn.LSTM(3, 6, batch_first=False, bias=False),
        nn.GRU(3, 6, num_layers=3, batch_first=True),
        nn.RNN(3, 6, num_layers=2, nonlinearity="relu"),
    ],
    ids=["lstm2", "lstm-proj", "lstm-nobias-seqfirst", "gru3", "rnn-relu"],
)
def test_from_module_equals_the_module(module):
    torch.manual_seed(0)
    module.eval()
    model = from_module(module)
    x = torch.randn(4, 9, 3)
    with torch.no_grad():
        expected, hidden = module(x if module.batch_first else x.transpose(0, 1))
        expected = expected if module.batch_first else expected.transpose(0, 1)
        out, state = model(x, return_state=True)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    torch_state = model.torch_state(state)
    if isinstance(module, nn.LSTM):
        torch.testing.assert_close(torch_state[0], hidden[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(torch_state[1], hidden[1], rtol=0, atol=1e-6)
    else:
        torch.testing.assert_close(torch_state, hidden, rtol=0, atol=1e-6)
    # weights are shared, not copied
    with torch.no_grad():
        module.weight_hh_l0.mul_(0.5)
        expected2 = module(x if module.batch_first else x.transpose(0, 1))[0]
        expected2 = expected2 if module.batch_first else expected2.transpose(0, 1)
    torch.testing.assert_close(model(x), expected2, rtol=0, atol=1e-6)


def test_step_loop_equals_forward_and_initial_state_is_used():
    torch.manual_seed(1)
    model = LSTM(3, 8, 2, num_layers=2).eval()
    x = torch.randn(5, 7, 3)
    state = model.init_state(5)
    outs = []
    for t in range(7):
        out, state = model.step(x[:, t], state)
        outs.append(out)
    torch.testing.assert_close(torch.stack(outs, 1), model(x), rtol=0, atol=0)
    start = (torch.randn(5, 2, 8), torch.randn(5, 2, 8))
    with torch.no_grad():
        ref = model.rnn(x, model.torch_state(start))[0]
    torch.testing.assert_close(model(x, start), model.readout(ref), rtol=0, atol=1e-6)


def test_pack_unpack_round_trip():
    model = LSTM(2, 5, 1, num_layers=3)
    state = (torch.randn(4, 3, 5), torch.randn(4, 3, 5))
    vec = model.pack_state(state)
    assert vec.shape == (4, 30)
    back = model.unpack_state(vec)
    torch.testing.assert_close(back[0], state[0], rtol=0, atol=0)
    torch.testing.assert_close(back[1], state[1], rtol=0, atol=0)
    with pytest.raises(ShapeError, match=r"packs into \(batch, 30\)"):
        model.unpack_state(torch.zeros(4, 29))


def test_recording_a_zoo_model_records_its_taps():
    torch.manual_seed(2)
    model = GRU(3, 6, 2, num_layers=2, record_gates=True)
    x = torch.randn(5, 4, 3)
    rec = rnnprobe.record(model, x, progress=False)
    assert rec.layers == ["l0.h", "l0.r", "l0.z", "l0.n", "l1.h", "l1.r", "l1.z", "l1.n"]
    with torch.no_grad():
        out = model.rnn(x)[0]
    np.testing.assert_allclose(rec["l1.h"], out.numpy(), atol=1e-6)
    # the unrolled recording of the torch module inside gives the same gates
    inner = rnnprobe.record(model, x, layers=["rnn:l0.z"], forward=lambda m, xb: m.rnn(xb), progress=False)
    np.testing.assert_allclose(inner["rnn:l0.z"], rec["l0.z"], atol=1e-6)
    # a tap is also selectable by its module path
    by_path = rnnprobe.record(model, x, layers=["taps.1.h"], progress=False)
    assert by_path.layers == ["l1.h"]


def test_named_taps_must_be_unique_and_valid():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = Tap("h"), Tap("h")

        def forward(self, x):
            return self.b(self.a(x))

    with pytest.raises(ArgumentError, match="both called 'h'"):
        rnnprobe.record(Twice(), torch.zeros(2, 2), progress=False)
    with pytest.raises(ArgumentError, match="without ':'"):
        Tap("a:b")


def test_bad_input():
    model = VanillaRNN(3, 4, 2)
    with pytest.raises(ShapeError, match=r"takes \(batch, time, 3\) inputs, got Tensor of shape \(5, 3\)"):
        model(torch.zeros(5, 3))
    with pytest.raises(ArgumentTypeError, match=r"Pass a torch\.Tensor"):
        model(np.zeros((1, 2, 3)))
    with pytest.raises(ArgumentError, match="nonlinearity: got 'sigmoid'"):
        VanillaRNN(3, 4, 2, nonlinearity="sigmoid")
    with pytest.raises(ArgumentError, match="hidden_size: got 0"):
        LSTM(3, 0, 2)
    with pytest.raises(ArgumentError, match="bidirectional"):
        from_module(nn.GRU(2, 3, bidirectional=True))
    with pytest.raises(ArgumentTypeError, match=r"Pass an nn\.LSTM"):
        from_module(nn.Linear(2, 3))

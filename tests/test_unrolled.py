import itertools

import pytest
import torch
from torch import nn

from rnnprobe.errors import ArgumentTypeError
from rnnprobe.models.unrolled import state_names, unrolled_forward

CONFIGS = [
    (cls, layers, bidirectional, batch_first, proj, bias)
    for cls, layers, bidirectional, batch_first, proj, bias in itertools.product(
        [torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN], [1, 3], [False, True], [False, True], [0, 2], [True, False]
    )
    if not (proj and cls is not torch.nn.LSTM)
]


@pytest.mark.parametrize(("cls", "layers", "bidirectional", "batch_first", "proj", "bias"), CONFIGS)
def test_matches_torch_module(cls, layers, bidirectional, batch_first, proj, bias):
    torch.manual_seed(0)
    kwargs = {"proj_size": proj} if proj else {}
    module = cls(4, 5, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias, **kwargs)
    x = torch.randn(3, 7, 4)
    with torch.no_grad():
        expected_out, expected_hidden = module(x)
        out, hidden, states = unrolled_forward(module, x)
    torch.testing.assert_close(out, expected_out, rtol=0, atol=1e-6)
    if cls is torch.nn.LSTM:
        torch.testing.assert_close(hidden[0], expected_hidden[0], rtol=0, atol=1e-6)
        torch.testing.assert_close(hidden[1], expected_hidden[1], rtol=0, atol=1e-6)
    else:
        torch.testing.assert_close(hidden, expected_hidden, rtol=0, atol=1e-6)
    assert sorted(states) == sorted(state_names(module))
    # the last layer's per-step h is the module output (direction by direction)
    batch_major = out if batch_first else out.transpose(0, 1)
    size = proj or 5
    torch.testing.assert_close(states[f"l{layers - 1}.h"], batch_major[..., :size], rtol=0, atol=0)
    if bidirectional:
        torch.testing.assert_close(states[f"l{layers - 1}_reverse.h"], batch_major[..., size:], rtol=0, atol=0)


def test_lstm_cell_state_and_gates_are_consistent():
    torch.manual_seed(1)
    lstm = torch.nn.LSTM(2, 6, num_layers=2, batch_first=True)
    x = torch.randn(4, 9, 2)
    with torch.no_grad():
        _, (h_n, c_n), s = unrolled_forward(lstm, x)
    torch.testing.assert_close(s["l1.c"][:, -1], c_n[1], rtol=0, atol=1e-6)
    torch.testing.assert_close(s["l0.c"][:, -1], c_n[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(s["l1.h"][:, -1], h_n[1], rtol=0, atol=1e-6)
    # c_t = f_t c_{t-1} + i_t g_t and h_t = o_t tanh(c_t), with c_{-1} = 0
    c_prev = torch.cat([torch.zeros(4, 1, 6), s["l0.c"][:, :-1]], dim=1)
    torch.testing.assert_close(s["l0.c"], s["l0.f"] * c_prev + s["l0.i"] * s["l0.g"], rtol=0, atol=1e-6)
    torch.testing.assert_close(s["l0.h"], s["l0.o"] * torch.tanh(s["l0.c"]), rtol=0, atol=1e-6)
    assert float(s["l0.i"].min()) >= 0 and float(s["l0.g"].min()) >= -1


def test_initial_state_and_unbatched():
    torch.manual_seed(2)
    lstm = torch.nn.LSTM(3, 4, num_layers=2)
    x = torch.randn(6, 3)  # unbatched (T, F)
    h0, c0 = torch.randn(2, 4), torch.randn(2, 4)
    with torch.no_grad():
        expected, (eh, ec) = lstm(x, (h0, c0))
        out, (h, c), states = unrolled_forward(lstm, x, (h0, c0), keep={"l1.c"})
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(c, ec, rtol=0, atol=1e-6)
    torch.testing.assert_close(h, eh, rtol=0, atol=1e-6)
    assert list(states) == ["l1.c"] and states["l1.c"].shape == (6, 4)
    gru = torch.nn.GRU(3, 4)
    h0 = torch.randn(1, 5, 4)
    xb = torch.randn(6, 5, 3)
    with torch.no_grad():
        torch.testing.assert_close(unrolled_forward(gru, xb, h0)[0], gru(xb, h0)[0], rtol=0, atol=1e-6)


def test_bad_input():
    with pytest.raises(ArgumentTypeError, match=r"Pass an nn\.LSTM"):
        unrolled_forward(torch.nn.Linear(2, 2), torch.zeros(1, 2))
    lstm = torch.nn.LSTM(2, 3)
    packed = torch.nn.utils.rnn.pack_sequence([torch.zeros(3, 2), torch.zeros(2, 2)])
    with pytest.raises(ArgumentTypeError, match="PackedSequence"):
        unrolled_forward(lstm, packed)


@pytest.mark.parametrize("cls", [nn.GRU, nn.LSTM])
def test_unrolled_equals_fused_in_float64_on_long_sequences(cls):
    """Only float32 rounding separates the unrolled recurrence from the fused kernel."""
    torch.manual_seed(0)
    module = cls(5, 64, num_layers=2, batch_first=True).double()
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(3)
        x = torch.randn(8, 300, 5, dtype=torch.float64)
        out, _, _ = unrolled_forward(module, x)
        torch.testing.assert_close(out, module(x)[0], rtol=0, atol=1e-12)

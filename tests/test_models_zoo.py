import numpy as np
import pytest
import torch

import rnnprobe
from rnnprobe.errors import ArgumentError, NonFiniteError, ShapeError, UnknownNameError
from rnnprobe.models import BLT, CTRNN, EnergyEfficientRNN, FastWeightsRNN, error_units, prediction_units


def test_ctrnn_is_an_euler_step_of_its_vector_field():
    torch.manual_seed(0)
    model = CTRNN(2, 6, 1, tau=50.0, dt=10.0, nonlinearity="tanh")
    x, u = torch.randn(3, 6), torch.randn(3, 2)
    w_in, b_in = model.input.weight, model.input.bias
    expected = x + 0.2 * (-x + torch.tanh(x) @ model.recurrent.weight.T + u @ w_in.T + b_in)
    _, new = model.step(u, x)
    torch.testing.assert_close(new, expected, rtol=0, atol=1e-6)
    assert model.continuous_time


def test_ctrnn_fixed_point_in_closed_form_and_with_dt():
    model = CTRNN(2, 4, 1, nonlinearity="relu")
    with torch.no_grad():
        model.recurrent.weight.zero_()  # then dx/dt = 0 at x* = W_in u + b, for any dt
    u = torch.randn(5, 2)
    fixed = model.input(u).detach()
    for twin in (model, model.with_dt(1.0), model.with_dt(100.0)):
        torch.testing.assert_close(twin.step(u, fixed)[1], fixed, rtol=0, atol=1e-6)
        torch.testing.assert_close(twin.vector_field(fixed, u), torch.zeros_like(fixed), rtol=0, atol=1e-6)
    finer = model.with_dt(5.0)
    assert finer.alpha == 0.05 and model.alpha == 0.2 and finer.config["dt"] == 5.0
    assert torch.equal(finer.recurrent.weight, model.recurrent.weight)
    with pytest.raises(ArgumentError, match="Euler step longer than the time constant"):
        CTRNN(2, 4, 1, tau=10.0, dt=20.0)


def test_ctrnn_noise_is_seeded_through_record():
    model = CTRNN(1, 5, 1, sigma_rec=0.1)
    x = torch.zeros(4, 6, 1)
    a = rnnprobe.record(model, x, seed=3, progress=False)["x"]
    b = rnnprobe.record(model, x, seed=3, progress=False)["x"]
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).max() > 0


def _fast_weights_reference(model: FastWeightsRNN, x: np.ndarray) -> np.ndarray:
    """Ba et al. 2016 equations for one sample at a time, in float64 numpy."""
    W = model.recurrent.weight.detach().double().numpy()
    C, c = model.input.weight.detach().double().numpy(), model.input.bias.detach().double().numpy()
    g, b = model.norm.weight.detach().double().numpy(), model.norm.bias.detach().double().numpy()
    relu = lambda v: np.maximum(v, 0)  # noqa: E731

    def ln(v):
        return (v - v.mean()) / np.sqrt(v.var() + model.norm.eps) * g + b

    out = []
    for sample in x:
        h, A, hs_all = np.zeros(model.hidden_size), np.zeros((model.hidden_size,) * 2), []
        for x_t in sample:
            A = model.decay * A + model.fast_lr * np.outer(h, h)
            slow = W @ h + C @ x_t + c
            hs = relu(slow)
            for _ in range(model.inner_steps):
                hs = relu(ln(slow + A @ hs))
            h = hs
            hs_all.append(h)
        out.append(hs_all)
    return np.array(out)


@pytest.mark.parametrize("inner_steps", [1, 3])
def test_fast_weights_match_the_paper_equations(inner_steps):
    torch.manual_seed(1)
    model = FastWeightsRNN(5, 7, 3, inner_steps=inner_steps)
    x = torch.randn(3, 6, 5)
    rec = rnnprobe.record(model, x, progress=False)
    np.testing.assert_allclose(rec["h"], _fast_weights_reference(model, x.double().numpy()), atol=1e-5)
    assert rec.shapes["inner"] == (3, 6, inner_steps, 7)


def test_fast_weights_layer_norm_is_per_sample_not_over_the_batch():
    torch.manual_seed(2)
    model = FastWeightsRNN(4, 6, 2)
    x = torch.randn(2, 5, 4)
    alone = model(x[:1])
    x_other = x.clone()
    x_other[1] = 100 * torch.randn(5, 4)
    torch.testing.assert_close(model(x_other)[:1], alone, rtol=0, atol=1e-6)


def test_fast_weights_state_and_optional_A_tap():
    model = FastWeightsRNN(4, 6, 2, record_fast_weights=True)
    rec = rnnprobe.record(model, torch.randn(2, 3, 4), progress=False)
    assert rec.shapes["A"] == (2, 3, 6, 6)
    np.testing.assert_allclose(rec["A"], np.swapaxes(rec["A"], -1, -2), atol=1e-6)  # sums of outer products
    h, A = model.init_state(2)
    assert model.pack_state((h, A)).shape == (2, 6 + 36)


@pytest.mark.parametrize("connections", ["B", "BL", "BT", "BLT", "B-K", "B-F"])
def test_blt_connection_sets(connections):
    torch.manual_seed(3)
    model = BLT(connections, image_size=16, maps=6, steps=3)
    assert len(model.conv.lateral) == (2 if "L" in connections else 0)
    assert len(model.conv.top_down) == (1 if connections in ("BT", "BLT") else 0)
    x = torch.rand(4, 1, 16, 16)
    rec = rnnprobe.record(model, x, progress=False)
    assert rec.layers == ["layer0", "layer1", "readout"]
    assert rec.shapes["layer0"][:2] == (4, 3) and rec.shapes["layer1"][-1] == 8
    logits = model(x)
    np.testing.assert_allclose(rec["readout"], logits.detach().numpy(), atol=1e-6)
    if connections.startswith("B") and "L" not in connections and "T" not in connections:
        torch.testing.assert_close(logits[:, 0], logits[:, 2])  # feedforward: the same every step
    else:
        assert not torch.allclose(logits[:, 0], logits[:, 2])


def test_blt_first_step_is_the_feedforward_sweep():
    torch.manual_seed(4)
    blt = BLT("BLT", image_size=16, maps=6, steps=2)
    b = BLT("B", image_size=16, maps=6, steps=2)
    b.load_state_dict(blt.state_dict(), strict=False)
    x = torch.rand(3, 1, 16, 16)
    torch.testing.assert_close(blt(x)[:, 0], b(x)[:, 0], rtol=0, atol=1e-6)


def test_blt_controls_are_parameter_matched_to_bl():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    bl = count(BLT("BL"))
    for control in ("B-K", "B-F"):
        assert abs(count(BLT(control)) - bl) / bl < 0.1, control
    assert BLT("B-K").kernel_size > 3 and BLT("B-F").maps > 32


def test_blt_bad_input():
    with pytest.raises(UnknownNameError, match="connections: got 'LT'"):
        BLT("LT")
    with pytest.raises(ArgumentError, match="multiple of 4"):
        BLT(image_size=30, layers=3)
    with pytest.raises(ArgumentError, match="odd positive integer"):
        BLT(kernel_size=4)
    with pytest.raises(ShapeError, match=r"images of shape \(batch, 1, 32, 32\).*x\[:, None\]"):
        BLT()(torch.rand(2, 32, 32))


def test_energy_efficient_rnn_equations_and_loss():
    torch.manual_seed(5)
    model = EnergyEfficientRNN(6)
    x = torch.rand(2, 4, 6)
    a = model(x)
    W = model.recurrent.weight
    h = torch.zeros(2, 6)
    for t in range(4):
        expected = h @ W.T + x[:, t]
        torch.testing.assert_close(a[:, t], expected, rtol=0, atol=1e-6)
        h = torch.relu(expected)
    torch.testing.assert_close(model.training_loss(a), a.abs().mean(dim=(0, 2)).sum())
    torch.testing.assert_close(a[:, 0], x[:, 0])  # nothing to predict the first input with


def test_prediction_and_error_units_on_planted_data(rng):
    labels = np.repeat(np.arange(3), 50)
    a = rng.normal(0, 0.1, size=(150, 10))
    a[labels == 0, 2] -= 3.0  # unit 2 predicts class 0
    a[labels == 1, 7] += 3.0  # unit 7 predicts class 1
    found = prediction_units(a, labels)
    assert found[0].tolist() == [2] and found[1].tolist() == [7] and found[2].tolist() == []
    np.testing.assert_array_equal(error_units(a, labels), [0, 1, 3, 4, 5, 6, 8, 9])
    with pytest.raises(ShapeError, match="one label per stimulus"):
        prediction_units(a, labels[:-1])
    # a NaN preactivation made its unit's median (or every class's centre) NaN: no unit found, all error units
    bad = a.copy()
    bad[5, 2] = np.nan
    with pytest.raises(NonFiniteError, match="preactivations"):
        error_units(bad, labels)
    with pytest.raises(ArgumentError, match="labels: 1 value"):
        prediction_units(a, np.where(np.arange(150) == 4, np.nan, labels))
    with pytest.raises(ArgumentError, match="threshold"):
        prediction_units(a, labels, threshold=-1.0)


def test_energy_efficient_rnn_learns_to_cancel_predictable_input():
    """A fast version of Ali et al.'s effect: trained on ascending digit sequences, the preactivation
    after the first step falls below what the input alone would give (W = 0)."""
    from rnnprobe.models.recipes import evaluate_recipe
    from rnnprobe.models.training import train
    from rnnprobe.tasks import DigitSequences

    torch.manual_seed(0)
    model, task = EnergyEfficientRNN(64), DigitSequences(length=10)
    train(model, task, steps=300, lr=3e-3, batch_size=64, progress=False)
    metrics = evaluate_recipe("energy-efficient", model, task, n=256)
    assert metrics["mean_abs_preactivation_after_first_step"] < 0.8 * metrics["input_only_baseline"]


def test_input_prediction_against_a_loop_and_bad_input():
    from rnnprobe.errors import NonFiniteError
    from rnnprobe.models import input_prediction

    rng = np.random.default_rng(3)
    x, a = rng.random((4, 5, 6)) + 0.1, rng.normal(size=(4, 5, 6))
    expected = [[1 - sum(a[i, t] ** 2) / sum(x[i, t] ** 2) for t in range(5)] for i in range(4)]
    np.testing.assert_allclose(input_prediction(a, x), expected, rtol=1e-12)
    torch.manual_seed(0)
    model = EnergyEfficientRNN(6)
    with torch.no_grad():
        out = model(torch.from_numpy(x).float()).numpy()
    np.testing.assert_allclose(input_prediction(out, x)[:, 0], 0, atol=1e-6)  # step 0: no recurrent drive yet
    with pytest.raises(ShapeError, match="preactivations"):
        input_prediction(a[:, :3], x)
    with pytest.raises(ArgumentError, match="all zeros"):
        input_prediction(a, np.zeros_like(x))
    with pytest.raises(NonFiniteError, match="NaN"):
        input_prediction(np.where(a > 1, np.nan, a), x)

"""Interventions and lesions: checked against edited copies of the weights and other architectures."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rnnprobe import record
from rnnprobe.errors import ArgumentError, ArgumentTypeError, ShapeError, UnknownNameError
from rnnprobe.models import BLT, CTRNN, LSTM, EnergyEfficientRNN, VanillaRNN
from rnnprobe.recording import Intervention, Lesion, intervene


def _blt(connections: str = "BLT", norm: str = "none", seed: int = 0) -> BLT:
    torch.manual_seed(seed)
    return BLT(connections, image_size=8, maps=4, steps=4, norm=norm, layers=2)


def _images(n: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def _snapshot(model: torch.nn.Module) -> dict:
    return {name: (id(p), p.detach().clone()) for name, p in model.named_parameters()}


def _assert_untouched(model: torch.nn.Module, before: dict) -> None:
    after = dict(model.named_parameters())
    assert set(after) == set(before)
    for name, (ident, value) in before.items():
        assert id(after[name]) == ident and isinstance(after[name], torch.nn.Parameter)
        assert torch.equal(after[name].detach(), value)
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
    assert "step" not in model.__dict__


IDENTITIES = [
    Intervention.scale("layer0", 1.0),
    Intervention.noise("layer1", 0.0, seed=3),
    Intervention.zero("layer0", units=np.zeros((4, 8, 8), bool)),
    Intervention.project_out("layer1", np.zeros((1, 4 * 4 * 4))),
    Lesion.cool("lateral", scale=1.0),
    Lesion.masked("conv.top_down.0.weight", np.ones((4, 4, 3, 3)), from_step=2),
]


@pytest.mark.parametrize("change", IDENTITIES, ids=lambda c: c.describe().get("kind", c.describe()["type"]))
def test_an_identity_intervention_leaves_every_output_equal(change):
    model, x = _blt(), _images()
    intact = record(model, x, progress=False)
    changed = record(model, x, progress=False, interventions=change)
    for layer in intact.layers:
        np.testing.assert_array_equal(changed.get(layer), intact.get(layer))
    assert changed.provenance["interventions"] == [change.describe()]
    assert intact.provenance["interventions"] == []


def test_zeroing_a_feature_map_equals_editing_a_copy_of_the_weights():
    model, x = _blt("BLT"), _images()
    edited = copy.deepcopy(model)
    with torch.no_grad():  # map 2 of layer 0 gets no input at all, so relu(0) = 0 at every step
        edited.conv.bottom_up[0].weight[2] = 0
        edited.conv.bottom_up[0].bias[2] = 0
        edited.conv.lateral[0].weight[2] = 0
        edited.conv.top_down[0].weight[:, 2] = 0  # ConvTranspose2d: (in, out, k, k)
    mask = np.zeros((4, 8, 8), bool)
    mask[2] = True
    with intervene(model, Intervention.zero("layer0", units=mask)):
        got = model(x)
    torch.testing.assert_close(got, edited(x), rtol=0, atol=1e-6)
    assert not torch.allclose(got, model(x), atol=1e-3)


def test_zeroing_a_hidden_unit_equals_editing_a_copy_of_the_weights():
    torch.manual_seed(0)
    model, x = VanillaRNN(3, 10, 2), torch.randn(5, 7, 3)
    edited = copy.deepcopy(model)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(edited.rnn, name)[4] = 0  # tanh(0) = 0: unit 4 stays silent
    with intervene(model, Intervention.zero("l0.h", units=[4])):
        got = model(x)
    torch.testing.assert_close(got, edited(x), rtol=0, atol=1e-6)


def test_an_intervention_on_a_lower_layer_reaches_the_layer_above():
    torch.manual_seed(0)
    model, x = LSTM(3, 6, 2, num_layers=2), torch.randn(4, 5, 3)
    intact = record(model, x, progress=False, layers=["l1.h"])
    changed = record(model, x, progress=False, layers=["l1.h"], interventions=Intervention.zero("l0.h", steps=[2]))
    diff = np.abs(changed.get("l1.h") - intact.get("l1.h")).max(axis=(0, 2))
    assert np.all(diff[:2] == 0) and np.all(diff[2:] > 1e-4)


def test_cooling_lateral_connections_of_bl_from_step_0_equals_the_b_architecture():
    bl, x = _blt("BL", norm="lrn"), _images()
    b = _blt("B", norm="lrn")
    b.load_state_dict({k: v for k, v in bl.state_dict().items() if ".lateral." not in k})
    with intervene(bl, Lesion.cool("lateral")):
        cooled = bl(x)
    torch.testing.assert_close(cooled, b(x), rtol=0, atol=1e-6)
    assert not torch.allclose(bl(x), b(x), atol=1e-3)


def test_a_lesion_from_a_later_step_leaves_the_earlier_steps_intact():
    model, x = _blt("BLT"), _images()
    intact = model(x)
    with intervene(model, Lesion.cool("top-down", from_step=2)):
        cooled = model(x)
        again = model(x)  # the step clock restarts with each forward call
    assert torch.equal(cooled[:, :2], intact[:, :2])
    assert (cooled[:, 2:] - intact[:, 2:]).abs().amax() > 1e-4
    assert torch.equal(cooled, again)


def test_a_weight_mask_equals_editing_a_copy_of_the_weights():
    torch.manual_seed(0)
    model, x = CTRNN(2, 12, 1, tau=100.0, dt=20.0), torch.randn(4, 9, 2)
    mask = (torch.rand(12, 12, generator=torch.Generator().manual_seed(5)) > 0.3).double().numpy()
    edited = copy.deepcopy(model)
    with torch.no_grad():
        edited.recurrent.weight.mul_(torch.as_tensor(mask, dtype=torch.float32))
    with intervene(model, Lesion.masked("recurrent.weight", mask)):
        got = model(x)
    torch.testing.assert_close(got, edited(x), rtol=0, atol=1e-6)


def test_the_mean_intervention_uses_the_reference_mean_at_each_step():
    model, x = _blt(), _images(8)
    reference = record(model, _images(20, seed=9), progress=False, layers=["layer1"])
    changed = record(model, x, progress=False, layers=["layer1"],
                     interventions=Intervention.mean("layer1", reference, steps=[1, 3]))  # fmt: skip
    got, mean = changed.get("layer1"), reference.get("layer1").mean(axis=0)
    for t in (1, 3):
        np.testing.assert_allclose(got[:, t], np.broadcast_to(mean[t], got[:, t].shape), rtol=1e-6, atol=1e-7)
    assert np.abs(got[:, 0] - mean[0]).max() > 1e-3


def test_projecting_out_a_subspace_leaves_states_orthogonal_to_it():
    model, x = _blt(), _images()
    basis = np.random.default_rng(0).normal(size=(3, 4 * 4 * 4))
    changed = record(model, x, progress=False, layers=["layer1"],
                     interventions=Intervention.project_out("layer1", basis))  # fmt: skip
    states = changed.get("layer1", flatten=True)
    intact = record(model, x, progress=False, layers=["layer1"]).get("layer1", flatten=True)
    assert np.abs(states @ basis.T).max() < 1e-4 * np.abs(intact @ basis.T).max()


def test_a_subspace_does_not_depend_on_the_scale_of_its_basis_rows():
    """Rows of 1e-12, or of 1e6 beside 1e-6 (a decoder's weights, components scaled by their variances), span
    what unit rows span: the rows below 1e-10 of the largest were dropped and their directions left in."""
    model, x = _blt(), _images()
    basis = np.random.default_rng(0).normal(size=(2, 4 * 4 * 4))
    unit = record(model, x, progress=False, layers=["layer1"],
                  interventions=Intervention.project_out("layer1", basis)).get("layer1")  # fmt: skip
    for scales in ([1e-12, 1e-12], [1e6, 1e-6], [1e200, 1e-200]):
        scaled = np.vstack([basis * np.array(scales)[:, None], np.zeros((1, basis.shape[1]))])  # and a zero row
        change = Intervention.project_out("layer1", scaled)
        got = record(model, x, progress=False, layers=["layer1"], interventions=change).get("layer1")
        np.testing.assert_allclose(got, unit, rtol=0, atol=1e-6, err_msg=str(scales))


def test_noise_is_seeded_and_has_the_asked_sd():
    model, x = _blt(), _images(30)
    intact = record(model, x, progress=False, layers=["layer0"]).get("layer0")
    runs = [
        record(
            model,
            x,
            progress=False,
            layers=["layer0"],
            batch_size=10,
            interventions=Intervention.noise("layer0", 0.5, steps=[0], seed=s),
        ).get("layer0")
        for s in (1, 1, 2)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
    added = runs[0][:, 0] - intact[:, 0]
    assert abs(added.std() - 0.5) < 0.02


def test_a_clamp_holds_the_selected_units():
    torch.manual_seed(0)
    model, x = EnergyEfficientRNN(16), torch.rand(5, 6, 16)
    rec = record(model, x, progress=False, interventions=Intervention.clamp("h", 0.25, units=[3, 7]))
    assert np.all(rec.get("h")[:, :, [3, 7]] == np.float32(0.25))


def test_the_model_is_unchanged_after_an_exception():
    model, x = _blt(), _images()
    before = _snapshot(model)
    expected = model(x)
    with pytest.raises(RuntimeError, match="boom"):
        with intervene(model, [Lesion.cool("lateral", from_step=1), Intervention.zero("layer0")]):
            model(x)
            raise RuntimeError("boom")
    _assert_untouched(model, before)
    assert torch.equal(model(x), expected)


@pytest.mark.parametrize(
    "change, error, match",
    [
        (Intervention.zero("layer0", steps=[7]), ArgumentError, "step 7 was never reached"),
        (Intervention.zero("layer0", units=np.zeros(5, bool)), ShapeError, "mask of shape"),
        (Intervention.zero("layer0", units=[999]), ShapeError, "out of range"),
        (Intervention.zero("nothing"), UnknownNameError, "not a module"),
        (Lesion.cool("top-down"), UnknownNameError, "no connection type 'top-down'"),
        (Lesion.cool("lateral", layers=[3]), ArgumentError, "layers 0 to 1"),
        (Lesion.masked("conv.lateral.0.weight", np.ones((2, 2))), ShapeError, "whose shape is"),
        (Intervention.project_out("layer1", np.ones((1, 5))), ShapeError, "flattened"),
    ],
)
def test_bad_input_gets_one_clear_error_and_leaves_the_model_untouched(change, error, match):
    model, x = _blt("BL"), _images()
    before = _snapshot(model)
    expected = model(x)
    with pytest.raises(error, match=match):
        record(model, x, progress=False, interventions=change)
    _assert_untouched(model, before)
    assert torch.equal(model(x), expected)


def test_bad_specifications_are_refused_when_built():
    with pytest.raises(UnknownNameError, match="kind"):
        Intervention("layer0", "freeze")
    with pytest.raises(ArgumentError, match="steps"):
        Intervention.zero("layer0", steps=[-1])
    with pytest.raises(ArgumentError, match="units"):
        Intervention.zero("layer0", units=[0.5])
    with pytest.raises(ArgumentError, match="sd"):
        Intervention.noise("layer0", float("nan"))
    with pytest.raises(ArgumentError, match="value"):
        Intervention.clamp("layer0", [1.0, np.inf])
    with pytest.raises(ArgumentTypeError, match="reference"):
        Intervention.mean("layer0", np.zeros(3))
    with pytest.raises(ArgumentError, match="exactly one"):
        Lesion(connection="lateral", parameter="x", mask=np.ones(1))
    with pytest.raises(ArgumentError, match="mask"):
        Lesion.masked("w", [np.nan])
    with pytest.raises(ArgumentTypeError, match="interventions"):
        record(_blt(), _images(), progress=False, interventions=["zero"])


def test_observe_only_taps_are_refused():
    model = LSTM(3, 6, 2, record_gates=True)
    with pytest.raises(ArgumentError, match="observe-only"):
        with intervene(model, Intervention.zero("l0.f")):
            pass


def test_a_timed_lesion_needs_the_step_protocol():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4))
    with pytest.raises(ArgumentError, match="no step method"):
        with intervene(model, Lesion.masked("0.weight", np.zeros((4, 3)), from_step=1)):
            pass
    with intervene(model, Lesion.masked("0.weight", np.zeros((4, 3)))):
        out = model(torch.ones(2, 3))
    torch.testing.assert_close(out, model[0].bias.detach().expand(2, 4))


def test_random_unit_controls_draw_as_many_other_units():
    from rnnprobe.recording import random_like

    model, x = _blt(), _images(1)
    change = Intervention.zero("layer1", units=[1, 5, 9], steps=[2])
    controls = random_like(change, model, x, n_draws=30, seed=4, exclude=True)
    again = random_like(change, model, x, n_draws=30, seed=4, exclude=True)
    assert all(np.array_equal(a[0].units, b[0].units) for a, b in zip(controls, again, strict=True))
    drawn = np.concatenate([c[0].units for c in controls])
    assert all(len(c[0].units) == 3 and c[0].steps == [2] and c[0].kind == "zero" for c in controls)
    assert not set(drawn) & {1, 5, 9} and drawn.max() < 64 and len(set(drawn)) > 30
    with pytest.raises(ArgumentError, match="every unit"):
        random_like(Intervention.zero("layer1"), model, x)
    with pytest.raises(ShapeError, match="do not fit"):
        random_like(Intervention.zero("layer1", units=[64]), model, x)
    everywhere = random_like(Intervention.zero("layer1", units=np.arange(40)), model, x, n_draws=50, seed=0)
    assert all(len(c[0].units) == 40 for c in everywhere)  # more than half the units: drawn among all 64
    assert len(set(np.concatenate([c[0].units for c in everywhere]))) == 64


def test_random_weight_controls_remove_as_many_weights_from_the_same_step():
    from rnnprobe.recording import random_like

    model, x = _blt(), _images(1)
    controls = random_like(Lesion.cool("top-down", from_step=2), model, x, n_draws=5, seed=0)
    n_top_down = model.conv.top_down[0].weight.numel()
    for draw in controls:
        assert sum(int((c.mask == 0).sum()) for c in draw) == n_top_down
        assert all(c.from_step == 2 and not c.parameter.startswith("classifier") for c in draw)
    with intervene(model, controls[0]):
        changed = model(x)
    assert torch.equal(changed[:, :2], model(x)[:, :2])
    with pytest.raises(UnknownNameError, match="among"):
        random_like(Lesion.cool("lateral"), model, x, among=["sideways"])

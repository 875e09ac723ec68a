"""intervention_effect: against hand-run models, compute_rdms and brute-force p-values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.spatial.distance import squareform

from rnnprobe import Recording
from rnnprobe.analysis import compute_rdms, condition_average, decode, intervention_effect
from rnnprobe.analysis._scores import permutation_p_values
from rnnprobe.analysis.intervention_effects import condition_rdms, rdm_correlation, within_condition_weights
from rnnprobe.errors import ArgumentError, NonFiniteError, ShapeError, UnknownNameError
from rnnprobe.recording import Intervention, Lesion, intervene, random_like


@pytest.fixture(scope="module")
def setup():
    from rnnprobe.models import load
    from rnnprobe.tasks import OccludedDigits

    model = load("occluded-blt")  # trained: lesions change its answers
    data = OccludedDigits(image_size=16, levels=(0, 4, 8, 12), fragment_size=4).sample(150, split="test", index=0)
    return model, data.x, data.y.numpy()


def test_the_effect_is_the_mean_change_of_accuracy_of_the_hand_run_models(setup):
    model, x, labels = setup
    change = Lesion.cool("lateral", from_step=1)
    result = intervention_effect(model, x, change, labels=labels, n_bootstrap=300)
    with torch.no_grad():
        intact = (model(x).argmax(-1).numpy() == labels[:, None]).mean(0)
        with intervene(model, change):
            changed = (model(x).argmax(-1).numpy() == labels[:, None]).mean(0)
    np.testing.assert_allclose(result.intact.mean(0), intact, atol=1e-12)
    np.testing.assert_allclose(result.effect, changed - intact, atol=1e-12)
    assert result.effect[0] == 0 and np.any(result.effect[1:] != 0)
    assert np.all(result.ci_low <= result.effect + 1e-12) and np.all(result.effect <= result.ci_high + 1e-12)
    assert result.p_values is None and result.changes == [change.describe()]


def test_an_identity_change_has_no_effect_and_rdms_equal_to_the_intact_ones(setup):
    model, x, labels = setup
    result = intervention_effect(model, x, Intervention.scale("layer0", 1.0), labels=labels, layers=["layer1"],
                                 conditions=labels % 5, n_bootstrap=100)  # fmt: skip
    np.testing.assert_array_equal(result.effect, 0)
    np.testing.assert_array_equal(result.ci_low, 0)
    np.testing.assert_allclose(result.rdm_similarity["layer1"], 1, atol=1e-12)
    np.testing.assert_allclose(result.rdm_ci["layer1"], 1, atol=1e-12)


def test_p_values_against_controls_equal_a_brute_force_count(setup):
    model, x, labels = setup
    change = Intervention.zero("layer1", units=np.arange(0, 1024, 7))
    controls = random_like(change, model, x[:1], n_draws=9, seed=0)  # layer1: 16 maps x 8 x 8
    result = intervention_effect(model, x, change, labels=labels, controls=controls, layers=["layer1"], n_bootstrap=50)
    effect, ctrl = result.effect, result.control_effects
    for t in range(4):
        below = 1 + sum(c <= effect[t] for c in ctrl[:, t])
        above = 1 + sum(c >= effect[t] for c in ctrl[:, t])
        assert result.p_values[t] == pytest.approx(min(1.0, 2 * min(below, above) / 10))
    assert result.control_rdm_similarity["layer1"].shape == (9, 4)
    same = intervention_effect(model, x, change, labels=labels, controls=[change] * 4, n_bootstrap=50)
    np.testing.assert_array_equal(same.p_values, 1.0)


def test_condition_rdms_equal_compute_rdms_of_condition_averages():
    rng = np.random.default_rng(0)
    states = rng.normal(size=(30, 2, 7))
    conditions = np.repeat(np.arange(5), 6)
    groups = [np.flatnonzero(conditions == c) for c in range(5)]
    means = condition_average(Recording({"h": states}, metadata={"c": conditions}), "c")
    for t in range(2):
        expected = compute_rdms(means, "h", distance="correlation", time=[t]).dissimilarities
        np.testing.assert_allclose(condition_rdms(states, groups)[0, t], squareform(expected[0]), atol=1e-12)


@pytest.mark.parametrize(
    ("n_samples", "n_units", "path", "far_from_0"), [(20, 9, "means", 1e-12), (200, 64, "kernels", 1e-14)]
)
def test_condition_rdms_of_bootstrap_samples_equal_a_loop_over_the_samples_and_keep_their_digits_far_from_0(
    n_samples, n_units, path, far_from_0, monkeypatch
):
    """Each bootstrap sample's RDMs equal 1 - corrcoef of its condition means, the stimuli repeated by their counts
    (a loop, 1e-12), by either path (the means' products in blocks of 3 samples, or the stimuli's Gram matrices);
    states offset by 1e3 keep the RDMs to 1e-12 of an extended-precision reference through the means (centred once
    averaged: 3e-13 off, as before), to 1e-14 through the Gram matrices of the stimuli centred first (4e-16)."""
    from rnnprobe.analysis import intervention_effects

    taken = []
    for name in ("_gram_of_means", "_gram_of_kernels"):
        real = getattr(intervention_effects, name)
        monkeypatch.setattr(intervention_effects, name, lambda *a, real=real, name=name: taken.append(name) or real(*a))
    monkeypatch.setattr(intervention_effects, "MEANS_BYTES", 8 * 3 * 4 * n_units * 3)
    rng = np.random.default_rng(3)
    conditions = np.arange(48) % 4
    groups = [np.flatnonzero(conditions == c) for c in range(4)]
    weights = within_condition_weights(groups, 48, n_samples, 1)
    states = rng.normal(size=(48, 3, n_units)) * rng.uniform(0.5, 2, size=n_units)
    got = condition_rdms(states, groups, weights)
    assert got.shape == (n_samples, 3, 4, 4) and taken == [f"_gram_of_{path}"]
    for s, t in itertools.product(range(n_samples), range(3)):
        repeated = np.repeat(states[:, t], weights[s].astype(int), axis=0)
        means = [repeated[np.repeat(conditions, weights[s].astype(int)) == c].mean(0) for c in range(4)]
        np.testing.assert_allclose(got[s, t], 1 - np.corrcoef(means), rtol=0, atol=1e-12)
    far = states + 1e3
    extended = far.astype(np.longdouble)
    means = np.stack([np.tensordot(weights[:, g].astype(np.longdouble), extended[g], axes=(1, 0))
                      / weights[:, g].sum(1)[:, None, None] for g in groups], axis=2)  # fmt: skip
    centred = means - means.mean(-1, keepdims=True)
    unit = centred / np.sqrt((centred * centred).sum(-1, keepdims=True))
    expected = 1 - np.einsum("stcu,stdu->stcd", unit, unit)
    assert float(np.abs(condition_rdms(far, groups, weights) - expected).max()) < far_from_0


def test_bootstrap_weights_resample_within_conditions_and_rdm_correlation_is_pearson():
    groups = [np.arange(0, 4), np.arange(4, 10), np.arange(10, 11)]
    weights = within_condition_weights(groups, 11, 50, 0)
    for g in groups:
        np.testing.assert_array_equal(weights[:, g].sum(1), g.size)
    rng = np.random.default_rng(1)
    a, b = rng.random((6, 6)), rng.random((6, 6))
    a, b = a + a.T, b + b.T
    i, j = np.triu_indices(6, 1)
    assert rdm_correlation(a, b) == pytest.approx(np.corrcoef(a[i, j], b[i, j])[0, 1], abs=1e-12)
    np.testing.assert_allclose(
        permutation_p_values(np.array([0.0]), np.array([[1.0], [2.0], [-1.0]]), alternative="two-sided"), [1.0]
    )


def test_an_undefined_statistic_gets_no_p_value_and_constants_no_correlation():
    """An effect that is NaN (an RDM correlation of a constant RDM) got p = 2 / (controls + 1), as if more extreme
    than every control: now NaN; controls NaN at a step are left out of its null (a brute-force count over the
    others). A constant RDM (also at 0.3 off the diagonal) has no correlation; condition means constant over
    units at 0.1 (a layer clamped there; rounding's spread once centred) are refused as exactly constant ones."""
    rng = np.random.default_rng(2)
    controls = rng.normal(size=(40, 3))
    controls[[3, 7], 1] = np.nan
    effect = np.array([np.nan, 0.4, 2.5])
    got = permutation_p_values(effect, controls, alternative="two-sided")
    assert np.isnan(got[0])
    for t in (1, 2):
        null = controls[~np.isnan(controls[:, t]), t]
        low, high = (np.sum(null <= effect[t]) + 1) / (null.size + 1), (np.sum(null >= effect[t]) + 1) / (null.size + 1)
        assert got[t] == pytest.approx(min(1.0, 2 * min(low, high)), abs=1e-15)
    flat = np.full((6, 6), 0.3) - 0.3 * np.eye(6)
    other = rng.random((6, 6))
    assert np.isnan(rdm_correlation(flat, other + other.T))
    groups = [np.arange(3), np.arange(3, 6)]
    for weights in (None, within_condition_weights(groups, 6, 200, 0)):  # the means' path; the Gram matrices'
        with pytest.raises(ArgumentError, match="constant over units"):
            condition_rdms(np.full((6, 2, 15), 0.1), groups, weights)


def test_an_undefined_rdm_correlation_has_no_interval():
    """A step where the changed model's RDM is constant (conditions equidistant) has no RDM correlation; its
    interval was the percentile of the bootstrap samples in which one happened to be defined. A step where no
    sample is defined has none either, without numpy's all-NaN warning; elsewhere the percentile of the defined
    samples (a loop)."""
    import types
    import warnings

    from rnnprobe.analysis.intervention_effects import _add_rdms

    rng = np.random.default_rng(4)
    intact, changed = rng.random((2, 3, 6, 6))
    intact, changed = intact + intact.transpose(0, 2, 1), changed + changed.transpose(0, 2, 1)
    changed[0] = 1 - np.eye(6)  # equidistant conditions at step 0
    samples = rng.random((2, 50, 3, 6, 6))
    samples = samples + samples.transpose(0, 1, 2, 4, 3)
    samples[1, :, 2] = 1 - np.eye(6)  # no sample defined at step 2
    samples[1, :5, 1] = 1 - np.eye(6)  # five samples undefined at step 1
    runs = {"intact": (None, None, {"l": [intact]}, {"l": samples[0]}),
            "changed": (None, None, {"l": [changed]}, {"l": samples[1]})}  # fmt: skip
    result = types.SimpleNamespace(rdm_similarity={}, rdm_ci={})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _add_rdms(result, runs, {}, 0.9)
    assert np.isnan(result.rdm_similarity["l"][0]) and np.isnan(result.rdm_ci["l"][:, [0, 2]]).all()
    defined = [rdm_correlation(b, a) for a, b in zip(samples[0, 5:, 1], samples[1, 5:, 1], strict=True)]
    np.testing.assert_allclose(result.rdm_ci["l"][:, 1], np.percentile(defined, [5, 95]), rtol=1e-12)


def test_decoding_intact_and_changed_equal_decode_on_the_recordings(setup):
    from rnnprobe import record

    model, x, labels = setup
    change = Lesion.cool("top-down")
    result = intervention_effect(model, x, change, labels=labels, layers=["layer1"], decode=True, n_bootstrap=20)
    rec = record(model, x, layers=["layer1"], interventions=change, progress=False)
    expected = decode(rec, "layer1", labels, estimator="ridge", seed=0, progress=False).scores
    np.testing.assert_allclose(result.decoding["layer1"]["changed"], expected)


def test_a_custom_score_and_the_protocol(setup, tmp_path):
    from rnnprobe.analysis import AnalysisResult

    model, x, labels = setup

    def top_logit(outputs, labels):
        return outputs.max(axis=-1)

    controls = random_like(Lesion.cool("lateral"), model, x[:1], n_draws=3)
    result = intervention_effect(model, x, Lesion.cool("lateral"), labels=labels, score=top_logit, layers=["layer0"],
                                 controls=controls, n_bootstrap=20)  # fmt: skip
    assert result.score_name == "top_logit" and isinstance(result, AnalysisResult)
    assert set(result.summary()) >= {"effect", "p_values", "rdm_r_layer0", "control_rdm_r_layer0"}
    result.plot().savefig(tmp_path / "effect.png")


def test_bad_input_is_refused(setup):
    model, x, labels = setup
    change = Lesion.cool("lateral")
    with pytest.raises(ArgumentError, match="labels"):
        intervention_effect(model, x, change)
    with pytest.raises(ShapeError, match="labels"):
        intervention_effect(model, x, change, labels=labels[:5])
    with pytest.raises(UnknownNameError, match="score"):
        intervention_effect(model, x, change, labels=labels, score="f1")
    with pytest.raises(ShapeError, match="score"):
        intervention_effect(model, x, change, labels=labels, score=lambda o, y: o[:, 0])
    with pytest.raises(NonFiniteError, match="score"):
        intervention_effect(model, x, change, labels=labels, score=lambda o, y: o.max(-1) * np.nan)
    with pytest.raises(ArgumentError, match="at least 3"):
        intervention_effect(model, x, change, labels=labels, layers=["layer0"], conditions=labels % 2)
    with pytest.raises(ArgumentError, match="decode"):
        intervention_effect(model, x, change, labels=labels, decode=True)


def test_control_p_values_count_rounding_ties_and_need_a_control():
    """The controls' two-sided p-values (one function with decode's and permutation_test's): a control equal to
    the effect but for rounding (0.1 + 0.2 against 0.3) reaches it on both sides, whatever the scale of the
    scores (exact comparison gave 0.3 a p-value of 2/5 below and 1 above for these controls); a step without
    any defined control has no p-value (it had 2 / 1 clipped to 1, a test of nothing)."""
    for scale in (1.0, 1e-9, 1e9):
        effect = np.array([0.3, 0.3, 5.0]) * scale
        controls = np.array([[0.1 + 0.2, np.nan, 1.0], [1.0, np.nan, 2.0], [-1.0, np.nan, 3.0], [0.5, np.nan, 4.0]])
        got = permutation_p_values(effect, controls * scale, alternative="two-sided")
        # 0.3 among (0.3, 1, -1, 0.5): below or equal 2, above or equal 3 -> 2 * (2 + 1) / 5
        np.testing.assert_allclose(got, [min(1.0, 2 * 3 / 5), np.nan, 2 * 1 / 5], rtol=1e-15)
        one_sided = permutation_p_values(effect, controls * scale)
        np.testing.assert_allclose(one_sided, [4 / 5, np.nan, 1 / 5], rtol=1e-15)

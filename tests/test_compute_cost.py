"""Speed-accuracy: FLOPs against hand counts, stopping and solution times against brute-force loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from rnnprobe.analysis.compute_cost import (
    compute_matched,
    speed_accuracy,
    speed_accuracy_curve,
    step_flops,
)
from rnnprobe.errors import ArgumentError, ArgumentTypeError, NonFiniteError, ShapeError, UnknownNameError
from rnnprobe.models import BLT, GRU
from rnnprobe.recording import Lesion, intervene


def test_flops_equal_hand_counts_for_convolutions_and_linear_layers():
    conv_b = 2 * (8 * 8) * 4 * 1 * 9  # out positions x out maps x in maps x kernel
    readout = 2 * 4 * 10
    np.testing.assert_array_equal(step_flops(BLT("B", image_size=8, maps=4, layers=1, steps=3), torch.rand(1, 1, 8, 8)),
                                  [conv_b + readout] * 3)  # fmt: skip
    lateral = 2 * (8 * 8) * 4 * 4 * 9
    flops = step_flops(BLT("BL", image_size=8, maps=4, layers=1, steps=2), torch.rand(3, 1, 8, 8))
    np.testing.assert_array_equal(flops, [conv_b + readout, conv_b + lateral + readout])  # per stimulus, batch of 3
    hidden, inputs = 4, 2
    gru = 2 * (3 * hidden * inputs + 3 * hidden * hidden + 1 * hidden)  # W_ih, W_hh, readout
    np.testing.assert_array_equal(step_flops(GRU(inputs, hidden, 1), torch.rand(1, 5, inputs)), [gru] * 5)


def test_flops_of_a_model_without_a_step_method_are_split_at_the_calls_of_a_module():
    class Loop(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cell, self.readout = torch.nn.RNNCell(3, 5), torch.nn.Linear(5, 2)

        def forward(self, x):
            h, outs = torch.zeros(x.shape[0], 5), []
            for t in range(x.shape[1]):
                h = self.cell(x[:, t], h)
                outs.append(self.readout(h))
            return torch.stack(outs, 1) @ torch.ones(2, 2)  # after the last call: added to the last step

    per_step = 2 * (5 * 3 + 5 * 5) + 2 * 5 * 2
    np.testing.assert_array_equal(step_flops(Loop(), torch.rand(2, 4, 3), step_module="readout"),
                                  [per_step] * 3 + [per_step + 2 * 4 * 2 * 2])  # fmt: skip
    with pytest.raises(UnknownNameError, match="step_module"):
        step_flops(Loop(), torch.rand(2, 4, 3), step_module="output")
    with pytest.raises(ArgumentTypeError, match="step"):
        step_flops(Loop(), torch.rand(2, 4, 3))


def _brute_stops(probabilities, thresholds, criterion):
    n, t_max, k = probabilities.shape
    stops = np.zeros((len(thresholds), n), int)
    for a, threshold in enumerate(thresholds):
        for i in range(n):
            stops[a, i] = t_max - 1
            for t in range(t_max):
                p = probabilities[i, t]
                if criterion == "entropy":
                    entropy = -sum(q * np.log(q) for q in p if q > 0) / np.log(k)
                    hit = entropy < threshold
                else:
                    hit = p.max() > threshold
                if hit:
                    stops[a, i] = t
                    break
    return stops


@pytest.mark.parametrize("criterion", ["entropy", "probability"])
def test_stopping_accuracy_and_cost_equal_a_brute_force_loop(criterion):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, 5, 4)) * np.linspace(0.5, 4, 5)[None, :, None]
    labels = rng.integers(0, 4, 40)
    flops = np.array([10.0, 20.0, 20.0, 5.0, 1.0])
    thresholds = np.array([0.05, 0.3, 0.6, 0.9, 1.0])
    result = speed_accuracy_curve(logits, labels, flops, thresholds=thresholds, criterion=criterion)
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    stops = _brute_stops(probabilities, thresholds, criterion)
    np.testing.assert_array_equal(result.stop_steps, stops)
    for a in range(len(thresholds)):
        correct = [logits[i, stops[a, i]].argmax() == labels[i] for i in range(40)]
        cost = [flops[: stops[a, i] + 1].sum() for i in range(40)]
        assert result.accuracy[a] == pytest.approx(np.mean(correct), abs=1e-12)
        assert result.mean_flops[a] == pytest.approx(np.mean(cost), rel=1e-12)
    assert len(set(stops.ravel())) > 2  # the sweep stops at several steps


def test_solution_times_equal_a_brute_force_loop():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(60, 6, 3)) * 2
    labels = rng.integers(0, 3, 60)
    result = speed_accuracy_curve(logits, labels, np.ones(6), solution_threshold=0.5)
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    for i in range(60):
        p = probabilities[i, :, labels[i]]
        expected = next((t for t in range(6) if np.all(p[t:] > 0.5)), np.inf)
        assert result.solution_times[i] == expected
    assert np.isinf(result.solution_times).any() and np.isfinite(result.solution_times).any()


def test_the_solution_time_correlation_is_spearmans_rho_with_unsolved_ranked_last():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(80, 4, 3)) * 2
    labels = rng.integers(0, 3, 80)
    covariate = rng.normal(size=80)
    result = speed_accuracy_curve(logits, labels, np.ones(4))
    got = result.solution_time_correlation(covariate, n_bootstrap=200, seed=0)
    times = np.where(np.isinf(result.solution_times), 4, result.solution_times)
    assert got["rho"] == pytest.approx(spearmanr(times, covariate).statistic, abs=1e-12)
    assert got["ci_low"] <= got["rho"] <= got["ci_high"]
    assert got["unsolved"] == int(np.isinf(result.solution_times).sum())


def test_an_undefined_solution_time_correlation_has_no_interval_and_undefined_draws_are_counted(rng):
    """Every stimulus solved at step 0: rho and its interval are NaN, without scipy's or numpy's warnings (an
    all-NaN percentile). One stimulus solved later: the samples that do not draw it have no rho; the interval
    is the percentile of the others (a loop), and their count is returned."""
    import warnings

    labels = rng.integers(0, 3, 30)
    logits = np.zeros((30, 4, 3))
    logits[np.arange(30), :, labels] = 10.0  # every stimulus solved at step 0
    covariate = rng.normal(size=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = speed_accuracy_curve(logits, labels, np.ones(4)).solution_time_correlation(covariate, n_bootstrap=50)
    assert np.isnan([got["rho"], got["ci_low"], got["ci_high"]]).all() and got["undefined_draws"] == 50
    logits[0, :2, labels[0]] = -10.0  # stimulus 0 solved at step 2
    result = speed_accuracy_curve(logits, labels, np.ones(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = result.solution_time_correlation(covariate, n_bootstrap=200, seed=3)
    draw = np.random.default_rng(3)
    samples = [draw.integers(0, 30, 30) for _ in range(200)]
    times = result.solution_times
    defined = [spearmanr(times[i], covariate[i]).statistic for i in samples if (i == 0).any()]
    assert got["undefined_draws"] == 200 - len(defined) > 50
    assert got["rho"] == pytest.approx(spearmanr(times, covariate).statistic, abs=1e-12)
    np.testing.assert_allclose([got["ci_low"], got["ci_high"]], np.percentile(defined, [2.5, 97.5]), rtol=1e-12)


def test_a_difference_that_is_undefined_has_no_interval_and_undefined_draws_are_counted():
    """b is unsure of stimulus 3 at step 0 (its cheapest operating point costs 1.25 mean FLOPs): it cannot run at
    a's compute (1.0), a NaN difference, which had the interval [0, 0] of the resamples without stimulus 3.
    Those resamples are the ones in which b's difference is defined: counted as the draws say."""
    import warnings

    labels = np.zeros(4, int)
    a = np.zeros((4, 2, 2))
    a[:, :, 0] = 3.0
    b = a.copy()
    b[3, 0, :] = 0.0  # stimulus 3: uniform at step 0
    curves = [speed_accuracy_curve(x, labels, [1.0, 1.0], name=n) for x, n in ((a, "a"), (b, "b"))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compute_matched(curves, n_bootstrap=200, seed=5)
    assert np.isnan(result.difference[1, 0]) and np.isnan([result.ci_low[1, 0], result.ci_high[1, 0]]).all()
    draws = np.random.default_rng(5).integers(0, 4, size=(200, 4))  # the resamples' draws (same seed)
    np.testing.assert_array_equal(result.undefined_draws, [[0, 0], [(draws == 3).any(axis=1).sum(), 0]])
    table = result.table()
    assert table["undefined_draws"].tolist() == result.undefined_draws.ravel().tolist()
    assert result.summary()["b_minus_a_undefined_draws"] == result.undefined_draws[1, 0] > 100


def _brute_matched(results):
    best = []
    for r in results:
        top = r.accuracy.max()
        best.append((top, r.mean_flops[r.accuracy >= top - 1e-12].min()))
    table = np.full((len(results), len(results)), np.nan)
    for i, r in enumerate(results):
        for j, (_, cost) in enumerate(best):
            allowed = [a for a, f in zip(r.accuracy, r.mean_flops, strict=True) if f <= cost * (1 + 1e-12)]
            if allowed:
                table[i, j] = max(allowed)
    return table, np.array([b[0] for b in best])


def test_compute_matched_equals_a_brute_force_table_and_is_zero_against_itself():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, 100)
    results = []
    for k, gain in enumerate([0.5, 1.5, 3.0]):
        logits = rng.normal(size=(100, 4, 5)) + gain * np.eye(5)[labels][:, None] * np.arange(1, 5)[None, :, None]
        results.append(speed_accuracy_curve(logits, labels, [k + 1.0] * 4, name=f"m{k}"))
    got = compute_matched(results, n_bootstrap=300, seed=0)
    table, best = _brute_matched(results)
    np.testing.assert_allclose(got.accuracy, table, atol=1e-12)
    np.testing.assert_allclose(got.difference, table - best[None], atol=1e-12)
    np.testing.assert_allclose(np.diag(got.difference), 0, atol=1e-12)
    finite = np.isfinite(got.difference)
    assert np.all(got.ci_low[finite] <= got.difference[finite] + 1e-12)
    assert np.all(got.difference[finite] <= got.ci_high[finite] + 1e-12)
    assert list(got.table()["model"].unique()) == ["m0", "m1", "m2"]
    same = compute_matched({"a": results[1], "b": results[1]}, n_bootstrap=100)
    np.testing.assert_allclose([same.ci_low[0, 1], same.ci_high[0, 1]], 0, atol=1e-12)


def test_bootstrap_weights_equal_explicit_resampling():
    rng = np.random.default_rng(4)
    logits, labels = rng.normal(size=(30, 3, 4)), rng.integers(0, 4, 30)
    result = speed_accuracy_curve(logits, labels, [1.0, 2.0, 3.0], thresholds=[0.5, 0.9])
    accuracy, flops = result.bootstrap(n_bootstrap=5, seed=7)
    draws = np.random.default_rng(7).integers(0, 30, size=(5, 30))
    rows = np.arange(30)[None]
    correct = result.correct[rows, result.stop_steps]
    cost = result.cumulative_flops[result.stop_steps]
    np.testing.assert_allclose(accuracy, correct[:, draws].mean(-1).T, atol=1e-12)
    np.testing.assert_allclose(flops, cost[:, draws].mean(-1).T, rtol=1e-12)


def test_a_model_with_its_lateral_connections_cooled_from_step_0_runs_like_b():
    torch.manual_seed(0)
    bl = BLT("BL", image_size=8, maps=4, steps=3)
    b = BLT("B", image_size=8, maps=4, steps=3)
    b.load_state_dict({k: v for k, v in bl.state_dict().items() if ".lateral." not in k})
    x, labels = torch.rand(25, 1, 8, 8), torch.randint(0, 10, (25,))
    cooled = speed_accuracy(bl, x, labels, interventions=Lesion.cool("lateral"))
    plain = speed_accuracy(b, x, labels)
    np.testing.assert_array_equal(cooled.stop_steps, plain.stop_steps)
    np.testing.assert_array_equal(cooled.correct, plain.correct)
    intact = speed_accuracy(bl, x, labels)
    np.testing.assert_array_equal(cooled.step_flops, intact.step_flops)  # cooled weights still run, as zeros
    extra = 2 * 64 * 4 * 4 * 9 + 2 * 16 * 4 * 4 * 9  # lateral convolutions of both layers, from the second step
    np.testing.assert_array_equal(intact.step_flops - plain.step_flops, [0, extra, extra])
    assert intact.summary()["model"] == "BLT"


@pytest.mark.parametrize("thresholds", [[0.0], [1.5], [np.nan], "high", [], ["a"], [[0.5]]])
def test_thresholds_outside_0_1_are_refused(thresholds):
    with pytest.raises(ArgumentError, match="thresholds"):
        speed_accuracy_curve(np.zeros((2, 2, 3)), [0, 1], [1.0, 1.0], thresholds=thresholds)


def test_bad_outputs_are_refused():
    good = np.zeros((2, 2, 3))
    with pytest.raises(NonFiniteError, match="logits"):
        speed_accuracy_curve(np.full((2, 2, 3), np.nan), [0, 1], [1.0, 1.0])
    with pytest.raises(ShapeError, match="labels"):
        speed_accuracy_curve(good, [0, 3], [1.0, 1.0])
    with pytest.raises(ShapeError, match="step_flops"):
        speed_accuracy_curve(good, [0, 1], [1.0])
    with pytest.raises(ShapeError, match="logits"):
        speed_accuracy_curve(np.zeros((2, 3)), [0, 1], [1.0, 1.0])
    with pytest.raises(UnknownNameError, match="criterion"):
        speed_accuracy_curve(good, [0, 1], [1.0, 1.0], criterion="margin")
    with pytest.raises(ArgumentError, match="solution_threshold"):
        speed_accuracy_curve(good, [0, 1], [1.0, 1.0], solution_threshold=0)
    a = speed_accuracy_curve(good, [0, 1], [1.0, 1.0])
    b = speed_accuracy_curve(good, [1, 1], [1.0, 1.0])
    with pytest.raises(ArgumentError, match="different stimuli"):
        compute_matched([a, b])
    with pytest.raises(ArgumentTypeError, match="results"):
        compute_matched([a])
    with pytest.raises(ShapeError, match="covariate"):
        a.solution_time_correlation([1.0, 2.0, 3.0])
    with pytest.raises(ArgumentTypeError, match="covariate"):
        a.solution_time_correlation(["low", "high"])
    with pytest.raises(ArgumentTypeError, match="logits"):
        speed_accuracy_curve(np.full((2, 2, 3), "x"), [0, 1], [1.0, 1.0])
    with pytest.raises(NonFiniteError, match="covariate"):
        a.solution_time_correlation([1.0, np.nan])


def test_results_follow_the_protocol(tmp_path):
    from rnnprobe.analysis import AnalysisResult

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 3, 20)
    a = speed_accuracy_curve(rng.normal(size=(20, 3, 3)), labels, [1.0, 1.0, 1.0], name="a")
    b = speed_accuracy_curve(rng.normal(size=(20, 3, 3)), labels, [2.0, 2.0, 2.0], name="b")
    matched = compute_matched([a, b], n_bootstrap=50)
    for result in (a, matched):
        assert isinstance(result, AnalysisResult)
        result.plot().savefig(tmp_path / "figure.png")
    assert set(a.summary()) >= {"best_accuracy", "mean_flops_at_best", "median_solution_time"}
    assert "a_minus_b_at_b_compute" in matched.summary()


def test_readout_over_time_equals_the_models_own_outputs_and_restores_its_mode():
    from rnnprobe.analysis import readout_over_time

    torch.manual_seed(0)
    model = BLT("BL", image_size=8, maps=4, steps=3).train()
    x = torch.rand(7, 1, 8, 8)
    got = readout_over_time(model, x, batch_size=3)
    assert model.training  # its mode is put back
    with torch.no_grad():
        expected = model.eval()(x).double().numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    with intervene(model, Lesion.cool("lateral")):
        cooled = model(x).detach().double().numpy()
    np.testing.assert_allclose(readout_over_time(model, x, interventions=Lesion.cool("lateral")), cooled, atol=1e-6)
    with pytest.raises(ShapeError, match="readout over time"):
        readout_over_time(torch.nn.Linear(64, 3), x.reshape(7, 64))


def test_stimuli_go_where_the_model_computes():
    """numpy float64 stimuli into a float32 model, float32 stimuli into a float64 one: each runs in the model's
    dtype (it failed with torch's dtype mismatch before), as its own forward on stimuli cast by hand.
    """
    from rnnprobe.analysis import readout_over_time

    torch.manual_seed(0)
    model = BLT("BL", image_size=8, maps=4, steps=3)
    x = np.random.default_rng(0).random((5, 1, 8, 8))
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x).float()).double().numpy()
    np.testing.assert_array_equal(readout_over_time(model, x), expected)
    double = BLT("BL", image_size=8, maps=4, steps=3).double()
    double.load_state_dict(model.state_dict())
    x32 = torch.from_numpy(x).float()
    with torch.no_grad():
        expected = double.eval()(x32.double()).numpy()
    np.testing.assert_array_equal(readout_over_time(double, x32), expected)
    assert not np.array_equal(expected, readout_over_time(model, x))  # (the two dtypes do differ)
    np.testing.assert_array_equal(step_flops(double, x[:1]), step_flops(model, torch.from_numpy(x[:1]).float()))
    with pytest.raises(ArgumentError, match="meta device"):
        readout_over_time(BLT("BL", image_size=8, maps=4, steps=3).to("meta"), x)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on CI)")
def test_a_cuda_model_runs_its_readouts_on_the_gpu():
    from rnnprobe.analysis import readout_over_time

    torch.manual_seed(0)
    model = BLT("BL", image_size=8, maps=4, steps=3)
    x = torch.rand(5, 1, 8, 8)
    expected = readout_over_time(model, x)
    np.testing.assert_allclose(readout_over_time(model.to("cuda"), x), expected, atol=1e-5)
    np.testing.assert_array_equal(step_flops(model, x[:1]), step_flops(model.cpu(), x[:1]))

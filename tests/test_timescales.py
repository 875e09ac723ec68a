"""Intrinsic timescales (Murray et al. 2014) and memory decay: against brute-force correlations,
scipy's curve_fit, AR(1) processes with known timescales, sklearn, and errors."""

import numpy as np
import pytest

from rnnprobe import Recording
from rnnprobe.analysis.timescales import autocorrelation, fit_exponential, fit_timescales, memory_decay
from rnnprobe.errors import ArgumentError, NonFiniteError, ShapeError


def _ar1(rng, phis, n=300, t=60):
    """AR(1) units x(t+1) = phi x(t) + e, started stationary: R(k) = phi^k, tau = -1 / ln(phi)."""
    phis = np.asarray(phis)
    x = np.zeros((n, t, len(phis)))
    x[:, 0] = rng.normal(size=(n, len(phis))) / np.sqrt(1 - phis**2)
    for s in range(t - 1):
        x[:, s + 1] = phis * x[:, s] + rng.normal(size=(n, len(phis)))
    return x


def test_autocorrelation_equals_brute_force_pearson(rng):
    x = _ar1(rng, [0.5, 0.9], n=40, t=12)
    ours = autocorrelation(x, 4)
    for u in range(2):
        for k in range(5):
            expected = np.mean([np.corrcoef(x[:, s, u], x[:, s + k, u])[0, 1] for s in range(12 - k)])
            assert ours[u, k] == pytest.approx(expected, abs=1e-12)


def _pearson_by_steps(x: np.ndarray, max_lag: int) -> np.ndarray:
    """The autocorrelation by its definition: each pair of steps' Pearson correlation across stimuli (np.corrcoef),
    averaged over the pairs at each lag; NaN for a unit constant at a step."""
    _, t, units = x.shape
    out = np.empty((units, max_lag + 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        for u in range(units):
            for k in range(max_lag + 1):
                out[u, k] = np.mean([np.corrcoef(x[:, s, u], x[:, s + k, u])[0, 1] for s in range(t - k)])
    return out


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("block", [1, 7, 1000])
def test_autocorrelation_in_shares_and_blocks_of_stimuli_equals_the_definition(rng, threads, block, monkeypatch):
    """Shares of the stimuli on the library threads, each in blocks of 1, 7 (the last shorter) or all of its
    stimuli, whose lagged sums add up: equal to the definition to 1e-12, a unit constant across stimuli NaN, fewer
    stimuli than threads (3) too."""
    import torch

    import rnnprobe.analysis.timescales as timescales

    x = _ar1(rng, [0.5, 0.9, 0.3, 0.7, 0.1], n=30, t=10)
    x[:, :, 3] = 2.0
    monkeypatch.setattr(timescales, "SPLIT_BYTES", 0)
    monkeypatch.setattr(timescales, "BLOCK_BYTES", 8 * 10 * 5 * block)  # (block stimuli of 10 steps x 5 units)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        expected = _pearson_by_steps(x, 4)
        np.testing.assert_allclose(autocorrelation(x, 4), expected, rtol=1e-12, atol=1e-13)
        assert np.isnan(expected[3]).all() and not np.isnan(np.delete(expected, 3, axis=0)).any()
        np.testing.assert_allclose(autocorrelation(x[:3], 2), _pearson_by_steps(x[:3], 2), rtol=1e-12, atol=1e-13)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_states_are_refused_from_the_spreads(rng, bad, threads, monkeypatch):
    """autocorrelation and fit_timescales pass over no state before their own passes: a NaN or inf makes its
    step's spread across stimuli NaN (the centring takes inf - inf to NaN), and only then are the states searched
    for the error's count and position, on 1 and 2 threads, with no numpy warning first; finite states whose
    squares overflow are refused too, where their autocorrelation had come out 0 (a spread of inf)."""
    import warnings

    import torch

    import rnnprobe._validation as validation
    import rnnprobe.analysis.timescales as timescales

    searched, check = [], validation.check_finite  # (every search of the states, first or after the spreads)
    monkeypatch.setattr(validation, "check_finite", lambda a, **k: searched.append(a.shape) or check(a, **k))
    monkeypatch.setattr(timescales, "SPLIT_BYTES", 0)  # (the units in shares on the threads)
    x = _ar1(rng, [0.5, 0.9, 0.3], n=30, t=10)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            plain = fit_timescales(Recording({"h": x}), "h", max_lag=4).autocorrelation
            assert searched == []  # finite states: never searched
            np.testing.assert_allclose(autocorrelation(x * 1e100, 4), plain, rtol=1e-12, atol=1e-14)
            y = x.copy()
            y[4, 7, 2] = bad
            with pytest.raises(NonFiniteError, match=r"states: holds 1 non-finite value\(s\) .* first at \(4, 7, 2\)"):
                autocorrelation(y, 4)
            with pytest.raises(NonFiniteError, match=r"'h' holds 1 non-finite value\(s\) .* first at \(4, 7, 2\)"):
                fit_timescales(Recording({"h": y}), "h", max_lag=4)
            assert searched == [y.shape, y.shape]
            with pytest.raises(NonFiniteError, match=r"\(up to \d\.\d+e\+160\) whose squares overflow"):
                fit_timescales(Recording({"h": x * 1e160}), "h", max_lag=4)
    finally:
        torch.set_num_threads(before)


def test_vectorised_fit_equals_scipy_curve_fit(rng):
    from scipy.optimize import curve_fit

    lags = np.arange(1, 16, dtype=float)
    taus, amps, offsets = rng.uniform(0.5, 20, 30), rng.uniform(0.3, 1, 30), rng.uniform(-0.1, 0.2, 30)
    curves = amps[:, None] * (np.exp(-lags / taus[:, None]) + offsets[:, None])
    noisy = curves + rng.normal(0, 0.01, curves.shape)
    fit = fit_exponential(lags, noisy)
    exact = fit_exponential(lags, curves)
    np.testing.assert_allclose(exact["tau"], taus, rtol=1e-3)  # noise-free curves: the true parameters
    np.testing.assert_allclose(exact["offset"], offsets, rtol=1e-2, atol=1e-4)
    for i in range(30):

        def model(k, a, tau, b):
            return a * (np.exp(-k / tau) + b)

        params, _ = curve_fit(model, lags, noisy[i], p0=[amps[i], taus[i], offsets[i]], maxfev=20000)
        sse_scipy = ((model(lags, *params) - noisy[i]) ** 2).sum()
        assert fit["sse"][i] <= sse_scipy * (1 + 1e-4) + 1e-12  # at least as good a least-squares fit
        assert fit["tau"][i] == pytest.approx(params[1], rel=1e-2)


def test_ar1_timescales_are_recovered_and_constant_units_are_invalid(rng):
    phis = np.array([0.3, 0.6, 0.8, 0.9])
    x = _ar1(rng, phis, n=500, t=80)
    x = np.concatenate([x, np.ones((500, 80, 1))], axis=-1)  # a constant unit
    result = fit_timescales(Recording({"x": x}), max_lag=12)
    truth = -1 / np.log(phis)
    np.testing.assert_allclose(result.tau[:4], truth, rtol=0.2)
    assert (np.diff(result.tau[:4]) > 0).all()
    assert not result.valid[4] and np.isnan(result.tau[4])
    # a unit constant at 0.1 (no float64 mean of it is 0.1 here: centred, it keeps a spread of rounding, which had
    # given it an autocorrelation of 1 at every lag, a perfect memory) is constant too
    y = np.concatenate([x[:200, :20], np.full((200, 20, 1), 0.1)], axis=-1)
    assert (((y - y.mean(axis=0)) ** 2).mean(axis=0)[:, 5] > 0).any()
    assert np.isnan(autocorrelation(y, 5)[4:]).all() and not np.isnan(autocorrelation(y, 5)[:4]).any()
    summary = result.summary()
    assert summary["units fitted"] == 4 and summary["median tau (steps)"] == pytest.approx(np.median(result.tau[:4]))
    assert result.plot(others={"copy": result}) is not None


def test_a_unit_that_holds_each_stimulus_has_no_decay_to_fit(rng):
    """A unit at a value of its own for each stimulus at every step (a perfect memory) has R = 1 at every lag, or
    but for rounding where it carries noise 1e-7 of its spread: no decay (invalid, tau and R^2 NaN); the
    rounding's R had given a tau of 3.2 steps, R^2 0.43, counted as fitted. The AR(1) units beside them keep
    their fits."""
    phis = np.array([0.6, 0.8])
    x = _ar1(rng, phis, n=300, t=30)
    held = np.repeat(rng.normal(size=(300, 1, 1)) * 0.37 + 0.1, 30, axis=1)
    noisy = held + rng.normal(size=held.shape) * 0.37e-7
    result = fit_timescales(Recording({"x": np.concatenate([x, held, noisy], axis=-1)}), max_lag=10)
    alone = fit_timescales(Recording({"x": x}), max_lag=10)
    assert np.abs(result.autocorrelation[2:, 1:] - 1).max() < 1e-12 and np.ptp(result.autocorrelation[3, 1:]) > 0
    assert not result.valid[2:].any() and np.isnan(result.tau[2:]).all() and np.isnan(result.r2[2:]).all()
    np.testing.assert_array_equal(result.tau[:2], alone.tau)
    assert result.summary()["units fitted"] == 2
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    with warnings.catch_warnings():  # no unit fitted at all: the panel says so (no matplotlib legend warning)
        warnings.simplefilter("error")
        figure = fit_timescales(Recording({"x": held}), max_lag=10).plot()
    assert [text.get_text() for text in figure.axes[1].texts] == ["no unit fitted"]


def test_memory_decay_equals_sklearn_with_the_same_grouped_folds(rng):
    from sklearn.linear_model import RidgeClassifier
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n, t = 60, 10
    u = rng.integers(0, 2, size=(n, t))
    h = np.zeros((n, t, 3))
    leak = np.array([0.1, 0.5, 0.9])
    for s in range(t):  # leaky traces of past inputs, with three different leaks
        h[:, s] = leak * (h[:, s - 1] if s else 0) + (2 * u[:, s, None] - 1)
    h += 0.2 * rng.normal(size=h.shape)
    result = memory_decay(Recording({"h": h}), "h", u, lags=[0, 2, 4])
    for lag, score in zip([0, 2, 4], result.scores, strict=True):
        x = h[:, lag:].reshape(-1, 3)
        y = u[:, : t - lag].reshape(-1)
        groups = np.repeat(np.arange(n), t - lag)
        cv = StratifiedGroupKFold(5, shuffle=True, random_state=0)
        expected = cross_val_score(make_pipeline(StandardScaler(), RidgeClassifier()), x, y, cv=cv, groups=groups)
        assert score == pytest.approx(expected.mean(), abs=1e-12)
    assert result.scores[0] > result.scores[1] > result.scores[2]
    assert result.memory_span() >= 2 and result.summary()["lag 0"] == result.scores[0]


def test_errors(rng):
    rec = Recording({"h": rng.normal(size=(10, 8, 2))})
    with pytest.raises(ArgumentError, match="max_lag: got 8, but the recording has 8 time steps"):
        fit_timescales(rec, max_lag=8)
    with pytest.raises(ArgumentError, match="lags: got 9, but the recording has 8 time steps"):
        memory_decay(rec, "h", np.zeros((10, 8)), lags=[0, 9])
    with pytest.raises(ShapeError, match=r"inputs: got .*\(10, 8\)"):
        memory_decay(rec, "h", np.zeros((10, 7)))
    with pytest.raises(ArgumentError, match="time: pass consecutive time steps"):
        fit_timescales(rec, time=[0, 2, 4])


def test_a_lag_at_which_the_input_does_not_vary_has_no_score(rng, tmp_path):
    """An input that does not vary over the steps a lag decodes gave R^2 (or accuracy) 0 there, read as 'no
    memory'; the score of a constant target is undefined. Such lags are NaN (in memory and blockwise), the
    others unchanged; inputs that vary at no lag are refused."""
    n, t = 40, 6
    u = np.zeros((n, t))
    u[:, -1] = rng.normal(size=n)  # only the last step varies: lag 0 reads it, lags 1 and 2 do not
    h = np.stack([u, rng.normal(size=(n, t))], axis=-1) + 0.1 * rng.normal(size=(n, t, 2))
    result = memory_decay(Recording({"h": h}), "h", u, lags=[0, 1, 2])
    expected = memory_decay(Recording({"h": h}), "h", u, lags=[0]).scores[0]
    assert result.scores[0] == expected > 0.5 and np.isnan(result.scores[1:]).all()
    assert result.memory_span() == 0 and np.isnan(result.summary()["lag 2"])
    chunked = Recording.load(Recording({"h": h}).save(tmp_path / "h.zarr"), chunks=20)
    np.testing.assert_allclose(memory_decay(chunked, "h", u, lags=[0, 1, 2]).scores, result.scores, atol=1e-10)
    for constant in (np.full((n, t), 0.1), np.ones((n, t), dtype=int)):
        with pytest.raises(ArgumentError, match=r"inputs: the same value \((0\.1|1)\) .* nothing varies"):
            memory_decay(Recording({"h": h}), "h", constant)
    with pytest.raises(ArgumentError, match="nothing varies"):
        memory_decay(Recording({"h": h}), "h", u, lags=[1, 2])

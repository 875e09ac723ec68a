"""Targeted dimensionality reduction: coefficients against scikit-learn's per-unit regression, planted axes
recovered, the denoising and orthogonalisation against a direct computation, and bad input."""

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from rnnprobe import Recording
from rnnprobe.analysis import fit_tdr
from rnnprobe.errors import ArgumentError, ArgumentTypeError, NonFiniteError, UnknownNameError


def _task(rng, n_trials=240, n_times=12, n_units=30, noise=0.3):
    """Trials of a context-dependent task: choice, two signed coherences, context; planted unit axes."""
    motion = rng.choice([-0.5, -0.15, -0.05, 0.05, 0.15, 0.5], n_trials)
    colour = rng.choice([-0.5, -0.15, -0.05, 0.05, 0.15, 0.5], n_trials)
    context = rng.choice(["colour", "motion"], n_trials)
    relevant = np.where(context == "motion", motion, colour)
    choice = np.where(relevant + 0.1 * rng.normal(size=n_trials) > 0, 1, -1)
    axes = rng.normal(size=(4, n_units))
    ramp = np.linspace(0, 1, n_times)[None, :, None]
    inputs = choice[:, None, None] * axes[0] + 2 * motion[:, None, None] * axes[1] + 2 * colour[:, None, None] * axes[2]
    signal = ramp * inputs + np.where(context == "motion", 0.5, -0.5)[:, None, None] * axes[3]
    states = signal + noise * rng.normal(size=(n_trials, n_times, n_units)) + rng.normal(size=n_units) * 3
    metadata = {"choice": choice, "motion": motion, "colour": colour, "context": context}
    return Recording({"h": states}, metadata=metadata), axes


@pytest.mark.parametrize("threads", [1, 3])
def test_coefficients_equal_scikit_learn_per_unit_and_time(rng, threads):
    """The units' means and spreads, each step's coefficients (by the design's QR) and R^2, the steps in shares
    on 1 and 3 threads: equal to scikit-learn's regression of each unit at each step."""
    import torch

    rec, _ = _task(rng, n_trials=100, n_times=4, n_units=6)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        result = fit_tdr(rec, variables=["choice", "motion", "colour", "context"], n_components=4)
    finally:
        torch.set_num_threads(before)
    states = rec.get("h")
    z = (states - states.reshape(-1, 6).mean(0)) / states.reshape(-1, 6).std(0)
    design = np.column_stack([rec.column("choice"), rec.column("motion"), rec.column("colour"),
                              np.where(rec.column("context") == "motion", 1.0, -1.0)])  # fmt: skip
    for t in range(4):
        for unit in range(6):
            model = LinearRegression().fit(design, z[:, t, unit])
            np.testing.assert_allclose(result.coefficients[:, t, unit], model.coef_, atol=1e-10)
        r2 = 1 - sum(((z[:, t, u] - LinearRegression().fit(design, z[:, t, u]).predict(design)) ** 2).sum()
                     for u in range(6)) / ((z[:, t] - z[:, t].mean(0)) ** 2).sum()  # fmt: skip
        assert result.r2[t] == pytest.approx(r2, abs=1e-10)


def test_units_and_steps_without_variance_across_trials_have_none_to_explain(rng):
    """A unit constant at 0.1 (centred, a spread of rounding: no float64 mean of it is 0.1) keeps scale 1, as
    StandardScaler's, and coefficients 0; a step where every trial is the same has R^2 NaN (its total square is 0,
    not 1); the other steps' R^2 as LinearRegression gives; a layer the same on every trial is refused."""
    from sklearn.preprocessing import StandardScaler

    rec, _ = _task(rng, n_trials=100, n_times=4, n_units=6)
    states = rec.get("h").copy()
    states[:, :, 2] = 0.1
    states[:, 0] = states[0, 0]  # every trial the same at step 0
    flat = states.reshape(-1, 6)
    assert ((flat[:, 2] - flat.mean(axis=0)[2]) ** 2).sum() > 0
    result = fit_tdr(Recording({"h": states}, metadata=rec.metadata), variables=["choice", "motion"])
    np.testing.assert_allclose(result.scale, StandardScaler().fit(flat).scale_, rtol=1e-12)
    assert np.abs(result.coefficients[:, :, 2]).max() < 1e-12
    z = (states - flat.mean(axis=0)) / result.scale
    design = np.column_stack([rec.column("choice"), rec.column("motion")])
    assert np.isnan(result.r2[0]) and np.isfinite(result.r2[1:]).all()
    for t in range(1, 4):
        fitted = LinearRegression().fit(design, z[:, t]).predict(design)
        r2 = 1 - ((z[:, t] - fitted) ** 2).sum() / ((z[:, t] - z[:, t].mean(0)) ** 2).sum()
        assert result.r2[t] == pytest.approx(r2, abs=1e-10)
    assert result.summary()["max R2 over time"] == np.nanmax(result.r2)
    for value in (0.1, 1.0):
        with pytest.raises(ArgumentError, match="is the same on every trial at every selected time step"):
            fit_tdr(Recording({"h": np.full((100, 4, 6), value)}, metadata=rec.metadata), variables=["choice"])
    with pytest.raises(ArgumentError, match="is the same on every trial at every selected time step"):
        fit_tdr(Recording({"h": states}, metadata=rec.metadata), variables=["choice"], time=[0])


def test_planted_axes_are_recovered_and_orthonormal(rng):
    rec, planted = _task(rng)
    variables = ["choice", "motion", "colour", "context"]
    result = fit_tdr(rec, variables=variables, n_components=8)
    np.testing.assert_allclose(result.axes @ result.axes.T, np.eye(4), atol=1e-12)
    # the planted axes live in raw unit space; coefficients of z-scored units are divided by each unit's s.d.
    expected = np.linalg.qr((planted / result.scale).T)[0].T
    for v in range(4):
        assert abs(result.axes[v] @ expected[v]) > 0.97, variables[v]
    assert result.peak_times[0] == result.times[-1]  # the choice signal ramps up to the last step
    assert result.summary()["max R2 over time"] > 0.5
    # projections of the condition averages are the z-scored means on the axes
    projected = result.project(rec.get("h")[rec.column("choice") == 1].mean(0, keepdims=True))
    assert projected.shape == (1, result.times.size, 4)


def test_denoising_and_orthogonalisation_equal_a_direct_computation(rng):
    rec, _ = _task(rng, n_trials=150, n_times=6, n_units=10)
    result = fit_tdr(rec, variables=["choice", "motion"], conditions=["choice", "motion"], n_components=3)
    # the principal components of the condition averages, by hand
    z = (rec.get("h") - result.mean) / result.scale
    keys = sorted(set(zip(rec.column("choice").tolist(), rec.column("motion").tolist(), strict=True)))
    means = np.stack([z[(rec.column("choice") == c) & (rec.column("motion") == m)].mean(0) for c, m in keys])
    pooled = means.reshape(-1, 10)
    basis = np.linalg.svd(pooled - pooled.mean(0))[2][:3]
    denoised = result.coefficients @ basis.T @ basis
    np.testing.assert_allclose(result.denoised, denoised, atol=1e-10)
    peaks = [np.argmax(np.linalg.norm(denoised[v], axis=1)) for v in range(2)]
    first = denoised[0, peaks[0]] / np.linalg.norm(denoised[0, peaks[0]])
    second = denoised[1, peaks[1]] - (denoised[1, peaks[1]] @ first) * first
    np.testing.assert_allclose(result.axes[0], first, atol=1e-10)
    np.testing.assert_allclose(result.axes[1], second / np.linalg.norm(second), atol=1e-10)
    np.testing.assert_allclose(result.projections, means @ result.axes.T, atol=1e-10)


def test_figures():
    rec, _ = _task(np.random.default_rng(1), n_trials=120, n_times=5, n_units=8)
    result = fit_tdr(rec, variables=["choice", "motion", "colour"], conditions=["context", "motion", "choice"],
                     n_components=4)  # fmt: skip
    fig = result.plot(x="choice", y="motion", by="context", color="motion")
    assert len(fig.axes) == 3
    with pytest.raises(UnknownNameError):
        result.plot(x="speed")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"variables": ["speed"]}, UnknownNameError, "not a metadata column"),
        ({"variables": "choice"}, ArgumentTypeError, "list of metadata column"),
        ({"variables": ["choice", "choice"]}, ArgumentError, "collinear"),
        ({"variables": ["label"]}, ArgumentError, "3 non-numeric values"),
        ({"variables": ["constant"]}, ArgumentError, "constant"),
        ({"variables": ["choice"], "n_components": 99}, ArgumentError, "n_components"),
    ],
)
def test_bad_input_is_one_clear_error(rng, kwargs, error, match):
    rec, _ = _task(rng, n_trials=60, n_times=3, n_units=5)
    rec = rec.with_metadata(label=np.resize(["a", "b", "c"], 60), constant=np.ones(60))
    with pytest.raises(error, match=match):
        fit_tdr(rec, **kwargs)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e200])
def test_non_finite_states_are_refused(rng, bad):
    """From the units' spreads (no pass of their own): NaN or inf named with its count, finite states whose squares
    overflow as such; no numpy warning first."""
    import warnings

    rec, _ = _task(rng, n_trials=40, n_times=3, n_units=4)
    states = rec.get("h").copy()
    states[3, 1, 2] = bad
    match = "overflow" if np.isfinite(bad) else r"1 non-finite value\(s\) .* first at \(3, 1, 2\)"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(NonFiniteError, match=match):
            fit_tdr(Recording({"h": states}, metadata=rec.metadata), variables=["choice"], n_components=2)

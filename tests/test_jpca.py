"""jPCA and condition averages against independent references: the Sylvester equation of the skew-symmetric
least-squares problem, a planted rotation, the motor-cortex tensor's published rotational structure, and a
loop over conditions."""

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from rnnprobe import Recording
from rnnprobe.analysis import condition_average, fit_jpca
from rnnprobe.analysis.jpca import skew_least_squares
from rnnprobe.errors import NonFiniteError, ShapeError, UnknownNameError
from rnnprobe.neural import load_churchland

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_skew_least_squares_solves_its_normal_equations(rng):
    a, b = rng.normal(size=(200, 6)), rng.normal(size=(200, 6))
    m = skew_least_squares(a, b)
    np.testing.assert_allclose(m, -m.T, atol=1e-14)
    # the minimiser over skew-symmetric M solves A'A M + M A'A = A'B - B'A (a Sylvester equation)
    gram = a.T @ a
    expected = scipy.linalg.solve_sylvester(gram, gram, a.T @ b - b.T @ a)
    np.testing.assert_allclose(m, expected, atol=1e-10)


def test_planted_rotations_are_found_with_their_planes_and_frequencies(rng):
    t = np.arange(60)
    phases = rng.uniform(0, 2 * np.pi, size=(12, 1))
    radius = rng.uniform(0.5, 1.5, size=(12, 1, 1))

    def circle(theta, scale):  # (condition, time, 2), rotating theta radians per step
        return scale * radius * np.stack([np.cos(theta * t + phases), np.sin(theta * t + phases)], axis=-1)

    latent = np.concatenate([circle(0.08, 1.0), circle(0.03, 0.7)], axis=-1)
    embedding = np.linalg.qr(rng.normal(size=(20, 4)))[0].T  # 4 latents in 20 units
    result = fit_jpca(Recording({"h": latent @ embedding}), n_components=4, soft_normalize=None)
    # about sin(theta): a step of rotation R is dZ = Z (R - I), whose skew part is sin(theta)
    np.testing.assert_allclose(2 * np.pi * result.frequencies, np.sin([0.08, 0.03]), rtol=2e-3)
    for plane, planted in zip(result.planes, (embedding[:2], embedding[2:]), strict=True):
        assert scipy.linalg.subspace_angles((plane @ result.components).T, planted.T).max() < 0.05  # within 3 degrees
    assert result.r2_skew / result.r2 > 0.99
    p, dp = result.projections[:, :-1], np.diff(result.projections, axis=1)
    turning = (p[..., 0] * dp[..., 1] - p[..., 1] * dp[..., 0]).mean()
    assert turning > 0  # oriented counterclockwise


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is absent")
def test_motor_cortex_rotations_of_churchland_et_al():
    rec = load_churchland(DATA / "churchland2012_m1_tme_tensor")
    result = fit_jpca(rec, time=rec.times["M1"] <= 350, soft_normalize=None)  # the tensor is normalised already
    assert result.skew_fraction == pytest.approx(0.95, abs=0.01)  # DATA.md
    assert result.r2_skew / result.r2 > 0.85
    assert 1.0 < result.frequencies[0] * 1000 < 2.0  # Hz: about half a cycle over the 400 ms reach
    assert result.projections.shape == (10, 41, 2)


def test_condition_average_equals_a_loop(rng):
    h = rng.normal(size=(30, 4, 3))
    context, coherence = rng.integers(0, 2, 30), rng.integers(0, 3, 30)
    rec = Recording({"h": h}, metadata={"context": context, "coherence": coherence})
    means = condition_average(rec, ["context", "coherence"], sem=True)
    for row, (c, k) in enumerate(zip(means.column("context"), means.column("coherence"), strict=True)):
        trials = h[(context == c) & (coherence == k)]
        np.testing.assert_allclose(means.get("h")[row], trials.mean(axis=0), atol=1e-12)
        np.testing.assert_allclose(means.get("h:sem")[row], trials.std(axis=0, ddof=1) / np.sqrt(len(trials)))
        assert means.column("n_trials")[row] == len(trials)
    with pytest.raises(ShapeError, match="fewer than min_trials=50"):
        condition_average(rec, "context", min_trials=50)
    with pytest.raises(UnknownNameError, match="'choice' is not a metadata column"):
        condition_average(rec, "choice")
    broken = Recording({"h": np.where(h > 2, np.nan, h)}, metadata={"context": context})
    with pytest.raises(NonFiniteError, match="non-finite"):
        condition_average(broken, "context")


def test_bad_input_is_one_clear_error(rng):
    rec = Recording({"h": rng.normal(size=(5, 10, 8))})
    with pytest.raises(ShapeError, match="pass an even number"):
        fit_jpca(rec, n_components=3)
    with pytest.raises(ShapeError, match="cannot support"):
        fit_jpca(rec, time=slice(0, 2))
    bad = rng.normal(size=(5, 10, 8))
    bad[0, 0, 0] = np.nan
    with pytest.raises(NonFiniteError):
        fit_jpca(Recording({"h": bad}))


def test_states_without_rotation_get_planes_of_zero_frequency(rng):
    decay = np.exp(-0.1 * np.arange(30))[None, :, None] * rng.normal(size=(8, 1, 4))  # pure decay, no rotation
    result = fit_jpca(Recording({"h": decay @ np.linalg.qr(rng.normal(size=(10, 4)))[0].T}), n_components=4,
                      soft_normalize=None)  # fmt: skip
    assert result.planes.shape == (2, 2, 4) and np.isfinite(result.planes).all()
    np.testing.assert_allclose(result.r2_skew / result.r2, 0.0, atol=1e-6)
    with pytest.raises(ShapeError, match="do not differ"):
        fit_jpca(Recording({"h": rng.normal(size=(1, 10, 4))}), n_components=2)


@pytest.mark.parametrize("soft_normalize", [None, 0.0, 5.0])
def test_conditions_that_agree_but_for_rounding_do_not_differ(rng, soft_normalize):
    """Conditions identical at every time step at values no float64 mean equals (0.1 + a trajectory) keep
    about 1e-17 each once their mean is removed: refused as exactly identical ones (they were fitted: r2 0.5,
    a plane of rounding); a unit that agrees across conditions while the others differ adds nothing, as a
    unit of zeros."""
    t = np.linspace(0, 3, 30)
    same = np.sin(t)[None, :, None] * np.ones((8, 1, 6)) + 0.1 * np.arange(1, 7)
    with pytest.raises(ShapeError, match="do not differ"):
        fit_jpca(Recording({"h": same}), n_components=2, soft_normalize=soft_normalize)
    phases = rng.uniform(0, 2 * np.pi, size=(8, 1))
    rotating = np.stack([np.cos(2 * t + phases), np.sin(2 * t + phases)], axis=-1) @ rng.normal(size=(2, 5))
    agreeing = np.concatenate([rotating, 0.1 + np.broadcast_to(np.sin(t)[None, :, None], (8, 30, 1))], axis=2)
    zeros = np.concatenate([rotating, np.zeros((8, 30, 1))], axis=2)
    got = fit_jpca(Recording({"h": agreeing}), n_components=2, soft_normalize=soft_normalize)
    expected = fit_jpca(Recording({"h": zeros}), n_components=2, soft_normalize=soft_normalize)
    np.testing.assert_array_equal(got.components[:, -1], 0.0)
    np.testing.assert_allclose(got.m, expected.m, rtol=1e-12, atol=1e-12)


def test_conditions_that_differ_but_do_not_change_over_time_have_no_dynamics(rng):
    """Conditions at fixed points apart, with a drift common to all of them (removed with the cross-condition
    mean, leaving rounding that changes over time): refused as states that do not change, not fitted (r2 of
    5e-5 from rounding)."""
    for n_conditions, n_times, n_units in [(8, 30, 6), (13, 37, 50)]:
        states = np.repeat(rng.normal(size=(n_conditions, 1, n_units)), n_times, axis=1)
        states[:, :, 0] += 0.1 * np.arange(n_times)
        with pytest.raises(ShapeError, match="do not change over the time steps"):
            fit_jpca(Recording({"h": states}), n_components=2, soft_normalize=None)


def test_axes_and_planes_do_not_depend_on_the_decompositions_arbitrary_signs_and_phases(rng, monkeypatch):
    """The principal axes' signs (each axis's largest entry positive) and the jPC planes (the eigenvector's
    phase: its largest entry real and positive) are the same whatever sign or phase LAPACK returns: here
    every singular vector negated and every eigenvector turned by a random phase."""
    from rnnprobe.analysis.pca import principal_axes, svd_flip

    samples = rng.normal(size=(50, 6)) * np.arange(1, 7)
    axes = principal_axes(samples, 4)
    peaks = axes[np.arange(4), np.argmax(np.abs(axes), axis=1)]
    assert np.all(peaks > 0)
    np.testing.assert_allclose(np.abs(axes), np.abs(np.linalg.svd(samples - samples.mean(0))[2][:4]), atol=1e-12)
    np.testing.assert_array_equal(svd_flip(-axes), axes)
    t, phases = np.arange(30), rng.uniform(0, 2 * np.pi, size=(10, 1))
    slow = 0.05 * t + 3 * phases
    latent = np.stack([np.cos(0.2 * t + phases), np.sin(0.2 * t + phases), np.cos(slow), np.sin(slow)], axis=-1)
    rec = Recording({"h": latent @ rng.normal(size=(4, 8)) + 0.01 * rng.normal(size=(10, 30, 8))})
    expected = fit_jpca(rec, n_components=4, soft_normalize=None)
    real_svd, real_eig = np.linalg.svd, np.linalg.eig

    def negated_svd(*args, **kwargs):
        u, s, vt = real_svd(*args, **kwargs)
        return -u, s, -vt

    def turned_eig(matrix):
        values, vectors = real_eig(matrix)
        return values, vectors * np.exp(1j * rng.uniform(0, 2 * np.pi, size=vectors.shape[1]))

    monkeypatch.setattr(np.linalg, "svd", negated_svd)
    monkeypatch.setattr(np.linalg, "eig", turned_eig)
    got = fit_jpca(rec, n_components=4, soft_normalize=None)
    for name in ("components", "planes", "projections", "m"):
        np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=0, atol=1e-10, err_msg=name)

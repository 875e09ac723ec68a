"""DSA: DMD against a direct least-squares fit, the orthogonal search against known optima (copies under
rotations and reflections, finite-difference derivatives), the spectral variant against a brute-force
matching and dsa-metric, separation of attractor types, and bad input."""

import itertools

import numpy as np
import pytest
from scipy.linalg import expm

from rnnprobe import Recording
from rnnprobe.analysis import compare_dynamics, fit_dmd, pairwise_dynamics
from rnnprobe.analysis.dsa import similarity
from rnnprobe.errors import ArgumentError, NonFiniteError, RnnprobeError, ShapeError, UnknownNameError
from rnnprobe.testing import make_dynamics


def _orthogonal(rng, n, det):
    q = np.linalg.qr(rng.normal(size=(n, n)))[0]
    q[:, 0] *= det * np.sign(np.linalg.det(q))
    return q


def test_dmd_equals_a_direct_least_squares_fit_in_delay_coordinates(rng):
    x = make_dynamics("cycle", n_trials=4, n_steps=60, n_units=6, seed=1)
    result = fit_dmd(x, n_delays=3, delay_interval=2, rank=5)
    # the embedding by hand: block k holds x(t - 2k)
    embedded = np.stack([np.concatenate([x[:, t - 2 * k] for k in range(3)], axis=1) for t in range(4, 60)], axis=1)
    u, s, _ = np.linalg.svd(embedded.reshape(-1, 18), full_matrices=False)
    v = (u[:, :5] * np.sign(u[np.argmax(np.abs(u[:, :5]), axis=0), np.arange(5)])).reshape(4, 56, 5)
    coef = np.linalg.lstsq(v[:, :-1].reshape(-1, 5), v[:, 1:].reshape(-1, 5), rcond=None)[0]
    np.testing.assert_allclose(result.operator, coef.T, atol=1e-10)
    np.testing.assert_allclose(result.singular_values[:5], s[:5], rtol=1e-12)  # the kept ones
    np.testing.assert_allclose(result.singular_values, s, atol=1e-7 * s[0])  # the rest from the Gram matrix
    assert np.all(np.diff(np.abs(result.eigenvalues)) <= 1e-12)


def test_dmd_without_rank_keeps_the_numerical_rank_as_an_svd_by_hand():
    """Full-rank states: every coordinate, from the Gram matrix; rank-deficient ones (a unit copied): the SVD's
    numerical rank. Both equal to an SVD of the hand-built embedding to 1e-10."""
    x = make_dynamics("cycle", n_trials=4, n_steps=60, n_units=5, noise=0.05, seed=2)
    for states, expected_rank in ((x, 10), (np.concatenate([x, x[:, :, :1]], axis=2), 10)):
        result = fit_dmd(states, n_delays=2)
        p = states.shape[2]
        embedded = np.concatenate([states[:, 1:], states[:, :-1]], axis=2)  # block 1: one step back
        u, s, _ = np.linalg.svd(embedded.reshape(-1, 2 * p), full_matrices=False)
        u = u[:, :expected_rank]
        v = (u * np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(expected_rank)])).reshape(4, 59, expected_rank)
        coef = np.linalg.lstsq(v[:, :-1].reshape(-1, expected_rank), v[:, 1:].reshape(-1, expected_rank), rcond=None)
        assert result.rank == expected_rank
        np.testing.assert_allclose(result.operator, coef[0].T, atol=1e-10)
        np.testing.assert_allclose(result.singular_values[:expected_rank], s[:expected_rank], rtol=1e-10)


def test_dmd_recovers_a_planted_rotation():
    theta, x = 0.3, np.empty((80, 2))
    x[0] = [1.0, 0.5]
    rotation = 0.97 * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    for t in range(79):
        x[t + 1] = rotation @ x[t]
    result = fit_dmd(x)
    np.testing.assert_allclose(np.sort(np.angle(result.eigenvalues)), [-theta, theta], atol=1e-10)
    np.testing.assert_allclose(np.abs(result.eigenvalues), 0.97, atol=1e-10)


def test_gradient_and_hessian_of_the_search_match_finite_differences(rng):
    n = 5
    a, b = rng.normal(size=(n, n)), rng.normal(size=(n, n))
    c = _orthogonal(rng, n, 1)
    model = similarity._LocalModel(a, b, c)
    gradient = model.gradient
    hessian = np.stack([model.hessian_times(e) for e in np.eye(n * (n - 1) // 2)], axis=1)  # from its products
    upper = np.triu_indices(n, 1)

    def f(u):
        s = np.zeros((n, n))
        s[upper] = u
        return similarity._value(a, b, c @ expm(s - s.T))

    basis, eps = np.eye(len(upper[0])), 1e-4
    numeric = np.array([(f(eps * e) - f(-eps * e)) / (2 * eps) for e in basis])
    second = np.array([[(f(eps * (e + g)) - f(eps * (e - g)) - f(eps * (g - e)) + f(-eps * (e + g))) / (4 * eps**2)
                        for g in basis] for e in basis])  # fmt: skip
    np.testing.assert_allclose(gradient, numeric, atol=1e-6)
    np.testing.assert_allclose(hessian, second, atol=1e-5)


@pytest.mark.parametrize(("n", "det"), list(itertools.product([3, 8, 20], [1, -1])))
def test_an_operator_and_its_rotated_or_reflected_copy_are_at_distance_zero(rng, n, det):
    a = rng.normal(size=(n, n)) / np.sqrt(n)
    q = _orthogonal(rng, n, det)
    best = similarity.orthogonal_similarity(a, q.T @ a @ q)
    assert 2 * np.arcsin(best.residual / 2) < 1e-6
    np.testing.assert_allclose(best.transform @ best.transform.T, np.eye(n), atol=1e-12)
    assert np.sign(np.linalg.det(best.transform)) == det  # reflections are reached


def test_the_search_beats_or_matches_many_random_starts(rng):
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    best = similarity.orthogonal_similarity(a, b)
    # a brute-force reference: 300 random starts, each taken to convergence by the monotone steps
    a_n, b_n = a / np.linalg.norm(a), b / np.linalg.norm(b)
    bound = np.linalg.norm(a_n, 2) * np.linalg.norm(b_n, 2)
    values = []
    for k in range(300):
        start = _orthogonal(np.random.default_rng(k), 6, 1 if k % 2 else -1)
        values.append(similarity._mm(a_n, b_n, start, similarity._value(a_n, b_n, start), 20_000, bound, bound)[1])
    assert best.converged
    assert best.cosine >= max(values) - 1e-9


def test_systems_with_reflected_units_are_the_same_and_attractor_types_separate():
    line = make_dynamics("line", n_trials=10, n_steps=150, n_units=12, seed=0)
    rng = np.random.default_rng(5)
    q = _orthogonal(rng, 12, -1)
    same = compare_dynamics(line, line @ q, n_delays=2, rank=4)
    assert same.distance < 1e-6
    systems = {f"{kind} {k}": make_dynamics(kind, n_trials=10, n_steps=150, n_units=12, seed=10 * k + i)
               for i, kind in enumerate(("line", "point", "cycle")) for k in range(2)}  # fmt: skip
    result = pairwise_dynamics(systems, n_delays=2, rank=4)
    d = result.distances
    within = [d[i, i + 1] for i in (0, 2, 4)]
    between = [d[i, j] for i in range(6) for j in range(6) if i // 2 != j // 2]
    assert max(within) < 0.5 * min(between), (within, between)  # independent noise: small; other attractors: far
    assert result.nearest()["line 0"] == "line 1"


def test_spectral_distance_equals_a_brute_force_matching(rng):
    a, b = rng.normal(size=6) + 1j * rng.normal(size=6), rng.normal(size=6) + 1j * rng.normal(size=6)
    brute = min(np.mean(np.abs(a - b[list(p)]) ** 2) for p in itertools.permutations(range(6)))
    assert similarity.spectral_distance(a, b) == pytest.approx(brute, abs=1e-12)
    padded = similarity.spectral_distance(a[:4], b)  # the smaller set padded with zeros
    assert padded == pytest.approx(similarity.spectral_distance(np.r_[a[:4], 0, 0], b), abs=1e-15)


def test_spectral_variant_equals_dsa_metric():
    torch = pytest.importorskip("torch")
    dsa = pytest.importorskip("DSA")
    data = [make_dynamics(kind, n_trials=5, n_steps=80, n_units=8, seed=k) for k, kind in enumerate(("line", "cycle"))]
    ours = compare_dynamics(data[0], data[1], n_delays=3, rank=6, metric="wasserstein").distance
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # its embedding follows the default dtype
    try:
        theirs = np.asarray(dsa.DSA(data[0], data[1], score_method="wasserstein", n_delays=3, rank=6).fit_score())
    finally:
        torch.set_default_dtype(previous)
    assert ours == pytest.approx(float(theirs.item()), rel=1e-6)


def test_recordings_layers_and_precomputed_operators_give_the_same_distance():
    x = make_dynamics("cycle", n_trials=6, n_steps=100, n_units=5, seed=2)
    y = make_dynamics("line", n_trials=6, n_steps=100, n_units=7, seed=3)
    direct = compare_dynamics(x, y, n_delays=2, rank=4)
    recordings = compare_dynamics(Recording({"h": x}), Recording({"g": y}), layer=("h", "g"), n_delays=2, rank=4)
    operators = compare_dynamics(fit_dmd(x, n_delays=2, rank=4), fit_dmd(y, n_delays=2, rank=4))
    assert direct.distance == recordings.distance == operators.distance
    assert direct.summary()["metric"] == "angular"
    euclidean = compare_dynamics(x, y, n_delays=2, rank=4, metric="euclidean").distance
    assert euclidean == pytest.approx(2 * np.sin(direct.distance / 2), abs=1e-12)  # chord of the same angle


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_delays": 60}, ShapeError, "fewer delays"),
        ({"rank": 50}, ArgumentError, "pass rank <="),
        ({"metric": "procrustes"}, UnknownNameError, "metric"),
        ({"n_delays": 0}, ArgumentError, "n_delays"),
        ({"ridge": -1.0}, ArgumentError, "ridge"),
        ({"layer": "h"}, ArgumentError, "no layers"),
        ({"seed": 1.5}, ArgumentError, "seed"),
    ],
)
def test_bad_settings_are_one_clear_error(kwargs, error, match):
    x = make_dynamics("line", n_trials=3, n_steps=60, n_units=4, seed=0)
    with pytest.raises(error, match=match):
        compare_dynamics(x, x, **kwargs)


def test_bad_states_are_refused():
    x = make_dynamics("line", n_trials=3, n_steps=40, n_units=4, seed=0)
    bad = x.copy()
    bad[1, 5, 2] = np.nan
    with pytest.raises(NonFiniteError):
        compare_dynamics(x, bad)
    with pytest.raises(ShapeError):
        fit_dmd(np.zeros(10))
    with pytest.raises(RnnprobeError):
        fit_dmd(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(RnnprobeError):
        pairwise_dynamics({"only": x})

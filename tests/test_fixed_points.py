"""find_fixed_points against closed forms, an independent root finder and torch's own modules."""

import copy

import numpy as np
import pytest
import torch

from rnnprobe import Recording, record
from rnnprobe.analysis.fixed_points import find_fixed_points, recorded_states
from rnnprobe.errors import ArgumentError, ShapeError
from rnnprobe.models import BLT, CTRNN, FastWeightsRNN, shipped
from rnnprobe.tasks.flipflop import FlipFlop


def _trajectory_states(model, n_trials=32):
    rec = record(model, FlipFlop(3).sample(n_trials, split="test").x, progress=False)
    return recorded_states(rec, list(rec.shapes))  # the taps l0.h (and l0.c) make the packed state


def test_linear_map_fixed_point_and_eigenvalues_equal_the_closed_form(rng):
    d, m = 6, 2
    a = rng.normal(size=(d, d))
    a *= 1.3 / np.max(np.abs(np.linalg.eigvals(a)))  # one or more unstable modes
    b, c = rng.normal(size=(d, m)), rng.normal(size=d)
    at, bt, ct = (torch.as_tensor(v) for v in (a, b, c))

    def linear(x, u):
        return x @ at.T + u @ bt.T + ct

    u = np.array([[0.5, -1.0], [0.0, 2.0]])
    fp = find_fixed_points(linear, inputs=u, initial_states=rng.normal(size=(30, d)), outlier_distance=np.inf)
    assert len(fp) == 2 and fp.n_candidates == 60 * 2 and fp.n_unconverged == 0  # x 2 damping levels
    for i in range(2):
        expected = np.linalg.solve(np.eye(d) - a, b @ fp.inputs[i] + c)
        np.testing.assert_allclose(fp.states[i], expected, rtol=1e-12, atol=1e-12)
        assert fp.q[i] < 1e-28
    np.testing.assert_allclose(fp.jacobians[0], a, atol=1e-12)
    np.testing.assert_allclose(fp.input_jacobians[0], b, atol=1e-12)
    eig = np.linalg.eigvals(a)
    np.testing.assert_allclose(np.sort(np.abs(fp.eigenvalues[0]))[::-1], np.sort(np.abs(eig))[::-1], rtol=1e-10)
    assert fp.n_unstable[0] == (np.abs(eig) > 1).sum() and not fp.stable[0]
    assert sorted(map(tuple, fp.inputs)) == sorted(map(tuple, u))  # each point keeps its input


def test_a_line_attractor_is_stable_whatever_the_rounding_of_its_unit_eigenvalue(rng):
    """Points of a line attractor have an eigenvalue of exactly 1, which computes as 1 +- 1e-15 depending on the
    basis: every point was unstable in some bases (8.9e-16 past 1) and stable in others. Within ``tol`` of the unit
    circle an eigenvalue is marginal, not unstable, in every basis and for both solvers; 1 + 1e-6 is unstable."""
    from rnnprobe.analysis.fixed_points import unstable_modes

    spectrum = [1.0, 0.8, 0.6, 0.4, -0.3, 0.2]

    def basis(seed: int) -> tuple[np.ndarray, torch.Tensor]:
        v = np.random.default_rng(seed).normal(size=(6, 6))
        return v, torch.as_tensor(v @ np.diag(spectrum) @ np.linalg.inv(v))

    # bases in which the rounding puts the unit eigenvalue past 1 (which ones depends on the BLAS kernel: 2 of the
    # first 8 with OpenBLAS's Haswell kernel, 1 with its SkylakeX one), and 4 others
    past = [seed for seed in range(64) if np.abs(np.linalg.eigvals(basis(seed)[1].numpy())).max() > 1][:3]
    others = [seed for seed in range(8) if seed not in past][:4]
    assert len(past) >= 2, past
    for seed in past + others:
        v, a = basis(seed)
        for solver in ("dense", "matrix-free"):
            fp = find_fixed_points(lambda x, u, a=a: x @ a.T, inputs=[0.0], initial_states=rng.normal(size=(6, 6)),
                                   solver=solver, n_eigenvalues=3, deflation=0, progress=False)  # fmt: skip
            assert len(fp) and fp.stable.all() and (fp.n_unstable == 0).all(), (seed, solver)
        unstable = torch.as_tensor(v @ np.diag([1 + 1e-6, *spectrum[1:]]) @ np.linalg.inv(v))
        fp = find_fixed_points(lambda x, u, a=unstable: x @ a.T, inputs=[0.0], initial_states=np.zeros((1, 6)),
                               deflation=0, progress=False)  # fmt: skip
        assert len(fp) == 1 and not fp.stable[0] and fp.n_unstable[0] == 1
    flows = np.array([[1e-12 + 1j, 2e-9, -0.5]])  # a flow's eigenvalues (dt 10): margin 1e-10 / dt in real part
    assert unstable_modes(flows, True, 10.0, 1e-10).tolist() == [[False, True, False]]


def _bistable(x, u):
    """(x, y) -> (x + 0.1 (x - x^3) + u, 0.9 y): attractors (+-1, 0), a saddle at (0, 0) for u = 0."""
    return torch.stack([x[:, 0] + 0.1 * (x[:, 0] - x[:, 0] ** 3) + u[:, 0], 0.9 * x[:, 1]], dim=1)


@pytest.mark.parametrize(
    ("name", "work"),  # one pass; blocks of rows and of directions; blocks of directions
    [
        ("flipflop-lstm", 2**20),
        ("flipflop-lstm", 200),
        ("retrieval-fastweights", 2**20),
        ("retrieval-fastweights", 10**4),
    ],
)
def test_state_map_jacobians_equal_autograd_row_by_row(name, work, rng, monkeypatch):
    from rnnprobe.analysis import _state_map

    monkeypatch.setattr(_state_map, "WORK", work)
    sm = _state_map.StateMap(shipped.load(name), period=2)
    x = torch.as_tensor(rng.normal(scale=0.5, size=(7, sm.state_size)))
    u = torch.as_tensor(rng.normal(size=(7, sm.input_size)))
    jac, jac_u = sm.jacobians(x, u, inputs=True)
    assert torch.equal(sm.jacobians(x, u), jac)  # with and without dF/du: the same dF/dx
    for i in range(len(x)):  # reverse mode, one candidate at a time
        a, b = torch.autograd.functional.jacobian(lambda z, w: sm(z[None], w[None])[0], (x[i], u[i]))
        torch.testing.assert_close(jac[i], a, rtol=0, atol=1e-12)
        torch.testing.assert_close(jac_u[i], b, rtol=0, atol=1e-12)
    low = sm.jacobians(x, u, dtype=torch.float32)  # a float32 copy of the model: float32's accuracy
    assert low.dtype == torch.float64 and 1e-9 < (low - jac).abs().max() < 1e-4
    assert sm.jacobians(x[:0], u[:0]).shape == (0, sm.state_size, sm.state_size)


def test_two_dimensional_system_with_known_saddle_and_attractors(rng):
    fp = find_fixed_points(_bistable, inputs=[0.0], initial_states=rng.uniform(-2, 2, size=(200, 2)))
    order = np.argsort(fp.states[:, 0])
    np.testing.assert_allclose(fp.states[order], [[-1, 0], [0, 0], [1, 0]], atol=1e-14)
    assert fp.stable[order].tolist() == [True, False, True]
    assert fp.n_unstable[order].tolist() == [0, 1, 0]
    np.testing.assert_allclose(np.abs(fp.eigenvalues[order][1]), [1.1, 0.9], rtol=1e-12)
    np.testing.assert_allclose(np.abs(fp.eigenvalues[order][0]), [0.9, 0.8], rtol=1e-12)
    unstable = fp._unstable_directions(order[1])
    np.testing.assert_allclose(np.abs(unstable[0]), [1, 0], atol=1e-12)  # the saddle's unstable manifold is x


def test_dedup_tolerance_and_inputs_kept_apart(rng):
    starts = rng.uniform(-2, 2, size=(100, 2))
    fp = find_fixed_points(_bistable, inputs=[[0.0], [0.02]], initial_states=starts)
    assert len(fp) == 6  # three points at each input
    assert fp.n_duplicates == fp.n_candidates - fp.n_unconverged - fp.n_outliers - (6 - fp.n_deflated)
    merged = find_fixed_points(_bistable, inputs=[0.0], initial_states=starts, dedup_tol=10.0)
    assert len(merged) == 1 and merged.q[0] < 1e-28


def test_slow_points_are_kept_apart():
    def near_miss(x, u):  # r = -0.1 (x^2 + 0.01) is never 0; q has a minimum 5e-7 at x = 0
        return x - 0.1 * (x**2 + 0.01)

    fp = find_fixed_points(near_miss, inputs=[0.0], initial_states=np.linspace(-0.5, 0.5, 21)[:, None])
    assert len(fp) == 0 and len(fp.slow) == 1
    np.testing.assert_allclose(fp.slow.states[0], [0.0], atol=1e-6)
    np.testing.assert_allclose(fp.slow.q[0], 0.5 * 0.001**2, rtol=1e-6)


def test_period_two_orbit_of_a_constructed_map(rng):
    def flip(x, u):  # 0 is an unstable fixed point; +-a with a = 2 tanh(2 tanh a) form a stable 2-cycle
        return -2 * torch.tanh(x)

    starts = rng.uniform(-3, 3, size=(50, 1))
    plain = find_fixed_points(flip, inputs=[0.0], initial_states=starts)
    assert len(plain) == 1 and abs(plain.states[0, 0]) < 1e-14 and not plain.stable[0]
    orbit = find_fixed_points(flip, inputs=[0.0], initial_states=starts, period=2)
    order = np.argsort(orbit.states[:, 0])
    a = orbit.states[order][2, 0]
    np.testing.assert_allclose(a, 2 * np.tanh(2 * np.tanh(a)), rtol=1e-14)
    np.testing.assert_allclose(orbit.states[order][:, 0], [-a, 0, a], atol=1e-14)
    assert orbit.minimal_period[order].tolist() == [2, 1, 2]
    assert orbit.stable[order].tolist() == [True, False, True]
    slope = 4 / np.cosh(a) ** 4  # F'(a) F'(-a) = (2 sech^2 a)^2
    np.testing.assert_allclose(orbit.eigenvalues[order][2].real, [slope], rtol=1e-10)


@pytest.mark.parametrize("method", ["dense", "matrix-free"])
def test_flipflop_lstm_tuple_state_all_eight_attractors_confirmed_by_scipy(method):
    from scipy.optimize import root

    model = shipped.load("flipflop-lstm")
    starts = _trajectory_states(model)[::4]
    fp = find_fixed_points(model, initial_states=starts, solver=method)
    assert fp.solver == method
    stable = fp.stable
    assert stable.sum() == 8
    patterns = {tuple(np.sign(o).astype(int)) for o in fp.outputs[stable]}
    assert len(patterns) == 8  # one attractor per bit pattern, read out through the model's readout
    h, c = fp.state(0)
    assert h.shape == (1, 1, 16) and c.shape == (1, 1, 16)
    double = model.double()
    for x in fp.states:  # an independent root finder from each point, in float64

        def residual(v):
            state = double.unpack_state(torch.as_tensor(v[None]))
            with torch.no_grad():
                return double.pack_state(double.step(torch.zeros(1, 3, dtype=torch.float64), state)[1])[0].numpy() - v

        solution = root(residual, x, tol=1e-14)
        assert np.linalg.norm(residual(x)) < 1e-10
        np.testing.assert_allclose(solution.x, x, atol=1e-9)


def test_matrix_free_equals_the_closed_form_of_a_linear_map(rng):
    d = 40
    a = rng.normal(size=(d, d)) / np.sqrt(d)
    a *= 1.2 / np.max(np.abs(np.linalg.eigvals(a)))
    at, c = torch.as_tensor(a), torch.as_tensor(rng.normal(size=d))
    fp = find_fixed_points(lambda x, u: x @ at.T + u * c, inputs=[1.0], initial_states=rng.normal(size=(5, d)),
                           solver="matrix-free", n_eigenvalues=6, outlier_distance=np.inf)  # fmt: skip
    assert len(fp) == 1 and fp.jacobians is None
    np.testing.assert_allclose(fp.states[0], np.linalg.solve(np.eye(d) - a, c.numpy()), atol=1e-12)
    eig = np.linalg.eigvals(a)
    top = eig[np.argsort(-np.abs(eig), kind="stable")][:6]
    np.testing.assert_allclose(np.abs(fp.eigenvalues[0]), np.abs(top), rtol=1e-9)
    assert fp.eigenvalues.shape == (1, 6) and fp.eigenvectors.shape == (1, d, 6)
    v, lam = fp.eigenvectors[0][:, 0], fp.eigenvalues[0][0]
    np.testing.assert_allclose(a @ v, lam * v, atol=1e-9)  # eigenvectors of the Jacobian, not just values
    assert fp.n_unstable[0] == min(6, (np.abs(eig) > 1).sum()) and not fp.stable[0]
    np.testing.assert_allclose(fp.linearize(0)[0], a, atol=1e-12)  # the dense Jacobian on demand


def test_blt_constant_image_matrix_free_agrees_with_dense(rng):
    torch.manual_seed(0)
    model = BLT("BL", image_size=8, maps=2, steps=2, norm="none")  # state 2 x 8 x 8 + 2 x 4 x 4 = 160 units
    with torch.no_grad():
        model.conv.lateral[0].weight.mul_(0.3)
        model.conv.lateral[1].weight.mul_(0.3)
    image = torch.rand(1, 8, 8)
    starts = np.abs(rng.normal(size=(6, 160)))
    dense = find_fixed_points(model, inputs=image, initial_states=starts, solver="dense")
    free = find_fixed_points(
        model, inputs=image[None], initial_states=starts, solver="matrix-free", n_eigenvalues=5, memory=2**16
    )  # fmt: skip: a small budget: one state per chunk
    assert len(dense) == len(free) >= 1
    np.testing.assert_allclose(free.states, dense.states, atol=1e-10)
    np.testing.assert_allclose(np.abs(free.eigenvalues), np.abs(dense.eigenvalues[:, :5]), rtol=1e-8, atol=1e-12)
    assert free.stable.tolist() == dense.stable.tolist()
    m = model.double()
    with torch.no_grad():  # a fixed point of the model itself, at the image
        x = torch.as_tensor(free.states[:1])
        nxt = m.pack_state(m.step(image[None].double(), m.unpack_state(x))[1])
    assert (nxt - x).abs().max() < 1e-12


def test_feedforward_blt_has_one_fixed_point_with_zero_jacobian():
    torch.manual_seed(0)
    model = BLT("B", image_size=8, maps=2, steps=2)
    image = torch.rand(1, 1, 8, 8)
    fp = find_fixed_points(model, inputs=image, initial_states=np.ones((3, 160)), solver="matrix-free")
    with torch.no_grad():
        expected = model.double().pack_state(model.step(image.double(), model.init_state(1))[1])
    np.testing.assert_allclose(fp.states, expected.numpy(), atol=1e-12)
    assert np.all(fp.eigenvalues == 0) and fp.stable.all()


def test_fast_weights_tuple_state_points_are_fixed_points(rng):
    torch.manual_seed(0)
    model = FastWeightsRNN(3, 6, 2)  # (h, A): 6 + 36 state units
    starts = np.abs(rng.normal(size=(20, 42)))
    fp = find_fixed_points(model, inputs=[1.0, 0.0, 0.0], initial_states=starts)
    assert len(fp) >= 1
    h, a = fp.state(0)
    np.testing.assert_allclose(
        a[0], 0.5 / (1 - 0.95) * np.outer(h[0], h[0]), atol=1e-10
    )  # A* = eta h h' / (1 - lambda)
    assert np.isclose(np.abs(fp.eigenvalues[0]), 0.95).sum() >= 36 - 6  # A's own decay lambda


def test_torch_lstm_module_points_are_fixed_points_of_torch_itself(rng):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(2, 5, batch_first=True)
    fp = find_fixed_points(lstm, inputs=[0.3, -0.2], initial_states=rng.normal(size=(40, 10)))
    assert len(fp) >= 1
    module = lstm.double()
    for x in fp.states:
        h, c = torch.as_tensor(x[:5]).view(1, 1, 5), torch.as_tensor(x[5:]).view(1, 1, 5)
        with torch.no_grad():
            _, (h1, c1) = module(torch.tensor([[[0.3, -0.2]]], dtype=torch.float64), (h, c))
        assert np.abs(torch.cat([h1.ravel(), c1.ravel()]).numpy() - x).max() < 1e-12


def test_ctrnn_is_judged_in_continuous_time(rng):
    torch.manual_seed(1)
    model = CTRNN(2, 8, 1, tau=100.0, dt=20.0)
    fp = find_fixed_points(model, inputs=[0.5, 0.0], initial_states=rng.normal(size=(20, 8)))
    assert fp.continuous_time and len(fp) >= 1
    x = torch.as_tensor(fp.states[0])
    m = model.double()
    w = m.recurrent.weight.detach().numpy()
    slope = 1 - np.tanh(x.numpy()) ** 2 if m.nonlinearity == "tanh" else None
    expected = (-np.eye(8) + w * slope[None, :]) / m.tau  # the ODE's Jacobian in closed form
    a, _ = fp.linearize(0)
    np.testing.assert_allclose(a, expected, atol=1e-12)
    np.testing.assert_allclose(np.sort(fp.eigenvalues[0].real), np.sort(np.linalg.eigvals(expected).real), atol=1e-12)
    assert fp.stable[0] == (np.linalg.eigvals(expected).real < 0).all()


def test_initial_states_from_a_recording(rng):
    model = shipped.load("flipflop-lstm")
    x = FlipFlop(3).sample(8, split="test").x
    rec = record(model, x, progress=False)
    fp = find_fixed_points(model, initial_states=rec, layer=["l0.h", "l0.c"], n_initial=100, noise=0.01, seed=1)
    assert fp.n_candidates == 100 * 2 and fp.stable.sum() >= 1
    with pytest.raises(ShapeError, match=r"give 16 units per state, but the model's state packs into 32"):
        find_fixed_points(model, initial_states=rec, layer="l0.h")
    h = rec.to_numpy("l0.h")
    with pytest.raises(ShapeError, match=r"\(stimuli, time steps\) \[\(8, 100\), \(8, 1\)\], which differ"):
        find_fixed_points(model, initial_states=Recording({"l0.h": h, "final": h[:, -1:]}), layer=["l0.h", "final"])


def test_bad_inputs_get_clear_errors(rng):
    model = shipped.load("flipflop-gru")
    with pytest.raises(ShapeError, match=r"initial_states: got .*packs into 16"):
        find_fixed_points(model, initial_states=rng.normal(size=(10, 15)))
    with pytest.raises(ShapeError, match=r"inputs: got .*takes 3 input features"):
        find_fixed_points(model, inputs=[0.0, 1.0], initial_states=rng.normal(size=(10, 16)))
    bad = rng.normal(size=(10, 16))
    bad[3, 2] = np.nan
    with pytest.raises(ArgumentError, match=r"1 state\(s\) contain NaN"):
        find_fixed_points(model, initial_states=bad)
    with pytest.raises(ArgumentError, match="initial_states: pass a Recording"):
        find_fixed_points(model)
    with pytest.raises(ArgumentError, match="period: got 2 for a continuous-time model"):
        find_fixed_points(CTRNN(1, 4, 1), initial_states=np.zeros((2, 4)), period=2)
    with pytest.raises(ShapeError, match="model: one step on a state"):
        find_fixed_points(lambda x, u: x @ torch.ones(3, 3), inputs=[0.0], initial_states=np.zeros((2, 2)))
    with pytest.raises(ArgumentError, match="solver: got 'newton'"):
        find_fixed_points(model, initial_states=bad[:2], solver="newton")
    with pytest.raises(ShapeError, match="must return the next state with the same shape"):
        find_fixed_points(lambda x, u: x[:, :1], inputs=[0.0], initial_states=np.zeros((2, 2)))
    for value in (-1, True, 1.5):
        with pytest.raises(ArgumentError, match=r"deflation: got .*Pass an integer >= 0"):
            find_fixed_points(model, initial_states=bad[:2], deflation=value)


def test_plot(rng):
    import matplotlib

    matplotlib.use("Agg")
    fp = find_fixed_points(_bistable, inputs=[0.0], initial_states=rng.uniform(-2, 2, size=(50, 2)))
    fig = fp.plot(rng.normal(size=(5, 10, 2)))
    assert len(fig.axes) == 2
    assert "3 fixed points (2 stable, 1 unstable)" in repr(fp)


def _float64_residual(model):
    m = copy.deepcopy(model).double()
    zero = torch.zeros(1, m.input_size, dtype=torch.float64)

    def residual(v):
        with torch.no_grad():
            return m.pack_state(m.step(zero, m.unpack_state(torch.as_tensor(v[None])))[1])[0].numpy() - v

    return residual


def _hybr_roots(residual, starts):
    """Distinct in-range roots scipy's hybr (float64, tol 1e-14) reaches from ``starts``."""
    from scipy.optimize import root

    centre = starts.mean(0)
    radius = 10 * max(np.sqrt(((starts - centre) ** 2).sum(1).mean()), 0.1 * np.sqrt((starts**2).sum(1).mean()))
    roots = []
    for start in starts:
        x = root(residual, start, method="hybr", tol=1e-14).x
        if np.linalg.norm(residual(x)) < 1e-10 * max(1, np.linalg.norm(x)) and np.linalg.norm(x - centre) <= radius:
            if not any(np.linalg.norm(x - r) <= 1e-6 for r in roots):
                roots.append(x)
    return roots


def _missed(roots, points):
    return [r for r in roots if not any(np.linalg.norm(p - r) <= 1e-6 for p in points)]


def test_recall_matches_an_independent_float64_root_search_from_the_same_starts():
    """Every root scipy's hybr finds from the same starts is found (the damping ladder), and every point
    returned is a root; benchmarks/fixed_point_recall.py runs the full-size comparison."""
    model = shipped.load("flipflop-gru")
    rec = record(model, FlipFlop(3).sample(16, split="test").x, progress=False)
    pooled = recorded_states(rec, list(rec.shapes))
    starts = pooled[np.random.default_rng(0).choice(len(pooled), size=192, replace=False)]
    residual = _float64_residual(model)
    fp = find_fixed_points(model, initial_states=starts)
    roots = _hybr_roots(residual, starts)
    assert len(roots) >= 15
    assert not _missed(roots, fp.states), f"{len(_missed(roots, fp.states))} of {len(roots)} scipy roots missed"
    assert all(np.linalg.norm(residual(p)) < 1e-10 for p in fp.states)
    single = find_fixed_points(model, initial_states=starts, initial_damping=1.0, deflation=0)  # fewer points
    assert len(single) < len(fp)


@pytest.mark.parametrize("solver", ["dense", "matrix-free"])
def test_deflation_finds_the_saddle_the_damping_ladder_misses(solver):
    """From these four states of the flip-flop RNN (rows 641, 0, 100, 200 of the recall benchmark's 1024),
    hybr reaches four roots; every damping level misses one (a saddle with |lambda| 1.26, which hybr's
    dogleg reaches from row 641). The deflated pass finds it, and every point it adds is a root of F.
    """
    model = shipped.load("flipflop-rnn")
    rec = record(model, FlipFlop(3).sample(64, split="test").x, progress=False)
    pooled = recorded_states(rec, list(rec.shapes))
    rows = np.sort(np.random.default_rng(0).choice(len(pooled), size=1024, replace=False))[[641, 0, 100, 200]]
    starts, residual = pooled[rows], _float64_residual(model)
    roots = _hybr_roots(residual, starts)
    ladder = find_fixed_points(model, initial_states=starts, deflation=0, solver=solver)
    assert len(roots) == 4 and len(_missed(roots, ladder.states)) == 1 and ladder.n_deflated == 0
    fp = find_fixed_points(model, initial_states=starts, solver=solver)
    assert not _missed(roots, fp.states) and fp.n_deflated >= 1
    assert all(np.linalg.norm(residual(p)) < 1e-10 * max(1, np.linalg.norm(p)) for p in fp.states)
    assert not _missed(ladder.states, fp.states)  # nothing the ladder found is lost
    assert fp.n_candidates == ladder.n_candidates and fp.n_duplicates == ladder.n_duplicates


def test_the_newton_polish_solves_large_systems_right_on_two_threads(rng, torch_threads):
    """torch 2.13's batched LU on more than one thread raised or returned wrong solutions from about 200 unknowns
    (two systems of 300 on two threads: a residual of 28), which stopped the Newton polish of a dense search's
    candidates (or would have offered it wrong steps): the step comes from numpy's LAPACK on the CPU. A singular
    Jacobian still raises the RuntimeError the polish stops at."""
    from rnnprobe.analysis._fp_search import Dense

    torch_threads(2)
    system = Dense.__new__(Dense)  # (the step needs only J - I and the residual)
    system.jr = torch.from_numpy(rng.normal(size=(3, 300, 300)) + 5 * np.eye(300))
    system.r = torch.from_numpy(rng.normal(size=(3, 300)))
    step = system.newton()
    np.testing.assert_allclose((system.jr @ step[..., None])[..., 0], -system.r, atol=1e-9)
    system.jr[1] = 0.0
    with pytest.raises(RuntimeError, match="singular"):
        system.newton()

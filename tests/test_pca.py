import subprocess
import sys

import numpy as np
import pytest
from sklearn.decomposition import PCA

from rnnprobe import Recording
from rnnprobe.analysis.pca import fit_pca, participation_ratio
from rnnprobe.errors import ArgumentError, ArgumentTypeError, NonFiniteError, ShapeError, UnknownNameError


def _recording(rng, n=40, t=6, units=(3, 4)):
    mixing = rng.normal(size=(int(np.prod(units)),) * 2) * np.geomspace(3, 0.05, int(np.prod(units)))
    states = (rng.normal(size=(n, t, int(np.prod(units)))) @ mixing).reshape(n, t, *units) + 2.0
    return Recording({"h": states}, metadata={"label": np.arange(n) % 4})


@pytest.mark.parametrize("device", [None, "cpu"])
@pytest.mark.parametrize(("n", "t", "units"), [(40, 6, (3, 4)), (5, 3, (20,)), (100, 1, (2, 2, 2))])
def test_matches_sklearn(rng, device, n, t, units):
    rec = _recording(rng, n, t, units)
    flat = rec.get("h", flatten=True).reshape(n * t, -1)
    k = min(5, flat.shape[0], flat.shape[1])
    ref = PCA(n_components=k, svd_solver="full").fit(flat)
    res = fit_pca(rec, "h", n_components=k, device=device)
    np.testing.assert_allclose(res.components, ref.components_, atol=1e-6)
    np.testing.assert_allclose(res.explained_variance, ref.explained_variance_, rtol=1e-6)
    np.testing.assert_allclose(res.explained_variance_ratio, ref.explained_variance_ratio_, rtol=1e-6)
    np.testing.assert_allclose(res.trajectories.reshape(n * t, k), ref.transform(flat), atol=1e-6)


def test_fit_window_subset_and_shared_basis(rng):
    rec = _recording(rng)
    other = _recording(np.random.default_rng(5))
    res = fit_pca(rec, n_components=3, time=slice(-2, None), stimuli=rec.column("label") < 2)
    subset = rec.get("h", flatten=True)[rec.column("label") < 2][:, -2:].reshape(-1, 12)
    ref = PCA(n_components=3, svd_solver="full").fit(subset)
    np.testing.assert_allclose(res.components, ref.components_, atol=1e-6)
    assert res.trajectories.shape == (40, 6, 3)  # every stimulus and step is projected
    np.testing.assert_array_equal(res.fit_time, [4, 5])
    np.testing.assert_allclose(
        res.transform(other).reshape(-1, 3), ref.transform(other.get("h", flatten=True).reshape(-1, 12)), atol=1e-6
    )
    with pytest.raises(ShapeError, match="do not have the 12 units"):
        res.transform(np.zeros((2, 3, 5)))
    states = rec.get("h", flatten=True)
    for selection, fitted in (({"time": [1, 3]}, states[:, [1, 3]]), ({"stimuli": slice(5, 30)}, states[5:30])):
        ref = PCA(n_components=3, svd_solver="full").fit(fitted.reshape(-1, 12))  # (one of the two selected)
        np.testing.assert_allclose(fit_pca(rec, n_components=3, **selection).components, ref.components_, atol=1e-6)


def test_participation_ratio_equals_eigenvalue_formula(rng):
    for n, units in [(50, 8), (6, 30)]:
        states = rng.normal(size=(n, 4, units)) * np.linspace(0.1, 3, units)
        expected = []
        for t in range(4):
            eig = np.linalg.eigvalsh(np.cov(states[:, t], rowvar=False))
            expected.append(eig.sum() ** 2 / (eig**2).sum())
        np.testing.assert_allclose(participation_ratio(states), expected, rtol=1e-9)
    assert np.isnan(participation_ratio(np.ones((5, 2, 3)))).all()  # no variance: undefined, not 0
    # states of 0.1 for every stimulus keep a spread of rounding once centred (no float64 mean of them is 0.1
    # here), whose ratio was 1: no variance either
    for units in (10, 50):  # (p x p and n x n Gram matrices)
        states = rng.normal(size=(24, 2, units))
        states[:, 1] = 0.1
        assert ((states[:, 1] - states[:, 1].mean(axis=0)) ** 2).sum() > 0
        ratio = participation_ratio(states)
        assert np.isfinite(ratio[0]) and np.isnan(ratio[1])
    import warnings

    with warnings.catch_warnings():  # fewer than 2 stimuli: no variance either, NaN without numpy warnings
        warnings.simplefilter("error")
        for too_few in (np.ones((1, 2, 3)), np.ones((0, 2, 3))):
            assert np.isnan(participation_ratio(too_few)).all() and participation_ratio(too_few).shape == (2,)


@pytest.mark.parametrize("value", [1.0, 0.1])
def test_states_that_do_not_vary_explain_no_variance(value):
    """A layer the same on every stimulus and step: nothing to explain (variances and ratios 0, participation ratio
    NaN), whether its values are exact (1.0) or keep rounding once centred (0.1, 1/3, ...: PC1 'explained' 100% of
    that rounding)."""
    states = np.broadcast_to(value * np.array([1.0, 2.0, 3.0, 7.0, 10 / 3, 20 / 3]), (45, 3, 6)).copy()
    result = fit_pca(Recording({"h": states}), "h")
    np.testing.assert_array_equal(result.explained_variance, 0.0)
    np.testing.assert_array_equal(result.explained_variance_ratio, 0.0)
    assert np.isnan(result.participation_ratio).all() and result.summary()["variance PC1"] == 0.0


def test_plot(rng):
    import matplotlib

    matplotlib.use("Agg")
    res = fit_pca(_recording(rng), n_components=3)
    fig = res.plot(color_by="label")
    assert len(fig.axes) >= 2 and fig.axes[0].get_xlabel().startswith("PC1")
    fig3 = res.plot(components=(0, 1, 2))
    assert fig3.axes[0].name == "3d"
    with pytest.raises(UnknownNameError, match="color_by: 'nope'"):
        res.plot(color_by="nope")
    with pytest.raises(ArgumentError, match="components"):
        res.plot(components=(0, 5))


def test_bad_input(rng):
    rec = _recording(rng)
    with pytest.raises(ArgumentTypeError, match="Pass an rnnprobe Recording"):
        fit_pca(np.zeros((3, 4, 5)))
    with pytest.raises(ArgumentError, match=r"n_components: got 99\. Pass an integer from 1 to 12"):
        fit_pca(rec, n_components=99)
    with pytest.raises(ArgumentError, match="Select at least 2"):
        fit_pca(rec, time=0, stimuli=[0])
    with pytest.raises(ArgumentError, match="device: got 'jax'"):
        fit_pca(rec, device="jax")


def test_analysis_import_does_not_load_matplotlib():
    code = "import sys, rnnprobe.analysis.pca; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_participation_ratio_makes_one_float64_copy_of_its_states(rng):
    """participation_ratio cast its states to float64 and then centred them (two copies of the layer; fit_pca
    calls it on the whole layer): now the centred float64 states are the one copy, the numbers unchanged."""
    import tracemalloc

    x = rng.normal(size=(200, 8, 600))
    expected = participation_ratio(x.copy())
    for states in (x, x.astype(np.float32)):
        reference = participation_ratio(states.astype(np.float64))
        tracemalloc.start()
        try:
            got = participation_ratio(states)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        np.testing.assert_array_equal(got, reference)
        gram = 8 * 200 * 200 * 8  # the steps' Gram matrices
        assert peak < x.nbytes * 1.5 + gram, peak  # one float64 copy (7.7 MB), not two
    np.testing.assert_allclose(expected, participation_ratio(x), rtol=1e-15)


def test_right_singular_by_the_smaller_gram_matrix_equals_the_svd(rng, monkeypatch):
    """Kept axes of enough variance: the eigendecomposition of x'x (more samples than features) or of x x' (fewer;
    the axes x'u / s) gives numpy's singular values and axes (no SVD taken); a kept axis of too little variance
    (the k-th eigenvalue under 1e-8 of the first) or no variance at all take the SVD itself."""
    from rnnprobe.analysis.pca import right_singular, svd_flip

    svd, calls = np.linalg.svd, []
    monkeypatch.setattr(np.linalg, "svd", lambda *a, **k: calls.append(a[0].shape) or svd(*a, **k))
    x = rng.normal(size=(500, 12)) @ np.diag(np.geomspace(3, 0.01, 12))
    x -= x.mean(axis=0)
    s, vt, total = right_singular(x, 12)
    assert not calls
    _, s_ref, vt_ref = svd(x, full_matrices=False)
    np.testing.assert_allclose(s, s_ref, rtol=1e-9)
    np.testing.assert_allclose(svd_flip(vt), svd_flip(vt_ref), atol=1e-9)
    assert total == pytest.approx(np.sum(x * x), rel=1e-12)
    steep = rng.normal(size=(500, 12)) @ np.diag(np.geomspace(1, 1e-7, 12))  # variances 1 to 1e-14
    s, _, total = right_singular(steep, 10)  # the 10th's variance is 1e-12 of the first: the SVD
    assert calls == [(500, 12)] and total == pytest.approx(np.sum(steep * steep), rel=1e-12)
    np.testing.assert_allclose(s, svd(steep, compute_uv=False), rtol=1e-12)
    assert right_singular(steep, 3)[0].shape == (12,) and calls == [(500, 12)]  # 3 kept: the Gram matrix
    for spread in (1.0, 1e-3):  # wide: from x x' (axes of variances down to 1e-6 of the first)
        wide = rng.normal(size=(40, 300)) * np.geomspace(1, spread, 300) @ rng.normal(size=(300, 300)) / 20
        wide -= wide.mean(axis=0)
        s, vt, total = right_singular(wide, 20)
        _, s_ref, vt_ref = svd(wide, full_matrices=False)
        np.testing.assert_allclose(s, s_ref, rtol=1e-9, atol=1e-12 * s_ref[0])  # (the 40th: zero, once centred)
        assert total == pytest.approx(np.sum(wide * wide), rel=1e-12)
        np.testing.assert_allclose(svd_flip(vt[:20]), svd_flip(vt_ref[:20]), atol=1e-8)
    assert calls == [(500, 12)]  # (the references' SVDs are numpy's own, not counted)
    right_singular(np.geomspace(1, 1e-7, 5)[:, None] * rng.normal(size=(5, 12)), 5)  # wide, the 5th: 1e-14
    right_singular(np.zeros((30, 4)), 2)  # no variance
    assert calls[1:] == [(5, 12), (30, 4)]


def test_the_leading_axes_alone_equal_every_axis_and_the_total_is_the_squared_norm(rng, monkeypatch):
    """Few axes kept of many features (10 of 256): LAPACK's MRRR finds those alone (the subset, counted),
    equal to numpy's full eigendecomposition's first 10 (values to 1e-12 relative, axes to 1e-9), through x'x and
    x x' alike; more kept (a quarter) or fewer features (64) take the full one. The total is x's squared norm to
    1e-12 either way; fit_pca's variances and their ratios equal scikit-learn's."""
    from rnnprobe.analysis import _lapack, pca

    leading, subsets = _lapack.leading_eigh, []
    monkeypatch.setattr(_lapack, "leading_eigh", lambda a, k: subsets.append([len(a) - k, len(a) - 1]) or leading(a, k))
    for shape in ((1000, 256), (120, 256)):  # tall (x'x) and wide (x x': 120 x 120, under 128, the full one)
        x = rng.normal(size=shape) @ np.diag(np.geomspace(5, 0.1, 256)) @ np.linalg.qr(rng.normal(size=(256, 256)))[0]
        x -= x.mean(axis=0)
        _, s_ref, vt_ref = np.linalg.svd(x, full_matrices=False)
        for k in (10, 64):
            subsets.clear()
            s, vt, total = pca.right_singular(x, k)
            assert subsets == ([[246, 255]] if shape[0] > 256 and k == 10 else [])
            assert len(s) == (k if subsets else min(shape))
            np.testing.assert_allclose(s[:k], s_ref[:k], rtol=1e-12)
            np.testing.assert_allclose(pca.svd_flip(vt[:k]), pca.svd_flip(vt_ref[:k]), atol=1e-9)
            assert total == pytest.approx(np.sum(x * x), rel=1e-12)
    subsets.clear()
    assert len(pca.right_singular(rng.normal(size=(500, 64)), 3).singular) == 64 and subsets == []  # (64 features)
    states = rng.normal(size=(300, 4, 256)) @ np.diag(np.geomspace(3, 0.05, 256)) + 1.0
    res = fit_pca(Recording({"h": states}), "h", n_components=10)
    assert subsets == [[246, 255]]
    ref = PCA(n_components=10, svd_solver="full").fit(states.reshape(-1, 256))
    np.testing.assert_allclose(res.components, ref.components_, atol=1e-9)
    np.testing.assert_allclose(res.explained_variance, ref.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(res.explained_variance_ratio, ref.explained_variance_ratio_, rtol=1e-10)


def test_pca_of_a_steep_spectrum_keeps_the_small_variances(rng):
    """Kept axes with variances 1e-12 of the first (states scaled over six orders of magnitude): equal to
    scikit-learn's full SVD to 1e-6, which the eigendecomposition of x'x would not give (its eigenvalues' error
    is about eps x features x the first one)."""
    states = rng.normal(size=(200, 3, 12)) @ np.diag(np.geomspace(1, 1e-7, 12))
    res = fit_pca(Recording({"h": states}), "h", n_components=10)
    ref = PCA(n_components=10, svd_solver="full").fit(states.reshape(-1, 12))
    np.testing.assert_allclose(res.explained_variance, ref.explained_variance_, rtol=1e-6)


@pytest.mark.parametrize("threads", [1, 3])
def test_pca_from_the_steps_gram_matrices_equals_the_pooled_states(rng, threads, monkeypatch):
    """Every stimulus fitted (no more units than stimuli): the scatter matrix of the fitted states comes from each
    step's Gram matrix of its centred states (which the participation ratio needs) and the spread of the steps'
    means, a step taken twice counted twice, steps on 1 and 3 threads; the axes, variances and trajectories equal
    scikit-learn's PCA of the pooled states (far from the origin, steps with means of their own), with no product
    or SVD of the pooled states. A subset of stimuli, or an ill-conditioned scatter, takes the pooled states."""
    import torch

    import rnnprobe.analysis.pca as pca

    states = rng.normal(size=(300, 5, 12)) @ np.diag(np.geomspace(2, 0.1, 12)) + rng.normal(size=(5, 12)) + 1e3
    rec = Recording({"h": states})
    fitted = states[:, [0, 2, 2, 4]].reshape(-1, 12)
    axes, calls = pca._principal_axes, []
    monkeypatch.setattr(pca, "_principal_axes", lambda x, *a: calls.append(x.shape) or axes(x, *a))
    monkeypatch.setattr(pca, "SPLIT_BYTES", 0)  # (the steps in shares on the threads, however few the states)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        moments = pca.StepMoments.of(states, np.bincount([0, 2, 2, 4], minlength=5))
        res = fit_pca(rec, n_components=6, time=[0, 2, 2, 4])
    finally:
        torch.set_num_threads(before)
    exact = fitted.astype(np.longdouble) - fitted.astype(np.longdouble).mean(axis=0)  # (80 bits on x86-64)
    exact = (exact.T @ exact).astype(np.float64)
    np.testing.assert_allclose(moments.scatter, exact, rtol=0, atol=1e-13 * np.abs(exact).max())
    np.testing.assert_allclose(moments.participation_ratio(), participation_ratio(states.copy()), rtol=1e-12)
    assert calls == []  # (nor the SVD: right_singular is called only there)
    ref = PCA(n_components=6, svd_solver="full").fit(fitted)
    np.testing.assert_allclose(res.components, ref.components_, atol=1e-9)
    np.testing.assert_allclose(res.explained_variance, ref.explained_variance_, rtol=1e-9)
    np.testing.assert_allclose(res.trajectories.reshape(-1, 6), ref.transform(states.reshape(-1, 12)), atol=1e-8)
    assert res.trajectories.flags.c_contiguous
    # (in shares of the stimuli on the threads: the same products as the whole layer's, the same bits)
    whole = moments.centred @ res.components.T + (moments.means - res.mean) @ res.components.T
    np.testing.assert_array_equal(res.trajectories, whole)
    wide = rng.normal(size=(30, 10, 40)) + rng.normal(size=(10, 40))  # fewer stimuli than units, 300 fitted
    moments = pca.StepMoments.of(wide, np.ones(10, dtype=int))
    centred = wide.reshape(-1, 40) - wide.reshape(-1, 40).mean(axis=0)
    np.testing.assert_allclose(moments.scatter, centred.T @ centred, rtol=0, atol=1e-13 * np.abs(moments.scatter).max())
    np.testing.assert_allclose(moments.participation_ratio(), participation_ratio(wide), rtol=1e-12)
    assert pca.StepMoments.of(wide, np.eye(10, dtype=int)[0]).scatter is None  # (one step fitted: x x' is cheaper)
    fit_pca(rec, n_components=2, stimuli=slice(0, 200))
    steep = Recording({"h": rng.normal(size=(300, 5, 12)) @ np.diag(np.geomspace(1, 1e-7, 12))})
    fit_pca(steep, n_components=10)
    assert calls == [(1000, 12), (1500, 12)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_fit_pca_refuses_non_finite_states_from_the_step_moments(rng, bad, threads, monkeypatch):
    """fit_pca checks no state before its one pass over the steps: a NaN or inf makes that step's trace NaN, and
    only then are the states searched, for the error's count and position (no numpy warning first); finite states
    whose squares overflow are refused too (by participation_ratio as well), not turned into NaN or 0."""
    import warnings

    import torch

    import rnnprobe._validation as validation

    searched, check = [], validation.check_finite  # (every search of the states, first or after the traces)
    monkeypatch.setattr(validation, "check_finite", lambda a, **k: searched.append(a.shape) or check(a, **k))
    states = rng.normal(size=(40, 6, 5))
    fit_pca(Recording({"h": states}), "h")
    assert searched == []  # finite states: never searched
    states[7, 4, 2] = bad
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(
                NonFiniteError, match=r"layer 'h' holds 1 non-finite value\(s\) .* first at \(7, 4, 2\)"
            ):
                fit_pca(Recording({"h": states}), "h")
            assert searched == [(40, 6, 5)]
            huge = Recording({"h": rng.normal(size=(40, 6, 5)) * 1e160})
            with pytest.raises(
                NonFiniteError, match=r"\(up to \d\.\d+e\+160\) whose squares overflow, so no covariance"
            ):
                fit_pca(huge, "h")
            with pytest.raises(NonFiniteError, match=r"states: holds finite values .* whose squares overflow"):
                participation_ratio(huge.get("h"))
    finally:
        torch.set_num_threads(before)
    finite = np.nan_to_num(states, nan=0.0, posinf=0.0, neginf=0.0)
    scaled, plain = fit_pca(Recording({"h": finite * 1e60}), "h", n_components=3), fit_pca(Recording({"h": finite}))
    np.testing.assert_allclose(scaled.explained_variance, plain.explained_variance[:3] * 1e120, rtol=1e-9)
    np.testing.assert_allclose(scaled.participation_ratio, plain.participation_ratio, rtol=1e-9)


def test_the_largest_eigenpairs_through_lapacks_c_interface_equal_scipys_wrapper(rng, monkeypatch):
    """leading_eigh: LAPACK's dsyevr through scipy's C interface (without the interpreter lock), the same numbers
    as scipy's eigh(subset_by_index=..., driver="evr") to the bit (the lower triangle read, the caller's matrix
    left as it was), from 2 threads at once too, and through scipy's wrapper where the C routine is missing (on
    one BLAS thread where the libraries have two: test_parallel); largest_eigh takes a stack matrix by matrix, and
    numpy's eigh of small matrices and of many kept pairs."""
    from concurrent.futures import ThreadPoolExecutor

    from scipy.linalg import eigh

    from rnnprobe.analysis import _lapack

    matrices = []
    for n in (1, 7, 200):
        x = rng.normal(size=(n + 3, n))
        a = x.T @ x
        a[0, -1] += 1.0  # not symmetric: the lower triangle is read
        matrices += [(a, k) for k in {1, max(1, n // 2), n}]
    expected = [eigh(a, subset_by_index=[len(a) - k, len(a) - 1], driver="evr") for a, k in matrices]
    before = [a.copy() for a, _ in matrices]
    for (a, k), (values, vectors), kept in zip(matrices, expected, before, strict=True):
        got = _lapack.leading_eigh(a, k)
        assert got[0].shape == (k,) and got[1].shape == (len(a), k)
        assert np.array_equal(got[0], values) and np.array_equal(got[1], vectors) and np.array_equal(a, kept)
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda ak: _lapack.leading_eigh(*ak), matrices * 4))
    for got, (values, vectors) in zip(together, expected * 4, strict=True):
        assert np.array_equal(got[0], values) and np.array_equal(got[1], vectors)
    a = matrices[-2][0]
    np.testing.assert_array_equal(_lapack.largest_eigh(a, 25)[1], _lapack.leading_eigh(a, 25)[1])  # 25 of 200
    for small in (a[:100, :100], a):  # fewer than 128 rows, 26 of 200: every pair
        np.testing.assert_array_equal(_lapack.largest_eigh(small, 26 if small is a else 1)[1], np.linalg.eigh(small)[1])
    stack = np.stack([np.stack([a, a.T @ a / 1e3, a + 1e3 * np.eye(200)])] * 2)  # (2, 3, 200, 200): matrix by matrix
    values, vectors = _lapack.largest_eigh(stack, 5)
    assert values.shape == (2, 3, 5) and vectors.shape == (2, 3, 200, 5)
    for index in np.ndindex(2, 3):
        one = _lapack.leading_eigh(stack[index], 5)
        assert np.array_equal(values[index], one[0]) and np.array_equal(vectors[index], one[1])
    np.testing.assert_array_equal(_lapack.largest_eigh(stack, 26)[1], np.linalg.eigh(stack)[1])
    nan = a.copy()
    nan[3, 5] = nan[5, 3] = np.nan  # refused, not eigenpairs of NaN (numpy's eigh gives NaN; callers refuse first)
    for bad, k in ((nan, 3), (a, 201)):  # and more pairs than rows
        with pytest.raises(np.linalg.LinAlgError, match="dsyevr"):
            _lapack.leading_eigh(bad, k)
    monkeypatch.setattr(_lapack, "_c_routine", lambda *args: None)
    got = _lapack.leading_eigh(a, 25)
    reference = eigh(a, subset_by_index=[175, 199], driver="evr")
    assert np.array_equal(got[0], reference[0]) and np.array_equal(got[1], reference[1])

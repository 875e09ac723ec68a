"""Alignment metrics against independent references: netrep's LinearMetric (when installed, and its
values stored here), scipy's principal angles, brute-force kernel formulas, invariances and the
triangle inequality."""

import numpy as np
import pytest
import scipy.linalg

from rnnprobe import Recording
from rnnprobe.analysis import compare_representations, pairwise_distances
from rnnprobe.analysis.alignment import _core, classical_mds
from rnnprobe.analysis.alignment.inputs import folds
from rnnprobe.errors import ArgumentError, NonFiniteError, RnnprobeError, ShapeError, UnknownNameError

try:
    from netrep.metrics import LinearMetric
except ImportError:  # netrep is not on PyPI: pip install from its source repository (ahwillia/netrep)
    LinearMetric = None
needs_netrep = pytest.mark.skipif(LinearMetric is None, reason="netrep is not installed")

# netrep 0.0.2 (commit 0186b8a), LinearMetric(alpha).fit_score(x, y) on the data of _stored_pair()
NETREP_IN_SAMPLE = {0.0: 0.7826137488074857, 0.25: 0.7323050787091052, 0.5: 0.7278275530467453,
                    0.75: 0.7257674567599801, 1.0: 0.7245883900912159}  # fmt: skip
# LinearMetric(alpha).fit(x[:35], y[:35]).score(x[35:], y[35:])
NETREP_HELD_OUT = {0.0: 1.0861845817372027, 0.5: 0.9221763932276349, 1.0: 0.9080195621511354}


def _stored_pair():
    rng = np.random.default_rng(2026)
    x = rng.normal(size=(50, 8))
    return x, x[:, :6] @ rng.normal(size=(6, 6)) + rng.normal(size=(50, 6))


CUDA = pytest.param("cuda", marks=pytest.mark.skipif(not __import__("torch").cuda.is_available(),
                                                      reason="needs a CUDA GPU (none on CI)"))  # fmt: skip
DEVICES = [None, "cpu", CUDA]  # numpy; the same arithmetic on torch tensors (compare_representations(device=))


def _value(x, y, metric="shape", **kwargs):
    return compare_representations(x, y, metric=metric, **kwargs).value


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("alpha", sorted(NETREP_IN_SAMPLE))
def test_shape_metric_equals_netreps_stored_values(alpha, device):
    x, y = _stored_pair()  # different widths: netrep zero-pads y
    assert _value(x, y, alpha=alpha, device=device) == pytest.approx(NETREP_IN_SAMPLE[alpha], abs=1e-10)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("alpha", sorted(NETREP_HELD_OUT))
def test_held_out_shape_metric_equals_netreps_stored_values(alpha, device):
    x, y = _stored_pair()
    if device is not None:  # the same functions on tensors
        import torch

        x, y = (torch.from_numpy(v).to(device) for v in (x, y))
    train = [_core.prepare(v[:35].contiguous() if device else np.ascontiguousarray(v[:35]), "shape", alpha=alpha,
                           fit=True) for v in (x, y)]  # fmt: skip
    fitted = _core.fit_pair(*train, "shape")
    assert _core.held_out_value(fitted, x[35:], y[35:], "shape") == pytest.approx(NETREP_HELD_OUT[alpha],
                                                                                           abs=1e-10)  # fmt: skip


@needs_netrep
@pytest.mark.parametrize(("n", "p", "q"), [(200, 20, 20), (120, 30, 11), (40, 60, 50)])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_shape_metric_equals_netrep(rng, n, p, q, alpha):
    x = rng.normal(size=(n, p)) * np.linspace(0.1, 3, p)
    y = x[:, :q] @ rng.normal(size=(q, q)) + rng.normal(size=(n, q)) + 5
    assert _value(x, y, alpha=alpha) == pytest.approx(LinearMetric(alpha=alpha).fit_score(x, y), abs=1e-6)
    if p < n * 0.75:  # held out: netrep amplifies directions unseen in training where p >= n_train
        ours = _value(x, y, alpha=alpha, cv=4, seed=3)
        theirs = np.mean([LinearMetric(alpha=alpha).fit(x[tr], y[tr]).score(x[te], y[te])
                          for tr, te in folds(n, 4, 3)])  # fmt: skip
        assert ours == pytest.approx(theirs, abs=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_shape_metric_invariances(rng, alpha):
    x = rng.normal(size=(80, 10)) * np.linspace(0.5, 2, 10)
    rotation = np.linalg.qr(rng.normal(size=(10, 10)))[0]
    assert _value(x, 7.5 * x @ rotation - 3, alpha=alpha) < 1e-6  # rotation, isotropic scaling, translation
    wider = np.hstack([x @ rotation, np.zeros((80, 5))]) @ np.linalg.qr(rng.normal(size=(15, 15)))[0]
    assert _value(x, wider, alpha=alpha) < 1e-6  # different widths (zero-padded)
    if alpha == 0.0:  # any invertible linear map
        assert _value(x, x @ rng.normal(size=(10, 10)), alpha=alpha) < 1e-6
    else:
        assert _value(x, x @ np.diag(np.linspace(1, 3, 10)), alpha=alpha) > 0.01


def test_partial_whitening_is_invariant_to_rotation_and_translation_only(rng):
    x = rng.normal(size=(80, 6)) * np.linspace(0.5, 2, 6)
    rotation = np.linalg.qr(rng.normal(size=(6, 6)))[0]
    assert _value(x, x @ rotation + 2, alpha=0.5) < 1e-6
    assert _value(x, 3 * x, alpha=0.5) > 1e-3  # as netrep: the eigenvalues are not normalised


def test_shape_metric_is_a_metric(rng):
    for _ in range(20):
        a, b, c = (rng.normal(size=(30, 5)) @ rng.normal(size=(5, w)) for w in (5, 7, 4))
        for alpha in (0.0, 0.5, 1.0):
            ab, bc, ac = (_value(u, v, alpha=alpha) for u, v in ((a, b), (b, c), (a, c)))
            assert ac <= ab + bc + 1e-9
            assert ab == pytest.approx(_value(b, a, alpha=alpha), abs=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_cca_equals_principal_angles(rng, device):
    x = rng.normal(size=(100, 12))
    y = x[:, :5] @ rng.normal(size=(5, 9)) + rng.normal(size=(100, 9))
    rho = np.cos(scipy.linalg.subspace_angles(x - x.mean(0), y - y.mean(0)))
    assert _value(x, y, metric="cca", device=device) == pytest.approx(rho.mean(), abs=1e-10)
    # svcca: principal components explaining 99% of each side's variance, then CCA
    kept = []
    for v in (x, y):
        u, s, _ = np.linalg.svd(v - v.mean(0), full_matrices=False)
        k = int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), 0.9)) + 1
        kept.append(u[:, :k] * s[:k])
    rho = np.cos(scipy.linalg.subspace_angles(*kept))
    assert _value(x, y, metric="svcca", variance=0.9, device=device) == pytest.approx(rho.mean(), abs=1e-10)
    # in sample, a layer as wide as the stimuli has CCA exactly 1 whatever it holds
    wide, noise = rng.normal(size=(40, 45)), rng.normal(size=(40, 45))
    assert _value(wide, noise, metric="cca", device=device) == pytest.approx(1.0, abs=1e-9)


def test_held_out_cca_refuses_arbitrary_directions(rng):
    """In a training fold of n stimuli, ranks r_a + r_b - (n - 1) >= 2 force that many canonical correlations
    of exactly 1: the directions among them are arbitrary, and so was the held-out value (equivalent inputs,
    rotated or not, gave values 0.03-0.08 apart), so it is refused; a forced count of 1 (unique) is not."""
    x = rng.normal(size=(40, 45))
    for metric, kwargs in [("cca", {}), ("pwcca", {}), ("svcca", {"variance": 1.0}), ("shape", {"alpha": 0.0})]:
        expected = "cv: a training fold of 30 stimuli holds representations of rank 29 and 29, so at least 29"
        with pytest.raises(ArgumentError, match=expected):
            _value(x, rng.normal(size=(40, 45)), metric=metric, cv=4, **kwargs)
    _value(x, rng.normal(size=(40, 45)), metric="shape", alpha=0.5, cv=4)  # partial whitening: identifiable
    _value(x, rng.normal(size=(40, 45)), metric="svcca", variance=0.5, cv=4)  # fewer dimensions
    # ranks 20 + 10 in 30 training stimuli: 20 + 10 - 29 = 1 forced direction, unique: allowed
    _value(x[:, :20], rng.normal(size=(40, 10)), metric="cca", cv=4)
    with pytest.raises(ArgumentError, match="at least 2 canonical correlations"):  # 20 + 11 - 29 = 2
        _value(x[:, :20], rng.normal(size=(40, 11)), metric="cca", cv=4)
    # equivalent representations (a rotation of the units) give the same held-out value once identifiable
    rotation = np.linalg.qr(rng.normal(size=(20, 20)))[0]
    y = rng.normal(size=(40, 6))
    assert _value(x[:, :20], y, metric="cca", cv=4) == pytest.approx(_value(x[:, :20] @ rotation, y, metric="cca",
                                                                             cv=4), abs=1e-10)  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
def test_pwcca_equals_the_weighting_of_morcos_et_al(rng, device):
    x = rng.normal(size=(90, 7))
    y = x[:, :4] @ rng.normal(size=(4, 6)) + 0.5 * rng.normal(size=(90, 6))
    xc, yc = x - x.mean(0), y - y.mean(0)
    qx, _ = np.linalg.qr(xc)
    qy, _ = np.linalg.qr(yc)
    u, rho, _ = np.linalg.svd(qx.T @ qy)
    h = qx @ u[:, :6]  # canonical variates of x, unit norm
    alpha = np.abs(h.T @ xc).sum(axis=1)  # sum over x's units of |<h_i, x_j>|
    assert _value(x, y, metric="pwcca", device=device) == pytest.approx((alpha * rho).sum() / alpha.sum(), abs=1e-10)


@pytest.mark.parametrize("device", DEVICES)
def test_held_out_cca_and_pwcca_equal_canonical_directions_fitted_by_qr(rng, device):
    """Each training fold's canonical directions by QR and SVD (Bjorck & Golub 1973), the held-out stimuli
    projected on them: the correlations of their variates (about the held-out means), averaged; PWCCA
    weights them by the training variates' sums of |<h_i, x_j>| (Morcos et al. 2018).
    """
    x = rng.normal(size=(60, 5))
    y = x[:, :3] @ rng.normal(size=(3, 4)) + 0.7 * rng.normal(size=(60, 4)) + 2
    cca, pwcca = [], []
    for train, test in folds(60, 3, 0):
        mx, my = x[train].mean(0), y[train].mean(0)
        qx, rx = np.linalg.qr(x[train] - mx)
        qy, ry = np.linalg.qr(y[train] - my)
        u, _, vh = np.linalg.svd(qx.T @ qy)
        zx = (x[test] - mx) @ np.linalg.solve(rx, u[:, :4])
        zy = (y[test] - my) @ np.linalg.solve(ry, vh.T[:, :4])
        rho = np.array([np.corrcoef(zx[:, i], zy[:, i])[0, 1] for i in range(4)])
        weights = np.abs((qx @ u[:, :4]).T @ (x[train] - mx)).sum(axis=1)
        cca.append(rho.mean())
        pwcca.append((weights * rho).sum() / weights.sum())
    assert _value(x, y, metric="cca", cv=3, device=device) == pytest.approx(np.mean(cca), abs=1e-10)
    assert _value(x, y, metric="pwcca", cv=3, device=device) == pytest.approx(np.mean(pwcca), abs=1e-10)


def _hsic_unbiased(k, g):
    n = k.shape[0]
    k, g, one = k - np.diag(np.diag(k)), g - np.diag(np.diag(g)), np.ones(k.shape[0])
    return (np.trace(k @ g) + (one @ k @ one) * (one @ g @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ k @ g @ one) / (n * (n - 3))  # fmt: skip


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("n", "p", "q"), [(60, 10, 7), (20, 50, 30)])
def test_cka_equals_the_kernel_formulas(rng, n, p, q, device):
    x = rng.normal(size=(n, p))
    y = np.tanh(x[:, :q] + 0.5 * rng.normal(size=(n, q))) + 2
    xc, yc = x - x.mean(0), y - y.mean(0)
    k, g = xc @ xc.T, yc @ yc.T
    cka = (k * g).sum() / np.linalg.norm(k) / np.linalg.norm(g)
    assert _value(x, y, metric="cka", device=device) == pytest.approx(cka, abs=1e-12)
    debiased = _hsic_unbiased(k, g) / np.sqrt(_hsic_unbiased(k, k) * _hsic_unbiased(g, g))
    assert _value(x, y, metric="debiased_cka", device=device) == pytest.approx(debiased, abs=1e-10)


@pytest.mark.parametrize("device", DEVICES)
def test_rbf_cka_equals_kornblith_et_al_formulas(rng, device):
    x = rng.normal(size=(40, 6))
    y = np.tanh(x @ rng.normal(size=(6, 4))) + 0.1 * rng.normal(size=(40, 4))

    def gram_rbf(v, threshold):  # Kornblith et al. (2019), their notebook's gram_rbf and centering
        sq = np.sum((v[:, None] - v[None]) ** 2, axis=-1)
        k = np.exp(-sq / (2 * threshold**2 * np.median(sq)))
        h = np.eye(len(v)) - 1 / len(v)
        return h @ k @ h

    for sigma in (0.5, 1.0, 2.0):
        k, g = gram_rbf(x, sigma), gram_rbf(y, sigma)
        expected = (k * g).sum() / np.linalg.norm(k) / np.linalg.norm(g)
        assert _value(x, y, metric="rbf_cka", sigma=sigma, device=device) == pytest.approx(expected, abs=1e-12)
    assert _value(x, x @ np.linalg.qr(rng.normal(size=(6, 6)))[0] * 3 + 1, metric="rbf_cka") == pytest.approx(1.0)
    with pytest.raises(ArgumentError, match="applies to metric='rbf_cka'"):
        _value(x, y, sigma=2.0)


def test_debiased_cka_of_independent_data_is_about_zero(rng):
    draws = [(rng.normal(size=(32, 64)), rng.normal(size=(32, 64))) for _ in range(40)]
    biased = np.mean([_value(x, y, metric="cka") for x, y in draws])
    debiased = np.mean([_value(x, y, metric="debiased_cka") for x, y in draws])
    assert 0.6 < biased < 0.75  # about 0.67 at n=32, p=64
    assert abs(debiased) < 0.02


def test_debiased_cka_has_a_number_where_unbiased_hsic_is_negative():
    values = []
    for seed in range(200):
        g = np.random.default_rng(seed)
        values.append(_value(g.normal(size=(6, 1)), g.normal(size=(6, 1)), metric="debiased_cka"))
    values = np.array(values)
    assert np.isfinite(values).all() and (values < 0).any()  # less similar than chance: negative, not NaN


def test_over_time_matches_pairs_and_finds_the_aligned_step(rng):
    h = rng.normal(size=(70, 5, 8))
    g = np.stack([h[:, 4 - t] @ rng.normal(size=(8, 8)) for t in range(5)], axis=1)  # reversed in time
    rec_a, rec_b = Recording({"h": h}), Recording({"g": g})
    result = compare_representations(rec_a, rec_b, metric="cca")
    assert result.values.shape == (5, 5) and result.layers == ("h", "g")
    np.testing.assert_allclose(np.diag(result.values[:, ::-1]), 1.0, atol=1e-9)
    assert result.values[1, 2] == pytest.approx(_value(h[:, 1], g[:, 2], metric="cca"), abs=1e-12)
    assert result.best()[:2] in {(t, 4 - t) for t in range(5)}
    assert result.summary()["best value"] == pytest.approx(1.0, abs=1e-9)
    part = compare_representations(rec_a, rec_b, time=(slice(0, 2), [4]), metric="cka")
    assert part.values.shape == (2, 1)


def test_pairwise_distances_equal_the_pairs_and_the_map_recovers_points(rng):
    base = rng.normal(size=(50, 6))
    nets = {
        f"net{i}": base @ rng.normal(size=(6, 6)) + s * rng.normal(size=(50, 6)) for i, s in enumerate([0.1, 0.5, 3])
    }
    for metric, transform in (("shape", lambda v: v), ("cka", np.arccos)):
        result = pairwise_distances(nets, metric=metric, n_jobs=2)
        assert result.distances[0, 2] == pytest.approx(transform(_value(nets["net0"], nets["net2"], metric)), abs=1e-12)
        np.testing.assert_array_equal(result.distances, result.distances.T)
    points = rng.normal(size=(6, 2))
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    embedding = classical_mds(distances)
    np.testing.assert_allclose(np.linalg.norm(embedding[:, None] - embedding[None], axis=-1), distances, atol=1e-10)


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_alignment_on_a_device_equals_numpy_over_time_held_out_and_pairwise(rng, device, monkeypatch):
    x = rng.normal(size=(90, 3, 12))
    y = x[:, ::-1, :8] @ rng.normal(size=(8, 10)) + rng.normal(size=(90, 3, 10))
    wide = np.tanh(x[:, :2] @ rng.normal(size=(12, 120))) + 0.1 * rng.normal(size=(90, 2, 120))  # p > n
    kinds, prepare = [], _core.prepare

    def counted(states, *args, **kwargs):  # the kind of array every preparation receives
        kinds.append(type(states).__module__.split(".")[0])
        return prepare(states, *args, **kwargs)

    monkeypatch.setattr(_core, "prepare", counted)
    cases = [
        (m, cv, other, alpha)
        for m in ("shape", "cca", "svcca", "pwcca")
        for cv in (None, 3)
        for other in (y, wide)
        for alpha in ((0.0, 0.5, 1.0) if m == "shape" else (1.0,))
        if not (cv and other is wide and (m != "shape" or alpha == 0.0))
    ]  # (wide held out: unidentifiable)
    cases += [(m, None, other, 1.0) for m in ("cka", "debiased_cka", "rbf_cka") for other in (y, wide)]
    for metric, cv, other, alpha in cases:
        kinds.clear()
        expected = compare_representations(x, other, metric=metric, cv=cv, alpha=alpha).values
        assert set(kinds) == {"numpy"}
        kinds.clear()
        got = compare_representations(x, other, metric=metric, cv=cv, alpha=alpha, device=device).values
        assert set(kinds) == {"torch"}, (metric, cv)  # every preparation on the device
        assert got.shape == expected.shape == (3, other.shape[1])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10, err_msg=f"{metric} cv={cv} alpha={alpha}")
    nets = {"x": x, "y": y, "z": x + 0.5 * rng.normal(size=x.shape)}
    for metric, cv in [("svcca", None), ("shape", 3), ("debiased_cka", None)]:
        expected = pairwise_distances(nets, metric=metric, cv=cv).distances
        for n_jobs in (1, 2):
            got = pairwise_distances(nets, metric=metric, cv=cv, device=device, n_jobs=n_jobs).distances
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)


def test_a_device_reads_a_dask_backed_layer_whole_and_refuses_bad_names(rng, tmp_path, monkeypatch):
    pytest.importorskip("dask")
    from rnnprobe.analysis.alignment import blockwise

    x = rng.normal(size=(30, 2, 5))
    wide = np.tanh(x @ rng.normal(size=(5, 40)))  # wider than the stimuli: the CPU's path takes its Gram matrices
    Recording({"h": x, "w": wide}).save(tmp_path / "r.zarr")
    chunked = Recording.load(tmp_path / "r.zarr", chunks=10)

    def refused(*args, **kwargs):
        raise AssertionError("a device's comparison read the layer blockwise")

    monkeypatch.setattr(blockwise, "compressed_states", refused)  # read whole instead (the device holds it)
    for metric, cv in [("shape", None), ("cka", None), ("pwcca", None), ("shape", 3)]:
        expected = compare_representations(x, wide, metric=metric, cv=cv).values
        got = compare_representations(chunked, chunked, layer=("h", "w"), metric=metric, cv=cv, device="cpu").values
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    expected = pairwise_distances({"h": x[:, -1], "w": wide[:, -1]}).distances
    got = pairwise_distances({"h": chunked, "w": chunked}, layer={"h": "h", "w": "w"}, device="cpu").distances
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    with pytest.raises(ArgumentError, match="device: got 'nonsense'"):
        compare_representations(x, x, device="nonsense")
    bad = x.copy()
    bad[3, 1, 2] = np.nan
    with pytest.raises(NonFiniteError, match="non-finite"):
        compare_representations(x, bad, device="cpu")
    Recording({"h": bad}).save(tmp_path / "bad.zarr")
    with pytest.raises(NonFiniteError, match=r"a: layer 'h' holds 1 non-finite value\(s\) .* first at \(3, 1, 2\)"):
        compare_representations(Recording.load(tmp_path / "bad.zarr", chunks=10), x, layer=("h", None), device="cpu")


def test_results_follow_the_protocol(rng):
    from rnnprobe.analysis import AnalysisResult

    result = compare_representations(rng.normal(size=(30, 3, 4)), rng.normal(size=(30, 3, 5)))
    other = pairwise_distances({"a": rng.normal(size=(30, 4)), "b": rng.normal(size=(30, 4)),
                                "c": rng.normal(size=(30, 2))})  # fmt: skip
    for r in (result, other):
        assert isinstance(r, AnalysisResult) and r.summary()
        r.plot()


@pytest.mark.parametrize("units", [3, 30])
@pytest.mark.parametrize(("metric", "cv"), [("shape", None), ("cka", None), ("cca", None), ("shape", 2)])
def test_states_the_same_for_every_stimulus_at_a_value_no_mean_equals_are_refused(rng, units, metric, cv):
    """States of 0.1 for every stimulus at a step (a learned initial state, say) keep about 1e-34 per unit once
    centred (no float64 mean of them is 0.1): refused as exactly constant states are, not compared as rounding
    (shape distance pi / 2, CKA 0). Narrow and wide layers (principal coordinates), in sample and held out."""
    x = rng.normal(size=(24, 2, units))
    x[:, 1] = 0.1
    assert ((x[:, 1] - x[:, 1].mean(axis=0)) ** 2).sum() > 0
    with pytest.raises(ArgumentError, match="time position 1 are the same for every stimulus"):
        compare_representations(x, rng.normal(size=(24, 2, 3)), metric=metric, cv=cv)


def test_bad_input_is_one_clear_error(rng):
    x = rng.normal(size=(20, 4))
    cases = [
        (lambda: compare_representations(x, x[:10]), ShapeError, "20 and 10 stimuli"),
        (lambda: compare_representations(x, x, metric="svd"), UnknownNameError, "metric"),
        (lambda: compare_representations(x, x, metric="cka", alpha=0.5), ArgumentError, "applies to metric='shape'"),
        (lambda: compare_representations(x, x, alpha=1.5), ArgumentError, "alpha: got 1.5"),
        (lambda: compare_representations(x, x, metric="cka", cv=5), ArgumentError, "fits nothing"),
        (lambda: compare_representations(x, x, cv=11), ArgumentError, "cv: got 11"),
        (lambda: compare_representations(x, np.ones((20, 3))), ArgumentError, "the same for every stimulus"),
        (lambda: compare_representations(x[:3], x[:3], metric="debiased_cka"), ShapeError, "at least 4"),
        (lambda: compare_representations(x, np.full((20, 4), np.nan)), NonFiniteError, "non-finite"),
        (lambda: compare_representations(x, "x"), RnnprobeError, "b"),
        (lambda: compare_representations(x, x, layer="h"), ArgumentError, "has no layers"),
        (lambda: compare_representations(x, x, time=(0, 1, 2)), ArgumentError, "tuple of 3"),
        (lambda: compare_representations(x, x, time=3), ArgumentError, "time: index 3 is out of range"),
        (lambda: pairwise_distances({"a": x}), RnnprobeError, "at least 2"),
        (lambda: pairwise_distances({"a": x, "b": np.where(x > 1, np.inf, x)}), NonFiniteError, "non-finite"),
        (lambda: classical_mds(np.ones((3, 4))), ShapeError, "symmetric"),
        (lambda: classical_mds(np.array([[0.0, np.nan], [np.nan, 0.0]])), NonFiniteError, "non-finite"),
        (lambda: classical_mds(np.zeros((3, 3)), n_components=0), ArgumentError, "n_components"),
        (lambda: pairwise_distances({"a": x, "b": x}, time=slice(0, 2)), ArgumentError, "one time position"),
        (lambda: compare_representations(x[:, None].repeat(2, 1), x).value, ShapeError, "holds"),
    ]  # fmt: skip
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()

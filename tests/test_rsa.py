import warnings

import numpy as np
import pytest
import rsatoolbox
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnprobe import Recording
from rnnprobe.analysis.rsa import DISTANCES as METHODS
from rnnprobe.analysis.rsa import RDMs, compute_rdms
from rnnprobe.errors import (
    ArgumentError,
    ArgumentTypeError,
    NonFiniteError,
    RnnprobeWarning,
    ShapeError,
    UnknownNameError,
)

RSATOOLBOX_METHOD = {"euclidean": "euclidean", "correlation": "correlation", "mahalanobis": "mahalanobis"}


def _rec(rng, n=12, t=5, units=7, images=None):
    meta = {"image": np.arange(n) % images if images else np.arange(n), "label": np.arange(n) % 3}
    return Recording({"h": rng.normal(size=(n, t, units)) + rng.normal(size=(1, 1, units))}, metadata=meta)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # rsatoolbox's own averaging casts NaN into an int array
@pytest.mark.parametrize("method", ["euclidean", "correlation", "mahalanobis"])
@pytest.mark.parametrize("images", [None, 4])
def test_equals_rsatoolbox_calc_rdm_per_time_step(rng, method, images):
    rec = _rec(rng, images=images)
    noise = None
    if method == "mahalanobis":
        a = rng.normal(size=(7, 7))
        noise = np.linalg.inv(a @ a.T + 7 * np.eye(7))
    descriptor = "image" if images else None
    ours = compute_rdms(rec, "h", distance=method, descriptor=descriptor, noise=noise)
    for t in range(5):
        ds = rec.to_rsatoolbox("h", time=t)
        ref = rsatoolbox.rdm.calc_rdm(ds, method=RSATOOLBOX_METHOD[method], descriptor=descriptor, noise=noise)
        np.testing.assert_allclose(ours.dissimilarities[t], ref.get_vectors()[0], rtol=1e-6, atol=1e-12)
    if images:
        np.testing.assert_array_equal(ours.conditions["image"], np.arange(4))


@pytest.mark.filterwarnings("ignore::UserWarning")  # rsatoolbox's concat note about pattern descriptors
def test_equals_rsatoolbox_calc_rdm_movie(rng):
    rec = _rec(rng, n=10, t=8, units=6)
    for method in ("euclidean", "correlation"):
        ours = compute_rdms(rec, distance=method)
        ref = rsatoolbox.rdm.calc_rdm_movie(rec.to_rsatoolbox("h"), method=method)
        np.testing.assert_allclose(ours.dissimilarities, ref.get_vectors(), rtol=1e-6, atol=1e-12)


def _brute_force(x, method):
    n = x.shape[0]
    out = []
    for i in range(n):
        for j in range(i + 1, n):
            a, b = x[i], x[j]
            if method == "euclidean_plain":
                out.append(np.linalg.norm(a - b))
            elif method == "cosine":
                out.append(1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b))
            elif method == "euclidean":
                out.append(((a - b) ** 2).sum() / a.size)
            elif method == "correlation":
                out.append(1 - np.corrcoef(a, b)[0, 1])
    return np.array(out)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 9),
    t=st.integers(1, 4),
    units=st.integers(2, 12),
    method=st.sampled_from(["euclidean", "euclidean_plain", "correlation", "cosine"]),
    seed=st.integers(0, 10_000),
)
def test_brute_force_any_shape(n, t, units, method, seed):
    x = np.random.default_rng(seed).normal(size=(n, t, units))
    ours = compute_rdms(Recording({"h": x}), distance=method)
    assert ours.dissimilarities.shape == (t, n * (n - 1) // 2)
    for step in range(t):
        # 1e-10 absolute: the Gram path is ~1e-12 off at r = +-1 exactly (2 units)
        np.testing.assert_allclose(ours.dissimilarities[step], _brute_force(x[:, step], method), rtol=1e-9,
                                   atol=1e-10)  # fmt: skip


def test_float32_and_time_selection(rng):
    rec = _rec(rng, t=6)
    full = compute_rdms(rec, distance="correlation")
    part = compute_rdms(rec, distance="correlation", time=[4, 1], stimuli=slice(0, 12), dtype="float32")
    np.testing.assert_allclose(part.dissimilarities, full.dissimilarities[[4, 1]], rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(part.rdm_descriptors["time_index"], [4, 1])


def test_rsatoolbox_round_trip_and_matrices(rng):
    rdms = compute_rdms(_rec(rng), distance="euclidean")
    converted = rdms.to_rsatoolbox()
    assert converted.dissimilarity_measure == "squared euclidean" and converted.n_rdm == 5
    np.testing.assert_array_equal(converted.get_vectors(), rdms.dissimilarities)
    back = RDMs.from_rsatoolbox(converted)
    np.testing.assert_array_equal(back.dissimilarities, rdms.dissimilarities)
    assert back.distance == "euclidean" and back.descriptors == rdms.descriptors
    for key, value in rdms.conditions.items():
        np.testing.assert_array_equal(back.conditions[key], value)
    np.testing.assert_array_equal(back.rdm_descriptors["time"], rdms.rdm_descriptors["time"])
    mats = rdms.matrices()
    np.testing.assert_array_equal(mats, np.swapaxes(mats, 1, 2))
    np.testing.assert_array_equal(converted.get_matrices(), mats)


PATHS = [  # (conditions, distance, device, checked first): 6 units
    (10, "correlation", None, False),  # raw Gram matrices, from their diagonals
    (10, "cosine", None, False),
    (10, "euclidean", None, False),
    (10, "euclidean_plain", None, False),
    (30, "correlation", None, True),  # normalised patterns: 15 or 30 conditions against 2 x 6 units
    (10, "mahalanobis", None, True),
    (10, "correlation", "cpu", True),  # a device
]


FIRST, AFTER = ["searched"], ["after", "searched"]  # the states searched before any work; after a sum of squares


def _spy_on_the_checks(monkeypatch):
    """A list that records, with the array, each search of the states for NaN and inf ("searched") and each
    refusal that compute_rdms makes after a non-finite sum of squares ("after", which then searches them)."""
    import rnnprobe._validation as validation
    import rnnprobe.analysis.rsa.compute as compute

    checked = []
    search, refuse = validation.check_finite, compute.refuse_non_finite_squares
    monkeypatch.setattr(validation, "check_finite", lambda a, **k: checked.append(("searched", a)) or search(a, **k))
    monkeypatch.setattr(
        compute, "refuse_non_finite_squares", lambda a, **k: checked.append(("after", a)) or refuse(a, **k)
    )
    return checked


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize(("n", "distance", "device", "first"), PATHS)
def test_non_finite_states_are_refused_by_every_distance_path_with_their_positions(
    rng, n, distance, device, first, bad, threads, monkeypatch
):
    """Correlation and cosine from raw Gram matrices and the Euclidean distances refuse non-finite states from
    the Gram matrices' diagonals, with no check of the layer beforehand; correlation from normalised patterns,
    mahalanobis and a device check the layer first. Every path names the value's position, alone or averaged
    over a descriptor, on 1 and 2 threads, and no numpy warning comes first."""
    import torch

    checked = _spy_on_the_checks(monkeypatch)
    noise = np.linalg.inv(np.cov(rng.normal(size=(40, 6)), rowvar=False)) if distance == "mahalanobis" else None
    states = rng.normal(size=(n, 4, 6))
    states[5, 2, 3] = bad
    rec = Recording({"h": states}, metadata={"image": np.arange(n) // 2})
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for descriptor in (None, "image"):
            checked.clear()
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                with pytest.raises(NonFiniteError, match=r"'h' holds 1 non-finite value\(s\) .* first at \(5, 2, 3\)"):
                    compute_rdms(rec, distance=distance, descriptor=descriptor, noise=noise, device=device)
            layers = [when for when, a in checked if a.shape == states.shape]  # (not the noise precision's)
            assert layers == (FIRST if first else AFTER), (descriptor, layers)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_crossnobis_refuses_non_finite_states_from_its_kernels_where_they_hold_squared_norms(
    rng, bad, threads, monkeypatch
):
    """Folds that present every condition equally often, without a noise precision: the kernels are symmetric
    products whose diagonals hold each (fold, condition) pattern's squared norm, so the states are checked only
    after them (for the error's position); an unbalanced design or a noise precision checks them first. Each
    names the value, on 1 and 2 threads, with no numpy warning first; finite states are never searched."""
    import torch

    checked = _spy_on_the_checks(monkeypatch)
    image, run = np.tile(np.arange(8), 3), np.repeat(np.arange(3), 8)
    designs = {"balanced": (image, run), "unbalanced": (np.append(image, 0), np.append(run, 1)),  # image 0 twice
               "two sizes": (np.tile(np.arange(8), 4), np.repeat([0, 1, 1, 2], 8)),
               "two runs": (np.tile(np.arange(8), 2), np.repeat(np.arange(2), 8))}  # fmt: skip
    noise = np.diag(rng.uniform(0.5, 2.0, 6))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for design, precision, first in (
            ("balanced", None, False),
            ("two sizes", None, False),  # (run 1 presents every image twice: folds of two sizes, balanced)
            ("two runs", None, False),  # (split halves: from the squares of the sums and of the differences)
            ("unbalanced", None, True),
            ("balanced", noise, True),
        ):
            images, runs = designs[design]
            states = rng.normal(size=(len(images), 5, 6))
            settings = {"distance": "crossnobis", "descriptor": "image", "cv_descriptor": "run", "noise": precision}
            checked.clear()
            compute_rdms(Recording({"h": states}, metadata={"image": images, "run": runs}), **settings)
            assert [w for w, a in checked if a.shape == states.shape] == (FIRST if first else [])
            states[13, 2, 4] = bad
            checked.clear()
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                with pytest.raises(NonFiniteError, match=r"'h' holds 1 non-finite value\(s\) .* first at \(13, 2, 4\)"):
                    compute_rdms(Recording({"h": states}, metadata={"image": images, "run": runs}), **settings)
            assert [w for w, a in checked if a.shape == states.shape] == (FIRST if first else AFTER)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("distance", ["correlation", "cosine", "euclidean", "euclidean_plain", "mahalanobis"])
def test_states_whose_squares_overflow_are_refused_not_turned_into_nan_rdms(rng, distance):
    """Finite states whose squared norms overflow (float64 from about 1e154; float32, the dtype cast included, from
    about 1e19) have no finite Gram matrix: refused with the largest value and what to do (and no numpy warning
    first), where before their RDMs came out NaN or wrong; just below, the RDMs scale as they should."""
    states = rng.normal(size=(8, 3, 5))
    noise = np.diag(rng.uniform(0.5, 2.0, 5)) if distance == "mahalanobis" else None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(
            NonFiniteError,
            match=r"finite states \(up to \d\.\d+e\+160\) whose squares overflow, so no Gram matrix in float64",
        ) as caught:
            compute_rdms(Recording({"h": states * 1e160}), distance=distance, noise=noise)
        effect = {
            "correlation": "correlations are unchanged",
            "cosine": "cosines are unchanged",
            "euclidean_plain": "the distances scale by it)",
        }.get(distance, "the dissimilarities scale by its square")
        assert f"Divide the states by a constant ({effect}" in str(caught.value)  # fmt: skip
        assert caught.value.__cause__ is None and caught.value.__context__ is None  # (one error, no chained one)
        with pytest.raises(NonFiniteError, match=r"Gram matrix in float32.*dtype='float64'"):
            compute_rdms(Recording({"h": states * 1e20}), distance=distance, noise=noise, dtype="float32")
    scaled = compute_rdms(Recording({"h": states * 1e150}), distance=distance, noise=noise).dissimilarities
    plain = compute_rdms(Recording({"h": states}), distance=distance, noise=noise).dissimilarities
    power = {"euclidean": 300, "mahalanobis": 300, "euclidean_plain": 150}.get(distance, 0)
    np.testing.assert_allclose(scaled, plain * 10.0**power, rtol=1e-9)


def test_constant_patterns_give_documented_nan_and_a_warning():
    x = np.random.default_rng(0).normal(size=(4, 2, 5))
    x[1, 1] = 3.0  # constant pattern at step 1
    with pytest.warns(RnnprobeWarning, match="NaN at 1 time step"):
        rdms = compute_rdms(Recording({"h": x}), distance="correlation")
    assert np.isfinite(rdms.dissimilarities[0]).all() and np.isnan(rdms.dissimilarities[1]).sum() == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compute_rdms(Recording({"h": x}), distance="euclidean")


@pytest.mark.parametrize("device", [None, "cpu"])
@pytest.mark.parametrize("units", [12, 60])
def test_a_pattern_constant_at_a_value_no_mean_equals_is_constant_too(device, units):
    """A pattern of 0.1s keeps a spread of rounding once centred (no float64 mean of it is 0.1): NaN and the
    warning as an exactly constant pattern, not a correlation of rounding with every other pattern (rsatoolbox:
    a dissimilarity of 1). Numpy and torch, raw Gram matrices (units >= conditions / 2) or centred patterns."""
    x = np.random.default_rng(0).normal(size=(8, 3, units))
    x[2], x[5, 1] = 0.1, 1 / 3
    centred = x[2] - x[2].mean(axis=-1, keepdims=True)
    assert (centred**2).sum() > 0
    with pytest.warns(RnnprobeWarning, match="NaN at 3 time step"):
        rdms = compute_rdms(Recording({"h": x}), distance="correlation", device=device)
    full = rdms.matrices()
    for t, constant in enumerate([[2], [2, 5], [2]]):
        varying = np.setdiff1d(np.arange(8), constant)
        assert np.isnan(full[t][constant][:, varying]).all()
        assert np.isfinite(full[t][np.ix_(varying, varying)]).all()


@pytest.mark.parametrize("device", [None, "cpu"])
@pytest.mark.parametrize("units", [6, 100])
def test_correlation_and_cosine_dissimilarities_stay_within_0_and_2(rng, device, units):
    """A pattern and its copy (r = 1) or its negation (r = -1, cosine): 1 - r past [0, 2] by rounding (-2.2e-16
    here, as rsatoolbox gives) is clipped; a dissimilarity is never negative. Both the raw Gram path (units >=
    conditions / 2) and centred patterns, numpy and torch."""
    x = rng.normal(size=(40, 2, units)) + 3
    x[1], x[5], x[7] = x[0], x[3], -x[6]
    for distance in ("correlation", "cosine"):
        rdms = compute_rdms(Recording({"h": x}), distance=distance, device=device)
        assert rdms.dissimilarities.min() >= 0 and rdms.dissimilarities.max() <= 2
        full = rdms.matrices()
        np.testing.assert_allclose(full[:, [0, 3], [1, 5]], 0, atol=1e-14)
        np.testing.assert_allclose(full[:, 6, 7], 2, atol=1e-14)
    expected = rsatoolbox.rdm.calc_rdm(rsatoolbox.data.Dataset(x[:, 0]), method="correlation").get_vectors()[0]
    rdms = compute_rdms(Recording({"h": x}), distance="correlation", device=device)
    np.testing.assert_allclose(rdms.dissimilarities[0], expected, atol=1e-12)


def _products_by_rows(monkeypatch, n, rows):
    """Every numpy RDM from products by blocks of ``rows`` rows of ``n`` (more of the shorter rows), as large RDMs
    of few units are; a Gram matrix made is a failure."""
    import rnnprobe.analysis.rsa.compute as compute
    import rnnprobe.analysis.rsa.triangles as triangles

    def no_gram(*args, **kwargs):
        raise AssertionError("a Gram matrix was made")

    monkeypatch.setattr(triangles, "ROWS_BYTES", 8)
    monkeypatch.setattr(compute, "ROW_PRODUCTS", 0)
    monkeypatch.setattr(compute, "PRODUCT_BYTES", rows * n * 8)
    monkeypatch.setattr(compute._Backend, "gram", no_gram)


@pytest.mark.parametrize("path", [None, "cpu", "products by rows"])
@pytest.mark.parametrize("distance", ["euclidean", "euclidean_plain", "mahalanobis"])
def test_distances_of_patterns_far_from_the_origin_keep_their_digits(rng, path, distance, monkeypatch):
    """Patterns 1e4 from the origin that differ by 1e-3: distances from the Gram matrix (G_ii + G_jj - 2 G_ij)
    were 12% off (rsatoolbox's 9%); centred across conditions first (distances do not change), they equal the
    distances of the differences to 1e-10, on the device's path and from products by blocks of rows too.
    Patterns near the origin, one step of many, as before."""
    device = "cpu" if path == "cpu" else None
    if path == "products by rows":
        _products_by_rows(monkeypatch, n=20, rows=3)
    x = 1e-3 * rng.normal(size=(20, 3, 30))
    x[:, 1] += 1e4
    precision = np.diag(rng.uniform(0.5, 2, 30))
    kwargs = {"noise": precision} if distance == "mahalanobis" else {}
    got = compute_rdms(Recording({"h": x}), distance=distance, device=device, **kwargs).dissimilarities
    i, j = np.triu_indices(20, 1)
    diff = x[i] - x[j]  # (pairs, time, units)
    squares = np.einsum("ptu,uv,ptv->tp", diff, precision if distance == "mahalanobis" else np.eye(30), diff)
    expected = np.sqrt(squares) if distance == "euclidean_plain" else squares / 30
    np.testing.assert_allclose(got, expected, rtol=1e-10)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy's 0 / 0 of the zero and constant patterns
@pytest.mark.filterwarnings("ignore::rnnprobe.errors.RnnprobeWarning")  # (rnnprobe's note about their NaN)
@pytest.mark.parametrize("distance", ["correlation", "cosine", "euclidean", "euclidean_plain", "mahalanobis"])
def test_rdms_from_products_by_blocks_of_rows_equal_scipy(distance, monkeypatch, torch_threads):
    """150 conditions of 20 units from products by blocks of rows, never a Gram matrix (7 rows of 150 a block:
    blocks end inside each thread's share), a zero and a constant pattern among them: equal to scipy's pdist on
    1 and 3 threads, NaN where it is; non-finite states refused."""
    from scipy.spatial.distance import pdist

    from rnnprobe.errors import NonFiniteError

    _products_by_rows(monkeypatch, n=150, rows=7)
    rng = np.random.default_rng(8)
    x = rng.normal(size=(150, 2, 20)) + 0.5
    x[7], x[90] = 0.0, 2.0
    precision = rng.normal(size=(20, 20)) / 5
    precision = precision @ precision.T + np.eye(20)  # (not diagonal: the weighted products in full)
    kwargs = {"noise": precision} if distance == "mahalanobis" else {}
    metric = {"euclidean": "sqeuclidean", "euclidean_plain": "euclidean"}.get(distance, distance)
    scale = 20 if distance in ("euclidean", "mahalanobis") else 1
    power = 2 if distance == "mahalanobis" else 1
    expected = [pdist(x[:, t], metric, **({"VI": precision} if kwargs else {})) ** power / scale for t in (0, 1)]
    made = _count_work_arrays(monkeypatch)
    for threads in (1, 3):
        torch_threads(threads)
        got = compute_rdms(Recording({"x": x}), "x", distance=distance, **kwargs).dissimilarities
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    products = [new for name, new in made if name == "products"]  # a block's products: a worker's kept array
    assert len(products) > 40 and sum(products) <= 1 + 2 * 3  # (3 threads: the 2 steps at once, 3 workers each)
    single = compute_rdms(Recording({"x": x}), "x", distance=distance, dtype="float32", **kwargs).dissimilarities
    np.testing.assert_allclose(single, expected, rtol=2e-5, atol=2e-5)  # (float32 products: a block's kept array)
    assert ("products", True) in made[-60:]
    x[3, 1, 4] = np.nan
    with pytest.raises(NonFiniteError):
        compute_rdms(Recording({"x": x}), "x", distance=distance, **kwargs)


def test_large_rdms_of_few_units_never_hold_a_gram_matrix(rng):
    """3000 conditions x 64 units (the real thresholds): the Euclidean RDM from products by blocks of rows, its
    peak allocation below the 72 MB Gram matrix (the result: 36 MB); equal to scipy's pdist."""
    import tracemalloc

    from scipy.spatial.distance import pdist

    import rnnprobe.analysis.rsa.compute as compute

    x = rng.normal(size=(3000, 1, 64))
    assert compute.row_products(compute._Backend(None, "float64"), 3000, 64)
    tracemalloc.start()
    try:
        got = compute_rdms(Recording({"x": x}), distance="euclidean").dissimilarities
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3000**2 * 8 * 0.75, peak
    np.testing.assert_allclose(got[0], pdist(x[:, 0], "sqeuclidean") / 64, rtol=1e-10)


def test_products_by_rows_from_1024_conditions_of_at_most_a_sixth_as_many_units():
    import rnnprobe.analysis.rsa.compute as compute

    numpy, single, device = (compute._Backend(None, dtype) for dtype in ("float64", "float32", "float64"))
    device.numpy = False
    assert compute.row_products(numpy, 1536, 256) and not compute.row_products(numpy, 1535, 256)
    assert compute.row_products(numpy, 5000, 833) and not compute.row_products(numpy, 5000, 834)
    assert compute.row_products(numpy, 1024, 10) and not compute.row_products(numpy, 1023, 10)  # (a Gram of 8 MiB)
    assert compute.row_products(single, 1449, 10) and not compute.row_products(single, 1448, 10)
    assert not compute.row_products(device, 5000, 10)


def test_plot(rng):
    import matplotlib

    matplotlib.use("Agg")
    fig = compute_rdms(_rec(rng, t=9), distance="correlation").plot(max_panels=4)
    assert sum(1 for ax in fig.axes if ax.images) == 4


def test_bad_input(rng):
    rec = _rec(rng)
    with pytest.raises(UnknownNameError, match=f"distance: got 'pearson', which is not one of {METHODS[0]!r}"):
        compute_rdms(rec, distance="pearson")
    with pytest.raises(ArgumentError, match="needs the noise precision matrix"):
        compute_rdms(rec, distance="mahalanobis")
    with pytest.raises(ShapeError, match=r"has 7 units. Pass a \(7, 7\) precision matrix"):
        compute_rdms(rec, distance="mahalanobis", noise=np.eye(3))
    with pytest.raises(ArgumentError, match="only used by distance='mahalanobis'"):
        compute_rdms(rec, distance="euclidean", noise=np.eye(7))
    asymmetric = np.eye(7) + np.triu(np.full((7, 7), 0.1), 1)  # (d_ij from it is not (x_i - x_j)' P (x_i - x_j))
    for distance, extra in (("mahalanobis", {}), ("crossnobis", {"descriptor": "image"})):
        with pytest.raises(ArgumentError, match=r"noise: the precision matrix is not symmetric \(largest .* is 0.1\)"):
            compute_rdms(_rec(rng, images=4), distance=distance, noise=asymmetric, **extra)
    nearly = np.eye(7) * 2 + np.triu(np.full((7, 7), 1.5e-8), 1)  # |P - P'| 1.5e-8: 0.75e-8 of P's largest, taken
    taken = compute_rdms(rec, distance="mahalanobis", noise=nearly).dissimilarities
    np.testing.assert_array_equal(taken, compute_rdms(rec, distance="mahalanobis", noise=(nearly + nearly.T) / 2)
                                  .dissimilarities)  # fmt: skip
    with pytest.raises(ArgumentError, match=r"not symmetric \(largest \|P - P'\| is 2.5e-08\)"):  # 1.25e-8 of it
        compute_rdms(rec, distance="mahalanobis", noise=np.eye(7) * 2 + np.triu(np.full((7, 7), 2.5e-8), 1))
    not_finite = np.eye(7)
    not_finite[2, 2] = np.nan
    with pytest.raises(
        NonFiniteError, match=r"noise: holds 1 non-finite value\(s\) \(NaN or inf\) of 49, first at \(2, 2\)"
    ):
        compute_rdms(rec, distance="mahalanobis", noise=not_finite)
    with pytest.raises(ArgumentTypeError, match="noise: got"):
        compute_rdms(rec, distance="mahalanobis", noise=np.full((7, 7), "a"))
    with pytest.raises(ArgumentError, match="got 1 condition"):
        compute_rdms(rec, stimuli=[0])
    with pytest.raises(UnknownNameError, match="descriptor: 'img' is not a metadata column"):
        compute_rdms(rec, descriptor="img")
    with pytest.raises(ArgumentTypeError, match="Pass an rnnprobe Recording"):
        compute_rdms(np.zeros((3, 2, 2)))
    with pytest.raises(ShapeError, match="not a stack of upper triangles"):
        RDMs(np.zeros((2, 4)), "euclidean")
    with pytest.raises(ArgumentTypeError, match="Pass an rsatoolbox"):
        RDMs.from_rsatoolbox(np.zeros(3))


from rnnprobe.analysis.rsa import COMPARISONS as COMPARE_METHODS  # noqa: E402
from rnnprobe.analysis.rsa import compare_rdms  # noqa: E402


def _rsa_rdms(vectors):
    return rsatoolbox.rdm.RDMs(np.atleast_2d(vectors))


@pytest.mark.parametrize("method", COMPARE_METHODS)
@pytest.mark.parametrize("ties", [False, True])
def test_compare_equals_rsatoolbox(rng, method, ties):
    n_cond = 9
    n_pairs = n_cond * (n_cond - 1) // 2
    a = rng.random((3, n_pairs))
    b = rng.random((4, n_pairs)) + 0.3 * a[[0, 1, 2, 0]]
    if ties:
        a, b = np.round(a * 4), np.round(b * 4)  # many tied dissimilarities (e.g. categorical models)
    ours = compare_rdms(a, b, comparison=method)
    ref = rsatoolbox.rdm.compare(_rsa_rdms(a), _rsa_rdms(b), method=method)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("method", ["corr_cov", "cosine_cov"])
def test_compare_cov_weighted_with_sigma_k(rng, method):
    import importlib

    rsa_compare = importlib.import_module("rsatoolbox.rdm.compare")  # the module (the name is shadowed)
    n_cond = 7
    a, b = rng.random((2, 21)), rng.random((3, 21))
    diag = rng.random(n_cond) + 0.5
    ref = rsatoolbox.rdm.compare(_rsa_rdms(a), _rsa_rdms(b), method=method, sigma_k=diag)
    np.testing.assert_allclose(compare_rdms(a, b, comparison=method, sigma_k=diag), ref, rtol=1e-6, atol=1e-9)
    # full pattern covariance: rsatoolbox solves V x = v by conjugate gradients at scipy's default rtol
    # (1e-5), so it is only that accurate; the exact value uses its own V with a direct solve
    m = rng.normal(size=(n_cond, n_cond))
    full = m @ m.T + n_cond * np.eye(n_cond)
    ours = compare_rdms(a, b, comparison=method, sigma_k=full)
    va, vb = (a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)) if method == "corr_cov" else (a, b)
    v = rsa_compare._get_v(n_cond, full).toarray()
    va_m, vb_m = np.linalg.solve(v, va.T).T, np.linalg.solve(v, vb.T).T
    exact = (va @ vb_m.T) / np.outer(np.sqrt((va * va_m).sum(1)), np.sqrt((vb * vb_m).sum(1)))
    np.testing.assert_allclose(ours, exact, rtol=1e-9, atol=1e-12)
    approximate = rsatoolbox.rdm.compare(_rsa_rdms(a), _rsa_rdms(b), method=method, sigma_k=full)
    np.testing.assert_allclose(ours, approximate, rtol=1e-4, atol=1e-6)


def _brute_tau_a(x, y):
    """Kendall's tau-a by every pair of entries: (concordant - discordant) / (n (n - 1) / 2)."""
    i, j = np.triu_indices(len(x), 1)
    return float((np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])).sum() / len(i))


def test_tau_a_of_two_valued_rdms_is_exact_and_equals_rsatoolbox(rng, monkeypatch):
    """Tau-a where a pair's RDM takes two values (categorical models, a constant one among them) comes from the
    other's midranks by one product, where it takes a few (four here) level by level: equal to the count over
    every pair of entries (to the bit), and to rsatoolbox, for such rows in either argument, with ties on both
    sides; only pairs of continuous RDMs are counted pair by pair."""
    import rnnprobe.analysis.rsa.kendall as kendall

    n = 66  # (12 conditions)
    categorical = rng.integers(0, 2, (3, n)) * 0.7 + 0.2
    categorical[0] = 0.5  # a constant model: tau-a 0
    tied, continuous = rng.integers(0, 4, (2, n)).astype(float), rng.random((2, n))
    others = np.vstack([tied, continuous, categorical[1:]])
    pair_counts = []
    many_valued_tau = kendall._many_valued_tau
    monkeypatch.setattr(kendall, "_many_valued_tau", lambda x, y: pair_counts.append(len(x.left) * len(y.left))
                        or many_valued_tau(x, y))  # fmt: skip
    for a, b, pairs in ((categorical, others, 0), (others, categorical, 0), (others, others, 4)):
        pair_counts.clear()
        ours = compare_rdms(a, b, comparison="tau-a")
        assert sum(pair_counts) == pairs
        brute = [[_brute_tau_a(x, y) for y in b] for x in a]
        if pairs == 0:  # whole numbers divided once, as the count over every pair: the same bits
            np.testing.assert_array_equal(ours, brute)
        else:
            np.testing.assert_array_equal(ours[:2], np.asarray(brute)[:2])  # (the rows of four values)
        np.testing.assert_allclose(ours, brute, rtol=0, atol=1e-15)
        np.testing.assert_allclose(ours, rsatoolbox.rdm.compare(_rsa_rdms(a), _rsa_rdms(b), method="tau-a"),
                                   rtol=1e-12, atol=1e-15)  # fmt: skip
    assert (compare_rdms(categorical[0], others, comparison="tau-a") == 0).all()


def test_tau_a_level_by_level_in_blocks_of_rows_and_its_bound(rng, monkeypatch):
    """The level-by-level count over the other rows in blocks (three rows a block here), against the count over
    every pair of entries, to the bit; rows of more values than ``FEW_LEVELS`` (set to 4: five and six, one of them
    with its first ``HEAD`` entries (set to 10) of three values only) against each other are counted pair by pair."""
    import rnnprobe.analysis.rsa.kendall as kendall

    n = 45
    monkeypatch.setattr(kendall, "WORK", 3 * n)
    monkeypatch.setattr(kendall, "FEW_LEVELS", 4)
    monkeypatch.setattr(kendall, "HEAD", 10)
    a = np.stack([rng.integers(0, levels, n) for levels in (3, 4, 5, 6)]).astype(float)
    a[2, :10] = np.arange(10) % 3  # (a few values first, five in all)
    b = np.vstack([rng.integers(0, 4, (4, n)), rng.random((3, n))])
    pair_counts = []
    many_valued_tau = kendall._many_valued_tau
    monkeypatch.setattr(kendall, "_many_valued_tau", lambda x, y: pair_counts.append(len(x.left) * len(y.left))
                        or many_valued_tau(x, y))  # fmt: skip
    ours = kendall.tau_a(a, b)
    assert (kendall._dense_levels(*kendall._sorted_runs(a))[1] == [3, 4, 5, 6]).all() and pair_counts == [6]
    brute = np.array([[_brute_tau_a(x, y) for y in b] for x in a])
    np.testing.assert_array_equal(ours[:, :4], brute[:, :4])
    np.testing.assert_array_equal(ours[:2], brute[:2])
    np.testing.assert_allclose(ours, brute, rtol=0, atol=1e-15)


def test_tau_a_sorts_each_row_once(rng, monkeypatch):
    """Rows are argsorted each once: data first or model first, a model of three values sorts it and the data
    once, and continuous RDMs against each other (a noise ceiling's) each once, not once per pair as scipy's
    ``kendalltau`` would."""
    import rnnprobe.analysis.rsa.kendall as kendall

    sorted_rows = []
    runs = kendall._sorted_runs
    monkeypatch.setattr(kendall, "_sorted_runs", lambda rows: sorted_rows.extend(map(tuple, rows)) or runs(rows))
    data, nested = rng.random((5, 300)), rng.integers(0, 3, (1, 300)).astype(float)
    for a, b in ((data, nested), (nested, data)):
        sorted_rows.clear()
        ours = kendall.tau_a(a, b)
        assert sorted(sorted_rows) == sorted(map(tuple, np.vstack([nested, data])))  # each row once
        np.testing.assert_allclose(ours, [[_brute_tau_a(x, y) for y in b] for x in a], rtol=0, atol=1e-15)
    sorted_rows.clear()
    ours = kendall.tau_a(data[:2], data[2:])
    assert sorted(sorted_rows) == sorted(map(tuple, data))
    np.testing.assert_array_equal(ours, [[_brute_tau_a(x, y) for y in data[2:]] for x in data[:2]])


def _tied_rows(rng, n):
    """Rows of many values with ties: continuous, tied in a few places, on a grid of 40 values, constant."""
    continuous, patched, grid = rng.random(n), rng.random(n), rng.integers(0, 40, n).astype(float)
    patched[: n // 3] = patched[n // 3]
    return np.stack([continuous, patched, grid, np.full(n, 0.3)])


@pytest.mark.parametrize("counter", ["scipy's", "fallback"])
def test_tau_a_of_many_valued_rows_counts_every_pair(rng, monkeypatch, counter):
    """Pairs of rows of many values, continuous or tied in x, in y or in both (a grid of 40 values against
    itself: many pairs tied in both), beside a constant row (counted from midranks): tau-a from the discordant count
    and the ties equals the count over every pair of entries to the bit, and scipy's ``kendalltau`` rescaled (where
    the count is missing) to 1e-15."""
    import rnnprobe.analysis.rsa.kendall as kendall

    if counter == "fallback":
        monkeypatch.setattr(kendall, "discordant_counter", lambda: None)
    else:
        assert kendall.discordant_counter() is not None  # (present in every scipy rnnprobe supports)
    a, b = _tied_rows(rng, 300), _tied_rows(rng, 300)
    b[2] = a[2][::-1]  # (pairs tied in both, ordered the other way)
    brute = np.array([[_brute_tau_a(x, y) for y in np.vstack([a, b])] for x in a])
    ours = kendall.tau_a(a, np.vstack([a, b]))
    if counter == "fallback":
        np.testing.assert_allclose(ours, brute, rtol=0, atol=1e-15)
    else:
        np.testing.assert_array_equal(ours, brute)


def test_discordant_counter_is_checked_before_use(monkeypatch):
    """Scipy's private count is used only if it counts a case with ties as it should: a count that also counted
    the pair tied in x, or one that takes other arguments, leaves it to ``kendalltau``."""
    import scipy.stats._stats as scipy_stats

    import rnnprobe.analysis.rsa.kendall as kendall

    right = scipy_stats._kendall_dis
    try:
        for wrong in (lambda x, y: right(x, y) + 1, lambda x: 0):
            monkeypatch.setattr(scipy_stats, "_kendall_dis", wrong)
            kendall.discordant_counter.cache_clear()
            assert kendall.discordant_counter() is None
        monkeypatch.setattr(scipy_stats, "_kendall_dis", right)
        kendall.discordant_counter.cache_clear()
        assert kendall.discordant_counter() is right
    finally:
        kendall.discordant_counter.cache_clear()


def test_permuted_rows_are_never_sorted_and_equal_the_gathered_rows(rng, monkeypatch):
    """Rows of a permutation of the entries (a permutation test's models) take their order and codes from the rows
    they permute: tau-a equals that of the gathered rows (every kind of row, each side), to the bit, with no sort
    after the first rows' own; all at once (``permuted_tau``) where every row holds many values, None otherwise."""
    import rnnprobe.analysis.rsa.kendall as kendall

    sorts = []
    runs = kendall._sorted_runs
    monkeypatch.setattr(kendall, "_sorted_runs", lambda rows: sorts.append(len(rows)) or runs(rows))
    n = 120
    models = np.vstack([_tied_rows(rng, n), rng.integers(0, 2, n), rng.integers(0, 5, n)]).astype(float)
    data = np.vstack([rng.random((2, n)), rng.integers(0, 3, n)])
    rows, theirs = kendall.Rows(models), kendall.Rows(data)
    index = np.stack([rng.permutation(n) for _ in range(4)])
    for permutation in index:
        before = len(sorts)
        ours = kendall.tau_a(rows.permuted(permutation), theirs)
        assert len(sorts) == before or before == 0
        np.testing.assert_array_equal(ours, kendall.tau_a(models[:, permutation], data))
    many, continuous = kendall.Rows(models[:3]), kendall.Rows(data[:2])
    together = kendall.permuted_tau(many, continuous, index)
    assert together.shape == (4, 3, 2)
    for p, permutation in enumerate(index):
        brute = [[_brute_tau_a(x, y) for y in data[:2]] for x in models[:3, permutation]]
        np.testing.assert_array_equal(together[p], brute)
    assert kendall.permuted_tau(rows, continuous, index) is None
    assert kendall.permuted_tau(many, theirs, index) is None


def test_tau_a_pairs_of_continuous_rdms_on_two_threads_equal_one_thread(rng):
    """Pairs of continuous RDMs (counted pair by pair) in shares on two threads: the same bits as on one, each pair
    equal to the count over every pair of entries."""
    import torch

    a, b = rng.random((3, 40)), rng.random((5, 40))
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (2, 1):
            torch.set_num_threads(threads)
            results.append(compare_rdms(a, b, comparison="tau-a"))
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], [[_brute_tau_a(x, y) for y in b] for x in a], rtol=0, atol=1e-15)


@pytest.mark.parametrize("method", ["cosine", "corr", "spearman", "rho-a", "tau-a"])
def test_compare_with_nan_positions(rng, method):
    a, b = rng.random((2, 28)), rng.random((2, 28))
    a[:, [3, 10]] = np.nan
    b[:, [3, 10]] = np.nan
    ref = rsatoolbox.rdm.compare(_rsa_rdms(a), _rsa_rdms(b), method=method)
    np.testing.assert_allclose(compare_rdms(a, b, comparison=method), ref, rtol=1e-6, atol=1e-9)


def test_a_constant_rdm_has_no_correlation_and_a_large_mean_loses_no_digits(rng):
    """A constant RDM (1.0; or 0.1, whose centred values keep rounding): NaN under corr and spearman in every
    comparison path (it was -inf, or a correlation of rounding), 0 under rho-a; an RDM of 1 + 1e-5 noise
    (correlation distances near 1) as numpy's corrcoef, where the raw products lose digits."""
    from rnnprobe.analysis.rsa.compare import similarity_transform

    b = rng.random((3, 45))
    for value in (1.0, 0.1):
        a = np.full((1, 45), value)
        for method, expected in (("corr", np.nan), ("spearman", np.nan), ("rho-a", 0.0)):
            np.testing.assert_array_equal(compare_rdms(a, b, comparison=method), np.full((1, 3), expected))
            transformed = similarity_transform(a, method) @ similarity_transform(b, method).T
            np.testing.assert_allclose(transformed, np.full((1, 3), expected), atol=1e-15)
        m = rng.normal(size=(10, 10))
        for sigma_k in (None, np.ones(10), m @ m.T + 10 * np.eye(10)):  # (whitened; full covariance: no error)
            np.testing.assert_array_equal(compare_rdms(a, b, comparison="corr_cov", sigma_k=sigma_k), np.nan)
    assert ((np.full(45, 0.1) - np.full(45, 0.1).mean()) ** 2).sum() > 0
    close = 1 + 1e-5 * rng.random((2, 45))
    np.testing.assert_allclose(compare_rdms(close[0], close[1:], comparison="corr")[0, 0],
                               np.corrcoef(close)[0, 1], rtol=1e-10)  # fmt: skip


def test_compare_accepts_rdms_objects_and_is_a_matrix(rng):
    rec = _rec(rng, t=4)
    model = compute_rdms(rec, distance="correlation")
    sims = compare_rdms(model, model.to_rsatoolbox(), comparison="corr")
    assert sims.shape == (4, 4)
    np.testing.assert_allclose(np.diag(sims), 1.0)


def test_compare_bad_input(rng):
    with pytest.raises(UnknownNameError, match="comparison: got 'pearson'"):
        compare_rdms(rng.random(10), rng.random(10), comparison="pearson")
    with pytest.raises(ShapeError, match="not over the same conditions"):
        compare_rdms(rng.random(10), rng.random(15))
    a, b = rng.random((1, 10)), rng.random((1, 10))
    a[0, 2] = np.nan
    with pytest.raises(ArgumentError, match="NaN dissimilarities at different positions"):
        compare_rdms(a, b)
    with pytest.raises(ArgumentError, match="at least 3"):
        compare_rdms(rng.random(1), rng.random(1))
    with pytest.raises(ShapeError, match=r"sigma_k: got .* Pass \(5,\) or \(5, 5\)"):
        compare_rdms(rng.random(10), rng.random(10), comparison="corr_cov", sigma_k=np.ones(3))
    with pytest.raises(ArgumentTypeError, match="upper-triangle vectors"):
        compare_rdms({"a": 1}, rng.random(10))


def test_mds_recovers_planted_geometry_and_plots(rng):
    import matplotlib
    from scipy.spatial.distance import pdist

    matplotlib.use("Agg")
    points = rng.normal(size=(10, 2)) * [3, 1]
    states = np.concatenate([points, np.zeros((10, 3))], axis=1)[:, None, :]  # 2-D geometry in 5 units
    rdms = compute_rdms(Recording({"h": states}, metadata={"group": np.arange(10) % 2}), distance="euclidean_plain")
    coords = rdms.mds()
    assert np.corrcoef(pdist(coords), pdist(points))[0, 1] > 0.999
    squared = compute_rdms(Recording({"h": states}), distance="euclidean")  # embedded as distances, not squared
    assert np.corrcoef(pdist(squared.mds()), pdist(points))[0, 1] > 0.999
    assert rdms.plot_mds(color_by="group").axes[0].get_legend() is not None
    with pytest.raises(UnknownNameError, match="color_by: 'nope'"):
        rdms.plot_mds(color_by="nope")


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.lists(st.integers(0, 6), min_size=3, max_size=30), min_size=1, max_size=4).filter(
        lambda rows: len({len(r) for r in rows}) == 1
    )
)
def test_rank_rows_equals_scipy_with_ties(values):
    from scipy.stats import rankdata

    from rnnprobe.analysis._ranks import rank_rows

    x = np.array(values, dtype=float)
    np.testing.assert_array_equal(rank_rows(x), rankdata(x, axis=1))


def test_no_warnings_from_read_only_recordings(rng):
    rec = _rec(rng)  # Recording arrays are read-only views
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("euclidean", "correlation"):
            compute_rdms(rec, distance=method)


def _runs_recording(rng, n_cond=6, n_runs=4, t=3, units=8):
    image = np.tile(np.arange(n_cond), n_runs)
    run = np.repeat(np.arange(n_runs), n_cond)
    signal = rng.normal(size=(n_cond, t, units))
    states = signal[image] + 0.5 * rng.normal(size=(n_cond * n_runs, t, units))
    order = rng.permutation(len(image))  # presentations in any order
    return Recording({"h": states[order]}, metadata={"image": image[order], "run": run[order]})


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("with_noise", [False, True])
@pytest.mark.parametrize("cv", ["run", None])
@pytest.mark.parametrize("n_runs", [2, 4])
def test_crossnobis_equals_rsatoolbox(rng, with_noise, cv, n_runs):
    rec = _runs_recording(rng, n_runs=n_runs)
    noise = None
    if with_noise:
        a = rng.normal(size=(8, 8))
        noise = np.linalg.inv(a @ a.T + 8 * np.eye(8))
    ours = compute_rdms(rec, distance="crossnobis", descriptor="image", cv_descriptor=cv, noise=noise)
    for t in range(3):
        ds = rec.to_rsatoolbox("h", time=t)
        ref = rsatoolbox.rdm.calc_rdm(ds, method="crossnobis", descriptor="image", cv_descriptor=cv, noise=noise)
        np.testing.assert_allclose(ours.dissimilarities[t], ref.get_vectors()[0], rtol=1e-6, atol=1e-10)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (rsatoolbox's crossnobis casts a NaN fill value)
@pytest.mark.parametrize("device", [None, "cpu"])
@pytest.mark.parametrize("cv", ["run", None])
@pytest.mark.parametrize("n_runs", [2, 4])
def test_crossnobis_of_patterns_far_from_the_origin_keeps_its_digits(rng, device, cv, n_runs):
    """Patterns 1e4 from the origin that differ by about 1e-3: the kernels' differences lost digits (5% off, as
    rsatoolbox 3.5%); the observations less their grand mean give the distances of the states centred first (the
    same distances: a common translation moves none) to 1e-9, balanced folds and not."""
    rec = _runs_recording(rng, n_runs=n_runs)
    states = 1e-3 * rec.get("h")
    far = Recording({"h": states + 1e4}, metadata=rec.metadata)
    centred = Recording({"h": (states + 1e4) - (states + 1e4).mean(axis=0)}, metadata=rec.metadata)
    settings = {"distance": "crossnobis", "descriptor": "image", "cv_descriptor": cv, "device": device}
    expected = compute_rdms(centred, **settings).dissimilarities
    np.testing.assert_allclose(compute_rdms(far, **settings).dissimilarities, expected, rtol=1e-9)
    reference = rsatoolbox.rdm.calc_rdm(centred.to_rsatoolbox("h", time=0), method="crossnobis", descriptor="image",
                                        cv_descriptor=cv)  # fmt: skip
    np.testing.assert_allclose(expected[0], reference.get_vectors()[0], rtol=1e-6)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_crossnobis_movie_equals_rsatoolbox(rng):
    rec = _runs_recording(rng, t=7)
    ours = compute_rdms(rec, distance="crossnobis", descriptor="image", cv_descriptor="run")
    ref = rsatoolbox.rdm.calc_rdm_movie(rec.to_rsatoolbox("h"), method="crossnobis", descriptor="image",
                                        cv_descriptor="run")  # fmt: skip
    np.testing.assert_allclose(ours.dissimilarities, ref.get_vectors(), rtol=1e-6, atol=1e-10)


def _crossnobis_loop(states, image, run, precision=None):
    """Brute force: per fold, training means of the other folds' presentations, test means of the fold's;
    d_k(i, j) = (a_i - a_j) P (b_i - b_j)' / units (P the identity by default), averaged over folds; (time, pairs)."""
    precision = np.eye(states.shape[2]) if precision is None else precision
    conds, folds = np.unique(image), np.unique(run)
    out = np.zeros((states.shape[1], conds.size * (conds.size - 1) // 2))
    for fold in folds:
        a = np.stack([states[(image == c) & (run != fold)].mean(axis=0) for c in conds])
        b = np.stack([states[(image == c) & (run == fold)].mean(axis=0) for c in conds])
        pairs = [(i, j) for i in range(conds.size) for j in range(i + 1, conds.size)]
        out += np.stack([np.einsum("tu,uv,tv->t", a[i] - a[j], precision, b[i] - b[j]) for i, j in pairs], axis=1)
    return out / folds.size / states.shape[2]


@pytest.mark.parametrize("design", ["one per run", "two runs", "twice in run 1", "unbalanced"])
def test_crossnobis_equals_a_loop_over_folds(rng, design):
    # one presentation per (run, condition): the balanced path (two runs: split halves, its own products);
    # every condition twice in run 1 (the balanced path with unequal folds); one condition repeated in one run
    # (the general path)
    rec, states, image, run = _designs(rng, design, n_cond=5, n_runs=3, t=4, units=6)
    ours = compute_rdms(rec, distance="crossnobis", descriptor="image", cv_descriptor="run").dissimilarities
    np.testing.assert_allclose(ours, _crossnobis_loop(states, image, run), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("n_runs", "products"), [(2, 2), (3, 4), (4, 5)])
def test_crossnobis_of_folds_of_one_size_counts_its_symmetric_products(rng, monkeypatch, n_runs, products):
    """Folds of one size, 128 conditions (numpy's symmetric product): w (T T' - sum_k S_k S_k'), the sums' product
    and one per fold; two folds (split halves) w (T T' - U U') / 2, two products. Equal to the loop over folds."""
    import rnnprobe.analysis.rsa.compute as compute

    taken, product = [], compute.symmetric_product
    monkeypatch.setattr(compute, "symmetric_product", lambda *a: taken.append(a[0].shape) or product(*a))
    rec, states, image, run = _designs(rng, "one per run", n_cond=128, n_runs=n_runs, t=1, units=9)
    ours = compute_rdms(rec, distance="crossnobis", descriptor="image", cv_descriptor="run").dissimilarities
    np.testing.assert_allclose(ours, _crossnobis_loop(states, image, run), rtol=1e-9, atol=1e-12)
    assert taken == [(128, 9)] * products


@pytest.mark.parametrize("path", ["gram", "products by rows"])
def test_mahalanobis_whitens_by_a_positive_definite_precision_and_takes_others_as_they_are(rng, monkeypatch, path):
    """A positive definite precision P = L L': the patterns times L, then symmetric products (the Gram matrix's
    path, one a step) or products of whitened blocks of rows; a symmetric precision that is not definite keeps the
    products with P (no symmetric product). Both equal (x_i - x_j) P (x_i - x_j)' / units (1e-9)."""
    import rnnprobe.analysis.rsa.compute as compute

    if path == "products by rows":
        _products_by_rows(monkeypatch, n=130, rows=9)
    taken, product = [], compute.symmetric_product
    monkeypatch.setattr(compute, "symmetric_product", lambda *a: taken.append(a[0].shape) or product(*a))
    x = rng.normal(size=(130, 2, 9)) + 0.5
    a = rng.normal(size=(9, 9))
    i, j = np.triu_indices(130, 1)
    for precision, products in ((np.linalg.inv(a @ a.T + np.eye(9)), [(130, 9)] * 2), (a + a.T, [])):
        del taken[:]
        got = compute_rdms(Recording({"x": x}), "x", distance="mahalanobis", noise=precision).dissimilarities
        expected = np.einsum("ptu,uv,ptv->tp", x[i] - x[j], precision, x[i] - x[j]) / 9
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
        assert taken == (products if path == "gram" else [])


def test_whitening_is_taken_where_it_saves_three_times_the_factorisation(rng, monkeypatch):
    """The Cholesky factorisation (p^3 / 3) costs more than the products it saves for few conditions of many units:
    whitened only where the saved multiplications are p^3 or more (Mahalanobis: n^2 p / 2 a step; crossnobis of
    balanced folds of one size: (R - 1) / 2 n^2 p a step, n^2 p for two, none for unbalanced folds). Equal either
    way."""
    import rnnprobe.analysis.rsa.crossnobis as crossnobis

    factored, cholesky = [], np.linalg.cholesky
    monkeypatch.setattr(np.linalg, "cholesky", lambda p: factored.append(p.shape) or cholesky(p))
    a = rng.normal(size=(16, 16))
    precision = np.linalg.inv(a @ a.T + 16 * np.eye(16))
    i, j = np.triu_indices(20, 1)
    for n_steps, whitened in ((1, False), (26, True)):  # 20^2 x 16 / 2 x steps against 16^3: 3200 or 83200 / 4096
        x = rng.normal(size=(20, n_steps, 16))
        del factored[:]
        got = compute_rdms(Recording({"x": x}), distance="mahalanobis", noise=precision).dissimilarities
        np.testing.assert_allclose(got, np.einsum("ptu,uv,ptv->tp", x[i] - x[j], precision, x[i] - x[j]) / 16,
                                   rtol=1e-9, atol=1e-12)  # fmt: skip
        assert factored == ([(16, 16)] if whitened else [])

    def saves(counts, steps):  # (n = 2 conditions, p = 5 units)
        counts = np.array(counts)
        return crossnobis.FoldDesign(None, np.arange(len(counts)), np.arange(2), counts).whitening_saves(steps, 5)

    assert saves([[1, 1], [1, 1]], 3) == 1 * 4 * 5 * 3  # two folds: 2 general products -> 2 symmetric ones
    assert saves([[1, 1]] * 4, 1) == 1.5 * 4 * 5  # four: 4 general -> 5 symmetric
    assert saves([[2, 2], [1, 1], [1, 1]], 1) == 0.5 * 4 * 5  # of two sizes: 3 general -> 1 general, 3 symmetric
    assert saves([[1, 1], [2, 1]], 1) == 0  # unbalanced: R general products either way


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (rsatoolbox's crossnobis casts a NaN fill value)
@pytest.mark.parametrize("n_runs", [2, 3])
def test_crossnobis_whitens_the_sums_by_a_positive_definite_precision_and_takes_others_as_they_are(
    rng, monkeypatch, n_runs
):
    """A positive definite noise precision P = L L' (its Cholesky factor): the folds' sums times L, then the
    identity's kernels (symmetric products: 2 for 2 runs, 4 for 3) instead of products with P and of each fold's
    means. A symmetric precision that is not positive definite (rsatoolbox takes any) keeps the products with P.
    Both equal the loop over folds with P (1e-9); the whitened one rsatoolbox's too."""
    import rnnprobe.analysis.rsa.compute as compute

    taken, product = [], compute.symmetric_product
    monkeypatch.setattr(compute, "symmetric_product", lambda *a: taken.append(a[0].shape) or product(*a))
    rec, states, image, run = _designs(rng, "one per run", n_cond=128, n_runs=n_runs, t=2, units=9)
    a = rng.normal(size=(9, 9))
    definite, indefinite = np.linalg.inv(a @ a.T + 9 * np.eye(9)), a + a.T  # (a + a': eigenvalues of both signs)
    settings = {"distance": "crossnobis", "descriptor": "image", "cv_descriptor": "run"}
    for precision, products in ((definite, [(128, 9)] * (n_runs + 1 if n_runs > 2 else 2) * 2), (indefinite, [])):
        del taken[:]
        ours = compute_rdms(rec, noise=precision, **settings).dissimilarities
        np.testing.assert_allclose(ours, _crossnobis_loop(states, image, run, precision), rtol=1e-9, atol=1e-12)
        assert taken == products  # (2 steps)
    reference = rsatoolbox.rdm.calc_rdm(rec.to_rsatoolbox("h", time=1), method="crossnobis", descriptor="image",
                                        cv_descriptor="run", noise=definite)  # fmt: skip
    np.testing.assert_allclose(compute_rdms(rec, noise=definite, **settings).dissimilarities[1],
                               reference.get_vectors()[0], rtol=1e-6)  # fmt: skip


def _designs(rng, design, **kwargs):
    """A runs recording of one of the designs below, and its states, images and runs."""
    rec = _runs_recording(rng, **{**kwargs, "n_runs": 2} if design == "two runs" else kwargs)
    image, run, states = rec.column("image"), rec.column("run"), rec.get("h")
    extra = {"one per run": [], "two runs": [], "twice in run 1": np.flatnonzero(run == 1), "unbalanced": [0],
             "noise": []}[design]  # fmt: skip
    image, run = np.r_[image, image[extra]], np.r_[run, run[extra]]
    states = np.concatenate([states, states[extra] + rng.normal(size=states[extra].shape)])
    return Recording({"h": states}, metadata={"image": image, "run": run}), states, image, run


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("design", ["one per run", "two runs", "twice in run 1", "unbalanced", "noise"])
def test_crossnobis_by_blocks_of_steps_and_of_rows_on_threads_equals_a_loop(rng, design, threads, monkeypatch):
    """40 conditions taken by blocks of rows (as 1024 and more are; 3 rows a block) and 5 steps in blocks of 2
    (the last block's arrays are the first ones' first step), on 1 and 3 threads, every design (folds of one
    size, of two sizes, unbalanced, a noise precision): equal to the loop over folds; a single step on 3 threads
    splits its products and its rows, and the kernels are not overwritten while other shares read their columns;
    torch's path (``device``) in blocks of steps too."""
    import torch

    import rnnprobe.analysis.rsa.compute as compute
    import rnnprobe.analysis.rsa.triangles as triangles

    monkeypatch.setattr(triangles, "ROWS_BYTES", 40**2 * 8)
    monkeypatch.setattr(triangles, "BLOCK_BYTES", 3 * 8 * 40)
    monkeypatch.setattr(compute, "CACHE_BYTES", 2 * 8 * 40**2)
    monkeypatch.setattr(compute, "SPLIT_ROWS", 16)  # the single step's products in blocks of rows on the threads
    rows, taken = compute.upper_triangle_rows, []
    monkeypatch.setattr(compute, "upper_triangle_rows", lambda *a, **k: taken.append(k["threads"]) or rows(*a, **k))
    rec, states, image, run = _designs(rng, design, n_cond=40, n_runs=3, t=5, units=12)
    precision = np.diag(rng.uniform(0.5, 2, 12)) if design == "noise" else None
    scaled = states * np.sqrt(np.diag(precision)) if design == "noise" else states  # (a - b)' P (c - d), P diagonal
    expected = _crossnobis_loop(scaled, image, run)
    settings = {"distance": "crossnobis", "descriptor": "image", "cv_descriptor": "run", "noise": precision}
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        whole = compute_rdms(rec, **settings).dissimilarities
        single = compute_rdms(rec, time=[3], **settings).dissimilarities
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(whole, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(single, expected[[3]], rtol=1e-9, atol=1e-12)
    assert taken == [1, 1, 1, threads]  # blocks of 2, 2 and 1 steps, then the single step on every thread
    monkeypatch.setattr(compute, "BLOCK_BYTES", 4 * 2 * 8 * 40**2)  # torch's blocks (a device's): 2, 2 and 1 steps
    on_torch = compute_rdms(rec, device="cpu", **settings).dissimilarities
    np.testing.assert_allclose(on_torch, expected, rtol=1e-9, atol=1e-12)


def test_crossnobis_work_arrays_are_made_once_per_worker_and_reused(rng, monkeypatch):
    """A worker's arrays are allocated at the most steps asked and handed out as views (fresh arrays of a few MB
    per block were page-faulted in at each use); a numpy backend's results in its dtype, a device's none."""
    import rnnprobe.analysis.rsa.compute as compute
    from rnnprobe.analysis.rsa.work import Work

    work = Work(True, "float32")
    first = work.host("total", (4, 3, 5))
    assert first.dtype == np.float64 and work.host("total", (4, 2, 5)).ctypes.data == first.ctypes.data
    assert work.host("total", (4, 2, 5)).shape == (4, 2, 5)
    assert not np.shares_memory(work.host("total", (4, 6, 5)), first)
    kernel = work.out("kernel", (3, 4, 4))
    assert kernel.dtype == np.float32 and np.shares_memory(work.out("kernel", (1, 4, 4)), kernel)
    assert work.out("kernel", (1, 4, 4)).flags.c_contiguous and Work(False).out("kernel", (3, 4, 4)) is None

    made = _count_work_arrays(monkeypatch)
    monkeypatch.setattr(compute, "CACHE_BYTES", 2 * 8 * 6**2)
    rec = _runs_recording(rng, t=5)  # blocks of 2, 2 and 1 steps on one thread
    compute_rdms(rec, distance="crossnobis", descriptor="image", cv_descriptor="run")
    names = [name for name, _ in made]
    # 7 arrays asked a block (the total, the kernel, 4 folds' products, the differences), each made once, for the first
    assert len(made) == 3 * 7 and [name for name, new in made if new] == list(dict.fromkeys(names))
    assert not any(new for _, new in made[7:])


def _count_work_arrays(monkeypatch) -> list:
    """[(name, whether made anew)] of every work array ``compute_rdms``'s blocks ask for, from now on."""
    import rnnprobe.analysis.rsa.compute as compute
    from rnnprobe.analysis.rsa.work import Work

    made = []

    class Counted(Work):
        def _block_array(self, name, shape, axis, dtype):
            key = (name, axis, shape[:axis] + shape[axis + 1 :], dtype)
            before = self.arrays.get(key)
            out = super()._block_array(name, shape, axis, dtype)
            made.append((name, self.arrays[key] is not before))
            return out

    monkeypatch.setattr(compute, "Work", Counted)
    return made


@pytest.mark.parametrize(
    ("distance", "units", "names"),
    [
        ("correlation", 20, ["gram", "outer"]),  # raw Gram matrices corrected in place
        ("cosine", 20, ["gram", "outer"]),
        ("correlation", 7, ["gram"]),  # more than twice as many conditions as units: normalised patterns
        ("euclidean", 7, ["gram"]),  # the distances in place of the Gram matrices
        ("euclidean_plain", 7, ["gram"]),
    ],
)
def test_rdm_work_arrays_are_made_once_per_worker_and_reused(rng, monkeypatch, distance, units, names):
    """The n x n arrays of a block of steps (its Gram matrices, and the correlation's outer products) come from
    the worker's arrays, made in its first block (fresh arrays at each
    block were mapped and page-faulted in: a first RDM movie of 92 x 50 x 512, 2027 -> 924 faults)."""
    import rnnprobe.analysis.rsa.compute as compute

    made = _count_work_arrays(monkeypatch)
    monkeypatch.setattr(compute, "CACHE_BYTES", 8 * 30 * 30 * 2)  # blocks of 2, 2, 2 and 1 steps on one thread
    compute_rdms(_rec(rng, n=30, t=7, units=units), distance=distance)
    assert [name for name, _ in made] == names * 4
    assert [name for name, new in made if new] == names


def test_work_arrays_are_kept_for_the_next_call_and_never_a_result(rng, monkeypatch):
    """A call's workers' arrays are kept idle for the next call (430 page faults a call of a 92 x 50 x 512
    correlation movie), within KEEP_BYTES; a later call never changes an earlier result, and two calls at once
    (nested here) get arrays of their own."""
    import rnnprobe.analysis.rsa.compute as compute
    import rnnprobe.analysis.rsa.work as work

    monkeypatch.setattr(work._SHELF, "idle", [])
    made = _count_work_arrays(monkeypatch)
    first_rec, second_rec = _rec(rng, n=30, t=7, units=20), _rec(rng, n=30, t=7, units=20)
    first = compute_rdms(first_rec, distance="correlation")
    kept = first.dissimilarities.copy()
    assert [name for name, new in made if new] == ["gram", "outer"]
    del made[:]
    second = compute_rdms(second_rec, distance="correlation")
    assert made and not any(new for _, new in made)  # the first call's arrays, reused
    np.testing.assert_array_equal(first.dissimilarities, kept)  # (not a view of a kept array)
    expected = rsatoolbox.rdm.calc_rdm(
        rsatoolbox.data.Dataset(second_rec["h"][:, 3]), method="correlation"
    ).get_vectors()[0]
    np.testing.assert_allclose(second.dissimilarities[3], expected, rtol=1e-10, atol=1e-12)

    monkeypatch.setattr(work, "KEEP_BYTES", 0)  # nothing kept: every call makes its arrays anew
    work._SHELF.idle.clear()
    del made[:]
    compute_rdms(first_rec, distance="correlation")
    compute_rdms(first_rec, distance="correlation")
    assert [name for name, new in made if new] == ["gram", "outer"] * 2 and not work._SHELF.idle

    monkeypatch.setattr(work, "KEEP_BYTES", 2**23)
    with work.kept_works(compute.Work, True, "float64") as outer_mine:
        with work.kept_works(compute.Work, True, "float64") as inner_mine:
            assert inner_mine() is not outer_mine() and inner_mine() is inner_mine()
    assert len(work._SHELF.idle) == 2
    with work.kept_works(compute.Work, True, "float32") as mine:  # another dtype: a new one
        assert mine().dtype == "float32" and len(work._SHELF.idle) == 2
    assert [w.dtype for w in work._SHELF.idle] == ["float64", "float64", "float32"]
    monkeypatch.setattr(work, "KEEP_WORKS", 2)  # those given back longest ago go first
    with work.kept_works(compute.Work, True, "float16") as mine:
        mine().out("gram", (1, 2, 2))
    assert [w.dtype for w in work._SHELF.idle] == ["float32", "float16"]
    big = work.Work(True)
    big.out("gram", (1, 2**10, 2**10 + 1))  # alone more than KEEP_BYTES: not kept, and drops none
    work._give_back(big)
    assert big not in work._SHELF.idle and len(work._SHELF.idle) == 2
    work._SHELF.forget()  # (a forked child's)
    assert not work._SHELF.idle


def test_the_arrays_of_a_single_rdm_of_600_conditions_are_kept_for_the_next_call(rng, monkeypatch):
    """A crossnobis RDM of 600 conditions in 2 runs works in three 600 x 600 arrays (8.6 MB, more than the 8 MiB
    kept until the fifty-second session: 3278 pages faulted in at each call, 17.3 against 11.0 ms kept): kept at
    the default bound, and the next call takes them."""
    import rnnprobe.analysis.rsa.work as work

    monkeypatch.setattr(work._SHELF, "idle", [])
    made = _count_work_arrays(monkeypatch)
    image, run = np.tile(np.arange(600), 2), np.repeat(np.arange(2), 600)
    rec = Recording({"h": rng.normal(size=(1200, 1, 6))}, metadata={"image": image, "run": run})
    settings = {"distance": "crossnobis", "descriptor": "image", "cv_descriptor": "run"}
    first = compute_rdms(rec, **settings).dissimilarities
    assert [w.nbytes > 2**23 for w in work._SHELF.idle] == [True]
    del made[:]
    np.testing.assert_array_equal(compute_rdms(rec, **settings).dissimilarities, first)
    assert made and not any(new for _, new in made)


def test_largest_magnitude_of_numpy_and_torch_arrays():
    import torch

    from rnnprobe.analysis.rsa.compute import largest

    for values in ([-3.0, 1.0, 2.0], [3.0, -1.0], [-0.5, -3.0]):
        assert largest(np.array(values)) == 3.0 == largest(torch.tensor(values))


def test_crossnobis_in_float32_is_close_to_float64(rng):
    a = rng.normal(size=(8, 8))
    for design, noise in [(d, p) for d in ("one per run", "twice in run 1", "unbalanced") for p in (None, a @ a.T + 1)]:
        rec = _designs(rng, design)[0]
        settings = {"distance": "crossnobis", "descriptor": "image", "cv_descriptor": "run", "noise": noise}
        low = compute_rdms(rec, dtype="float32", **settings).dissimilarities
        np.testing.assert_allclose(low, compute_rdms(rec, **settings).dissimilarities, rtol=1e-4, atol=1e-5)


def test_crossnobis_is_unbiased_where_euclidean_is_not(rng):
    """Pure noise: cross-validated distances average to 0; plain squared distances are biased upwards."""
    image = np.tile(np.arange(5), 6)
    rec = Recording({"h": rng.normal(size=(30, 1, 50))}, metadata={"image": image, "run": np.repeat(np.arange(6), 5)})
    cross = compute_rdms(rec, distance="crossnobis", descriptor="image", cv_descriptor="run").dissimilarities
    plain = compute_rdms(rec, distance="euclidean", descriptor="image").dissimilarities
    assert abs(cross.mean()) < 0.05 and plain.mean() > 0.2


def test_crossnobis_bad_input(rng):
    rec = _runs_recording(rng)
    with pytest.raises(ArgumentError, match="needs the metadata column that names each condition"):
        compute_rdms(rec, distance="crossnobis")
    with pytest.raises(ArgumentError, match="at least 2 folds"):
        compute_rdms(rec, distance="crossnobis", descriptor="image", stimuli=rec.column("run") == 0,
                     cv_descriptor="run")  # fmt: skip
    with pytest.raises(ArgumentError, match=r"fold 1 leaves conditions \[2\] without data on one side"):
        compute_rdms(rec, distance="crossnobis", descriptor="image", cv_descriptor="run",
                     stimuli=~((rec.column("run") == 1) & (rec.column("image") == 2)))  # fmt: skip
    named = rec.with_metadata(session=np.array([f"s{r}" for r in rec.column("run")], dtype=object))
    with pytest.raises(ArgumentError, match="fold 's1' leaves"):  # the fold's value as written, any column dtype
        compute_rdms(named, distance="crossnobis", descriptor="image", cv_descriptor="session",
                     stimuli=~((rec.column("run") == 1) & (rec.column("image") == 2)))  # fmt: skip
    with pytest.raises(ArgumentError, match="cv_descriptor: only used by distance='crossnobis'"):
        compute_rdms(rec, distance="euclidean", cv_descriptor="run")
    with pytest.raises(UnknownNameError, match="cv_descriptor: 'session'"):
        compute_rdms(rec, distance="crossnobis", descriptor="image", cv_descriptor="session")


@pytest.mark.parametrize("method", METHODS)
def test_torch_backend_equals_numpy_backend(rng, method):
    """The torch path (used on GPUs) runs here on the CPU and must give the numpy path's RDMs."""
    rec = _runs_recording(rng, t=3) if method == "crossnobis" else _rec(rng, t=3)
    kwargs = {"descriptor": "image", "cv_descriptor": "run"} if method == "crossnobis" else {}
    if method == "mahalanobis":
        kwargs["noise"] = np.eye(rec.unit_shape("h")[0]) * 2.0
    numpy_path = compute_rdms(rec, distance=method, **kwargs)
    torch_path = compute_rdms(rec, distance=method, device="cpu", **kwargs)
    np.testing.assert_allclose(torch_path.dissimilarities, numpy_path.dissimilarities, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("source", ["float32", "float64"])
def test_arrays_cast_on_the_device_equal_a_cast_on_the_host(rng, dtype, source):
    """On a GPU, states are sent in their own dtype and cast there, results cast to float64 there before
    they come back; the same steps run here on the CPU (forced) must give the host's cast: the same values
    and dtypes, and a read-only array (as recordings hand out) taken without torch's non-writable warning."""
    import torch

    from rnnprobe.analysis.rsa.compute import _Backend

    host, device = _Backend(torch.device("cpu"), dtype), _Backend(torch.device("cpu"), dtype)
    assert not host.cast_on_device
    device.cast_on_device = True
    x = rng.normal(size=(4, 6, 5)).astype(source)
    x.flags.writeable = False
    for array in (x, x.transpose(1, 0, 2)):  # contiguous (read-only) and a view that needs a copy
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            sent = device.asarray(array)
        expected = host.asarray(array)
        assert sent.dtype == expected.dtype == getattr(torch, dtype)
        assert torch.equal(sent, expected)
        back = device.to_numpy(sent * 3)
        assert back.dtype == np.float64
        np.testing.assert_array_equal(back, host.to_numpy(expected * 3))


def test_the_torch_path_takes_layers_of_dtypes_torch_does_not_hold(rng):
    """A longdouble (or integer) layer: cast by numpy before torch sees it (torch.tensor refused longdouble)."""
    x = rng.normal(size=(9, 2, 5))
    for dtype in (np.longdouble, np.int64):
        rec = Recording({"h": (x * 10).astype(dtype)})
        expected = compute_rdms(rec).dissimilarities
        np.testing.assert_allclose(compute_rdms(rec, device="cpu").dissimilarities, expected, rtol=1e-12)


@pytest.mark.parametrize("method", ["correlation", "cosine", "euclidean", "mahalanobis"])
def test_patterns_sent_to_the_device_once_give_the_numpy_paths_rdms(rng, monkeypatch, method):
    """Where a GPU holds a layer with room to spare, it is sent once and blocks of steps are taken there; the
    same steps run here on the CPU (forced), in several blocks, must give the numpy path's RDMs, float64 and
    float32, and leave the recording's read-only states as they were."""
    import rnnprobe.analysis.rsa.compute as compute

    init, sent = compute._Backend.__init__, []

    def on_device(self, device, dtype):
        init(self, device, dtype)
        self.cast_on_device = device is not None  # device="cpu" here, a GPU where it runs for real

    monkeypatch.setattr(compute._Backend, "__init__", on_device)
    monkeypatch.setattr(compute._Backend, "free_bytes", lambda self: 2**40)
    monkeypatch.setattr(compute._Backend, "send", lambda self, a, send=compute._Backend.send: sent.append(a.shape)
                        or send(self, a))  # fmt: skip
    monkeypatch.setattr(compute, "BLOCK_BYTES", 3 * 8 * 30 * 30 * 2)  # 30 stimuli: blocks of 2 steps on a device
    rec = _rec(rng, n=30, t=5, units=20)
    before = rec["h"].copy()
    kwargs = {"noise": np.diag(rng.uniform(0.5, 2, 20))} if method == "mahalanobis" else {}
    expected = compute_rdms(rec, distance=method, **kwargs).dissimilarities
    for dtype, rtol in (("float64", 1e-10), ("float32", 1e-4)):
        got = compute_rdms(rec, distance=method, device="cpu", dtype=dtype, **kwargs).dissimilarities
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol)
    assert (30, 5, 20) in sent  # the whole layer, once per call (the precision matrix is sent as well)
    assert sent.count((30, 5, 20)) == 2
    np.testing.assert_array_equal(rec["h"], before)
    assert not rec["h"].flags.writeable


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU (none on CI)")
@pytest.mark.parametrize("method", ["correlation", "euclidean", "crossnobis"])
def test_rdms_on_cuda_equal_the_numpy_path(rng, method):
    """compute_rdms on a GPU, float64 and float32 (cast there), against the numpy path on the CPU."""
    rec = _runs_recording(rng, t=3) if method == "crossnobis" else _rec(rng, n=40, t=3, units=64)
    kwargs = {"descriptor": "image", "cv_descriptor": "run"} if method == "crossnobis" else {}
    expected = compute_rdms(rec, distance=method, **kwargs).dissimilarities
    for dtype, rtol in (("float64", 1e-10), ("float32", 1e-4)):
        got = compute_rdms(rec, distance=method, device="cuda", dtype=dtype, **kwargs).dissimilarities
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("units", [7, 20])  # (correlation and cosine: from normalised patterns, from raw Gram matrices)
@pytest.mark.parametrize(
    "distance", ["correlation", "euclidean", "euclidean_plain", "cosine", "mahalanobis", "crossnobis"]
)
def test_blocks_of_time_steps_give_the_same_rdms(rng, monkeypatch, distance, units):
    """compute_rdms works through time steps in blocks under a memory budget (their arrays reused from block to
    block, the last one shorter); the blocks change nothing."""
    import rnnprobe.analysis.rsa.compute as compute

    rec = _rec(rng, n=30, t=7, units=units, images=10)
    noise = rng.normal(size=(units, units))
    kwargs = {"crossnobis": {"descriptor": "image"}, "mahalanobis": {"noise": noise @ noise.T + np.eye(units)}}
    kwargs = kwargs.get(distance, {})
    whole = compute_rdms(rec, distance=distance, **kwargs).dissimilarities
    monkeypatch.setattr(compute, "BLOCK_BYTES", 4 * 8 * 10 * 10 * 2)  # crossnobis: blocks of 2 steps
    monkeypatch.setattr(compute, "CACHE_BYTES", 8 * 30 * 30 * 2)  # the others (30 stimuli): blocks of 2 steps
    seen = []
    dissimilarities = compute._dissimilarities
    monkeypatch.setattr(compute, "_dissimilarities", lambda p, *a: seen.append(len(p)) or dissimilarities(p, *a))
    np.testing.assert_array_equal(compute_rdms(rec, distance=distance, **kwargs).dissimilarities, whole)
    assert seen == ([] if distance == "crossnobis" else [2, 2, 2, 1])


@pytest.mark.parametrize("n", [5, 127, 128, 300])
def test_upper_triangles_equal_the_triu_index_gather_on_numpy_and_torch(n):
    """Both numpy paths (take below 128 conditions, row slices from 128) and torch give rsatoolbox's order."""
    import torch

    from rnnprobe.analysis.rsa.compute import upper_triangles

    full = np.random.default_rng(n).normal(size=(3, n, n))
    rows, cols = np.triu_indices(n, k=1)
    np.testing.assert_array_equal(upper_triangles(full), full[:, rows, cols])
    np.testing.assert_array_equal(upper_triangles(torch.from_numpy(full)).numpy(), full[:, rows, cols])
    into = np.full((5, rows.size), np.nan)  # into rows of a larger result, as the blocks of time steps write
    assert upper_triangles(full, into[1:4]).base is into
    np.testing.assert_array_equal(into[1:4], full[:, rows, cols])
    assert np.isnan(into[[0, 4]]).all()


@pytest.mark.parametrize("units", [5, 19, 20, 100])  # normalised copies below n / 2 units, raw Gram from there
@pytest.mark.parametrize("distance", ["correlation", "cosine"])
@pytest.mark.parametrize("offset", [0.0, 3.0, 1e5])  # 1e5: the raw Gram path would cancel digits, and refuses
def test_both_correlation_paths_equal_scipy_pdist(rng, units, distance, offset):
    from scipy.spatial.distance import pdist

    states = rng.normal(size=(40, 3, units)) + offset * rng.random(size=(40, 1, 1))
    got = compute_rdms(Recording({"h": states}), distance=distance).dissimilarities
    for t in range(3):
        np.testing.assert_allclose(got[t], pdist(states[:, t], distance), rtol=1e-9, atol=1e-12)


def test_a_zero_pattern_gives_nan_cosine_distances_without_numpy_warnings():
    import warnings

    from rnnprobe.errors import RnnprobeWarning

    states = np.random.default_rng(0).normal(size=(6, 2, 20))
    states[2] = 0.0  # no direction: its cosine distances are undefined
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # (rnnprobe's own warning about the NaN stays)
        warnings.simplefilter("ignore", RnnprobeWarning)
        d = compute_rdms(Recording({"h": states}), distance="cosine").matrices()
    assert np.isnan(d[:, 2, [0, 1, 3, 4, 5]]).all() and np.isfinite(d[:, 0, [1, 3, 4, 5]]).all()


def test_a_float32_layer_is_cast_block_by_block_never_whole(rng):
    """compute_rdms cast a float32 layer to float64 whole before its blocks of steps (a copy twice the layer's
    size): now each block is cast as it is used. The same bits as the float64 layer's RDMs; the peak of
    memory allocated stays under the float64 copy's size."""
    import tracemalloc

    x = rng.normal(size=(400, 16, 512)).astype(np.float32)  # 13 MB; a float64 copy: 26 MB
    rec = Recording({"h": x})
    expected = compute_rdms(Recording({"h": x.astype(np.float64)})).dissimilarities
    tracemalloc.start()
    try:
        got = compute_rdms(rec).dissimilarities
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(got, expected)
    assert peak < x.nbytes * 2, peak  # the result (10 MB) and a block, not a float64 copy of the layer

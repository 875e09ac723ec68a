"""FlyHash (Dasgupta et al. 2017): the hash's structure, mean average precision against
scikit-learn's average precision, fly > LSH at short hash lengths on digits, and errors."""

import numpy as np
import pytest

from rnnprobe import Recording
from rnnprobe.analysis.flyhash import (
    compare_hashes,
    fly_hash,
    hash_recording,
    mean_average_precision,
    random_projection,
    true_neighbours,
)
from rnnprobe.errors import ArgumentError, ShapeError


def test_projection_is_sparse_binary_and_the_winners_are_the_top_activations(rng):
    h = fly_hash(30, expansion=10, sampling=6, k=15, seed=3)
    dense = h.projection.toarray()
    assert dense.shape == (300, 30) and set(np.unique(dense)) == {0.0, 1.0}
    assert (dense.sum(axis=1) == 6).all()
    x = rng.normal(size=(20, 30))
    codes = h.transform(x)
    centred = x - x.mean(axis=1, keepdims=True)
    for row, code in zip(centred, codes, strict=True):  # brute force: sums of each unit's inputs, top 15
        sums = np.array([row[np.flatnonzero(unit)].sum() for unit in dense])
        assert set(np.flatnonzero(code)) == set(np.argsort(-sums)[:15])
    # the same seed, the same hash; the default k is 5% of the units
    assert (fly_hash(30, expansion=10, seed=3).projection != h.projection).nnz == 0
    assert fly_hash(30, expansion=10, seed=3).k == 15


def test_every_sample_that_does_not_vary_hashes_as_the_zero_input(rng):
    """A sample at 0.1 (or 1/3) keeps about 1e-17 per feature once centred; its winners were picked from that
    rounding, a different code for each value. Centring is offset-free: it hashes and projects as zeros, and a
    varying sample's code does not change."""
    h, lsh = fly_hash(50, expansion=20, seed=1), random_projection(50, 8, seed=1)
    flat = np.array([0.0, 0.1, 1 / 3, -7.3, 1e6 / 3])[:, None] * np.ones((1, 50))
    codes, projected = h.transform(flat), lsh(flat)
    np.testing.assert_array_equal(codes, np.broadcast_to(codes[0], codes.shape))
    np.testing.assert_array_equal(h.activations(flat), 0.0)
    np.testing.assert_array_equal(projected, 0.0)
    x = rng.normal(size=(30, 50))
    np.testing.assert_array_equal(h.transform(x), h.transform(x - x.mean(axis=1, keepdims=True)))
    np.testing.assert_allclose(lsh(x + 5.0), lsh(x), rtol=0, atol=1e-12)


def test_mean_average_precision_equals_sklearn_average_precision_per_query(rng):
    from sklearn.metrics import average_precision_score

    x = rng.normal(size=(150, 12))
    codes = random_projection(12, 4, seed=1)(x)  # continuous codes: no ties
    queries = np.random.default_rng(7).choice(150, size=40, replace=False)
    ours = mean_average_precision(x, codes, n_neighbours=10, n_queries=40, seed=7)
    neighbours = true_neighbours(x, queries, 10)
    aps = []
    for q, nn in zip(queries, neighbours, strict=True):
        others = np.delete(np.arange(150), q)
        relevant = np.isin(others, nn)
        distance = ((codes[others] - codes[q]) ** 2).sum(axis=1)
        aps.append(average_precision_score(relevant, -distance))
    assert ours == pytest.approx(np.mean(aps), abs=1e-12)
    # brute-force neighbours
    d = ((x[queries[0]] - x) ** 2).sum(axis=1)
    d[queries[0]] = np.inf
    assert set(neighbours[0]) == set(np.argsort(d)[:10])


def test_mean_average_precision_does_not_depend_on_the_codes_scale_or_offset(rng):
    """Rankings by distance do not change when codes are scaled or moved: codes at a scale of 1e-6 had every
    distance rounded to a tie (their ranking random: 0.04 for codes equal to the input); samples 1e5 from the
    origin that differ by 1e-3 keep their true neighbours (brute force by differences)."""
    x = rng.normal(size=(200, 5))
    codes = random_projection(5, 4, seed=1)(x)
    expected = mean_average_precision(x, codes, n_queries=50)
    for scaled in (codes * 1e-6, codes * 1e6, codes + 1e6):
        assert mean_average_precision(x, scaled, n_queries=50) == pytest.approx(expected, abs=1e-12)
    assert mean_average_precision(x, x * 1e-6, n_queries=50) == 1.0
    far = 1e5 + 1e-3 * x
    queries = np.arange(20)
    d = ((far[queries, None] - far[None]) ** 2).sum(axis=2)
    d[queries, queries] = np.inf
    np.testing.assert_array_equal(np.sort(true_neighbours(far, queries, 4), axis=1),
                                  np.sort(np.argsort(d, axis=1)[:, :4], axis=1))  # fmt: skip


def test_fly_beats_lsh_at_short_hash_lengths_on_digits():
    from sklearn.datasets import load_digits

    x = load_digits().data
    result = compare_hashes(x, lengths=(2, 4), n_repeats=3, n_queries=300, rsa_samples=200, seed=0)
    fly, lsh = result.fly_map.mean(axis=1), result.lsh_map.mean(axis=1)
    assert (fly > lsh).all(), (fly, lsh)
    assert fly[0] > 1.3 * lsh[0]  # measured 0.16 vs 0.10 at k=2 with 5 draws and 1000 queries
    assert 0 < result.fly_rsa.min() and result.fly_rsa.max() < 1
    summary = result.summary()
    assert summary["MAP k=2 fly"] == pytest.approx(fly[0])
    assert result.plot() is not None


def test_hash_recording_keeps_metadata_and_times(rng):
    from rnnprobe.analysis.rsa import compute_rdms

    rec = Recording({"h": rng.normal(size=(12, 4, 3, 2))}, metadata={"label": np.arange(12) % 2})
    hashed = hash_recording(rec, "h", expansion=20, k=6, seed=0)
    assert hashed.shapes == {"h:flyhash": (12, 4, 120)}
    assert (hashed.get("h:flyhash").sum(axis=-1) == 6).all()
    assert list(hashed.column("label")) == list(rec.column("label"))
    assert compute_rdms(hashed, distance="euclidean").n_rdms == 4


def test_errors():
    with pytest.raises(ArgumentError, match="projection: a fly hash's projection is a binary mask"):
        fly_hash(3, projection=np.array([[1, 0.5, 0], [0, 1, 1]]))
    with pytest.raises(ShapeError, match="projection: got shape"):
        fly_hash(4, projection=np.eye(3))
    with pytest.raises(ArgumentError, match="k: got 50"):
        fly_hash(4, n_units=10, k=50)
    with pytest.raises(ArgumentError, match="sampling: got 9"):
        fly_hash(4, sampling=9)
    with pytest.raises(ShapeError, match="x: got 5 features per sample; this hash takes 4"):
        fly_hash(4, expansion=2, k=1).transform(np.ones((2, 5)))
    with pytest.raises(ShapeError, match="codes: got 3 rows for 10 samples"):
        mean_average_precision(np.ones((10, 2)), np.ones((3, 2)))
    h = fly_hash(3, projection=np.array([[1, 1, 0], [0, 1, 1]]), k=1)
    assert h.n_units == 2 and h.transform(np.array([[3.0, 0, 0]])).tolist() == [[1.0, 0.0]]


def test_projection_drawn_in_blocks_equals_one_draw(monkeypatch):
    """The projection is drawn block by block (bounded memory); the stream, and so the mask, is that of one
    (m, d) draw of uniforms whose s smallest per row pick each unit's inputs."""
    import rnnprobe.analysis.flyhash as flyhash
    from rnnprobe.analysis.flyhash import fly_hash

    monkeypatch.setattr(flyhash, "PROJECTION_BLOCK", 300 * 1000)  # 12 blocks of 1000 rows
    d, m, s = 300, 12_000, 6
    rng = np.random.default_rng(3)
    reference = np.zeros((m, d))
    np.put_along_axis(reference, np.argsort(rng.random((m, d)), axis=1)[:, :s], 1.0, axis=1)
    np.testing.assert_array_equal(fly_hash(d, n_units=m, seed=3).projection.toarray(), reference)


def test_mean_average_precision_refuses_samples_that_are_all_the_same(rng):
    """x the same for every sample (0.1, whose centring leaves rounding; or exactly 0): every sample is as near
    to a query as any other, so its true neighbours were picked by index or by rounding and a MAP returned.
    Refused; samples that differ in one feature are taken."""
    codes = rng.random((200, 16)) > 0.5
    for x in (np.full((200, 5), 0.1), np.zeros((200, 5))):
        with pytest.raises(ArgumentError, match="x: every sample is the same"):
            mean_average_precision(x, codes)
    x = np.full((200, 5), 0.1)
    x[:, 2] = rng.normal(size=200)
    assert 0 <= mean_average_precision(x, codes) <= 1

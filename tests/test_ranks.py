"""rank_rows against scipy.stats.rankdata, on every path (batched argsort; long rows by radix keys or
numpy's argsort, whichever this machine sorts faster)."""

import numpy as np
import pytest
from scipy.stats import rankdata

from rnnprobe.analysis import _ranks
from rnnprobe.analysis._ranks import rank_rows


def _hard_rows(rng, n):
    """Rows that stress the radix path: float32 collisions, exact ties, signs, zeros, infinities."""
    base = rng.standard_normal(n)
    close = 1.0 + rng.integers(0, 50, n) * 1e-12  # distinct float64, mostly one float32 value
    ties = rng.integers(-3, 4, n).astype(float)  # many exact ties, negatives and zeros
    mixed = base.copy()
    mixed[: n // 10] = 0.0
    mixed[n // 10 : n // 5] = -0.0
    mixed[-5:] = [np.inf, -np.inf, 1e300, -1e300, 1e-310]  # beyond float32: collide as +-inf, 0
    tiny = rng.standard_normal(n) * 1e-40  # subnormal in float32
    return np.stack([base, close, ties, mixed, tiny])


@pytest.mark.parametrize(("radix_min", "radix_faster"), [(1, True), (1, False), (10**9, True)],
                         ids=["radix", "long rows by numpy", "batched argsort"])  # fmt: skip
def test_rank_rows_equals_rankdata(rng, monkeypatch, radix_min, radix_faster):
    monkeypatch.setattr(_ranks, "_RADIX_MIN", radix_min)
    monkeypatch.setattr(_ranks, "radix_is_faster", lambda: radix_faster)  # both sorts, whatever this CPU prefers
    x = _hard_rows(rng, 3000)
    np.testing.assert_array_equal(rank_rows(x), rankdata(x, axis=1))


@pytest.mark.parametrize("radix_faster", [True, False])
def test_long_rows_take_the_sort_measured_faster(rng, monkeypatch, radix_faster):
    x = _hard_rows(rng, _ranks._RADIX_MIN)
    calls = []
    name = "_radix_order" if radix_faster else "_numpy_order"
    original = getattr(_ranks, name)
    monkeypatch.setattr(_ranks, name, lambda row: calls.append(1) or original(row))
    monkeypatch.setattr(_ranks, "radix_is_faster", lambda: radix_faster)
    np.testing.assert_array_equal(rank_rows(x), rankdata(x, axis=1))
    assert len(calls) == len(x)


def test_the_measurement_is_made_once_and_names_a_sort():
    _ranks.radix_is_faster.cache_clear()
    first = _ranks.radix_is_faster()
    assert isinstance(first, bool) and _ranks.radix_is_faster() is first
    assert _ranks.radix_is_faster.cache_info().hits >= 1


def test_order_keys_are_monotone(rng):
    w = np.sort(rng.standard_normal(1000) * 10.0 ** rng.integers(-45, 45, 1000))
    v = np.concatenate([w[w < 0], [-0.0, 0.0], w[w > 0]])  # (numpy's sort may write both zeros as -0.0)
    keys = _ranks._order_keys(v)
    assert np.all(np.diff(keys) >= 0)
    assert np.signbit(v[v == 0]).sum() == 1 and np.unique(keys[v == 0]).size == 1  # -0.0 and +0.0: one key


def test_a_negative_and_a_positive_zero_tie_on_the_radix_path(monkeypatch):
    """The only tie of a long row is -0.0 with +0.0 (every other value distinct in float32, so no keys collide)."""
    monkeypatch.setattr(_ranks, "radix_is_faster", lambda: True)
    row = np.arange(1.0, _ranks._RADIX_MIN + 1)[None, ::-1].copy()  # (no other zero)
    row[0, [3, 17]] = [-0.0, 0.0]
    np.testing.assert_array_equal(rank_rows(row), rankdata(row, axis=1))


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_scatter_rows_equals_put_along_axis(layout):
    """Row scatters: whole permutations, the top k of each row with a broadcast value, any target layout."""
    from rnnprobe.analysis._ranks import scatter_rows

    rng = np.random.default_rng(3)
    order = np.argsort(rng.random((6, 9)), axis=1)
    for index, values in ((order, rng.random((6, 9))), (order[:, :4], 1.0), (order[:, :2], np.arange(2.0))):
        expected = np.full((6, 9), -1.0)
        np.put_along_axis(expected, index, values, axis=1)
        holder = np.full((6, 18), -1.0)
        target = np.full((6, 9), -1.0) if layout == "contiguous" else holder[:, 3:12]  # (no flat view)
        assert scatter_rows(target, index, values) is target
        np.testing.assert_array_equal(target, expected)

"""rank_rows against scipy.stats.rankdata, on both paths (batched argsort and radix keys)."""

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


@pytest.mark.parametrize("radix_min", [1, 10**9], ids=["radix", "argsort"])
def test_rank_rows_equals_rankdata(rng, monkeypatch, radix_min):
    monkeypatch.setattr(_ranks, "_RADIX_MIN", radix_min)
    x = _hard_rows(rng, 3000)
    np.testing.assert_array_equal(rank_rows(x), rankdata(x, axis=1))


def test_radix_path_is_taken_for_long_rows(rng, monkeypatch):
    x = _hard_rows(rng, _ranks._RADIX_MIN)
    calls = []
    original = _ranks._radix_order
    monkeypatch.setattr(_ranks, "_radix_order", lambda row: calls.append(1) or original(row))
    np.testing.assert_array_equal(rank_rows(x), rankdata(x, axis=1))
    assert len(calls) == len(x)


def test_order_keys_are_monotone(rng):
    v = np.sort(np.r_[rng.standard_normal(1000) * 10.0 ** rng.integers(-45, 45, 1000), 0.0])
    keys = _ranks._order_keys(v)
    assert np.all(np.diff(keys) >= 0)

"""rnnprobe.testing's assertion helpers fail where they should (a helper that cannot fail tests nothing)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnprobe.errors import ShapeError
from rnnprobe.testing import assert_components_equal


def test_components_equal_up_to_one_sign_each_shared_by_the_paired_arrays():
    rng = np.random.default_rng(0)
    w, v = rng.normal(size=(6, 3)), rng.normal(size=(4, 3))
    flips = np.array([1.0, -1.0, -1.0])
    assert_components_equal([w, v], [w * flips, v * flips])
    with pytest.raises(AssertionError, match="array 1"):  # a sign the first array does not share
        assert_components_equal([w, v], [w * flips, v])
    wrong = w * flips
    wrong[2, 1] += 1e-6
    with pytest.raises(AssertionError, match="array 0"):
        assert_components_equal([w], [wrong], atol=1e-9)
    assert_components_equal([w], [wrong], columns=[0, 2])  # an undefined component left out
    assert_components_equal([w], [wrong], columns=np.array([True, False, True]))


def test_components_with_nan_never_compare_equal_and_bad_shapes_are_one_clear_error():
    w = np.random.default_rng(1).normal(size=(4, 2))
    broken = w.copy()
    broken[:, 1] = np.nan
    with pytest.raises(AssertionError):
        assert_components_equal([broken], [broken])  # NaN on both sides: not equal
    assert_components_equal([broken], [broken], columns=[0])  # (left out: fine)
    with pytest.raises(ShapeError, match="the same shapes in the same order"):
        assert_components_equal([w], [w[:3]])
    with pytest.raises(ShapeError, match="non-empty lists"):
        assert_components_equal([], [])
    with pytest.raises(ShapeError, match="feature, component"):
        assert_components_equal([w[:, 0]], [w[:, 0]])

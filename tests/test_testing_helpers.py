"""rnnprobe.testing's assertion helpers fail where they should (a helper that cannot fail tests nothing)."""

from __future__ import annotations

import numpy as np
import pytest

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

import numpy as np
import pytest

from rnnprobe import _validation, errors


def test_hierarchy():
    assert issubclass(errors.UnknownNameError, ValueError)
    assert issubclass(errors.ShapeError, errors.ArgumentError)
    assert issubclass(errors.ArgumentTypeError, TypeError)
    assert issubclass(errors.StoreExistsError, FileExistsError)
    for cls in (errors.ArgumentError, errors.ArgumentTypeError, errors.IncompleteStoreError, errors.ModelCallError):
        assert issubclass(cls, errors.RnnprobeError)


def test_describe():
    assert errors.describe(np.zeros((3,), dtype=np.int32)) == "ndarray of shape (3,) and dtype int32"
    assert errors.describe(list(range(100))) == "list of length 100"
    assert errors.describe("x" * 200).endswith("...")
    assert errors.describe(3) == "3"


def test_check_option():
    assert _validation.check_option("method", "a", ["a", "b"]) == "a"
    with pytest.raises(errors.UnknownNameError, match=r"method: got 'c', which is not one of 'a', 'b'"):
        _validation.check_option("method", "c", ["a", "b"])

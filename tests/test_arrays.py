"""analysis/_arrays: the helpers that let one piece of arithmetic take numpy arrays or torch tensors, and send
arrays to a torch device (the device= paths of encoding, alignment and RSA)."""

import warnings

import numpy as np
import pytest
import torch

from rnnprobe.analysis._arrays import flip, linalg_errors, namespace, send, svdvals, vdot, writable_view


def test_the_helpers_give_numpys_values_on_tensors():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    assert namespace(a) is np and namespace(ta) is torch
    assert vdot(ta, tb) == pytest.approx(float(np.sum(a * b)), abs=1e-14) == vdot(a, b)
    np.testing.assert_array_equal(flip(torch.arange(4.0)).numpy(), [3.0, 2.0, 1.0, 0.0])
    np.testing.assert_allclose(svdvals(ta).numpy(), np.linalg.svd(a, compute_uv=False), rtol=0, atol=1e-12)
    with pytest.raises(linalg_errors(ta)):
        torch.linalg.cholesky(-torch.eye(2, dtype=torch.float64))
    with pytest.raises(linalg_errors(a)):
        np.linalg.cholesky(-np.eye(2))


def test_send_copies_on_the_cpu_and_sends_other_devices_the_arrays_own_floats(tmp_path):
    states = np.arange(12, dtype=np.float32).reshape(3, 4)
    states.flags.writeable = False  # as a recording hands them out
    for given in (states, states.astype(np.float64)):  # (float64: no cast that would copy anyway)
        on_cpu = send(given, torch.device("cpu"))
        assert on_cpu.dtype == torch.float64 and not np.shares_memory(on_cpu.numpy(), given)
        on_cpu += 1  # the caller's array untouched
        assert given[0, 0] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns where it wraps read-only memory
        sent = send(states, torch.device("meta"))  # another device: float32 sent as it is, cast there
    assert sent.dtype == torch.float64 and sent.shape == (3, 4) and sent.device.type == "meta"
    assert not states.flags.writeable  # the caller's flags are kept
    for other in (np.arange(6).reshape(2, 3), np.ones((2, 3), dtype=np.longdouble)):  # (torch holds no longdouble)
        assert send(other, torch.device("meta")).dtype == torch.float64
    view = writable_view(states)
    assert view.flags.writeable and np.shares_memory(view, states)  # a view, no copy
    np.save(tmp_path / "x.npy", states)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")  # memory read-only itself: copied
    copied = writable_view(mapped)
    assert copied.flags.writeable and not np.shares_memory(copied, mapped)
    np.testing.assert_array_equal(copied, states)

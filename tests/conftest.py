import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Thread oversubscription on shared machines makes torch 10-100x slower. BLAS is pinned too: numpy (and its
    BLAS) may be loaded by a plugin before this file sets OMP_NUM_THREADS, and then ran on every core in a plain
    ``python -m pytest`` (tests that compare one thread with two, such as test_parallel's, assume one)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")  # (for the session: its restore is never called)
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def torch_threads():
    """``torch.set_num_threads``; torch's setting before the test comes back after it."""
    import torch

    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _close_figures():
    """Figures made by a test are closed after it (pyplot keeps them open otherwise)."""
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture
def small_recording(rng):
    """``small_recording(n_stimuli, n_time, n_units, *, n_classes, onset, signal)``: a labelled recording
    (rnnprobe.testing.make_recording) drawn from the test's ``rng``."""
    from functools import partial

    from rnnprobe.testing import make_recording

    return partial(make_recording, seed=rng)

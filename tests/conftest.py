import json
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

# the tutorials run in a temporary folder, so the data loaders cannot find ../shared/data from there: point them at it
_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARED_DATA = {"RNNPROBE_DATA": str(_DATA)} if _DATA.is_dir() and "RNNPROBE_DATA" not in os.environ else {}


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


def _ran_in_the_docs_build(path: Path) -> bool:
    """The docs build (scripts/gallery_hook.py) ran this tutorial to its end with this very code: its cells
    are cached under the hash of the tutorial and of the package (.ci/run builds the docs before the tests).
    """
    sys.path.insert(0, str(path.parents[1] / "scripts"))
    try:
        import gallery_hook
    except ImportError:  # no docs extra (mkdocs): no docs build ran either
        return False
    finally:
        sys.path.pop(0)
    cached = gallery_hook.CACHE / f"{path.stem}-{gallery_hook._digest(path)}.json"
    return cached.is_file() and any(cell["kind"] == "code" for cell in json.loads(cached.read_text()))


def _run_tutorial(path: Path, folder: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "TMPDIR": str(folder), **SHARED_DATA}
    return subprocess.run([sys.executable, str(path)], cwd=folder, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(autouse=True, scope="session")
def tutorial_runs(request, tmp_path_factory):
    """The selected tutorials (tests/test_tutorials.py) that the docs build has not run, started with the session
    beside the other tests, each on one thread in a folder of its own: the tests run on one thread and leave the
    other cores mostly idle, so the tutorials (a quarter of the suite's work on a fresh machine) run there and
    have mostly finished when their tests, late in the suite, ask (one at a time on two cores, two at a time on
    more). Nothing starts where the docs build ran them (CI). {path: its run's future}; the runs not started when
    the session ends are cancelled."""
    selected = [item.callspec.params["path"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_tutorial_runs"]  # fmt: skip
    todo = [path for path in selected if not _ran_in_the_docs_build(path)]
    pool = ThreadPoolExecutor(max_workers=max(1, min(2, (os.cpu_count() or 1) - 1)))
    try:
        yield {path: pool.submit(_run_tutorial, path, tmp_path_factory.mktemp(path.stem)) for path in todo}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)

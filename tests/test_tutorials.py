"""Every tutorial runs top to bottom as a script (they are jupytext percent-format files)."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).parent.parent / "tutorials").glob("*.py"))
# the tutorials run in a temporary folder, so the data loaders cannot find ../shared/data from there: point them at it
_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARED_DATA = {"RNNPROBE_DATA": str(_DATA)} if _DATA.is_dir() and "RNNPROBE_DATA" not in os.environ else {}


def test_there_are_tutorials():
    assert TUTORIALS, "tutorials/ has no .py files"


def _ran_in_the_docs_build(path):
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


def _run(path: Path, folder: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "TMPDIR": str(folder), **SHARED_DATA}
    return subprocess.run([sys.executable, str(path)], cwd=folder, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    """The selected tutorials that the docs build has not run, started when the first of these tests asks: as
    many at once as there are cores, up to 2 (each on one thread, in a folder of its own), so that the tutorials,
    a third of the suite's time on a fresh machine, take half the time on two cores. {path: its run's future}."""
    selected = [item.callspec.params["path"] for item in request.session.items
                if getattr(item, "originalname", None) == "test_tutorial_runs"]  # fmt: skip
    todo = [path for path in selected if not _ran_in_the_docs_build(path)]
    with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        yield {path: pool.submit(_run, path, tmp_path_factory.mktemp(path.stem)) for path in todo}


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, runs):
    if path not in runs:
        return  # executed to the end, cell by cell, by the docs build of this same code
    done = runs[path].result()
    assert done.returncode == 0, f"{path.name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

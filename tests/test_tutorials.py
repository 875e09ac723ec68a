"""Every tutorial runs top to bottom as a script (they are jupytext percent-format files)."""

import json
import os
import subprocess
import sys
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


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, tmp_path):
    if _ran_in_the_docs_build(path):
        return  # executed to the end, cell by cell, by the docs build of this same code
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path), **SHARED_DATA}
    done = subprocess.run(
        [sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{path.name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

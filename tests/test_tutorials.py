"""Every tutorial runs top to bottom as a script (they are jupytext percent-format files)."""

from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).parent.parent / "tutorials").glob("*.py"))


def test_there_are_tutorials():
    assert TUTORIALS, "tutorials/ has no .py files"


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, tutorial_runs):
    runs = tutorial_runs  # (started with the session: tests/conftest.py)
    if path not in runs:
        return  # executed to the end, cell by cell, by the docs build of this same code
    done = runs[path].result()
    assert done.returncode == 0, f"{path.name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

"""The benchmark scripts and tools still fit the code they measure, without running them (they take minutes and
import the anchors): every rnnprobe name they use exists, and every call of an rnnprobe function or class binds
to its signature. The scripts reach into private functions (``core._normalised_distances``) whose arguments
change with the code; a script that stops with a TypeError can no longer reproduce its figures.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*ROOT.glob("benchmarks/*.py"), *ROOT.glob("scripts/*.py")])


def _bindings(tree: ast.AST) -> dict[str, Any]:
    """The names a script binds to rnnprobe modules and objects by its imports (at any depth)."""
    names: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "rnnprobe":
                    module = importlib.import_module(alias.name)
                    names[alias.asname or "rnnprobe"] = module if alias.asname else importlib.import_module("rnnprobe")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "rnnprobe":
            module = importlib.import_module(node.module)
            for alias in node.names:
                try:
                    names[alias.asname or alias.name] = getattr(module, alias.name)
                except AttributeError:
                    names[alias.asname or alias.name] = importlib.import_module(f"{node.module}.{alias.name}")
    return names


def _chain(node: ast.AST) -> list[str] | None:
    """``a.b.c`` as ["a", "b", "c"]; None for anything else (calls, subscripts in between)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None


def _problems(path: Path) -> list[str]:
    """Where ``path`` names an rnnprobe object that does not exist or calls one with arguments it cannot take."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = _bindings(tree)
    found, checked = [], set()
    for node in ast.walk(tree):
        chain = _chain(node) if isinstance(node, ast.Attribute | ast.Name) else None
        if chain is None or chain[0] not in names or id(node) in checked:
            continue
        target = names[chain[0]]
        for attr in chain[1:]:
            if not hasattr(target, attr):
                found.append(f"{path.name}:{node.lineno}: {'.'.join(chain)}: no {attr!r} there")
                break
            target = getattr(target, attr)
        checked.update(id(n) for n in ast.walk(node))  # (the chain's inner Attribute and Name nodes)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or (chain := _chain(node.func)) is None or chain[0] not in names:
            continue
        try:
            target = names[chain[0]]
            for attr in chain[1:]:
                target = getattr(target, attr)
            signature = inspect.signature(target)
        except (AttributeError, TypeError, ValueError):  # reported above, or a builtin without a signature
            continue
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            continue  # *args or **kwargs: not checkable without running
        try:
            signature.bind(*node.args, **{k.arg: k.value for k in node.keywords})
        except TypeError as error:
            found.append(f"{path.name}:{node.lineno}: {'.'.join(chain)}(...): {error}")
    return sorted(found, key=lambda problem: int(problem.split(":")[1]))


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_scripts_call_rnnprobe_as_it_is(path):
    assert _problems(path) == []


def test_the_check_finds_a_missing_argument_and_a_missing_name(tmp_path):
    script = tmp_path / "drifted.py"
    script.write_text(
        "import rnnprobe.analysis.rsa.compute as core\n"
        "from rnnprobe.analysis import compute_rdms\n"
        "f = lambda b: core._normalised_distances(b, 'correlation', None, 1)\n"
        "compute_rdms(None, 'x', distanse='correlation')\n"
        "core.no_such_function\n"
        "compute_rdms(None, 'x', distance='correlation')\n"
    )
    problems = _problems(script)
    assert [p.split(":")[1] for p in problems] == ["3", "4", "5"], problems
    assert "missing a required argument: 'out'" in problems[0]
    assert "unexpected keyword argument 'distanse'" in problems[1]

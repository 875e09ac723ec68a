"""The package reads as the pipeline: stage folders at the top level, no loose modules, no private
names used across subpackages, no function longer than 80 lines of code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rnnprobe"
STAGES = ("models", "tasks", "recording", "neural", "analysis", "report", "cli")
ROOT_MODULES = {"__init__.py", "errors.py", "_version.py", "_validation.py", "testing.py"}
SHARED = {"errors", "_version", "_validation", "testing"}  # root modules every stage may use
MAX_LINES = 80


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _stage(module: str) -> str:
    """'rnnprobe.analysis.rsa.compute' -> 'analysis'; a root module -> its own name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_top_level_is_the_pipeline():
    entries = {p.name for p in PACKAGE.iterdir() if p.name != "__pycache__" and not p.name.startswith(".")}
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    loose = {e for e in entries - folders if e.endswith(".py")} - ROOT_MODULES
    assert not loose, f"loose modules at rnnprobe/'s top level: {sorted(loose)}; move them into a stage folder"
    assert set(STAGES) <= folders, f"missing stage folders: {sorted(set(STAGES) - folders)}"
    unknown = folders - set(STAGES)
    assert not unknown, f"top-level folders that are no pipeline stage: {sorted(unknown)}"


def _imports_across_stages() -> list[str]:
    problems = []
    for path in _modules():
        own = _stage(_module_name(path))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(path, node)
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.Import):
                target, names = "", []
                for alias in node.names:
                    if alias.name.startswith("rnnprobe."):
                        target = alias.name
            else:
                continue
            if not target.startswith("rnnprobe") or _stage(target) in (own, *SHARED):
                continue
            parts = target.split(".")[1:]
            bad = [p for p in parts if _private(p)] + [n for n in names if _private(n)]
            if bad:
                problems.append(f"{path.relative_to(PACKAGE)}:{node.lineno} uses {bad} of {target}")
    return problems


def _private_attributes() -> dict[str, set[str]]:
    """Per stage, the private attribute names its classes define (methods and self._x assignments)."""
    defined: dict[str, set[str]] = {}
    for path in _modules():
        names = defined.setdefault(_stage(_module_name(path)), set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for item in ast.walk(node):
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(item.name):
                        names.add(item.name)
                    if isinstance(item, ast.Attribute) and isinstance(item.ctx, ast.Store) and _private(item.attr):
                        names.add(item.attr)
    return defined


def _attributes_across_stages() -> list[str]:
    defined = _private_attributes()
    problems = []
    for path in _modules():
        own = _stage(_module_name(path))
        foreign = set().union(*(names for stage, names in defined.items() if stage != own)) - defined.get(own, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in foreign:
                problems.append(f"{path.relative_to(PACKAGE)}:{node.lineno} uses .{node.attr} of another stage")
    return problems


def test_no_private_imports_across_subpackages():
    problems = _imports_across_stages()
    assert not problems, "\n".join(problems)


def test_no_private_attributes_across_subpackages():
    problems = _attributes_across_stages()
    assert not problems, "\n".join(problems)


def test_the_checks_can_fail(tmp_path):
    """The walkers see a planted violation (a test that cannot fail is a defect)."""
    fake = tmp_path / "rnnprobe"
    (fake / "analysis").mkdir(parents=True)
    (fake / "recording").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "loose.py").write_text("")
    (fake / "recording" / "__init__.py").write_text("class R:\n    def _hidden(self):\n        pass\n")
    (fake / "analysis" / "__init__.py").write_text(
        "from ..recording._lazy import LazyArray\n"
        "from ..recording import _helper\n\n"
        "def f(r):\n    return r._hidden()\n"
    )
    globals()["PACKAGE"], saved = fake, PACKAGE
    try:
        assert len(_imports_across_stages()) == 2
        assert len(_attributes_across_stages()) == 1
        with pytest.raises(AssertionError, match="loose modules"):
            test_top_level_is_the_pipeline()
    finally:
        globals()["PACKAGE"] = saved


def _code_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function without its docstring."""
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        if isinstance(body[0].value.value, str):
            return node.end_lineno - node.lineno + 1 - (body[0].end_lineno - body[0].lineno + 1)
    return node.end_lineno - node.lineno + 1


def test_no_function_over_80_lines():
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _code_lines(node) > MAX_LINES:
                long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({_code_lines(node)} lines)")
    assert not long, "split these by phase (check -> plan -> compute -> result):\n" + "\n".join(long)

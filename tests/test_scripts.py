"""Scripts are modules of the installed project: no ``sys.path`` edits, no imports from
``tests/``, and every benchmark and tool imports when run from the repository root."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
NOT_YET: tuple[Path, ...] = ()  # every script is checked


def _scripts() -> list[Path]:
    return sorted(
        p
        for p in SCRIPTS.rglob("*.py")
        if not any(p == skip or skip in p.parents for skip in NOT_YET)
    )


def _uses_sys_path(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ):
            return True
    return False


def _imports_tests(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        if any(n.split(".")[0] in ("tests", "conftest") or n.endswith("_support") for n in names):
            return True
    return False


def test_scripts_neither_edit_sys_path_nor_import_tests() -> None:
    assert _scripts(), "no scripts found"
    assert [str(p.relative_to(ROOT)) for p in _scripts() if _uses_sys_path(p)] == []
    assert [str(p.relative_to(ROOT)) for p in _scripts() if _imports_tests(p)] == []


def test_every_benchmark_and_tool_imports_from_the_repository_root() -> None:
    modules = [
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in _scripts()
        if p.parent != SCRIPTS and p.name != "__init__.py"
    ]
    assert "scripts.bench.bench_pipeline" in modules and "scripts.tools.c2pa_signing" in modules
    code = f"import importlib\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-2000:]

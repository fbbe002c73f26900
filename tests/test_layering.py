"""The detector is pure PyTorch: it never imports the messaging layer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("consumer", "confluent_kafka", "schemas")


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_detector_sources_do_not_import_messaging() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_roots(path) & set(FORBIDDEN))
        for path in (ROOT / "detector").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_detector_loads_no_messaging_module() -> None:
    code = (
        "import pkgutil, importlib, sys, detector\n"
        "for m in pkgutil.walk_packages(detector.__path__, 'detector.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


PROVENANCE_FORBIDDEN = ("consumer", "confluent_kafka", "torch", "torchvision", "detector")


def test_provenance_sources_import_neither_torch_nor_messaging() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_roots(path) & set(PROVENANCE_FORBIDDEN))
        for path in (ROOT / "provenance").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_provenance_loads_neither_torch_nor_messaging() -> None:
    code = (
        "import pkgutil, importlib, sys, provenance\n"
        "for m in pkgutil.walk_packages(provenance.__path__, 'provenance.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {PROVENANCE_FORBIDDEN!r}]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_the_kafka_package_imports_the_kafka_client() -> None:
    """``consumer/kafka/`` is the seam: no other consumer module imports ``confluent_kafka``
    (``TYPE_CHECKING`` imports included)."""
    kafka = ROOT / "consumer" / "kafka"
    offenders = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "consumer").rglob("*.py")
        if kafka not in path.parents and "confluent_kafka" in _imported_roots(path)
    )
    assert offenders == []

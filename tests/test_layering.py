"""Layering: the detector never imports messaging, provenance never imports torch, no import
cycles and no imports going up inside a package."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

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


PACKAGES = ("detector", "consumer", "schemas", "provenance")


def _modules() -> dict[str, Path]:
    """``dotted name -> file`` of every module of our packages (a package is its __init__)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _targets(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Our modules that ``name`` imports, wherever the import stands (functions included) and
    through ``importlib.import_module("...")``; ``if TYPE_CHECKING:`` blocks do not count."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    wanted: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Import):
            wanted.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            wanted.extend(f"{base}.{a.name}" for a in node.names)
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func).endswith("import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            wanted.append(str(node.args[0].value))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    found: set[str] = set()
    for target in wanted:  # "a.b.c" -> the longest prefix that is one of our modules
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


def _import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _targets(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_no_import_cycles() -> None:
    """No two modules import each other, directly or around a loop, even lazily."""
    assert _cycles(_import_graph()) == []


def test_the_cycle_finder_sees_a_loop() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_imports_going_up_inside_a_package() -> None:
    """A module never imports a package it belongs to (``from detector import X`` inside
    ``detector/``): the package's front door re-exports for users, and importing it from inside
    pulls in the whole package (and is how cycles start)."""
    up = sorted(
        f"{name} -> {target}"
        for name, targets in _import_graph().items()
        for target in targets
        if name.startswith(target + ".")
    )
    assert up == []


def _public_names(module: ModuleType) -> dict[str, object]:
    """A package: every name it holds (listed or not); a module: its ``__all__``."""
    if hasattr(module, "__path__") or not hasattr(module, "__all__"):
        names = [n for n in vars(module) if not n.startswith("_")]
    else:
        names = list(module.__all__)
    return {name: getattr(module, name) for name in names}


def test_the_kafka_seam_hands_out_none_of_the_clients_objects() -> None:
    """Names, not only imports: nothing in ``consumer.kafka`` or public in its modules (their
    ``__all__``) is an object of ``confluent_kafka`` (a re-export would let any module reach
    the client's types without importing it)."""
    import consumer.kafka

    modules = [consumer.kafka] + [
        importlib.import_module(m.name)
        for m in pkgutil.iter_modules(consumer.kafka.__path__, "consumer.kafka.")
    ]
    offenders = sorted(
        f"{module.__name__}.{name}"
        for module in modules
        for name, value in _public_names(module).items()
        if str(getattr(value, "__module__", "") or "").startswith("confluent_kafka")
    )
    assert offenders == []


def _defined_in(module: str, name: str, modules: dict[str, Path]) -> str:
    """The module that defines ``name`` reached as ``module.name``, following re-exports
    (``from x import name``) through our modules; a foreign module ends the walk."""
    path = modules.get(module)
    if path is None:
        return module
    if f"{module}.{name}" in modules:  # a submodule
        return f"{module}.{name}"
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return _defined_in(node.module, alias.name, modules)
    return module


def test_modules_outside_the_seam_import_only_its_own_names() -> None:
    """Every ``from consumer.kafka... import X`` outside ``consumer/kafka/`` gets an X that a
    module of ``consumer/kafka/`` defines (ours, not the client library's)."""
    modules = _modules()
    kafka = ROOT / "consumer" / "kafka"
    offenders = []
    for path in (ROOT / "consumer").rglob("*.py"):
        if kafka in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                continue
            if node.module.split(".")[:2] != ["consumer", "kafka"]:
                continue
            for alias in node.names:
                owner = _defined_in(node.module, alias.name, modules)
                if not owner.startswith("consumer.kafka"):
                    offenders.append(f"{path.relative_to(ROOT)}: {alias.name} from {owner}")
    assert offenders == []


def test_the_name_check_sees_a_re_export(tmp_path: Path) -> None:
    """What the seam had before issue 21: ``from confluent_kafka import KafkaError`` in
    ``consumer/kafka/__init__.py``, imported from there by a service module."""
    init = tmp_path / "init.py"
    init.write_text("from confluent_kafka import KafkaError\nfrom consumer.kafka.types import X\n")
    modules = {"consumer.kafka": init, "consumer.kafka.types": ROOT / "consumer/kafka/types.py"}
    assert _defined_in("consumer.kafka", "KafkaError", modules) == "confluent_kafka"
    assert _defined_in("consumer.kafka", "X", modules) == "consumer.kafka.types"


def test_replay_makes_its_clients_through_the_backend() -> None:
    """Replay gets its readers and producer from a :class:`~consumer.kafka.backend.Backend`,
    like the service: no replay module builds a client itself."""
    graph = _import_graph()
    direct = sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        if name.startswith("consumer.replay")
        for target in targets
        if target == "consumer.kafka.kafka_clients"
    )
    assert direct == []

"""The moved settings keys are spelled the current way everywhere but in their one test.

``batching.max_batch_size`` is now ``model.max_batch_size`` and ``decode.*`` is now
``model.limits.*``; the old spellings still work with a deprecation line. A grep of tests,
scripts, the chart, the docs and the README: an old spelling is allowed only inside the one
test that exercises it, and in docs lines that name it as deprecated.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

from detector import ImageLimits

ROOT = Path(__file__).resolve().parents[1]
ROOTS = ("tests", "scripts", "helm", "docs", "README.md")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".json", ".txt", ".tpl", ".sh", ".toml"}
DEPRECATION_TEST = ("tests/consumer/test_consumer_settings.py", "test_moved_keys_still_work")
"""The one test of the old spellings (file, name prefix)."""

_LIMITS = "|".join(f.name for f in dataclasses.fields(ImageLimits))
OLD_SPELLINGS = re.compile(
    r"batching\.max_batch_size"  # a dotted key: --set, a log line
    r"|SYNTHSCAN_BATCHING__MAX_BATCH_SIZE|SYNTHSCAN_DECODE__"  # environment variables
    r"|batching[\"']?\s*[:=,]\s*\{[^}]*max_batch_size"  # a batching={...} or "batching": {...}
    rf"|\bdecode\.(?:\*|(?:{_LIMITS})\b)"  # decode.max_side, decode.*
    r"|\bdecode[\"']?\s*[:=]\s*(?:\{|[A-Z_]+\b)",  # decode={...}, decode=LIMITS, "decode": {
)


def _files() -> list[Path]:
    paths: list[Path] = []
    for name in ROOTS:
        root = ROOT / name
        paths += [root] if root.is_file() else sorted(root.rglob("*"))
    me = Path(__file__).resolve()
    return [p for p in paths if p.is_file() and p.suffix in SUFFIXES and p.resolve() != me]


def _hits() -> list[tuple[str, int, str]]:
    found = []
    for path in _files():
        text = path.read_text(errors="replace")
        for match in OLD_SPELLINGS.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            whole = text.splitlines()[line - 1]
            found.append((str(path.relative_to(ROOT)), line, whole.strip()))
    return found


def _deprecation_test_lines() -> range:
    path, prefix = DEPRECATION_TEST
    tree = ast.parse((ROOT / path).read_text())
    (func,) = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith(prefix)
    ]
    return range(func.lineno, (func.end_lineno or func.lineno) + 1)


def _allowed(path: str, line: int, text: str) -> bool:
    if path == DEPRECATION_TEST[0]:
        return line in _deprecation_test_lines()
    return path.endswith(".md") and "deprecat" in text.lower()


def test_old_settings_keys_appear_only_in_their_one_test() -> None:
    stray = [f"{p}:{n}: {t}" for p, n, t in _hits() if not _allowed(p, n, t)]
    assert not stray, "use model.max_batch_size / model.limits.*:\n" + "\n".join(stray)


def test_the_grep_sees_the_old_keys_in_the_deprecation_test() -> None:
    """The patterns are live: each kind of old spelling is found where it is meant to be."""
    lines = _deprecation_test_lines()
    mine = [t for p, n, t in _hits() if p == DEPRECATION_TEST[0] and n in lines]
    for needle in ("SYNTHSCAN_BATCHING__MAX_BATCH_SIZE", "SYNTHSCAN_DECODE__", "decode.min_side"):
        assert any(needle in t for t in mine), needle
    snippets = ('batching={"max_batch_size": 1}', "settings(c, decode=LIMITS)", '"decode": {')
    assert all(OLD_SPELLINGS.search(s) for s in snippets)
    fine = ('model={"max_batch_size": 1}', "x.decode()", '{"op": "decode"}', '{"decode": k}')
    assert not any(OLD_SPELLINGS.search(s) for s in fine)

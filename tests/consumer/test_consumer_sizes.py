"""The consumer stays readable: no module over 400 lines, no function over 60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

CONSUMER = Path(__file__).resolve().parents[2] / "consumer"


def test_modules_and_functions_stay_small() -> None:
    too_long = []
    for path in sorted(CONSUMER.rglob("*.py")):
        text = path.read_text()
        name = str(path.relative_to(CONSUMER.parent))
        if text.count("\n") > 400:
            too_long.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > 60:
                    too_long.append(f"{name}:{node.lineno} {node.name}(): {lines} lines")
    assert too_long == []

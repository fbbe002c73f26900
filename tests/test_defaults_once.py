"""Each knob has one default, declared once: the code's other layers take it from there.

A grep of literal defaults in the shipped packages: a second ``max_batch_size = 16`` (or a
``max_batch=32`` keyword default, or an argparse ``default=16``) elsewhere is the bug this
guards against (issue 21: four defaults for one batch size, three for the uncertain margin).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("detector", "consumer", "provenance", "schemas")

ONCE = {
    # a batch size given a number: a field, a keyword default, a Field(default=...), argparse
    "max batch size": (
        r"\b(max_batch(_size)?|max_size)\b\s*(:[^=\n]*)?=\s*(Field\(\s*default\s*=\s*)?"
        r"\d+(?![\d\"'])",
        "detector/options.py",
    ),
    "uncertain margin": (
        r"\buncertain[_-]margin\"?\s*(:[^=\n]*)?[=,][^\n]*\b0?\.\d"
        r"|uncertain_margin\s*:[^\n]*default\s*=",
        "provenance/decision.py",
    ),
    "runtime choices": (r"[\"']onnxruntime[\"'],\s*[\"']eager[\"']", "detector/options.py"),
    "shipped checkpoint": (r"glff-forensic-mobilenet_v2\.safetensors", "detector/checkpoint.py"),
    # the fields of the library classes reused as settings sections, declared in the library
    "provenance fields": (
        r"^\s+(max_text_bytes|watermark_max_pixels)\s*:",
        "provenance/extract.py",
    ),
    "decision fields": (r"^\s+(verified_ai_overrides|uncertain_low)\s*:", "provenance/decision.py"),
    "engine fields": (
        r"^\s+(checkpoint_sha256|max_padded_pixels|precision|runtime)\s*:\s*[\w\[\]|\" ,]+=",
        "detector/options.py",
    ),
}
SCOPE = {"engine fields": ("consumer", "detector/options.py")}
"""Where a knob's copies would be (training has its own precision, for instance)."""


def _hits(pattern: str, roots: tuple[str, ...] = PACKAGES) -> list[str]:
    regex = re.compile(pattern, re.MULTILINE)
    found = []
    for root in roots:
        paths = [ROOT / root] if root.endswith(".py") else sorted((ROOT / root).rglob("*.py"))
        for path in paths:
            text = path.read_text()
            for match in regex.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(ROOT)}:{line}")
    return found


@pytest.mark.parametrize("knob", sorted(ONCE))
def test_a_default_is_declared_in_one_place(knob: str) -> None:
    pattern, home = ONCE[knob]
    hits = _hits(pattern, SCOPE.get(knob, PACKAGES))
    assert {hit.split(":")[0] for hit in hits} == {home}, hits
    if not knob.endswith("fields"):  # the field patterns match a few fields each
        assert len(hits) == 1, hits


def test_the_predict_command_takes_its_defaults_from_the_engine_and_the_policy() -> None:
    from detector.cli import _Signals, build_parser
    from detector.options import EngineOptions
    from provenance import DecisionPolicy

    args = build_parser().parse_args(["predict", "a.jpg", "--checkpoint", "c", "--no-provenance"])
    engine = EngineOptions()
    assert (args.batch_size, args.device) == (engine.max_batch_size, engine.device)
    assert (args.precision, args.runtime) == (engine.precision, engine.runtime)
    assert _Signals(args).policy == DecisionPolicy()


def test_the_patterns_see_a_copy() -> None:
    """The greps find what they guard against (else every test above passes vacuously)."""
    copies = {
        "max batch size": [
            "    max_batch_size: int = Field(default=16, ge=1)",
            "        max_batch: int = 32,",
            "        max_batch: int = 1,",
        ],
        "uncertain margin": [
            "    uncertain_margin: float = Field(default=0.1, gt=0.0)",
            '        "--uncertain-margin", type=float, default=0.1,',
        ],
        "runtime choices": ['    runtime: Literal["auto", "torch", "onnxruntime", "eager"]'],
        "engine fields": ['    precision: Literal["auto", "fp32"] = "auto"'],
        "decision fields": ["    verified_ai_overrides: bool = True"],
    }
    for knob, lines in copies.items():
        regex = re.compile(ONCE[knob][0], re.MULTILINE)
        for line in lines:
            assert regex.search(line), (knob, line)

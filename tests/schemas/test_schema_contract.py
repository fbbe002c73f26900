"""The committed JSON Schema: in sync with the models, deterministic, and backward compatible."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from schemas import Verdict
from schemas.__main__ import main
from schemas.compat import breaking_changes
from schemas.export import BASELINE_DIR, MODELS, SCHEMA_DIR, drift, generate, incompatibilities


def test_committed_schemas_match_the_models() -> None:
    assert drift(SCHEMA_DIR) == [], "run `python -m schemas export` and commit schemas/json"


def test_current_models_are_compatible_with_the_baseline() -> None:
    assert sorted(p.name for p in BASELINE_DIR.glob("*.schema.json")) == sorted(generate())
    assert incompatibilities(BASELINE_DIR) == []


def test_export_is_deterministic_and_complete(tmp_path: Path) -> None:
    assert generate() == generate()
    assert main(["export", "--dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.schema.json" for n in MODELS)
    schema = json.loads((tmp_path / "verdict.schema.json").read_text())
    assert schema["$id"] == "urn:synthscan:schemas:verdict"
    assert "schema_version" in schema["properties"]
    for name in MODELS:  # every wire model is versioned (the envelope through its data)
        text = (tmp_path / f"{name}.schema.json").read_text()
        assert '"schema_version"' in text


def test_check_detects_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["export", "--dir", str(tmp_path)])
    assert main(["export", "--check", "--dir", str(tmp_path)]) == 0
    path = tmp_path / "verdict.schema.json"
    path.write_text(path.read_text().replace('"score"', '"scoore"'))
    (tmp_path / "old.schema.json").write_text("{}")
    (tmp_path / "image-data.schema.json").unlink()
    assert main(["export", "--check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "verdict.schema.json: differs" in err
    assert "image-data.schema.json: missing" in err
    assert "old.schema.json: no longer generated" in err


def test_compat_cli_fails_on_a_breaking_baseline(tmp_path: Path) -> None:
    main(["export", "--dir", str(tmp_path)])
    assert main(["compat", "--baseline", str(tmp_path)]) == 0
    path = tmp_path / "verdict.schema.json"
    schema = json.loads(path.read_text())
    schema["properties"]["retired_field"] = {"type": "string"}
    path.write_text(json.dumps(schema))
    (tmp_path / "gone.schema.json").write_text("{}")
    assert main(["compat", "--baseline", str(tmp_path)]) == 1
    assert incompatibilities(tmp_path) == [
        "gone.schema.json: schema removed",
        "verdict.schema.json: $.retired_field: property removed",
    ]


def test_module_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "schemas", "export", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# --- the compatibility checker on small model pairs ---------------------------------------


class Inner(BaseModel):
    kind: Literal["a", "b"]
    n: int = 0


class Base(BaseModel):
    name: str = Field(max_length=10)
    count: int
    ratio: float = 0.5
    note: str | None = None
    inner: Inner | None = None
    tags: list[str] = []


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def _changes(new: type[BaseModel]) -> list[str]:
    return breaking_changes(_schema(Base), _schema(new))


def test_identical_and_additive_changes_are_compatible() -> None:
    class Added(Base):
        extra: str | None = None  # new optional property

    class InnerWider(BaseModel):
        kind: Literal["a", "b", "c"]  # enum value added
        n: float = 0  # integer -> number widens

    class Widened(Base):
        count: int | None = None  # type: ignore[assignment]  # now optional, nullable
        name: str = Field(max_length=20)  # bound relaxed
        inner: InnerWider | None = None  # type: ignore[assignment]

    assert _changes(Base) == []
    assert _changes(Added) == []
    assert _changes(Widened) == []


def test_removed_and_renamed_properties() -> None:
    class Renamed(BaseModel):
        title: str = Field(max_length=10)  # was `name`
        count: int
        ratio: float = 0.5
        note: str | None = None
        inner: Inner | None = None
        tags: list[str] = []

    assert _changes(Renamed) == ["$.name: property removed", "$.title: newly required"]


def test_type_changes() -> None:
    class Retyped(Base):
        count: str  # type: ignore[assignment]
        ratio: int = 1  # number -> integer narrows
        tags: list[int] = []  # type: ignore[assignment]

    assert _changes(Retyped) == [
        "$.count: type changed from ['integer'] to ['string']",
        "$.ratio: type changed from ['number'] to ['integer']",
        "$.tags[]: type changed from ['string'] to ['integer']",
    ]


def test_newly_required_and_tightened() -> None:
    class Stricter(Base):
        note: str  # optional -> required, no longer null
        added: int  # new required property
        name: str = Field(max_length=5, pattern="^[a-z]+$")

    assert _changes(Stricter) == [
        "$.name: maxLength lowered to 5",
        "$.name: pattern changed to '^[a-z]+$'",
        "$.note: type changed from ['null', 'string'] to ['string']",
        "$.added: newly required",
        "$.note: newly required",
    ]


def test_nested_enum_value_removed() -> None:
    class InnerNarrow(BaseModel):
        kind: Literal["a"]
        n: int = 0

    class Narrow(Base):
        inner: InnerNarrow | None = None  # type: ignore[assignment]

    assert _changes(Narrow) == ["$.inner.kind: enum values removed [\"'b'\"]"]


def test_a_breaking_edit_of_the_real_verdict_is_caught() -> None:
    class VerdictWithRequiredField(Verdict):
        reviewer: str

    class VerdictOneLabel(Verdict):
        label: Literal["synthetic"]

    baseline = json.loads((BASELINE_DIR / "verdict.schema.json").read_text())
    assert breaking_changes(baseline, _schema(VerdictWithRequiredField)) == [
        "$.reviewer: newly required"
    ]
    assert breaking_changes(baseline, _schema(VerdictOneLabel)) == [
        "$.label: enum values removed [\"'real'\"]"
    ]

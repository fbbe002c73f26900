"""The README tells the truth: its two set-up commands, every setting, every metric."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pydantic import BaseModel

from consumer.pipeline.steps.enrich import ProvenanceMetrics
from consumer.serving.metrics import Metrics, VerdictCacheMetrics
from consumer.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_the_two_commands_are_in_the_readme_and_ci_runs_the_test_one() -> None:
    assert "make demo" in README
    assert "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _keys(model: type) -> list[str]:
    """A section's env keys; a dataclass field that is a dataclass (model.limits) nests."""
    if not dataclasses.is_dataclass(model):  # a pydantic section
        assert issubclass(model, BaseModel)
        return list(model.model_fields)
    keys = []
    for f in dataclasses.fields(model):  # a library type reused as is (model: EngineOptions)
        nested = f.type if isinstance(f.type, type) else None
        if nested is None and f.default_factory is not dataclasses.MISSING:
            nested = type(f.default_factory())
        if nested is not None and dataclasses.is_dataclass(nested):
            keys += [f"{f.name}__{key}" for key in _keys(nested)]
        else:
            keys.append(f.name)
    return keys


def test_every_setting_is_documented() -> None:
    env_vars = []
    for section, field in ServiceSettings.model_fields.items():
        if field.exclude:  # a deprecated spelling, moved elsewhere (decode -> model.limits)
            continue
        model = field.annotation
        assert isinstance(model, type)
        env_vars += [f"SYNTHSCAN_{section.upper()}__{key.upper()}" for key in _keys(model)]
    missing = [name for name in env_vars if f"`{name}`" not in README]
    assert missing == []


def test_every_metric_is_documented() -> None:
    registry = Metrics().registry
    VerdictCacheMetrics(registry)
    ProvenanceMetrics(registry)
    names = {family.name for family in registry.collect()}
    missing = sorted(name for name in names if name not in README)
    assert missing == []

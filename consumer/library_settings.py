"""Settings sections that are library types, as they are: each default is declared once, in
its library; the service adds the bounds it checks and, for ``model``, what only it needs.

- ``model``: :class:`ModelSettings`, the engine's :class:`~detector.options.EngineOptions`
  plus the checkpoint, warm-up, threads, adapters folder and reload poll.
- ``provenance``: :class:`provenance.ProvenanceConfig`.
- ``decision``: :class:`provenance.DecisionPolicy`.

Keys that moved keep working with a log line (:func:`moved_keys`): ``batching.max_batch_size``
(now ``model.max_batch_size``) and ``decode.*`` (now ``model.limits.*``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from detector.checkpoint import DEFAULT_CHECKPOINT
from detector.decode import ImageLimits
from detector.options import EngineOptions
from provenance import DecisionPolicy, ProvenanceConfig

__all__ = [
    "MAX_BATCH_SIZE_CAP",
    "DecisionSettings",
    "ModelSection",
    "ModelSettings",
    "ProvenanceSettings",
    "moved_keys",
    "split_list",
]

log = logging.getLogger("consumer.settings")
MAX_BATCH_SIZE_CAP = 1024


def split_list(value: Any) -> Any:
    """Accept a JSON list or a comma-separated string for list settings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class ModelSettings(EngineOptions):
    """The resident detector: the engine's options and what only the service needs."""

    checkpoint: Path = DEFAULT_CHECKPOINT
    warmup: bool = True
    torch_threads: Annotated[int | None, Field(ge=1)] = None
    adapters_dir: Path | None = None
    reload_poll_s: Annotated[float, Field(ge=0.0)] = 2.0


def _refuse_unknown(section: str, cls: type, value: Any) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - names) if isinstance(value, dict) else []
    if unknown:
        raise ValueError(f"unknown {section} setting(s): {', '.join(unknown)}")
    return value


def _known(section: str, cls: type) -> BeforeValidator:
    """A before-validator refusing keys that are not fields of the dataclass ``cls``."""
    return BeforeValidator(lambda value: _refuse_unknown(section, cls, value))


def _limits_input(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get("limits"), dict):
        limits = value["limits"]
        _refuse_unknown("model.limits", ImageLimits, limits)
        if "formats" in limits:  # env: a JSON list or comma-separated names
            limits = {**limits, "formats": split_list(limits["formats"])}
        return {**value, "limits": limits}
    return value


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _model_bounds(model: ModelSettings) -> ModelSettings:
    _require(
        model.max_batch_size <= MAX_BATCH_SIZE_CAP,
        f"model.max_batch_size must be at most {MAX_BATCH_SIZE_CAP}",
    )
    limits = model.limits
    sizes = (limits.max_bytes, limits.max_pixels, limits.max_side, limits.min_side)
    _require(min(sizes) >= 1, "model.limits must be at least 1")
    return model


ModelSection = Annotated[
    ModelSettings,
    _known("model", ModelSettings),
    BeforeValidator(_limits_input),
    AfterValidator(_model_bounds),
]
"""The resident detector (``model.*``): :class:`ModelSettings`, checked."""


def _provenance_bounds(config: ProvenanceConfig) -> ProvenanceConfig:
    _require(config.max_bytes >= 0, "provenance.max_bytes must be at least 0")
    _require(config.max_text_bytes >= 1024, "provenance.max_text_bytes must be at least 1024")
    _require(config.timeout_s > 0, "provenance.timeout_s must be above 0")
    _require(config.workers >= 1, "provenance.workers must be at least 1")
    _require(config.watermark_max_pixels >= 1, "provenance.watermark_max_pixels must be >= 1")
    return config


ProvenanceSettings = Annotated[
    ProvenanceConfig, _known("provenance", ProvenanceConfig), AfterValidator(_provenance_bounds)
]
"""Provenance extraction (C2PA, IPTC/XMP, PNG text, EXIF, watermark) and the PDQ hash:
:class:`provenance.ProvenanceConfig` itself, checked."""


def _decision_bounds(policy: DecisionPolicy) -> DecisionPolicy:
    _require(0 < policy.uncertain_margin <= 0.5, "decision.uncertain_margin must be in (0, 0.5]")
    low, high = policy.uncertain_low, policy.uncertain_high
    for name, edge in (("uncertain_low", low), ("uncertain_high", high)):
        _require(edge is None or 0 < edge < 1, f"decision.{name} must be in (0, 1)")
    _require(
        low is None or high is None or low < high,
        "decision.uncertain_low must be below decision.uncertain_high, or nothing is 'uncertain'",
    )
    return policy


DecisionSettings = Annotated[
    DecisionPolicy, _known("decision", DecisionPolicy), AfterValidator(_decision_bounds)
]
"""The moderator's decision: :class:`provenance.DecisionPolicy` itself, checked.

The edges default to the checkpoint's calibrated ``decision_band``; ``uncertain_low`` /
``uncertain_high`` override each; ``uncertain_margin`` is the fallback band's half-width for
checkpoints without one. An edge at 0 or 1 (or low >= high) would make an outcome unreachable
and is refused here; the band with the model's threshold and stored edges is checked again
when the service or a replay starts (``provenance.DecisionPolicy.check``).
"""


def _fields(value: Any) -> dict[str, Any]:
    """A section given as a dataclass instance or a dict, as a dict."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return dict(value) if isinstance(value, dict) else {}


def moved_keys(data: Any) -> Any:
    """Settings input with ``batching.max_batch_size`` and ``decode.*`` moved to ``model``
    (a warning each); a ``model`` value given too is replaced, key by key."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    model = _fields(data.get("model"))
    batching = data.get("batching")
    moved = False
    if isinstance(batching, dict) and "max_batch_size" in batching:
        data["batching"] = {k: v for k, v in batching.items() if k != "max_batch_size"}
        model["max_batch_size"] = batching["max_batch_size"]
        moved = _deprecated("batching.max_batch_size", "model.max_batch_size")
    decode = data.pop("decode", None)
    if decode is not None:
        model["limits"] = {**_fields(model.get("limits")), **_fields(decode)}
        moved = _deprecated("decode.*", "model.limits.*")
    if moved:
        data["model"] = model
    return data


def _deprecated(old: str, new: str) -> bool:
    log.warning("setting %s is deprecated: use %s (same meaning)", old, new)
    return True

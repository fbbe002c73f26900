"""What the service and replay build the same way, so an audit replay decides like the service.

- :func:`load_checked_detector`: the checkpoint (optionally a replay's candidate) and its
  adapters, loaded and warmed, refused when its sha256 does not match
  ``model.checkpoint_sha256`` (:func:`consumer.serving.model_reload.load_detector`).
- :func:`decision_policy`: ``settings.decision`` (a :class:`~provenance.DecisionPolicy`),
  refused when, with the model's threshold and calibrated band, an outcome is unreachable.
- :func:`record_factory`: the :class:`~consumer.output.records.RecordFactory` with that policy and
the
  model's band.

Both raise :class:`~consumer.errors.ConfigurationError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from consumer.errors import ConfigurationError
from consumer.kafka.config import instance_id, max_record_bytes
from consumer.output.records import RecordFactory, model_stamp
from consumer.serving.model_reload import load_detector
from provenance import DecisionPolicy

if TYPE_CHECKING:
    from consumer.settings import ServiceSettings
    from detector import Detector, ModelInfo

__all__ = ["decision_policy", "load_checked_detector", "record_factory"]


def load_checked_detector(
    settings: ServiceSettings,
    *,
    checkpoint: Path | None = None,
    adapters: Sequence[Path] | None = None,
) -> Detector:
    """The detector the settings name (``checkpoint``/``adapters`` replace theirs), sha-checked
    against ``model.checkpoint_sha256`` whichever checkpoint is loaded, warm."""
    model = settings.model
    if checkpoint is not None:
        model = dataclasses.replace(model, checkpoint=Path(checkpoint))
    return load_detector(model, adapters=adapters)


def decision_policy(settings: ServiceSettings, info: ModelInfo) -> DecisionPolicy:
    """``settings.decision`` for the model ``info``; refuses an unreachable outcome."""
    policy = settings.decision
    try:
        policy.check(info.threshold, getattr(info, "decision_band", None))
    except ValueError as exc:
        raise ConfigurationError(
            f"decision settings refused with model {info.name} (threshold "
            f"{info.threshold:.4f}): {exc}"
        ) from exc
    return policy


def record_factory(
    settings: ServiceSettings,
    info: ModelInfo,
    *,
    verdict_topic: str | None = None,
    dead_letter_topic: str | None = None,
    group: str | None = None,
    instance: str | None = None,
    latest_topic: str | None = None,
) -> RecordFactory:
    """The records of the model ``info`` with the service's decision policy; topics and the
    consumer identity default to the service's (``kafka.*``), replay passes its own."""
    kafka = settings.kafka
    return RecordFactory(
        model_stamp(info),
        verdict_topic or kafka.verdict_topic,
        dead_letter_topic or kafka.dead_letter_topic,
        group or kafka.group_id,
        instance or instance_id(kafka),
        latest_topic,
        decision_policy(settings, info),
        max_record_bytes=max_record_bytes(kafka),
        band=getattr(info, "decision_band", None),
    )

"""Wire records from pipeline outcomes: verdicts, dead letters, latest-verdict entries."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from consumer.errors import VerdictBuildFailed
from consumer.items import Envelope, Failure, Outcome, OutRecord, WorkItem
from consumer.output.verdict_fields import cache_match_of, verdict_fields
from provenance import DecisionPolicy
from schemas import (
    AdapterStamp,
    Attribution,
    GeneratorScore,
    ImageInfo,
    ModelStamp,
    Patch,
    ReplayInfo,
    SourceCoordinates,
    Timings,
    Verdict,
    build_dead_letter,
    encode_dead_letter,
    encode_verdict,
)

if TYPE_CHECKING:
    from detector import ModelInfo, Prediction

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "RecordBuilder",
    "RecordFactory",
    "model_stamp",
    "output_record",
    "record_size",
]

log = structlog.get_logger("consumer.output.records")

DEFAULT_MAX_RECORD_BYTES = 1_000_000
"""librdkafka's default ``message.max.bytes``."""
_RECORD_OVERHEAD = 1024
"""Room kept for the record framing librdkafka adds to key + value + headers."""


def record_size(
    key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]]
) -> int:
    """Bytes of a record as the producer's size check sees them, plus a safety margin."""
    size = len(key or b"") + len(value or b"") + _RECORD_OVERHEAD
    return size + sum(len(k.encode()) + len(v or b"") for k, v in headers)


class RecordBuilder(Protocol):
    """Turns outcomes into wire records (:class:`RecordFactory`)."""

    def verdict(self, item: WorkItem) -> OutRecord: ...

    def dead_letter(self, failure: Failure, *, minimal: bool = False) -> OutRecord: ...

    def latest(self, item: WorkItem, verdict: OutRecord) -> OutRecord | None: ...


def output_record(builder: RecordBuilder, item: Outcome) -> tuple[Outcome, OutRecord]:
    """The record to write for ``item``: its verdict, or its dead letter.

    A verdict that cannot be built (a bug, never the input's fault) becomes an
    ``internal_error`` dead letter; the returned outcome is then that :class:`Failure`.
    """
    if isinstance(item, WorkItem):
        try:
            return item, builder.verdict(item)
        except Exception as exc:
            log.exception("verdict_build_failed", event_id=item.event_id)
            item = Failure.of(item.envelope, VerdictBuildFailed(repr(exc)), event=item.event)
    return item, builder.dead_letter(item)


def model_stamp(info: ModelInfo) -> ModelStamp:
    """The reproducibility stamp of a verdict from the detector's :class:`ModelInfo`."""
    return ModelStamp(
        name=info.name,
        version=info.version,
        weights_sha256=info.weights_sha256,
        threshold=info.threshold,
        preprocessing_version=info.preprocessing_version,
        torch_version=info.torch_version,
        torchvision_version=info.torchvision_version,
        device=info.device,
        precision=info.precision,
        arch=info.arch,
        backbone=info.backbone,
        patch_strategy=info.patch_strategy,
        adapters=[
            AdapterStamp(
                generator=a.generator, sha256=a.sha256, method=a.method, threshold=a.threshold
            )
            for a in info.adapters
        ]
        or None,
    )


def _attribution(pred: Prediction) -> Attribution | None:
    att = pred.attribution
    if att is None:
        return None
    return Attribution(
        generator=att.generator,
        scores=[
            GeneratorScore(
                generator=s.generator,
                score=s.score,
                threshold=s.threshold,
                is_synthetic=s.is_synthetic,
                adapter_sha256=s.adapter_sha256 or None,
            )
            for s in att.scores
        ],
    )


def _source(env: Envelope) -> SourceCoordinates:
    return SourceCoordinates(
        topic=env.topic, partition=env.partition, offset=env.offset, timestamp_ms=env.timestamp_ms
    )


class RecordFactory:
    """Implements :class:`consumer.pipeline.steps.produce.RecordBuilder` for the wire schemas."""

    def __init__(
        self,
        stamp: ModelStamp,
        verdict_topic: str,
        dead_letter_topic: str,
        consumer_group: str,
        consumer_instance: str,
        latest_verdict_topic: str | None = None,
        policy: DecisionPolicy | None = None,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        band: tuple[float, float] | None = None,
    ) -> None:
        self._stamp = stamp
        self._policy = policy or DecisionPolicy()
        self._band = band  # the checkpoint's calibrated edges, for predictions without info
        self._stamps: dict[int, tuple[ModelInfo, ModelStamp]] = {}
        self._verdict_topic = verdict_topic
        self._dead_letter_topic = dead_letter_topic
        self._group = consumer_group
        self._instance = consumer_instance
        self._latest_topic = latest_verdict_topic
        self.max_record_bytes = max_record_bytes
        self._replay: ReplayInfo | None = None

    def with_replay(self, replay: ReplayInfo) -> RecordFactory:
        """A copy whose verdicts are stamped as made by the replay ``replay``."""
        stamped = copy.copy(self)
        stamped._replay = replay
        return stamped

    def _stamp_of(self, pred: Prediction) -> ModelStamp:
        """The stamp of the model that made ``pred`` (it changes across a hot reload)."""
        info = pred.model_info
        if info is None:
            return self._stamp
        cached = self._stamps.get(id(info))
        if cached is None or cached[0] is not info:
            cached = (info, model_stamp(info))
            self._stamps = {id(info): cached}  # keep the latest only
        return cached[1]

    def verdict(self, item: WorkItem) -> OutRecord:
        pred, image, env = item.prediction, item.image, item.envelope
        if pred is None or image is None:
            raise ValueError("verdict of an item without prediction or image")
        data = item.event.event.data
        queue_ms = 0.0
        if env.timestamp_ms is not None:
            queue_ms = max(0.0, env.received_at * 1000.0 - env.timestamp_ms)
        verdict = Verdict(
            verdict_id=str(uuid.uuid4()),
            event_id=item.event_id,
            content_id=item.event.content_id,
            tenant=data.tenant,
            platform=data.platform,
            label=pred.label,
            score=pred.score,
            threshold=pred.threshold,
            patches=[
                Patch.model_validate(
                    {
                        "rank": p.rank,
                        "box": p.box,
                        "window": p.window,
                        "activation": p.activation,
                        "attention": p.attention,
                    }
                )
                for p in pred.patches
            ],
            global_attention=pred.global_attention,
            image=ImageInfo(
                sha256=image.sha256,
                width=image.width,
                height=image.height,
                format=image.format or "unknown",
                size_bytes=item.image_size,
            ),
            model=self._stamp_of(pred),
            source=_source(env),
            timings=Timings(
                queue_ms=queue_ms,
                fetch_ms=item.timings.fetch_ms,
                decode_ms=item.timings.decode_ms,
                inference_ms=item.timings.inference_ms,
                batch_size=item.timings.batch_size,
            ),
            produced_at=datetime.now(UTC),
            cached=getattr(pred, "cached", False),
            attribution=_attribution(pred),
            metadata=data.metadata,
            replay=self._replay,
            **self._decision_fields(pred, item),
        )
        key, value, headers = encode_verdict(verdict)
        return OutRecord(self._verdict_topic, key, value, tuple(headers))

    def _decision_fields(self, pred: Prediction, item: WorkItem) -> dict[str, Any]:
        """Decision, reasons, provenance, PDQ and cache match; the band of the model that
        made ``pred`` (it changes across a hot reload)."""
        band = self._band if pred.model_info is None else pred.model_info.decision_band
        match = cache_match_of(pred)
        return verdict_fields(
            pred.score, pred.threshold, item.provenance, self._policy, match, band
        )

    def latest(self, item: WorkItem, verdict: OutRecord) -> OutRecord | None:
        """The compacted latest-verdict copy (same record, keyed by image sha256)."""
        if self._latest_topic is None:
            return None
        return OutRecord(self._latest_topic, verdict.key, verdict.value, verdict.headers)

    def dead_letter(self, failure: Failure, *, minimal: bool = False) -> OutRecord:
        """The dead letter of ``failure``, shrunk until it fits ``max_record_bytes``.

        First the original value is truncated (its sha256 and size still describe the whole),
        then the headers and the key are left out; ``minimal`` starts with all of that.
        """
        env = failure.envelope
        cap: int | None = 0 if minimal else None
        keep_headers = keep_key = not minimal
        while True:
            dead = build_dead_letter(
                code=failure.code,
                message=failure.message,
                key=env.key,
                headers=list(env.headers),
                value=env.value,
                source=_source(env),
                consumer_group=self._group,
                consumer_instance=self._instance,
                attempts=failure.attempts,
                first_failure_at=datetime.fromtimestamp(failure.first_failure_at, UTC),
                last_failure_at=datetime.fromtimestamp(failure.last_failure_at, UTC),
                event_id=failure.event_id,
                content_id=None if failure.event is None else failure.event.content_id,
                truncate_value_to=cap,
                keep_headers=keep_headers,
                keep_key=keep_key,
            )
            key, value, headers = encode_dead_letter(dead)
            excess = record_size(key, value, headers) - self.max_record_bytes
            inline = dead.original.value
            if excess <= 0 or (cap == 0 and not keep_headers and not keep_key):
                return OutRecord(self._dead_letter_topic, key, value, tuple(headers))
            if inline:  # base64 in JSON: 4 characters per 3 bytes
                cap = max(0, len(inline) - (excess * 3 + 3) // 4 - 64)
            elif keep_headers:
                cap, keep_headers = 0, False
            else:
                cap, keep_key = 0, False

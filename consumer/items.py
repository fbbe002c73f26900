"""What flows between the steps: the source message, the work item, the failure, the receipt."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from consumer.errors import InvalidMessage, error_code, error_message
from consumer.kafka.headers import HeaderError, Headers, read_headers

if TYPE_CHECKING:
    from confluent_kafka import Message

    from detector import DecodedImage, Prediction
    from provenance import ProvenanceReport
    from schemas import ErrorCode, ParsedImageEvent

__all__ = ["Delivered", "Envelope", "Failure", "OutRecord", "Outcome", "Timings", "WorkItem"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """One consumed Kafka message, detached from librdkafka, plus its assignment epoch."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int | None
    epoch: int
    received_at: float = field(default_factory=time.time)
    header_error: str | None = None
    """Why the headers could not be read (then ``headers`` is empty): the message is poison."""

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    @classmethod
    def from_message(cls, msg: Message, epoch: int) -> Envelope:
        ts_type, ts = msg.timestamp()
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if topic is None or partition is None or offset is None:
            raise ValueError("not a consumed message (no topic, partition or offset)")
        headers, header_error = _read_headers(msg)
        return cls(
            topic=topic,
            partition=partition,
            offset=offset,
            key=_as_bytes(msg.key()),
            value=_as_bytes(msg.value()),
            headers=headers,
            timestamp_ms=ts if ts_type != 0 and ts >= 0 else None,
            epoch=epoch,
            header_error=header_error,
        )


def _read_headers(msg: Message) -> tuple[Headers, str | None]:
    """The headers, or none and the reason when the client cannot decode them (poison)."""
    try:
        return read_headers(msg), None
    except HeaderError as exc:
        return (), str(exc)


def _as_bytes(value: str | bytes | None) -> bytes | None:
    return value.encode("utf-8") if isinstance(value, str) else value


@dataclass(slots=True)
class Timings:
    """Milliseconds spent in each stage of one message."""

    fetch_ms: float = 0.0
    decode_ms: float = 0.0
    inference_ms: float = 0.0
    batch_size: int | None = None


@dataclass(slots=True)
class WorkItem:
    """A valid event on its way to a verdict; fields are filled in step by step."""

    envelope: Envelope
    event: ParsedImageEvent
    image_size: int | None = None
    image: DecodedImage | None = None
    prediction: Prediction | None = None
    provenance: ProvenanceReport | None = None
    timings: Timings = field(default_factory=Timings)

    @property
    def event_id(self) -> str:
        return self.event.event_id


@dataclass(slots=True)
class Failure:
    """A message that ends as a dead letter (poison input or an internal error)."""

    envelope: Envelope
    code: ErrorCode
    message: str
    attempts: int = 1
    first_failure_at: float = field(default_factory=time.time)
    last_failure_at: float = field(default_factory=time.time)
    event: ParsedImageEvent | None = None

    @property
    def event_id(self) -> str | None:
        return None if self.event is None else self.event.event_id

    @classmethod
    def of(
        cls,
        envelope: Envelope,
        exc: Exception,
        *,
        event: ParsedImageEvent | None = None,
        first_failure_at: float | None = None,
    ) -> Failure:
        """The dead letter of ``envelope`` failed by ``exc`` (code from :mod:`consumer.errors`)."""
        now = time.time()
        return cls(
            envelope,
            error_code(exc),
            error_message(exc),
            attempts=exc.attempts if isinstance(exc, InvalidMessage) else 1,
            first_failure_at=now if first_failure_at is None else first_failure_at,
            last_failure_at=now,
            event=event,
        )


Outcome = WorkItem | Failure


@dataclass(frozen=True, slots=True)
class Delivered:
    """Receipt: the output of ``envelope`` is confirmed written to Kafka."""

    envelope: Envelope
    produced_at: float


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to produce: a verdict or a dead letter."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

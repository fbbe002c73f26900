"""What flows between the steps: the source message, the work item, the failure, the receipt."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from consumer.errors import InvalidMessage, error_code, error_message

if TYPE_CHECKING:
    from consumer.kafka.headers import RecordHeaders
    from detector import DecodedImage, Prediction
    from provenance import ProvenanceReport
    from schemas import ErrorCode, ParsedImageEvent

__all__ = ["Delivered", "Envelope", "Failure", "OutRecord", "Outcome", "Timings", "WorkItem"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """One consumed Kafka message, detached from the client, plus its assignment epoch
    (:func:`consumer.kafka.messages.to_envelope` makes one)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: RecordHeaders
    timestamp_ms: int | None
    epoch: int
    received_at: float = field(default_factory=time.time)
    header_error: str | None = None
    """Why the headers could not be read (then ``headers`` is empty): the message is poison."""

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic, self.partition)


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
    """Receipt: the output of ``envelope`` is confirmed written."""

    envelope: Envelope
    produced_at: float
    dead_letter: bool = False
    """The output written is a dead letter (not a verdict)."""


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to produce: a verdict or a dead letter."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

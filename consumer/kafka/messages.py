"""A consumed message becomes an :class:`~consumer.items.Envelope`, detached from the client."""

from __future__ import annotations

from confluent_kafka import Message

from consumer.items import Envelope
from consumer.kafka.headers import HeaderError, Headers, read_headers

__all__ = ["to_envelope"]


def to_envelope(msg: Message, epoch: int) -> Envelope:
    """The envelope of a consumed message; unreadable headers make it poison, never a crash."""
    ts_type, ts = msg.timestamp()
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError("not a consumed message (no topic, partition or offset)")
    headers, header_error = _read_headers(msg)
    return Envelope(
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

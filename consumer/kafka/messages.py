"""A consumed record becomes an :class:`~consumer.items.Envelope` of the pipeline."""

from __future__ import annotations

from consumer.items import Envelope
from consumer.kafka.types import ConsumedRecord

__all__ = ["to_envelope"]


def to_envelope(record: ConsumedRecord, epoch: int) -> Envelope:
    """The envelope of a consumed record in assignment ``epoch``; unreadable headers make it
    poison (``header_error``), never a crash."""
    stamp = record.timestamp_ms
    return Envelope(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=record.headers,
        timestamp_ms=stamp if stamp is not None and stamp >= 0 else None,
        epoch=epoch,
        header_error=record.header_error,
    )

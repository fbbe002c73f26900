"""The boundary: ``confluent_kafka``'s objects become the seam's own types
(:mod:`consumer.kafka.types`) and back, in one place."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as ClientPartition

from consumer.kafka.headers import HeaderError, read_headers
from consumer.kafka.types import BrokerError, ConsumedRecord, PartitionOffset, RecordHeaders

__all__ = [
    "broker_error",
    "client_partitions",
    "consumed",
    "error_callback",
    "partition_offsets",
    "translated",
]


def broker_error(error: KafkaError, msg: Message | None = None) -> BrokerError:
    """Our error for the client's ``error`` (where: ``msg``'s topic, partition and offset)."""
    return BrokerError(
        error.name(),
        error.str(),
        retriable=error.retriable(),
        fatal=error.fatal(),
        txn_requires_abort=error.txn_requires_abort(),
        topic=None if msg is None else msg.topic(),
        partition=None if msg is None else msg.partition(),
        offset=None if msg is None else msg.offset(),
    )


def _raised(exc: KafkaException) -> BrokerError:
    error = exc.args[0] if exc.args else None
    if isinstance(error, KafkaError):
        return broker_error(error)
    return BrokerError("_FAIL", str(exc))


@contextmanager
def translated() -> Iterator[None]:
    """Raise the client's ``KafkaException`` as :class:`BrokerError` (the cause kept)."""
    try:
        yield
    except KafkaException as exc:
        raise _raised(exc) from exc


def error_callback(callback: Callable[[BrokerError], None]) -> Callable[[KafkaError], None]:
    """A client ``error_cb`` that hands ``callback`` our error."""
    return lambda error: callback(broker_error(error))


def partition_offsets(partitions: list[ClientPartition] | None) -> list[PartitionOffset]:
    return [
        PartitionOffset(
            tp.topic,
            tp.partition,
            tp.offset,
            None if tp.error is None else broker_error(tp.error),
        )
        for tp in partitions or []
    ]


def client_partitions(partitions: list[PartitionOffset]) -> list[ClientPartition]:
    return [ClientPartition(p.topic, p.partition, p.offset) for p in partitions]


def consumed(msg: Message) -> ConsumedRecord | BrokerError:
    """A consumed message (or the error event it is); undecodable headers are recorded in
    ``header_error`` (the record is poison), never raised."""
    error = msg.error()
    if error is not None:
        return broker_error(error, msg)
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError("not a consumed message (no topic, partition or offset)")
    ts_type, ts = msg.timestamp()
    headers, header_error = _read_headers(msg)
    return ConsumedRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        key=_as_bytes(msg.key()),
        value=_as_bytes(msg.value()),
        headers=headers,
        timestamp_ms=None if ts_type == TIMESTAMP_NOT_AVAILABLE else ts,
        header_error=header_error,
    )


def _read_headers(msg: Message) -> tuple[RecordHeaders, str | None]:
    """The headers, or none and the reason when the client cannot decode them (poison)."""
    try:
        return read_headers(msg), None
    except HeaderError as exc:
        return (), str(exc)


def _as_bytes(value: Any) -> bytes | None:
    return value.encode("utf-8") if isinstance(value, str) else value

"""The seam's own value types: what the rest of the service sees of Kafka.

Nothing here comes from the client library: :mod:`consumer.kafka.convert` turns its objects
into these at the boundary, and :mod:`consumer.kafka.memory` makes them directly.

- :class:`PartitionOffset`: a partition of a topic, with an offset (and an error, in commit
  results);
- :class:`ConsumedRecord`: a consumed record, its headers already read;
- :class:`BrokerError`: every client error, raised or reported (a callback's ``err``, a
  consume error such as the end of a partition), named by its :class:`BrokerCode`;
- the offset constants (librdkafka's logical offsets).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "OFFSET_BEGINNING",
    "OFFSET_END",
    "OFFSET_INVALID",
    "BrokerCode",
    "BrokerError",
    "ConsumedRecord",
    "PartitionOffset",
    "RecordHeaders",
]

OFFSET_BEGINNING = -2
"""Seek to the first record of the partition."""
OFFSET_END = -1
"""Seek past the last record of the partition."""
OFFSET_INVALID = -1001
"""No offset (a partition without a committed offset)."""

RecordHeaders = tuple[tuple[str, bytes | None], ...]
"""A consumed record's headers: (name, value) pairs, names decoded as UTF-8, a value may be
None (not :data:`schemas.Headers`, the list the wire encoders write)."""


class BrokerCode(StrEnum):
    """The error codes the service acts on, by librdkafka's names (a :class:`BrokerError`
    may carry any other name: it is compared against these)."""

    PARTITION_EOF = "_PARTITION_EOF"
    NO_OFFSET = "_NO_OFFSET"
    STATE = "_STATE"
    FENCED = "_FENCED"
    FATAL = "_FATAL"
    TRANSPORT = "_TRANSPORT"
    UNKNOWN_TOPIC = "_UNKNOWN_TOPIC"
    UNKNOWN_PARTITION = "_UNKNOWN_PARTITION"
    WAIT_COORD = "_WAIT_COORD"
    ASSIGNMENT_LOST = "_ASSIGNMENT_LOST"
    MSG_TIMED_OUT = "_MSG_TIMED_OUT"
    UNKNOWN_TOPIC_OR_PART = "UNKNOWN_TOPIC_OR_PART"
    MSG_SIZE_TOO_LARGE = "MSG_SIZE_TOO_LARGE"
    ILLEGAL_GENERATION = "ILLEGAL_GENERATION"
    UNKNOWN_MEMBER_ID = "UNKNOWN_MEMBER_ID"
    REBALANCE_IN_PROGRESS = "REBALANCE_IN_PROGRESS"
    NOT_COORDINATOR = "NOT_COORDINATOR"
    COORDINATOR_NOT_AVAILABLE = "COORDINATOR_NOT_AVAILABLE"
    PRODUCER_FENCED = "PRODUCER_FENCED"
    INVALID_PRODUCER_EPOCH = "INVALID_PRODUCER_EPOCH"
    TOPIC_AUTHORIZATION_FAILED = "TOPIC_AUTHORIZATION_FAILED"
    GROUP_AUTHORIZATION_FAILED = "GROUP_AUTHORIZATION_FAILED"
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
    CLUSTER_AUTHORIZATION_FAILED = "CLUSTER_AUTHORIZATION_FAILED"


class BrokerError(Exception):
    """A Kafka client error: raised by a client call, or handed to a callback or returned by
    ``consume`` (then ``topic``/``partition``/``offset`` say where, when they are known)."""

    def __init__(
        self,
        code: str,
        reason: str = "",
        *,
        retriable: bool = False,
        fatal: bool = False,
        txn_requires_abort: bool = False,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.code = code
        """librdkafka's name of the error (compare with :class:`BrokerCode`)."""
        self.reason = reason or code
        self.retriable = retriable
        self.fatal = fatal
        """The client is unusable (a fatal producer must be replaced)."""
        self.txn_requires_abort = txn_requires_abort
        self.topic = topic
        self.partition = partition
        self.offset = offset
        super().__init__(f"{self.code}: {self.reason}")


@dataclass(frozen=True, slots=True)
class PartitionOffset:
    """A topic's partition, with an offset where one matters (``commit``, ``seek``, results
    of ``committed``/``offsets_for_times``) and the partition's error in a commit result."""

    topic: str
    partition: int
    offset: int = OFFSET_INVALID
    error: BrokerError | None = None


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    """A consumed record, detached from the client."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: RecordHeaders
    timestamp_ms: int | None
    """The record's timestamp (creation or log append time); None when it has none."""
    header_error: str | None = None
    """Why the client could not decode the headers (then ``headers`` is empty)."""

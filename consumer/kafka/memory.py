"""An in-memory broker whose clients implement :class:`~consumer.kafka.clients.ConsumerClient`
and :class:`~consumer.kafka.clients.ProducerClient` (after arroyo's ``backends/local``).

It runs the whole service without a cluster (fast tests of parse -> verdict, dead letters and
commit order)::

    broker = MemoryBroker(partitions=2)
    service = Service(settings, detector=detector, backend=MemoryBackend(broker))

One consumer per group gets every partition of its topics; offsets are committed per group;
the producer appends at once and reports deliveries on ``poll``. ``broker.refuse(topic)``
makes every delivery to ``topic`` fail for good (e.g. a record too large for it). Not
modelled: transactions (exactly-once needs a real broker), replication, broker failures.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any, Literal, overload

from consumer.kafka.clients import DeliveryCallback, RebalanceCallback
from consumer.kafka.types import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    BrokerCode,
    BrokerError,
    ConsumedRecord,
    PartitionOffset,
)

__all__ = ["MemoryBackend", "MemoryBroker", "MemoryConsumer", "MemoryProducer"]

Partition = tuple[str, int]


class MemoryBroker:
    """Topics of partitions of records, and committed offsets per group; thread-safe."""

    def __init__(self, partitions: int = 1) -> None:
        self.partitions = partitions
        self._lock = threading.Lock()
        self._logs: dict[str, list[list[ConsumedRecord]]] = {}
        self._committed: dict[str, dict[Partition, int]] = {}
        self._refused: dict[str, BrokerError] = {}

    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        with self._lock:
            self._logs.setdefault(topic, [[] for _ in range(partitions or self.partitions)])

    def refuse(self, topic: str, code: str = BrokerCode.MSG_SIZE_TOO_LARGE) -> None:
        """Every later delivery to ``topic`` fails with the non-retriable ``code``."""
        self._refused[topic] = BrokerError(code, "refused by the in-memory broker")

    def allow(self, topic: str) -> None:
        """Lift :meth:`refuse`: later deliveries to ``topic`` succeed."""
        self._refused.pop(topic, None)

    def append(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes | None]] | None = None,
        partition: int = -1,
    ) -> ConsumedRecord | BrokerError:
        """Append one record (the partition from the key when not given); the stored message,
        or the error when ``topic`` refuses records."""
        self.create_topic(topic)
        if topic in self._refused:
            return self._refused[topic]
        with self._lock:
            log = self._logs[topic]
            if partition < 0:
                partition = zlib.crc32(key) % len(log) if key else 0
            msg = ConsumedRecord(
                topic=topic,
                partition=partition,
                offset=len(log[partition]),
                key=key,
                value=value,
                headers=tuple(headers or ()),
                timestamp_ms=int(time.time() * 1000),
            )
            log[partition].append(msg)
            return msg

    def records(self, topic: str) -> list[ConsumedRecord]:
        """Every record of ``topic``, partition by partition."""
        with self._lock:
            return [m for part in self._logs.get(topic, []) for m in part]

    def fetch(self, tp: Partition, offset: int, limit: int) -> list[ConsumedRecord]:
        with self._lock:
            log = self._logs.get(tp[0])
            return [] if log is None else log[tp[1]][offset : offset + limit]

    def partitions_of(self, topic: str) -> list[Partition]:
        self.create_topic(topic)
        with self._lock:
            return [(topic, p) for p in range(len(self._logs[topic]))]

    def end_offset(self, tp: Partition) -> int:
        with self._lock:
            return len(self._logs[tp[0]][tp[1]])

    def commit(self, group: str, offsets: dict[Partition, int]) -> None:
        with self._lock:
            self._committed.setdefault(group, {}).update(offsets)

    def committed(self, group: str) -> dict[Partition, int]:
        with self._lock:
            return dict(self._committed.get(group, {}))


class MemoryConsumer:
    """The only member of its group: it is assigned every partition on its first ``consume``."""

    def __init__(self, broker: MemoryBroker, conf: dict[str, Any]) -> None:
        self._broker = broker
        self._group = str(conf.get("group.id", "memory"))
        self._on_commit: Callable[[BrokerError | None, list[PartitionOffset]], None] | None = (
            conf.get("on_commit")
        )
        self._latest = conf.get("auto.offset.reset") == "latest"
        self._topics: list[str] = []
        self._callbacks: dict[str, RebalanceCallback | None] = {}
        self._joined = False
        self._positions: dict[Partition, int] = {}
        self._paused: set[Partition] = set()

    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        self._topics = list(topics)
        self._callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost}

    def consume(
        self, num_messages: int = 1, timeout: float = -1
    ) -> list[ConsumedRecord | BrokerError]:
        if not self._joined and self._topics:
            self._joined = True
            tps = [_tp(tp) for topic in self._topics for tp in self._broker.partitions_of(topic)]
            self._rebalance("assign", tps, self.incremental_assign)
        out: list[ConsumedRecord | BrokerError] = []
        for tp, position in list(self._positions.items()):
            if tp in self._paused or len(out) >= num_messages:
                continue
            got = self._broker.fetch(tp, position, num_messages - len(out))
            self._positions[tp] = position + len(got)
            out += got
        if not out and timeout > 0:
            time.sleep(min(timeout, 0.005))
        return out

    def revoke(self, partitions: list[PartitionOffset]) -> None:
        """A rebalance takes ``partitions`` away (the test drives it)."""
        self._rebalance("revoke", partitions, self.incremental_unassign)

    def assignment(self) -> list[PartitionOffset]:
        return [_tp(tp) for tp in self._positions]

    def incremental_assign(self, partitions: list[PartitionOffset]) -> None:
        committed = self._broker.committed(self._group)
        for p in partitions:
            tp = (p.topic, p.partition)
            start = self._broker.end_offset(tp) if self._latest else 0
            self._positions[tp] = committed.get(tp, start)

    def incremental_unassign(self, partitions: list[PartitionOffset]) -> None:
        for p in partitions:
            self._positions.pop((p.topic, p.partition), None)

    def pause(self, partitions: list[PartitionOffset]) -> None:
        self._paused |= {(p.topic, p.partition) for p in partitions}

    def resume(self, partitions: list[PartitionOffset]) -> None:
        self._paused -= {(p.topic, p.partition) for p in partitions}

    @overload
    def commit(
        self, *, offsets: list[PartitionOffset], asynchronous: Literal[True] = ...
    ) -> None: ...

    @overload
    def commit(
        self, *, offsets: list[PartitionOffset], asynchronous: Literal[False]
    ) -> list[PartitionOffset]: ...

    def commit(
        self, *, offsets: list[PartitionOffset], asynchronous: bool = True
    ) -> list[PartitionOffset] | None:
        self._broker.commit(self._group, {(o.topic, o.partition): o.offset for o in offsets})
        if asynchronous:
            if self._on_commit is not None:
                self._on_commit(None, offsets)
            return None
        return offsets

    def committed(
        self, partitions: list[PartitionOffset], timeout: float = -1
    ) -> list[PartitionOffset]:
        done = self._broker.committed(self._group)
        return [
            PartitionOffset(p.topic, p.partition, done.get((p.topic, p.partition), OFFSET_INVALID))
            for p in partitions
        ]

    def seek(self, partition: PartitionOffset) -> None:
        tp = (partition.topic, partition.partition)
        offset = partition.offset
        if offset == OFFSET_BEGINNING:
            offset = 0
        elif offset == OFFSET_END:
            offset = self._broker.end_offset(tp)
        self._positions[tp] = offset

    def consumer_group_metadata(self) -> Any:
        return None

    def close(self) -> None:
        """Leaving the group revokes the assignment (the revoke callback runs, as in Kafka)."""
        if self._positions:
            self.revoke(self.assignment())
        self._joined = False

    def _rebalance(
        self, kind: str, partitions: list[PartitionOffset], default: Callable[..., None]
    ) -> None:
        callback = self._callbacks.get(kind)
        if callback is not None:
            callback(self, partitions)
        else:
            default(partitions)


class MemoryProducer:
    """Appends at once; delivery reports are served by ``poll``/``flush``."""

    def __init__(self, broker: MemoryBroker, conf: dict[str, Any] | None = None) -> None:
        self._broker = broker
        self._reports: deque[
            tuple[DeliveryCallback, BrokerError | None, PartitionOffset | None]
        ] = deque()

    def produce(
        self,
        topic: str,
        value: str | bytes | None = None,
        key: str | bytes | None = None,
        partition: int = -1,
        on_delivery: DeliveryCallback | None = None,
        headers: list[tuple[str, bytes | None]] | None = None,
    ) -> None:
        result = self._broker.append(topic, _bytes(value), _bytes(key), headers, partition)
        if on_delivery is not None:
            if isinstance(result, BrokerError):
                self._reports.append((on_delivery, result, None))
            else:
                where = PartitionOffset(result.topic, result.partition, result.offset)
                self._reports.append((on_delivery, None, where))

    def poll(self, timeout: float = -1) -> int:
        served = 0
        while self._reports:
            report, err, msg = self._reports.popleft()
            report(err, msg)
            served += 1
        return served

    def flush(self, timeout: float = -1) -> int:
        self.poll(0)
        return 0

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        self._reports.clear()

    def close(self) -> bool:
        self.poll(0)
        return True

    def __len__(self) -> int:
        return len(self._reports)


class MemoryBackend:
    """:class:`~consumer.kafka.backend.Backend` on a :class:`MemoryBroker`."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker

    def consumer(self, conf: dict[str, Any]) -> MemoryConsumer:
        return MemoryConsumer(self.broker, conf)

    def producer(self, conf: dict[str, Any]) -> MemoryProducer:
        return MemoryProducer(self.broker, conf)

    def ensure_compacted_topic(self, conf: dict[str, Any], topic: str) -> None:
        self.broker.create_topic(topic)

    def check_access(self, settings: object) -> None:
        """The in-memory broker has no security: nothing to check."""


def _tp(tp: Partition) -> PartitionOffset:
    return PartitionOffset(tp[0], tp[1])


def _bytes(value: str | bytes | None) -> bytes | None:
    return value.encode("utf-8") if isinstance(value, str) else value

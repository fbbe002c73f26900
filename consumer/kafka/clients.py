"""What the pipeline needs of a Kafka client: two small protocols in the seam's own types
(implemented by :mod:`consumer.kafka.kafka_clients` and by :mod:`consumer.kafka.memory`), the
commit results that arrive through a callback, and the handle on the (replaceable) producer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol, overload

import structlog

from consumer.kafka.types import BrokerCode, BrokerError, ConsumedRecord, PartitionOffset

__all__ = [
    "CommitResults",
    "ConsumerClient",
    "DeliveryCallback",
    "ProducerClient",
    "ProducerHandle",
    "ReaderClient",
    "RebalanceCallback",
]

log = structlog.get_logger("consumer.kafka")

RebalanceCallback = Callable[[Any, list[PartitionOffset]], None]
"""``(consumer, partitions)``: the consumer is the one subscribed (ours, not the client's)."""
DeliveryCallback = Callable[[BrokerError | None, PartitionOffset | None], None]
"""``(error, where)``: where the record was written, or the error that refused it."""


class ConsumerClient(Protocol):
    """The consumer calls of the poll loop and the commit steps."""

    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None: ...

    def consume(
        self, num_messages: int = 1, timeout: float = -1
    ) -> list[ConsumedRecord | BrokerError]: ...

    def assignment(self) -> list[PartitionOffset]: ...

    def incremental_assign(self, partitions: list[PartitionOffset]) -> None: ...

    def incremental_unassign(self, partitions: list[PartitionOffset]) -> None: ...

    def pause(self, partitions: list[PartitionOffset]) -> None: ...

    def resume(self, partitions: list[PartitionOffset]) -> None: ...

    @overload
    def commit(
        self, *, offsets: list[PartitionOffset], asynchronous: Literal[True] = ...
    ) -> None: ...

    @overload
    def commit(
        self, *, offsets: list[PartitionOffset], asynchronous: Literal[False]
    ) -> list[PartitionOffset]: ...

    def committed(
        self, partitions: list[PartitionOffset], timeout: float = -1
    ) -> list[PartitionOffset]: ...

    def seek(self, partition: PartitionOffset) -> None: ...

    def consumer_group_metadata(self) -> Any: ...

    def close(self) -> None: ...


class ReaderClient(Protocol):
    """The consumer calls of a reader of assigned ranges (replay, audits): no group, no commits."""

    def assign(self, partitions: list[PartitionOffset]) -> None: ...

    def consume(
        self, num_messages: int = 1, timeout: float = -1
    ) -> list[ConsumedRecord | BrokerError]: ...

    def pause(self, partitions: list[PartitionOffset]) -> None: ...

    def resume(self, partitions: list[PartitionOffset]) -> None: ...

    def watermarks(self, topic: str, partition: int, timeout: float) -> tuple[int, int]: ...

    def offsets_for_times(
        self, partitions: list[PartitionOffset], timeout: float
    ) -> list[PartitionOffset]: ...

    def partitions_of(self, topic: str, timeout: float) -> list[int] | None: ...

    def close(self) -> None: ...


class ProducerClient(Protocol):
    """The producer calls of the produce step (transactions: ``TransactionalCommitStep``)."""

    def produce(
        self,
        topic: str,
        value: str | bytes | None = None,
        key: str | bytes | None = None,
        partition: int = -1,
        on_delivery: DeliveryCallback | None = None,
        headers: list[tuple[str, bytes | None]] | None = None,
    ) -> None: ...

    def poll(self, timeout: float = -1) -> int: ...

    def flush(self, timeout: float = -1) -> int: ...

    def close(self) -> bool: ...


class CommitResults:
    """The consumer's ``on_commit`` callback: partitions whose commit failed, until taken.

    Created before the consumer (whose configuration names :meth:`on_commit`) and handed to the
    commit step, which takes the failures on its next ``poll``.
    """

    def __init__(self) -> None:
        self._failed: list[tuple[str, int]] = []

    def on_commit(self, err: BrokerError | None, partitions: list[PartitionOffset]) -> None:
        failed = [(tp.topic, tp.partition) for tp in partitions if tp.error is not None]
        if err is not None and err.code != BrokerCode.NO_OFFSET:
            failed = [(tp.topic, tp.partition) for tp in partitions]
            log.warning("commit_failed", error=str(err))
        self._failed += failed

    def take_failed(self) -> list[tuple[str, int]]:
        """Partitions whose commit failed since the last call (their offsets are sent again)."""
        failed, self._failed = self._failed, []
        return failed


class ProducerHandle:
    """The service's current producer; exactly-once replaces it after losing the cluster.

    The produce step and the transactional commit step share one handle: a replacement made
    by one is what the other uses next (``generation`` counts replacements).
    """

    def __init__(self, new_producer: Callable[[], Any]) -> None:
        self._new = new_producer
        self.current = new_producer()
        self.generation = 0

    @classmethod
    def of(cls, producer: Any) -> ProducerHandle:
        """A handle on an existing producer (that cannot be replaced)."""
        return cls(lambda: producer)

    def replace(self) -> Any:
        """Close the current producer (purging what it still holds) and make a new one."""
        old = self.current
        old.purge()  # the aborted records' reports (all stale) are served by close()
        try:
            old.close()
        except Exception as exc:  # a fatal producer repeats its error; it is closed
            log.warning("producer_closed", error=str(exc))
        self.current = self._new()
        self.generation += 1
        return self.current

"""The real clients behind the seam: ``confluent_kafka``'s consumer and producer, speaking the
seam's own types (:mod:`consumer.kafka.types`).

Every call's ``KafkaException`` is raised as :class:`~consumer.kafka.types.BrokerError`;
callbacks (``error_cb``, ``on_commit``, rebalances, delivery reports) receive our errors and
partitions; consumed messages come back as :class:`~consumer.kafka.types.ConsumedRecord` (or
the :class:`~consumer.kafka.types.BrokerError` event they are).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, overload

from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka import TopicPartition as ClientPartition

from consumer.kafka.clients import DeliveryCallback, RebalanceCallback
from consumer.kafka.convert import (
    broker_error,
    client_partitions,
    consumed,
    error_callback,
    partition_offsets,
    translated,
)
from consumer.kafka.types import BrokerError, ConsumedRecord, PartitionOffset

__all__ = ["KafkaConsumer", "KafkaProducer"]


def _client_conf(conf: dict[str, Any]) -> dict[str, Any]:
    """``conf`` with its callbacks taking our types (``error_cb``, ``on_commit``)."""
    out = dict(conf)
    if callable(conf.get("error_cb")):
        out["error_cb"] = error_callback(conf["error_cb"])
    on_commit = conf.get("on_commit")
    if callable(on_commit):

        def committed(err: KafkaError | None, partitions: list[ClientPartition]) -> None:
            on_commit(None if err is None else broker_error(err), partition_offsets(partitions))

        out["on_commit"] = committed
    return out


def _partitions_of(client: Consumer | Producer, topic: str, timeout: float) -> list[int] | None:
    """The partitions of ``topic`` from the cluster's metadata; None when it has none."""
    with translated():
        found = client.list_topics(topic, timeout=timeout).topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        return None
    return sorted(found.partitions)


class KafkaConsumer:
    """A ``confluent_kafka.Consumer`` behind :class:`~consumer.kafka.clients.ConsumerClient`
    (and the reads replay and the readers need: ``assign``, watermarks, times, metadata)."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self._client = Consumer(_client_conf(conf))

    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        callbacks = {"on_assign": on_assign, "on_revoke": on_revoke, "on_lost": on_lost}
        with translated():
            self._client.subscribe(
                topics, **{k: self._rebalance(v) for k, v in callbacks.items() if v is not None}
            )

    def _rebalance(
        self, callback: RebalanceCallback
    ) -> Callable[[Consumer, list[ClientPartition]], None]:
        return lambda _client, partitions: callback(self, partition_offsets(partitions))

    def consume(
        self, num_messages: int = 1, timeout: float = -1
    ) -> list[ConsumedRecord | BrokerError]:
        with translated():
            return [consumed(msg) for msg in self._client.consume(num_messages, timeout)]

    def assignment(self) -> list[PartitionOffset]:
        with translated():
            return partition_offsets(self._client.assignment())

    def assign(self, partitions: list[PartitionOffset]) -> None:
        with translated():
            self._client.assign(client_partitions(partitions))

    def incremental_assign(self, partitions: list[PartitionOffset]) -> None:
        with translated():
            self._client.incremental_assign(client_partitions(partitions))

    def incremental_unassign(self, partitions: list[PartitionOffset]) -> None:
        with translated():
            self._client.incremental_unassign(client_partitions(partitions))

    def pause(self, partitions: list[PartitionOffset]) -> None:
        with translated():
            self._client.pause(client_partitions(partitions))

    def resume(self, partitions: list[PartitionOffset]) -> None:
        with translated():
            self._client.resume(client_partitions(partitions))

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
        with translated():
            if asynchronous:
                self._client.commit(offsets=client_partitions(offsets), asynchronous=True)
                return None
            result = self._client.commit(offsets=client_partitions(offsets), asynchronous=False)
        return partition_offsets(result)

    def committed(
        self, partitions: list[PartitionOffset], timeout: float = -1
    ) -> list[PartitionOffset]:
        with translated():
            return partition_offsets(
                self._client.committed(client_partitions(partitions), timeout=timeout)
            )

    def seek(self, partition: PartitionOffset) -> None:
        with translated():
            self._client.seek(client_partitions([partition])[0])

    def watermarks(self, topic: str, partition: int, timeout: float) -> tuple[int, int]:
        """The partition's (low, high) offsets: its first record and one past its last."""
        with translated():
            low, high = self._client.get_watermark_offsets(
                ClientPartition(topic, partition), timeout=timeout
            )
        return int(low), int(high)

    def offsets_for_times(
        self, partitions: list[PartitionOffset], timeout: float
    ) -> list[PartitionOffset]:
        """Per partition, the first offset whose timestamp is at least its ``offset`` (ms)."""
        with translated():
            found = self._client.offsets_for_times(client_partitions(partitions), timeout=timeout)
        return partition_offsets(found)

    def partitions_of(self, topic: str, timeout: float) -> list[int] | None:
        """The partitions of ``topic`` (None: no such topic, or its metadata has an error)."""
        return _partitions_of(self._client, topic, timeout)

    def consumer_group_metadata(self) -> Any:
        """Opaque: for :meth:`KafkaProducer.send_offsets_to_transaction`."""
        with translated():
            return self._client.consumer_group_metadata()

    def close(self) -> None:
        with translated():
            self._client.close()


class KafkaProducer:
    """A ``confluent_kafka.Producer`` behind :class:`~consumer.kafka.clients.ProducerClient`,
    with the transactional calls of the exactly-once commit step."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self._client = Producer(_client_conf(conf))

    def produce(
        self,
        topic: str,
        value: str | bytes | None = None,
        key: str | bytes | None = None,
        partition: int = -1,
        on_delivery: DeliveryCallback | None = None,
        headers: list[tuple[str, bytes | None]] | None = None,
    ) -> None:
        """Queue one record; ``BufferError`` when the local queue is full."""
        extra: dict[str, Any] = {} if on_delivery is None else {"on_delivery": _report(on_delivery)}
        pairs: list[tuple[str, str | bytes | None]] | None = None if headers is None else [*headers]
        with translated():
            self._client.produce(
                topic, value=value, key=key, partition=partition, headers=pairs, **extra
            )

    def poll(self, timeout: float = -1) -> int:
        with translated():
            return int(self._client.poll(timeout))

    def flush(self, timeout: float = -1) -> int:
        with translated():
            return int(self._client.flush(timeout))

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        with translated():
            self._client.purge(in_queue, in_flight, blocking)

    def close(self) -> bool:
        with translated():
            return bool(self._client.close())

    def __len__(self) -> int:
        return len(self._client)

    def partitions_of(self, topic: str, timeout: float) -> list[int] | None:
        """The partitions of ``topic`` (None: no such topic, or its metadata has an error)."""
        return _partitions_of(self._client, topic, timeout)

    def init_transactions(self, timeout: float) -> None:
        with translated():
            self._client.init_transactions(timeout)

    def begin_transaction(self) -> None:
        with translated():
            self._client.begin_transaction()

    def send_offsets_to_transaction(
        self, offsets: list[PartitionOffset], group_metadata: Any, timeout: float
    ) -> None:
        with translated():
            self._client.send_offsets_to_transaction(
                client_partitions(offsets), group_metadata, timeout
            )

    def commit_transaction(self, timeout: float) -> None:
        with translated():
            self._client.commit_transaction(timeout)

    def abort_transaction(self, timeout: float) -> None:
        with translated():
            self._client.abort_transaction(timeout)


def _report(callback: DeliveryCallback) -> Callable[[KafkaError | None, Message], None]:
    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            callback(broker_error(err, msg), None)
            return
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        where = None
        if topic is not None and partition is not None and offset is not None:
            where = PartitionOffset(topic, partition, offset)
        callback(None, where)

    return delivered

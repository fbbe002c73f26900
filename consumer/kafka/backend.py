"""Where the service's clients come from: a Kafka cluster, or the in-memory broker."""

from __future__ import annotations

from typing import Any, Protocol

from confluent_kafka import Consumer, Producer

from consumer.kafka.admin import ensure_compacted_topic
from consumer.kafka.clients import ConsumerClient, ProducerClient

__all__ = ["Backend", "KafkaBackend"]


class Backend(Protocol):
    """Makes the clients of one service from their librdkafka configurations."""

    def consumer(self, conf: dict[str, Any]) -> ConsumerClient: ...

    def producer(self, conf: dict[str, Any]) -> ProducerClient: ...

    def ensure_compacted_topic(self, conf: dict[str, Any], topic: str) -> None: ...


class KafkaBackend:
    """The real clients (``confluent_kafka``)."""

    def consumer(self, conf: dict[str, Any]) -> ConsumerClient:
        return Consumer(conf)

    def producer(self, conf: dict[str, Any]) -> ProducerClient:
        return Producer(conf)

    def ensure_compacted_topic(self, conf: dict[str, Any], topic: str) -> None:
        ensure_compacted_topic(conf, topic)

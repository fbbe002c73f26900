"""Where the service's clients come from: a Kafka cluster, or the in-memory broker."""

from __future__ import annotations

from typing import Any, Protocol

from consumer.kafka.access import check_access
from consumer.kafka.admin import ensure_compacted_topic, ensure_topics
from consumer.kafka.clients import ConsumerClient, ProducerClient, ReaderClient
from consumer.kafka.config import common_config
from consumer.kafka.convert import translated
from consumer.kafka.kafka_clients import KafkaConsumer, KafkaProducer
from consumer.settings import KafkaSettings

__all__ = ["Backend", "KafkaBackend", "ReplayBackend"]


class Backend(Protocol):
    """Makes the clients of one service from their librdkafka configurations."""

    def consumer(self, conf: dict[str, Any]) -> ConsumerClient: ...

    def producer(self, conf: dict[str, Any]) -> ProducerClient: ...

    def ensure_compacted_topic(self, conf: dict[str, Any], topic: str) -> None: ...

    def check_access(self, settings: KafkaSettings) -> None:
        """Raise :class:`~consumer.errors.KafkaAccessError` when the cluster refuses the
        service (TLS, SASL, ACLs); called once before the model loads."""


class ReplayBackend(Protocol):
    """Makes the clients of one replay: readers of assigned ranges and the audit producer."""

    def reader(self, conf: dict[str, Any]) -> ReaderClient: ...

    def producer(self, conf: dict[str, Any]) -> ProducerClient: ...

    def ensure_topics(self, conf: dict[str, Any], topics: list[str]) -> None: ...


class KafkaBackend:
    """The real clients (``confluent_kafka``, behind :mod:`consumer.kafka.kafka_clients`)."""

    def consumer(self, conf: dict[str, Any]) -> KafkaConsumer:
        return KafkaConsumer(conf)

    def reader(self, conf: dict[str, Any]) -> KafkaConsumer:
        return KafkaConsumer(conf)

    def producer(self, conf: dict[str, Any]) -> KafkaProducer:
        return KafkaProducer(conf)

    def ensure_topics(self, conf: dict[str, Any], topics: list[str]) -> None:
        with translated():
            ensure_topics(conf, topics)

    def ensure_compacted_topic(self, conf: dict[str, Any], topic: str) -> None:
        with translated():  # e.g. no ACL to create it: a BrokerError the service explains
            ensure_compacted_topic(conf, topic)

    def check_access(self, settings: KafkaSettings) -> None:
        check_access(settings, common_config(settings))

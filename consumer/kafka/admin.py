"""Topic creation, in one place: the replay's audit topics and the compacted latest-verdict topic.

The latest-verdict topic holds one record per image sha256, the newest wins: the produce step
writes a copy of every verdict there, keyed by the image sha256 (see
:meth:`consumer.output.records.RecordFactory.latest`). With ``cleanup.policy=compact`` Kafka keeps
at least the latest record per key, so a tool can look up "what do we think of this image"
by reading the topic into a table.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import structlog
from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

__all__ = ["COMPACTED_CONFIG", "ensure_compacted_topic", "ensure_topics", "topic_id_probe"]

log = structlog.get_logger("consumer.kafka.admin")

COMPACTED_CONFIG: dict[str, str] = {
    "cleanup.policy": "compact",
    "min.cleanable.dirty.ratio": "0.1",
    "segment.ms": "3600000",
}
"""Topic configs used when the topic is created here."""
_PRODUCER_ONLY = ("transactional.id", "enable.idempotence", "acks", "linger.ms", "compression.type")


def ensure_compacted_topic(
    client_conf: dict[str, Any],
    topic: str,
    *,
    partitions: int = 6,
    replication_factor: int = -1,
    timeout_s: float = 30.0,
) -> bool:
    """Create ``topic`` with ``cleanup.policy=compact`` unless it exists; True when created.

    An existing topic is left as it is; a warning is logged when it is not compacted.
    ``replication_factor=-1`` uses the broker default.
    """
    admin = _admin(client_conf)
    meta = admin.list_topics(timeout=timeout_s)
    if topic in meta.topics and meta.topics[topic].error is None:
        _warn_unless_compacted(admin, topic, timeout_s)
        return False
    created = _create(admin, [_compacted(topic, partitions, replication_factor)], timeout_s)
    if created:
        log.info("latest_verdict_topic_created", topic=topic, partitions=partitions)
    return bool(created)


def ensure_topics(client_conf: dict[str, Any], topics: list[str], timeout_s: float = 30.0) -> None:
    """Create the missing ``topics`` with the broker's defaults (partitions, replication).

    Raises:
        ValueError: a topic could not be created.
    """
    admin = _admin(client_conf)
    missing = [NewTopic(t, num_partitions=-1, replication_factor=-1) for t in topics]
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
        _create(admin, [n for n in missing if n.topic not in existing], timeout_s)
    except KafkaException as exc:
        raise ValueError(f"cannot create output topics {topics}: {exc}") from exc


def topic_id_probe(
    client_conf: dict[str, Any], timeout_s: float = 5.0
) -> Callable[[str], Future[str | None]]:
    """A function that starts reading a topic's id (``describe_topics``) without waiting: its
    future gives the id, or None when the topic does not exist (one admin client for all)."""
    admin = _admin(client_conf)

    def probe(topic: str) -> Future[str | None]:
        found: Future[str | None] = Future()
        described = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout_s)[
            topic
        ]

        def settle(done: Future[Any]) -> None:
            try:
                found.set_result(str(done.result().topic_id))
            except KafkaException as exc:
                if exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    found.set_result(None)
                else:
                    found.set_exception(exc)

        described.add_done_callback(settle)
        return found

    return probe


def _compacted(topic: str, partitions: int, replication_factor: int) -> NewTopic:
    return NewTopic(
        topic,
        num_partitions=partitions,
        replication_factor=replication_factor,
        config=COMPACTED_CONFIG,
    )


def _admin(client_conf: dict[str, Any]) -> AdminClient:
    """An admin client on the connection settings of a producer's or consumer's config."""
    return AdminClient(
        {k: v for k, v in client_conf.items() if not callable(v) and k not in _PRODUCER_ONLY}
    )


def _create(admin: AdminClient, new: list[NewTopic], timeout_s: float) -> list[str]:
    """Create ``new`` topics; the names created (one that already exists is not an error)."""
    if not new:
        return []
    created = []
    futures = admin.create_topics(new, operation_timeout=timeout_s)
    for topic, future in futures.items():
        try:
            future.result(timeout=timeout_s)
            created.append(topic)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created


def _warn_unless_compacted(admin: AdminClient, topic: str, timeout_s: float) -> None:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        configs = admin.describe_configs([resource])[resource].result(timeout=timeout_s)
    except KafkaException as exc:
        log.warning("latest_verdict_topic_unchecked", topic=topic, error=str(exc))
        return
    policy = configs.get("cleanup.policy")
    if policy is None or "compact" not in str(policy.value):
        log.warning("latest_verdict_topic_not_compacted", topic=topic, policy=str(policy))

"""Every librdkafka client configuration, from :class:`KafkaSettings`: the service's consumer
and producer, the replay's consumer and audit producer, and throw-away readers."""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any

from pydantic import SecretStr

from consumer.settings import KafkaSettings

__all__ = [
    "audit_producer_config",
    "common_config",
    "consumer_config",
    "instance_id",
    "max_record_bytes",
    "producer_config",
    "reader_config",
    "replay_consumer_config",
    "transaction_timeout_ms",
]

_DEFAULT_MESSAGE_MAX_BYTES = 1_000_000
_MAX_TRANSACTION_TIMEOUT_MS = 900_000
"""The broker's default ``transaction.max.timeout.ms`` (15 minutes)."""


def instance_id(settings: KafkaSettings) -> str:
    """A stable id of this instance: the setting, else ``$POD_NAME``/``$HOSTNAME``, else host."""
    return settings.instance_id or os.environ.get("POD_NAME") or socket.gethostname()


def common_config(settings: KafkaSettings) -> dict[str, Any]:
    """Connection settings of any client: bootstrap servers, SASL, the librdkafka passthrough."""
    conf: dict[str, Any] = {"bootstrap.servers": settings.bootstrap_servers}
    named: dict[str, Any] = {
        "security.protocol": settings.security_protocol,
        "sasl.mechanism": settings.sasl_mechanism,
        "sasl.username": settings.sasl_username,
        "sasl.password": _secret(settings.sasl_password),
        "ssl.ca.location": settings.ssl_ca_location,
        "ssl.certificate.location": settings.ssl_certificate_location,
        "ssl.key.location": settings.ssl_key_location,
        "ssl.key.password": _secret(settings.ssl_key_password),
    }
    conf.update({k: str(v) for k, v in named.items() if v is not None})
    conf.update(settings.librdkafka)  # the passthrough wins
    return conf


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def consumer_config(settings: KafkaSettings) -> dict[str, Any]:
    """At-least-once consumer: manual commits only, cooperative-sticky rebalancing."""
    conf = common_config(settings)
    conf.update(
        {
            "group.id": settings.group_id,
            "client.id": f"synthscan-{instance_id(settings)}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": settings.auto_offset_reset,
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": settings.session_timeout_ms,
            "max.poll.interval.ms": settings.max_poll_interval_ms,
            "statistics.interval.ms": settings.statistics_interval_ms,
            "isolation.level": "read_committed",
        }
    )
    conf.update(settings.consumer_overrides)
    # The delivery guarantee depends on these; overrides must not turn them off.
    conf["enable.auto.commit"] = False
    return conf


def producer_config(settings: KafkaSettings) -> dict[str, Any]:
    """Idempotent, zstd-compressed producer (transactional in exactly-once mode).

    A topic missing from the cluster fails its queued records after 5 s instead of librdkafka's
    30 s (``topic.metadata.propagation.max.ms``): the produce step then holds output and
    reports not ready (:mod:`consumer.output.destination`); a topic only slow to propagate is
    retried, never dead-lettered.
    """
    conf = common_config(settings)
    conf.setdefault("topic.metadata.propagation.max.ms", 5000)
    conf.update(
        {
            "client.id": f"synthscan-{instance_id(settings)}-producer",
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "zstd",
            "linger.ms": 5,
        }
    )
    if settings.exactly_once:
        conf["transactional.id"] = f"{settings.transactional_id_prefix}{instance_id(settings)}"
        conf["transaction.timeout.ms"] = transaction_timeout_ms(settings)
    conf.update(settings.producer_overrides)
    conf["enable.idempotence"] = True
    return conf


def transaction_timeout_ms(settings: KafkaSettings) -> int:
    """How long a transaction may stay open: three times its longest expected span.

    A transaction spans one commit interval, then the drain of everything in flight (at most
    ``transaction_max_in_flight`` messages at ``transaction_seconds_per_message`` each), or a
    revocation drain; clamped to [60 s, the broker's default maximum of 15 min].
    """
    drain_s = settings.transaction_max_in_flight * settings.transaction_seconds_per_message
    span_s = settings.commit_interval_s + max(drain_s, settings.revoke_drain_s)
    return int(min(_MAX_TRANSACTION_TIMEOUT_MS, max(60_000.0, 3 * span_s * 1000.0)))


def max_record_bytes(settings: KafkaSettings) -> int:
    """The largest record the service writes: the setting, else the producer's message.max.bytes."""
    if settings.max_record_bytes is not None:
        return settings.max_record_bytes
    conf = {**settings.librdkafka, **settings.producer_overrides}
    return int(conf.get("message.max.bytes", _DEFAULT_MESSAGE_MAX_BYTES))


def replay_consumer_config(settings: KafkaSettings, run_id: str) -> dict[str, Any]:
    """A replay's consumer, which can never touch the live group: own group id, no commits."""
    conf = common_config(settings)
    conf.update(
        {
            "group.id": f"synthscan-replay-{run_id}",
            "client.id": f"synthscan-replay-{run_id}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    return conf


def audit_producer_config(settings: KafkaSettings) -> dict[str, Any]:
    """The replay's producer to an audit topic: idempotent, zstd, never transactional."""
    return {
        **common_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "zstd",
        "linger.ms": 20,
    }


def reader_config(conf: dict[str, Any], group_prefix: str) -> dict[str, Any]:
    """A throw-away reader of committed records (own group, no commits, EOF events) on top of
    the connection settings ``conf``."""
    return {
        **conf,
        "group.id": f"{group_prefix}-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }

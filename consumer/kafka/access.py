"""Start-up check of the service's access to Kafka: TLS, SASL and ACLs, in one clear line.

librdkafka treats a refused handshake or a failed SASL exchange as a transport error: it
reports it to the error callback and reconnects, forever, so a service with a wrong password
or an untrusted broker certificate would log a warning per attempt and never turn ready. A
missing ACL shows up later still, as a consume or delivery error. :func:`check_access` asks
before anything else, with one admin client and a deadline, and raises
:class:`~consumer.errors.KafkaAccessError` naming what failed:

1. connect: the first ``_SSL`` error (handshake refused: untrusted CA, host name not in the
   certificate) or ``_AUTHENTICATION`` error (SASL refused) ends the check;
2. topics: each input topic must allow READ, each output topic (verdicts, latest verdicts,
   dead letters) WRITE (``describe_topics`` with the principal's authorized operations);
3. group: the consumer group must allow READ.

A topic that does not exist (and may be described) is left to the service. A cluster that
does not answer before the deadline (at all, or a question: a new cluster may take long to
create its offsets topic) is not an access error: the check logs what it could not check and
the service starts as before (librdkafka keeps trying). The transactional id cannot be
checked from an admin client; :func:`access_error` translates the authorization errors a
client raises later (``init_transactions``, topic creation) into the same error.

No secret is ever part of a message: librdkafka's own error strings name the broker, the
mechanism and the state, never the credentials.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AclOperation, AdminClient

from consumer.errors import KafkaAccessError
from consumer.kafka.config import instance_id
from consumer.kafka.types import BrokerCode, BrokerError
from consumer.settings import KafkaSettings

__all__ = ["access_error", "check_access"]

log = structlog.get_logger("consumer.kafka.access")

_AUTHORIZATION = {
    BrokerCode.TOPIC_AUTHORIZATION_FAILED: "topic",
    BrokerCode.GROUP_AUTHORIZATION_FAILED: "consumer group",
    BrokerCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "transactional id",
    BrokerCode.CLUSTER_AUTHORIZATION_FAILED: "cluster",
}


def check_access(settings: KafkaSettings, conf: dict[str, Any]) -> None:
    """Raise :class:`KafkaAccessError` when the cluster refuses the connection settings
    ``conf`` (TLS, SASL) or the service's topics and group (ACLs); see the module docstring."""
    if settings.access_check_timeout_s <= 0:
        return
    errors: list[KafkaError] = []
    admin_conf: dict[str, Any] = {
        **{k: v for k, v in conf.items() if not callable(v)},
        "error_cb": errors.append,
        "log_level": 0,  # the error callback has it all; no librdkafka lines on stderr
    }
    admin = AdminClient(admin_conf)
    deadline = time.monotonic() + settings.access_check_timeout_s
    if not _connect(admin, errors, _user(conf), deadline):
        log.warning("kafka_access_unchecked", reason="no broker answered before the deadline")
        return
    outputs = [settings.verdict_topic, settings.dead_letter_topic]
    if settings.latest_verdict_topic is not None:
        outputs.append(settings.latest_verdict_topic)
    needs = {t: AclOperation.READ for t in settings.input_topics}
    needs.update({t: AclOperation.WRITE for t in outputs})
    _check_topics(admin, needs, _user(conf), deadline)
    _check_group(admin, settings.group_id, _user(conf), deadline)


def access_error(error: BrokerError, settings: KafkaSettings) -> KafkaAccessError | None:
    """The access error an authorization failure raised by a client means, else None."""
    if error.code not in _AUTHORIZATION:
        return None
    kind = _AUTHORIZATION[BrokerCode(error.code)]
    if error.code == BrokerCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
        kind += f" {settings.transactional_id_prefix + instance_id(settings)!r}"
    user = settings.sasl_username or _user(settings.librdkafka)
    return KafkaAccessError(
        f"Kafka authorization failed: {_who(user)} was refused on a {kind} "
        f"({error.reason}); grant the ACL (docs/deploy.md, Kafka security)"
    )


def _connect(
    admin: AdminClient, errors: list[KafkaError], user: str | None, deadline: float
) -> bool:
    """True once the cluster answers; raise on a TLS or SASL refusal; False at the deadline."""
    while True:
        try:
            admin.list_topics(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
            return True
        except KafkaException:
            pass
        admin.poll(0.1)  # serves the error callback
        for error in errors:
            if error.code() == KafkaError._SSL:
                raise KafkaAccessError(
                    f"Kafka TLS handshake failed: {_reason(error)} "
                    "(check kafka.ssl_ca_location and that the broker's certificate names "
                    "the host in kafka.bootstrap_servers)"
                )
            if error.code() == KafkaError._AUTHENTICATION:
                raise KafkaAccessError(
                    f"Kafka authentication failed for {_who(user)}: {_reason(error)} "
                    "(check kafka.sasl_username, kafka.sasl_password and kafka.sasl_mechanism)"
                )
        errors.clear()
        if time.monotonic() >= deadline:
            return False


def _check_topics(
    admin: AdminClient, needs: dict[str, AclOperation], user: str | None, deadline: float
) -> None:
    futures = admin.describe_topics(
        TopicCollection(list(needs)), include_authorized_operations=True
    )
    for topic, future in futures.items():
        operation = needs[topic]
        try:
            description = future.result(timeout=max(1.0, deadline - time.monotonic()))
        except TimeoutError:
            log.warning("kafka_access_unchecked", topic=topic, reason="no answer before deadline")
            continue
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                raise _refused(user, operation, "topic", topic) from None
            continue  # e.g. unknown topic: not an access question
        _require(description.authorized_operations, operation, user, "topic", topic)


def _check_group(admin: AdminClient, group: str, user: str | None, deadline: float) -> None:
    future = admin.describe_consumer_groups([group], include_authorized_operations=True)[group]
    try:
        description = future.result(timeout=max(1.0, deadline - time.monotonic()))
    except TimeoutError:  # e.g. a new cluster still creating its offsets topic
        log.warning("kafka_access_unchecked", group=group, reason="no answer before deadline")
        return
    except KafkaException as exc:
        if exc.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
            raise _refused(user, AclOperation.READ, "consumer group", group) from None
        return  # e.g. no coordinator yet: not an access question
    _require(description.authorized_operations, AclOperation.READ, user, "consumer group", group)


def _require(
    granted: list[AclOperation] | None,
    operation: AclOperation,
    user: str | None,
    kind: str,
    name: str,
) -> None:
    """``granted`` is None when the broker has no authorizer: everything is allowed."""
    if granted is None or operation in granted or AclOperation.ALL in granted:
        return
    raise _refused(user, operation, kind, name)


def _refused(user: str | None, operation: AclOperation, kind: str, name: str) -> KafkaAccessError:
    return KafkaAccessError(
        f"Kafka authorization failed: {_who(user)} may not {operation.name} {kind} {name!r} "
        "(grant the ACL: docs/deploy.md, Kafka security)"
    )


def _user(conf: dict[str, Any]) -> str | None:
    user = conf.get("sasl.username")
    return None if user is None else str(user)


def _who(user: str | None) -> str:
    return "the anonymous principal" if user is None else f"user {user!r}"


def _reason(error: KafkaError) -> str:
    """librdkafka's text without the broker prefix (``sasl_ssl://host:port/bootstrap: ``)."""
    text = error.str()
    head, sep, tail = text.partition(": ")
    return tail if sep and "://" in head else text

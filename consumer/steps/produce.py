"""Produce step: verdicts and dead letters to Kafka, confirmed by delivery callbacks."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Protocol

import structlog
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from consumer.items import Delivered, Envelope, Failure, Outcome, OutRecord, WorkItem
from consumer.metrics import Metrics
from consumer.steps.base import ProcessingStep, remaining
from schemas import ErrorCode

__all__ = ["ProduceStep", "RecordBuilder"]

log = structlog.get_logger("consumer.produce")


class RecordBuilder(Protocol):
    """Turns outcomes into wire records (see :mod:`consumer.records`)."""

    def verdict(self, item: WorkItem) -> OutRecord: ...

    def dead_letter(self, failure: Failure) -> OutRecord: ...

    def latest(self, item: WorkItem, verdict: OutRecord) -> OutRecord | None: ...


class ProduceStep(ProcessingStep[Outcome]):
    """Produces one record per outcome; forwards a :class:`Delivered` receipt per confirmation.

    The producer is idempotent (no duplicates or reordering from internal retries). A record
    whose delivery fails for good (``message.timeout.ms``) is produced again: its offset is
    never committed before it is delivered. Outcomes of revoked partitions are dropped.
    """

    def __init__(
        self,
        producer: Producer,
        builder: RecordBuilder,
        next_step: ProcessingStep[Delivered],
        metrics: Metrics,
        is_live: Callable[[Envelope], bool] = lambda _: True,
    ) -> None:
        self.next_step = next_step
        self._producer = producer
        self._builder = builder
        self._metrics = metrics
        self._is_live = is_live
        self._backlog: deque[tuple[Outcome, OutRecord]] = deque()
        self._awaiting = 0

    @property
    def pending(self) -> int:
        """Records not yet confirmed (queued locally or awaiting a delivery report)."""
        return len(self._backlog) + self._awaiting

    def submit(self, item: Outcome) -> None:
        if not self._is_live(item.envelope):
            return
        outcome, record = self._build(item)
        self._backlog.append((outcome, record))
        if isinstance(outcome, WorkItem):
            latest = self._builder.latest(outcome, record)
            if latest is not None:
                self._produce_best_effort(latest)
        self._drain()

    def poll(self) -> None:
        self._producer.poll(0)
        self._drain()
        self.next_step.poll()

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.pending and remaining(deadline) != 0.0:
            self._drain()
            left = remaining(deadline)
            self._producer.poll(0.05 if left is None else min(0.05, left))
        self.next_step.join(remaining(deadline))

    def close(self) -> None:
        self.next_step.close()

    def _build(self, item: Outcome) -> tuple[Outcome, OutRecord]:
        """The record of ``item``; a verdict that cannot be built becomes a dead letter."""
        if isinstance(item, WorkItem):
            try:
                return item, self._builder.verdict(item)
            except Exception as exc:
                log.exception("verdict_build_failed", event_id=item.event_id)
                item = Failure(item.envelope, ErrorCode.INTERNAL_ERROR, repr(exc), event=item.event)
        return item, self._builder.dead_letter(item)

    def _drain(self) -> None:
        while self._backlog:
            item, record = self._backlog[0]
            if not self._is_live(item.envelope):  # revoked or rewound meanwhile
                self._backlog.popleft()
                continue
            try:
                self._producer.produce(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    headers=list(record.headers),
                    on_delivery=partial(self._on_delivery, item, record),
                )
            except BufferError:  # local queue full: serve callbacks, try again next poll
                self._producer.poll(0)
                return
            except KafkaException as exc:  # transaction in error: the commit step aborts it
                log.warning("produce_refused", error=str(exc))
                return
            self._backlog.popleft()
            self._awaiting += 1

    def _produce_best_effort(self, record: OutRecord) -> None:
        try:
            self._producer.produce(
                record.topic, value=record.value, key=record.key, headers=list(record.headers)
            )
        except BufferError:
            log.warning("latest_verdict_skipped", topic=record.topic)

    def _on_delivery(
        self, item: Outcome, record: OutRecord, err: KafkaError | None, msg: Message
    ) -> None:
        self._awaiting -= 1
        env = item.envelope
        if err is not None:
            self._metrics.produce_errors.inc()
            log.error(
                "delivery_failed", topic=record.topic, error=str(err), source_offset=env.offset
            )
            if self._is_live(env):
                self._backlog.append((item, record))
            return
        now = time.time()
        if isinstance(item, WorkItem) and item.prediction is not None:
            label = "synthetic" if item.prediction.is_synthetic else "real"
            self._metrics.verdicts.labels(label=label).inc()
            log.info(
                "verdict",
                event_id=item.event_id,
                label=label,
                score=round(item.prediction.score, 4),
                source=f"{env.topic}[{env.partition}]@{env.offset}",
            )
        elif isinstance(item, Failure):
            self._metrics.dead_letters.labels(code=item.code).inc()
            log.warning(
                "dead_letter",
                event_id=item.event_id,
                code=item.code,
                reason=item.message,
                source=f"{env.topic}[{env.partition}]@{env.offset}",
            )
        if env.timestamp_ms is not None:
            self._metrics.end_to_end.observe(max(0.0, now - env.timestamp_ms / 1000.0))
        self.next_step.submit(Delivered(env, now))

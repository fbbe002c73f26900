"""Produce step: verdicts and dead letters to Kafka, confirmed by delivery callbacks."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import structlog

from consumer.errors import OutputRejected
from consumer.items import Delivered, Envelope, Failure, Outcome, OutRecord, WorkItem
from consumer.kafka import BrokerCode, BrokerError, PartitionOffset
from consumer.kafka.clients import ProducerClient, ProducerHandle
from consumer.output.destination import DestinationGate, is_destination_error
from consumer.output.records import RecordBuilder, output_record
from consumer.output.topic_watch import OutputTopicWatches
from consumer.pipeline.steps.base import ProcessingStep, remaining
from consumer.serving.metrics import Metrics, sane_age

__all__ = ["ProduceStep"]

log = structlog.get_logger("consumer.produce")

Stage = Literal["verdict", "dead_letter", "minimal", "undeliverable"]
_NEXT: dict[Stage, Stage] = {
    "verdict": "dead_letter",
    "dead_letter": "minimal",
    "minimal": "undeliverable",
    "undeliverable": "undeliverable",
}
_MAX_REMEMBERED = 10_000
"""Source messages whose output failed for good, remembered across an exactly-once rewind."""


@dataclass(slots=True)
class _Pending:
    item: Outcome
    record: OutRecord
    stage: Stage
    attempts: int = 0
    receipted: bool = False
    """Its receipt went to the next step when it was held (exactly-once)."""
    latest: OutRecord | None = None
    """The latest-verdict record to produce with it (held until release)."""


class ProduceStep(ProcessingStep[Outcome]):
    """Produces one record per outcome; forwards a :class:`Delivered` receipt per confirmation.

    The producer is idempotent (no duplicates or reordering from internal retries). A delivery
    that fails with a retriable error (``message.timeout.ms`` passed) is produced again, up to
    ``max_attempts`` in all. A delivery that fails for good (a non-retriable error such as
    ``MSG_SIZE_TOO_LARGE``, or the attempts spent) never blocks the records behind it: a verdict
    becomes an ``output_rejected`` dead letter, a dead letter is sent again in its minimal form
    (no original value, headers or key), and when even that fails the source message is
    *undeliverable*: logged once, counted, handed to ``on_undeliverable`` and never confirmed
    (so its offset is never committed). ``on_failure`` hears of every failed delivery (the
    exactly-once step aborts the transaction). Outcomes of revoked partitions are dropped.

    A destination error (the topic is unknown, deleted or not authorized:
    :mod:`consumer.output.destination`) is none of these: the record is kept at the head of the
    queue, ``gate`` holds all output (not ready) until the topic is writable again, and no attempt
    is spent, so a missing topic never turns a stream into dead letters. ``watch`` notices a
    deleted and re-created verdict topic (:mod:`consumer.output.topic_watch`; exactly-once aborts).

    With ``hold`` (exactly-once) outputs are not produced as they come: each is *held* and its
    receipt goes to the next step at once (its work is finished), and :meth:`release` produces
    those the commit step is about to commit (a prefix of each partition), so a transaction
    holds only outputs whose offsets it commits, and it stays open on the broker only from
    the release to the commit, however slow the model (issue 19). Any failed delivery of a
    released record aborts the transaction (``on_failure``).
    """

    def __init__(
        self,
        producers: ProducerHandle,
        builder: RecordBuilder,
        next_step: ProcessingStep[Delivered],
        metrics: Metrics,
        is_live: Callable[[Envelope], bool] = lambda _: True,
        *,
        max_attempts: int = 3,
        on_failure: Callable[[str], None] = lambda _: None,
        on_undeliverable: Callable[[Envelope, str], None] = lambda _e, _r: None,
        gate: DestinationGate | None = None,
        watch: OutputTopicWatches | None = None,
        hold: bool = False,
    ) -> None:
        self.next_step = next_step
        self._producers = producers
        self._generation = producers.generation
        self._builder = builder
        self._metrics = metrics
        self._is_live = is_live
        self._max_attempts = max(1, max_attempts)
        self._on_failure = on_failure
        self._on_undeliverable = on_undeliverable
        self.gate = gate if gate is not None else DestinationGate()
        self.watch = watch
        if watch is not None and hold:  # outputs to the old topic must not commit
            watch.set_on_gone(on_failure)
        """Notices a deleted and re-created verdict topic (:mod:`consumer.output.topic_watch`)."""
        self._hold = hold
        self._held: list[_Pending] = []
        self._backlog: deque[_Pending] = deque()
        self._awaiting = 0
        self._rejected: OrderedDict[tuple[str, int, int], tuple[Stage, str]] = OrderedDict()
        self._poll_error = ""

    @property
    def pending(self) -> int:
        """Records produced or to produce, not yet confirmed (queued locally or awaiting a
        delivery report); held records are not counted."""
        return len(self._backlog) + self._awaiting

    @property
    def held(self) -> int:
        """Outputs held for a later transaction (exactly-once)."""
        return len(self._held)

    def release(self, offsets: dict[tuple[str, int], int]) -> None:
        """Produce the held outputs of messages before ``offsets`` (per partition); drop
        those of revoked or rewound partitions; keep the rest held."""
        keep: list[_Pending] = []
        for pending in self._held:
            env = pending.item.envelope
            if not self._is_live(env):
                continue
            if env.offset < offsets.get(env.tp, -1):
                if pending.latest is not None:
                    self._produce_best_effort(pending.latest)
                self._backlog.append(pending)
            else:
                keep.append(pending)
        self._held = keep
        self._drain()

    def deliver(self, timeout: float) -> bool:
        """Serve delivery reports until every released record is confirmed (True) or
        ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while self.pending and remaining(deadline) != 0.0:
            self._drain()
            self._serve(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.pending == 0

    @property
    def _producer(self) -> ProducerClient:
        """The handle's producer; after a replacement the old one's records were all aborted
        (and their reports served by its ``close``): nothing is awaited any more."""
        if self._producers.generation != self._generation:
            self._generation = self._producers.generation
            self._awaiting = 0
            self._poll_error = ""
        producer: ProducerClient = self._producers.current
        return producer

    def submit(self, item: Outcome) -> None:
        if not self._is_live(item.envelope):
            return
        pending = self._build(item)
        if pending is None:
            return
        latest = None
        if pending.stage == "verdict" and isinstance(pending.item, WorkItem):
            latest = self._builder.latest(pending.item, pending.record)
        if self._hold:
            pending.latest, pending.receipted = latest, True
            self._held.append(pending)
            env = pending.item.envelope
            self.next_step.submit(Delivered(env, time.time(), isinstance(pending.item, Failure)))
            return
        self._backlog.append(pending)
        if latest is not None:
            self._produce_best_effort(latest)
        self._drain()

    def poll(self) -> None:
        self._serve(0)
        self._drain()
        if self.watch is not None:
            self.watch.tick()
        self.next_step.poll()

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.pending and remaining(deadline) != 0.0:
            self._drain()
            left = remaining(deadline)
            self._serve(0.05 if left is None else min(0.05, left))
        self.next_step.join(remaining(deadline))

    def close(self) -> None:
        self.next_step.close()

    def _serve(self, timeout: float) -> None:
        """Serve delivery reports. A producer in a fatal state raises here: tell the commit
        step (exactly-once replaces the producer; at-least-once stops on the client error)."""
        try:
            self._producer.poll(timeout)
        except BrokerError as exc:
            error = str(exc)
            if error != self._poll_error:
                log.error("producer_failed", error=error)
                self._poll_error = error
            self._on_failure(error)

    def _build(self, item: Outcome) -> _Pending | None:
        """The record of ``item``; a verdict that cannot be built becomes a dead letter.

        A source message whose output already failed for good (before an exactly-once rewind)
        goes straight to the next stage.
        """
        env = item.envelope
        known = self._rejected.get(_coords(env))
        if known is not None:
            stage, reason = known
            return self._stage(item, stage, reason)
        outcome, record = output_record(self._builder, item)
        return _Pending(
            outcome, record, "verdict" if isinstance(outcome, WorkItem) else "dead_letter"
        )

    def _stage(self, item: Outcome, stage: Stage, reason: str) -> _Pending | None:
        """The record of ``item`` at ``stage`` after a permanent failure (None: undeliverable)."""
        env = item.envelope
        if stage == "undeliverable":
            self._metrics.undeliverable.inc()
            self._on_undeliverable(env, reason)
            return None
        if isinstance(item, WorkItem):  # its verdict was refused for good
            refused = OutputRejected(f"verdict not delivered: {reason}")
            item = Failure.of(env, refused, event=item.event)
        minimal = stage == "minimal"
        return _Pending(item, self._builder.dead_letter(item, minimal=minimal), stage)

    def _drain(self) -> None:
        if self._backlog and not self.gate.open(self._producer):
            return
        while self._backlog and not self.gate.blocked:
            pending = self._backlog[0]
            if not self._is_live(pending.item.envelope):  # revoked or rewound meanwhile
                self._backlog.popleft()
                continue
            record = pending.record
            try:
                self._producer.produce(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    headers=list(record.headers),
                    on_delivery=partial(self._on_delivery, pending),
                )
            except BufferError:  # local queue full: serve callbacks, try again next poll
                self._serve(0)
                return
            except BrokerError as error:
                if is_destination_error(error):  # kept at the head; output held
                    self.gate.fault(record.topic, error)
                    return
                if _transaction_state(error):  # the commit step aborts and rewinds
                    log.warning("produce_refused", error=str(error))
                    self._on_failure(str(error))
                    return
                self._backlog.popleft()  # refused for good (e.g. too large): next stage
                self._give_up(pending, error)
                continue
            self._backlog.popleft()
            self._awaiting += 1

    def _produce_best_effort(self, record: OutRecord) -> None:
        try:
            self._producer.produce(
                record.topic, value=record.value, key=record.key, headers=list(record.headers)
            )
        except (BufferError, BrokerError) as exc:
            log.warning("latest_verdict_skipped", topic=record.topic, error=str(exc))

    def _give_up(self, pending: _Pending, error: BrokerError) -> None:
        """``pending`` failed for good: remember it and queue its next stage (never block)."""
        env = pending.item.envelope
        reason = f"{pending.record.topic}: {error.reason}"
        stage = _NEXT[pending.stage]
        self._on_failure(reason)
        log.error(
            "delivery_failed_permanently",
            topic=pending.record.topic,
            error=error.reason,
            code=error.code,
            attempts=pending.attempts,
            next=stage,
            source=f"{env.topic}[{env.partition}]@{env.offset}",
        )
        self._rejected[_coords(env)] = (stage, reason)
        while len(self._rejected) > _MAX_REMEMBERED:
            self._rejected.popitem(last=False)
        following = self._stage(pending.item, stage, reason)
        if following is not None:
            following.receipted = pending.receipted
            self._backlog.append(following)

    def _on_delivery(
        self, pending: _Pending, err: BrokerError | None, _where: PartitionOffset | None
    ) -> None:
        self._awaiting -= 1
        item, record = pending.item, pending.record
        env = item.envelope
        if err is not None:
            self._metrics.produce_errors.inc()
            if not self._is_live(env):
                return
            if is_destination_error(err):  # not the record's fault: held, no attempt spent
                self.gate.fault(record.topic, err)
                self._on_failure(err.reason)  # exactly-once: the transaction must abort
                self._backlog.appendleft(pending)
                return
            pending.attempts += 1
            if err.retriable and pending.attempts < self._max_attempts:
                self._on_failure(err.reason)
                log.warning(
                    "delivery_retry",
                    topic=record.topic,
                    error=err.reason,
                    attempt=pending.attempts,
                    source=f"{env.topic}[{env.partition}]@{env.offset}",
                )
                self._backlog.append(pending)
            else:
                self._give_up(pending, err)
            return
        self._rejected.pop(_coords(env), None)
        now = time.time()
        if self.watch is not None:  # a verdict or a dead letter, by the topic it went to
            self.watch.acknowledged(record.topic, env)
        if isinstance(item, WorkItem) and item.prediction is not None:
            label = item.prediction.label
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
        age = sane_age(env.timestamp_ms, now)  # a 1971 or 2100 stamp is not a latency
        if age is not None:
            self._metrics.end_to_end.observe(age)
        if not pending.receipted:
            self.next_step.submit(Delivered(env, now, isinstance(item, Failure)))


def _coords(env: Envelope) -> tuple[str, int, int]:
    return (env.topic, env.partition, env.offset)


def _transaction_state(error: BrokerError) -> bool:
    """The producer refuses because of its transaction state, not because of the record."""
    return (
        error.code in (BrokerCode.STATE, BrokerCode.FENCED, BrokerCode.FATAL)
        or error.fatal
        or error.txn_requires_abort
    )

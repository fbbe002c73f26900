"""The poll loop: consume, submit to the pipeline, keep polling, rebalance, shut down.

The loop never blocks on work: inference runs in a worker thread and fetches in a pool, so
``consume()`` is called every few milliseconds and ``max.poll.interval.ms`` is never exceeded.
Backpressure pauses the assigned partitions; messages returned while the pipeline is full are
*carried* and offered again. librdkafka keeps a partition's pause flag across a lost assignment
and its re-assignment, so every assignment explicitly applies the state the loop believes in
(paused, resumed, or stuck behind an undeliverable record) to every assigned partition.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from consumer.items import Envelope
from consumer.kafka import BrokerCode, BrokerError, PartitionOffset
from consumer.kafka.clients import ConsumerClient
from consumer.kafka.messages import to_envelope
from consumer.pipeline.backpressure import Backpressure
from consumer.pipeline.commit_tracker import CommitTracker, Partition
from consumer.pipeline.steps.base import ProcessingStep
from consumer.pipeline.steps.commit import Committer
from consumer.serving.carried import CarriedMessages
from consumer.serving.health import HealthState
from consumer.serving.metrics import Metrics

__all__ = ["StreamProcessor", "Undeliverable"]

log = structlog.get_logger("consumer.serving.poll_loop")

_IDLE_TIMEOUT_S = 0.1
_BUSY_TIMEOUT_S = 0.005
_DRAIN_SHARE = 0.8
"""Share of the shutdown grace period the drain may take; the rest is for close (flush,
final commit, leaving the group)."""


class Undeliverable:
    """Source messages whose output and dead letter both failed for good (see
    :class:`~consumer.pipeline.steps.produce.ProduceStep`), reported by the produce step and
    handled by the loop on its next turn (it pauses their partitions)."""

    def __init__(self) -> None:
        self._reported: list[Envelope] = []

    def report(self, env: Envelope, reason: str) -> None:
        """Logged once per record; its offset is never committed."""
        log.error(
            "undeliverable",
            source=f"{env.topic}[{env.partition}]@{env.offset}",
            reason=reason,
            action="partition paused until it is reassigned or the service restarts",
        )
        self._reported.append(env)

    def take(self) -> list[Envelope]:
        reported, self._reported = self._reported, []
        return reported


class StreamProcessor:
    """Drives one consumer and one pipeline (``head`` ... ``commit``)."""

    def __init__(
        self,
        consumer: ConsumerClient,
        topics: list[str],
        head: ProcessingStep[Envelope],
        commit: Committer,
        tracker: CommitTracker,
        backpressure: Backpressure,
        metrics: Metrics,
        health: HealthState,
        *,
        consume_batch: int = 100,
        revoke_drain_s: float = 10.0,
        next_due: Callable[[], float | None] = lambda: None,
        undeliverable: Undeliverable | None = None,
    ) -> None:
        self._consumer = consumer
        self._topics = topics
        self._head = head
        self._commit = commit
        self._tracker = tracker
        self._backpressure = backpressure
        self._metrics = metrics
        self._health = health
        self._consume_batch = consume_batch
        self._revoke_drain_s = revoke_drain_s
        self._next_due = next_due
        self._undeliverable = undeliverable or Undeliverable()
        self._carried = CarriedMessages()  # offered round-robin by partition
        self._closing = False
        self._stuck: set[Partition] = set()
        self._fetching: set[Partition] | None = None  # partitions left fetching while paused

    # -- main loop -------------------------------------------------------------------------

    def run(self, stop: threading.Event, grace_s: float) -> None:
        """Run until ``stop`` is set, then drain, commit and close within ``grace_s``."""
        self._commit.start()
        self._consumer.subscribe(
            self._topics,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info("subscribed", topics=self._topics)
        try:
            while not stop.is_set():
                self.run_once()
        finally:
            self._shutdown(grace_s)

    def run_once(self) -> None:
        """One loop turn: heartbeat, consume, submit, poll the pipeline, resume if drained."""
        self._health.beat()
        self._offer_carried()
        for msg in self._consumer.consume(self._consume_batch, self._poll_timeout()):
            if isinstance(msg, BrokerError):
                self._on_consume_error(msg)
                continue
            try:
                epoch = self._tracker.epoch((msg.topic, msg.partition))
            except KeyError:  # not (or no longer) assigned: it will be fetched again
                continue
            self._carried.append(to_envelope(msg, epoch))
        self._offer_carried()
        if self._backpressure.paused:
            self._refresh_look_ahead()
        self._head.poll()
        for env in self._undeliverable.take():
            self._stop_partition(env)
        in_flight = self._tracker.in_flight()
        if self._commit.barrier and in_flight == 0:
            self._commit.on_drained()
        if self._backpressure.on_progress(in_flight, carrying=bool(self._carried)):
            self._set_paused(False)
        self._metrics.in_flight.set(in_flight)

    def _poll_timeout(self) -> float:
        if self._carried or self._tracker.in_flight() > 0:
            return _BUSY_TIMEOUT_S
        due = self._next_due()
        return _IDLE_TIMEOUT_S if due is None else min(_IDLE_TIMEOUT_S, due)

    def _offer_carried(self) -> None:
        """Submit carried messages until the pipeline rejects one: in order within a
        partition, partitions in turn (a backlog in one does not starve the others)."""
        while self._carried:
            env = self._carried.peek()
            if not self._tracker.is_current(env.tp, env.epoch):  # revoked since consumed
                self._carried.pop()
                continue
            if self._commit.barrier or not self._backpressure.admits(self._tracker.in_flight()):
                self._reject()
                return
            if self._tracker.regresses(env.tp, env.offset) is not None:
                self._start_over(env)
                continue
            self._head.submit(env)
            self._carried.pop()
            self._tracker.register(env.tp, env.offset)
            self._metrics.events_in.labels(topic=env.topic).inc()

    def _start_over(self, env: Envelope) -> None:
        """``env``'s partition went back in offsets (its topic was deleted and re-created, or
        its log truncated): start its bookkeeping over instead of stopping (issue 19). Work
        of the old incarnation is dropped (a new epoch), and the partition is assigned again
        at ``env``'s offset: librdkafka otherwise kept fetching from the old position, reset
        to the beginning every half second, and the new records were processed again and
        again."""
        log.warning(
            "input_offsets_started_over",
            topic=env.topic,
            partition=env.partition,
            offset=env.offset,
            after=self._tracker.regresses(env.tp, env.offset),
            action="in-flight work of the partition dropped; tracking starts over",
        )
        self._drop_carried([env.tp])
        self._tracker.restart(env.tp)
        tp = PartitionOffset(env.topic, env.partition)
        self._consumer.incremental_unassign([tp])
        self._consumer.incremental_assign([PartitionOffset(env.topic, env.partition, env.offset)])
        self._apply_pause([tp])

    def _reject(self) -> None:
        if self._backpressure.on_rejected():
            self._set_paused(True)

    def _set_paused(self, paused: bool) -> None:
        assignment = self._consumer.assignment()
        self._apply_pause(assignment)
        self._metrics.paused.set(1 if paused else 0)
        log.info(
            "paused" if paused else "resumed",
            partitions=len(assignment),
            in_flight=self._tracker.in_flight(),
        )

    def _halted(self, tp: Partition) -> bool:
        """Whether partition ``tp`` must not fetch now. Under backpressure a partition with
        nothing carried keeps fetching while less than one consume batch is carried: its
        messages join the round-robin instead of waiting until another partition's backlog
        has drained (issue 19: one partition got no verdict for ~130 s)."""
        if tp in self._stuck:
            return True
        if not self._backpressure.paused:
            return False
        return self._carried.holds(tp) or len(self._carried) >= self._consume_batch

    def _refresh_look_ahead(self) -> None:
        """Under backpressure: re-apply the pause flags when the partitions left fetching
        change (one carried a message, or the carried batch filled up)."""
        assignment = self._consumer.assignment()
        fetching = {(p.topic, p.partition) for p in assignment} - {
            (p.topic, p.partition) for p in assignment if self._halted((p.topic, p.partition))
        }
        if fetching != self._fetching:
            self._apply_pause(assignment)

    def _apply_pause(self, partitions: list[PartitionOffset]) -> None:
        """Make librdkafka's pause flag of ``partitions`` what the loop believes it is."""
        stop = [self._halted((p.topic, p.partition)) for p in partitions]
        self._fetching = {
            (p.topic, p.partition) for p, s in zip(partitions, stop, strict=True) if not s
        }
        paused = [p for p, s in zip(partitions, stop, strict=True) if s]
        running = [p for p, s in zip(partitions, stop, strict=True) if not s]
        if paused:
            self._consumer.pause(paused)
        if running:
            self._consumer.resume(running)

    def _stop_partition(self, env: Envelope) -> None:
        """Neither the output nor the dead letter of ``env`` could be written, for good.

        Its offset is never committed (at-least-once keeps it for a restart or the next owner);
        its partition is paused so that the commit tracker does not grow behind it; the other
        partitions go on; readiness fails and the metric counts it.
        """
        if env.tp in self._stuck or not self._tracker.is_current(env.tp, env.epoch):
            return
        self._stuck.add(env.tp)
        self._consumer.pause([PartitionOffset(env.topic, env.partition)])
        self._drop_carried([env.tp])
        self._update_stuck()

    def _update_stuck(self) -> None:
        self._health.stuck_partitions = len(self._stuck)
        self._metrics.stuck_partitions.set(len(self._stuck))

    def _on_consume_error(self, err: BrokerError) -> None:
        if err.code == BrokerCode.PARTITION_EOF:
            return
        if err.fatal:
            raise err
        log.warning("consume_error", error=str(err), retriable=err.retriable)

    # -- rebalance callbacks (run inside consume(), on the loop thread) -------------------

    def _on_assign(self, consumer: ConsumerClient, partitions: list[PartitionOffset]) -> None:
        self._tracker.assign(_tps(partitions))
        consumer.incremental_assign(partitions)
        # librdkafka may keep a pause flag from an earlier (lost) assignment: set it explicitly.
        self._apply_pause(consumer.assignment())
        self._after_rebalance("assign", partitions)

    def _on_revoke(self, consumer: ConsumerClient, partitions: list[PartitionOffset]) -> None:
        tps = _tps(partitions)
        self._drop_carried(tps)
        if not self._closing:
            drain = None if self._commit.drains_all else tps
            self._drain(drain, time.monotonic() + self._revoke_drain_s)
        try:
            self._commit.commit_sync(tps)
        except BrokerError as exc:  # the generation may already be gone
            log.warning("revoke_commit_failed", error=str(exc))
        self._forget(consumer, partitions, "revoke")

    def _on_lost(self, consumer: ConsumerClient, partitions: list[PartitionOffset]) -> None:
        self._drop_carried(_tps(partitions))
        self._forget(consumer, partitions, "lost")
        self._commit.on_lost()  # exactly-once: abort the open transaction and rewind

    def _drain(self, tps: list[Partition] | None, deadline: float) -> None:
        """Let in-flight work of ``tps`` (None: all) finish, bounded by ``deadline``."""
        while self._tracker.in_flight(tps) > 0 and time.monotonic() < deadline:
            self._health.beat()
            self._head.poll()
            time.sleep(_BUSY_TIMEOUT_S)

    def _forget(
        self, consumer: ConsumerClient, partitions: list[PartitionOffset], kind: str
    ) -> None:
        dropped = self._tracker.revoke(_tps(partitions))
        self._stuck.difference_update(_tps(partitions))  # the next owner tries again
        self._update_stuck()
        self._metrics.dropped_revoked.inc(dropped)
        consumer.incremental_unassign(partitions)
        self._after_rebalance(kind, partitions, dropped=dropped)

    def _after_rebalance(self, kind: str, partitions: list[PartitionOffset], **extra: int) -> None:
        assigned = len(self._tracker.assigned())
        self._health.assigned = assigned
        self._metrics.assigned.set(assigned)
        self._metrics.rebalances.labels(kind=kind).inc()
        log.info(
            kind,
            partitions=[f"{p.topic}[{p.partition}]" for p in partitions],
            assigned=assigned,
            **extra,
        )

    def _drop_carried(self, tps: list[Partition]) -> None:
        self._carried.drop(tps)

    # -- shutdown --------------------------------------------------------------------------

    def _shutdown(self, grace_s: float) -> None:
        """Stop fetching, finish in-flight work, flush, commit, close: all within ``grace_s``."""
        began = time.monotonic()
        self._health.stopping = True
        self._closing = True
        self._carried.clear()  # never registered: redelivered after the restart
        log.info("draining", in_flight=self._tracker.in_flight())
        try:
            self._consumer.pause(self._consumer.assignment())
            budget = max(0.0, grace_s * _DRAIN_SHARE - (time.monotonic() - began))
            self._head.join(budget)
        except Exception:
            log.exception("drain_failed")
        left = self._tracker.in_flight()
        self._head.close()
        self._consumer.close()
        log.info("closed", seconds=round(time.monotonic() - began, 3), left_in_flight=left)


def _tps(partitions: list[PartitionOffset]) -> list[Partition]:
    return [(p.topic, p.partition) for p in partitions]

"""Commit step, always last: turns delivery receipts into committed offsets."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from consumer.commit_tracker import CommitTracker, Partition
from consumer.items import Delivered
from consumer.metrics import Metrics
from consumer.steps.base import ProcessingStep

__all__ = ["CommitPolicy", "CommitStep"]

log = structlog.get_logger("consumer.commit")

# Commit errors that mean "not ours any more / try later", never a reason to stop.
_BENIGN = {
    KafkaError._NO_OFFSET,
    KafkaError._STATE,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._WAIT_COORD,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError._ASSIGNMENT_LOST,
}


@dataclass(frozen=True)
class CommitPolicy:
    """When to commit asynchronously during normal operation."""

    min_interval_s: float = 1.0


class CommitStep(ProcessingStep[Delivered]):
    """Marks receipts done in the :class:`CommitTracker`; commits per :class:`CommitPolicy`.

    Offsets are sent with ``commit(offsets=..., asynchronous=True)`` from ``poll`` and
    synchronously from ``join``/``commit_sync`` (revocation, shutdown). Commit results arrive
    through :meth:`on_commit` (the consumer's ``on_commit`` callback).

    The processor also reads :attr:`barrier` and :attr:`drains_all` and calls
    :meth:`on_drained`: hooks for the transactional variant
    (:class:`~consumer.steps.transaction.TransactionalCommitStep`), inert here.
    """

    drains_all = False
    """On revoke, wait for the work of every partition (not only the revoked ones)."""

    def __init__(
        self,
        consumer: Consumer,
        tracker: CommitTracker,
        metrics: Metrics,
        policy: CommitPolicy = CommitPolicy(),
    ) -> None:
        self._consumer = consumer
        self._tracker = tracker
        self._metrics = metrics
        self._policy = policy
        self._last_commit = time.monotonic()

    @property
    def barrier(self) -> bool:
        """True while the pipeline must drain (take no new messages) before the next commit."""
        return False

    def on_drained(self) -> None:
        """Called by the loop when :attr:`barrier` is set and nothing is in flight."""

    def on_failure(self, reason: str) -> None:
        """A delivery failed: at-least-once re-produces it (nothing to do here)."""

    def on_lost(self) -> None:
        """Partitions were lost: nothing to abort in at-least-once mode."""

    def submit(self, item: Delivered) -> None:
        env = item.envelope
        self._tracker.done(env.tp, env.offset, env.epoch)

    def poll(self) -> None:
        if time.monotonic() - self._last_commit >= self._policy.min_interval_s:
            self._commit(self._tracker.committable(), asynchronous=True)

    def join(self, timeout: float | None = None) -> None:
        self.commit_sync()

    def close(self) -> None:
        """Nothing to release: the processor owns the consumer."""

    def commit_sync(self, partitions: Iterable[Partition] | None = None) -> dict[Partition, int]:
        """Commit what is committable now (for ``partitions`` or all) and wait for the result."""
        offsets = self._tracker.committable(partitions)
        self._commit(offsets, asynchronous=False)
        return offsets

    def on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """Consumer ``on_commit`` callback (async and sync commits)."""
        failed = [(tp.topic, tp.partition) for tp in partitions if tp.error is not None]
        if err is not None and err.code() != KafkaError._NO_OFFSET:
            failed = [(tp.topic, tp.partition) for tp in partitions]
            log.warning("commit_failed", error=str(err))
        if failed:
            self._metrics.commits.labels(result="error").inc()
            self._tracker.forget_committed(failed)

    def _commit(self, offsets: dict[Partition, int], asynchronous: bool) -> None:
        self._last_commit = time.monotonic()
        if not offsets:
            return
        tps = [TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())]
        result: list[TopicPartition] | None = None
        try:
            if asynchronous:
                self._consumer.commit(offsets=tps, asynchronous=True)
            else:
                result = self._consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            self._metrics.commits.labels(result="error").inc()
            if error.code() not in _BENIGN and error.fatal():
                raise
            log.warning("commit_skipped", error=str(error), partitions=len(tps))
            return
        self._tracker.mark_committed(offsets)
        self._metrics.commits.labels(result="ok").inc()
        failed = [tp for tp in result or [] if tp.error is not None]
        if failed:
            self.on_commit(None, failed)
        log.debug("committed", offsets={f"{t}[{p}]": o for (t, p), o in offsets.items()})

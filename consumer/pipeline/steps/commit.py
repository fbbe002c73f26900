"""Commit step, always last: turns delivery receipts into committed offsets."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import structlog

from consumer.items import Delivered
from consumer.kafka import BrokerCode, BrokerError, PartitionOffset
from consumer.kafka.clients import CommitResults, ConsumerClient
from consumer.pipeline.commit_tracker import CommitTracker, Partition
from consumer.pipeline.steps.base import ProcessingStep
from consumer.serving.metrics import Metrics

__all__ = ["CommitPolicy", "CommitStep", "Committer"]

log = structlog.get_logger("consumer.commit")

# Commit errors that mean "not ours any more / try later", never a reason to stop.
_BENIGN = {
    BrokerCode.NO_OFFSET,
    BrokerCode.STATE,
    BrokerCode.UNKNOWN_PARTITION,
    BrokerCode.WAIT_COORD,
    BrokerCode.ILLEGAL_GENERATION,
    BrokerCode.UNKNOWN_MEMBER_ID,
    BrokerCode.REBALANCE_IN_PROGRESS,
    BrokerCode.NOT_COORDINATOR,
    BrokerCode.COORDINATOR_NOT_AVAILABLE,
    BrokerCode.ASSIGNMENT_LOST,
}


@dataclass(frozen=True)
class CommitPolicy:
    """When to commit asynchronously during normal operation."""

    min_interval_s: float = 1.0


class Committer(Protocol):
    """What the poll loop needs of the last step, besides the step lifecycle."""

    @property
    def barrier(self) -> bool:
        """True while the pipeline must drain (admit no message) before the next commit."""
        ...

    @property
    def drains_all(self) -> bool:
        """On revoke, wait for the work of every partition (not only the revoked ones)."""
        ...

    def start(self) -> None:
        """Before the first message (exactly-once: initialise the transactional producer)."""

    def on_drained(self) -> None:
        """Called by the loop when :attr:`barrier` is set and nothing is in flight."""

    def commit_sync(self, partitions: Iterable[Partition] | None = None) -> dict[Partition, int]:
        """Commit what is committable now (revocation) and wait for the result."""
        ...

    def on_lost(self) -> None:
        """Partitions were lost (not revoked): nothing of theirs may be committed."""


class CommitStep(ProcessingStep[Delivered]):
    """Marks receipts done in the :class:`CommitTracker`; commits per :class:`CommitPolicy`.

    Offsets are sent with ``commit(offsets=..., asynchronous=True)`` from ``poll`` and
    synchronously from ``join``/``commit_sync`` (revocation, shutdown). Failed asynchronous
    commits come back through ``results`` (the consumer's ``on_commit`` callback) and are sent
    again. Implements :class:`Committer` (``barrier``/``on_drained`` are inert here: they are
    the exactly-once step's, :class:`~consumer.pipeline.steps.transaction.TransactionalCommitStep`).
    """

    drains_all = False

    def __init__(
        self,
        consumer: ConsumerClient,
        tracker: CommitTracker,
        metrics: Metrics,
        policy: CommitPolicy = CommitPolicy(),
        results: CommitResults | None = None,
    ) -> None:
        self._consumer = consumer
        self._tracker = tracker
        self._metrics = metrics
        self._policy = policy
        self._results = results or CommitResults()
        self._last_commit = time.monotonic()

    @property
    def barrier(self) -> bool:
        """True while the pipeline must drain (take no new messages) before the next commit."""
        return False

    def start(self) -> None:
        """Nothing to prepare."""

    def on_drained(self) -> None:
        """Never called: there is no barrier."""

    def on_failure(self, reason: str) -> None:
        """A delivery failed: at-least-once re-produces it (nothing to do here)."""

    def on_lost(self) -> None:
        """Partitions were lost: nothing to abort in at-least-once mode."""

    def submit(self, item: Delivered) -> None:
        env = item.envelope
        self._tracker.done(env.tp, env.offset, env.epoch)

    def poll(self) -> None:
        self._forget_failed(self._results.take_failed())
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

    def _forget_failed(self, failed: list[Partition]) -> None:
        if failed:
            self._metrics.commits.labels(result="error").inc()
            self._tracker.forget_committed(failed)

    def _commit(self, offsets: dict[Partition, int], asynchronous: bool) -> None:
        self._last_commit = time.monotonic()
        if not offsets:
            return
        tps = [PartitionOffset(t, p, o) for (t, p), o in sorted(offsets.items())]
        result: list[PartitionOffset] | None = None
        try:
            if asynchronous:
                self._consumer.commit(offsets=tps, asynchronous=True)
            else:
                result = self._consumer.commit(offsets=tps, asynchronous=False)
        except BrokerError as error:
            self._metrics.commits.labels(result="error").inc()
            if error.code not in _BENIGN and error.fatal:
                raise
            log.warning("commit_skipped", error=str(error), partitions=len(tps))
            return
        self._tracker.mark_committed(offsets)
        self._metrics.commits.labels(result="ok").inc()
        self._forget_failed(
            [(tp.topic, tp.partition) for tp in result or [] if tp.error is not None]
        )
        log.debug("committed", offsets={f"{t}[{p}]": o for (t, p), o in offsets.items()})

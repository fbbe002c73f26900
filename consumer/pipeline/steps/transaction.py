"""Exactly-once commit step: verdicts, dead letters and input offsets in one Kafka transaction.

The producer is transactional (``transactional.id`` = prefix + stable instance id);
:meth:`~TransactionalCommitStep.start` initialises it (the constructor does no I/O). The produce
step *holds* finished outputs (:meth:`~consumer.pipeline.steps.produce.ProduceStep.release`) and
their receipts mark the messages done at once. Every ``commit_interval_s`` the step takes the
committable offsets (per partition, the prefix of finished messages), releases the held outputs
of exactly those messages, waits for their delivery reports, then sends the offsets with
``send_offsets_to_transaction`` and commits. Work still on the model goes on meanwhile and
lands in a later transaction: a transaction never contains the output of a message whose
offset it does not also commit, and it is open on the broker only from the release to the
commit (seconds), so a slow model cannot push it past ``transaction.timeout.ms`` (issue 19:
the drain of everything in flight before each commit did). On an abortable error the
transaction is aborted and the loop *rewinds* (every partition seeks back to its committed
offset, in-flight and held work is dropped by an epoch change). A fatal error that says a
newer instance with the same id fenced this one stops the service; any other fatal error
replaces the producer (below). Any failed delivery (:meth:`on_failure`) and any lost
assignment (:meth:`on_lost`) abort too. An abort that cannot reach the broker is retried each
second; meanwhile the *barrier* stays up, so nothing enters the pipeline. Readers of the output
topics use ``isolation.level=read_committed``.

After an abort that followed lost contact with the cluster (a lost assignment, or an abort
that had to be retried) or a fatal transaction error, the producer is *replaced*
(:class:`~consumer.kafka.clients.ProducerHandle`, shared with the produce step;
``init_transactions`` of the same ``transactional.id`` aborts what the old
one left open): librdkafka (2.16) may keep a stale group coordinator after a broker restart,
and ``send_offsets_to_transaction`` then blocks forever, past its timeout (librdkafka issues
5456, 5511); and an abort retried across a broker restart can end in a fatal
``INVALID_TXN_STATE``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Protocol

import structlog

from consumer.items import Delivered
from consumer.kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    BrokerCode,
    BrokerError,
    PartitionOffset,
)
from consumer.kafka.clients import CommitResults, ConsumerClient, ProducerHandle
from consumer.pipeline.commit_tracker import CommitTracker, Partition
from consumer.pipeline.steps.commit import CommitPolicy, CommitStep
from consumer.serving.metrics import Metrics

__all__ = ["TransactionalCommitStep"]

ABORT_STUCK_S = 15.0
"""An abort still failing (retriable errors) after this long: replace the producer."""

log = structlog.get_logger("consumer.transaction")

DELIVER_TIMEOUT_S = 30.0
"""How long a synchronous commit (revocation, shutdown) waits for released outputs."""


class HeldOutputs(Protocol):
    """The produce step's face for the commit step (see :class:`ProduceStep`)."""

    @property
    def pending(self) -> int: ...

    def release(self, offsets: dict[Partition, int]) -> None: ...

    def deliver(self, timeout: float) -> bool: ...


class TransactionalCommitStep(CommitStep):
    """Commits outputs and offsets atomically; see the module docstring."""

    drains_all = True

    def __init__(
        self,
        consumer: ConsumerClient,
        producers: ProducerHandle,
        tracker: CommitTracker,
        metrics: Metrics,
        policy: CommitPolicy | None = None,
        results: CommitResults | None = None,
        *,
        timeout_s: float = 30.0,
        replaceable: bool = True,
        reset_to_beginning: bool = True,
    ) -> None:
        super().__init__(consumer, tracker, metrics, policy or CommitPolicy(), results)
        self._producers = producers
        self._replaceable = replaceable
        self._reset_to_beginning = reset_to_beginning
        self._renew = False
        self._uninitialised = False
        self._timeout_s = timeout_s
        self._dirty = False
        self._abort_requested: str | None = None
        self._aborting: str | None = None
        self._aborted = False
        self._abort_retry_at = 0.0
        self._abort_failing_since = 0.0
        self._releasing: dict[Partition, int] | None = None
        self.output: HeldOutputs | None = None
        """The produce step (set by the service once built; it is built after this step)."""

    def start(self) -> None:
        """Initialise the transactional producer (fences an older instance) and begin."""
        self._producer.init_transactions(self._timeout_s)
        self._producer.begin_transaction()

    @property
    def barrier(self) -> bool:
        """Up while an abort is pending or retried: nothing enters the pipeline."""
        return self._abort_requested is not None or self._aborting is not None

    def submit(self, item: Delivered) -> None:
        super().submit(item)
        self._dirty = True

    def on_failure(self, reason: str) -> None:
        """A delivery failed: the transaction cannot commit; abort it at the next poll."""
        if self._abort_requested is None and self._aborting is None:
            self._abort_requested = f"delivery failed: {reason}"

    @property
    def _producer(self) -> Any:
        """The current transactional producer
        (a :class:`~consumer.kafka.kafka_clients.KafkaProducer`)."""
        return self._producers.current

    def on_lost(self) -> None:
        """Partitions were lost: their outputs in the open transaction must not commit."""
        self._renew = True
        self._abort("assignment lost")

    def poll(self) -> None:
        reason = self._aborting or self._abort_requested
        if reason is not None:
            if time.monotonic() >= self._abort_retry_at:
                self._abort(reason)
            return
        if self._releasing is not None:
            if self.output is None or self.output.pending == 0:
                offsets, self._releasing = self._releasing, None
                self._commit_transaction(offsets)
            return
        elapsed = time.monotonic() - self._last_commit
        if self._dirty and elapsed >= self._policy.min_interval_s:
            self._last_commit = time.monotonic()
            offsets = self._tracker.committable()
            if offsets:
                self._releasing = offsets
                if self.output is not None:
                    self.output.release(offsets)

    def on_drained(self) -> None:
        """Nothing to do: commits do not wait for the pipeline to drain."""

    def join(self, timeout: float | None = None) -> None:
        """Shutdown: the upstream joins drained the pipeline; commit the last transaction."""
        self._commit_now()

    def close(self) -> None:
        """Nothing to release: after :meth:`join` only an empty transaction is open."""

    def commit_sync(self, partitions: Iterable[Partition] | None = None) -> dict[Partition, int]:
        """Revocation: commit every finished prefix now (the loop drained what it could)."""
        return self._commit_now()

    def _commit_now(self) -> dict[Partition, int]:
        """Release every committable output, wait for its delivery, commit (or abort)."""
        if self._abort_requested is not None or self._aborting is not None:
            return {}
        self._releasing = None
        offsets = self._tracker.committable()
        if not offsets:
            return {}
        if self.output is not None:
            self.output.release(offsets)
            delivered = self.output.deliver(DELIVER_TIMEOUT_S)
            if self._abort_requested is not None:  # a delivery failed meanwhile
                self._abort(self._abort_requested)
                return {}
            if not delivered:
                self._abort("outputs not delivered in time")
                return {}
        return self._commit_transaction(offsets)

    def _commit_transaction(self, offsets: dict[Partition, int]) -> dict[Partition, int]:
        """Send ``offsets`` (their outputs all delivered) and commit the transaction."""
        self._last_commit = time.monotonic()
        if not offsets:
            return {}
        try:
            if offsets:
                self._producer.send_offsets_to_transaction(
                    [PartitionOffset(t, p, o) for (t, p), o in sorted(offsets.items())],
                    self._consumer.consumer_group_metadata(),
                    self._timeout_s,
                )
            self._commit_with_retry()
        except BrokerError as error:
            recoverable = error.fatal and not _fenced(error) and self._replaceable
            if error.txn_requires_abort or recoverable:  # fatal: a new producer aborts it
                self._abort(str(error))
                return {}
            self._metrics.commits.labels(result="fatal").inc()
            log.error("transaction_fatal", error=str(error))
            raise
        self._tracker.mark_committed(offsets)
        self._metrics.commits.labels(result="ok").inc()
        self._dirty = bool(self._tracker.committable())
        self._producer.begin_transaction()
        log.debug(
            "transaction_committed", offsets={f"{t}[{p}]": o for (t, p), o in offsets.items()}
        )
        return offsets

    def _commit_with_retry(self) -> None:
        for attempt in range(3):
            try:
                self._producer.commit_transaction(self._timeout_s)
                return
            except BrokerError as error:
                if not error.retriable or attempt == 2:
                    raise
                log.warning("transaction_commit_retry", error=str(error))

    def _abort(self, reason: str) -> None:
        """Drop in-flight work, abort, seek back, begin anew; retried from ``poll`` on errors."""
        self._releasing = None
        if self._aborting is None:
            self._aborting, self._abort_requested, self._aborted = reason, None, False
            self._drop_in_flight()  # nothing of this transaction may be confirmed any more
        try:
            if not self._aborted:
                self._abort_or_replace()
                self._aborted = True
                self._metrics.commits.labels(result="aborted").inc()
            if self._renew and self._replaceable:
                self._replace_producer()
            self._rewind()
        except BrokerError as error:
            if error.fatal:
                self._metrics.commits.labels(result="fatal").inc()
                log.error("transaction_fatal", error=str(error))
                raise
            if self._abort_retry_at == 0.0:
                log.warning("transaction_abort_retry", reason=reason, error=str(error))
                self._abort_failing_since = time.monotonic()
            self._abort_retry_at = time.monotonic() + 1.0
            self._renew = True
            return
        log.warning("transaction_aborted", reason=reason)
        self._aborting, self._abort_retry_at, self._abort_failing_since = None, 0.0, 0.0
        self._dirty = False
        self._last_commit = time.monotonic()
        self._producer.begin_transaction()

    def _abort_or_replace(self) -> None:
        """Abort the open transaction; a producer in a fatal state (not fenced by a newer
        instance) is replaced instead: ``init_transactions`` aborts it on the broker. So is one
        whose abort keeps timing out for ``ABORT_STUCK_S`` (librdkafka can hang there after a
        broker restart, while the cluster itself is back)."""
        stuck = self._abort_failing_since and time.monotonic() - self._abort_failing_since
        if not self._uninitialised and stuck and stuck > ABORT_STUCK_S and self._replaceable:
            log.error("transaction_abort_stuck_replacing_producer", seconds=round(stuck, 1))
            self._abort_failing_since = time.monotonic()  # a fresh budget for the new one
            self._renew = True
            self._replace_producer()
            return
        if not self._uninitialised:
            try:
                self._producer.abort_transaction(min(self._timeout_s, 5.0))
                return
            except BrokerError as error:
                if not error.fatal or _fenced(error) or not self._replaceable:
                    raise
                log.error("transaction_fatal_replacing_producer", error=str(error))
        self._renew = True
        self._replace_producer()

    def _replace_producer(self) -> None:
        """A fresh producer (same ``transactional.id``); its ``init_transactions`` is retried
        from ``poll`` while the cluster cannot be reached."""
        if not self._uninitialised:
            self._producers.replace()  # the produce step shares the handle
            self._uninitialised = True
        self._producer.init_transactions(self._timeout_s)
        self._uninitialised = self._renew = False
        log.warning("transaction_producer_replaced")

    def _drop_in_flight(self) -> None:
        """New epochs for every partition: in-flight work (and messages the loop still
        carries) is dropped, its outputs never confirmed."""
        self._tracker.assign(self._tracker.assigned())

    def _rewind(self) -> None:
        """Seek every assigned partition back to its committed offset.

        Raises:
            BrokerError: the committed offsets could not be read (retried from ``poll``).
        """
        assignment = self._consumer.assignment()
        self._drop_in_flight()  # also what was consumed while the abort was retried
        for tp in self._consumer.committed(assignment, timeout=5):
            if tp.offset < 0:
                start = OFFSET_BEGINNING if self._reset_to_beginning else OFFSET_END
                tp = replace(tp, offset=start)
            self._consumer.seek(tp)
        log.warning("rewound", partitions=len(assignment))


def _fenced(error: BrokerError) -> bool:
    """A newer instance with the same ``transactional.id`` took over: stop, do not replace."""
    return error.code in (
        BrokerCode.FENCED,
        BrokerCode.PRODUCER_FENCED,
        BrokerCode.INVALID_PRODUCER_EPOCH,
        BrokerCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    )

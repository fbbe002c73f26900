"""Output destinations that cannot be written to: an infrastructure fault, not a record error.

A verdict topic (or dead-letter topic) that does not exist, that this client may not write to,
or that was deleted under the service, refuses every record alike. Turning each refused verdict
into an ``output_rejected`` dead letter and committing its input (what happened before issue 19)
silently drops the whole stream; in exactly-once mode it aborted transaction after transaction.

:class:`DestinationGate` holds the produce step instead: the record stays queued, nothing more
is produced, ``/readyz`` reports not ready (through ``on_change``), and the topic's metadata is
probed with exponential back-off (1 s doubling to 30 s) until it is writable again. One log line
per state change: ``output_destination_unavailable`` and ``output_destination_recovered``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

from consumer.kafka import BrokerCode, BrokerError

__all__ = ["DESTINATION_ERRORS", "DestinationGate", "is_destination_error"]

log = structlog.get_logger("consumer.output.destination")

DESTINATION_ERRORS = frozenset(
    {
        BrokerCode.UNKNOWN_TOPIC,
        BrokerCode.UNKNOWN_TOPIC_OR_PART,
        BrokerCode.TOPIC_AUTHORIZATION_FAILED,
        BrokerCode.UNKNOWN_PARTITION,
    }
)
"""Error codes that say the topic cannot be written at all (whatever the record)."""

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
PROBE_TIMEOUT_S = 2.0


def is_destination_error(error: BrokerError) -> bool:
    return error.code in DESTINATION_ERRORS


class DestinationGate:
    """Whether output may be produced now; see the module docstring.

    ``on_change(False)`` when a destination becomes unavailable, ``on_change(True)`` when all
    are writable again.
    """

    def __init__(
        self,
        on_change: Callable[[bool], None] = lambda _ok: None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_change = on_change
        self._clock = clock
        self._blocked: dict[str, str] = {}  # topic -> error
        self._since = 0.0
        self._backoff = BACKOFF_MIN_S
        self._retry_at = 0.0
        self.episodes = 0
        """How many times output was held (for tests and the log)."""

    @property
    def blocked(self) -> bool:
        return bool(self._blocked)

    def fault(self, topic: str, error: BrokerError) -> None:
        """``topic`` refused a record because of the topic itself: hold all output."""
        if topic in self._blocked:
            return
        first = not self._blocked
        self._blocked[topic] = error.reason
        if first:
            self._since = self._clock()
            self._backoff = BACKOFF_MIN_S
            self._retry_at = self._since + self._backoff
            self.episodes += 1
            self._on_change(False)
        log.error(
            "output_destination_unavailable",
            topic=topic,
            error=error.reason,
            code=error.code,
            retry_in_s=round(self._retry_at - self._clock(), 1),
        )

    def open(self, producer: Any) -> bool:
        """Whether output may flow: when held and the back-off is spent, probe the held
        topics' metadata on ``producer`` (``partitions_of``; a producer without it is assumed
        to be able to tell by producing again)."""
        if not self._blocked:
            return True
        now = self._clock()
        if now < self._retry_at:
            return False
        for topic in list(self._blocked):
            if _writable(producer, topic):
                del self._blocked[topic]
        if self._blocked:
            self._backoff = min(BACKOFF_MAX_S, self._backoff * 2)
            self._retry_at = self._clock() + self._backoff
            return False
        log.warning("output_destination_recovered", seconds=round(self._clock() - self._since, 1))
        self._on_change(True)
        return True


def _writable(producer: Any, topic: str) -> bool:
    partitions_of = getattr(producer, "partitions_of", None)
    if partitions_of is None:
        return True
    try:
        return bool(partitions_of(topic, timeout=PROBE_TIMEOUT_S))
    except Exception:  # the cluster cannot be reached: still held
        return False

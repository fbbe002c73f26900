"""What to replay: topics and a time window, or explicit offsets, resolved to offset ranges.

A time is ISO-8601 (``2026-11-21T10:00:00Z``; a naive time is UTC) or epoch milliseconds.
``--from`` is inclusive and ``--to`` exclusive. Timestamps in a partition need not be in
order (producers set them), so a window is resolved by *scan and filter*: a range starts at
the first offset whose timestamp is at or after ``--from`` (``offsets_for_times``: no record
before it can be in the window) and ends at the high watermark captured at start, and the
runner replays only the records whose timestamp is in the window (:meth:`OffsetRange.wants`).
Looking the end up by time (before issue 19) let one record stamped in 2100 end the range
early: the in-window records behind it were skipped and the run still said complete. The end
of every range is capped at the high watermark captured at start, so a replay never chases
new input.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from consumer.kafka import PartitionOffset
from consumer.kafka.clients import ReaderClient

__all__ = ["OffsetRange", "parse_offsets", "parse_time", "resolve_ranges"]

Partition = tuple[str, int]


@dataclass(frozen=True)
class OffsetRange:
    """Offsets ``start <= offset < end`` of one partition."""

    topic: str
    partition: int
    start: int
    end: int
    from_ms: int | None = None
    """Only records stamped at or after this (None: no lower bound)."""
    to_ms: int | None = None
    """Only records stamped before this (None: no upper bound)."""

    def wants(self, timestamp_ms: int | None) -> bool:
        """Whether a record with this timestamp is in the window (None: no timestamp, in
        only when the range has no window)."""
        if self.from_ms is None and self.to_ms is None:
            return True
        if timestamp_ms is None:
            return False
        if self.from_ms is not None and timestamp_ms < self.from_ms:
            return False
        return self.to_ms is None or timestamp_ms < self.to_ms

    @property
    def tp(self) -> Partition:
        return (self.topic, self.partition)

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


def parse_time(text: str) -> int:
    """ISO-8601 or epoch milliseconds -> epoch milliseconds."""
    value = text.strip()
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not ISO-8601 or epoch ms: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_offsets(specs: list[str]) -> list[OffsetRange]:
    """``topic:partition:start-end`` (end exclusive; ``start-`` = up to the end at start)."""
    ranges: list[OffsetRange] = []
    for spec in specs:
        topic, sep, rest = spec.rpartition(":")
        topic, sep2, part = topic.rpartition(":")
        start_text, dash, end_text = rest.partition("-")
        if not (sep and sep2 and topic and dash and start_text.isdigit()):
            raise ValueError(f"--offsets expects topic:partition:start-end, got {spec!r}")
        if not part.isdigit() or (end_text and not end_text.isdigit()):
            raise ValueError(f"--offsets expects integers, got {spec!r}")
        end = int(end_text) if end_text else -1
        ranges.append(OffsetRange(topic, int(part), int(start_text), end))
    return ranges


def resolve_ranges(
    consumer: ReaderClient,
    topics: list[str],
    *,
    from_ms: int | None = None,
    to_ms: int | None = None,
    explicit: list[OffsetRange] | None = None,
    timeout_s: float = 30.0,
) -> list[OffsetRange]:
    """Offset ranges of every partition of ``topics`` (or of ``explicit``), capped at the end."""
    if explicit:
        tps = [(r.topic, r.partition) for r in explicit]
    else:
        tps = _partitions(consumer, topics, timeout_s)
    marks = {tp: consumer.watermarks(*tp, timeout=timeout_s) for tp in tps}
    if explicit:
        return [
            OffsetRange(
                r.topic,
                r.partition,
                max(r.start, marks[r.tp][0]),
                marks[r.tp][1] if r.end < 0 else min(r.end, marks[r.tp][1]),
            )
            for r in explicit
        ]
    starts = _at_time(consumer, tps, from_ms, marks, timeout_s, low=True)
    ends = _at_time(consumer, tps, None, marks, timeout_s, low=False)  # scan to the end
    return [OffsetRange(t, p, starts[(t, p)], ends[(t, p)], from_ms, to_ms) for t, p in tps]


def _partitions(consumer: ReaderClient, topics: list[str], timeout_s: float) -> list[Partition]:
    tps: list[Partition] = []
    for topic in topics:
        partitions = consumer.partitions_of(topic, timeout_s)
        if partitions is None:
            raise ValueError(f"topic {topic!r} not found")
        tps.extend((topic, p) for p in partitions)
    return tps


def _at_time(
    consumer: ReaderClient,
    tps: list[Partition],
    when_ms: int | None,
    marks: dict[Partition, tuple[int, int]],
    timeout_s: float,
    *,
    low: bool,
) -> dict[Partition, int]:
    """First offset at or after ``when_ms`` per partition (the low/high mark when None)."""
    if when_ms is None:
        return {tp: marks[tp][0] if low else marks[tp][1] for tp in tps}
    found = consumer.offsets_for_times(
        [PartitionOffset(t, p, when_ms) for t, p in tps], timeout=timeout_s
    )
    result: dict[Partition, int] = {}
    for tp in found:
        key = (tp.topic, tp.partition)
        if tp.error is not None:
            raise ValueError(f"offsets_for_times failed for {key}: {tp.error}")
        low_mark, high_mark = marks[key]
        offset = high_mark if tp.offset < 0 else tp.offset  # -1: nothing at/after the time
        result[key] = min(max(offset, low_mark), high_mark)
    return result

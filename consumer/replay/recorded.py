"""Reading verdicts back: the recorded ones (verdict topic) and a run's new ones.

Everything is read ``read_committed`` with a throw-away group id and ``assign()``, up to the
high watermarks captured when reading starts; nothing is committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consumer.kafka import BrokerCode, BrokerError, PartitionOffset
from consumer.kafka.backend import KafkaBackend, ReplayBackend
from consumer.kafka.clients import ReaderClient
from consumer.kafka.config import reader_config
from consumer.replay.output import read_jsonl
from schemas import VERDICT_EVENT_TYPE, Verdict, decode_verdict

__all__ = ["Scored", "read_new_from_file", "read_verdict_topic"]


@dataclass(frozen=True, slots=True)
class Scored:
    """The part of a verdict the comparison needs."""

    event_id: str
    sha256: str
    label: str
    score: float
    threshold: float
    model: tuple[str, str, str, float]  # name, version, weights sha256, threshold
    source: str  # topic[partition]@offset
    produced_at: float
    cached: bool = False

    @classmethod
    def of(cls, v: Verdict) -> Scored:
        m = v.model
        return cls(
            event_id=v.event_id,
            sha256=v.image.sha256,
            label=v.label,
            score=v.score,
            threshold=v.threshold,
            model=(m.name, m.version, m.weights_sha256, m.threshold),
            source=f"{v.source.topic}[{v.source.partition}]@{v.source.offset}",
            produced_at=v.produced_at.timestamp(),
            cached=v.cached,
        )


def read_new_from_file(path: Path) -> list[Scored]:
    """The verdicts of a JSONL replay output."""
    return [Scored.of(Verdict.model_validate(obj)) for obj in read_jsonl(path)]


def read_verdict_topic(
    conf: dict[str, Any],
    topic: str,
    keep: Callable[[Verdict], bool],
    *,
    from_ms: int | None = None,
    timeout_s: float = 120.0,
    backend: ReplayBackend | None = None,
) -> list[Scored]:
    """Verdicts of ``topic`` for which ``keep`` is true (dead letters and others skipped)."""
    reader = (backend or KafkaBackend()).reader(reader_config(conf, "synthscan-replay-read"))
    return [Scored.of(v) for v in _verdicts(reader, topic, from_ms, timeout_s) if keep(v)]


def _verdicts(
    consumer: ReaderClient, topic: str, from_ms: int | None, timeout_s: float
) -> Iterator[Verdict]:
    try:
        parts = consumer.partitions_of(topic, timeout=30)
        if parts is None:
            raise ValueError(f"verdict topic {topic!r} not found")
        ends = {p: consumer.watermarks(topic, p, timeout=30) for p in parts}
        starts = {p: lo for p, (lo, _hi) in ends.items()}
        if from_ms is not None:
            found = consumer.offsets_for_times(
                [PartitionOffset(topic, p, from_ms) for p in parts], timeout=30
            )
            for tp in found:
                starts[tp.partition] = ends[tp.partition][1] if tp.offset < 0 else tp.offset
        todo = {p for p in parts if starts[p] < ends[p][1]}
        consumer.assign([PartitionOffset(topic, p, starts[p]) for p in todo])
        deadline = time.monotonic() + timeout_s
        while todo and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                if isinstance(msg, BrokerError):
                    if msg.code == BrokerCode.PARTITION_EOF:
                        todo.discard(int(msg.partition or 0))
                    continue
                if msg.offset + 1 >= ends[msg.partition][1]:
                    todo.discard(msg.partition)
                if msg.header_error is not None:  # a header the client cannot decode: not ours
                    continue
                headers = list(msg.headers)
                ce_type = dict(headers).get("ce_type")
                if ce_type is not None and ce_type != VERDICT_EVENT_TYPE.encode():
                    continue
                try:
                    yield decode_verdict(msg.value, headers)
                except Exception:  # a foreign record on the topic: not a verdict
                    continue
        if todo:
            raise TimeoutError(f"reading {topic} did not reach its end in {timeout_s}s")
    finally:
        consumer.close()

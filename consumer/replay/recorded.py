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

from consumer.kafka import Consumer, KafkaError, TopicPartition
from consumer.kafka.config import reader_config
from consumer.kafka.headers import HeaderError, read_headers
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
) -> list[Scored]:
    """Verdicts of ``topic`` for which ``keep`` is true (dead letters and others skipped)."""
    return [Scored.of(v) for v in _verdicts(conf, topic, from_ms, timeout_s) if keep(v)]


def _verdicts(
    conf: dict[str, Any], topic: str, from_ms: int | None, timeout_s: float
) -> Iterator[Verdict]:
    consumer = Consumer(reader_config(conf, "synthscan-replay-read"))
    try:
        meta = consumer.list_topics(topic, timeout=30)
        tmeta = meta.topics.get(topic)
        if tmeta is None or tmeta.error is not None:
            raise ValueError(f"verdict topic {topic!r} not found")
        parts = sorted(tmeta.partitions)
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30) for p in parts
        }
        starts = {p: lo for p, (lo, _hi) in ends.items()}
        if from_ms is not None:
            found = consumer.offsets_for_times(
                [TopicPartition(topic, p, from_ms) for p in parts], timeout=30
            )
            for tp in found:
                starts[tp.partition] = ends[tp.partition][1] if tp.offset < 0 else tp.offset
        todo = {p for p in parts if starts[p] < ends[p][1]}
        consumer.assign([TopicPartition(topic, p, starts[p]) for p in todo])
        deadline = time.monotonic() + timeout_s
        while todo and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        todo.discard(int(msg.partition() or 0))
                    continue
                part, offset = int(msg.partition() or 0), int(msg.offset() or 0)
                if offset + 1 >= ends[part][1]:
                    todo.discard(part)
                try:
                    headers = list(read_headers(msg))
                except HeaderError:  # a header the client cannot decode: not our verdict
                    continue
                ce_type = dict(headers).get("ce_type")
                if ce_type is not None and ce_type != VERDICT_EVENT_TYPE.encode():
                    continue
                try:
                    yield decode_verdict(msg.value(), headers)
                except Exception:  # a foreign record on the topic: not a verdict
                    continue
        if todo:
            raise TimeoutError(f"reading {topic} did not reach its end in {timeout_s}s")
    finally:
        consumer.close()

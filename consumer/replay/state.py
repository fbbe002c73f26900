"""The resumable state of one replay run: a small JSON file next to the output.

It records the resolved offset ranges (captured at the first start, so a resumed run replays
the same window), the next offset to replay per partition (every offset below it is written
and durable) and, for JSONL output, how many bytes of each output file are durable. It is
replaced atomically (write to a temporary file, fsync, rename).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumer.replay.ranges import OffsetRange, Partition

__all__ = ["ReplayState"]


def _key(tp: Partition) -> str:
    return f"{tp[0]}:{tp[1]}"


def _tp(key: str) -> Partition:
    topic, _, part = key.rpartition(":")
    return (topic, int(part))


@dataclass
class ReplayState:
    """Progress of a run; ``path`` is where it lives."""

    path: Path
    run_id: str
    started_at: str
    ranges: list[OffsetRange]
    next_offsets: dict[Partition, int] = field(default_factory=dict)
    output_bytes: dict[str, int] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    complete: bool = False

    def next_offset(self, r: OffsetRange) -> int:
        """Where to resume ``r``."""
        return max(r.start, self.next_offsets.get(r.tp, r.start))

    def remaining(self) -> int:
        return sum(max(0, r.end - self.next_offset(r)) for r in self.ranges)

    def save(self) -> None:
        data = {
            "run_id": self.run_id,
            "started_at": self.started_at,
            "complete": self.complete,
            "model": self.model,
            "ranges": [
                {
                    "topic": r.topic,
                    "partition": r.partition,
                    "start": r.start,
                    "end": r.end,
                    "from_ms": r.from_ms,
                    "to_ms": r.to_ms,
                }
                for r in self.ranges
            ],
            "next_offsets": {_key(tp): o for tp, o in sorted(self.next_offsets.items())},
            "output_bytes": self.output_bytes,
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, path: Path) -> ReplayState:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            path=path,
            run_id=str(data["run_id"]),
            started_at=str(data["started_at"]),
            ranges=[
                OffsetRange(
                    d["topic"],
                    int(d["partition"]),
                    int(d["start"]),
                    int(d["end"]),
                    _optional_int(d.get("from_ms")),
                    _optional_int(d.get("to_ms")),
                )
                for d in data["ranges"]
            ],
            next_offsets={_tp(k): int(v) for k, v in data.get("next_offsets", {}).items()},
            output_bytes={k: int(v) for k, v in data.get("output_bytes", {}).items()},
            model=dict(data.get("model", {})),
            complete=bool(data.get("complete", False)),
        )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)

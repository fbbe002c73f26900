"""Where replayed verdicts go: a JSONL file or an audit topic.

- :class:`JsonlOutput`: one verdict (the wire JSON) per line in ``PATH``, dead letters in
  ``PATH.dead-letters.jsonl``. Resuming truncates both to their durable length and reports
  which source offsets they already hold, so a resumed run writes each verdict once.
- :class:`TopicOutput`: verdicts produced to an audit topic (idempotent, zstd), dead letters
  to ``<topic>.dlq``. A record counts as written when its delivery is confirmed; a resumed
  run may repeat the records written after the last state save (same run id and source).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import IO, Any, Protocol

from consumer.items import OutRecord
from consumer.kafka import KafkaError, Producer
from consumer.kafka.admin import ensure_topics

__all__ = ["JsonlOutput", "ReplayOutput", "Source", "TopicOutput", "dead_letter_path"]

Source = tuple[str, int, int]
_MAX_DELIVERY_ERRORS = 100
Done = Callable[[], None]


def dead_letter_path(path: Path) -> Path:
    return path.with_name(path.name + ".dead-letters.jsonl")


class ReplayOutput(Protocol):
    """What the replay sink writes to."""

    def write(self, record: OutRecord, dead_letter: bool, on_done: Done) -> None: ...

    def poll(self) -> None: ...

    def durable(self) -> dict[str, int]: ...

    def already_written(self) -> set[Source]: ...

    def close(self) -> None: ...


class JsonlOutput:
    """Verdict lines in ``path``; dead-letter lines beside it."""

    def __init__(self, path: Path, resume_bytes: dict[str, int] | None = None) -> None:
        self.path = path
        self.dead_path = dead_letter_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._written: set[Source] = set()
        self._files: dict[str, IO[bytes]] = {}
        for name, target in (("verdicts", path), ("dead_letters", self.dead_path)):
            keep = None if resume_bytes is None else resume_bytes.get(name, 0)
            self._files[name] = self._open(target, keep)

    def _open(self, target: Path, keep: int | None) -> IO[bytes]:
        if keep is None or not target.exists():
            return target.open("wb")
        with target.open("r+b") as fh:
            fh.truncate(keep)
        for line in _lines(target):
            src = line.get("source") or {}
            self._written.add((src["topic"], int(src["partition"]), int(src["offset"])))
        return target.open("ab")

    def write(self, record: OutRecord, dead_letter: bool, on_done: Done) -> None:
        fh = self._files["dead_letters" if dead_letter else "verdicts"]
        fh.write(record.value.replace(b"\n", b" ") + b"\n")
        on_done()

    def poll(self) -> None:
        """Nothing asynchronous."""

    def durable(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for name, fh in self._files.items():
            fh.flush()
            os.fsync(fh.fileno())
            sizes[name] = fh.tell()
        return sizes

    def already_written(self) -> set[Source]:
        return set(self._written)

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()


class TopicOutput:
    """Verdicts to ``topic``, dead letters to ``dead_letter_topic``; done on delivery."""

    def __init__(self, producer_conf: dict[str, Any], topic: str, dead_letter_topic: str):
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        ensure_topics(producer_conf, [topic, dead_letter_topic])
        self._producer = Producer(producer_conf)
        self.errors: list[str] = []
        self._failed: str | None = None

    def write(self, record: OutRecord, dead_letter: bool, on_done: Done) -> None:
        topic = self.dead_letter_topic if dead_letter else self.topic
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=record.value,
                    key=record.key,
                    headers=list(record.headers),
                    on_delivery=partial(self._delivered, record, dead_letter, on_done),
                )
                return
            except BufferError:
                self._producer.poll(0.05)

    def _delivered(
        self,
        record: OutRecord,
        dead_letter: bool,
        on_done: Done,
        err: KafkaError | None,
        _m: object,
    ) -> None:
        if err is None:
            on_done()
            return
        self.errors.append(str(err))
        if len(self.errors) > _MAX_DELIVERY_ERRORS or not err.retriable():
            self._failed = str(err)
            return
        self.write(record, dead_letter, on_done)  # idempotent producer: retry until delivered

    def poll(self) -> None:
        self._producer.poll(0)
        if self._failed is not None:
            raise RuntimeError(f"cannot write to the audit topic {self.topic}: {self._failed}")

    def durable(self) -> dict[str, int]:
        self._producer.flush(30.0)
        return {}

    def already_written(self) -> set[Source]:
        return set()

    def close(self) -> None:
        self._producer.flush(30.0)


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as fh:
        for raw in fh:
            if raw.strip():
                yield json.loads(raw)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file (the replay's verdicts or dead letters)."""
    yield from _lines(path) if path.exists() else iter(())

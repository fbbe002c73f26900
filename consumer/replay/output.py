"""Where replayed verdicts go: a JSONL file or an audit topic.

Each output makes the pipeline's last step (:meth:`ReplayOutput.sink`): a
``ProcessingStep[Outcome]`` that writes the record of each outcome and hands a
:class:`~consumer.items.Delivered` receipt to the next step once it is written, the same
interface as the live service's produce step.

- :class:`JsonlOutput`: one verdict (the wire JSON) per line in ``PATH``, dead letters in
  ``PATH.dead-letters.jsonl``. Resuming truncates both to their durable length and reports
  which source offsets they already hold, so a resumed run writes each verdict once.
- :class:`TopicOutput`: the live :class:`~consumer.pipeline.steps.produce.ProduceStep` on an
  idempotent zstd producer: verdicts to an audit topic, dead letters to ``<topic>.dlq``. A
  record counts as written when its delivery is confirmed; a resumed run may repeat the
  records written after the last state save (same run id and source).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from consumer.items import Delivered, Envelope, Failure, Outcome, OutRecord
from consumer.kafka.backend import KafkaBackend, ReplayBackend
from consumer.kafka.clients import ProducerHandle
from consumer.output.records import RecordBuilder, output_record
from consumer.pipeline.steps.base import ProcessingStep
from consumer.pipeline.steps.produce import ProduceStep
from consumer.serving.metrics import Metrics

__all__ = ["JsonlOutput", "ReplayOutput", "Source", "TopicOutput", "dead_letter_path"]

Source = tuple[str, int, int]
_DELIVERY_ATTEMPTS = 100
"""Deliveries of one record to the audit topic before it fails for good."""
Done = Callable[[], None]


def dead_letter_path(path: Path) -> Path:
    return path.with_name(path.name + ".dead-letters.jsonl")


class ReplayOutput(Protocol):
    """Where a replay writes (see the module docstring)."""

    def sink(
        self, records: RecordBuilder, receipts: ProcessingStep[Delivered], metrics: Metrics
    ) -> ProcessingStep[Outcome]:
        """The pipeline's last step, confirming each written record to ``receipts``."""
        ...

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

    def sink(
        self, records: RecordBuilder, receipts: ProcessingStep[Delivered], metrics: Metrics
    ) -> ProcessingStep[Outcome]:
        return _JsonlStep(self, records, receipts)

    def write(self, record: OutRecord, dead_letter: bool, on_done: Done) -> None:
        fh = self._files["dead_letters" if dead_letter else "verdicts"]
        fh.write(record.value.replace(b"\n", b" ") + b"\n")
        on_done()

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


class _JsonlStep(ProcessingStep[Outcome]):
    """Writes each outcome's record as a line; written means confirmed."""

    def __init__(
        self, output: JsonlOutput, records: RecordBuilder, next_step: ProcessingStep[Delivered]
    ) -> None:
        self.next_step = next_step
        self._output = output
        self._records = records

    def submit(self, item: Outcome) -> None:
        outcome, record = output_record(self._records, item)
        dead = isinstance(outcome, Failure)
        receipt = Delivered(item.envelope, time.time(), dead)
        self._output.write(record, dead, lambda: self.next_step.submit(receipt))

    def poll(self) -> None:
        self.next_step.poll()

    def join(self, timeout: float | None = None) -> None:
        self.next_step.join(timeout)

    def close(self) -> None:
        self.next_step.close()


class TopicOutput:
    """Verdicts to ``topic``, dead letters to ``dead_letter_topic``; done on delivery."""

    def __init__(
        self,
        producer_conf: dict[str, Any],
        topic: str,
        dead_letter_topic: str,
        backend: ReplayBackend | None = None,
    ):
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        backend = backend or KafkaBackend()
        backend.ensure_topics(producer_conf, [topic, dead_letter_topic])
        self._producer = backend.producer(producer_conf)
        self._failed: str | None = None

    def sink(
        self, records: RecordBuilder, receipts: ProcessingStep[Delivered], metrics: Metrics
    ) -> ProcessingStep[Outcome]:
        return ProduceStep(
            ProducerHandle.of(self._producer),
            records,
            receipts,
            metrics,
            max_attempts=_DELIVERY_ATTEMPTS,
            on_undeliverable=self._undeliverable,
        )

    def _undeliverable(self, env: Envelope, reason: str) -> None:
        self._failed = reason

    def durable(self) -> dict[str, int]:
        self._producer.flush(30.0)
        self._raise_failed()
        return {}

    def already_written(self) -> set[Source]:
        return set()

    def close(self) -> None:
        self._producer.flush(30.0)

    def _raise_failed(self) -> None:
        if self._failed is not None:
            raise RuntimeError(f"cannot write to the audit topic {self.topic}: {self._failed}")


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as fh:
        for raw in fh:
            if raw.strip():
                yield json.loads(raw)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSONL file (the replay's verdicts or dead letters)."""
    yield from _lines(path) if path.exists() else iter(())

"""One bench per Kafka backend for the behavioural suite (``test_consumer_behaviour.py``): the
in-memory broker (:mod:`consumer.kafka.memory`) and the real one, behind the same small API
(send input, refuse a topic, read outputs, read committed offsets)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from confluent_kafka.admin import AdminClient, NewTopic
from consumer_support import TopicReader, produce
from kafka_support import committed, create_topics, end_offsets, unique

from consumer import ServiceSettings
from consumer.kafka.backend import Backend, KafkaBackend
from consumer.kafka.memory import MemoryBackend, MemoryBroker
from schemas import DeadLetter, Verdict, decode_dead_letter, decode_verdict

Message = tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]
"""``(key, value, headers)`` of one input record."""


def until(check: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Bench(Protocol):
    """A broker with an input topic (``partitions``), a verdict and a dead-letter topic."""

    name: str
    input: str
    verdicts: str
    dlq: str
    group: str
    partitions: int

    def backend(self) -> Backend: ...

    def send(self, messages: Iterable[Message], partition: int | None = None) -> None: ...

    def refusing_topic(self) -> str:
        """A new topic that refuses every record (too large for it) for good."""
        ...

    def records(self, topic: str) -> list[tuple[bytes | None, list[Any]]]:
        """``(value, headers)`` of every record of ``topic`` written so far (committed)."""
        ...

    def committed(self) -> dict[int, int]:
        """The group's committed offset per input partition (0 when none)."""
        ...

    def end_offsets(self) -> dict[int, int]: ...

    def connection(self) -> dict[str, Any]:
        """The ``kafka`` settings that reach this broker."""
        ...

    def close(self) -> None: ...


class MemoryBench:
    name = "memory"

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.broker = MemoryBroker(partitions)
        self.input, self.verdicts, self.dlq, self.group = "images", "verdicts", "dlq", "g"
        self.broker.create_topic(self.input)
        for topic in (self.verdicts, self.dlq):
            self.broker.create_topic(topic, partitions=1)

    def backend(self) -> Backend:
        return MemoryBackend(self.broker)

    def send(self, messages: Iterable[Message], partition: int | None = None) -> None:
        for key, value, headers in messages:
            self.broker.append(
                self.input, value, key, headers, -1 if partition is None else partition
            )

    def refusing_topic(self) -> str:
        topic = unique("refusing")
        self.broker.create_topic(topic, partitions=1)
        self.broker.refuse(topic)
        return topic

    def records(self, topic: str) -> list[tuple[bytes | None, list[Any]]]:
        return [(r.value, list(r.headers)) for r in self.broker.records(topic)]

    def committed(self) -> dict[int, int]:
        done = self.broker.committed(self.group)
        return {p: done.get((self.input, p), 0) for p in range(self.partitions)}

    def end_offsets(self) -> dict[int, int]:
        return {p: self.broker.end_offset((self.input, p)) for p in range(self.partitions)}

    def connection(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


class KafkaBench:
    name = "kafka"

    def __init__(self, bootstrap: str, partitions: int) -> None:
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.input, self.verdicts, self.dlq = unique("images"), unique("verdicts"), unique("dlq")
        self.group = unique("group")
        create_topics(bootstrap, {self.input: partitions, self.verdicts: 1, self.dlq: 1})
        self._readers: dict[str, TopicReader] = {}

    def backend(self) -> Backend:
        return KafkaBackend()

    def send(self, messages: Iterable[Message], partition: int | None = None) -> None:
        produce(self.bootstrap, self.input, messages, partition_of=partition)

    def refusing_topic(self) -> str:
        topic = unique("refusing")
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        tiny = NewTopic(topic, 1, 1, config={"max.message.bytes": "200"})
        admin.create_topics([tiny])[topic].result(timeout=30)
        return topic

    def records(self, topic: str) -> list[tuple[bytes | None, list[Any]]]:
        if topic not in self._readers:
            self._readers[topic] = TopicReader(self.bootstrap, topic)
        reader = self._readers[topic]
        reader.read_until(len(reader.records) + 10_000, timeout=0.3)
        return [(value, headers) for _key, value, headers in reader.records]

    def committed(self) -> dict[int, int]:
        found = committed(self.bootstrap, self.group, self.input, self.partitions)
        return {p: max(0, offset) for p, offset in found.items()}

    def end_offsets(self) -> dict[int, int]:
        return end_offsets(self.bootstrap, self.input, self.partitions)

    def connection(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.bootstrap, "session_timeout_ms": 6000}

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()


def verdicts(bench: Bench) -> list[Verdict]:
    return [decode_verdict(v, h) for v, h in bench.records(bench.verdicts)]


def dead_letters(bench: Bench, topic: str | None = None) -> list[DeadLetter]:
    return [decode_dead_letter(v, h) for v, h in bench.records(topic or bench.dlq)]


def all_committed(bench: Bench) -> bool:
    return bench.committed() == bench.end_offsets()


def settings(bench: Bench, checkpoint: Path, **sections: dict[str, Any]) -> ServiceSettings:
    """Small batches, fast commits, an ephemeral HTTP port; ``sections`` override."""
    base: dict[str, dict[str, Any]] = {
        "kafka": {
            **bench.connection(),
            "group_id": bench.group,
            "input_topics": [bench.input],
            "verdict_topic": bench.verdicts,
            "dead_letter_topic": bench.dlq,
            "commit_interval_s": 0.1,
        },
        "batching": {"max_wait_ms": 20},
        "model": {
            "checkpoint": checkpoint,
            "device": "cpu",
            "precision": "fp32",
            "max_batch_size": 4,
        },
        "http": {"host": "127.0.0.1", "port": 0},
        "shutdown": {"grace_s": 20},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return ServiceSettings(**base)

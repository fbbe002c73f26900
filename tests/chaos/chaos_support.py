"""The fault suite's harness: a restartable broker, services in-process or as processes, and
an output ledger that counts verdicts and dead letters per input message."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from kafka_support import create_topics, end_offsets, image_bytes, unique
from PIL import Image

from consumer import Service, ServiceSettings
from schemas import (
    DEAD_LETTER_EVENT_TYPE,
    ImageData,
    ImageEvent,
    decode_dead_letter,
    decode_verdict,
    encode_image_event,
)

ROOT = Path(__file__).resolve().parents[2]

MODES = pytest.mark.parametrize("exactly_once", [False, True], ids=["alo", "eos"])
"""A scenario in both delivery modes (test ids ``alo`` and ``eos``)."""


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@dataclass
class Row:
    """One line of the fault-suite report."""

    scenario: str
    mode: str
    events: int
    lost: int
    duplicated: int
    dead_letters: int
    recover_s: float
    total_s: float


REPORT: list[Row] = []


def solid_png(side: int, seed: int) -> bytes:
    """A solid-colour ``side`` x ``side`` PNG: a few KB that decode to ``side``\u00b2 pixels."""
    colour = (seed * 37 % 256, seed * 91 % 256, seed * 53 % 256)
    buf = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(buf, format="PNG")
    return buf.getvalue()


def event_value(
    event_id: str, seed: int, metadata: dict[str, Any] | None = None, img: bytes | None = None
) -> tuple:
    img = image_bytes(seed, size=(64, 64)) if img is None else img
    event = ImageEvent(
        id=event_id,
        source="/tests/chaos",
        data=ImageData(content_id=f"c-{event_id}", data=img, metadata=metadata or {}),
    )
    value, headers = encode_image_event(event, mode="binary", inline="raw")
    return value, list(headers)


def produce_events(
    bootstrap: str,
    topic: str,
    ids: list[str],
    partitions: int,
    metadata: dict | None = None,
    images: dict[str, bytes] | None = None,
    urls: dict[str, str] | None = None,
) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, eid in enumerate(ids):
        seed = hash(eid) % 10_000
        url = (urls or {}).get(eid)
        if url is not None:
            event = ImageEvent(id=eid, source="/tests/chaos", data=ImageData(url=url))
            value, encoded = encode_image_event(event, mode="binary")
            headers = list(encoded)
        else:
            value, headers = event_value(
                eid, seed, (metadata or {}).get(eid), (images or {}).get(eid)
            )
        producer.produce(
            topic, value=value, key=eid.encode(), headers=headers, partition=i % partitions
        )
    assert producer.flush(30) == 0


class Ledger:
    """Reads the verdict and dead-letter topics (read_committed) in a thread; counts outputs
    per input coordinate (topic, partition, offset) and remembers when each arrived."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.outputs: dict[tuple[str, int, int], list[tuple[str, str | None]]] = defaultdict(list)
        self.times: list[float] = []
        self.arrivals: list[tuple[float, int, int]] = []
        """(when, source partition, source offset) of every output."""
        self.arrived: dict[str, float] = {}
        """Event id -> when its first output was read."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": unique("ledger"),
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "log_level": 0,
            }
        )
        self._consumer.subscribe(topics)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(100, 0.2):
                if msg.error() is not None:
                    continue
                headers = msg.headers() or []
                kind = dict(headers).get("ce_type")
                if kind == DEAD_LETTER_EVENT_TYPE.encode():
                    dead = decode_dead_letter(msg.value(), headers)
                    src, name, eid = dead.source, f"dead_letter:{dead.code}", dead.event_id
                else:
                    verdict = decode_verdict(msg.value(), headers)
                    src, name, eid = verdict.source, "verdict", verdict.event_id
                with self._lock:
                    self.outputs[(src.topic, src.partition, src.offset)].append((name, eid))
                    self.times.append(time.monotonic())
                    self.arrivals.append((self.times[-1], src.partition, src.offset))
                    self.arrived.setdefault(eid or "", time.monotonic())

    def count(self) -> int:
        with self._lock:
            return len(self.outputs)

    def first_after(
        self, moment: float, partition: int | None = None, min_offset: int = 0
    ) -> float | None:
        """When the first output after ``moment`` arrived (of inputs at ``min_offset`` or later,
        of ``partition`` only when given)."""
        with self._lock:
            later = [
                t
                for t, p, o in self.arrivals
                if t > moment and partition in (None, p) and o >= min_offset
            ]
        return min(later) if later else None

    def first_of(self, prefix: str, timeout: float) -> float | None:
        """When the first output of an event id starting with ``prefix`` was read."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                times = [t for eid, t in self.arrived.items() if eid.startswith(prefix)]
            if times:
                return min(times)
            time.sleep(0.05)
        return None

    def wait(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.count() < n and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.count() >= n

    def settle(self, quiet_s: float = 1.5) -> None:
        last, seen = time.monotonic(), len(self.times)
        while time.monotonic() - last < quiet_s:
            time.sleep(0.1)
            if len(self.times) != seen:
                last, seen = time.monotonic(), len(self.times)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


@dataclass
class Stage:
    """Topics and settings of one scenario run."""

    bootstrap: str
    checkpoint: Path
    exactly_once: bool
    partitions: int = 2
    replication_factor: int = 1
    kafka: dict[str, Any] = field(default_factory=dict)
    batching: dict[str, Any] = field(default_factory=dict)
    fetch: dict[str, Any] = field(default_factory=dict)
    input: str = field(default_factory=lambda: unique("chaos-in"))
    verdicts: str = field(default_factory=lambda: unique("chaos-verdicts"))
    dlq: str = field(default_factory=lambda: unique("chaos-dlq"))
    group: str = field(default_factory=lambda: unique("chaos-group"))

    def __post_init__(self) -> None:
        topics = {self.input: self.partitions, self.verdicts: 1, self.dlq: 1}
        create_topics(self.bootstrap, topics, self.replication_factor)

    def kafka_settings(self, instance: str) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.bootstrap,
            "group_id": self.group,
            "input_topics": [self.input],
            "verdict_topic": self.verdicts,
            "dead_letter_topic": self.dlq,
            "commit_interval_s": 0.3,
            "session_timeout_ms": 6000,
            "statistics_interval_ms": 0,
            "exactly_once": self.exactly_once,
            "instance_id": f"{self.group}-{instance}",
            **self.kafka,
        }

    def settings(self, instance: str = "a") -> ServiceSettings:
        return ServiceSettings(
            kafka=self.kafka_settings(instance),  # type: ignore[arg-type]
            batching={  # type: ignore[arg-type]
                "max_wait_ms": 20,
                "max_in_flight_messages": 4,
                **self.batching,
            },
            model={  # type: ignore[arg-type]
                "checkpoint": self.checkpoint,
                "device": "cpu",
                "precision": "fp32",
                "max_batch_size": 4,
            },
            http={"host": "127.0.0.1", "port": 0},  # type: ignore[arg-type]
            shutdown={"grace_s": 15},  # type: ignore[arg-type]
            fetch=self.fetch,  # type: ignore[arg-type]
        )

    def cli_args(self, instance: str = "a") -> list[str]:
        pairs: dict[str, Any] = {
            f"kafka.{k}": (",".join(v) if isinstance(v, list) else v)
            for k, v in self.kafka_settings(instance).items()
        }
        pairs.update(
            {
                "batching.max_wait_ms": 20,
                "batching.max_in_flight_messages": 4,
                "model.max_batch_size": 4,
                "model.checkpoint": self.checkpoint,
                "model.device": "cpu",
                "model.precision": "fp32",
                "model.torch_threads": 1,
                "http.host": "127.0.0.1",
                "http.port": 0,
                "shutdown.grace_s": 15,
            }
        )
        return [
            a
            for k, v in pairs.items()
            for a in ("--set", f"{k}={str(v).lower() if isinstance(v, bool) else v}")
        ]

    def ledger(self) -> Ledger:
        return Ledger(self.bootstrap, [self.verdicts, self.dlq])

    def expected(self) -> set[tuple[str, int, int]]:
        deadline = time.monotonic() + 30
        while True:  # right after a broker restart the partition may have no leader yet
            try:
                ends = end_offsets(self.bootstrap, self.input, self.partitions)
                break
            except KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        return {(self.input, p, o) for p, end in ends.items() for o in range(end)}


class InProcess:
    """Services in threads (sharing one warm detector), all stopped by :meth:`stop`."""

    def __init__(self, detector: Any) -> None:
        self.detector = detector
        self.services: list[tuple[Service, threading.Thread]] = []

    def start(self, settings: ServiceSettings, ready_s: float = 90) -> Service:
        service = Service(settings, detector=self.detector)
        thread = service.start()
        self.services.append((service, thread))
        assert service.wait_ready(ready_s), f"service not ready: {service.error!r}"
        return service

    def stop(self) -> None:
        for service, _ in self.services:
            service.stop()
        for _, thread in self.services:
            thread.join(30)


class Process:
    """``python -m consumer run`` with the stage's settings; its log goes to a file."""

    def __init__(self, stage: Stage, log: Path, instance: str = "a") -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        env = {k: v for k, v in env.items() if not k.startswith("SYNTHSCAN_")}
        self.log = log
        self._file = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "consumer", "run", *stage.cli_args(instance)],
            cwd=ROOT,
            env=env,
            stdout=self._file,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._file.close()

    def terminate(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            self._file.close()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def account(
    stage: Stage,
    ledger: Ledger,
    scenario: str,
    fault_end: float,
    began: float,
    partition: int | None = None,
    min_offset: int = 0,
) -> Row:
    """Lost and duplicated outputs per input message; seconds from the fault to new output
    (of inputs at ``min_offset`` or later, e.g. produced after the fault; of ``partition``'s
    inputs, when the fault hit one partition)."""
    expected = stage.expected()
    with ledger._lock:
        outputs = {k: list(v) for k, v in ledger.outputs.items()}
    lost = len(expected - set(outputs))
    duplicated = sum(len(v) - 1 for v in outputs.values())
    dead = sum(1 for v in outputs.values() for name, _ in v if name.startswith("dead_letter"))
    first = ledger.first_after(fault_end, partition, min_offset)
    row = Row(
        scenario=scenario,
        mode="exactly-once" if stage.exactly_once else "at-least-once",
        events=len(expected),
        lost=lost,
        duplicated=duplicated,
        dead_letters=dead,
        recover_s=round(first - fault_end, 1) if first is not None else float("inf"),
        total_s=round(time.monotonic() - began, 1),
    )
    REPORT.append(row)
    return row

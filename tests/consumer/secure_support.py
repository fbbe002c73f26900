"""Helpers of the secured-broker tests: topics with ACLs, the service as a process, readers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from consumer_support import encode, image_event
from kafka_support import image_bytes, unique

from devkafka.secure import SecureKafkaBroker, service_acls

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class SecureTopics:
    """Unique topics and group of one test on the secured broker (created by the super user)."""

    broker: SecureKafkaBroker
    input: str = field(default_factory=lambda: unique("images"))
    verdicts: str = field(default_factory=lambda: unique("verdicts"))
    dlq: str = field(default_factory=lambda: unique("dlq"))
    group: str = field(default_factory=lambda: unique("group"))
    instance: str = field(default_factory=lambda: unique("pod"))

    def __post_init__(self) -> None:
        admin = AdminClient(self.broker.admin_config())
        new = [NewTopic(self.input, 2, 1), NewTopic(self.verdicts, 1, 1), NewTopic(self.dlq, 1, 1)]
        for future in admin.create_topics(new).values():
            future.result(timeout=30)

    @property
    def transactional_id(self) -> str:
        return f"synthscan-{self.instance}"

    def grant(self, user: str, *, skip: str = "") -> None:
        """The service's ACLs for ``user``, without ``skip`` ("output", "group", "txn")."""
        outputs = [self.dlq] if skip == "output" else [self.verdicts, self.dlq]
        acls = service_acls(
            user,
            input_topics=[self.input],
            group=self.group if skip != "group" else unique("other-group"),
            output_topics=outputs,
            transactional_id=None if skip == "txn" else self.transactional_id,
        )
        self.broker.grant(acls)

    def produce_events(self, n: int, poison: int = 0) -> None:
        producer = Producer({**self.broker.admin_config(), "linger.ms": 5})
        for i in range(n):
            value, headers = encode(image_event(f"e{i}", data=image_bytes(i)))
            producer.produce(self.input, value=value, key=f"k{i}".encode(), headers=headers)
        for i in range(poison):
            producer.produce(self.input, value=b"this is not an event", key=f"p{i}".encode())
        assert producer.flush(30) == 0

    def read(self, topic: str, count: int, timeout: float) -> list[tuple[bytes, list[Any]]]:
        """``count`` records of ``topic`` (value, headers), read_committed, as the super user."""
        reader = Consumer(
            {
                **self.broker.admin_config(),
                "group.id": unique("reader"),
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        reader.subscribe([topic])
        got: list[tuple[bytes, list[Any]]] = []
        deadline = time.monotonic() + timeout
        try:
            while len(got) < count and time.monotonic() < deadline:
                msg = reader.poll(0.2)
                if msg is not None and msg.error() is None:
                    got.append((msg.value() or b"", msg.headers() or []))
        finally:
            reader.close()
        return got

    def cli_args(self, checkpoint: Path, user: str, ca: Path, exactly_once: bool) -> list[str]:
        pairs = {
            "kafka.bootstrap_servers": self.broker.bootstrap_servers,
            "kafka.security_protocol": "SASL_SSL",
            "kafka.sasl_mechanism": "SCRAM-SHA-512",
            "kafka.sasl_username": user,
            "kafka.ssl_ca_location": str(ca),
            "kafka.group_id": self.group,
            "kafka.input_topics": self.input,
            "kafka.verdict_topic": self.verdicts,
            "kafka.dead_letter_topic": self.dlq,
            "kafka.instance_id": self.instance,
            "kafka.exactly_once": str(exactly_once).lower(),
            "kafka.commit_interval_s": "0.5",
            "kafka.session_timeout_ms": "6000",
            "kafka.statistics_interval_ms": "1000",
            "batching.max_wait_ms": "20",
            "model.max_batch_size": "4",
            "model.checkpoint": str(checkpoint),
            "model.device": "cpu",
            "model.precision": "fp32",
            "model.warmup": "false",
            "model.torch_threads": "1",
            "http.host": "127.0.0.1",
            "http.port": "0",
            "shutdown.grace_s": "20",
        }
        return [arg for k, v in pairs.items() for arg in ("--set", f"{k}={v}")]


class ServiceProcess:
    """``python -m consumer run``; the SASL password comes from the environment, as in a pod."""

    def __init__(self, args: list[str], password: str, log: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHSCAN_")}
        env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        env["SYNTHSCAN_KAFKA__SASL_PASSWORD"] = password
        self.log = log
        self._file = log.open("ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "consumer", "run", *args],
            cwd=ROOT,
            env=env,
            stdout=self._file,
            stderr=subprocess.STDOUT,
        )

    def wait(self, timeout: float) -> tuple[int, float]:
        """Exit code and seconds since start."""
        try:
            code = self.proc.wait(timeout)
        finally:
            self._file.close()
        return code, time.monotonic() - self.started

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def http_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.text().splitlines():
                if '"http_listening"' in line:
                    return int(json.loads(line)["port"])
            time.sleep(0.2)
        raise AssertionError(f"no http_listening line:\n{self.text()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if not self._file.closed:
            self._file.close()


def metrics_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())

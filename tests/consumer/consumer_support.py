"""Helpers for the consumer tests: checkpoints, images, topics, events, readers."""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import torch
from confluent_kafka import Consumer, KafkaError, Producer
from kafka_support import committed, create_topics, end_offsets, image_bytes, unique

from consumer import ServiceSettings
from consumer.pipeline.steps.base import ProcessingStep
from detector.checkpoint import CheckpointMetadata, save_checkpoint
from detector.model import ModelConfig, build_model
from schemas import (
    DeadLetter,
    ImageData,
    ImageEvent,
    Verdict,
    decode_dead_letter,
    decode_verdict,
    encode_image_event,
)

Record = tuple[bytes | None, bytes | None, list]


def make_checkpoint(path: Path, backbone: str = "mobilenet_v2") -> Path:
    """A random-init GLFF checkpoint (no download)."""
    torch.manual_seed(0)
    config = ModelConfig(arch="glff", backbone=backbone, patch_strategy="psm")
    model = build_model(config, backbone_weights=None)
    save_checkpoint(
        path, model, CheckpointMetadata(config=config, name="test-glff", version="0.0.1")
    )
    return path


@dataclass(frozen=True)
class SentEvent:
    event_id: str
    partition: int
    sha256: str


def image_event(
    event_id: str,
    *,
    data: bytes | None = None,
    url: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    mime: str | None = "image/png",
    ref: str | None = None,
) -> ImageEvent:
    return ImageEvent(
        id=event_id,
        source="/tests/consumer",
        data=ImageData(
            content_id=f"c-{event_id}",
            tenant="t1",
            url=url,
            ref=ref,
            data=data,
            sha256=sha256,
            size_bytes=size,
            mime=mime,
            metadata={"n": event_id},
        ),
    )


def produce(
    bootstrap: str,
    topic: str,
    messages: Iterable[tuple[bytes | None, bytes | None, list]],
    partition_of: int | None = None,
) -> int:
    """Produce ``(key, value, headers)`` messages and wait until all are delivered."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    errors: list[KafkaError] = []
    count = 0
    for key, value, headers in messages:
        kwargs = {} if partition_of is None else {"partition": partition_of}
        producer.produce(
            topic,
            value=value,
            key=key,
            headers=headers,
            on_delivery=lambda err, _m: errors.append(err) if err else None,
            **kwargs,
        )
        count += 1
    assert producer.flush(30) == 0
    assert not errors, errors
    return count


def encode(event: ImageEvent, mode: str = "binary", inline: str = "raw") -> tuple[bytes, list]:
    value, headers = encode_image_event(event, mode=mode, inline=inline)  # type: ignore[arg-type]
    return value, list(headers)


class TopicReader:
    """Reads a topic from the beginning (read_committed) and keeps everything it saw."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": unique("reader"),
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        self.consumer.subscribe([topic])
        self.records: list[Record] = []

    def read_until(
        self, count: int, timeout: float
    ) -> list[tuple[bytes | None, bytes | None, list]]:
        deadline = time.monotonic() + timeout
        while len(self.records) < count and time.monotonic() < deadline:
            self._poll(0.2)
        return self.records

    def settle(self, quiet_s: float = 1.0) -> None:
        """Keep reading until nothing new came for ``quiet_s``."""
        last = time.monotonic()
        while time.monotonic() - last < quiet_s:
            if self._poll(0.1):
                last = time.monotonic()

    def _poll(self, timeout: float) -> bool:
        msg = self.consumer.poll(timeout)
        if msg is None or msg.error() is not None:
            return False
        self.records.append((msg.key(), msg.value(), msg.headers() or []))
        return True

    def verdicts(self) -> list[Verdict]:
        return [decode_verdict(v, h) for _k, v, h in self.records]

    def dead_letters(self) -> list[DeadLetter]:
        return [decode_dead_letter(v, h) for _k, v, h in self.records]

    def close(self) -> None:
        self.consumer.close()


class ImageServer:
    """Serves ``/img/<seed>[-<w>x<h>].png``, ``/slow`` (sleeps), ``/big`` (3 MiB), else 404."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                if self.path.startswith("/img/"):
                    seed, _, size = self.path[5:].removesuffix(".png").partition("-")
                    w, _, h = size.partition("x")
                    body = image_bytes(int(seed), size=(int(w or 96), int(h or 80)))
                elif self.path == "/slow":
                    time.sleep(5)
                    body = image_bytes(0)
                elif self.path == "/big":
                    body = b"\x89PNG" + b"\0" * (3 * 1024 * 1024)
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Topics:
    """Unique topic and group names of one test."""

    def __init__(self, bootstrap: str, partitions: int) -> None:
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.input = unique("images")
        self.verdicts = unique("verdicts")
        self.dlq = unique("dlq")
        self.group = unique("group")
        create_topics(bootstrap, {self.input: partitions, self.verdicts: 1, self.dlq: 1})

    def settings(self, checkpoint: Path, **sections: dict[str, Any]) -> ServiceSettings:
        """Test settings: small batches, fast commits, ephemeral HTTP port."""
        base: dict[str, dict[str, Any]] = {
            "kafka": {
                "bootstrap_servers": self.bootstrap,
                "group_id": self.group,
                "input_topics": [self.input],
                "verdict_topic": self.verdicts,
                "dead_letter_topic": self.dlq,
                "statistics_interval_ms": 1000,
                "commit_interval_s": 0.2,
                "session_timeout_ms": 6000,
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
            "fetch": {
                "allow_cidrs": ["127.0.0.1/32"],
                "timeout_s": 1.0,
                "retries": 0,
                "max_bytes": 1024 * 1024,
            },
        }
        for name, values in sections.items():
            base[name] = {**base.get(name, {}), **values}
        return ServiceSettings(**base)

    def cli_args(self, checkpoint: Path) -> list[str]:
        """``--set`` arguments for ``python -m consumer run`` with the same settings."""
        pairs = {
            "kafka.bootstrap_servers": self.bootstrap,
            "kafka.group_id": self.group,
            "kafka.input_topics": self.input,
            "kafka.verdict_topic": self.verdicts,
            "kafka.dead_letter_topic": self.dlq,
            "kafka.commit_interval_s": "0.2",
            "kafka.session_timeout_ms": "6000",
            "batching.max_wait_ms": "20",
            "model.max_batch_size": "4",
            "model.checkpoint": str(checkpoint),
            "model.device": "cpu",
            "model.precision": "fp32",
            "model.torch_threads": "1",
            "http.host": "127.0.0.1",
            "http.port": "0",
            "shutdown.grace_s": "20",
            "fetch.allow_cidrs": '["127.0.0.1/32"]',
        }
        return [arg for k, v in pairs.items() for arg in ("--set", f"{k}={v}")]


def wait_committed(topics: Topics, timeout: float = 20.0) -> dict[int, int]:
    """Poll the group's committed offsets until they reach the end offsets (or time out)."""
    end = end_offsets(topics.bootstrap, topics.input, topics.partitions)
    deadline = time.monotonic() + timeout
    got = committed(topics.bootstrap, topics.group, topics.input, topics.partitions)
    while got != end and time.monotonic() < deadline:
        time.sleep(0.2)
        got = committed(topics.bootstrap, topics.group, topics.input, topics.partitions)
    return got


def http_get(port: int | None, path: str) -> tuple[int, str]:
    """GET ``http://127.0.0.1:port/path``: (status, body), also for error statuses."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Collect(ProcessingStep[Any]):
    """A last step that keeps what it is given."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.joined = False

    def submit(self, item: Any) -> None:
        self.items.append(item)

    def poll(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        self.joined = True

    def close(self) -> None:
        pass

"""Helpers of the interop tests: the Java helper and the 1.x Python SDK (both built or fetched
once and cached), an image server, the event modes we document, and a live-service judge."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from confluent_kafka import Consumer, Producer
from PIL import Image

from schemas import DeadLetter, Verdict, decode_dead_letter, decode_verdict

ROOT = Path(__file__).resolve().parents[2]
JAVA_DIR = ROOT / "interop" / "java"
JAVA_LIBS = JAVA_DIR / "libs"
CACHE = Path(os.environ.get("SYNTHSCAN_CACHE_DIR", Path.home() / ".cache" / "synthscan"))
SDK1_VERSION = "1.13.0"
PIP_TARGET = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target"]
SDK1_CLIENT = Path(__file__).with_name("sdk_v1_client.py")
IMAGE_TYPE = "io.synthscan.image.v1"

Headers = list[tuple[str, bytes]]
Message = tuple[bytes, bytes, Headers]


class SetupError(RuntimeError):
    """A tool the interop tests need (JDK, Maven, pip) is missing or failed."""


def _need(tool: str, how: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise SetupError(f"`{tool}` not found on PATH: {how}")
    return path


def fetch_java_libs() -> None:
    """Download the helper's jars from Maven Central into interop/java/libs (once per pom)."""
    stamp = JAVA_LIBS / ".fetched"
    pom_hash = hashlib.sha256((JAVA_DIR / "pom.xml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == pom_hash:
        return
    mvn = _need("mvn", "install Maven (Debian/Ubuntu: `apt-get install maven`), or `make install`")
    proc = subprocess.run(
        [mvn, "-q", "-B", "-f", str(JAVA_DIR / "pom.xml"), "dependency:copy-dependencies"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        raise SetupError(f"mvn dependency:copy-dependencies failed:\n{proc.stdout[-4000:]}")
    stamp.write_text(pom_hash + "\n")


def build_java_helper() -> JavaHelper:
    """Compile interop/java/src with javac into ~/.cache/synthscan/bin/interop-java-<hash>."""
    how = "install a JDK 17+ (Debian/Ubuntu: `apt-get install openjdk-17-jdk-headless`)"
    java, javac = _need("java", how), _need("javac", how)
    fetch_java_libs()
    sources = sorted((JAVA_DIR / "src").glob("*.java"))
    digest = hashlib.sha256(
        b"".join(p.read_bytes() for p in [JAVA_DIR / "pom.xml", *sources])
    ).hexdigest()[:12]
    target = CACHE / "bin" / f"interop-java-{digest}"
    classpath = f"{target}{os.pathsep}{JAVA_LIBS}/*"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        proc = subprocess.run(
            [javac, "-nowarn", "-d", str(partial), "-cp", f"{JAVA_LIBS}/*", *map(str, sources)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise SetupError(f"javac failed:\n{proc.stderr[-4000:]}")
        with contextlib.suppress(OSError):  # a parallel run may have won the race
            partial.rename(target)
        shutil.rmtree(partial, ignore_errors=True)
    return JavaHelper(java, classpath)


def install_sdk1() -> Path:
    """``cloudevents==1.13.0`` in its own directory (pip --target, once): run with PYTHONPATH."""
    target = CACHE / "py" / f"cloudevents-{SDK1_VERSION}"
    if (target / "cloudevents" / "kafka").is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    proc = subprocess.run(
        [*PIP_TARGET, str(partial), f"cloudevents=={SDK1_VERSION}"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise SetupError(f"pip could not install cloudevents {SDK1_VERSION}:\n{proc.stderr}")
    with contextlib.suppress(OSError):
        partial.rename(target)
    shutil.rmtree(partial, ignore_errors=True)
    return target


@dataclass(frozen=True)
class JavaHelper:
    """``java SynthscanInterop ...``: see interop/java/src/SynthscanInterop.java."""

    java: str
    classpath: str

    def argv(self, *args: str) -> list[str]:
        jvm = ["-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", self.classpath]
        return [self.java, *jvm, "SynthscanInterop", *args]

    def run(self, *args: str, timeout: float = 120) -> list[dict[str, Any]]:
        proc = subprocess.run(
            self.argv(*args), capture_output=True, text=True, timeout=timeout, check=False
        )
        assert proc.returncode == 0, f"java {args[0]} failed:\n{proc.stderr[-4000:]}"
        return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]

    def produce(self, bootstrap: str, topic: str, specs: list[dict[str, Any]]) -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            f.write("".join(json.dumps(s) + "\n" for s in specs))
        try:
            self.run("produce", bootstrap, topic, f.name)
        finally:
            os.unlink(f.name)

    def consume(self, bootstrap: str, counts: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
        """The first ``count`` records of each topic, as the SDK's deserializer gives them."""
        out = self.run("consume", bootstrap, "60000", *(f"{t}:{n}" for t, n in counts.items()))
        return {t: [r for r in out if r["topic"] == t] for t in counts}

    def validate(self, docs: dict[Path, list[Any]]) -> dict[Path, list[list[str]]]:
        """Errors per document and schema; each schema must itself be valid 2020-12."""
        with tempfile.TemporaryDirectory() as tmp:
            pairs = []
            for i, (schema, values) in enumerate(docs.items()):
                path = Path(tmp) / f"{i}.jsonl"
                path.write_text("".join(json.dumps(d) + "\n" for d in values))
                pairs.append(f"{schema}={path}")
            out = self.run("validate", *pairs)
        result: dict[Path, list[list[str]]] = {}
        for schema in docs:
            rows = [o for o in out if o["schema"] == str(schema)]
            assert rows[0]["index"] == -1 and rows[0]["errors"] == [], f"{schema} is not 2020-12"
            result[schema] = [o["errors"] for o in rows[1:]]
        return result


def image_bytes(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ImageServer:
    """Serves ``/img/<seed>.png`` on 127.0.0.1 (claim-check URLs and ``ref`` keys)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if not self.path.startswith("/img/"):
                    self.send_error(404)
                    return
                body = image_bytes(int(self.path[5:].removesuffix(".png")))
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
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


MODES = (
    "binary-url",
    "binary-ref",
    "binary-base64",
    "binary-raw",
    "structured-url",
    "structured-ref",
    "structured-base64",
    "structured-data_base64",
)
"""Every way docs/events.md says an image event may travel: content mode x image source."""


def spec_for(mode: str, event_id: str, seed: int, base_url: str) -> tuple[dict[str, Any], str]:
    """A CloudEvent spec (see sdk_v1_client.py) for ``mode`` and the sha256 of its image."""
    content_mode, _, source = mode.partition("-")
    img = image_bytes(seed)
    spec: dict[str, Any] = {
        "mode": content_mode,
        "key": event_id,
        "id": event_id,
        "source": "/interop/sdk",
        "type": IMAGE_TYPE,
        "subject": f"c-{event_id}",
        "time": "2026-11-22T00:05:00Z",
    }
    if source == "raw" or source == "data_base64":
        spec["datacontenttype"] = "image/png"
        spec["data_base64"] = base64.b64encode(img).decode()
        spec["extensions"] = {"contentid": f"c-{event_id}", "sha256": sha(img), "tenant": "t1"}
        return spec, sha(img)
    data: dict[str, Any] = {"content_id": f"c-{event_id}", "tenant": "t1", "metadata": {"m": mode}}
    if source == "url":
        data["url"] = f"{base_url}img/{seed}.png"
    elif source == "ref":
        data["ref"] = f"img/{seed}.png"
    else:
        data["data"] = base64.b64encode(img).decode()
    data["sha256"] = sha(img)
    spec["datacontenttype"] = "application/json"
    spec["data_json"] = data
    return spec, sha(img)


@dataclass
class Outcomes:
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    """By event id."""
    dead_letters: dict[str, DeadLetter] = field(default_factory=dict)
    """By the original message's key."""
    verdict_records: list[Message] = field(default_factory=list)
    dead_letter_records: list[Message] = field(default_factory=list)


class Live:
    """The running service's input and output topics: send messages, collect their outcomes."""

    def __init__(self, bootstrap: str, input_topic: str, verdicts: str, dlq: str) -> None:
        self.bootstrap = bootstrap
        self.input = input_topic
        self.verdict_topic = verdicts
        self.dlq_topic = dlq
        self.sent: list[Message] = []
        self.seen = Outcomes()
        self._readers = {t: self._reader(t) for t in (verdicts, dlq)}

    def _reader(self, topic: str) -> Consumer:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"interop-reader-{topic}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        consumer.subscribe([topic])
        return consumer

    def send(self, messages: Iterable[Message]) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
        for key, value, headers in messages:
            producer.produce(self.input, key=key, value=value, headers=headers)
            self.sent.append((key, value, headers))
        assert producer.flush(30) == 0

    def outcomes(self, keys: Iterable[str], timeout: float = 120) -> Outcomes:
        """Poll both topics until every key (= event id) has a verdict or a dead letter."""
        want = set(keys)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if want <= set(self.seen.verdicts) | set(self.seen.dead_letters):
                break
            for topic, consumer in self._readers.items():
                for msg in consumer.consume(100, 0.1):
                    if msg.error() is not None:
                        continue
                    record = (msg.key() or b"", msg.value() or b"", list(msg.headers() or []))
                    if topic == self.verdict_topic:
                        verdict = decode_verdict(msg.value(), msg.headers())
                        self.seen.verdicts[verdict.event_id] = verdict
                        self.seen.verdict_records.append(record)
                    else:
                        dead = decode_dead_letter(msg.value(), msg.headers())
                        self.seen.dead_letters[(dead.original.key or b"").decode()] = dead
                        self.seen.dead_letter_records.append(record)
        missing = want - set(self.seen.verdicts) - set(self.seen.dead_letters)
        assert not missing, f"no verdict or dead letter for {sorted(missing)}"
        return self.seen

    def close(self) -> None:
        for consumer in self._readers.values():
            consumer.close()


if __name__ == "__main__":  # `make interop-deps`: fetch and build everything up front
    print(f"java helper: {build_java_helper().classpath.split(os.pathsep)[0]}")
    print(f"cloudevents {SDK1_VERSION}: {install_sdk1()}")

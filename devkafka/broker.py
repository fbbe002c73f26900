"""A real single-node Apache Kafka broker (KRaft) on 127.0.0.1, for tests and the demo.

The jars come from Maven Central (``devkafka/pom.xml``) into ``devkafka/libs``; no Docker.

    python -m devkafka.broker up      # start in .run/kafka on port 9092, wait until it answers
    python -m devkafka.broker down    # stop it cleanly
    python -m devkafka.broker status

Tests use :class:`KafkaBroker` directly, on free ports in a temporary directory.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
LIBS = ROOT / "libs"
DEFAULT_RUN_DIR = ROOT.parent / ".run" / "kafka"
DEFAULT_HEAP = "512m"


class BrokerError(RuntimeError):
    """The broker could not be set up, started or stopped."""


def new_cluster_id() -> str:
    """A random KRaft cluster id (base64url of a UUID, no padding)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_prerequisites() -> None:
    """Raise :class:`BrokerError` saying what to install when Java or the jars are missing."""
    java = shutil.which("java")
    if java is None:
        raise BrokerError(
            "Java not found: install a JDK/JRE 17 or newer "
            "(Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`) and put `java` on PATH."
        )
    if not any(LIBS.glob("kafka_2.13-*.jar")):
        if shutil.which("mvn") is None:
            raise BrokerError(
                "Kafka jars missing and Maven not found: install Maven "
                "(Debian/Ubuntu: `apt-get install maven`), then run `make kafka-jars`."
            )
        raise BrokerError(
            f"Kafka jars missing in {LIBS}: run `make kafka-jars` "
            "(mvn -f devkafka/pom.xml dependency:copy-dependencies)."
        )


def fetch_jars() -> None:
    """Download the broker jars from Maven Central into ``devkafka/libs`` (once)."""
    if any(LIBS.glob("kafka_2.13-*.jar")):
        return
    if shutil.which("mvn") is None:
        raise BrokerError(
            "Maven not found: install Maven (Debian/Ubuntu: `apt-get install maven`)."
        )
    subprocess.run(
        ["mvn", "-q", "-B", "-f", str(ROOT / "pom.xml"), "dependency:copy-dependencies"],
        check=True,
    )


def _listener_properties(port: int, controller_port: int) -> list[str]:
    return [
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names=CONTROLLER",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name=PLAINTEXT",
    ]


def _server_properties(data_dir: Path, node_id: int, voters: str, listeners: list[str]) -> str:
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={node_id}",
            f"controller.quorum.voters={voters}",
            *listeners,
            f"log.dirs={data_dir / 'data'}",
            "num.partitions=1",
            "auto.create.topics.enable=true",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=8",
            "group.initial.rebalance.delay.ms=0",
            # enforce transaction.timeout.ms within a second (default: checked every 10 s)
            "transaction.abort.timed.out.transaction.cleanup.interval.ms=1000",
            "log.cleaner.dedupe.buffer.size=2097152",
            "log.cleaner.threads=1",
            "num.network.threads=2",
            "num.io.threads=2",
            "",
        ]
    )


_LOG4J = """log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
"""


@dataclass
class KafkaBroker:
    """One KRaft broker+controller process with its own data directory."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    heap: str = DEFAULT_HEAP
    process: subprocess.Popen[bytes] | None = None
    started_in_s: float = 0.0
    node_id: int = 1
    voters: str = ""
    """``controller.quorum.voters`` of a cluster (:mod:`devkafka.cluster`); empty: this node."""
    cluster_id: str = ""
    """The KRaft cluster id every node of a cluster is formatted with; empty: a fresh one."""
    extra_properties: list[str] = field(default_factory=list)
    """``server.properties`` lines appended last (they win over the defaults above them)."""

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def kafka_version(self) -> str:
        """Version of the broker jar in ``devkafka/libs`` (e.g. ``3.9.1``)."""
        jars = sorted(LIBS.glob("kafka_2.13-*.jar"))
        return jars[-1].stem.removeprefix("kafka_2.13-") if jars else "unknown"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def admin_config(self) -> dict[str, Any]:
        """librdkafka settings of a client with every right (here: no security at all)."""
        return {"bootstrap.servers": self.bootstrap_servers}

    def listener_properties(self) -> list[str]:
        """The ``listeners``/security lines of ``server.properties`` (subclasses secure them)."""
        return _listener_properties(self.port, self.controller_port)

    def format_arguments(self) -> list[str]:
        """Extra ``StorageTool format`` arguments (e.g. ``--add-scram`` users)."""
        return []

    def format_storage(self) -> None:
        """Write server.properties and format the KRaft storage (a fresh cluster id)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "server.properties"
        voters = self.voters or f"{self.node_id}@127.0.0.1:{self.controller_port}"
        text = _server_properties(self.data_dir, self.node_id, voters, self.listener_properties())
        props.write_text(text + "".join(f"{line}\n" for line in self.extra_properties))
        (self.data_dir / "log4j.properties").write_text(_LOG4J.format(log=self.log_file))
        cluster_id = self.cluster_id or new_cluster_id()
        result = subprocess.run(
            [
                *self._java(),
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",  # an id may start with "-": never a separate argv
                "-c",
                str(props),
                *self.format_arguments(),
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise BrokerError(f"StorageTool format failed: {result.stdout}{result.stderr}")

    def start(self, timeout_s: float = 90.0) -> None:
        """Format storage (first start only), start the broker, wait until it answers.

        After :meth:`stop`, ``start`` again restarts the same broker with its data (tests of
        broker outages)."""
        began = time.monotonic()
        self.launch()
        self.wait_until_ready(began + timeout_s)
        self.started_in_s = time.monotonic() - began

    def launch(self) -> None:
        """Format storage (first start only) and start the process; returns at once (the
        nodes of a cluster must all run before any of them answers)."""
        check_prerequisites()
        if not (self.data_dir / "data" / "meta.properties").exists():  # else: a restart
            self.format_storage()
        stdout = (self.data_dir / "stdout.log").open("ab")
        self.process = subprocess.Popen(
            [*self._java(), "kafka.Kafka", str(self.data_dir / "server.properties")],
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid_file.write_text(str(self.process.pid))

    def wait_until_ready(self, deadline: float) -> None:
        """Block until the broker lists its metadata, or raise with the tail of its log."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({**self.admin_config(), "log_level": 0})
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise BrokerError(
                    f"broker exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                metadata = admin.list_topics(timeout=2)
                if metadata.brokers:
                    return
            except Exception:
                time.sleep(0.2)
        raise BrokerError(f"broker did not answer in time:\n{self.log_tail()}")

    def rss_mib(self) -> float:
        """Resident memory of the broker process in MiB (Linux)."""
        pid = self._pid()
        if pid is None:
            return 0.0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def is_running(self) -> bool:
        """A broker of this data directory runs (its pid file names a live process)."""
        return self.pid_file.exists() and _alive(int(self.pid_file.read_text()), self.process)

    def start_fresh(self) -> bool:
        """The command lines' ``up``: ``False`` when a broker already runs in this data
        directory, else start one on an emptied directory (and wait until it answers)."""
        if self.is_running():
            return False
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.start()
        return True

    def stop_and_remove(self) -> None:
        """The command lines' ``down``: stop the broker and delete its data directory."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (controlled shutdown), then SIGKILL after ``timeout_s``."""
        pid = self._pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            self.pid_file.unlink(missing_ok=True)
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid, self.process):
            time.sleep(0.1)
        if _alive(pid, self.process):
            os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL: no controlled shutdown (a crashed node)."""
        pid = self._pid()
        if pid is not None and _alive(pid, self.process):
            os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)
        self.pid_file.unlink(missing_ok=True)

    def log_tail(self, lines: int = 40) -> str:
        text = ""
        for name in ("stdout.log", "server.log"):
            path = self.data_dir / name
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    def _pid(self) -> int | None:
        if self.process is not None:
            return self.process.pid
        if self.pid_file.exists():
            return int(self.pid_file.read_text().strip())
        return None

    def _java(self) -> list[str]:
        return [
            "java",
            f"-Xmx{self.heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.data_dir / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.data_dir}",
            "-cp",
            f"{LIBS}/*",
        ]


def _alive(pid: int, process: subprocess.Popen[bytes] | None) -> bool:
    if process is not None:
        return process.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkafka.broker", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status", "fetch"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--port", type=int, default=int(os.environ.get("KAFKA_PORT", "9092")))
    args = parser.parse_args(argv)
    broker = KafkaBroker(args.dir, port=args.port)
    try:
        if args.action == "fetch":
            fetch_jars()
        elif args.action == "up":
            if not broker.start_fresh():
                print(f"kafka already running (pid {broker.pid_file.read_text().strip()})")
                return 0
            print(
                f"kafka up at {broker.bootstrap_servers} in {broker.started_in_s:.1f}s, "
                f"RSS {broker.rss_mib():.0f} MiB, data in {args.dir}"
            )
        elif args.action == "down":
            broker.stop_and_remove()
            print("kafka down")
        else:
            running = broker.is_running()
            print(f"kafka {'running at ' + broker.bootstrap_servers if running else 'not running'}")
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

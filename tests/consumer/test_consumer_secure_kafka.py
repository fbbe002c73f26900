"""The service against a secured broker (SASL_SSL, SCRAM-SHA-512, StandardAuthorizer ACLs).

One broker for the module (:class:`devkafka.secure.SecureKafkaBroker`, a CA made at start).
Verdicts flow with the right credentials in both delivery modes; a wrong password, a CA the
broker's certificate does not chain to, and a missing ACL on the verdict topic, the group or
the transactional id each end the process within 30 s with exit code 3 and one line naming
what failed; no output (logs, metrics, verdicts, dead letters) ever holds the password.
"""

from __future__ import annotations

import secrets
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from secure_support import SecureTopics, ServiceProcess, metrics_text

from devkafka.secure import SecureKafkaBroker

pytestmark = pytest.mark.kafka

PASSWORD = f"pw-{secrets.token_urlsafe(16)}"  # the service principal's SCRAM password
ACCESS_EXIT_CODE = 3  # consumer.errors.KafkaAccessError.exit_code (docs/consumer.md)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafkaBroker]:
    data_dir = tmp_path_factory.mktemp("secure-kafka")
    broker = SecureKafkaBroker(data_dir, heap="256m", users={"svc": PASSWORD})
    broker.start()
    try:
        for user in ("svc-noout", "svc-nogroup", "svc-notxn"):
            broker.add_user(user, PASSWORD)  # through the admin API, the same password
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[list[str]], ServiceProcess]]:
    procs: list[ServiceProcess] = []

    def start(args: list[str], password: str = PASSWORD) -> ServiceProcess:
        proc = ServiceProcess(args, password, tmp_path / f"service-{len(procs)}.log")
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()


def _records_text(records: list[tuple[bytes, list]]) -> str:
    parts = []
    for value, headers in records:
        parts.append(value.decode(errors="replace"))
        parts += [f"{k}={(v or b'').decode(errors='replace')}" for k, v in headers]
    return "\n".join(parts)


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_verdicts_flow_with_the_right_credentials_and_no_output_holds_the_password(
    broker: SecureKafkaBroker,
    checkpoint: Path,
    spawn: Callable[..., ServiceProcess],
    exactly_once: bool,
) -> None:
    topics = SecureTopics(broker)
    topics.grant("svc")
    topics.produce_events(6, poison=1)
    proc = spawn(topics.cli_args(checkpoint, "svc", broker.tls_files.ca, exactly_once))
    port = proc.http_port(timeout=60)
    verdicts = topics.read(topics.verdicts, 6, timeout=90)
    dead = topics.read(topics.dlq, 1, timeout=30)
    metrics = metrics_text(port)
    proc.proc.send_signal(signal.SIGTERM)
    code, _ = proc.wait(60)
    log = proc.text()
    assert code == 0, log
    assert len(verdicts) == 6, log
    assert len(dead) == 1 and b"schema_violation" in dead[0][0], dead
    assert "synthscan_" in metrics
    everything = "\n".join([log, metrics, _records_text(verdicts), _records_text(dead)])
    assert "sasl_username" in log  # the settings line is there, with the password masked
    assert PASSWORD not in everything
    assert "kafka_error" not in log, log


def _refused(
    spawn: Callable[..., ServiceProcess], args: list[str], expected: str, password: str = PASSWORD
) -> tuple[str, float]:
    """Run until the process exits; assert exit code 3 within 30 s and one line naming what
    failed; returns that line and the seconds it took."""
    proc = spawn(args, password)
    try:
        code, seconds = proc.wait(45)
    except Exception:
        raise AssertionError(f"still running after 45 s:\n{proc.text()[-3000:]}") from None
    log = proc.text()
    lines = [line for line in log.splitlines() if "cannot start:" in line]
    assert code == ACCESS_EXIT_CODE, log
    assert seconds < 30, seconds
    assert len(lines) == 1 and expected in lines[0], log
    assert log.count("\n") < 10, log  # no retry storm: a settings line and the error
    assert PASSWORD not in log and password not in log
    print(f"\n{seconds:.1f}s exit {code}: {lines[0]}")
    return lines[0], seconds


def test_wrong_password_is_one_authentication_error(
    broker: SecureKafkaBroker, checkpoint: Path, spawn: Callable[..., ServiceProcess]
) -> None:
    topics = SecureTopics(broker)
    topics.grant("svc")
    args = topics.cli_args(checkpoint, "svc", broker.tls_files.ca, False)
    wrong = f"wrong-{secrets.token_urlsafe(8)}"
    line, _ = _refused(spawn, args, "Kafka authentication failed for user 'svc'", wrong)
    assert "SCRAM-SHA-512" in line


def test_unknown_ca_is_one_tls_error(
    broker: SecureKafkaBroker, checkpoint: Path, spawn: Callable[..., ServiceProcess]
) -> None:
    topics = SecureTopics(broker)
    topics.grant("svc")
    args = topics.cli_args(checkpoint, "svc", broker.tls_files.other_ca, False)
    line, _ = _refused(spawn, args, "Kafka TLS handshake failed")
    assert "certificate verify failed" in line


def test_no_write_acl_on_the_verdict_topic_names_the_topic(
    broker: SecureKafkaBroker, checkpoint: Path, spawn: Callable[..., ServiceProcess]
) -> None:
    topics = SecureTopics(broker)
    topics.grant("svc-noout", skip="output")
    args = topics.cli_args(checkpoint, "svc-noout", broker.tls_files.ca, False)
    _refused(spawn, args, f"user 'svc-noout' may not WRITE topic '{topics.verdicts}'")


def test_no_group_acl_names_the_group(
    broker: SecureKafkaBroker, checkpoint: Path, spawn: Callable[..., ServiceProcess]
) -> None:
    topics = SecureTopics(broker)
    topics.grant("svc-nogroup", skip="group")
    args = topics.cli_args(checkpoint, "svc-nogroup", broker.tls_files.ca, False)
    _refused(spawn, args, f"user 'svc-nogroup' may not READ consumer group '{topics.group}'")


def test_no_transactional_id_acl_in_exactly_once(
    broker: SecureKafkaBroker, checkpoint: Path, spawn: Callable[..., ServiceProcess]
) -> None:
    topics = SecureTopics(broker)
    topics.grant("svc-notxn", skip="txn")
    args = topics.cli_args(checkpoint, "svc-notxn", broker.tls_files.ca, True)
    expected = f"user 'svc-notxn' was refused on a transactional id '{topics.transactional_id}'"
    _refused(spawn, args, expected)

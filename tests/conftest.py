"""Shared fixtures: a real Apache Kafka broker for the whole session, and a quiet CPU."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from devkafka.broker import KafkaBroker

torch.set_num_threads(1)

_BROKER: dict[str, str] = {}
_KAFKA_RESULTS = {"passed": 0, "failed": 0}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the broker carries the ``kafka`` marker (``-m kafka`` selects them)."""
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and "kafka" in report.keywords:
        _KAFKA_RESULTS["passed" if report.passed else "failed"] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say plainly which broker the Kafka tests ran against."""
    if not _BROKER:
        return
    terminalreporter.write_sep("-", "kafka")
    terminalreporter.write_line(
        f"{_KAFKA_RESULTS['passed']} passed, {_KAFKA_RESULTS['failed']} failed: Kafka tests "
        f"against {_BROKER['kind']} at {_BROKER['bootstrap']} ({_BROKER['detail']})"
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker.

    Uses ``KAFKA_BOOTSTRAP_SERVERS`` when set; otherwise starts a single-node KRaft broker on
    free loopback ports with its own data directory, and removes it afterwards.
    """
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        _BROKER.update(
            kind="the external broker", bootstrap=external, detail="KAFKA_BOOTSTRAP_SERVERS"
        )
        yield external
        return
    data_dir = Path(tempfile.mkdtemp(prefix="synthscan-kafka-"))
    broker = KafkaBroker(data_dir)
    broker.start()
    _BROKER.update(
        kind=f"a real Apache Kafka {broker.kafka_version} broker (KRaft, started by the fixture)",
        bootstrap=broker.bootstrap_servers,
        detail=f"started in {broker.started_in_s:.1f}s, RSS at start {broker.rss_mib():.0f} MiB",
    )
    try:
        yield broker.bootstrap_servers
    finally:
        _BROKER["detail"] += f", RSS at end {broker.rss_mib():.0f} MiB"
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

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


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker.

    Uses ``KAFKA_BOOTSTRAP_SERVERS`` when set; otherwise starts a single-node KRaft broker on
    free loopback ports with its own data directory, and removes it afterwards.
    """
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    data_dir = Path(tempfile.mkdtemp(prefix="synthscan-kafka-"))
    broker = KafkaBroker(data_dir)
    broker.start()
    print(
        f"\n[kafka] real Apache Kafka broker at {broker.bootstrap_servers}: "
        f"started in {broker.started_in_s:.1f}s, RSS {broker.rss_mib():.0f} MiB"
    )
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

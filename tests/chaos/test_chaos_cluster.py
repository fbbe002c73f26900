"""Fault scenarios on a replicated 3-node KRaft cluster (RF 3, ``min.insync.replicas=2``).

Same accounting as ``test_chaos_kafka.py`` (lost / duplicated / dead letters per input
message, read_committed), same bounds: nothing lost, nothing duplicated in exactly-once mode,
output of the faulted partition resumes within ``RECOVERY_S`` of the fault.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaos_support import InProcess, Stage, account, produce_events

from detector import Detector
from devkafka.cluster import KafkaCluster

pytestmark = [pytest.mark.chaos, pytest.mark.kafka]

MODES = pytest.mark.parametrize("exactly_once", [False, True], ids=["alo", "eos"])
N = 24
RECOVERY_S = 60.0
DONE_S = 120.0


@pytest.fixture
def services(chaos_detector: Detector) -> Iterator[InProcess]:
    running = InProcess(chaos_detector)
    yield running
    running.stop()


@MODES
def test_kill_the_leader_of_an_input_partition(
    exactly_once: bool,
    chaos_cluster: KafkaCluster,
    chaos_checkpoint: Path,
    services: InProcess,
) -> None:
    """SIGKILL the broker leading input partition 0 mid-stream; it stays down until the end."""
    began = time.monotonic()
    stage = Stage(
        chaos_cluster.bootstrap_servers, chaos_checkpoint, exactly_once, replication_factor=3
    )
    ids = [f"L-{i}" for i in range(N)]
    first, later = ids[: N - 8], ids[N - 8 :]
    produce_events(stage.bootstrap, stage.input, first, stage.partitions)
    ledger = stage.ledger()
    service = services.start(stage.settings())
    assert ledger.wait(4, 60)
    leader = chaos_cluster.leader_of(stage.input, 0)
    chaos_cluster.nodes[leader].kill()
    fault = time.monotonic()
    try:
        # work on partition 0 that only exists after the kill: its output must resume
        produce_events(stage.bootstrap, stage.input, later, stage.partitions)
        assert ledger.wait(len(stage.expected()), DONE_S), f"{ledger.count()} outputs"
        ledger.settle()
        row = account(stage, ledger, f"leader kill (n{leader})", fault, began, partition=0)
        ledger.close()
    finally:
        chaos_cluster.nodes[leader].start()  # back with its data, for the next scenario
    assert row.lost == 0, row
    if exactly_once:
        assert row.duplicated == 0, row
    assert row.recover_s <= RECOVERY_S, row
    assert service.error is None

"""Scale-out across processes: three ``python -m consumer run`` in one group on a 12-partition
topic, one SIGKILLed mid-stream and a fourth added later (a new pod name, so a new
transactional id in exactly-once mode). Every event gets exactly one output in exactly-once
mode (at least one in at-least-once), and the group's lag drains."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from chaos_support import Ledger, Process, Stage, account, produce_events
from kafka_support import committed, end_offsets

from devkafka.broker import KafkaBroker

pytestmark = [pytest.mark.chaos, pytest.mark.kafka]

PARTITIONS = 12
N = 48
DONE_S = 180.0
"""Exactly-once: the killed instance's open transaction blocks read_committed readers until the
broker aborts it (``transaction.timeout.ms``, at least 60 s here); a new instance has a new
transactional id and cannot fence it."""


@pytest.mark.parametrize("exactly_once", [False, True], ids=["alo", "eos"])
def test_three_processes_one_killed_one_added(
    exactly_once: bool, chaos_broker: KafkaBroker, chaos_checkpoint: Path, tmp_path: Path
) -> None:
    began = time.monotonic()
    stage = Stage(
        chaos_broker.bootstrap_servers, chaos_checkpoint, exactly_once, partitions=PARTITIONS
    )
    ids = [f"s-{i}" for i in range(N)]
    produce_events(stage.bootstrap, stage.input, ids[: N // 2], PARTITIONS)
    ledger: Ledger = stage.ledger()
    procs = {name: Process(stage, tmp_path / f"{name}.log", name) for name in "abc"}
    try:
        assert ledger.wait(8, 120), procs["b"].tail()
        procs["b"].kill()
        fault_end = time.monotonic()
        produce_events(stage.bootstrap, stage.input, ids[N // 2 :], PARTITIONS)
        procs["d"] = Process(stage, tmp_path / "d.log", "d")
        assert ledger.wait(len(stage.expected()), DONE_S), f"{ledger.count()} outputs"
        ledger.settle()
        after = (N // 2) // PARTITIONS  # recovery: first output of an input produced after the kill
        row = account(stage, ledger, "scale-out 3-1+1", fault_end, began, min_offset=after)
        ledger.close()
        lag = _lag(stage, deadline=time.monotonic() + 30)
    finally:
        for name, proc in procs.items():
            if name != "b":
                proc.terminate()
    assert row.lost == 0, row
    if exactly_once:
        assert row.duplicated == 0, row
    assert lag == 0, lag


def _lag(stage: Stage, deadline: float) -> int:
    """The group's total lag on the input topic, once it is 0 or at ``deadline``."""
    ends = end_offsets(stage.bootstrap, stage.input, PARTITIONS)
    while True:
        done = committed(stage.bootstrap, stage.group, stage.input, PARTITIONS)
        lag = sum(end - max(done[p], 0) for p, end in ends.items())
        if lag == 0 or time.monotonic() > deadline:
            return lag
        time.sleep(0.5)

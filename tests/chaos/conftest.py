"""Fixtures of the fault suite: its own restartable broker, a tiny model, the report table."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from chaos_support import REPORT, InProcess, Stage

from consumer.logs import configure_logging
from detector import Detector
from detector.checkpoint import CheckpointMetadata, save_checkpoint
from detector.model import ModelConfig, build_model
from devkafka.broker import KafkaBroker
from devkafka.cluster import KafkaCluster


@pytest.fixture(scope="session", autouse=True)
def _logs() -> None:
    configure_logging(os.environ.get("CHAOS_LOG_LEVEL", "warning"), "console")  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def chaos_broker() -> Iterator[KafkaBroker]:
    """A broker of the fault suite alone: scenarios stop and restart it."""
    data_dir = Path(tempfile.mkdtemp(prefix="synthscan-chaos-kafka-"))
    broker = KafkaBroker(data_dir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def chaos_cluster() -> Iterator[KafkaCluster]:
    """A 3-node replicated KRaft cluster (RF 3, min.insync.replicas=2, 256 MiB heaps), started
    once for the fault suite's cluster scenarios; they kill and restart its nodes."""
    data_dir = Path(tempfile.mkdtemp(prefix="synthscan-chaos-cluster-"))
    cluster = KafkaCluster(data_dir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def chaos_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init global-only mobilenet_v2 checkpoint: one forward pass per image, so CPU
    time goes to Kafka, not inference."""
    torch.manual_seed(0)
    config = ModelConfig(arch="global_only", backbone="mobilenet_v2", patch_strategy="none")
    path = tmp_path_factory.mktemp("chaos-ckpt") / "global-only-mnv2.safetensors"
    save_checkpoint(
        path,
        build_model(config, backbone_weights=None),
        CheckpointMetadata(config=config, name="chaos-global-only", version="0.0.1"),
    )
    return path


@pytest.fixture(scope="session")
def chaos_glff_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init GLFF mobilenet_v2 checkpoint (global + local views: several forward
    passes per image, so the worker is busy scoring most of the time at a few events/s)."""
    torch.manual_seed(0)
    config = ModelConfig(arch="glff", backbone="mobilenet_v2", patch_strategy="psm")
    path = tmp_path_factory.mktemp("chaos-glff") / "glff-mnv2.safetensors"
    save_checkpoint(
        path,
        build_model(config, backbone_weights=None),
        CheckpointMetadata(config=config, name="chaos-glff", version="0.0.1"),
    )
    return path


@pytest.fixture(scope="session")
def chaos_detector(chaos_checkpoint: Path) -> Detector:
    det = Detector.from_checkpoint(chaos_checkpoint, device="cpu", precision="fp32")
    det.warmup()
    return det


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault-suite table: per scenario and delivery mode."""
    if not REPORT:
        return
    terminalreporter.write_sep("-", "fault suite (chaos)")
    head = f"{'scenario':<18} {'mode':<14} {'events':>6} {'lost':>5} {'dup':>5} {'dead':>5}"
    terminalreporter.write_line(head + f" {'recover_s':>9} {'total_s':>8}")
    for r in REPORT:
        terminalreporter.write_line(
            f"{r.scenario:<18} {r.mode:<14} {r.events:>6} {r.lost:>5} {r.duplicated:>5} "
            f"{r.dead_letters:>5} {r.recover_s:>9} {r.total_s:>8}"
        )


@pytest.fixture
def stage_factory(chaos_broker: KafkaBroker, chaos_checkpoint: Path) -> Callable[..., Stage]:
    def make(exactly_once: bool, **kwargs: object) -> Stage:
        return Stage(chaos_broker.bootstrap_servers, chaos_checkpoint, exactly_once, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def services(chaos_detector: Detector) -> Iterator[InProcess]:
    running = InProcess(chaos_detector)
    yield running
    running.stop()

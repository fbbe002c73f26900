"""Fixtures of the exactly-once and duplicate-image tests (helpers shared with tests/replay)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "replay"))

from replay_support import make_checkpoint

from consumer.logs import configure_logging
from detector import Detector


@pytest.fixture(scope="session", autouse=True)
def _logs() -> None:
    configure_logging("warning", "console")


@pytest.fixture(scope="session")
def eos_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("eos-ckpt") / "cnn-mnv2.safetensors")


@pytest.fixture(scope="session")
def eos_detector(eos_checkpoint: Path) -> Detector:
    return Detector.from_checkpoint(eos_checkpoint, device="cpu", precision="fp32")

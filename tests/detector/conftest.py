"""Fixtures for detector tests: a small random-init model, its checkpoint, image factories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from PIL import Image

from detector.checkpoint import CheckpointMetadata, save_checkpoint
from detector.model import GLFF, ModelConfig, build_model
from tests.detector.imaging import encode, random_array

SMALL = ModelConfig(backbone="mobilenet_v2")


@pytest.fixture(scope="session")
def small_model() -> GLFF:
    torch.manual_seed(0)
    model = build_model(SMALL)
    assert isinstance(model, GLFF)
    return model.eval()


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory, small_model: GLFF) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "small.safetensors"
    meta = CheckpointMetadata(name="test-small", version="1.2.3", threshold=0.4)
    save_checkpoint(path, small_model, meta)
    return path


@pytest.fixture
def make_png() -> Callable[..., bytes]:
    def _make(h: int, w: int, seed: int = 0) -> bytes:
        return encode(Image.fromarray(random_array(h, w, seed=seed)))

    return _make

"""Fixtures for the training tests: tiny generated datasets and a tiny test backbone.

The ``tiny_test`` backbone (two strided convolutions, stride 32, 8 channels: 7x7 at 224) is
registered in :data:`detector.backbones.BACKBONES` so that the whole GLFF pipeline (global
view, PSM, 6 roi_align patches, AFFM) runs for real in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from detector.backbones import BACKBONES, BackboneSpec
from detector.checkpoint import CheckpointMetadata, save_checkpoint
from detector.model import ModelConfig, build_model

TINY = "tiny_test"


class _TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, kernel_size=4, stride=4),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Conv2d(4, 8, kernel_size=8, stride=8),
            nn.ReLU(),
        )


def _trunk(model: nn.Module) -> nn.Sequential:
    features = model.features
    assert isinstance(features, nn.Sequential)
    return features


@pytest.fixture(autouse=True, scope="session")
def tiny_backbone() -> Iterator[str]:
    """Register the tiny backbone for the whole session."""
    BACKBONES[TINY] = BackboneSpec(_TinyNet, _trunk, 8, "", ())
    yield TINY
    BACKBONES.pop(TINY, None)


def image_array(h: int, w: int, fake: bool, seed: int) -> np.ndarray:
    """Real: smooth gradients plus mild noise. Fake: the same with a periodic 4-px pattern."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = (xx * 255 // max(w - 1, 1) + yy * 127 // max(h - 1, 1)) % 256
    img = np.stack([base, base[::-1], np.full_like(base, 90)], axis=-1).astype(np.float64)
    img += rng.normal(0, 6, img.shape)
    if fake:
        img += 40 * (((xx // 2) + (yy // 2)) % 2)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def write_image(path: Path, h: int, w: int, fake: bool, seed: int) -> Path:
    """Save one generated image (PNG or JPEG by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_array(h, w, fake, seed)).save(path)
    return path


SIZES = ((40, 56), (64, 48), (48, 48), (72, 40))


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    """``make_dataset(groups=("gan_a", "gan_b"), per_class=4)`` -> CNNDetection-layout root.

    Each group gets ``per_class`` real and fake images of mixed sizes (PNG and JPEG).
    """

    def _make(
        groups: tuple[str, ...] = ("gan_a", "gan_b"), per_class: int = 4, name: str = "data"
    ) -> Path:
        root = tmp_path / name
        seed = 0
        for group in groups:
            for label, cls in ((0, "0_real"), (1, "1_fake")):
                for i in range(per_class):
                    h, w = SIZES[(i + label) % len(SIZES)]
                    suffix = ".png" if i % 2 == 0 else ".jpg"
                    write_image(root / group / cls / f"{i:03d}{suffix}", h, w, bool(label), seed)
                    seed += 1
        return root

    return _make


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Callable[..., Path]:
    """``tiny_checkpoint(arch="glff", threshold=0.5, seed=0)`` -> a random-init checkpoint."""

    def _make(arch: str = "glff", threshold: float = 0.5, seed: int = 0) -> Path:
        torch.manual_seed(seed)
        config = ModelConfig(
            arch=arch, backbone=TINY, patch_strategy="none" if arch == "global_only" else "psm"
        )
        path = tmp_path / f"{arch}-{seed}.safetensors"
        save_checkpoint(
            path,
            build_model(config),
            CheckpointMetadata(name=f"{arch}-{seed}", threshold=threshold),
        )
        return path

    return _make

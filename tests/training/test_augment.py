"""Augmentation: the paper's probabilities and ranges, fixed validation values, determinism."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detector.training import augment
from detector.training.augment import (
    AugmentConfig,
    TrainAugment,
    ValidationAugment,
    degrade,
    jpeg_reencode,
)
from detector.training.datasets import ImageDataset, discover_folders, make_loader
from tests.training.conftest import image_array


class Recorder:
    """Replaces blur/JPEG in :mod:`augment` and records each call's parameter."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.blur: list[float] = []
        self.jpeg: list[int] = []
        self.calls: list[tuple[bool, bool]] = []
        monkeypatch.setattr(augment, "gaussian_blur", self._blur)
        monkeypatch.setattr(augment, "jpeg_reencode", self._jpeg)

    def _blur(self, img: Image.Image, sigma: float) -> Image.Image:
        self.blur.append(sigma)
        return img

    def _jpeg(self, img: Image.Image, quality: int) -> Image.Image:
        self.jpeg.append(quality)
        return img


def test_train_probabilities_ranges_and_independence(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch)
    aug = TrainAugment(AugmentConfig(blur_prob=0.1, jpeg_prob=0.1))
    img = Image.new("RGB", (4, 2))
    img.putpixel((0, 0), (255, 0, 0))
    n, both, flips = 6000, 0, 0
    for i in range(n):
        nb, nj = len(rec.blur), len(rec.jpeg)
        out = aug(img, np.random.default_rng([7, 0, i]))
        both += len(rec.blur) > nb and len(rec.jpeg) > nj
        flips += out.getpixel((3, 0)) == (255, 0, 0)
    # Binomial(6000, 0.1): sd 0.004, so +-0.02 is 5 sd.
    assert abs(len(rec.blur) / n - 0.1) < 0.02
    assert abs(len(rec.jpeg) / n - 0.1) < 0.02
    assert abs(both / n - 0.01) < 0.006  # independent: 0.1 * 0.1
    assert abs(flips / n - 0.5) < 0.03
    assert min(rec.blur) >= 0.0 and max(rec.blur) <= 3.0
    assert max(rec.blur) > 2.7 and min(rec.blur) < 0.3  # U[0, 3]
    assert set(rec.jpeg) <= set(range(30, 101))
    assert min(rec.jpeg) <= 32 and max(rec.jpeg) >= 98  # U{30..100}


def test_probability_settings_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch)
    aug = TrainAugment(AugmentConfig(blur_prob=1.0, jpeg_prob=0.0, hflip=False))
    img = Image.new("RGB", (8, 8))
    for i in range(200):
        aug(img, np.random.default_rng(i))
    assert len(rec.blur) == 200 and rec.jpeg == []
    with pytest.raises(ValueError):
        AugmentConfig(blur_prob=1.5)


def test_validation_uses_fixed_blur_and_jpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch)
    aug = ValidationAugment(AugmentConfig(blur_prob=0.5, jpeg_prob=0.5))
    img = Image.new("RGB", (8, 8))
    for i in range(400):
        assert aug(img, np.random.default_rng(i)) is img  # no flip in validation
    assert set(rec.blur) == {1.5} and set(rec.jpeg) == {65}
    assert 150 < len(rec.blur) < 250 and 150 < len(rec.jpeg) < 250


def test_degradations_change_pixels_as_expected() -> None:
    img = Image.fromarray(image_array(48, 64, True, 0))
    arr = np.asarray(img, dtype=np.int16)
    assert degrade(img, blur_sigma=0.0) is img
    blurred = np.asarray(degrade(img, blur_sigma=2.0), dtype=np.int16)
    assert blurred.shape == arr.shape
    assert np.abs(np.diff(blurred, axis=1)).mean() < np.abs(np.diff(arr, axis=1)).mean() / 2
    err30 = np.abs(np.asarray(jpeg_reencode(img, 30), dtype=np.int16) - arr).mean()
    err95 = np.abs(np.asarray(jpeg_reencode(img, 95), dtype=np.int16) - arr).mean()
    assert 0 < err95 < err30


def _epoch_pixels(dataset: ImageDataset, workers: int) -> list[tuple[int, torch.Tensor]]:
    out = []
    for batch in make_loader(dataset, batch_size=4, shuffle=True, workers=workers, seed=3):
        for row, index in enumerate(batch.indices.tolist()):
            h, w = batch.sizes[row].tolist()
            out.append((index, batch.pixels[row, :, :h, :w].clone()))
    return out


def test_seeded_augmentation_is_deterministic_with_workers(
    make_dataset: Callable[..., Path],
) -> None:
    samples = discover_folders(make_dataset(groups=("g",), per_class=6))
    always = TrainAugment(AugmentConfig(blur_prob=0.5, jpeg_prob=0.5))
    a = ImageDataset(samples, always, seed=3)
    b = ImageDataset(samples, always, seed=3)
    a.set_epoch(1)
    b.set_epoch(1)
    run0, run2 = _epoch_pixels(a, workers=0), _epoch_pixels(b, workers=2)
    assert [i for i, _ in run0] == [i for i, _ in run2]  # same shuffle order
    for (_, x), (_, y) in zip(run0, run2, strict=True):
        assert torch.equal(x, y)
    a.set_epoch(2)
    run_next = dict(_epoch_pixels(a, workers=0))
    assert [i for i, _ in run0] != list(run_next)  # a new epoch reshuffles
    changed = sum(not torch.equal(x, run_next[i]) for i, x in run0)
    assert changed > 0  # and draws new augmentations

"""Training the forensic local branch (:class:`detector.forensic.ForensicNet`) from scratch.

The branch learns on random native-resolution crops (never resized), labelled by their image:
each training image is decoded once and kept with ``variants`` processed copies
(:func:`detector.training.processing.everyday_processing`; upscaling is likelier for real
photos, so a resize does not read as a generator, but happens to fakes too, so it does not read
as "real" either), and every batch draws as many real as synthetic crops. A linear head on the
pooled features gives each crop a logit; the head is dropped when the trunk joins GLFF.

State (weights, optimizer, step) is saved every ``save_every`` steps and a run resumes from it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from detector.forensic import FORENSIC_WIDTH, ForensicNet
from detector.training.datasets import Sample, load_rgb
from detector.training.processing import ProcessingConfig, everyday_processing

log = logging.getLogger(__name__)

__all__ = ["CropPool", "ForensicClassifier", "ForensicTrainConfig", "build_pool", "train_forensic"]


@dataclass(frozen=True)
class ForensicTrainConfig:
    """One training run of the forensic branch."""

    steps: int = 600
    batch_size: int = 64
    crop: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    variants: int = 3
    real_upscale_prob: float = 0.35
    fake_upscale_prob: float = 0.1
    seed: int = 0
    width: int = FORENSIC_WIDTH
    save_every: int = 100


class ForensicClassifier(nn.Module):
    """:class:`ForensicNet` + average pool + ``Linear(C, 1)``: a logit per crop."""

    def __init__(self, width: int = FORENSIC_WIDTH) -> None:
        super().__init__()
        self.net = ForensicNet(width)
        self.head = nn.Linear(self.net.out_channels, 1)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """``[N, 3, S, S]`` pixels in [0, 255] -> logits ``[N]``."""
        return self.head(self.net(crops).mean(dim=(2, 3))).squeeze(1)


class CropPool:
    """Training images (``uint8 [H, W, 3]`` arrays) by class; random even-aligned crops."""

    def __init__(self, images: Sequence[tuple[np.ndarray, int]]) -> None:
        self.by_label: dict[int, list[np.ndarray]] = {0: [], 1: []}
        for array, label in images:
            self.by_label[label].append(array)
        if not self.by_label[0] or not self.by_label[1]:
            raise ValueError("the crop pool needs images of both classes")

    def batch(
        self, n: int, side: int, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` crops (half real, half synthetic) -> ``float [n, 3, side, side]``, labels."""
        labels = np.arange(n) % 2
        out = np.zeros((n, side, side, 3), dtype=np.uint8)
        for i, label in enumerate(labels):
            pool = self.by_label[int(label)]
            image = pool[int(rng.integers(len(pool)))]
            h, w = image.shape[:2]
            ch, cw = min(side, h), min(side, w)
            y0 = int(rng.integers(0, h - ch + 1)) & ~1
            x0 = int(rng.integers(0, w - cw + 1)) & ~1
            out[i, :ch, :cw] = image[y0 : y0 + ch, x0 : x0 + cw]
            if rng.random() < 0.5:
                out[i] = out[i, :, ::-1]
        pixels = torch.from_numpy(out).permute(0, 3, 1, 2).float()
        return pixels, torch.from_numpy(labels).float()


def build_pool(samples: Sequence[Sample], config: ForensicTrainConfig) -> CropPool:
    """Decode every sample once and add ``config.variants`` processed copies of each."""
    rng = np.random.default_rng(config.seed)
    images: list[tuple[np.ndarray, int]] = []
    for sample in samples:
        img = load_rgb(sample.path)
        up = config.real_upscale_prob if sample.label == 0 else config.fake_upscale_prob
        processing = ProcessingConfig(upscale_prob=up)
        images.append((np.asarray(img, dtype=np.uint8), sample.label))
        for _ in range(config.variants):
            processed = everyday_processing(img, rng, processing)
            images.append((np.asarray(processed, dtype=np.uint8), sample.label))
    return CropPool(images)


def _lr(config: ForensicTrainConfig, step: int) -> float:
    warmup = max(1, config.steps // 20)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, config.steps - warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * progress))


def train_forensic(
    pool: CropPool, config: ForensicTrainConfig, state_path: Path | None = None
) -> ForensicClassifier:
    """Train a :class:`ForensicClassifier` on ``pool`` (resuming from ``state_path``)."""
    torch.manual_seed(config.seed)
    model = ForensicClassifier(config.width)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start = 0
    if state_path is not None and state_path.is_file():
        state = torch.load(state_path, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = int(state["step"])
        log.info("resumed %s at step %d", state_path, start)
    rng = np.random.default_rng(config.seed + start)
    model.train()
    began, running = time.monotonic(), 0.0
    for step in range(start, config.steps):
        for group in opt.param_groups:
            group["lr"] = _lr(config, step)
        x, y = pool.batch(config.batch_size, config.crop, rng)
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        running = 0.95 * running + 0.05 * value if step > start else value
        if (step + 1) % config.save_every == 0 or step + 1 == config.steps:
            log.info(
                "step %d/%d loss %.4f (%.0f s)",
                step + 1,
                config.steps,
                running,
                time.monotonic() - began,
            )
            if state_path is not None:
                _save_state(state_path, model, opt, step + 1, config)
    return model.eval()


def _save_state(
    path: Path, model: nn.Module, opt: torch.optim.Optimizer, step: int, config: ForensicTrainConfig
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step}
    torch.save({**state, "config": asdict(config)}, tmp)
    tmp.replace(path)

"""Same seed, same data -> the same weights, and the weights of the run recorded below.

The recorded numbers come from ``train()`` before it was split into parts (data, start or
resume, one epoch, validation, checkpoint writing); the split reproduced them bit for bit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from detector.checkpoint import load_checkpoint
from detector.training.trainer import train
from tests.training.test_train import _config

# tiny GLFF, 2 epochs, seed 3, accumulation 2, blur and JPEG at 0.5 (CPU, one torch thread)
RECORDED_ABS_SUMS = {"head.weight": 5.282774888473796, "embed.weight": 179.31068371750735}
RECORDED_LOSSES = [0.7153154015541077, 0.6822266280651093]
RECORDED_VAL_AP = [0.5595238095238095, 0.8875]


def _run(root: Path, out: Path) -> tuple[str, dict[str, float], list[dict[str, float]]]:
    cfg = _config(root, out, epochs=2, seed=3, accum_steps=2, blur_prob=0.5, jpeg_prob=0.5)
    train(cfg)
    model, _ = load_checkpoint(out / "last.safetensors")
    digest = hashlib.sha256()
    sums: dict[str, float] = {}
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode() + tensor.contiguous().numpy().tobytes())
        sums[name] = float(tensor.double().abs().sum())
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return digest.hexdigest(), sums, rows


def test_same_seed_same_weights_as_recorded(
    make_dataset: Callable[..., Path], tmp_path: Path
) -> None:
    make_dataset(groups=("train/cat", "train/dog"), per_class=4, name="d")
    make_dataset(groups=("val",), per_class=4, name="d")
    digest, sums, rows = _run(tmp_path / "d", tmp_path / "one")
    again, _, _ = _run(tmp_path / "d", tmp_path / "two")
    assert again == digest
    for name, value in RECORDED_ABS_SUMS.items():
        assert sums[name] == pytest.approx(value, rel=1e-6), name
    assert [r["train_loss"] for r in rows] == pytest.approx(RECORDED_LOSSES, rel=1e-6)
    assert [r["val_ap"] for r in rows] == pytest.approx(RECORDED_VAL_AP, rel=1e-6)

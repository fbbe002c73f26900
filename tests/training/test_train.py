"""The training loop end to end on CPU with the tiny backbone."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from detector.checkpoint import load_checkpoint, read_metadata
from detector.engine import Detector
from detector.model import build_model
from detector.training.config import TrainConfig
from detector.training.trainer import freeze_trunk, train
from tests.training.conftest import TINY


def _config(root: Path, out: Path, **kw: object) -> TrainConfig:
    values: dict[str, object] = {
        "train": str(root / "train"),
        "val": str(root / "val"),
        "out": str(out),
        "backbone": TINY,
        "backbone_weights": None,
        "batch_size": 8,
        "workers": 0,
        "progress": False,
        "epochs": 1,
        **kw,
    }
    return TrainConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def split_root(make_dataset: Callable[..., Path], tmp_path: Path) -> Path:
    make_dataset(groups=("train/cat", "train/dog"), per_class=4, name="d")
    make_dataset(groups=("val",), per_class=4, name="d")
    return tmp_path / "d"


def test_one_epoch_end_to_end(split_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = _config(split_root, out, blur_prob=0.5, jpeg_prob=0.5)
    result = train(cfg)
    assert result.epochs_run == 1 and result.best_epoch == 0
    for name in ("best.safetensors", "last.safetensors", "state.pt", "log.jsonl", "log.csv"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["train_images"] == 16
    assert 0.0 <= rows[0]["val_ap"] <= 1.0 and rows[0]["skipped"] == 0
    with (out / "log.csv").open() as fh:
        assert next(csv.DictReader(fh))["epoch"] == "0"
    meta = read_metadata(out / "best.safetensors")
    saved = meta["training"]["config"]
    assert saved["lr"] == 1e-4 and saved["backbone"] == TINY and saved["blur_prob"] == 0.5
    assert meta["training_data"]["train"]["images"] == 16
    assert meta["training_data"]["train"]["groups"] == ["cat", "dog"]
    # The trained weights differ from a fresh model and load in the inference engine.
    model, _ = load_checkpoint(out / "best.safetensors")
    det = Detector.from_checkpoint(out / "best.safetensors", device="cpu")
    preds = det.predict([next((split_root / "val" / "1_fake").iterdir())])
    assert len(preds[0].patches) == 6 and 0.0 <= preds[0].score <= 1.0
    assert model.config.backbone == TINY


def test_early_stopping_stops_and_resume_continues(split_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    # Nothing can improve by more than min_delta=1 after the first epoch: stop after patience.
    cfg = _config(split_root, out, epochs=50, patience=2, lr_patience=10, min_delta=1.0)
    result = train(cfg)
    assert result.epochs_run == 3 and "patience" in result.stop_reason
    assert len((out / "log.jsonl").read_text().splitlines()) == 3

    # Resume with a later epoch budget: continues from epoch 3, keeps the log and the best.
    cfg2 = _config(split_root, out, epochs=4, patience=2, min_delta=1.0)
    result2 = train(cfg2, resume=True)
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    assert result2.best_epoch == 0


def test_global_baseline_with_accumulation_and_frozen_trunk(
    split_root: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    cfg = _config(split_root, out, arch="global_only", accum_steps=2, batch_size=4,
                  freeze_backbone=2, monitor="ap")  # fmt: skip
    result = train(cfg)
    model, meta = load_checkpoint(result.last_path)
    assert meta.config.arch == "global_only" and meta.training["config"]["accum_steps"] == 2
    torch.manual_seed(cfg.seed)  # train() builds its model right after seeding the same way
    init = build_model(cfg.model_config(), None)
    trained, start = model.backbone.features, init.backbone.features
    # Frozen: the first conv and its batch norm (statistics included) are untouched.
    assert torch.equal(trained[0].weight, start[0].weight)
    assert torch.equal(trained[1].running_mean, start[1].running_mean)
    assert not torch.equal(trained[3].weight, start[3].weight)  # trained
    assert not torch.equal(model.head.weight, init.head.weight)
    frozen = freeze_trunk(model, 2)
    assert len(frozen) == 2 and not any(p.requires_grad for m in frozen for p in m.parameters())


def test_train_cli_and_resume(split_root: Path, tmp_path: Path) -> None:
    from detector.cli import main

    out = tmp_path / "cli-run"
    common = ["--workers", "0", "--no-progress"]
    args = ["train", "--train", str(split_root / "train"), "--val", str(split_root / "val"),
            "--out", str(out), "--backbone", TINY, "--backbone-weights", "none",
            "--batch-size", "8", "--epochs", "1", "--lr", "3e-4", *common]  # fmt: skip
    assert main(args) == 0
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2", *common]) == 0
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    assert read_metadata(out / "last.safetensors")["training"]["config"]["lr"] == 3e-4
    with pytest.raises(SystemExit):
        main(["train", "--out", str(out), *common])  # neither data nor --resume

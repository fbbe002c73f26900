"""The training loop: Adam + BCE-with-logits, AMP on GPU, accumulation, validation each epoch,
lr decay on plateau, early stopping that stops, best/last checkpoints and resume.

Files in ``out/``: ``best.safetensors`` (best validation score so far), ``last.safetensors``
and ``state.pt`` (optimizer, scaler and scheduler state for ``--resume``; plain tensors and
numbers, loaded with ``weights_only=True``), ``log.jsonl`` and ``log.csv`` (one row per epoch).
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

from detector.checkpoint import CheckpointMetadata, load_checkpoint, save_checkpoint
from detector.model import GLFF, GlobalOnly, build_model
from detector.training.augment import DebiasAugment, TrainAugment, ValidationAugment
from detector.training.config import TrainConfig
from detector.training.datasets import ImageDataset, Sample, SkipReport, load_samples, make_loader
from detector.training.metrics import binary_metrics
from detector.training.schedule import PlateauController
from detector.training.scoring import autocast, model_logits, score_samples

log = logging.getLogger(__name__)

LOG_FIELDS = (
    "epoch",
    "lr",
    "train_loss",
    "train_acc",
    "train_images",
    "val_ap",
    "val_auc",
    "val_acc",
    "val_real_acc",
    "val_fake_acc",
    "monitor",
    "best",
    "improved",
    "skipped",
    "seconds",
    "event",
)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def freeze_trunk(model: nn.Module, count: int) -> list[nn.Module]:
    """Freeze the first ``count`` modules of every backbone trunk; returns them.

    Their parameters stop training and their batch-norm statistics stay at the pretrained
    values (the caller puts them back in eval mode after each ``model.train()``).
    """
    frozen: list[nn.Module] = []
    if count <= 0:
        return frozen
    for name in ("backbone", "local_backbone"):
        trunk = getattr(model, name, None)
        if trunk is None:
            continue
        children = list(trunk.features.children())
        if count > len(children):
            raise ValueError(f"--freeze-backbone {count} > {len(children)} trunk modules")
        for module in children[:count]:
            module.requires_grad_(False)
            frozen.append(module)
    return frozen


def summarize(samples: list[Sample], source: str, split: str | None) -> dict[str, Any]:
    """What a dataset holds, for checkpoint metadata."""
    return {
        "source": source,
        "split": split,
        "images": len(samples),
        "real": sum(s.label == 0 for s in samples),
        "fake": sum(s.label == 1 for s in samples),
        "groups": sorted({s.group for s in samples}),
    }


@dataclass
class TrainResult:
    """Where the run ended."""

    best_path: Path
    last_path: Path
    best_epoch: int
    best_score: float
    epochs_run: int
    stop_reason: str
    seconds: float


class EpochLogger:
    """Appends one row per epoch to ``log.jsonl`` and ``log.csv``."""

    def __init__(self, out: Path) -> None:
        self.jsonl, self.csv = out / "log.jsonl", out / "log.csv"

    def write(self, row: dict[str, Any]) -> None:
        """Append ``row`` to both files."""
        with self.jsonl.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        new = not self.csv.exists()
        with self.csv.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=LOG_FIELDS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


def _metadata(cfg: TrainConfig, data: dict[str, Any], state: dict[str, Any]) -> CheckpointMetadata:
    return CheckpointMetadata(
        config=cfg.model_config(),
        name=cfg.run_name,
        version=cfg.version,
        threshold=0.5,
        training_data=data,
        training={"config": cfg.to_dict(), **state},
    )


def train(cfg: TrainConfig, resume: bool = False) -> TrainResult:
    """Run training as configured; with ``resume`` continue from ``out/last.safetensors``."""
    t_start = time.monotonic()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    use_amp = cfg.amp and device.type == "cuda"
    torch.manual_seed(cfg.seed)

    train_samples = load_samples(Path(cfg.train), cfg.train_split)
    for extra in cfg.extra_train:
        train_samples += load_samples(Path(extra))
    val_samples = load_samples(Path(cfg.val), cfg.val_split)
    data = {
        "train": summarize(train_samples, cfg.train, cfg.train_split),
        "val": summarize(val_samples, cfg.val, cfg.val_split),
    }
    model: GLFF | GlobalOnly
    controller = PlateauController(
        lr=cfg.lr,
        patience=cfg.patience,
        lr_patience=cfg.lr_patience,
        factor=cfg.lr_factor,
        min_lr=cfg.min_lr,
        min_delta=cfg.min_delta,
    )
    start_epoch, history = 0, []
    state_path, last_path, best_path = (
        out / "state.pt",
        out / "last.safetensors",
        out / "best.safetensors",
    )
    if resume:
        model, _ = load_checkpoint(last_path)
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        controller.load_state_dict(state["controller"])
        start_epoch, history = int(state["epoch"]) + 1, list(state["history"])
    else:
        model = build_model(cfg.model_config(), cfg.backbone_weights)
        for p in (out / "log.jsonl", out / "log.csv"):
            p.unlink(missing_ok=True)
    model.to(device)
    frozen = freeze_trunk(model, cfg.freeze_backbone)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(
        params, lr=controller.lr, betas=(cfg.beta1, 0.999), weight_decay=cfg.weight_decay
    )
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    if resume:
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        for group in optimizer.param_groups:
            group["lr"] = controller.lr

    debias = cfg.debias_config()
    paper_augment = TrainAugment(cfg.augment())
    train_transform: TrainAugment | DebiasAugment = paper_augment
    if debias is not None:
        train_transform = DebiasAugment(debias, then=paper_augment)
    train_set = ImageDataset(train_samples, train_transform, seed=cfg.seed)
    val_transform: ValidationAugment | DebiasAugment | None = (
        ValidationAugment(cfg.augment(), cfg.val_blur_sigma, cfg.val_jpeg_quality)
        if cfg.val_degrade
        else None
    )
    if debias is not None:  # validate the way the model is trained: both classes re-encoded
        val_transform = DebiasAugment(debias, then=None)
    logger = EpochLogger(out)
    skips = SkipReport(train_samples)
    stop_reason = f"reached --epochs {cfg.epochs}"
    epoch = start_epoch - 1
    log.info(
        "training %s on %d images (%s), validating on %d, device %s",
        cfg.run_name,
        len(train_samples),
        cfg.train,
        len(val_samples),
        device,
    )
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.monotonic()
        torch.manual_seed(cfg.seed * 1_000_003 + epoch)
        train_set.set_epoch(epoch)
        loader = make_loader(
            train_set,
            cfg.batch_size,
            shuffle=True,
            workers=cfg.workers,
            seed=cfg.seed,
            pin_memory=device.type == "cuda",
            drop_last=len(train_set) > cfg.batch_size,
        )
        model.train()
        for module in frozen:
            module.eval()
        loss_sum, correct, seen = 0.0, 0, 0
        optimizer.zero_grad(set_to_none=True)
        total = len(loader)
        if cfg.limit_train_batches is not None:
            total = min(total, cfg.limit_train_batches)
        bar = tqdm(loader, total=total, desc=f"epoch {epoch}", disable=not cfg.progress)
        for step, batch in enumerate(bar):
            if step >= total:
                break
            skips.add(batch)
            if len(batch) == 0:
                continue
            b = batch.to(device)
            with autocast(device, use_amp):
                logits = model_logits(model, b)
            loss = F.binary_cross_entropy_with_logits(logits, b.labels)
            scaler.scale(loss / cfg.accum_steps).backward()
            if (step + 1) % cfg.accum_steps == 0 or step + 1 == total:
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
            n = len(batch)
            loss_sum += float(loss.detach()) * n
            correct += int(((logits.detach() >= 0).float() == b.labels).sum())
            seen += n
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
        bar.close()

        scores, val_skips = score_samples(
            model,
            val_samples,
            transform=val_transform,
            batch_size=cfg.batch_size,
            workers=cfg.workers,
            device=device,
            seed=cfg.seed,
            amp=use_amp,
            progress=cfg.progress,
            desc=f"val {epoch}",
        )
        ok = ~np.isnan(scores)
        labels = np.array([s.label for s in val_samples], dtype=np.float64)
        m = binary_metrics(labels[ok], scores[ok], 0.5)
        monitor = m.acc_05 if cfg.monitor == "acc" else m.ap
        decision = controller.step(monitor, epoch)
        row = {
            "epoch": epoch,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": loss_sum / max(seen, 1),
            "train_acc": correct / max(seen, 1),
            "train_images": seen,
            "val_ap": m.ap,
            "val_auc": m.auc,
            "val_acc": m.acc_05,
            "val_real_acc": m.real_acc,
            "val_fake_acc": m.fake_acc,
            "monitor": monitor,
            "best": controller.best,
            "improved": decision.improved,
            "skipped": skips.count + val_skips.count,
            "seconds": time.monotonic() - t0,
            "event": decision.reason,
        }
        history.append(row)
        logger.write(row)
        log.info("epoch %d: %s", epoch, json.dumps(row))
        state_meta = {
            "epoch": epoch,
            "best_epoch": controller.best_epoch,
            "best_" + cfg.monitor: controller.best,
            "val": m.to_dict(),
        }
        if decision.improved:
            save_checkpoint(best_path, model, _metadata(cfg, data, state_meta))
        save_checkpoint(last_path, model, _metadata(cfg, data, state_meta))
        if decision.new_lr is not None:
            for group in optimizer.param_groups:
                group["lr"] = decision.new_lr
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "controller": controller.state_dict(),
                "epoch": epoch,
                "history": history,
            },
            state_path,
        )
        if decision.stop:
            stop_reason = decision.reason
            break
    if skips.count:
        log.warning("train: %s", skips.summary())
    result = TrainResult(
        best_path,
        last_path,
        controller.best_epoch,
        controller.best,
        epoch + 1,
        stop_reason,
        time.monotonic() - t_start,
    )
    log.info(
        "stopped: %s; best epoch %d (%s %.4f)",
        stop_reason,
        result.best_epoch,
        cfg.monitor,
        result.best_score,
    )
    return result


def resume_config(out: Path, overrides: dict[str, Any]) -> TrainConfig:
    """The configuration saved in ``out/last.safetensors``, updated with ``overrides``."""
    from detector.checkpoint import read_metadata

    saved = read_metadata(out / "last.safetensors").get("training", {}).get("config", {})
    if not saved:
        raise ValueError(f"{out}/last.safetensors holds no training config to resume")
    return replace(TrainConfig.from_dict(saved), **overrides)

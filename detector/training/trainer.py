"""The training loop: Adam + BCE-with-logits, AMP on GPU, accumulation, validation each epoch,
lr decay on plateau, early stopping that stops, best/last checkpoints and resume.

Files in ``out/``: ``best.safetensors`` (best validation score so far), ``last.safetensors``
and ``state.pt`` (optimizer, scaler and scheduler state for ``--resume``; plain tensors and
numbers, loaded with ``weights_only=True``), ``log.jsonl`` and ``log.csv`` (one row per epoch).
"""

from __future__ import annotations

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
from detector.training.epoch_log import EpochLogger
from detector.training.metrics import BinaryMetrics, binary_metrics
from detector.training.schedule import Decision, PlateauController
from detector.training.scoring import autocast, model_logits, score_samples

log = logging.getLogger(__name__)


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


def _metadata(cfg: TrainConfig, data: dict[str, Any], state: dict[str, Any]) -> CheckpointMetadata:
    return CheckpointMetadata(
        config=cfg.model_config(),
        name=cfg.run_name,
        version=cfg.version,
        threshold=0.5,
        training_data=data,
        training={"config": cfg.to_dict(), **state},
    )


@dataclass
class _Data:
    """The samples of a run, their summary for the metadata, and the transforms."""

    train: list[Sample]
    val: list[Sample]
    summary: dict[str, Any]
    train_set: ImageDataset
    val_transform: ValidationAugment | DebiasAugment | None


def _data(cfg: TrainConfig) -> _Data:
    """Training and validation samples, with the paper's (or the debiasing) augmentation."""
    train_samples = load_samples(Path(cfg.train), cfg.train_split)
    for extra in cfg.extra_train:
        train_samples += load_samples(Path(extra))
    val_samples = load_samples(Path(cfg.val), cfg.val_split)
    summary = {
        "train": summarize(train_samples, cfg.train, cfg.train_split),
        "val": summarize(val_samples, cfg.val, cfg.val_split),
    }
    debias = cfg.debias_config()
    paper_augment = TrainAugment(cfg.augment())
    train_transform: TrainAugment | DebiasAugment = paper_augment
    if debias is not None:
        train_transform = DebiasAugment(debias, then=paper_augment)
    val_transform: ValidationAugment | DebiasAugment | None = (
        ValidationAugment(cfg.augment(), cfg.val_blur_sigma, cfg.val_jpeg_quality)
        if cfg.val_degrade
        else None
    )
    if debias is not None:  # validate the way the model is trained: both classes re-encoded
        val_transform = DebiasAugment(debias, then=None)
    train_set = ImageDataset(train_samples, train_transform, seed=cfg.seed)
    return _Data(train_samples, val_samples, summary, train_set, val_transform)


@dataclass
class _Run:
    """The state one epoch hands to the next (and ``state.pt`` keeps for ``--resume``)."""

    cfg: TrainConfig
    out: Path
    device: torch.device
    amp: bool
    model: GLFF | GlobalOnly
    frozen: list[nn.Module]
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    controller: PlateauController
    start_epoch: int
    history: list[dict[str, Any]]


def _start(cfg: TrainConfig, out: Path, device: torch.device, resume: bool) -> _Run:
    """A fresh model and optimizer, or both restored from ``out`` (``resume``)."""
    controller = PlateauController(
        lr=cfg.lr,
        patience=cfg.patience,
        lr_patience=cfg.lr_patience,
        factor=cfg.lr_factor,
        min_lr=cfg.min_lr,
        min_delta=cfg.min_delta,
    )
    model: GLFF | GlobalOnly
    state: dict[str, Any] = {}
    if resume:
        model, _ = load_checkpoint(out / "last.safetensors")
        state = torch.load(out / "state.pt", map_location="cpu", weights_only=True)
        controller.load_state_dict(state["controller"])
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
    amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    if resume:
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        for group in optimizer.param_groups:
            group["lr"] = controller.lr
    start = int(state["epoch"]) + 1 if resume else 0
    history = list(state["history"]) if resume else []
    return _Run(cfg, out, device, amp, model, frozen, optimizer, scaler, controller, start, history)


def _train_epoch(run: _Run, data: _Data, skips: SkipReport, epoch: int) -> dict[str, Any]:
    """One pass over the training data; returns the epoch's loss, accuracy and image count."""
    cfg, model, optimizer, scaler = run.cfg, run.model, run.optimizer, run.scaler
    torch.manual_seed(cfg.seed * 1_000_003 + epoch)
    data.train_set.set_epoch(epoch)
    loader = make_loader(
        data.train_set,
        cfg.batch_size,
        shuffle=True,
        workers=cfg.workers,
        seed=cfg.seed,
        pin_memory=run.device.type == "cuda",
        drop_last=len(data.train_set) > cfg.batch_size,
    )
    model.train()
    for module in run.frozen:
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
        b = batch.to(run.device)
        with autocast(run.device, run.amp):
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
    return {
        "train_loss": loss_sum / max(seen, 1),
        "train_acc": correct / max(seen, 1),
        "train_images": seen,
    }


def _validate(run: _Run, data: _Data, epoch: int) -> tuple[BinaryMetrics, int]:
    """Metrics on the validation data at threshold 0.5, and how many files were skipped."""
    cfg = run.cfg
    scores, val_skips = score_samples(
        run.model,
        data.val,
        transform=data.val_transform,
        batch_size=cfg.batch_size,
        workers=cfg.workers,
        device=run.device,
        seed=cfg.seed,
        amp=run.amp,
        progress=cfg.progress,
        desc=f"val {epoch}",
    )
    ok = ~np.isnan(scores)
    labels = np.array([s.label for s in data.val], dtype=np.float64)
    return binary_metrics(labels[ok], scores[ok], 0.5), val_skips.count


def _save(run: _Run, data: _Data, epoch: int, metrics: BinaryMetrics, decision: Decision) -> None:
    """Write ``best`` (when improved) and ``last`` checkpoints, apply a new learning rate, then
    ``state.pt`` for ``--resume``."""
    cfg, controller = run.cfg, run.controller
    state_meta = {
        "epoch": epoch,
        "best_epoch": controller.best_epoch,
        "best_" + cfg.monitor: controller.best,
        "val": metrics.to_dict(),
    }
    meta = _metadata(cfg, data.summary, state_meta)
    if decision.improved:
        save_checkpoint(run.out / "best.safetensors", run.model, meta)
    save_checkpoint(run.out / "last.safetensors", run.model, meta)
    if decision.new_lr is not None:
        for group in run.optimizer.param_groups:
            group["lr"] = decision.new_lr
    state = {
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict(),
        "controller": controller.state_dict(),
        "epoch": epoch,
        "history": run.history,
    }
    torch.save(state, run.out / "state.pt")


def _epoch(run: _Run, data: _Data, skips: SkipReport, logger: EpochLogger, epoch: int) -> Decision:
    """Train, validate, log and save one epoch; the controller's decision says what next."""
    t0 = time.monotonic()
    lr = run.optimizer.param_groups[0]["lr"]
    trained = _train_epoch(run, data, skips, epoch)
    m, val_skipped = _validate(run, data, epoch)
    monitor = m.acc_05 if run.cfg.monitor == "acc" else m.ap
    decision = run.controller.step(monitor, epoch)
    row = {
        "epoch": epoch,
        "lr": lr,
        **trained,
        "val_ap": m.ap,
        "val_auc": m.auc,
        "val_acc": m.acc_05,
        "val_real_acc": m.real_acc,
        "val_fake_acc": m.fake_acc,
        "monitor": monitor,
        "best": run.controller.best,
        "improved": decision.improved,
        "skipped": skips.count + val_skipped,
        "seconds": time.monotonic() - t0,
        "event": decision.reason,
    }
    run.history.append(row)
    logger.write(row)
    log.info("epoch %d: %s", epoch, json.dumps(row))
    _save(run, data, epoch, m, decision)
    return decision


def train(cfg: TrainConfig, resume: bool = False) -> TrainResult:
    """Run training as configured; with ``resume`` continue from ``out/last.safetensors``."""
    t_start = time.monotonic()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    data = _data(cfg)
    run = _start(cfg, out, device, resume)
    logger = EpochLogger(out)
    skips = SkipReport(data.train)
    stop_reason = f"reached --epochs {cfg.epochs}"
    epoch = run.start_epoch - 1
    log.info(
        "training %s on %d images (%s), validating on %d, device %s",
        cfg.run_name,
        len(data.train),
        cfg.train,
        len(data.val),
        device,
    )
    for epoch in range(run.start_epoch, cfg.epochs):
        decision = _epoch(run, data, skips, logger, epoch)
        if decision.stop:
            stop_reason = decision.reason
            break
    if skips.count:
        log.warning("train: %s", skips.summary())
    controller = run.controller
    result = TrainResult(
        out / "best.safetensors",
        out / "last.safetensors",
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

"""``evaluate`` and ``calibrate``: score checkpoints on a dataset and report or set thresholds."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detector.checkpoint import CheckpointMetadata, load_checkpoint, save_checkpoint
from detector.model import GLFF, GlobalOnly
from detector.training.augment import Perturb
from detector.training.calibration import Calibration, Method, calibrate
from detector.training.datasets import Sample, load_samples
from detector.training.metrics import average_precision
from detector.training.report import Scored, write_reports
from detector.training.robustness import (
    BLUR_SIGMAS,
    JPEG_QUALITIES,
    Perturbation,
    RobustnessPoint,
    run_sweep,
    sweep,
    write_robustness,
)
from detector.training.scoring import score_samples
from detector.training.taxonomy import Families
from detector.training.trainer import resolve_device

log = logging.getLogger(__name__)


def load_model(path: Path, device: torch.device) -> tuple[GLFF | GlobalOnly, CheckpointMetadata]:
    """A checkpoint's model in eval mode on ``device``."""
    model, meta = load_checkpoint(path)
    return model.to(device).eval(), meta


def evaluate(
    checkpoints: Sequence[Path],
    data: Path,
    out: Path,
    *,
    split: str | None = None,
    group_by: str = "generator",
    families: Families | None = None,
    names: Sequence[str] | None = None,
    robustness: bool = False,
    blur_sigmas: Sequence[float] = BLUR_SIGMAS,
    jpeg_qualities: Sequence[int] = JPEG_QUALITIES,
    reencode_jpeg: Sequence[int] = (),
    batch_size: int = 32,
    workers: int = 2,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Path]:
    """Score every checkpoint on ``data`` and write the reports (and Fig. 3 when asked).

    With ``reencode_jpeg`` the whole report is written again for each quality ``q`` under
    ``out/jpeg-q<q>/``, with EVERY image (real and synthetic alike) re-encoded as JPEG at ``q``
    first, so the container and compression history cannot tell the classes apart.
    """
    dev = resolve_device(device)
    samples = load_samples(data, split)
    labels = np.array([s.label for s in samples], dtype=np.float64)
    if names and len(names) != len(checkpoints):
        raise ValueError("give one --name per checkpoint")
    scored: list[Scored] = []
    models: list[GLFF | GlobalOnly] = []
    for i, path in enumerate(checkpoints):
        model, meta = load_model(path, dev)
        name = names[i] if names else (meta.name or path.stem)
        scores, skips = score_samples(
            model,
            samples,
            batch_size=batch_size,
            workers=workers,
            device=dev,
            progress=progress,
            desc=name,
        )
        info = {
            "checkpoint": str(path),
            "arch": meta.config.arch,
            "backbone": meta.config.backbone,
            "patch_strategy": meta.config.patch_strategy,
            "data": str(data),
            "split": split,
            "skipped_files": skips.errors,
        }
        scored.append(Scored(name, samples, scores, meta.threshold, info))
        models.append(model)
    paths = write_reports(out, scored, group_by, families)
    for quality in reencode_jpeg:
        requalified: list[Scored] = []
        for model, base in zip(models, scored, strict=True):
            s, skips = score_samples(
                model,
                samples,
                transform=Perturb(jpeg_quality=quality),
                batch_size=batch_size,
                workers=workers,
                device=dev,
                progress=progress,
                desc=f"{base.name} jpeg q{quality}",
            )
            requalified_info: dict[str, Any] = {
                **base.meta,
                "reencode_jpeg": quality,
                "skipped_files": skips.errors,
            }
            requalified.append(Scored(base.name, samples, s, base.threshold, requalified_info))
        sub = write_reports(out / f"jpeg-q{quality}", requalified, group_by, families)
        paths.update({f"jpeg_q{quality}_{k}": v for k, v in sub.items()})
    if robustness:
        points = sweep(blur_sigmas, jpeg_qualities)

        def global_ap(i: int, point: Perturbation) -> float:
            s, _ = score_samples(
                models[i],
                samples,
                transform=Perturb(point.blur_sigma, point.jpeg_quality),
                batch_size=batch_size,
                workers=workers,
                device=dev,
                progress=progress,
                desc=f"{scored[i].name} {point.kind}={point.value:g}",
            )
            ok = ~np.isnan(s)
            return average_precision(labels[ok], s[ok])

        results: list[RobustnessPoint] = run_sweep([s.name for s in scored], points, global_ap)
        paths.update({f"robustness_{k}": v for k, v in write_robustness(out, results).items()})
    return paths


def _refuse_test_data(data: Path, split: str | None) -> None:
    parts = {p.lower() for p in data.resolve().parts}
    if (split or "").lower() == "test" or "test" in parts:
        raise ValueError(
            f"refusing to calibrate on test data ({data}, split={split}): "
            "choose the threshold on validation data"
        )


def calibrate_checkpoint(
    checkpoint: Path,
    data: Path,
    out: Path,
    *,
    split: str | None = None,
    method: Method = "fpr",
    target_fpr: float = 0.05,
    half: bool = False,
    batch_size: int = 32,
    workers: int = 2,
    device: str = "auto",
    progress: bool = True,
) -> tuple[Calibration, str]:
    """Choose the threshold on validation ``data``; write the checkpoint with it to ``out``.

    With ``half`` the weights are stored as fp16 and the threshold is chosen with those
    rounded weights, so the stored threshold matches what inference computes.
    Returns the calibration and the new file's sha256.
    """
    _refuse_test_data(data, split)
    dev = resolve_device(device)
    model, meta = load_model(checkpoint, dev)
    if half:
        model.half().float()
    samples: list[Sample] = load_samples(data, split)
    scores, skips = score_samples(
        model,
        samples,
        batch_size=batch_size,
        workers=workers,
        device=dev,
        progress=progress,
        desc="calibrate",
    )
    ok = ~np.isnan(scores)
    labels = np.array([s.label for s in samples], dtype=np.float64)
    where = f"{data}" + (f" (split {split})" if split else "")
    cal = calibrate(labels[ok], scores[ok], method, target_fpr, data=where)
    training: dict[str, Any] = {**meta.training, "calibration": cal.to_dict()}
    if skips.count:
        training["calibration"]["skipped_files"] = skips.count
    new_meta = replace(meta, threshold=cal.threshold, training=training)
    if half:
        model.half()
    sha = save_checkpoint(out, model.cpu(), new_meta)
    return cal, sha

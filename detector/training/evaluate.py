"""``evaluate`` and ``calibrate``: score checkpoints on a dataset and report or set thresholds."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detector.checkpoint import CheckpointMetadata, load_checkpoint, save_checkpoint
from detector.model import GLFF, GlobalOnly
from detector.training.augment import Perturb
from detector.training.calibration import Calibration, Method, calibrate, decision_band
from detector.training.datasets import Sample, SkipReport, load_samples
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


@dataclass(frozen=True)
class _Scorer:
    """Scores models on one sample list with fixed loader settings."""

    samples: list[Sample]
    batch_size: int
    workers: int
    device: torch.device
    progress: bool

    def __call__(
        self, model: GLFF | GlobalOnly, desc: str, transform: Perturb | None = None
    ) -> tuple[np.ndarray, SkipReport]:
        return score_samples(
            model,
            self.samples,
            transform=transform,
            batch_size=self.batch_size,
            workers=self.workers,
            device=self.device,
            progress=self.progress,
            desc=desc,
        )


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
    if names and len(names) != len(checkpoints):
        raise ValueError("give one --name per checkpoint")
    samples = load_samples(data, split)
    score = _Scorer(samples, batch_size, workers, resolve_device(device), progress)
    scored: list[Scored] = []
    models: list[GLFF | GlobalOnly] = []
    for i, path in enumerate(checkpoints):
        model, meta = load_model(path, score.device)
        name = names[i] if names else (meta.name or path.stem)
        scores, skips = score(model, name)
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
            s, skips = score(model, f"{base.name} jpeg q{quality}", Perturb(jpeg_quality=quality))
            extra: dict[str, Any] = {"reencode_jpeg": quality, "skipped_files": skips.errors}
            requalified.append(Scored(base.name, samples, s, base.threshold, base.meta | extra))
        sub = write_reports(out / f"jpeg-q{quality}", requalified, group_by, families)
        paths.update({f"jpeg_q{quality}_{k}": v for k, v in sub.items()})
    if robustness:
        results = _robustness(score, models, [s.name for s in scored], blur_sigmas, jpeg_qualities)
        paths.update({f"robustness_{k}": v for k, v in write_robustness(out, results).items()})
    return paths


def _robustness(
    score: _Scorer,
    models: Sequence[GLFF | GlobalOnly],
    names: list[str],
    blur_sigmas: Sequence[float],
    jpeg_qualities: Sequence[int],
) -> list[RobustnessPoint]:
    """Global AP of every model under each blur and JPEG perturbation (the paper's Fig. 3)."""
    labels = np.array([s.label for s in score.samples], dtype=np.float64)

    def global_ap(i: int, point: Perturbation) -> float:
        desc = f"{names[i]} {point.kind}={point.value:g}"
        s, _ = score(models[i], desc, Perturb(point.blur_sigma, point.jpeg_quality))
        ok = ~np.isnan(s)
        return average_precision(labels[ok], s[ok])

    return run_sweep(names, sweep(blur_sigmas, jpeg_qualities), global_ap)


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
    band_fpr: float = 0.01,
    band_tpr: float = 0.95,
    half: bool = False,
    batch_size: int = 32,
    workers: int = 2,
    device: str = "auto",
    progress: bool = True,
) -> tuple[Calibration, str]:
    """Choose the threshold on validation ``data``; write the checkpoint with it to ``out``.

    With ``half`` the weights are stored as fp16 and the threshold is chosen with those
    rounded weights, so the stored threshold matches what inference computes. The moderator's
    decision band is chosen on the same scores (``band_fpr``: real photos decided synthetic at
    most; ``band_tpr``: fakes kept out of ``real`` at least) and stored as ``decision_band``.
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
    y, s = labels[ok], scores[ok]
    band = decision_band(
        s[y == 0], s[y == 1], cal.threshold, max_fpr=band_fpr, min_tpr=band_tpr, data=where
    ).to_dict()
    new_meta = replace(meta, threshold=cal.threshold, training=training, decision_band=band)
    if half:
        model.half()
    sha = save_checkpoint(out, model.cpu(), new_meta)
    return cal, sha

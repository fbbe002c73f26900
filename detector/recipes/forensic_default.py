"""The recipe of the shipped default checkpoint, ``glff-forensic-mobilenet_v2``.

    python -m detector.recipes.forensic_default ../shared/data/devset/manifest.csv \
        --work runs/forensic-final --out CHECKPOINT

(the shipped file is :data:`detector.checkpoint.DEFAULT_CHECKPOINT`).

1. Rows: the manifest, capped, in the LOFO protocol's fold ``all`` (:mod:`detector.training.lofo`):
   every generator group trains (devset ``train`` rows) and validates (``val`` rows); the
   held-out real photos (a quarter of each scene source, four people sources whole) are never
   trained on or used to choose anything, only reported.
2. Views (:mod:`detector.recipes.forensic_views`), cached in ``WORK/views.pt``.
3. The forensic branch, trained from scratch on the training rows (``WORK/all/``).
4. The fusion (embeddings, AFFM, head) fitted on the training rows in two conditions (``q90``
   and ``proc``), weight decay by validation AP (:mod:`detector.recipes.forensic_fusion`).
5. Temperature: one scalar dividing the fused logit, fitted on the validation rows by
   cross-entropy (:mod:`detector.training.temperature`) and folded into the head's weights, so
   scores read as probabilities instead of crowding near 0 and 1 (decisions are unchanged).
6. Threshold: the lowest with at most 5% false positives on the validation real photos (q90).
   Decision band: ``synthetic`` where at most 1% of them score, ``real`` below the score that
   keeps :data:`BAND_TPR` of the validation fakes above it.
7. The checkpoint: the frozen ImageNet MobileNetV2 trunk, the forensic branch and the fusion,
   fp16, with the threshold, the band, the validation scores and the held-out false-positive
   rates in its metadata; ``WORK/recipe.json`` has the summary and every validation score.

The research study (per-fold tables, other scores) is ``scripts/generalization/forensic_study.py``;
it reuses the same cache layout, so a study run on the same ``WORK`` folder reuses the views and
the branch trained here.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from detector.checkpoint import CheckpointMetadata, save_checkpoint
from detector.model import GLFF, count_parameters
from detector.recipes.forensic_fusion import (
    FUSION_EPOCHS,
    Fusion,
    false_positive_rates,
    fit_fusion,
    fusion_inputs,
    view_kind,
)
from detector.recipes.forensic_views import (
    CONFIG,
    FoldKeys,
    Views,
    compute_views,
    forensic_features,
    train_branch,
)
from detector.training.calibration import calibrate, decision_band
from detector.training.forensic_train import ForensicClassifier, ForensicTrainConfig
from detector.training.lofo import lofo_folds, read_rows
from detector.training.temperature import Temperature, fit_temperature, scale_linear

__all__ = ["BAND_TPR", "RecipeConfig", "main", "run"]

log = logging.getLogger(__name__)

BAND_TPR = 0.85
"""The band's real edge keeps 85% of validation fakes above it (95% left 55% of validation
real photos uncertain with this model: docs/generalization.md)."""
BAND_MAX_FPR = 0.01
TARGET_FPR = 0.05


@dataclass(frozen=True)
class RecipeConfig:
    """What a run may change; the defaults made the shipped checkpoint."""

    branch: ForensicTrainConfig = field(default_factory=lambda: ForensicTrainConfig(steps=2000))
    fusion_epochs: int = FUSION_EPOCHS
    global_weights: str | None = "imagenet"
    """The global trunk's weights (``None``: random, for tests)."""
    every: int = 1
    """Keep every n-th manifest row (smoke runs)."""
    name: str = "glff-forensic-mobilenet_v2"
    version: str = "0.3.1"


@dataclass(frozen=True)
class _Fitted:
    """What the fusion fit gives: its weight decay, the validation labels and scores (the
    threshold and band are chosen on them) and the held-out views' scores and kinds."""

    wd: float
    temperature: Temperature
    val_labels: npt.NDArray[np.int64]
    val_scores: npt.NDArray[np.float32]
    test_scores: npt.NDArray[np.float32]
    test_kinds: list[str]


def _assemble(model: GLFF, clf: ForensicClassifier, fusion: Fusion) -> GLFF:
    """``model`` (its frozen global trunk) with the trained branch and fusion loaded."""
    assert model.forensic is not None
    model.forensic.load_state_dict(clf.net.state_dict())
    for part in ("embed", "local_embed", "fusion", "head"):
        getattr(model, part).load_state_dict(getattr(fusion, part).state_dict())
    return model


def _metadata(
    config: RecipeConfig, manifest: Path, fitted: _Fitted, counts: dict[str, int]
) -> CheckpointMetadata:
    """Threshold and band from the validation scores; what the checkpoint says of itself."""
    yv, sv = fitted.val_labels, fitted.val_scores
    data = f"{manifest.parent.name} val rows of every group, JPEG q90"
    cal = calibrate(yv, sv, "fpr", TARGET_FPR, data=data)
    band = decision_band(
        sv[yv == 0], sv[yv == 1], cal.threshold, max_fpr=BAND_MAX_FPR, min_tpr=BAND_TPR, data=data
    )
    rates = false_positive_rates(fitted.test_kinds, fitted.test_scores, cal.threshold)
    return CheckpointMetadata(
        config=CONFIG,
        decision_band=band.to_dict(),
        name=config.name,
        version=config.version,
        threshold=cal.threshold,
        training_data={
            "source": f"{manifest.parent} (capped; held-out reals never used, "
            "see docs/generalization.md)",
            **counts,
        },
        training={
            "recipe": "forensic local branch from scratch + frozen ImageNet global branch",
            "script": "python -m detector.recipes.forensic_default",
            "trained": "forensic branch (patch classifier), then embed + fusion + head",
            "fusion_wd": fitted.wd,
            "temperature": fitted.temperature.to_dict(),
            "calibration": cal.to_dict(),
            "val_scores": {
                "real": [float(s) for s in sv[yv == 0]],
                "fake": [float(s) for s in sv[yv == 1]],
            },
            "held_out": {k: rates[k] for k in ("fpr_real", "fpr_people", "fpr_crops")},
        },
    )


def _fit(
    parts: FoldKeys, views: Views, clf: ForensicClassifier, config: RecipeConfig
) -> tuple[Fusion, _Fitted]:
    """The fusion fitted on the training views; validation and held-out scores."""
    feats = forensic_features(clf, views)
    arrays = {
        name: fusion_inputs([k for k, _ in part], views, feats)
        for name, part in (("train", parts.train), ("val", parts.val), ("test", parts.test))
    }
    fusion, _, wd = fit_fusion(
        (*arrays["train"], parts.labels(parts.train)),
        (*arrays["val"], parts.labels(parts.val)),
        CONFIG,
        epochs=config.fusion_epochs,
    )
    val_labels = parts.labels(parts.val)
    with torch.no_grad():
        val_logits = fusion(*arrays["val"]).double().numpy()
    data = "val rows of every group, JPEG q90"
    temperature = fit_temperature(val_labels, val_logits, data=data)
    scale_linear(fusion.head, temperature.value)
    with torch.no_grad():
        val_scores = torch.sigmoid(fusion(*arrays["val"])).numpy()
        test_scores = torch.sigmoid(fusion(*arrays["test"])).numpy()
    return fusion, _Fitted(
        wd=wd,
        temperature=temperature,
        val_labels=val_labels,
        val_scores=val_scores,
        test_scores=test_scores,
        test_kinds=[view_kind(k, r) for k, r in parts.test],
    )


def run(
    manifest: Path, work: Path, out: Path, config: RecipeConfig | None = None
) -> dict[str, Any]:
    """The whole recipe (see the module docstring): writes ``out`` and ``work/recipe.json``,
    returns the summary."""
    config = config or RecipeConfig()
    rows = read_rows(manifest)[:: config.every]
    fold = next(f for f in lofo_folds(rows) if f.name == "all")
    parts = FoldKeys.of(fold)
    model = GLFF(CONFIG, config.global_weights).eval()
    views = compute_views(model, parts.every, work / "views.pt")
    clf = train_branch(fold.train, config.branch, work / fold.name)
    fusion, fitted = _fit(parts, views, clf, config)
    counts = {"train": len(parts.train), "val": len(parts.val), "test": len(parts.test)}
    meta = _metadata(config, manifest, fitted, counts)
    model = _assemble(model, clf, fusion).half()
    sha = save_checkpoint(out, model, meta)
    summary = {
        "out": str(out),
        "sha256": sha,
        "parameters": count_parameters(model),
        "threshold": meta.threshold,
        "decision_band": meta.decision_band,
        "held_out": meta.training["held_out"],
        "counts": counts,
        "val_scores": {
            r["path"]: float(s) for (_, r), s in zip(parts.val, fitted.val_scores, strict=True)
        },
    }
    work.mkdir(parents=True, exist_ok=True)
    (work / "recipe.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(
        prog="python -m detector.recipes.forensic_default", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("manifest", type=Path, help="the devset manifest (path,label,split,...)")
    ap.add_argument("--work", type=Path, default=Path("runs/forensic-final"), help="cache folder")
    ap.add_argument("--out", type=Path, required=True, help="the checkpoint to write")
    steps = RecipeConfig().branch.steps
    ap.add_argument("--steps", type=int, default=steps, help="forensic branch training steps")
    ap.add_argument("--every", type=int, default=1, help="keep every n-th row (smoke runs)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: as shipped)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    config = RecipeConfig(branch=ForensicTrainConfig(steps=args.steps), every=args.every)
    summary = run(args.manifest, args.work, args.out, config)
    print(json.dumps({k: v for k, v in summary.items() if k != "val_scores"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

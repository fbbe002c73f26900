"""Scores and metrics of ``forensic_study.py`` (see its docstring); the views, the forensic
branch and the fusion fit are the shipped recipe's own (:mod:`detector.recipes`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from detector.model import ModelConfig
from detector.recipes.forensic_fusion import (
    false_positive_rates,
    fit_fusion,
    fusion_inputs,
    view_kind,
)
from detector.recipes.forensic_views import FoldKeys, Row, Views
from detector.training.calibration import calibrate
from detector.training.lofo import Fold
from detector.training.metrics import average_precision, roc_auc


def _global_linear(gt: np.ndarray, yt: np.ndarray, gv: np.ndarray, yv: np.ndarray) -> Any:
    best: tuple[float, Any] = (-1.0, None)
    for c in (0.01, 0.1, 1.0):
        head = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(gt, yt)
        ap = average_precision(yv, head.predict_proba(gv)[:, 1])
        if ap > best[0]:
            best = (ap, head)
    return best[1]


def _metrics(test: list[tuple[str, Row]], scores: np.ndarray, threshold: float) -> dict:
    """Per-family AP/AUC vs held-out real photos; FPR on people / crops / other photos."""
    kind = np.array([view_kind(k, r) for k, r in test])
    reals = (kind == "photo") | (kind == "people")
    out: dict[str, Any] = {"families": {}}
    families = sorted({r["family"] for _, r in test if r["label"] == "1"})
    for family in families:
        fam = np.array([r["family"] == family for _, r in test])
        sel = fam | reals
        y = fam[sel].astype(int)
        out["families"][family] = {
            "n": int(fam.sum()),
            "ap": average_precision(y, scores[sel]),
            "auc": roc_auc(y, scores[sel]),
            "tpr": float((scores[fam] >= threshold).mean()),
        }
    out.update(false_positive_rates(list(kind), scores, threshold))
    fams = out["families"].values()
    out["map"] = float(np.mean([f["ap"] for f in fams])) if families else None
    out["mean_auc"] = float(np.mean([f["auc"] for f in fams])) if families else None
    out["threshold"] = threshold
    return out


def evaluate_fold(
    fold: Fold,
    views: Views,
    feats: dict[str, torch.Tensor],
    default_head: nn.Module,
    config: ModelConfig,
) -> dict:
    """All scores of one fold (see the study's docstring): per score, its validation AP and
    the held-out metrics at its threshold."""
    parts = FoldKeys.of(fold)
    y = {
        n: parts.labels(p)
        for n, p in (("train", parts.train), ("val", parts.val), ("test", parts.test))
    }
    arr = {
        n: fusion_inputs([k for k, _ in p], views, feats)
        for n, p in (("train", parts.train), ("val", parts.val), ("test", parts.test))
    }
    fusion, sv_glff, wd = fit_fusion((*arr["train"], y["train"]), (*arr["val"], y["val"]), config)
    linear = _global_linear(arr["train"][0].numpy(), y["train"], arr["val"][0].numpy(), y["val"])
    with torch.no_grad():
        scores = {
            "glff": (sv_glff, torch.sigmoid(fusion(*arr["test"])).numpy()),
            "forensic": tuple(_patch_mean(feats, p) for p in (parts.val, parts.test)),
            "global": tuple(linear.predict_proba(arr[n][0].numpy())[:, 1] for n in ("val", "test")),
            "default": tuple(
                torch.sigmoid(default_head(arr[n][0])).squeeze(1).numpy() for n in ("val", "test")
            ),
        }
    result: dict[str, Any] = {"counts": {n: len(v) for n, v in y.items()}, "wd": wd}
    for name, (sv, st) in scores.items():
        cal = calibrate(y["val"], sv, "fpr", 0.05, data=f"fold {fold.name} val")
        result[name] = {
            "val_ap": average_precision(y["val"], sv),
            **_metrics(parts.test, st, cal.threshold),
        }
    result["summary"] = {
        n: {k: result[n][k] for k in ("map", "mean_auc", "fpr_real", "fpr_people", "fpr_crops")}
        for n in scores
    }
    return result


def _patch_mean(feats: dict, part: list[tuple[str, Row]]) -> np.ndarray:
    """The ``forensic`` score: sigmoid of the mean patch logit."""
    logits = torch.stack([feats[k][:, -1].mean() for k, _ in part])
    return torch.sigmoid(logits).numpy()

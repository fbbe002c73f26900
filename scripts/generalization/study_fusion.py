"""Scores, fusion fit, metrics and shipping for ``forensic_study.py`` (see its docstring)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from torch import nn

from detector.checkpoint import CheckpointMetadata, save_checkpoint
from detector.model import GLFF, count_parameters
from detector.training.calibration import calibrate, decision_band
from detector.training.forensic_train import ForensicClassifier
from detector.training.lofo import PEOPLE, Fold
from detector.training.metrics import average_precision, roc_auc

Row = dict[str, str]
STRENGTHS = (1e-4, 1e-3, 1e-2)
BAND_TPR = 0.85
"""The band's real edge keeps 85% of validation fakes above it (95% left 55% of validation
real photos uncertain with this model: docs/generalization.md)."""


class Fusion(nn.Module):
    """GLFF's trained part on cached features: embeddings, AFFM and head of a GLFF."""

    def __init__(self, glff: GLFF) -> None:
        super().__init__()
        assert glff.local_embed is not None
        self.embed, self.local_embed = glff.embed, glff.local_embed
        self.fusion, self.head = glff.fusion, glff.head

    def forward(self, g: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
        tokens = torch.cat([F.relu(self.local_embed(local)), F.relu(self.embed(g))[:, None]], 1)
        fused, _ = self.fusion(tokens)
        return self.head(fused).squeeze(1)


def _arrays(keys: list[str], views: dict, feats: dict) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.stack([views[k]["g"].float() for k in keys])
    local = torch.stack([feats[k][:, :-1] for k in keys])
    return g, local


def fit_fusion(train: tuple, val: tuple, config: Any) -> tuple[Fusion, np.ndarray, float]:
    """Fusion with the best validation AP over :data:`STRENGTHS` -> (model, val scores, wd)."""
    (gt, lt, yt), (gv, lv, yv) = train, val
    best: tuple[float, Fusion | None, np.ndarray, float] = (-1.0, None, np.zeros(0), 0.0)
    for wd in STRENGTHS:
        torch.manual_seed(0)
        fusion = Fusion(GLFF(config))
        opt = torch.optim.AdamW(fusion.parameters(), lr=1e-3, weight_decay=wd * 100)
        target = torch.from_numpy(yt).float()
        for _ in range(60):
            order = torch.randperm(len(yt))
            for i in range(0, len(order), 128):
                idx = order[i : i + 128]
                loss = F.binary_cross_entropy_with_logits(fusion(gt[idx], lt[idx]), target[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            sv = torch.sigmoid(fusion.eval()(gv, lv)).numpy()
        ap = average_precision(yv, sv)
        if ap > best[0]:
            best = (ap, fusion, sv, wd)
    assert best[1] is not None
    return best[1], best[2], best[3]


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
    kind = np.array([_kind(k, r) for k, r in test])
    reals = kind == "photo"
    reals |= kind == "people"
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
    flagged = scores >= threshold
    for name, mask in (
        ("fpr_real", reals),
        ("fpr_people", kind == "people"),
        ("fpr_crops", kind == "crop"),
        ("fpr_other", kind == "photo"),
    ):
        out[name] = float(flagged[mask].mean()) if mask.any() else None
    fams = out["families"].values()
    out["map"] = float(np.mean([f["ap"] for f in fams])) if families else None
    out["mean_auc"] = float(np.mean([f["auc"] for f in fams])) if families else None
    out["threshold"] = threshold
    return out


def _kind(key: str, row: Row) -> str:
    if row["label"] == "1":
        return "fake"
    if key.startswith("crop|"):
        return "crop"
    return "people" if row["family"] == PEOPLE else "photo"


def evaluate_fold(
    fold: Fold,
    views: dict,
    feats: dict,
    held_people: set[str],
    default_head: nn.Module,
    config: Any,
) -> tuple[dict, dict]:
    """All scores of one fold (see the study's docstring) -> (results, fitted parts)."""
    train = [(f"{c}|{r['path']}", r) for r in fold.train for c in ("q90", "proc")]
    val = [(f"q90|{r['path']}", r) for r in fold.val]
    test = [(f"q90|{r['path']}", r) for r in fold.test]
    test += [(f"crop|{r['path']}", r) for r in fold.test if r["path"] in held_people]
    y = {
        n: np.array([int(r["label"]) for _, r in p])
        for n, p in (("train", train), ("val", val), ("test", test))
    }
    arr = {
        n: _arrays([k for k, _ in p], views, feats)
        for n, p in (("train", train), ("val", val), ("test", test))
    }
    fusion, sv_glff, wd = fit_fusion((*arr["train"], y["train"]), (*arr["val"], y["val"]), config)
    linear = _global_linear(arr["train"][0].numpy(), y["train"], arr["val"][0].numpy(), y["val"])
    with torch.no_grad():
        scores = {
            "glff": (sv_glff, torch.sigmoid(fusion(*arr["test"])).numpy()),
            "forensic": tuple(_patch_mean(feats, p) for p in (val, test)),
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
            **_metrics(test, st, cal.threshold),
        }
    result["summary"] = {
        n: {k: result[n][k] for k in ("map", "mean_auc", "fpr_real", "fpr_people", "fpr_crops")}
        for n in scores
    }
    fitted = {
        "fusion": fusion,
        "val_scores": sv_glff,
        "val_labels": y["val"],
        "val_rows": [r for _, r in val],
    }
    return result, fitted


def _patch_mean(feats: dict, part: list[tuple[str, Row]]) -> np.ndarray:
    """The ``forensic`` score: sigmoid of the mean patch logit."""
    logits = torch.stack([feats[k][:, -1].mean() for k, _ in part])
    return torch.sigmoid(logits).numpy()


def ship(model: GLFF, clf: ForensicClassifier, fitted: dict, result: dict, out: Path) -> None:
    """Write fold ``all`` as the default checkpoint (fp16, threshold, validation scores)."""
    assert model.forensic is not None
    model.forensic.load_state_dict(clf.net.state_dict())
    fusion: Fusion = fitted["fusion"]
    for part in ("embed", "local_embed", "fusion", "head"):
        getattr(model, part).load_state_dict(getattr(fusion, part).state_dict())
    yv, sv = fitted["val_labels"], fitted["val_scores"]
    cal = calibrate(yv, sv, "fpr", 0.05, data="devset val rows of every group, JPEG q90")
    band = decision_band(
        sv[yv == 0], sv[yv == 1], cal.threshold, min_tpr=BAND_TPR, data=cal.data
    ).to_dict()
    meta = CheckpointMetadata(
        config=model.config,
        decision_band=band,
        name="glff-forensic-mobilenet_v2",
        version="0.3.0",
        threshold=cal.threshold,
        training_data={
            "source": "../shared/data/devset (capped; held-out reals never used, "
            "see docs/generalization.md)",
            **result["counts"],
        },
        training={
            "recipe": "forensic local branch from scratch + frozen ImageNet global branch",
            "script": "scripts/generalization/forensic_study.py",
            "trained": "forensic branch (patch classifier), then embed + fusion + head",
            "fusion_wd": result["wd"],
            "calibration": cal.to_dict(),
            "val_scores": {
                "real": [float(s) for s in sv[yv == 0]],
                "fake": [float(s) for s in sv[yv == 1]],
            },
            "held_out": {k: result["glff"][k] for k in ("fpr_real", "fpr_people", "fpr_crops")},
        },
    )
    model.half()
    sha = save_checkpoint(out, model, meta)
    print(
        json.dumps(
            {"out": str(out), "sha256": sha, "parameters": count_parameters(model), **cal.to_dict()}
        )
    )

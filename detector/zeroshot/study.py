"""Scoring a manifest and the zero-shot study's figures (per-family AUC, real FPR).

:func:`score_manifest` writes ``path,label,split,family,source,processing,score`` rows;
:func:`summarise` reads them back into per-family AUC against the real photos of the same
rows, and the real photos' false positive rate at the artifact's threshold (overall and per
real family, e.g. ``photo (people)`` apart).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from detector.zeroshot.artifact import ZeroShotModel
from detector.zeroshot.data import Row, load_rgb, process, read_rows

__all__ = ["FIELDS", "auc", "score_manifest", "summarise"]

FIELDS = ("path", "label", "split", "family", "source", "processing", "score")


def auc(neg: np.ndarray, pos: np.ndarray) -> float:
    """Probability that a positive scores above a negative (ties count half); NaN if empty."""
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    diff = np.asarray(pos, dtype=np.float64)[:, None] - np.asarray(neg, dtype=np.float64)[None]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def score_manifest(
    model: ZeroShotModel,
    src: str | Path,
    out_csv: str | Path,
    split: str = "",
    processing: str = "none",
    device: str = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Score every row of a manifest (or folder), optionally one split and one processing."""
    rows: list[Row] = [r for r in read_rows(src) if not split or r.split == split]
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        image = np.asarray(process(load_rgb(row.path), processing))
        out.append(
            {
                "path": str(row.path),
                "label": row.label,
                "split": row.split,
                "family": row.family,
                "source": row.source,
                "processing": processing,
                "score": round(model.score(image, device), 6),
            }
        )
        if progress is not None:
            progress(i + 1, len(rows))
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    with Path(out_csv).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(out)
    return out


def summarise(scored: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """Per generated family: AUC against all real rows; real FPR at ``threshold``."""
    real = np.array([float(r["score"]) for r in scored if int(r["label"]) == 0])
    families: dict[str, list[float]] = {}
    real_families: dict[str, list[float]] = {}
    for r in scored:
        target = families if int(r["label"]) == 1 else real_families
        target.setdefault(str(r["family"]), []).append(float(r["score"]))
    per_family = {
        fam: {"n": len(s), "auc": round(auc(real, np.array(s)), 4)}
        for fam, s in sorted(families.items())
    }
    aucs = [v["auc"] for v in per_family.values() if not np.isnan(v["auc"])]
    fakes = np.array([s for v in families.values() for s in v])
    return {
        "threshold": threshold,
        "n_real": len(real),
        "n_generated": len(fakes),
        "auc_all": round(auc(real, fakes), 4),
        "mean_family_auc": round(float(np.mean(aucs)), 4) if aucs else float("nan"),
        "real_fpr": round(float((real > threshold).mean()), 4) if len(real) else float("nan"),
        "real_fpr_by_family": {
            fam: round(float((np.array(s) > threshold).mean()), 4)
            for fam, s in sorted(real_families.items())
        },
        "tpr": round(float((fakes > threshold).mean()), 4) if len(fakes) else float("nan"),
        "per_family": per_family,
    }

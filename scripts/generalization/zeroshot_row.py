"""The zero-shot signal's row of the LOFO study: per-family AP/AUC of the scores written by
``python -m detector zeroshot score-manifest ... --processing jpeg90`` (every held-out real
photo and every fake of the capped devset), FPR at the artifact's own threshold.

    python -m scripts.generalization.zeroshot_row runs/forensic/zs-scores.csv \
        detector/checkpoints/zeroshot-fsd-devset.safetensors
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from detector.training.metrics import average_precision, roc_auc
from detector.zeroshot import load_zeroshot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scores", type=Path)
    ap.add_argument("artifact", type=Path)
    args = ap.parse_args()
    rows = list(csv.DictReader(args.scores.open()))
    threshold = load_zeroshot(args.artifact).threshold
    score = np.array([float(r["score"]) for r in rows])
    real = np.array([r["label"] == "0" for r in rows])
    people = np.array([r["family"] == "photo (people)" for r in rows])
    aps, aucs = [], []
    for family in sorted({r["family"] for r in rows if r["label"] == "1"}):
        fam = np.array([r["family"] == family for r in rows])
        sel = fam | real
        aps.append(average_precision(fam[sel].astype(int), score[sel]))
        aucs.append(roc_auc(fam[sel].astype(int), score[sel]))
        print(f"| {family} | {int(fam.sum())} | {aps[-1]:.3f} / {aucs[-1]:.3f} |")
    flagged = score >= threshold
    print(
        f"LOFO mAP {np.mean(aps):.3f} mean AUC {np.mean(aucs):.3f} threshold {threshold:.3f} "
        f"real FPR {flagged[real].mean():.1%} people {flagged[real & people].mean():.1%} "
        f"other {flagged[real & ~people].mean():.1%}"
    )


if __name__ == "__main__":
    main()

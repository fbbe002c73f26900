"""Markdown tables of ``forensic_study.py``'s ``results.json`` (the LOFO folds and fold ``all``).

    python -m scripts.generalization.forensic_table runs/forensic/results.json \
        [runs/forensic-final/results.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SCORES = {
    "default": "previous default (global-only, trained on every group: not held out)",
    "global": "frozen ImageNet global view + linear head (the previous recipe, held out)",
    "forensic": "forensic branch alone (mean patch logit)",
    "glff": "GLFF: global + forensic patches, AFFM fusion",
}
FOLDS = ("gan", "sd", "closed", "other")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def summary(results: dict) -> list[str]:
    """One row per score: LOFO mAP, mean AUC, per-group mAP, FPRs averaged over the folds."""
    folds = [f for f in FOLDS if f in results]
    head = "| score | LOFO mAP | mean AUC | " + " | ".join(folds)
    head += " | real FPR | people FPR | upscaled crops FPR | other photos FPR |"
    lines = [head, "|" + "---|" * (7 + len(folds))]
    for score, label in SCORES.items():
        fams = [v for f in folds for v in results[f][score]["families"].values()]
        cells = [
            label,
            _num(float(np.mean([v["ap"] for v in fams]))),
            _num(float(np.mean([v["auc"] for v in fams]))),
            *(_num(results[f][score]["map"]) for f in folds),
        ]
        for key in ("fpr_real", "fpr_people", "fpr_crops", "fpr_other"):
            cells.append(_pct(float(np.mean([results[f][score][key] for f in folds]))))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def families(results: dict) -> list[str]:
    """Per-family AP / AUC (each family is held out in exactly one fold)."""
    lines = ["| family | n | " + " | ".join(SCORES) + " |", "|---|---|" + "---|" * len(SCORES)]
    rows = []
    for fold in FOLDS:
        for family, first in results.get(fold, {}).get("glff", {}).get("families", {}).items():
            cells = [
                f"{_num(results[fold][s]['families'][family]['ap'])} / "
                f"{_num(results[fold][s]['families'][family]['auc'])}"
                for s in SCORES
            ]
            rows.append(f"| {family} ({fold}) | {first['n']} | " + " | ".join(cells) + " |")
    return lines + sorted(rows)


def final(results: dict) -> list[str]:
    """Fold ``all`` (the shipped model): held-out real FPRs at each score's threshold."""
    head = "| score | threshold | real FPR | people FPR | upscaled crops FPR | other photos FPR |"
    lines = [head, "|---|---|---|---|---|---|"]
    for score, label in SCORES.items():
        r = results["all"][score]
        cells = [label, _num(r["threshold"])]
        cells += [_pct(r[k]) for k in ("fpr_real", "fpr_people", "fpr_crops", "fpr_other")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, nargs="+")
    args = ap.parse_args()
    merged: dict = {}
    for path in args.results:
        merged.update(json.loads(path.read_text()))
    if any(f in merged for f in FOLDS):
        print("\n".join(summary(merged)), "\n")
        print("\n".join(families(merged)), "\n")
    if "all" in merged:
        print("\n".join(final(merged)))


if __name__ == "__main__":
    main()

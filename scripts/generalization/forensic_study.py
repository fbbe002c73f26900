"""GLFF with a forensic local branch trained from scratch: the LOFO study of its recipe.

    python -m scripts.generalization.forensic_study ../shared/data/devset/manifest.csv \
        --out runs/forensic [--steps 900] [--final-steps 1500] [--folds gan sd closed other all]

The recipe itself, and the shipped checkpoint it writes, are
:mod:`detector.recipes.forensic_default` (same views, branch and fusion, same cache layout: a
study run on the recipe's work folder reuses what the recipe cached). Stages (each cached in
``--out``, so a stopped run resumes):

1. ``views.pt``: the views of every fold's rows (:mod:`detector.recipes.forensic_views`:
   ``q90``, ``proc`` and, for held-out people photos, ``crop``);
2. per fold: the forensic branch trained on the fold's training rows, its pooled features and
   patch logits on every crop, then four scores: ``forensic`` (mean patch logit), ``glff``
   (embed + AFFM + head fitted on the training rows in both conditions, strength by validation
   AP: the recipe's), ``global`` (a linear head on the frozen global feature, like the
   previous default) and ``default`` (the previous default checkpoint's own head on the same
   global feature); thresholds at <= 5% FPR on the fold's validation real photos;
3. ``results.json``: per fold and score, per-family AP/AUC against the held-out real photos and
   FPR on held-out people, small upscaled crops and other photos (``forensic_table.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from detector.checkpoint import load_checkpoint
from detector.model import GLFF
from detector.recipes.forensic_views import (
    CONFIG,
    FoldKeys,
    compute_views,
    forensic_features,
    train_branch,
)
from detector.training.forensic_train import ForensicTrainConfig
from detector.training.lofo import lofo_folds, read_rows
from scripts.generalization.study_fusion import evaluate_fold

log = logging.getLogger("forensic_study")
DEFAULT = Path("detector/checkpoints/demo-mobilenet_v2.safetensors")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--out", type=Path, default=Path("runs/forensic"))
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--final-steps", type=int, default=1500)
    ap.add_argument("--folds", nargs="+", default=["gan", "sd", "closed", "other", "all"])
    ap.add_argument("--every", type=int, default=1, help="keep every n-th row (smoke runs)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = read_rows(args.manifest)[:: args.every]
    folds = {f.name: f for f in lofo_folds(rows)}
    keys = {k: r for name in args.folds for k, r in FoldKeys.of(folds[name]).every}
    model = GLFF(CONFIG, "imagenet").eval()
    views = compute_views(model, list(keys.items()), args.out / "views.pt")
    default_head = load_checkpoint(DEFAULT)[0].head.float()
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for name in args.folds:
        fold = folds[name]
        steps = args.final_steps if name == "all" else args.steps
        clf = train_branch(fold.train, ForensicTrainConfig(steps=steps), args.out / name)
        feats = forensic_features(clf, views)
        results[name] = evaluate_fold(fold, views, feats, default_head, CONFIG)
        results_path.write_text(json.dumps(results, indent=1))
        log.info("fold %s: %s", name, json.dumps(results[name]["summary"]))


if __name__ == "__main__":
    main()

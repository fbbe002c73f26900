"""Train a study-1 recipe on ALL generator groups and write it as a detector checkpoint.

This made the previous default, ``demo-mobilenet_v2`` (kept as the base of few-shot adapters),
from the study's cached features. The current default's recipe is a tested module:
:mod:`detector.recipes.forensic_default`.

Same head, same L2 choice (validation AP) and same threshold rule (lowest threshold with at
most 5% false positives on the validation real photos, features made like the training ones)
as ``study.py``; the training rows are every group's ``train`` split plus the training real
photos, the validation rows every group's ``val`` split plus the validation real photos. The
held-out real photos (``runs/lofo/*/test.csv``) are never used. The checkpoint is the frozen
ImageNet MobileNetV2 trunk plus the trained head, stored in fp16 with the threshold and the
recipe in its metadata.

    python -m scripts.generalization.ship --recipe debias+aligned+npr --views glff \
        --out detector/checkpoints/demo-mobilenet_v2.safetensors
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import cast

import numpy as np
import torch

from detector.checkpoint import CheckpointMetadata, save_checkpoint
from detector.model import GLFF, GlobalOnly, ModelConfig, count_parameters
from detector.representation import InputRepr
from detector.training.calibration import Calibration, calibrate, decision_band
from detector.training.metrics import average_precision
from scripts.generalization.study import (
    RECIPES,
    Features,
    Recipe,
    fit_fusion,
    fit_linear,
    fusion_scores,
    linear_scores,
    rows,
    synth_rows,
)

Row = dict[str, str]


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", required=True, choices=sorted(RECIPES))
    ap.add_argument("--views", default="global", choices=["global", "glff"])
    ap.add_argument("--feats", type=Path, default=Path("runs/feats"))
    ap.add_argument("--lofo", type=Path, default=Path("runs/lofo"))
    ap.add_argument("--synth", type=Path, default=Path("runs/synth/manifest.csv"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--subset", type=Path, help="CSV of the only image paths to train on")
    ap.add_argument("--name", default="demo-mobilenet_v2")
    ap.add_argument("--version", default="0.2.0")
    ap.add_argument("--record", type=Path, default=Path("runs/study"), help="rows and scores")
    return ap.parse_args()


def _rows(args: argparse.Namespace, recipe: Recipe) -> tuple[list[Row], list[Row]]:
    """Training and validation rows of every group (never the held-out real photos)."""
    fold = args.lofo / "gan"  # any fold: its train+val+test rows are the whole study set
    every = rows(fold / "train.csv") + rows(fold / "val.csv") + rows(fold / "test.csv")
    held = {r["path"] for r in rows(fold / "test.csv") if r["label"] == "0"}
    usable = [r for r in every if r["path"] not in held]
    if args.subset:
        keep = {r["path"] for r in rows(args.subset)}
        usable = [r for r in usable if r["path"] in keep]
    train = [r for r in usable if r["split"] == "train"]
    val = [r for r in usable if r["split"] == "val"]
    if not recipe.generators:
        train = [r for r in train if r["label"] == "0"]
        val = [r for r in val if r["label"] == "0"]
    if recipe.synth:
        train += synth_rows(args.synth, [r for r in train if r["label"] == "0"])
        val += synth_rows(args.synth, [r for r in val if r["label"] == "0"])
    return train, val


def _fit(
    views: str, xt: np.ndarray, yt: np.ndarray, xv: np.ndarray, yv: np.ndarray
) -> tuple[float, float, np.ndarray, object]:
    """The head with the best validation AP over the L2 grid: ``(ap, C, val scores, head)``."""
    best: tuple[float, float, np.ndarray, object] = (-1.0, 0.0, np.zeros(0), None)
    for c in (0.01, 0.1, 1.0):
        if views == "global":
            w, b = fit_linear(xt[:, 0], yt, c)
            sv = linear_scores(xv[:, 0], w, b)
            head: object = (w, b)
        else:
            head = fit_fusion(xt, yt, wd=c * 1e-2)
            sv = fusion_scores(head, xv)
        a = average_precision(yv, sv)
        if a > best[0]:
            best = (a, c, sv, head)
    return best


def _model(cfg: ModelConfig, views: str, head: object) -> GLFF | GlobalOnly:
    """The ImageNet trunk with the fitted head (and, for GLFF, embedding and fusion)."""
    model: GLFF | GlobalOnly
    if views == "global":
        model = GlobalOnly(cfg, "imagenet")
        w, b = cast(tuple[np.ndarray, float], head)
        with torch.no_grad():
            model.head.weight.copy_(torch.from_numpy(w)[None])
            model.head.bias.fill_(b)
    else:
        model = GLFF(cfg, "imagenet")
        model.embed.load_state_dict(head.embed.state_dict())  # type: ignore[attr-defined]
        model.fusion.load_state_dict(head.fusion.state_dict())  # type: ignore[attr-defined]
        model.head.load_state_dict(head.head.state_dict())  # type: ignore[attr-defined]
    return model


def _metadata(
    args: argparse.Namespace,
    cfg: ModelConfig,
    cal: Calibration,
    counts: dict[str, dict[str, int]],
    c: float,
    val_ap: float,
) -> CheckpointMetadata:
    synth = RECIPES[args.recipe].synth
    return CheckpointMetadata(
        config=cfg,
        name=args.name,
        version=args.version,
        threshold=cal.threshold,
        training_data={
            "source": "../shared/data/devset (capped, see docs/generalization.md)"
            + (" + synth-fakes reconstructions of the training real photos" if synth else ""),
            **counts,
        },
        training={
            "recipe": args.recipe,
            "views": args.views,
            "trunk": "ImageNet MobileNetV2 (mobilenet_v2-b0353104.pth), frozen",
            "trained": "head only" if args.views == "global" else "embed + fusion + head",
            "l2_C": c,
            "val_ap": val_ap,
            "calibration": cal.to_dict(),
            "script": "scripts/generalization/ship.py",
            "subset": str(args.subset) if args.subset else None,
        },
    )


def _record(args: argparse.Namespace, train: list[Row], val: list[Row], sv: np.ndarray) -> None:
    """The validation scores and the rows used, in ``--record``."""
    scores = {r["path"]: float(s) for r, s in zip(val, sv, strict=True)}
    args.record.mkdir(parents=True, exist_ok=True)
    (args.record / "ship-val-scores.json").write_text(json.dumps(scores))
    with (args.record / "ship-rows.csv").open("w", newline="") as fh:
        w2 = csv.writer(fh)
        w2.writerow(["path", "label", "part"])
        w2.writerows([[r["path"], r["label"], "train"] for r in train])
        w2.writerows([[r["path"], r["label"], "val"] for r in val])


def main() -> None:
    args = _args()
    torch.set_num_threads(1)
    recipe = RECIPES[args.recipe]
    train, val = _rows(args, recipe)
    feats = Features(args.feats)
    xt = feats.get(recipe.repr, recipe.train_cond, args.views, [r["path"] for r in train])
    xv = feats.get(recipe.repr, recipe.train_cond, args.views, [r["path"] for r in val])
    if xt is None or xv is None:
        raise SystemExit("features missing: run features.py for this recipe first")
    yt = np.array([int(r["label"]) for r in train])
    yv = np.array([int(r["label"]) for r in val])
    cfg = ModelConfig(
        arch="glff" if args.views == "glff" else "global_only",
        backbone="mobilenet_v2",
        patch_strategy="psm" if args.views == "glff" else "none",
        input_repr=cast(InputRepr, recipe.repr),
    )
    val_ap, c, sv, head = _fit(args.views, xt, yt, xv, yv)
    model = _model(cfg, args.views, head)
    where = f"{args.lofo} train/val rows of every group, condition {recipe.train_cond}"
    cal = calibrate(yv, sv, "fpr", 0.05, data=where)
    counts = {
        "train": {"real": int((yt == 0).sum()), "fake": int((yt == 1).sum())},
        "val": {"real": int((yv == 0).sum()), "fake": int((yv == 1).sum())},
    }
    model.half()
    meta = _metadata(args, cfg, cal, counts, c, val_ap)  # + the moderator's band, same scores
    band = decision_band(sv[yv == 0], sv[yv == 1], cal.threshold, data=where).to_dict()
    sha = save_checkpoint(args.out, model, replace(meta, decision_band=band))
    _record(args, train, val, sv)
    summary = {"out": str(args.out), "sha256": sha, "parameters": count_parameters(model)}
    print(json.dumps({**summary, **counts, "val_ap": val_ap, "C": c, **cal.to_dict()}))


if __name__ == "__main__":
    main()

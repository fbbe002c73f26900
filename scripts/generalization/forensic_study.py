"""GLFF with a forensic local branch trained from scratch: LOFO study and the shipped default.

    python -m scripts.generalization.forensic_study ../shared/data/devset/manifest.csv \
        --out runs/forensic [--steps 900] [--final-steps 1500] [--folds gan sd closed other all]

Stages (each cached in ``--out``, so a stopped run resumes):

1. ``views.pt``: for every devset row (capped, :mod:`detector.training.lofo`) in the conditions
   ``q90`` (JPEG q90, the protocol's identical re-encoding), ``proc`` (one seeded everyday
   processing history) and, for held-out people photos, ``crop`` (a small upscaled crop, then
   q90): the frozen ImageNet MobileNetV2 global feature (pooled, 1280), the PSM's six boxes and
   the six native 112 px crops under them;
2. per fold: the forensic branch trained on the fold's training rows
   (:mod:`detector.training.forensic_train`), its pooled features and patch logits on every
   crop, then three scores: ``forensic`` (mean patch logit), ``glff`` (embed + AFFM + head fitted
   on the training rows in both conditions, strength by validation AP) and ``global`` (a
   linear head on the frozen global feature, like the previous default), plus ``default`` (the
   shipped checkpoint's own head on the same global feature); thresholds at <= 5% FPR on the
   fold's validation real photos;
3. ``results.json``: per fold and score, per-family AP/AUC against the held-out real photos and
   FPR on held-out people, small upscaled crops and other photos; fold ``all`` writes the
   shipped checkpoint (``--ship``).
"""

from __future__ import annotations

import argparse
import json
import logging
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from detector.batching import collate_images
from detector.checkpoint import load_checkpoint
from detector.forensic import native_crops
from detector.model import GLFF, ModelConfig, _cropper
from detector.patches import select_patches
from detector.psm import central_squares
from detector.training.augment import jpeg_reencode
from detector.training.datasets import Sample, load_rgb, to_tensor
from detector.training.forensic_train import (
    ForensicClassifier,
    ForensicTrainConfig,
    build_pool,
    train_forensic,
)
from detector.training.lofo import PEOPLE, Fold, lofo_folds, read_rows
from detector.training.processing import ProcessingConfig, everyday_processing, small_upscaled_crop
from scripts.generalization.study_fusion import evaluate_fold, ship

log = logging.getLogger("forensic_study")
Row = dict[str, str]
CONFIG = ModelConfig(arch="glff", backbone="mobilenet_v2", local_backbone="forensic")
DEFAULT = Path("detector/checkpoints/demo-mobilenet_v2.safetensors")


def _seed(text: str) -> int:
    return zlib.crc32(text.encode())


def condition_image(row: Row, cond: str) -> Image.Image:
    """The image of ``row`` under a condition (see the module docstring)."""
    img = load_rgb(Path(row["path"]))
    if cond == "proc":
        up = 0.35 if row["label"] == "0" else 0.1
        rng = np.random.default_rng(_seed(row["path"]))
        return everyday_processing(img, rng, ProcessingConfig(upscale_prob=up))
    if cond == "crop":
        img = small_upscaled_crop(img, _seed(row["path"]))
    return jpeg_reencode(img, 90)


def keys_of(rows: list[Row], held_people: set[str]) -> list[tuple[str, Row]]:
    keys = [(f"{c}|{r['path']}", r) for r in rows for c in ("q90", "proc")]
    keys += [(f"crop|{r['path']}", r) for r in rows if r["path"] in held_people]
    return keys


@torch.no_grad()
def compute_views(model: GLFF, keys: list[tuple[str, Row]], out: Path) -> dict[str, dict]:
    """Stage 1 (see module docstring), saved to ``out`` every 200 images."""
    views: dict[str, dict] = torch.load(out, weights_only=False) if out.is_file() else {}
    todo = [(k, r) for k, r in keys if k not in views]
    for n, (key, row) in enumerate(todo):
        pixels, sizes = collate_images([to_tensor(condition_image(row, key.split("|")[0]))])
        crop = _cropper(pixels, sizes, model.config, False)
        gmap = model._trunk(crop(central_squares(sizes).unsqueeze(1))[:, 0], local=False)
        sel = select_patches(gmap, sizes, "psm")
        views[key] = {
            "g": gmap.mean(dim=(2, 3))[0].half(),
            "boxes": sel.boxes[0],
            "crops": native_crops(pixels, sizes, sel.boxes)[0].to(torch.uint8),
        }
        if (n + 1) % 200 == 0 or n + 1 == len(todo):
            torch.save(views, out)
            log.info("views %d/%d", n + 1, len(todo))
    return views


@torch.no_grad()
def forensic_features(clf: ForensicClassifier, views: dict[str, dict]) -> dict[str, torch.Tensor]:
    """Per key: ``[6, C + 1]`` pooled forensic features and the patch logit (last column)."""
    out = {}
    keys = list(views)
    for i in range(0, len(keys), 32):
        chunk = keys[i : i + 32]
        crops = torch.stack([views[k]["crops"] for k in chunk]).flatten(0, 1).float()
        pooled = clf.net(crops).mean(dim=(2, 3))
        logits = clf.head(pooled)
        both = torch.cat([pooled, logits], dim=1).unflatten(0, (len(chunk), 6))
        out.update(zip(chunk, both, strict=True))
    return out


def train_fold(fold: Fold, steps: int, out: Path) -> ForensicClassifier:
    weights = out / fold.name / "forensic.pt"
    config = ForensicTrainConfig(steps=steps)
    if weights.is_file():
        clf = ForensicClassifier(config.width)
        clf.load_state_dict(torch.load(weights, weights_only=True))
        return clf.eval()
    samples = [Sample(Path(r["path"]), int(r["label"]), r["family"]) for r in fold.train]
    pool = build_pool(samples, config)
    log.info(
        "fold %s: pool of %d real, %d fake images",
        fold.name,
        len(pool.by_label[0]),
        len(pool.by_label[1]),
    )
    clf = train_forensic(pool, config, out / fold.name / "state.pt")
    torch.save(clf.state_dict(), weights)
    return clf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--out", type=Path, default=Path("runs/forensic"))
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--final-steps", type=int, default=1500)
    ap.add_argument("--folds", nargs="+", default=["gan", "sd", "closed", "other", "all"])
    ap.add_argument("--every", type=int, default=1, help="keep every n-th row (smoke runs)")
    ap.add_argument("--ship", type=Path, help="write fold 'all' as a checkpoint here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = read_rows(args.manifest)[:: args.every]
    folds = {f.name: f for f in lofo_folds(rows)}
    held_people = {r["path"] for r in folds["all"].test if r["family"] == PEOPLE}
    model = GLFF(CONFIG, "imagenet").eval()
    views = compute_views(model, keys_of(rows, held_people), args.out / "views.pt")
    default_head = load_checkpoint(DEFAULT)[0].head.float()
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for name in args.folds:
        fold = folds[name]
        steps = args.final_steps if name == "all" else args.steps
        clf = train_fold(fold, steps, args.out)
        feats = forensic_features(clf, views)
        results[name], fitted = evaluate_fold(fold, views, feats, held_people, default_head, CONFIG)
        results_path.write_text(json.dumps(results, indent=1))
        log.info("fold %s: %s", name, json.dumps(results[name]["summary"]))
        if name == "all" and args.ship:
            ship(model, clf, fitted, results[name], args.ship)


if __name__ == "__main__":
    main()

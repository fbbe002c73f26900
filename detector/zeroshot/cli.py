"""``python -m detector zeroshot {fit,score,score-manifest,summarise}``.

- ``fit SRC --out ART``: the recipe (:mod:`.recipe`) on a manifest's real photos or a folder;
  ``--cache DIR`` keeps per-image descriptions so an interrupted fit resumes.
- ``score ART IMAGES...``: one JSON line per image (``score``, ``is_synthetic``, ``threshold``,
  and with ``--boxes`` the scores of boxes given as ``x0,y0,x1,y1``).
- ``score-manifest ART MANIFEST --out CSV``: the study's scores (one split, one processing).
- ``summarise CSV ART``: per-family AUC and real FPR at the artifact's threshold (JSON).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detector.zeroshot.artifact import load_zeroshot, save_zeroshot
from detector.zeroshot.data import PROCESSINGS, load_rgb
from detector.zeroshot.describe import DescribeParams

__all__ = ["register"]

Sub = argparse._SubParsersAction


def register(sub: Sub) -> None:
    """Add the ``zeroshot`` command and its subcommands to ``python -m detector``."""
    p = sub.add_parser("zeroshot", help="real-only zero-shot signal (forensic self-descriptions)")
    zsub = p.add_subparsers(dest="zeroshot_command", required=True)
    _add_fit(zsub)
    s = zsub.add_parser("score", help="score images; one JSON line per image")
    s.add_argument("artifact", type=Path)
    s.add_argument("images", nargs="+", type=Path)
    s.add_argument("--boxes", nargs="*", default=[], help="boxes x0,y0,x1,y1 scored per image")
    s.add_argument("--device", default="cpu")
    s.add_argument("--threads", type=int, default=1)
    s.set_defaults(func=_score)
    m = zsub.add_parser("score-manifest", help="score a manifest CSV (path,label,...) into a CSV")
    m.add_argument("artifact", type=Path)
    m.add_argument("manifest", type=Path)
    m.add_argument("--out", required=True, type=Path)
    m.add_argument("--split", default="", help="only this split (default: all rows)")
    m.add_argument("--processing", default="none", choices=PROCESSINGS)
    m.add_argument("--device", default="cpu")
    m.add_argument("--threads", type=int, default=1)
    m.set_defaults(func=_score_manifest)
    r = zsub.add_parser("summarise", help="per-family AUC and real FPR of a scored CSV")
    r.add_argument("scores", type=Path)
    r.add_argument("artifact", type=Path)
    r.set_defaults(func=_summarise)


def _add_fit(zsub: Sub) -> None:
    f = zsub.add_parser("fit", help="fit filters and density on real photos (manifest or folder)")
    f.add_argument("src", type=Path, help="manifest CSV (label 0, split train) or a folder")
    f.add_argument("--out", required=True, type=Path)
    f.add_argument("--cache", type=Path, help="per-image description cache (resumable)")
    f.add_argument("--variants", type=int, default=2, help="processed copies per photo")
    f.add_argument("--filter-steps", type=int, default=300)
    f.add_argument("--components", type=int, default=4)
    f.add_argument("--pca-dims", type=int, default=64)
    f.add_argument("--neighbourhood", type=int, default=11)
    f.add_argument("--max-pixels", type=int, default=4096, help="pixels per scale in the fit")
    f.add_argument("--max-images", type=int, default=0, help="0: all")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--threads", type=int, default=1)
    f.set_defaults(func=_fit)


def _bar(total: int, desc: str) -> Any:
    from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]

    return tqdm(total=total, desc=desc, unit="it", leave=False)


def _fit(args: argparse.Namespace) -> int:
    from detector.zeroshot.recipe import RecipeConfig, fit_recipe

    torch.set_num_threads(max(1, args.threads))
    cfg = RecipeConfig(
        params=DescribeParams(neighbourhood=args.neighbourhood, max_pixels=args.max_pixels),
        variants=args.variants,
        filter_steps=args.filter_steps,
        components=args.components,
        pca_dims=args.pca_dims,
        max_images=args.max_images,
        seed=args.seed,
    )
    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            bars[stage] = _bar(total, stage)
        bars[stage].update(done - bars[stage].n)

    model = fit_recipe(args.src, cfg, args.cache, progress)
    for bar in bars.values():
        bar.close()
    size = save_zeroshot(args.out, model)
    print(
        json.dumps(
            {
                "out": str(args.out),
                "bytes": size,
                "threshold": model.threshold,
                **model.info["counts"],
            }
        )
    )
    return 0


def _parse_boxes(items: list[str]) -> np.ndarray:
    return np.array([[float(v) for v in item.split(",")] for item in items]).reshape(-1, 4)


def _score(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, args.threads))
    model = load_zeroshot(args.artifact)
    boxes = _parse_boxes(args.boxes)
    failures = 0
    for path in args.images:
        try:
            image = np.asarray(load_rgb(path))
        except (OSError, ValueError) as exc:
            failures += 1
            error = {"type": type(exc).__name__, "message": str(exc)}
            print(json.dumps({"path": str(path), "error": error}), flush=True)
            continue
        score = model.score(image, args.device)
        record: dict[str, Any] = {
            "path": str(path),
            "score": round(score, 6),
            "is_synthetic": score >= model.threshold,
            "threshold": model.threshold,
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "model": f"zeroshot-fsd-{model.version}",
        }
        if len(boxes):
            scores = model.score_boxes(image, boxes, args.device).tolist()
            record["boxes"] = [
                {"box": b, "score": round(s, 6)}
                for b, s in zip(boxes.tolist(), scores, strict=True)
            ]
        print(json.dumps(record), flush=True)
    return 1 if failures else 0


def _score_manifest(args: argparse.Namespace) -> int:
    from detector.zeroshot.study import score_manifest, summarise

    torch.set_num_threads(max(1, args.threads))
    model = load_zeroshot(args.artifact)
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        bar = bar or _bar(total, "score")
        bar.update(done - bar.n)

    scored = score_manifest(
        model, args.manifest, args.out, args.split, args.processing, args.device, progress
    )
    if bar is not None:
        bar.close()
    summary = summarise(scored, model.threshold)
    print(json.dumps({k: v for k, v in summary.items() if k != "per_family"}))
    return 0


def _summarise(args: argparse.Namespace) -> int:
    from detector.zeroshot.study import summarise

    with args.scores.open(newline="") as fh:
        scored = list(csv.DictReader(fh))
    print(json.dumps(summarise(scored, load_zeroshot(args.artifact).threshold), indent=1))
    return 0

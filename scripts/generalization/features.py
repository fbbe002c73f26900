"""Cache frozen-backbone features for the generalization study (one process, one core).

The study trains only the parts after the (frozen, ImageNet) MobileNetV2 trunk, so the pooled
trunk features of every view of every image are computed once per input representation and
test condition, with the model's own code (:mod:`detector.model` pieces), and reused by every
fold and recipe. A checkpoint built from the same trunk and the trained head scores exactly
what the study scored.

    python -m scripts.generalization.features runs/lofo/images.csv --repr rgb --cond q90 \
        --views glff --out runs/feats/rgb-q90-glff.npz

Conditions: ``clean`` (decoded pixels), ``rand`` (the training debias pipeline: random crop +
JPEG q 65..100, seeded per image), ``q90`` / ``q75`` (every image re-encoded identically).
"""

from __future__ import annotations

import argparse
import csv
import time
import zlib
from pathlib import Path

import numpy as np
import torch

from detector.crops import crop_and_resize, prepare_pixels
from detector.model import GLFF, ModelConfig
from detector.patches import select_patches
from detector.psm import central_squares
from detector.representation import represent
from detector.training.augment import DebiasAugment, jpeg_reencode
from detector.training.datasets import load_rgb, to_tensor

CONDITIONS = ("clean", "rand", "q90", "q75")


def condition_image(path: Path, cond: str, seed: int = 0):  # type: ignore[no-untyped-def]
    """The decoded image under ``cond``."""
    img = load_rgb(path)
    if cond == "clean":
        return img
    if cond == "rand":
        rng = np.random.default_rng([seed, zlib.crc32(path.name.encode())])
        return DebiasAugment()(img, rng)
    if cond.startswith("q"):
        return jpeg_reencode(img, int(cond[1:]))
    raise ValueError(cond)


def study_model(input_repr: str) -> GLFF:
    """The frozen trunk the study's features come from (ImageNet MobileNetV2)."""
    cfg = ModelConfig(arch="glff", backbone="mobilenet_v2", input_repr=input_repr)
    return GLFF(cfg, "imagenet").eval()


@torch.no_grad()
def image_features(model: GLFF, pixels: torch.Tensor, views: str) -> torch.Tensor:
    """``uint8 [3, H, W]`` -> pooled trunk features ``[V, C]`` (V = 1 global, or 7: global
    then the 6 PSM patches in the model's order)."""
    cfg = model.config
    sizes = torch.tensor([[pixels.shape[1], pixels.shape[2]]])
    images = prepare_pixels(represent(pixels.unsqueeze(0), cfg.input_repr), sizes)
    square = central_squares(sizes).unsqueeze(1)
    gmap = model._features(crop_and_resize(images, square, cfg.input_size)[:, 0], local=False)
    out = [gmap.mean(dim=(2, 3))]
    if views == "glff":
        sel = select_patches(gmap, sizes, "psm", suppression=cfg.suppression)  # type: ignore[arg-type]
        crops = crop_and_resize(images, sel.boxes, cfg.input_size).flatten(0, 1)
        out.append(model._features(crops, local=True).mean(dim=(2, 3)))
    return torch.cat(out, dim=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", type=Path, help="CSV with an absolute 'path' column")
    ap.add_argument("--repr", default="rgb", choices=["rgb", "npr", "both"])
    ap.add_argument("--cond", default="clean", choices=CONDITIONS)
    ap.add_argument("--views", default="global", choices=["global", "glff"])
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with args.images.open(newline="") as fh:
        paths = [row["path"] for row in csv.DictReader(fh)]
    model = study_model(args.repr)
    feats = []
    t0 = time.monotonic()
    for i, p in enumerate(paths):
        img = condition_image(Path(p), args.cond)
        feats.append(image_features(model, to_tensor(img), args.views).half().numpy())
        if i % 100 == 0:
            rate = (time.monotonic() - t0) / (i + 1)
            print(f"{args.out.name}: {i}/{len(paths)} {rate:.2f}s/img", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, paths=np.array(paths), feats=np.stack(feats))
    print(f"{args.out}: {len(paths)} images in {time.monotonic() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()

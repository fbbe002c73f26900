"""The forensic recipe's cached inputs: image conditions, views and the forensic branch.

Every manifest row (:mod:`detector.training.lofo`) is seen under conditions:

- ``q90``: JPEG q90 (the protocol's identical re-encoding of every image, real or fake);
- ``proc``: one seeded everyday processing history
  (:func:`detector.training.processing.everyday_processing`, upscaling likelier for real
  photos, as in training);
- ``crop``: for held-out people photos only, a small upscaled crop
  (:func:`detector.training.processing.small_upscaled_crop`), then q90.

A *view* of a row in a condition (key ``"<condition>|<path>"``) is what the model's frozen
parts give: the ImageNet MobileNetV2 global feature (pooled, 1280, fp16), the PSM's six boxes
and the six native crops under them (uint8). Views are computed once and cached in a file, so a
stopped run resumes; the forensic branch is trained per fold and cached the same way.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from detector.batching import collate_images
from detector.forensic import native_crops
from detector.model import GLFF, ModelConfig
from detector.training.augment import jpeg_reencode
from detector.training.datasets import Sample, load_rgb, to_tensor
from detector.training.forensic_train import (
    ForensicClassifier,
    ForensicTrainConfig,
    build_pool,
    train_forensic,
)
from detector.training.lofo import PEOPLE, Fold
from detector.training.processing import ProcessingConfig, everyday_processing, small_upscaled_crop

__all__ = [
    "CONFIG",
    "FoldKeys",
    "Row",
    "Views",
    "compute_views",
    "condition_image",
    "forensic_features",
    "train_branch",
]

log = logging.getLogger(__name__)

Row = dict[str, str]
Views = dict[str, dict[str, torch.Tensor]]
"""``key -> {"g": [1280] fp16, "boxes": [6, 4], "crops": [6, 3, 112, 112] uint8}``."""
CONFIG = ModelConfig(arch="glff", backbone="mobilenet_v2", local_backbone="forensic")
"""The model of the recipe: GLFF, MobileNetV2 global branch, forensic local branch."""
SAVE_EVERY = 200
"""Views are written to the cache every this many new images."""


def _seed(text: str) -> int:
    return zlib.crc32(text.encode())


def condition_image(row: Row, condition: str) -> Image.Image:
    """The image of ``row`` under ``condition`` (``q90``, ``proc`` or ``crop``)."""
    img = load_rgb(Path(row["path"]))
    if condition == "proc":
        training = ForensicTrainConfig()
        up = training.real_upscale_prob if row["label"] == "0" else training.fake_upscale_prob
        rng = np.random.default_rng(_seed(row["path"]))
        return everyday_processing(img, rng, ProcessingConfig(upscale_prob=up))
    if condition == "crop":
        img = small_upscaled_crop(img, _seed(row["path"]))
    return jpeg_reencode(img, 90)


@dataclass(frozen=True)
class FoldKeys:
    """A LOFO fold's view keys, ``(key, row)`` per part: train (q90 and proc of each row), val
    (q90) and test (q90, and the upscaled crops of the held-out people photos)."""

    train: list[tuple[str, Row]]
    val: list[tuple[str, Row]]
    test: list[tuple[str, Row]]

    @classmethod
    def of(cls, fold: Fold) -> FoldKeys:
        held_people = {r["path"] for r in fold.test if r["family"] == PEOPLE and r["label"] == "0"}
        test = [(f"q90|{r['path']}", r) for r in fold.test]
        test += [(f"crop|{r['path']}", r) for r in fold.test if r["path"] in held_people]
        return cls(
            train=[(f"{c}|{r['path']}", r) for r in fold.train for c in ("q90", "proc")],
            val=[(f"q90|{r['path']}", r) for r in fold.val],
            test=test,
        )

    @property
    def every(self) -> list[tuple[str, Row]]:
        """The keys of all three parts."""
        return self.train + self.val + self.test

    @staticmethod
    def labels(part: Sequence[tuple[str, Row]]) -> npt.NDArray[np.int64]:
        """The labels (1: synthetic) of a part's rows."""
        return np.array([int(r["label"]) for _, r in part], dtype=np.int64)


@torch.no_grad()
def compute_views(model: GLFF, keys: Sequence[tuple[str, Row]], cache: Path) -> Views:
    """The views of ``keys`` (see the module docstring), read from and saved to ``cache``."""
    views: Views = torch.load(cache, weights_only=True) if cache.is_file() else {}
    todo = [(k, r) for k, r in keys if k not in views]
    for n, (key, row) in enumerate(todo):
        image = condition_image(row, key.split("|")[0])
        pixels, sizes = collate_images([to_tensor(image)])
        maps = model.forward_trunk(pixels, sizes)  # the model's own views and patch selection
        boxes = maps.selection.boxes
        views[key] = {
            "g": maps.global_map.mean(dim=(2, 3))[0].half(),
            "boxes": boxes[0],
            "crops": native_crops(pixels, sizes, boxes)[0].to(torch.uint8),
        }
        if (n + 1) % SAVE_EVERY == 0 or n + 1 == len(todo):
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.save(views, cache)
            log.info("views %d/%d", n + 1, len(todo))
    return views


@torch.no_grad()
def forensic_features(clf: ForensicClassifier, views: Views) -> dict[str, torch.Tensor]:
    """Per key: ``[6, C + 1]``, the pooled forensic features of the six crops and each crop's
    logit (last column)."""
    out: dict[str, torch.Tensor] = {}
    keys = list(views)
    for i in range(0, len(keys), 32):
        chunk = keys[i : i + 32]
        crops = torch.stack([views[k]["crops"] for k in chunk]).flatten(0, 1).float()
        pooled = clf.net(crops).mean(dim=(2, 3))
        logits = clf.head(pooled)
        both = torch.cat([pooled, logits], dim=1).unflatten(0, (len(chunk), 6))
        out.update(zip(chunk, both, strict=True))
    return out


def train_branch(
    rows: Sequence[Row], config: ForensicTrainConfig, folder: Path
) -> ForensicClassifier:
    """The forensic branch trained on ``rows`` (a fold's training rows), cached in ``folder``
    (``forensic.pt``; ``state.pt`` while training, so a stopped run resumes)."""
    weights = folder / "forensic.pt"
    if weights.is_file():
        clf = ForensicClassifier(config.width)
        clf.load_state_dict(torch.load(weights, weights_only=True))
        return clf.eval()
    samples = [Sample(Path(r["path"]), int(r["label"]), r["family"]) for r in rows]
    pool = build_pool(samples, config)
    log.info(
        "%s: pool of %d real, %d fake images",
        folder.name,
        len(pool.by_label[0]),
        len(pool.by_label[1]),
    )
    clf = train_forensic(pool, config, folder / "state.pt")
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(clf.state_dict(), weights)
    return clf

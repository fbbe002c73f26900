"""The leave-one-family-group-out (LOFO) protocol on the devset, people split included.

Generator families are grouped (:data:`GROUPS`); fold ``G`` trains on every other group's
``train`` rows, chooses anything (threshold, band, fusion strength) on their ``val`` rows, and
tests on every image of ``G`` against the held-out real photos. Real photos are held out two ways,
never used for training or choosing:

* scene photos: the first quarter of each source by sha256 (as the first study did);
* people photos: whole sources (:data:`HELD_OUT_PEOPLE`), so that a source (often several shots
  of one person) is never on both sides; the evaluation also makes a small upscaled crop of each
  of them (:func:`detector.training.processing.small_upscaled_crop`).

The third batch's families: ``gan-faces`` and ``stylegan (seeprettyface)`` join ``gan``; the
``photo (people)`` real family is split by source as above.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CAPS",
    "GROUPS",
    "HELD_OUT_PEOPLE",
    "Fold",
    "family_group",
    "held_out_reals",
    "lofo_folds",
    "read_rows",
]

Row = dict[str, str]

GAN_FACES = "gan-faces (generator not named, StyleGAN-like)"
GROUPS: dict[str, tuple[str, ...]] = {
    "gan": (
        "stylegan3",
        "super-resolution (ESRGAN)",
        "super-resolution (BSRGAN)",
        GAN_FACES,
        "stylegan (seeprettyface)",
    ),
    "sd": (
        "stable-diffusion-1.5",
        "stable-diffusion-2.1",
        "stable-diffusion-xl",
        "stable-diffusion (version not stated)",
        "stable-cascade",
    ),
    "closed": ("dall-e-2", "dall-e-3", "midjourney", "text-to-image (unnamed, modern)"),
    "other": ("craiyon", "glide", "deepfloyd-if", "cogview2"),
}
PEOPLE = "photo (people)"
HELD_OUT_PEOPLE = frozenset(
    {"deepface-tests", "ultralight-facedet", "face-api.js", "openface-examples"}
)
"""87 of the 190 people photos; the other five sources (103 photos) train and validate."""
HELD_OUT_SCENE_FRACTION = 0.25
CAPS = {"stable-diffusion-1.5": 80, "text-to-image (unnamed, modern)": 100}
"""The two largest families are cut (first N by sha256, both splits) to fit the CPU budget."""


@dataclass(frozen=True)
class Fold:
    """One fold's rows; ``name`` is the held-out group (or ``all`` for the shipped model)."""

    name: str
    train: list[Row]
    val: list[Row]
    test: list[Row]


def family_group(family: str) -> str:
    """The LOFO group of a generator family."""
    for group, families in GROUPS.items():
        if family in families:
            return group
    raise KeyError(f"family {family!r} is in no LOFO group")


def read_rows(manifest: Path) -> list[Row]:
    """Manifest rows (capped, absolute paths, a ``group`` column), sorted by path."""
    root = manifest.resolve().parent
    with manifest.open(newline="") as fh:
        rows = [dict(r) for r in csv.DictReader(fh)]
    kept: dict[str, int] = defaultdict(int)
    capped = []
    for r in sorted(rows, key=lambda r: r["sha256"]):
        kept[r["family"]] += 1
        if kept[r["family"]] <= CAPS.get(r["family"], len(rows)):
            capped.append(r)
    for r in capped:
        r["path"] = str(root / r["path"])
        r["group"] = "real" if r["label"] == "0" else family_group(r["family"])
    return sorted(capped, key=lambda r: r["path"])


def held_out_reals(rows: Sequence[Row]) -> set[str]:
    """Paths of the held-out real photos (whole people sources; a quarter of each other)."""
    by_source: dict[str, list[Row]] = defaultdict(list)
    held: set[str] = set()
    for row in rows:
        if row["label"] != "0":
            continue
        if row["family"] == PEOPLE and row["source"] in HELD_OUT_PEOPLE:
            held.add(row["path"])
        elif row["family"] != PEOPLE:
            by_source[row["source"]].append(row)
    for source_rows in by_source.values():
        source_rows.sort(key=lambda r: r["sha256"])
        n = max(1, round(len(source_rows) * HELD_OUT_SCENE_FRACTION))
        held |= {r["path"] for r in source_rows[:n]}
    return held


def lofo_folds(rows: Sequence[Row], with_all: bool = True) -> list[Fold]:
    """One :class:`Fold` per group, plus ``all`` (every group trains; test = held-out reals)."""
    held = held_out_reals(rows)
    names = [*GROUPS, "all"] if with_all else list(GROUPS)
    folds = []
    for name in names:
        train: list[Row] = []
        val: list[Row] = []
        test: list[Row] = []
        for r in rows:
            if r["path"] in held or r["group"] == name:
                test.append(r)
            else:
                (train if r["split"] == "train" else val).append(r)
        folds.append(Fold(name, train, val, test))
    return folds

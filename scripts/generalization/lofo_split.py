"""Write the leave-one-family-group-out (LOFO) manifests of the generalization study.

From the devset manifest (``path,label,split,family,source,...``) this writes, per fold:

* ``<fold>/train.csv``: training rows (devset ``train`` split) of the OTHER groups' fakes and
  of the real photos that are not held out;
* ``<fold>/val.csv``: validation rows (devset ``val`` split) of the same groups and reals:
  the only data a threshold or a best epoch may be chosen on;
* ``<fold>/test.csv``: every image of the held-out group (both devset splits) plus the
  held-out real photos.

The held-out real photos (a fixed quarter of every real source, by sha256 order) never appear
in any fold's training or validation data. Paths are absolute, so the CSVs can live anywhere.

    python -m scripts.generalization.lofo_split ../shared/data/devset/manifest.csv --out runs/lofo
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

GROUPS: dict[str, tuple[str, ...]] = {
    "gan": ("stylegan3", "super-resolution (ESRGAN)", "super-resolution (BSRGAN)"),
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
HELD_OUT_REAL_FRACTION = 0.25
CAPS = {"stable-diffusion-1.5": 80, "text-to-image (unnamed, modern)": 100}
"""The two largest families are cut (first N by sha256, both splits) to fit the CPU budget."""


def family_group(family: str) -> str:
    """The LOFO group of a generator family."""
    for group, families in GROUPS.items():
        if family in families:
            return group
    raise KeyError(f"family {family!r} is in no LOFO group")


def held_out_reals(rows: list[dict[str, str]]) -> set[str]:
    """Paths of the real photos kept for testing: the first quarter of each source by sha256."""
    by_source: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        if row["label"] == "0":
            by_source[row["source"]].append(row)
    held: set[str] = set()
    for source_rows in by_source.values():
        source_rows.sort(key=lambda r: r["sha256"])
        n = max(1, round(len(source_rows) * HELD_OUT_REAL_FRACTION))
        held |= {r["path"] for r in source_rows[:n]}
    return held


def write(path: Path, rows: list[dict[str, str]], fields: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*fields, "group"])
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--out", type=Path, default=Path("runs/lofo"))
    args = ap.parse_args()
    root = args.manifest.resolve().parent
    with args.manifest.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = [dict(r) for r in reader]
    kept: dict[str, int] = defaultdict(int)
    capped = []
    for r in sorted(rows, key=lambda r: r["sha256"]):
        kept[r["family"]] += 1
        if kept[r["family"]] <= CAPS.get(r["family"], len(rows)):
            capped.append(r)
    rows = sorted(capped, key=lambda r: r["path"])
    for r in rows:
        r["path"] = str(root / r["path"])
        r["group"] = "real" if r["label"] == "0" else family_group(r["family"])
    held = held_out_reals(rows)
    study = [r for r in rows if r["label"] == "1" or r["path"] not in held]
    write(args.out / "images.csv", rows, fields)
    write(
        args.out / "pool.csv",
        [r for r in rows if r["label"] == "0" and r["path"] not in held],
        fields,
    )
    write(
        args.out / "testable.csv",
        [r for r in rows if r["label"] == "1" or r["path"] in held],
        fields,
    )
    print("study images:", len(rows), "non-held-out:", len(study))
    for fold in GROUPS:
        train, val, test = [], [], []
        for r in rows:
            if r["label"] == "0":
                if r["path"] in held:
                    test.append(r)
                else:
                    (train if r["split"] == "train" else val).append(r)
            elif r["group"] == fold:
                test.append(r)
            else:
                (train if r["split"] == "train" else val).append(r)
        for name, part in (("train", train), ("val", val), ("test", test)):
            write(args.out / fold / f"{name}.csv", part, fields)
        counts = {
            n: (sum(r["label"] == "0" for r in p), sum(r["label"] == "1" for r in p))
            for n, p in (("train", train), ("val", val), ("test", test))
        }
        print(fold, "(real, fake):", counts)


if __name__ == "__main__":
    main()

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

from detector.training.lofo import GROUPS, read_rows

HELD_OUT_REAL_FRACTION = 0.25
"""Study 1's hold-out: a quarter of every real source (study 2 holds people out by source:
:func:`detector.training.lofo.held_out_reals`)."""


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
    """``rows`` as a CSV with ``fields`` and the ``group`` column."""
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
    rows = read_rows(args.manifest)  # capped, absolute paths, with a ``group`` column
    fields = [f for f in rows[0] if f != "group"] if rows else []
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

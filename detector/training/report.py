"""Evaluation reports: per-group metrics, the paper's Table 2, Markdown/CSV/JSON output."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from detector.training.datasets import Sample, group_key
from detector.training.metrics import BinaryMetrics, average_precision, binary_metrics
from detector.training.taxonomy import UNASSIGNED, Families

GROUP_COLUMNS = (
    "group",
    "n_real",
    "n_fake",
    "ap",
    "ap_paired",
    "auc",
    "acc",
    "acc_05",
    "real_acc",
    "fake_acc",
    "threshold",
    "mean_score",
)


@dataclass
class Scored:
    """Scores of one model on one dataset (NaN where an image was skipped)."""

    name: str
    samples: list[Sample]
    scores: npt.NDArray[np.float64]
    threshold: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> npt.NDArray[np.bool_]:
        """Mask of the images that were scored."""
        return ~np.isnan(self.scores)

    @property
    def labels(self) -> npt.NDArray[np.float64]:
        """0/1 labels, aligned with :attr:`scores`."""
        return np.array([s.label for s in self.samples], dtype=np.float64)


@dataclass(frozen=True)
class GroupRow:
    """Metrics of one group; ``ap_paired`` pairs a one-class group with the other class."""

    group: str
    metrics: BinaryMetrics
    ap_paired: float

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-friendly row."""
        d: dict[str, Any] = {"group": self.group, **self.metrics.to_dict()}
        d["ap_paired"] = None if math.isnan(self.ap_paired) else self.ap_paired
        return {k: d[k] for k in GROUP_COLUMNS}


def group_rows(scored: Scored, by: str) -> list[GroupRow]:
    """Metrics per group (sorted by name) and a final ``ALL`` row.

    ``ap`` is computed inside the group (NaN when it holds one class only). ``ap_paired``
    takes the group's synthetic images, or all synthetic images when it has none, against
    the group's real images, or all real images when it has none: for a source that only
    contributes one class it says how well that source is separated from the other class.
    """
    valid = scored.valid
    y, s = scored.labels[valid], scored.scores[valid]
    keys = np.array([group_key(x, by) for x, ok in zip(scored.samples, valid, strict=True) if ok])
    rows = []
    for key in sorted(set(keys.tolist())):
        inside = keys == key
        m = binary_metrics(y[inside], s[inside], scored.threshold)
        pos = inside & (y == 1) if m.n_fake else y == 1
        neg = inside & (y == 0) if m.n_real else y == 0
        pair = pos | neg
        rows.append(GroupRow(key, m, average_precision(y[pair], s[pair])))
    overall = binary_metrics(y, s, scored.threshold)
    rows.append(GroupRow("ALL", overall, overall.ap))
    return rows


@dataclass(frozen=True)
class Table2Row:
    """One method's line of Table 2 (APs in [0, 1], NaN when a family has no data)."""

    method: str
    family_map: dict[str, float]
    total_map: float
    global_ap: float
    generator_ap: dict[str, float]


def table2_row(scored: Scored, families: Families) -> Table2Row:
    """Per-family mAP, Total mAP over generators and Global AP over all images mixed."""
    valid = scored.valid
    y, s = scored.labels[valid], scored.scores[valid]
    folders = np.array([x.generator for x, ok in zip(scored.samples, valid, strict=True) if ok])
    gen_ap: dict[str, float] = {}
    fam_aps: dict[str, list[float]] = {f.name: [] for f in families.families}
    for folder in sorted(set(folders.tolist())):
        inside = folders == folder
        ap = average_precision(y[inside], s[inside])
        name = families.generator_of(folder)
        gen_ap[name] = ap
        if not math.isnan(ap):
            fam_aps.setdefault(families.family_of(folder), []).append(ap)
    family_map = {k: float(np.mean(v)) if v else math.nan for k, v in fam_aps.items()}
    defined = [v for v in gen_ap.values() if not math.isnan(v)]
    return Table2Row(
        method=scored.name,
        family_map=family_map,
        total_map=float(np.mean(defined)) if defined else math.nan,
        global_ap=average_precision(y, s),
        generator_ap=gen_ap,
    )


def _pct(v: float | None) -> str:
    return "–" if v is None or math.isnan(v) else f"{100 * v:.3f}"


def table2_markdown(rows: Sequence[Table2Row], families: Families) -> str:
    """The paper's Table 2 shape: method | seen | unseen families | Total mAP | Global AP."""
    cols = [f.name for f in families.families]
    if any(UNASSIGNED in r.family_map for r in rows):
        cols.append(UNASSIGNED)
    head = ["method", *cols, "Total mAP", "Global AP"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = [_pct(r.family_map.get(c)) for c in cols]
        lines.append(
            "| " + " | ".join([r.method, *vals, _pct(r.total_map), _pct(r.global_ap)]) + " |"
        )
    seen = [f.name for f in families.families if f.seen]
    note = f"AP in %. Seen during training: {', '.join(seen) or 'none'}; the rest are unseen."
    return "\n".join([*lines, "", note]) + "\n"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def groups_markdown(method: str, rows: Sequence[GroupRow], by: str) -> str:
    """Per-group table of one method."""
    head = [
        by,
        "real",
        "fake",
        "AP",
        "AP paired",
        "ROC AUC",
        "acc@thr",
        "acc@0.5",
        "real acc",
        "fake acc",
        "mean score",
    ]
    lines = [
        f"**{method}** (threshold {rows[-1].metrics.threshold:.4f})",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        m = r.metrics
        vals = [
            r.group,
            m.n_real,
            m.n_fake,
            m.ap,
            r.ap_paired,
            m.auc,
            m.acc,
            m.acc_05,
            m.real_acc,
            m.fake_acc,
            m.mean_score,
        ]
        lines.append("| " + " | ".join(_fmt(v) for v in vals) + " |")
    return "\n".join(lines) + "\n"


def write_reports(
    out_dir: Path,
    scored: Sequence[Scored],
    by: str,
    families: Families | None,
) -> dict[str, Path]:
    """Write ``groups.md/.csv``, ``table2.md/.csv`` (with families), ``scores.csv`` (one row
    per image and method, empty score when skipped) and ``report.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    report: dict[str, Any] = {"group_by": by, "methods": []}
    md_parts, csv_rows = [], []
    for sc in scored:
        rows = group_rows(sc, by)
        md_parts.append(groups_markdown(sc.name, rows, by))
        csv_rows += [{"method": sc.name, **r.to_dict()} for r in rows]
        skipped = int((~sc.valid).sum())
        report["methods"].append(
            {
                "method": sc.name,
                "threshold": sc.threshold,
                "skipped": skipped,
                **sc.meta,
                "groups": [r.to_dict() for r in rows],
            }
        )
    paths["groups_md"] = out_dir / "groups.md"
    paths["groups_md"].write_text("\n".join(md_parts))
    paths["groups_csv"] = out_dir / "groups.csv"
    with paths["groups_csv"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["method", *GROUP_COLUMNS])
        writer.writeheader()
        writer.writerows(csv_rows)
    if families is not None:
        paths.update(_write_table2(out_dir, scored, families, report["methods"]))
    paths["scores_csv"] = out_dir / "scores.csv"
    with paths["scores_csv"].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "path", "label", by, "score"])
        for sc in scored:
            for sample, score in zip(sc.samples, sc.scores, strict=True):
                key = group_key(sample, by)
                w.writerow(
                    [sc.name, sample.path, sample.label, key, "" if np.isnan(score) else score]
                )
    paths["json"] = out_dir / "report.json"
    paths["json"].write_text(json.dumps(report, indent=2, default=str))
    return paths


def _write_table2(
    out_dir: Path, scored: Sequence[Scored], families: Families, entries: list[dict[str, Any]]
) -> dict[str, Path]:
    """``table2.md/.csv``; each method's entry of ``report.json`` gains its ``table2``."""
    t2 = [table2_row(sc, families) for sc in scored]
    paths = {"table2_md": out_dir / "table2.md", "table2_csv": out_dir / "table2.csv"}
    paths["table2_md"].write_text(table2_markdown(t2, families))
    cols = [f.name for f in families.families] + [UNASSIGNED]
    with paths["table2_csv"].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["method", *cols, "total_map", "global_ap"])
        for r in t2:
            w.writerow(
                [r.method, *[r.family_map.get(c, "") for c in cols], r.total_map, r.global_ap]
            )
    for entry, r in zip(entries, t2, strict=True):
        entry["table2"] = {
            "families": {k: _none(v) for k, v in r.family_map.items()},
            "total_map": _none(r.total_map),
            "global_ap": _none(r.global_ap),
            "generators": {k: _none(v) for k, v in r.generator_ap.items()},
        }
    return paths


def _none(v: float) -> float | None:
    return None if math.isnan(v) else v

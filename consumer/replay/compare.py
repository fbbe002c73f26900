"""Compare a replay with what was recorded: joins, label flips, score deltas, models.

Each new verdict is joined with the recorded verdict of the same event id (the latest one
when at-least-once delivery recorded it twice), else with the latest recorded verdict of the
same image sha256. The report is JSON (for tools) and Markdown (for people).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from consumer.replay.recorded import Scored

__all__ = ["DELTA_EDGES", "Comparison", "compare", "write_report"]

DELTA_EDGES = (-1.0, -0.5, -0.2, -0.1, -0.05, -0.01, -1e-4, 1e-4, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0)
"""Bin edges of the score-delta histogram (new - recorded); the middle bin is "unchanged"."""
MAX_LISTED = 1000


@dataclass
class Comparison:
    """The joined result; :meth:`to_dict` is the JSON report."""

    run_id: str
    tolerance: float
    pairs: list[tuple[Scored, Scored, str]]  # (recorded, new, joined by)
    unmatched: list[Scored]
    new_models: Counter[tuple[str, str, str, float]]
    recorded_models: Counter[tuple[str, str, str, float]]

    @property
    def flips(self) -> list[tuple[Scored, Scored, str]]:
        return [p for p in self.pairs if p[0].label != p[1].label]

    def to_dict(self) -> dict[str, Any]:
        deltas = [new.score - old.score for old, new, _ in self.pairs]
        abs_deltas = [abs(d) for d in deltas]
        flips = self.flips
        return {
            "run_id": self.run_id,
            "generated_at": datetime.now(UTC).isoformat(),
            "tolerance": self.tolerance,
            "counts": {
                "replayed": len(self.pairs) + len(self.unmatched),
                "matched": len(self.pairs),
                "matched_by_event_id": sum(1 for p in self.pairs if p[2] == "event_id"),
                "matched_by_sha256": sum(1 for p in self.pairs if p[2] == "sha256"),
                "unmatched": len(self.unmatched),
                "same_label": len(self.pairs) - len(flips),
                "flips": len(flips),
                "real_to_synthetic": sum(1 for o, _n, _ in flips if o.label == "real"),
                "synthetic_to_real": sum(1 for o, _n, _ in flips if o.label == "synthetic"),
                "within_tolerance": sum(1 for d in abs_deltas if d <= self.tolerance),
                "cached": sum(1 for _o, n, _ in self.pairs if n.cached),
            },
            "score_delta": {
                "mean": sum(deltas) / len(deltas) if deltas else 0.0,
                "mean_abs": sum(abs_deltas) / len(abs_deltas) if abs_deltas else 0.0,
                "max_abs": max(abs_deltas, default=0.0),
                "histogram": _histogram(deltas),
            },
            "models": {
                "recorded": _models(self.recorded_models),
                "replay": _models(self.new_models),
            },
            "flipped": [_pair(o, n, by) for o, n, by in flips[:MAX_LISTED]],
            "unmatched_events": [s.event_id for s in self.unmatched[:MAX_LISTED]],
        }


def compare(
    run_id: str, new: Iterable[Scored], recorded: Iterable[Scored], tolerance: float = 1e-4
) -> Comparison:
    """Join ``new`` with ``recorded`` (by event id, then image sha256)."""
    by_event: dict[str, Scored] = {}
    by_sha: dict[str, Scored] = {}
    recorded_models: Counter[tuple[str, str, str, float]] = Counter()
    for rec in sorted(recorded, key=lambda s: s.produced_at):  # later wins
        by_event[rec.event_id] = rec
        by_sha[rec.sha256] = rec
    pairs: list[tuple[Scored, Scored, str]] = []
    unmatched: list[Scored] = []
    new_models: Counter[tuple[str, str, str, float]] = Counter()
    for item in new:
        new_models[item.model] += 1
        if item.event_id in by_event:
            pairs.append((by_event[item.event_id], item, "event_id"))
        elif item.sha256 in by_sha:
            pairs.append((by_sha[item.sha256], item, "sha256"))
        else:
            unmatched.append(item)
    for old, _new, _by in pairs:
        recorded_models[old.model] += 1
    return Comparison(run_id, tolerance, pairs, unmatched, new_models, recorded_models)


def write_report(comparison: Comparison, stem: Path) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md``; return both paths."""
    data = comparison.to_dict()
    json_path = stem.with_name(stem.name + ".json")
    md_path = stem.with_name(stem.name + ".md")
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(_markdown(data), encoding="utf-8")
    return json_path, md_path


def _histogram(deltas: list[float]) -> list[dict[str, Any]]:
    bins = [{"lo": lo, "hi": hi, "count": 0} for lo, hi in itertools.pairwise(DELTA_EDGES)]
    for d in deltas:
        for i, b in enumerate(bins):
            last = i == len(bins) - 1
            if b["lo"] <= d < b["hi"] or (last and d == b["hi"]):
                b["count"] += 1
                break
    return bins


def _models(counter: Counter[tuple[str, str, str, float]]) -> list[dict[str, Any]]:
    return [
        {"name": n, "version": v, "weights_sha256": w, "threshold": t, "verdicts": c}
        for (n, v, w, t), c in counter.most_common()
    ]


def _side(s: Scored) -> dict[str, Any]:
    return {
        "label": s.label,
        "score": s.score,
        "threshold": s.threshold,
        "model_version": s.model[1],
        "source": s.source,
    }


def _pair(old: Scored, new: Scored, by: str) -> dict[str, Any]:
    return {
        "event_id": new.event_id,
        "image_sha256": new.sha256,
        "joined_by": by,
        "recorded": _side(old),
        "replay": _side(new),
    }


def _markdown(data: dict[str, Any]) -> str:
    c, d = data["counts"], data["score_delta"]
    lines = [
        f"# Replay report `{data['run_id']}`",
        "",
        f"Generated {data['generated_at']}. Score tolerance {data['tolerance']:g}.",
        "",
        "## Counts",
        "",
        "| | |",
        "|---|---:|",
        *(f"| {k.replace('_', ' ')} | {v} |" for k, v in c.items()),
        "",
        "## Models",
        "",
        "| side | name | version | weights sha256 | threshold | verdicts |",
        "|---|---|---|---|---:|---:|",
    ]
    for side in ("recorded", "replay"):
        for m in data["models"][side]:
            lines.append(
                f"| {side} | {m['name']} | {m['version']} | `{m['weights_sha256'][:12]}` "
                f"| {m['threshold']:.4f} | {m['verdicts']} |"
            )
    lines += [
        "",
        "## Score delta (replay - recorded)",
        "",
        f"mean {d['mean']:+.6f}, mean |delta| {d['mean_abs']:.6f}, max |delta| {d['max_abs']:.6f}",
        "",
        "| from | to | count | |",
        "|---:|---:|---:|---|",
    ]
    top = max((b["count"] for b in d["histogram"]), default=0) or 1
    for b in d["histogram"]:
        bar = "#" * round(30 * b["count"] / top)
        lines.append(
            f"| {b['lo']:+g} | {b['hi']:+g} | {b['count']} | {f'`{bar}`' if bar else ''} |"
        )
    lines += ["", f"## Flipped events ({c['flips']})", ""]
    if data["flipped"]:
        lines += [
            "| event | image | recorded | replay | source |",
            "|---|---|---|---|---|",
        ]
        for f in data["flipped"]:
            r, n = f["recorded"], f["replay"]
            lines.append(
                f"| {f['event_id']} | `{f['image_sha256'][:12]}` | {r['label']} {r['score']:.4f} "
                f"(t={r['threshold']:.3f}) | {n['label']} {n['score']:.4f} "
                f"(t={n['threshold']:.3f}) | {n['source']} |"
            )
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"

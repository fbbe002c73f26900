"""Robustness sweeps of the paper's Fig. 3: AP as blur sigma and JPEG quality vary."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

BLUR_SIGMAS: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0)
JPEG_QUALITIES: tuple[int, ...] = (100, 90, 80, 70, 60, 50, 40, 30)


@dataclass(frozen=True)
class Perturbation:
    """One point of a sweep: ``kind`` is ``blur`` or ``jpeg``."""

    kind: str
    value: float

    @property
    def blur_sigma(self) -> float | None:
        """Blur sigma, for a blur point."""
        return self.value if self.kind == "blur" else None

    @property
    def jpeg_quality(self) -> int | None:
        """JPEG quality, for a JPEG point."""
        return int(self.value) if self.kind == "jpeg" else None


def sweep(
    blur_sigmas: Sequence[float] = BLUR_SIGMAS, jpeg_qualities: Sequence[int] = JPEG_QUALITIES
) -> list[Perturbation]:
    """All points of both sweeps."""
    return [Perturbation("blur", float(s)) for s in blur_sigmas] + [
        Perturbation("jpeg", float(q)) for q in jpeg_qualities
    ]


@dataclass(frozen=True)
class RobustnessPoint:
    """Global AP of one model under one perturbation."""

    method: str
    kind: str
    value: float
    ap: float


def run_sweep(
    methods: Sequence[str],
    points: Sequence[Perturbation],
    score_ap: Callable[[int, Perturbation], float],
) -> list[RobustnessPoint]:
    """Evaluate ``score_ap(method_index, point)`` for every method and point."""
    return [
        RobustnessPoint(name, p.kind, p.value, score_ap(i, p))
        for i, name in enumerate(methods)
        for p in points
    ]


def write_robustness(out_dir: Path, points: Sequence[RobustnessPoint]) -> dict[str, Path]:
    """``robustness.csv/.json`` and the two Fig. 3 plots (``robustness_blur.png``,
    ``robustness_jpeg.png``), one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "robustness.csv", "json": out_dir / "robustness.json"}
    with paths["csv"].open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "kind", "value", "ap"])
        w.writerows((p.method, p.kind, p.value, p.ap) for p in points)
    paths["json"].write_text(
        json.dumps([{**p.__dict__, "ap": None if math.isnan(p.ap) else p.ap} for p in points])
    )
    methods = list(dict.fromkeys(p.method for p in points))
    labels = {"blur": "Gaussian blur sigma", "jpeg": "JPEG quality"}
    for kind in ("blur", "jpeg"):
        fig, ax = plt.subplots(figsize=(4.5, 3.5), dpi=120)
        for method in methods:
            pts = [p for p in points if p.method == method and p.kind == kind]
            ax.plot([p.value for p in pts], [100 * p.ap for p in pts], marker="o", label=method)
        ax.set_xlabel(labels[kind])
        ax.set_ylabel("AP (%)")
        ax.set_title(f"Robustness to {'blur' if kind == 'blur' else 'JPEG compression'}")
        if kind == "jpeg":
            ax.invert_xaxis()  # as in Fig. 3: quality decreases to the right
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths[kind] = out_dir / f"robustness_{kind}.png"
        fig.savefig(paths[kind])
        plt.close(fig)
    return paths

"""Decision threshold from VALIDATION scores (never from test data).

Two rules: ``fpr`` flags as many images as possible while the false-positive rate on the real
images stays at most a target (what a moderation queue budgets for), ``f1`` picks the best F1
for the synthetic class. A prediction is synthetic when ``score >= threshold``; thresholds sit
halfway between neighbouring validation scores, so float noise cannot flip a decision.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from detector.training.metrics import binary_metrics

Method = Literal["fpr", "f1"]


@dataclass(frozen=True)
class Calibration:
    """A chosen threshold and what it achieves on the data it was chosen on."""

    method: str
    target_fpr: float | None
    threshold: float
    fpr: float
    tpr: float
    f1: float
    acc: float
    ap: float
    n_real: int
    n_fake: int
    data: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly values for the checkpoint metadata."""
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def _between(low: float, others: npt.NDArray[np.float64]) -> float:
    """Halfway from ``low`` to the next higher value of ``others`` (just above when none).

    Placing the threshold in the middle of the gap keeps every decision on the calibration
    data and leaves a margin against float noise (another batch size, thread count or device
    moves a score by ~1e-7, which must not flip a validation image across the threshold).
    """
    above = others[others > low]
    if above.size == 0:
        return float(np.nextafter(low, np.inf))
    return float((low + above.min()) / 2)


def threshold_at_fpr(
    real_scores: npt.ArrayLike, target_fpr: float, all_scores: npt.ArrayLike | None = None
) -> float:
    """A threshold with ``mean(real_scores >= t) <= target_fpr`` that flags the most images.

    It lies just above the highest real score that must stay below it, halfway to the next
    score of ``all_scores`` (the reals when not given), so no calibration image lies between
    it and the lowest admissible threshold.
    """
    s = np.sort(np.asarray(real_scores, dtype=np.float64).ravel())[::-1]
    if s.size == 0:
        raise ValueError("calibration at a target FPR needs real (label 0) images")
    if not 0.0 <= target_fpr < 1.0:
        raise ValueError("target FPR must be in [0, 1)")
    k = math.floor(target_fpr * s.size + 1e-9)  # real images allowed above the threshold
    pool = s if all_scores is None else np.asarray(all_scores, dtype=np.float64).ravel()
    return _between(float(s[k]), pool)


def threshold_best_f1(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Threshold maximising F1 of the synthetic class (halfway below the chosen cut score)."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.sum() == 0:
        raise ValueError("best-F1 calibration needs synthetic (label 1) images")
    order = np.argsort(-s, kind="mergesort")
    y_sorted, s_sorted = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), y.size - 1]
    tp = np.cumsum(y_sorted)[last]
    predicted = last + 1
    f1 = 2 * tp / (predicted + y.sum())
    cut = float(s_sorted[last[int(np.argmax(f1))]])
    below = s[s < cut]
    return cut if below.size == 0 else float((cut + below.max()) / 2)


def calibrate(
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    method: Method = "fpr",
    target_fpr: float = 0.05,
    data: str = "",
) -> Calibration:
    """Choose a threshold with ``method`` and report its validation numbers."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if method == "fpr":
        threshold = threshold_at_fpr(s[y == 0], target_fpr, s)
    elif method == "f1":
        threshold = threshold_best_f1(y, s)
    else:
        raise ValueError(f"unknown calibration method {method!r}")
    m = binary_metrics(y, s, threshold)
    pred = s >= threshold
    tp = float((pred & (y == 1)).sum())
    f1 = 2 * tp / (pred.sum() + y.sum()) if (pred.sum() + y.sum()) else math.nan
    return Calibration(
        method=method,
        target_fpr=target_fpr if method == "fpr" else None,
        threshold=threshold,
        fpr=float(pred[y == 0].mean()) if m.n_real else math.nan,
        tpr=m.fake_acc,
        f1=float(f1),
        acc=m.acc,
        ap=m.ap,
        n_real=m.n_real,
        n_fake=m.n_fake,
        data=data,
    )

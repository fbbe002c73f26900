"""Decision threshold from VALIDATION scores (never from test data).

Two rules: ``fpr`` picks the lowest threshold whose false-positive rate on the real images is
at most a target (what a moderation queue budgets for), ``f1`` picks the threshold with the
best F1 for the synthetic class. A prediction is synthetic when ``score >= threshold``.
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


def threshold_at_fpr(real_scores: npt.ArrayLike, target_fpr: float) -> float:
    """Lowest threshold with ``mean(real_scores >= t) <= target_fpr``."""
    s = np.sort(np.asarray(real_scores, dtype=np.float64).ravel())[::-1]
    if s.size == 0:
        raise ValueError("calibration at a target FPR needs real (label 0) images")
    if not 0.0 <= target_fpr < 1.0:
        raise ValueError("target FPR must be in [0, 1)")
    k = math.floor(target_fpr * s.size + 1e-9)  # real images allowed above the threshold
    # Just above the (k+1)-th highest real score: at most k reals (fewer with ties) reach it.
    return float(np.nextafter(s[k], np.inf))


def threshold_best_f1(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Threshold (one of the scores) maximising F1 of the synthetic class."""
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
    return float(s_sorted[last[int(np.argmax(f1))]])


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
        threshold = threshold_at_fpr(s[y == 0], target_fpr)
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

"""Binary detection metrics (label 1 = synthetic, higher score = more likely synthetic).

Definitions match scikit-learn: average precision is the step-wise sum
``sum_n (R_n - R_{n-1}) P_n`` over distinct score thresholds (no interpolation), ROC AUC is
the trapezoidal area (equal to the Mann-Whitney statistic with ties counted one half).
Undefined values (AP without positives, AUC with one class) are NaN.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def _arrays(labels: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    y = np.asarray(labels, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} differ in length")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    return y, s


def average_precision(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Average precision of ``scores`` ranking the positives (NaN without positives)."""
    y, s = _arrays(labels, scores)
    n_pos = y.sum()
    if n_pos == 0:
        return math.nan
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    # Last index of each run of equal scores: one threshold per distinct score.
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve (NaN unless both classes are present)."""
    y, s = _arrays(labels, scores)
    n_pos, n_neg = y.sum(), (1 - y).sum()
    if n_pos == 0 or n_neg == 0:
        return math.nan
    # Average ranks handle ties as one half.
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty_like(s)
    sorted_s = s[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], s.size]
    for a, b in zip(starts, ends, strict=True):
        ranks[order[a:b]] = (a + b + 1) / 2.0  # mean of 1-based ranks a+1..b
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _accuracy(y: FloatArray, pred: FloatArray) -> float:
    return float((pred == y).mean()) if y.size else math.nan


@dataclass(frozen=True)
class BinaryMetrics:
    """The per-group numbers of the paper's evaluation, plus counts."""

    n: int
    n_real: int
    n_fake: int
    ap: float
    auc: float
    acc: float  # at the checkpoint's threshold
    acc_05: float  # at 0.5
    real_acc: float  # at the threshold
    fake_acc: float  # at the threshold
    threshold: float
    mean_score: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly values (NaN becomes None)."""
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in asdict(self).items()
        }


def binary_metrics(
    labels: npt.ArrayLike, scores: npt.ArrayLike, threshold: float = 0.5
) -> BinaryMetrics:
    """AP, ROC AUC, accuracies at ``threshold`` and at 0.5, real/fake accuracy, counts.

    A score equal to the threshold counts as synthetic (``score >= threshold``), as in
    :class:`detector.Prediction`. AP and AUC are NaN unless both classes are present (a
    one-class AP would be a meaningless 1.0 or undefined).
    """
    y, s = _arrays(labels, scores)
    pred = (s >= threshold).astype(np.float64)
    real, fake = y == 0, y == 1
    return BinaryMetrics(
        n=int(y.size),
        n_real=int(real.sum()),
        n_fake=int(fake.sum()),
        ap=average_precision(y, s) if real.any() and fake.any() else math.nan,
        auc=roc_auc(y, s),
        acc=_accuracy(y, pred),
        acc_05=_accuracy(y, (s >= 0.5).astype(np.float64)),
        real_acc=_accuracy(y[real], pred[real]),
        fake_acc=_accuracy(y[fake], pred[fake]),
        threshold=float(threshold),
        mean_score=float(s.mean()) if s.size else math.nan,
    )

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


@dataclass(frozen=True)
class DecisionBand:
    """The moderator's band: ``real`` below ``real_below``, ``synthetic`` from
    ``synthetic_from``, ``uncertain`` in between, with the validation rates it achieves.

    Rule (:func:`decision_band`), on VALIDATION scores (where the threshold is chosen):

    1. ``synthetic_from``: the lowest edge at which at most ``max_fpr`` of the real photos
       score at or above it (:func:`threshold_at_fpr`).
    2. ``real_below``: the highest edge that keeps at least ``min_tpr`` of the fakes at or
       above it (halfway to the next lower score, like the threshold).
    3. When they cross (``real_below > synthetic_from``: the data separate at both rates), the
       band spans the gap between them: real below the lower one, synthetic from the upper one.
       Both error bounds still hold and ``uncertain`` stays reachable.
    4. The band is widened to contain the threshold, so ``decision`` never contradicts
       ``label`` (synthetic implies ``score >= threshold``, real implies below it); a wider
       band only lowers both error rates.
    5. Edges are kept inside (0, 1) so every outcome stays reachable.
    """

    real_below: float
    synthetic_from: float
    max_fpr: float
    """Target: real photos decided ``synthetic`` (at most)."""
    min_tpr: float
    """Target: fakes kept out of ``real`` (at least)."""
    fpr: float
    """Achieved: share of validation real photos at or above ``synthetic_from``."""
    fake_above_real_edge: float
    """Achieved: share of validation fakes at or above ``real_below``."""
    real_below_real_edge: float
    """Share of validation real photos decided ``real``."""
    fake_synthetic: float
    """Share of validation fakes decided ``synthetic``."""
    n_real: int
    n_fake: int
    crossed: bool = False
    """Rule 3 applied: the edges crossed and were swapped."""
    data: str = ""

    def edges(self) -> tuple[float, float]:
        """``(real_below, synthetic_from)``."""
        return self.real_below, self.synthetic_from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _below(high: float, others: npt.NDArray[np.float64]) -> float:
    """Halfway from ``high`` down to the next lower value of ``others`` (just below when none)."""
    under = others[others < high]
    if under.size == 0:
        return float(np.nextafter(high, -np.inf))
    return float((high + under.max()) / 2)


def edge_at_tpr(fake_scores: npt.ArrayLike, min_tpr: float, all_scores: npt.ArrayLike) -> float:
    """The highest edge with ``mean(fake_scores >= edge) >= min_tpr``."""
    s = np.sort(np.asarray(fake_scores, dtype=np.float64).ravel())
    if s.size == 0:
        raise ValueError("a decision band needs synthetic (label 1) validation images")
    if not 0.0 < min_tpr <= 1.0:
        raise ValueError("min_tpr must be in (0, 1]")
    k = math.floor((1.0 - min_tpr) * s.size + 1e-9)  # fakes allowed below the edge
    return _below(float(s[k]), np.asarray(all_scores, dtype=np.float64).ravel())


def decision_band(
    real_scores: npt.ArrayLike,
    fake_scores: npt.ArrayLike,
    threshold: float,
    *,
    max_fpr: float = 0.01,
    min_tpr: float = 0.95,
    data: str = "",
) -> DecisionBand:
    """The band's edges from validation scores (see :class:`DecisionBand` for the rule).

    Its ``to_dict()`` is the checkpoint metadata (``CheckpointMetadata.decision_band``), for
    whoever ships a checkpoint, next to ``threshold``::

        band = decision_band(val_real, val_fake, meta.threshold)
        meta = replace(meta, decision_band=band.to_dict())
    """
    real = np.asarray(real_scores, dtype=np.float64).ravel()
    fake = np.asarray(fake_scores, dtype=np.float64).ravel()
    pool = np.concatenate([real, fake])
    high = threshold_at_fpr(real, max_fpr, pool)
    low = edge_at_tpr(fake, min_tpr, pool)
    crossed = low > high
    if crossed:
        low, high = high, low
    low, high = min(low, threshold), max(high, threshold)
    tiny = float(np.nextafter(0.0, 1.0))
    high = min(high, float(np.nextafter(1.0, 0.0)))
    low = min(max(low, tiny), float(np.nextafter(high, 0.0)))
    return DecisionBand(
        real_below=low,
        synthetic_from=high,
        max_fpr=max_fpr,
        min_tpr=min_tpr,
        fpr=float((real >= high).mean()),
        fake_above_real_edge=float((fake >= low).mean()),
        real_below_real_edge=float((real < low).mean()),
        fake_synthetic=float((fake >= high).mean()),
        n_real=int(real.size),
        n_fake=int(fake.size),
        crossed=crossed,
        data=data,
    )

"""Metrics against scikit-learn and hand-computed reference numbers; calibration; schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from detector.training.calibration import calibrate, threshold_at_fpr, threshold_best_f1
from detector.training.metrics import average_precision, binary_metrics, roc_auc
from detector.training.schedule import PlateauController


def test_hand_computed_example() -> None:
    labels = [1, 0, 1, 1, 0, 0]
    scores = [0.9, 0.8, 0.7, 0.4, 0.3, 0.1]
    # Ranked: P N P P N N. Precision at each positive: 1/1, 2/3, 3/4.
    assert average_precision(labels, scores) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    # Pairs (pos, neg) ranked correctly: 0.9 beats 3, 0.7 beats 2, 0.4 beats 2 -> 7/9.
    assert roc_auc(labels, scores) == pytest.approx(7 / 9)
    m = binary_metrics(labels, scores, threshold=0.5)
    assert (m.n, m.n_real, m.n_fake) == (6, 3, 3)
    assert m.acc == pytest.approx(4 / 6)  # predicted fake: 0.9, 0.8, 0.7
    assert m.real_acc == pytest.approx(2 / 3) and m.fake_acc == pytest.approx(2 / 3)
    m2 = binary_metrics(labels, scores, threshold=0.35)
    assert m2.acc == pytest.approx(5 / 6) and m2.acc_05 == pytest.approx(4 / 6)
    assert m2.fake_acc == 1.0 and m2.real_acc == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", range(6))
def test_against_scikit_learn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = np.round(rng.random(n) * (0.3 + labels), 1 + seed % 3)  # many ties
    assert average_precision(labels, scores) == pytest.approx(
        average_precision_score(labels, scores), abs=1e-12
    )
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_undefined_metrics_are_nan() -> None:
    assert math.isnan(average_precision([0, 0], [0.1, 0.2]))
    assert math.isnan(roc_auc([1, 1], [0.1, 0.2]))
    m = binary_metrics([1, 1], [0.2, 0.7], 0.5)
    assert math.isnan(m.real_acc) and m.fake_acc == 0.5
    assert m.to_dict()["real_acc"] is None


def test_threshold_at_fpr_is_the_lowest_within_budget() -> None:
    rng = np.random.default_rng(0)
    real = rng.random(200)
    for target in (0.0, 0.01, 0.05, 0.2):
        t = threshold_at_fpr(real, target)
        fpr = float((real >= t).mean())
        assert fpr <= target + 1e-12
        lower = np.max(real[real < t])  # the next candidate below would exceed the budget
        assert float((real >= lower).mean()) > target


def test_best_f1_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 150)
    scores = np.round(rng.random(150) * 0.6 + 0.4 * labels, 2)
    t = threshold_best_f1(labels, scores)
    best = max(f1_score(labels, scores >= c) for c in np.unique(scores))
    assert f1_score(labels, scores >= t) == pytest.approx(best)


def test_calibrate_reports_what_it_achieves() -> None:
    labels = np.array([0] * 100 + [1] * 50)
    scores = np.r_[np.linspace(0, 0.6, 100), np.linspace(0.3, 1.0, 50)]
    cal = calibrate(labels, scores, "fpr", 0.05, data="val")
    assert cal.fpr <= 0.05 and cal.n_real == 100 and cal.n_fake == 50
    assert cal.tpr == pytest.approx(float((scores[100:] >= cal.threshold).mean()))
    assert cal.to_dict()["data"] == "val"
    with pytest.raises(ValueError):
        calibrate(labels, scores, "bogus")  # type: ignore[arg-type]


def test_plateau_controller_decays_then_really_stops() -> None:
    c = PlateauController(lr=1e-4, patience=100, lr_patience=2, factor=0.1, min_lr=1e-6)
    scores = [0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    decisions = [c.step(s, e) for e, s in enumerate(scores)]
    assert [d.improved for d in decisions[:3]] == [True, True, False]
    lrs = [d.new_lr for d in decisions if d.new_lr is not None]
    assert lrs == pytest.approx([1e-5, 1e-6])
    stops = [e for e, d in enumerate(decisions) if d.stop]
    assert stops and stops[0] == 7 and "minimum lr" in decisions[7].reason
    assert c.best == 0.6 and c.best_epoch == 1  # the best is never reset


def test_plateau_controller_patience_stop_and_state() -> None:
    c = PlateauController(lr=1e-3, patience=3, lr_patience=10)
    assert not c.step(0.9, 0).stop
    assert not c.step(0.85, 1).stop and not c.step(0.9005, 2).stop  # below min_delta
    d = c.step(0.8, 3)
    assert d.stop and "patience" in d.reason
    clone = PlateauController(lr=1.0)
    clone.load_state_dict(c.state_dict())
    assert clone == c


def test_thresholds_sit_in_the_middle_of_a_gap() -> None:
    real = np.array([0.1, 0.2, 0.3, 0.4])
    fake = np.array([0.35, 0.9])
    # 25% FPR allows one real above: cut between 0.3 (must stay below) and the next score 0.35.
    assert threshold_at_fpr(real, 0.25, np.r_[real, fake]) == pytest.approx(0.325)
    assert threshold_at_fpr(real, 0.25) == pytest.approx(0.35)  # next real is 0.4
    labels = np.array([0, 0, 0, 0, 1, 1])
    # Best F1 flags {0.9, 0.4, 0.35}: F1 = 0.8 vs 0.667 for {0.9}; cut halfway to 0.3.
    assert threshold_best_f1(labels, np.r_[real, fake]) == pytest.approx(0.325)

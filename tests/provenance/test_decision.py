"""The decision policy: the uncertain band, verified provenance overrides, the rest informs."""

from __future__ import annotations

import pytest

from provenance import CacheMatch, DecisionPolicy, Finding, ProvenanceReport, decide

VERIFIED_AI = Finding("c2pa", "c2pa_digital_source_type", "trainedAlgorithmicMedia", True)
UNVERIFIED_AI = Finding("xmp", "iptc_digital_source_type", "trainedAlgorithmicMedia", False)


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0.0, "real"), (0.39, "real"), (0.4, "uncertain"), (0.5, "uncertain"), (0.6, "synthetic")],
)
def test_the_default_band_is_the_threshold_plus_minus_0_1(score: float, expected: str) -> None:
    assert decide(score, 0.5)[0] == expected


def test_explicit_bounds_and_an_empty_band_is_refused() -> None:
    policy = DecisionPolicy(uncertain_low=0.2, uncertain_high=0.9)
    assert [decide(s, 0.5, None, policy)[0] for s in (0.1, 0.5, 0.95)] == [
        "real",
        "uncertain",
        "synthetic",
    ]
    with pytest.raises(ValueError, match="empty"):
        decide(0.5, 0.5, None, DecisionPolicy(uncertain_low=0.8, uncertain_high=0.2))


def test_only_verified_ai_provenance_overrides_and_it_can_be_turned_off() -> None:
    verified = ProvenanceReport(findings=(VERIFIED_AI,))
    unverified = ProvenanceReport(findings=(UNVERIFIED_AI,))
    assert decide(0.01, 0.5, verified)[0] == "synthetic"
    assert decide(0.01, 0.5, unverified)[0] == "real"
    off = DecisionPolicy(verified_ai_overrides=False)
    assert decide(0.01, 0.5, verified, off)[0] == "real"


def test_reasons_list_the_score_each_finding_and_a_near_duplicate() -> None:
    report = ProvenanceReport(findings=(UNVERIFIED_AI,))
    match = CacheMatch("near_duplicate", 12, "ev-fake")
    _, reasons = decide(0.7, 0.5, report, cache_match=match)
    assert [r.kind for r in reasons] == ["pixel_score", "cache_match", "provenance"]
    assert "PDQ distance 12 to event ev-fake" in reasons[1].detail
    assert reasons[0].decisive and not reasons[1].decisive and not reasons[2].decisive


@pytest.mark.parametrize(
    ("score", "pixel", "expected"),
    [(0.1, "real", "uncertain"), (0.5, "uncertain", "uncertain"), (0.7, "synthetic", "synthetic")],
)
def test_a_near_duplicate_of_a_fake_moves_real_to_uncertain_never_to_synthetic(
    score: float, pixel: str, expected: str
) -> None:
    match = CacheMatch("near_duplicate", 8, "ev-fake")
    decision, reasons = decide(score, 0.5, cache_match=match)
    assert decision == expected
    assert f": {pixel} (" in reasons[0].detail
    assert reasons[1].kind == "cache_match" and reasons[1].decisive == (pixel == "real")


def test_the_stored_band_is_used_and_settings_override_each_edge() -> None:
    stored = (0.3, 0.95)
    assert [decide(s, 0.5, stored=stored)[0] for s in (0.29, 0.9, 0.95)] == [
        "real",
        "uncertain",
        "synthetic",
    ]
    assert DecisionPolicy(uncertain_high=0.8).band(0.5, stored) == (0.3, 0.8)
    assert DecisionPolicy(uncertain_low=0.1).band(0.5, stored) == (0.1, 0.95)


@pytest.mark.parametrize(
    ("threshold", "band"),
    [(0.5, (0.4, 0.6)), (0.905, (0.8575, 0.9525)), (0.04, (0.02, 0.06))],
)
def test_the_fallback_band_shrinks_to_stay_inside_0_1(
    threshold: float, band: tuple[float, float]
) -> None:
    low, high = DecisionPolicy().band(threshold)
    assert (low, high) == pytest.approx(band)
    assert 0.0 < low < threshold < high < 1.0
    DecisionPolicy().check(threshold)  # all three outcomes reachable


@pytest.mark.parametrize(
    ("policy", "stored", "named", "outcome"),
    [
        (DecisionPolicy(uncertain_high=1.0), None, "decision.uncertain_high", "'synthetic'"),
        (DecisionPolicy(uncertain_low=0.0), (0.3, 0.9), "decision.uncertain_low", "'real'"),
        (DecisionPolicy(uncertain_margin=0.0), None, "decision.uncertain_margin", "uncertain"),
        (
            DecisionPolicy(uncertain_low=0.95),
            (0.3, 0.9),
            "decision.uncertain_low and the checkpoint's decision_band",
            "uncertain",
        ),
    ],
)
def test_a_band_that_makes_an_outcome_unreachable_is_refused_naming_the_setting(
    policy: DecisionPolicy, stored: tuple[float, float] | None, named: str, outcome: str
) -> None:
    with pytest.raises(ValueError) as info:
        policy.check(0.5, stored)
    assert named in str(info.value) and outcome in str(info.value)

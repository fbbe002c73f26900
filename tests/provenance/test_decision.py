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
    _, reasons = decide(0.7, 0.5, report, cache_match=CacheMatch("near_duplicate", 12))
    assert [r.kind for r in reasons] == ["pixel_score", "near_duplicate", "provenance"]
    assert "PDQ distance 12" in reasons[1].detail
    assert reasons[0].decisive and not reasons[2].decisive

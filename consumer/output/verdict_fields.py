"""The verdict's decision, reasons, provenance, PDQ and cache-match fields for one image."""

from __future__ import annotations

from typing import Any

from provenance import CacheMatch, DecisionPolicy, ProvenanceReport, decide
from schemas import (
    MAX_FINDINGS,
    MAX_REASONS,
    MAX_UNREADABLE,
    PdqInfo,
    ProvenanceFinding,
    ProvenanceInfo,
    Reason,
    UnreadableSource,
)
from schemas import CacheMatch as WireCacheMatch

__all__ = ["cache_match_of", "verdict_fields"]


def cache_match_of(prediction: Any) -> CacheMatch | None:
    """How ``prediction`` matched the cache: ``exact`` (served from it) or ``near_duplicate``
    (scored, near an image labelled synthetic); None when neither."""
    if not getattr(prediction, "cached", False) and getattr(prediction, "match", "") == "":
        return None
    kind = getattr(prediction, "match", "exact")
    return CacheMatch(
        "near_duplicate" if kind == "near_duplicate" else "exact",
        int(getattr(prediction, "distance", 0)),
        getattr(prediction, "matched_event_id", None),
    )


def verdict_fields(
    score: float,
    threshold: float,
    report: ProvenanceReport | None,
    policy: DecisionPolicy,
    match: CacheMatch | None,
    stored: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """``decision``, ``reasons``, ``provenance``, ``pdq`` and ``cache_match`` as wire models;
    ``stored``: the checkpoint's calibrated band edges."""
    decision, reasons = decide(score, threshold, report, policy, match, stored)
    fields: dict[str, Any] = {
        "decision": decision,
        "reasons": [
            Reason(kind=r.kind, detail=r.detail, decisive=r.decisive) for r in reasons[:MAX_REASONS]
        ],
        "cache_match": None
        if match is None
        else WireCacheMatch(kind=match.kind, distance=match.distance, event_id=match.event_id),
    }
    if report is not None:
        fields["provenance"] = ProvenanceInfo(
            findings=[
                ProvenanceFinding(
                    source=f.source,
                    kind=f.kind,
                    value=f.value,
                    verified=f.verified,
                    detail=f.detail,
                )
                for f in report.findings[:MAX_FINDINGS]
            ],
            unreadable=[
                UnreadableSource(source=u.source, reason=u.reason)
                for u in report.unreadable[:MAX_UNREADABLE]
            ],
            c2pa_state=report.c2pa_state,
            elapsed_ms=report.elapsed_ms,
        )
        if report.pdq is not None:
            fields["pdq"] = PdqInfo(hash=report.pdq.hex, quality=report.pdq.quality)
    return fields

"""The decision a moderator acts on: ``synthetic | uncertain | real``, with its reasons.

Policy (the default; every part is configurable):

- The pixel score decides through two thresholds: ``synthetic`` at or above the upper one,
  ``real`` below the lower one, ``uncertain`` in between (by default the model's calibrated
  threshold +- 0.1). Fact-checkers would rather read "inconclusive" than a false accusation.
- A VERIFIED assertion of AI origin (a C2PA manifest whose signature validated and chains to
  a configured trust anchor, carrying the IPTC ``trainedAlgorithmicMedia`` or
  ``compositeWithTrainedAlgorithmicMedia`` digital source type) makes the decision
  ``synthetic`` whatever the pixels say.
- Unverified metadata (XMP, PNG text, EXIF, watermark, an untrusted or broken manifest) only
  adds a reason: anyone can write it, and anyone can strip it.
- The absence of provenance proves nothing and adds no reason.

The ``label`` of a verdict is unchanged (``score >= threshold``); ``decision`` is separate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from provenance.findings import ProvenanceReport

__all__ = ["CacheMatch", "Decision", "DecisionPolicy", "Reason", "decide"]

Decision = Literal["synthetic", "uncertain", "real"]


@dataclass(frozen=True, slots=True)
class DecisionPolicy:
    """Thresholds of the uncertain band and whether verified provenance overrides pixels."""

    uncertain_margin: float = 0.1
    """Half-width of the band around the model threshold when the bounds are not set."""
    uncertain_low: float | None = None
    """Scores below this are ``real`` (default: threshold - margin)."""
    uncertain_high: float | None = None
    """Scores at or above this are ``synthetic`` (default: threshold + margin)."""
    verified_ai_overrides: bool = True
    """A verified AI-origin assertion makes the decision ``synthetic``."""

    def band(self, threshold: float) -> tuple[float, float]:
        """``(low, high)``: real below ``low``, synthetic from ``high``."""
        low = self.uncertain_low
        high = self.uncertain_high
        low = max(0.0, threshold - self.uncertain_margin) if low is None else low
        high = min(1.0, threshold + self.uncertain_margin) if high is None else high
        if low > high:
            raise ValueError(f"uncertain band is empty: low {low} > high {high}")
        return low, high


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason behind a decision.

    ``kind``: ``pixel_score``, ``provenance``, ``provenance_unreadable``, ``near_duplicate``
    or ``exact_duplicate``. ``decisive``: this reason alone set the decision.
    """

    kind: str
    detail: str
    decisive: bool = False


@dataclass(frozen=True, slots=True)
class CacheMatch:
    """The verdict reused an earlier one: ``exact`` (same sha256) or ``near_duplicate`` (PDQ)."""

    kind: Literal["exact", "near_duplicate"]
    distance: int = 0


def decide(
    score: float,
    threshold: float,
    report: ProvenanceReport | None = None,
    policy: DecisionPolicy = DecisionPolicy(),
    cache_match: CacheMatch | None = None,
) -> tuple[Decision, list[Reason]]:
    """The decision for a pixel ``score`` and the provenance ``report`` of the same image."""
    low, high = policy.band(threshold)
    pixel: Decision = "synthetic" if score >= high else "real" if score < low else "uncertain"
    override = policy.verified_ai_overrides and report is not None and report.verified_ai
    decision: Decision = "synthetic" if override else pixel
    reasons = [
        Reason(
            "pixel_score",
            f"pixel score {score:.4f}: {pixel} (real below {low:.3f}, synthetic from {high:.3f})",
            decisive=not override,
        )
    ]
    if cache_match is not None:
        if cache_match.kind == "near_duplicate":
            detail = f"PDQ distance {cache_match.distance} to an earlier image: its score reused"
            reasons.append(Reason("near_duplicate", detail))
        else:
            reasons.append(Reason("exact_duplicate", "same bytes as an earlier image"))
    for finding in report.findings if report is not None else ():
        status = "verified" if finding.verified else "unverified"
        detail = f"{finding.kind}={finding.value} ({finding.source}, {status})"
        if finding.detail:
            detail += f"; {finding.detail}"
        decisive = override and finding.verified and finding.says_ai
        reasons.append(Reason("provenance", detail, decisive=decisive))
    for bad in report.unreadable if report is not None else ():
        reasons.append(Reason("provenance_unreadable", f"{bad.source}: {bad.reason}"))
    return decision, reasons

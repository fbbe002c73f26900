"""The decision a moderator acts on: ``synthetic | uncertain | real``, with its reasons.

Policy (the default; every part is configurable):

- The pixel score decides through two edges: ``synthetic`` at or above the upper one,
  ``real`` below the lower one, ``uncertain`` in between. Fact-checkers would rather read
  "inconclusive" than a false accusation. Where the edges come from, first found wins:
  1. the settings ``uncertain_low`` / ``uncertain_high`` (each on its own);
  2. the checkpoint's calibrated ``decision_band`` (chosen on validation data like the
     threshold: ``detector.training.calibration.decision_band``);
  3. the fallback for checkpoints without one: ``threshold +- m`` with
     ``m = min(uncertain_margin, threshold / 2, (1 - threshold) / 2)``, so the lower edge stays
     above 0 and the upper below 1 and all three outcomes stay reachable.
  :meth:`DecisionPolicy.check` refuses a band that makes an outcome unreachable (``real`` needs
  a lower edge above 0, ``synthetic`` an upper edge below 1, ``uncertain`` low < high).
- A VERIFIED assertion of AI origin (a C2PA manifest whose signature validated and chains to
  a configured trust anchor, carrying the IPTC ``trainedAlgorithmicMedia`` or
  ``compositeWithTrainedAlgorithmicMedia`` digital source type) makes the decision
  ``synthetic`` whatever the pixels say.
- Unverified metadata (XMP, PNG text, EXIF, watermark, an untrusted or broken manifest) only
  adds a reason: anyone can write it, and anyone can strip it.
- The absence of provenance proves nothing and adds no reason.
- A PDQ near-duplicate of an image decided ``synthetic`` never decides on its own: the image
  is scored, the match is a ``cache_match`` reason, and it may move a ``real`` pixel decision
  to ``uncertain`` (never to ``synthetic``): a real photo posted after an AI edit of it must
  not inherit the edit's verdict.

``decision`` is what a moderator acts on. A verdict's ``label`` is the binary cut at the
threshold (``score >= threshold``), kept for compatibility.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from provenance.findings import ProvenanceReport

__all__ = ["CacheMatch", "Decision", "DecisionPolicy", "Reason", "decide", "fallback_band"]

Decision = Literal["synthetic", "uncertain", "real"]


@dataclass(frozen=True, slots=True)
class DecisionPolicy:
    """Thresholds of the uncertain band and whether verified provenance overrides pixels."""

    uncertain_margin: float = 0.1
    """Half-width of the fallback band around the threshold (checkpoints without a band)."""
    uncertain_low: float | None = None
    """Scores below this are ``real`` (default: the checkpoint's band, else the fallback)."""
    uncertain_high: float | None = None
    """Scores at or above this are ``synthetic`` (default: the checkpoint's, else fallback)."""
    verified_ai_overrides: bool = True
    """A verified AI-origin assertion makes the decision ``synthetic``."""

    def band(
        self, threshold: float, stored: tuple[float, float] | None = None
    ) -> tuple[float, float]:
        """``(low, high)``: real below ``low``, synthetic from ``high``; ``stored``: the
        checkpoint's calibrated edges (None: the fallback around ``threshold``)."""
        low, high = (
            stored if stored is not None else fallback_band(threshold, self.uncertain_margin)
        )
        low = low if self.uncertain_low is None else self.uncertain_low
        high = high if self.uncertain_high is None else self.uncertain_high
        if low > high:
            raise ValueError(f"uncertain band is empty: low {low} > high {high}")
        return low, high

    def check(self, threshold: float, stored: tuple[float, float] | None = None) -> None:
        """Raise ``ValueError`` naming the setting when an outcome cannot be reached."""
        fallback = "decision.uncertain_margin (the checkpoint has no decision_band)"
        source = "the checkpoint's decision_band" if stored is not None else fallback
        low_from = "decision.uncertain_low" if self.uncertain_low is not None else source
        high_from = "decision.uncertain_high" if self.uncertain_high is not None else source
        try:
            low, high = self.band(threshold, stored)
        except ValueError:
            low, high = 1.0, 0.0
        problems = []
        if low <= 0.0:
            problems.append(f"{low_from} puts the real edge at {low:g}: 'real' is unreachable")
        if high >= 1.0:
            problems.append(
                f"{high_from} puts the synthetic edge at {high:g}: 'synthetic' is unreachable"
            )
        if low >= high:
            names = " and ".join(dict.fromkeys((low_from, high_from)))
            problems.append(f"{names} leave no uncertain band (low {low:g} >= high {high:g})")
        if problems:
            raise ValueError("; ".join(problems))


def fallback_band(threshold: float, margin: float) -> tuple[float, float]:
    """``threshold +- m``, ``m`` shrunk so the edges stay inside (0, 1) (see module doc)."""
    m = min(margin, threshold / 2, (1.0 - threshold) / 2)
    return threshold - m, threshold + m


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason behind a decision.

    ``kind``: ``pixel_score``, ``provenance``, ``provenance_unreadable``, ``cache_match`` (a
    PDQ near-duplicate of an image labelled synthetic) or ``exact_duplicate``. ``decisive``:
    this reason alone set the decision.
    """

    kind: str
    detail: str
    decisive: bool = False


@dataclass(frozen=True, slots=True)
class CacheMatch:
    """``exact``: the verdict reused an earlier one (same bytes or decoded pixels);
    ``near_duplicate``: the image was scored and is a PDQ near-duplicate of ``event_id``,
    labelled synthetic."""

    kind: Literal["exact", "near_duplicate"]
    distance: int = 0
    event_id: str | None = None


def decide(
    score: float,
    threshold: float,
    report: ProvenanceReport | None = None,
    policy: DecisionPolicy = DecisionPolicy(),
    cache_match: CacheMatch | None = None,
    stored: tuple[float, float] | None = None,
) -> tuple[Decision, list[Reason]]:
    """The decision for a pixel ``score`` and the provenance ``report`` of the same image;
    ``stored``: the checkpoint's calibrated band edges (see :meth:`DecisionPolicy.band`)."""
    low, high = policy.band(threshold, stored)
    pixel: Decision = "synthetic" if score >= high else "real" if score < low else "uncertain"
    override = policy.verified_ai_overrides and report is not None and report.verified_ai
    near = cache_match is not None and cache_match.kind == "near_duplicate"
    moved = near and pixel == "real" and not override
    decision: Decision = "synthetic" if override else "uncertain" if moved else pixel
    reasons = [
        Reason(
            "pixel_score",
            f"pixel score {score:.4f}: {pixel} (real below {low:.3f}, synthetic from {high:.3f})",
            decisive=not override and not moved,
        )
    ]
    if cache_match is not None:
        if near:
            detail = (
                f"PDQ distance {cache_match.distance} to event {cache_match.event_id or '?'}, "
                "labelled synthetic; this image was scored on its own"
                + ("; real moved to uncertain" if moved else "")
            )
            reasons.append(Reason("cache_match", detail, decisive=moved))
        else:
            reasons.append(Reason("exact_duplicate", "same image as an earlier one: score reused"))
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

"""What extraction reports: findings (kind, value, verified) and the sources it could not read."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["AI_SOURCE_TYPES", "Finding", "PdqHash", "ProvenanceReport", "Unreadable"]

AI_SOURCE_TYPES = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"})
"""IPTC digital source types that say "made (in part) by a generative model"."""

MAX_VALUE_CHARS = 300


def clip(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``text`` on one line, at most ``limit`` characters (an ellipsis marks a cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Finding:
    """One provenance signal.

    Attributes:
        source: where it came from: ``c2pa``, ``xmp``, ``png_text``, ``exif``, ``watermark``.
        kind: what it is, e.g. ``c2pa_manifest``, ``c2pa_digital_source_type``,
            ``iptc_digital_source_type``, ``a1111_parameters``, ``comfyui_workflow``,
            ``software``, ``creator_tool``, ``invisible_watermark``.
        value: the value, on one line, clipped.
        verified: True only when a cryptographic signature over the asset validated AND
            chains to a configured trust anchor (C2PA ``Trusted``); metadata is never verified.
        detail: extra context (validation state and failure codes, a cut notice).
    """

    source: str
    kind: str
    value: str
    verified: bool = False
    detail: str | None = None

    @property
    def says_ai(self) -> bool:
        """True when the finding asserts generative-AI origin (an IPTC AI source type)."""
        return self.kind.endswith("digital_source_type") and self.value in AI_SOURCE_TYPES


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A source that was present but could not be read within the bounds (or was skipped)."""

    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class PdqHash:
    """PDQ hash as HMA writes it: 64 lowercase hex characters, with its quality (0-100)."""

    hex: str
    quality: int

    def distance(self, other: PdqHash) -> int:
        """Hamming distance in bits (0-256)."""
        return (int(self.hex, 16) ^ int(other.hex, 16)).bit_count()


@dataclass(frozen=True, slots=True)
class ProvenanceReport:
    """Everything extracted from one image."""

    findings: tuple[Finding, ...] = ()
    unreadable: tuple[Unreadable, ...] = ()
    elapsed_ms: float = 0.0
    c2pa_state: str | None = None
    """C2PA validation state of the active manifest (``Trusted``, ``Valid``, ``Invalid``)."""
    pdq: PdqHash | None = None
    extra: dict[str, float] = field(default_factory=dict)
    """Per-source time in ms (for the benchmark)."""

    @property
    def verified_ai(self) -> bool:
        """A verified finding asserts AI origin."""
        return any(f.verified and f.says_ai for f in self.findings)

"""Provenance and decision parts of a verdict: findings, PDQ hash, cache match, reasons."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from schemas._types import NonNegativeMs, ShortStr, WireModel

__all__ = [
    "MAX_FINDINGS",
    "MAX_REASONS",
    "MAX_UNREADABLE",
    "CacheMatch",
    "Decision",
    "PdqInfo",
    "ProvenanceFinding",
    "ProvenanceInfo",
    "Reason",
    "UnreadableSource",
]

Decision = Literal["synthetic", "uncertain", "real"]
MAX_FINDINGS = 128
"""Most provenance findings one verdict carries (writers keep the first ones)."""
MAX_UNREADABLE = 32
"""Most unreadable sources one verdict carries."""
MAX_REASONS = 256
"""Most decision reasons one verdict carries."""
Text = Annotated[str, Field(max_length=1024)]


class ProvenanceFinding(WireModel):
    """One provenance signal found in the image's bytes or pixels."""

    source: ShortStr
    """``c2pa``, ``xmp``, ``png_text``, ``exif`` or ``watermark``."""
    kind: ShortStr
    """``c2pa_manifest``, ``c2pa_action``, ``c2pa_digital_source_type``,
    ``iptc_digital_source_type``, ``a1111_parameters``, ``comfyui_workflow``,
    ``comfyui_prompt``, ``software``, ``creator_tool``, ``invisible_watermark``, ..."""
    value: Text
    verified: bool = False
    """True only for a C2PA manifest whose signature validated and chains to a configured
    trust anchor (validation state ``Trusted``); plain metadata is never verified."""
    detail: Text | None = None


class UnreadableSource(WireModel):
    """A source that was present but unreadable within the size and time bounds, or skipped."""

    source: ShortStr
    reason: Text


class ProvenanceInfo(WireModel):
    """What provenance extraction found in one image."""

    findings: Annotated[list[ProvenanceFinding], Field(max_length=MAX_FINDINGS)] = Field(
        default_factory=list
    )
    unreadable: Annotated[list[UnreadableSource], Field(max_length=MAX_UNREADABLE)] = Field(
        default_factory=list
    )
    c2pa_state: ShortStr | None = None
    """Validation state of the active C2PA manifest: ``Trusted``, ``Valid`` or ``Invalid``."""
    elapsed_ms: NonNegativeMs = 0.0


class PdqInfo(WireModel):
    """PDQ perceptual hash in hasher-matcher-actioner's form."""

    hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    quality: Annotated[int, Field(ge=0, le=100)]
    """PDQ quality; HMA ignores hashes under 50 (flat, featureless images)."""


class CacheMatch(WireModel):
    """An exact copy served from the verdict cache, or a near-duplicate of a synthetic one."""

    kind: Literal["exact", "near_duplicate"]
    """``exact``: the verdict reused an earlier one (same bytes or same decoded pixels).
    ``near_duplicate``: the image was scored by the model on its own and is a PDQ
    near-duplicate of an earlier image labelled synthetic (``event_id``, score at or above its
    threshold); it may move a ``real`` decision to ``uncertain``, never to ``synthetic``."""
    distance: Annotated[int, Field(ge=0, le=256)] = 0
    """PDQ Hamming distance (0 for an exact sha256 match)."""
    event_id: ShortStr | None = None
    """``id`` of the matched earlier image event (near duplicates)."""


class Reason(WireModel):
    """One reason behind the decision."""

    kind: ShortStr
    """``pixel_score``, ``provenance``, ``provenance_unreadable``, ``cache_match`` (a PDQ
    near-duplicate of an image labelled synthetic), ``exact_duplicate`` (``near_duplicate``
    from writers that reused a near-duplicate's verdict)."""
    detail: Text
    decisive: bool = False
    """This reason alone set the decision."""

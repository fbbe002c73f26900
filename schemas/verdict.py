"""The verdict: label, score and patch evidence for one image, reproducible from its fields."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, FiniteFloat, model_validator

from schemas._types import (
    NonEmptyStr,
    NonNegativeMs,
    Sha256Hex,
    ShortStr,
    UnitFloat,
    UtcDatetime,
    WireModel,
)
from schemas.image_event import Metadata
from schemas.provenance import (
    MAX_REASONS,
    CacheMatch,
    Decision,
    PdqInfo,
    ProvenanceInfo,
    Reason,
)

VERDICT_EVENT_TYPE = "io.synthscan.verdict.v1"
"""CloudEvents ``type`` of verdict records."""

Label = Literal["synthetic", "real"]


def label_for(score: float, threshold: float) -> Label:
    """The label a verdict must carry: ``synthetic`` iff ``score >= threshold``."""
    return "synthetic" if score >= threshold else "real"


class Box(WireModel):
    """An axis-aligned box in ORIGINAL image pixels, half-open: ``x0 <= x < x1``."""

    x0: Annotated[int, Field(ge=0)]
    y0: Annotated[int, Field(ge=0)]
    x1: Annotated[int, Field(ge=1)]
    y1: Annotated[int, Field(ge=1)]

    @model_validator(mode="before")
    @classmethod
    def _from_sequence(cls, value: Any) -> Any:
        """Also accept ``(x0, y0, x1, y1)`` as a 4-sequence (the detector's tuple form)."""
        if isinstance(value, list | tuple) and len(value) == 4:
            return dict(zip(("x0", "y0", "x1", "y1"), value, strict=True))
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Box:
        if not (self.x0 < self.x1 and self.y0 < self.y1):
            raise ValueError(f"box must have x0 < x1 and y0 < y1, got {self.as_tuple()}")
        return self

    def as_tuple(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)``."""
        return (self.x0, self.y0, self.x1, self.y1)


class Patch(WireModel):
    """One local patch the detector attended to."""

    rank: Annotated[int, Field(ge=1, le=64)]
    """1 = highest attention."""
    box: Box
    """Where the patch is, in original pixels."""
    window: Literal[3, 2, 0]
    """Sliding-window size on the feature map that produced the patch (3x3 or 2x2); 0 for the
    fixed crops of the ``rsz448`` ablation (four corners + centre), which have no window."""
    activation: FiniteFloat
    """Mean activation of the window (how strongly it stood out)."""
    attention: UnitFloat
    """Weight of this patch in the global+local fusion."""


class ImageInfo(WireModel):
    """The image as decoded."""

    sha256: Sha256Hex
    """SHA-256 of the image bytes (the key of the latest-verdict topic)."""
    width: Annotated[int, Field(ge=1)]
    height: Annotated[int, Field(ge=1)]
    format: ShortStr
    """Decoded format as named by Pillow: ``JPEG``, ``PNG``, ``WEBP``, ..."""
    size_bytes: Annotated[int, Field(ge=0)] | None = None


class AdapterStamp(WireModel):
    """One few-shot adapter loaded on top of the base weights (see docs/adaptation.md)."""

    generator: ShortStr
    """The generator the adapter was taught."""
    sha256: Sha256Hex
    """SHA-256 of the adapter file."""
    method: ShortStr
    """``lora``, ``head`` or ``full``."""
    threshold: UnitFloat
    """The adapter's own decision threshold."""


class GeneratorScore(WireModel):
    """One head's score: the base model (``generator`` = ``base``) or an adapter."""

    generator: ShortStr
    score: UnitFloat
    threshold: UnitFloat
    is_synthetic: bool
    adapter_sha256: Sha256Hex | None = None


class Attribution(WireModel):
    """Which known generator the image looks like, from the base and its adapters.

    The verdict's ``score``/``label`` are the combined decision: synthetic iff any head is at or
    over its own threshold (each head's logit is shifted so its threshold meets the base's,
    and the maximum is taken)."""

    generator: ShortStr | None = None
    """The adapter's generator that decided the label; None: the base (or real)."""
    scores: Annotated[list[GeneratorScore], Field(max_length=64)]


class ModelStamp(WireModel):
    """Everything needed to reproduce the score: which weights, how configured, on what."""

    name: ShortStr
    version: ShortStr
    weights_sha256: Sha256Hex
    threshold: UnitFloat
    preprocessing_version: ShortStr
    torch_version: ShortStr
    torchvision_version: ShortStr
    device: ShortStr
    """``cpu``, ``cuda`` or ``cuda:N``."""
    precision: ShortStr
    """``fp32``, ``bf16`` or ``fp16``."""
    arch: ShortStr | None = None
    backbone: ShortStr | None = None
    patch_strategy: ShortStr | None = None
    adapters: Annotated[list[AdapterStamp], Field(max_length=64)] | None = None
    """Few-shot adapters served with the base weights; None when there are none."""


class SourceCoordinates(WireModel):
    """Where the input message was in Kafka."""

    topic: ShortStr
    partition: Annotated[int, Field(ge=0)]
    offset: Annotated[int, Field(ge=0)]
    timestamp_ms: int | None = None
    """Kafka message timestamp in ms since the epoch; None when the broker gave none."""


class Timings(WireModel):
    """Time spent on this message, per stage, in milliseconds."""

    queue_ms: NonNegativeMs
    """From the Kafka timestamp to the start of processing."""
    fetch_ms: NonNegativeMs = 0.0
    """Claim-check download (0 for inline images)."""
    decode_ms: NonNegativeMs
    inference_ms: NonNegativeMs
    """The detector batch this image was part of."""
    batch_size: Annotated[int, Field(ge=1)] | None = None
    """Size of that batch."""


class ReplayInfo(WireModel):
    """Set on verdicts produced by replaying an old topic through a (possibly newer) model."""

    run_id: ShortStr
    model_version: ShortStr
    started_at: UtcDatetime


class Verdict(WireModel):
    """The detector's decision on one image event."""

    schema_version: Literal[1] = 1
    """Major version of this payload; additive changes keep it."""
    verdict_id: ShortStr
    """Unique id of this verdict (a UUID); also its CloudEvent id."""
    event_id: ShortStr
    """``id`` of the image event."""
    content_id: NonEmptyStr
    """Content id of the event (falls back to its subject, then its id)."""
    tenant: ShortStr | None = None
    platform: ShortStr | None = None
    label: Label
    """The binary cut at the threshold: ``synthetic`` iff ``score >= threshold``. Kept for
    compatibility; a moderator acts on ``decision``."""
    score: UnitFloat
    """P(synthetic) from the detector."""
    threshold: UnitFloat
    """Decision threshold in force (normally the model's calibrated one)."""
    patches: Annotated[list[Patch], Field(max_length=64)]
    """Patch evidence, ordered by rank (empty for a global-only model)."""
    global_attention: UnitFloat
    """Weight of the global (whole-image) branch in the fusion."""
    image: ImageInfo
    model: ModelStamp
    source: SourceCoordinates
    timings: Timings
    produced_at: UtcDatetime
    cached: bool = False
    """True when the score was taken from the verdict cache: an already-seen image (same
    bytes or same decoded pixels) and model. (Older writers also reused the
    score of a PDQ near-duplicate; now a near-duplicate is scored, ``cached`` false.)"""
    cache_match: CacheMatch | None = None
    """An exact cache hit, or the PDQ near-duplicate of an image labelled synthetic that this
    scored image resembles; None otherwise."""
    decision: Decision | None = None
    """What a moderator acts on: ``synthetic``, ``uncertain`` or ``real``, from the score and
    the model's calibrated band (real below its lower edge, synthetic from its upper edge; the
    edges are in the ``pixel_score`` reason); a verified AI-origin C2PA assertion makes it
    ``synthetic`` regardless of the score; a near-duplicate of a synthetic verdict may move
    ``real`` to ``uncertain``. None from writers that predate it."""
    reasons: Annotated[list[Reason], Field(max_length=MAX_REASONS)] = Field(default_factory=list)
    """Why: the pixel score, each provenance finding, a duplicate match."""
    provenance: ProvenanceInfo | None = None
    """Provenance findings (C2PA, IPTC/XMP, PNG text, EXIF, watermark)."""
    pdq: PdqInfo | None = None
    """PDQ perceptual hash of the image."""
    replay: ReplayInfo | None = None
    attribution: Attribution | None = None
    """Per-generator scores when the model carries adapters; None otherwise."""
    metadata: Metadata = Field(default_factory=dict)
    """The event's metadata, passed through for the audit trail."""

    @model_validator(mode="after")
    def _consistent(self) -> Verdict:
        expected = label_for(self.score, self.threshold)
        if self.label != expected:
            raise ValueError(
                f"label {self.label!r} contradicts score {self.score} vs threshold "
                f"{self.threshold} (expected {expected!r}; use schemas.label_for)"
            )
        ranks = [p.rank for p in self.patches]
        if ranks != list(range(1, len(ranks) + 1)):
            raise ValueError(f"patch ranks must be 1..n in order, got {ranks}")
        for p in self.patches:
            if p.box.x1 > self.image.width or p.box.y1 > self.image.height:
                raise ValueError(
                    f"patch {p.rank} box {p.box.as_tuple()} exceeds the image "
                    f"{self.image.width}x{self.image.height}"
                )
        return self

    @property
    def key(self) -> bytes:
        """Kafka key: the image sha256 (hex, ASCII)."""
        return self.image.sha256.encode("ascii")

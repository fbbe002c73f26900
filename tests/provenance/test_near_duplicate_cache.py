"""The verdict cache's near-duplicate tier with real images and PDQ hashes."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from prometheus_client import CollectorRegistry

from consumer.pipeline.verdict_cache import (
    CachedPrediction,
    MatchedPrediction,
    pixel_digest,
    with_cache,
)
from consumer.settings import CacheSettings
from detector import PatchEvidence, Prediction
from provenance import pdq_hash


@dataclass(frozen=True)
class _Info:
    name: str = "m"
    version: str = "1"
    weights_sha256: str = "w"
    threshold: float = 0.5


@dataclass
class _Image:
    sha256: str
    width: int
    height: int


@dataclass
class _Pixels(_Image):
    pixels: Any


class _Model:
    info: Any = _Info()

    def __init__(self, synthetic: bool = True) -> None:
        self.calls = 0
        self.synthetic = synthetic

    def predict(self, images: Any) -> list[Prediction]:
        self.calls += len(images)
        return [
            Prediction(
                0.8 if self.synthetic else 0.2,
                self.synthetic,
                0.5,
                [PatchEvidence(1, (0, 0, im.width, im.height), 3, 1.0, 0.5)],
                0.5,
                im.width,
                im.height,
            )
            for im in images
        ]


def test_a_resized_copy_of_a_fake_is_scored_and_carries_the_match() -> None:
    """A near-duplicate never reuses a verdict: it is scored (its own boxes and size) and
    the match to the earlier synthetic image comes along as a reason."""
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    half = photo.resize((256, 256))
    buf = io.BytesIO()
    Image.fromarray(data.coffee()).save(buf, "PNG")
    other = Image.open(buf).convert("RGB")
    registry = CollectorRegistry()
    model = _Model()
    predictor = with_cache(model, CacheSettings(), registry)
    cache = predictor.cache
    for sha, img, event in (("a", photo, "ev-a"), ("b", half, "ev-b"), ("c", other, "ev-c")):
        cache.note_pdq(sha, pdq_hash(np.asarray(img)), event)
    first = predictor.predict([_Image("a", 512, 512)])[0]
    again = predictor.predict([_Image("b", 256, 256)])[0]
    unrelated = predictor.predict([_Image("c", 600, 400)])[0]
    assert not isinstance(first, (CachedPrediction, MatchedPrediction))
    assert isinstance(again, MatchedPrediction) and not again.cached
    assert again.matched_event_id == "ev-a" and 0 < again.distance <= 40
    assert again.patches[0].box == (0, 0, 256, 256) and (again.width, again.height) == (256, 256)
    assert not isinstance(unrelated, (CachedPrediction, MatchedPrediction))
    assert model.calls == 3  # every image scored
    sample = registry.get_sample_value
    assert sample("synthscan_verdict_cache_near_duplicate_hits_total") == 1
    assert sample("synthscan_verdict_cache_hit_ratio") == 0.0
    exact = predictor.predict([_Image("a", 512, 512)])[0]
    assert isinstance(exact, CachedPrediction) and exact.match == "exact"
    copy_of_b = predictor.predict([_Image("b", 256, 256)])[0]  # exact copy keeps the match
    assert isinstance(copy_of_b, MatchedPrediction) and copy_of_b.cached
    assert model.calls == 3


def test_same_decoded_pixels_with_other_bytes_is_an_exact_hit() -> None:
    import torch

    pixels = torch.randint(0, 255, (3, 16, 16), dtype=torch.uint8)
    model = _Model()
    predictor = with_cache(model, CacheSettings())
    images = [
        _Pixels("a", 16, 16, pixels),
        _Pixels("b", 16, 16, pixels.clone()),
        _Pixels("c", 16, 16, pixels.flip(2)),
    ]
    for image in images:  # the provenance step notes each digest in the decode pool
        predictor.cache.note_pixels(image.sha256, pixel_digest(image))
    predictor.predict([images[0]])
    same = predictor.predict([images[1]])[0]
    other = predictor.predict([images[2]])[0]
    assert isinstance(same, CachedPrediction) and not isinstance(other, CachedPrediction)
    assert model.calls == 2


def test_a_near_copy_of_a_real_photo_is_scored_not_reused() -> None:
    """An AI reconstruction of a real photo is a near-duplicate to PDQ (the demo's
    chelsea and its 2x decoder copy are); reusing 'real' would let it through."""
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    model = _Model(synthetic=False)
    predictor = with_cache(model, CacheSettings())
    predictor.cache.note_pdq("a", pdq_hash(np.asarray(photo)))
    predictor.cache.note_pdq("b", pdq_hash(np.asarray(photo.resize((256, 256)))))
    predictor.predict([_Image("a", 512, 512)])
    copy = predictor.predict([_Image("b", 256, 256)])[0]
    assert not isinstance(copy, (CachedPrediction, MatchedPrediction)) and model.calls == 2
    exact = predictor.predict([_Image("a", 512, 512)])[0]  # the same bytes still hit
    assert isinstance(exact, CachedPrediction) and exact.match == "exact"


def test_the_near_duplicate_tier_can_be_off() -> None:
    predictor = with_cache(_Model(), CacheSettings(near_duplicate=False))
    photo = np.zeros((64, 64, 3), np.uint8)
    predictor.cache.note_pdq("a", pdq_hash(photo))  # a no-op without the tier
    assert predictor.cache._near is None

"""The verdict cache's near-duplicate tier with real images and PDQ hashes."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from PIL import Image
from prometheus_client import CollectorRegistry

from consumer.settings import CacheSettings
from consumer.verdict_cache import CachedPrediction, with_cache
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


def test_a_resized_copy_reuses_the_verdict_with_scaled_boxes_and_counts_it() -> None:
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
    for sha, img in (("a", photo), ("b", half), ("c", other)):
        cache.note_pdq(sha, pdq_hash(np.asarray(img)))
    first = predictor.predict([_Image("a", 512, 512)])[0]
    again = predictor.predict([_Image("b", 256, 256)])[0]
    unrelated = predictor.predict([_Image("c", 600, 400)])[0]
    assert not isinstance(first, CachedPrediction)
    assert isinstance(again, CachedPrediction) and again.match == "near_duplicate"
    assert 0 < again.distance <= 40
    assert again.patches[0].box == (0, 0, 256, 256) and (again.width, again.height) == (256, 256)
    assert not isinstance(unrelated, CachedPrediction)
    assert model.calls == 2
    sample = registry.get_sample_value
    assert sample("synthscan_verdict_cache_near_duplicate_hits_total") == 1
    assert sample("synthscan_verdict_cache_hit_ratio") == pytest.approx(1 / 3)
    exact = predictor.predict([_Image("a", 512, 512)])[0]
    assert isinstance(exact, CachedPrediction) and exact.match == "exact"


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
    assert not isinstance(copy, CachedPrediction) and model.calls == 2
    exact = predictor.predict([_Image("a", 512, 512)])[0]  # the same bytes still hit
    assert isinstance(exact, CachedPrediction) and exact.match == "exact"


def test_the_near_duplicate_tier_can_be_off() -> None:
    predictor = with_cache(_Model(), CacheSettings(near_duplicate=False))
    photo = np.zeros((64, 64, 3), np.uint8)
    predictor.cache.note_pdq("a", pdq_hash(photo))  # a no-op without the tier
    assert predictor.cache._near is None

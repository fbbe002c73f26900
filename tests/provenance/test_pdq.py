"""PDQ: the reference vector of HMA's own test, near-duplicates found, unrelated images not."""

from __future__ import annotations

import io
import itertools

import numpy as np
from PIL import Image
from provenance_support import HMA_RANDOM_IMAGE_PDQ, encode, hma_random_image

from provenance import PdqHash, pdq_hash
from provenance.pdq_index import PdqIndex

DEFAULT_DISTANCE = 40  # consumer.settings.CacheSettings.near_duplicate_distance


def test_the_hma_reference_vector() -> None:
    """python-threatexchange's test PNG hashes to the same hex as in HMA's test."""
    image = Image.open(io.BytesIO(hma_random_image()))
    assert image.size == (26, 28)
    result = pdq_hash(np.asarray(image.convert("RGB")))
    assert result.hex == HMA_RANDOM_IMAGE_PDQ
    assert result.quality == 100


def test_the_default_matches_the_consumer_setting() -> None:
    from consumer.settings import CacheSettings

    assert CacheSettings().near_duplicate_distance == DEFAULT_DISTANCE


def _photos() -> dict[str, Image.Image]:
    from skimage import data

    return {
        name: Image.fromarray(getattr(data, name)()).convert("RGB")
        for name in ("astronaut", "chelsea", "coffee", "rocket", "camera")
    }


def _variants(image: Image.Image) -> dict[str, Image.Image]:
    w, h = image.size
    cut = (1 - 0.95**0.5) / 2  # 5 % of the area, off the borders
    dx, dy = round(w * cut), round(h * cut)
    return {
        "half": image.resize((w // 2, h // 2), Image.BILINEAR),
        "jpeg70": Image.open(io.BytesIO(encode(image, "JPEG", quality=70))).convert("RGB"),
        "crop5": image.crop((dx, dy, w - dx, h - dy)),
    }


def test_near_duplicates_are_within_the_distance_and_unrelated_images_are_not() -> None:
    photos = _photos()
    hashes = {name: pdq_hash(np.asarray(img)) for name, img in photos.items()}
    distances = {}
    for name, image in photos.items():
        for variant, changed in _variants(image).items():
            distances[(name, variant)] = hashes[name].distance(pdq_hash(np.asarray(changed)))
    assert max(distances.values()) <= DEFAULT_DISTANCE, distances
    unrelated = [a.distance(b) for a, b in itertools.combinations(hashes.values(), 2)]
    assert min(unrelated) > 2 * DEFAULT_DISTANCE, unrelated


def test_the_index_finds_the_nearest_within_the_distance_and_is_bounded() -> None:
    index: PdqIndex[str] = PdqIndex(capacity=2, max_distance=8)
    base = int("ab" * 32, 16)
    a = PdqHash(f"{base:064x}", 100)
    near = PdqHash(f"{base ^ 0b111:064x}", 100)  # 3 bits off
    far = PdqHash(f"{base ^ ((1 << 100) - 1):064x}", 100)
    assert index.add(a, "a") and index.add(far, "far")
    assert index.nearest(near) == [(3, "a")]
    assert not index.add(PdqHash(f"{base:064x}", 10), "flat")  # low quality: ignored
    assert index.nearest(PdqHash(near.hex, 10)) == []
    index.add(PdqHash(f"{~base & ((1 << 256) - 1):064x}", 100), "c")  # evicts "a" (oldest)
    assert len(index) == 2 and index.nearest(near) == []

"""Each outcome, ``synthetic | uncertain | real``, is reachable from pixels alone with the shipped
default checkpoint and its stored band (or the documented fallback when it stores none).

Written against whatever checkpoint ``DEFAULT_CHECKPOINT`` names, never against hard-coded
scores: a pool of photos and resampled copies is scored, the lowest must decide ``real`` and
the highest ``synthetic``; ``uncertain`` is found in the pool or, failing that, on the pixel
blend between those two images (bisection: the score moves continuously with the pixels).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from consumer.settings import DEFAULT_CHECKPOINT
from detector import Detector
from provenance import DecisionPolicy, decide

SIZE = (256, 256)


def _pool() -> dict[str, Image.Image]:
    from skimage import data

    images = {}
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        photo = Image.fromarray(getattr(data, name)()).convert("RGB")
        images[name] = photo
        images[f"{name}-resized"] = photo.resize(SIZE)
        half = photo.resize((photo.width // 2, photo.height // 2))
        images[f"{name}-nearest2x"] = half.resize(photo.size, Image.Resampling.NEAREST)
    return images


@pytest.fixture(scope="module")
def shipped() -> dict[str, Any]:
    detector = Detector.from_checkpoint(DEFAULT_CHECKPOINT, device="cpu", precision="fp32")
    info = detector.info
    policy = DecisionPolicy()
    policy.check(info.threshold, info.decision_band)  # the service would start with it
    pool = _pool()
    scores = dict(zip(pool, (p.score for p in detector.predict(list(pool.values()))), strict=True))
    return {"detector": detector, "info": info, "pool": pool, "scores": scores, "policy": policy}


def _decision(shipped: dict[str, Any], score: float) -> str:
    info = shipped["info"]
    return decide(score, info.threshold, None, shipped["policy"], None, info.decision_band)[0]


def test_real_is_reachable_from_pixels(shipped: dict[str, Any]) -> None:
    name = min(shipped["scores"], key=shipped["scores"].get)
    assert _decision(shipped, shipped["scores"][name]) == "real", shipped["scores"]


def test_synthetic_is_reachable_from_pixels(shipped: dict[str, Any]) -> None:
    name = max(shipped["scores"], key=shipped["scores"].get)
    assert _decision(shipped, shipped["scores"][name]) == "synthetic", shipped["scores"]


def test_uncertain_is_reachable_from_pixels(shipped: dict[str, Any]) -> None:
    scores: dict[str, float] = shipped["scores"]
    found = [n for n, s in scores.items() if _decision(shipped, s) == "uncertain"]
    if found:
        return
    low = np.asarray(shipped["pool"][min(scores, key=scores.get)].resize(SIZE), np.float32)
    high = np.asarray(shipped["pool"][max(scores, key=scores.get)].resize(SIZE), np.float32)
    a, b = 0.0, 1.0  # decision(blend(a)) == real, decision(blend(b)) == synthetic
    seen = []
    for _ in range(16):
        mid = (a + b) / 2
        blend = Image.fromarray(((1 - mid) * low + mid * high).round().astype(np.uint8))
        score = shipped["detector"].predict([blend])[0].score
        seen.append((mid, score))
        decision = _decision(shipped, score)
        if decision == "uncertain":
            return
        a, b = (mid, b) if decision == "real" else (a, mid)
    pytest.fail(f"no blend decided uncertain: {seen}")

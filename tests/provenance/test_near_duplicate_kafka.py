"""Near-duplicates never accuse on their own (issue 20), through the live service and a broker.

A real photo is published after an AI copy of it (judged synthetic) and after its JPEG
re-upload: both are PDQ near-duplicates of the copy, both are SCORED, and their decisions come
from their own scores (``real`` pixels become ``uncertain``, never ``synthetic``) with the
match as a ``cache_match`` reason. An exact re-upload of the photo's bytes, and a copy with the
same pixels but other bytes, reuse the photo's verdict without being scored.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import replace

import pytest
from kafka_support import create_topics, unique
from PIL import Image, ImageFilter
from PIL.PngImagePlugin import PngInfo
from provenance_support import encode
from test_provenance_kafka import _Reader, _send

from consumer import Service, ServiceSettings
from consumer.settings import DEFAULT_CHECKPOINT
from detector import DecodedImage, Detector, ModelInfo, Prediction

pytestmark = pytest.mark.kafka


class _ScoresBySha:
    """The shipped checkpoint's detector with its scores replaced by a table (by sha256): the
    cache policy, not the model, is under test."""

    def __init__(self, scores: dict[str, float]) -> None:
        self._model = Detector.from_checkpoint(DEFAULT_CHECKPOINT, device="cpu", precision="fp32")
        self.info: ModelInfo = self._model.info
        self.scores = scores
        self.scored: list[str] = []

    def predict(self, images: Sequence[DecodedImage]) -> list[Prediction]:
        out = []
        for image, pred in zip(images, self._model.predict(list(images)), strict=True):
            score = self.scores[image.sha256]
            self.scored.append(image.sha256)
            out.append(replace(pred, score=score, is_synthetic=score >= pred.threshold))
        return out


def _png_with_text(image: Image.Image) -> bytes:
    info = PngInfo()
    info.add_text("Comment", "same pixels, other bytes")
    buf = io.BytesIO()
    image.save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def test_a_photo_after_its_ai_copy_and_its_reupload_gets_its_own_decision(
    kafka_bootstrap: str,
) -> None:
    from skimage import data as skdata

    photo = Image.fromarray(skdata.astronaut()).resize((256, 256))
    # stand-in for an autoencoder reconstruction: the photo through a blur and a 2x decoder
    ai_copy = photo.filter(ImageFilter.GaussianBlur(1.5)).resize((128, 128)).resize((256, 256))
    images = {
        "ai-copy": encode(ai_copy, "PNG"),
        "reupload": encode(photo.resize((128, 128)), "JPEG", quality=70),
        "photo": encode(photo, "PNG"),
        "photo-again": encode(photo, "PNG"),  # the exact same bytes
        "photo-pixels": _png_with_text(photo),  # same decoded pixels, other bytes
    }
    assert images["photo-again"] == images["photo"] != images["photo-pixels"]
    sha = {name: hashlib.sha256(data).hexdigest() for name, data in images.items()}
    detector = _ScoresBySha({})
    band = detector.info.decision_band
    assert band is not None
    real_below, synthetic_from = band
    synthetic = (synthetic_from + 1.0) / 2  # inside each outcome of the shipped band
    real = real_below / 2
    detector.scores.update(
        {sha["ai-copy"]: synthetic, sha["reupload"]: real, sha["photo"]: real / 2}
    )
    topic, verdicts = unique("nd-images"), unique("nd-verdicts")
    create_topics(kafka_bootstrap, {topic: 1, verdicts: 1, f"{verdicts}.dlq": 1})
    settings = ServiceSettings(
        kafka={  # type: ignore[arg-type]
            "bootstrap_servers": kafka_bootstrap,
            "group_id": unique("nd"),
            "input_topics": [topic],
            "verdict_topic": verdicts,
            "dead_letter_topic": f"{verdicts}.dlq",
            "commit_interval_s": 0.2,
            "statistics_interval_ms": 0,
        },
        model={  # type: ignore[arg-type]
            "checkpoint": DEFAULT_CHECKPOINT,
            "device": "cpu",
            "warmup": False,
            "max_batch_size": 1,
        },
        batching={"max_wait_ms": 5, "fetch_workers": 1},  # type: ignore[arg-type]
        http={"enabled": False},  # type: ignore[arg-type]
        shutdown={"grace_s": 10},  # type: ignore[arg-type]
    )
    service = Service(settings, detector=detector)
    thread = service.start()
    reader = _Reader(kafka_bootstrap, [verdicts, f"{verdicts}.dlq"])
    try:
        assert service.wait_ready(60), service.error
        for name, data in images.items():  # one at a time: arrival order is the point
            _send(kafka_bootstrap, topic, {name: data})
            reader.until({name}, 60)
    finally:
        reader.consumer.close()
        service.stop()
        thread.join(30)

    got = reader.verdicts
    assert set(got) == set(images), (reader.dead, band)
    assert got["ai-copy"].decision == "synthetic" and got["ai-copy"].cache_match is None
    for name in ("reupload", "photo"):
        v = got[name]
        assert not v.cached and v.score == detector.scores[sha[name]]  # scored on its own
        assert v.decision == "uncertain"  # its pixels say real; the match only casts doubt
        assert "real (" in v.reasons[0].detail and v.reasons[0].kind == "pixel_score"
        match = v.cache_match
        assert match is not None and match.kind == "near_duplicate"
        assert match.event_id == "ai-copy" and 0 < match.distance <= 40
        assert any(r.kind == "cache_match" and "ai-copy" in r.detail for r in v.reasons)
    for name in ("photo-again", "photo-pixels"):  # exact copies reuse the photo's verdict
        v = got[name]
        assert v.cached and v.score == got["photo"].score
        assert v.decision == got["photo"].decision and v.cache_match == got["photo"].cache_match
    assert sorted(detector.scored) == sorted(sha[n] for n in ("ai-copy", "reupload", "photo"))
    sample = service.metrics.registry.get_sample_value
    assert sample("synthscan_verdict_cache_near_duplicate_hits_total") == 2
    assert sample("synthscan_verdict_cache_hits_total") == 2

"""Provenance, PDQ and the decision through the live service and a real broker.

Signed, generator-tagged, near-duplicate and hostile images go through one running service:
every one gets its verdict (or a dead letter when the image itself is bad) with its findings
within the time bound, and the consumer keeps going.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from kafka_support import create_topics, unique
from PIL import Image
from provenance_support import A1111, Pki, c2pa_sign, encode, photo, png_with_chunks, text_chunk
from test_hostile import _deep_json, _deep_xmp, _garbage_c2pa_jpeg, _lying_length, _ztxt_bomb

from consumer import Service, ServiceSettings
from consumer.replay.cli import ReplayOptions, run_replay
from consumer.replay.output import read_jsonl
from schemas import (
    DeadLetter,
    ErrorCode,
    ImageData,
    ImageEvent,
    Verdict,
    decode_dead_letter,
    decode_verdict,
    encode_image_event,
)

pytestmark = pytest.mark.kafka

CHECKPOINT = Path(__file__).resolve().parents[2] / "detector/checkpoints"
CHECKPOINT = CHECKPOINT / "demo-glff-mobilenet_v2.safetensors"


def _send(bootstrap: str, topic: str, images: dict[str, bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for name, data in images.items():
        event = ImageEvent(id=name, source="/tests/provenance", data=ImageData(data=data))
        value, headers = encode_image_event(event, mode="binary", inline="raw")
        producer.produce(topic, value=value, key=name.encode(), headers=list(headers))
    assert producer.flush(30) == 0


class _Reader:
    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": unique("prov-reader"),
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        self.consumer.subscribe(topics)
        self.verdicts: dict[str, Verdict] = {}
        self.dead: dict[str, DeadLetter] = {}

    def until(self, names: set[str], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not names <= set(self.verdicts) | set(self.dead) and time.monotonic() < deadline:
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error() is not None:
                continue
            if msg.topic().endswith(".dlq"):  # type: ignore[union-attr]
                dead = decode_dead_letter(msg.value(), msg.headers())
                self.dead[(dead.original.key or b"").decode()] = dead
            else:
                verdict = decode_verdict(msg.value(), msg.headers())
                self.verdicts[verdict.event_id] = verdict


def test_signals_in_verdicts_and_hostile_metadata_never_stops_the_consumer(
    kafka_bootstrap: str, pki: Pki, anchors: Path, tmp_path: Path
) -> None:
    from skimage import data as skdata

    topic, verdicts = unique("prov-images"), unique("prov-verdicts")
    create_topics(kafka_bootstrap, {topic: 1, verdicts: 1, f"{verdicts}.dlq": 1})
    original = Image.fromarray(skdata.astronaut()).resize((256, 256))
    first = {
        "signed": c2pa_sign(encode(photo(1), "JPEG", quality=90), "image/jpeg", pki.signer),
        "a1111": png_with_chunks(photo(2), [text_chunk("parameters", A1111)]),
        "original": encode(original, "PNG"),
    }
    hostile = {
        "deep_xmp": _deep_xmp(),
        "deep_json": _deep_json(),
        "ztxt_bomb": _ztxt_bomb(),
        "garbage_c2pa": _garbage_c2pa_jpeg(),
        "lying_length": _lying_length(),
    }
    resized = original.resize((128, 128))
    later = {
        **hostile,
        "near_dup": encode(resized, "JPEG", quality=85),
        "after": encode(photo(9), "PNG"),
    }
    settings = ServiceSettings(
        kafka={  # type: ignore[arg-type]
            "bootstrap_servers": kafka_bootstrap,
            "group_id": unique("prov"),
            "input_topics": [topic],
            "verdict_topic": verdicts,
            "dead_letter_topic": f"{verdicts}.dlq",
            "commit_interval_s": 0.2,
            "statistics_interval_ms": 0,
        },
        model={  # type: ignore[arg-type]
            "checkpoint": CHECKPOINT,
            "device": "cpu",
            "precision": "fp32",
            "warmup": False,
            "max_batch_size": 4,
        },
        batching={"max_wait_ms": 20, "fetch_workers": 2},  # type: ignore[arg-type]
        http={"enabled": False},  # type: ignore[arg-type]
        shutdown={"grace_s": 10},  # type: ignore[arg-type]
        provenance={"trust_anchors": anchors},  # type: ignore[arg-type]
    )
    service = Service(settings)
    thread = service.start()
    reader = _Reader(kafka_bootstrap, [verdicts, f"{verdicts}.dlq"])
    try:
        assert service.wait_ready(90), service.error
        _send(kafka_bootstrap, topic, first)
        reader.until(set(first), 90)
        _send(kafka_bootstrap, topic, later)
        reader.until(set(later), 90)
    finally:
        reader.consumer.close()
        service.stop()
        thread.join(30)

    got = reader.verdicts
    assert set(got) | set(reader.dead) == set(first) | set(later)
    signed = got["signed"]
    assert signed.decision == "synthetic" and signed.provenance is not None
    assert signed.provenance.c2pa_state == "Trusted"
    assert any(
        f.verified and f.value == "trainedAlgorithmicMedia" for f in signed.provenance.findings
    )
    assert any(r.decisive and r.kind == "provenance" for r in signed.reasons)
    assert signed.label == ("synthetic" if signed.score >= signed.threshold else "real")

    assert [f.kind for f in got["a1111"].provenance.findings] == ["a1111_parameters"]  # type: ignore[union-attr]
    assert got["original"].pdq is not None and got["original"].pdq.quality >= 50
    near = got["near_dup"]  # scored on its own; a match only to an image labelled synthetic
    assert not near.cached and all(p.box.x1 <= 128 and p.box.y1 <= 128 for p in near.patches)
    if got["original"].label == "synthetic":
        assert near.cache_match is not None and near.cache_match.kind == "near_duplicate"
        assert near.cache_match.event_id == "original" and near.cache_match.distance <= 40
        assert any(r.kind == "cache_match" for r in near.reasons)
        assert near.decision != "real"
    else:
        assert near.cache_match is None

    for name in hostile:
        if name in reader.dead:  # the image itself is broken: a dead letter, never a crash
            assert reader.dead[name].code == ErrorCode.IMAGE_DECODE_ERROR
            continue
        verdict = got[name]
        assert verdict.provenance is not None and verdict.provenance.elapsed_ms < 10_000
        assert verdict.decision in ("synthetic", "uncertain", "real")
    assert got["after"].decision is not None  # the consumer kept going

    sample = service.metrics.registry.get_sample_value
    near_hits = [
        v for v in got.values() if v.cache_match and v.cache_match.kind == "near_duplicate"
    ]
    assert sample("synthscan_verdict_cache_near_duplicate_hits_total") == len(near_hits)
    assert (
        sample("synthscan_provenance_findings_total", {"kind": "c2pa_manifest", "verified": "true"})
        == 1
    )
    assert (sample("synthscan_provenance_seconds_count") or 0) >= len(got)

    # replay reads provenance like the live service: same decision and findings
    out = tmp_path / "replay.jsonl"
    options = ReplayOptions(topics=[topic], output_file=out, state_file=tmp_path / "state.json")
    outcome = run_replay(replace(options, progress=False), settings)
    assert outcome.result.complete
    again = {v.event_id: v for v in map(Verdict.model_validate, read_jsonl(out))}
    for name in ("signed", "a1111"):
        assert again[name].decision == got[name].decision
        assert again[name].provenance is not None and got[name].provenance is not None
        kinds = [f.kind for f in again[name].provenance.findings]  # type: ignore[union-attr]
        assert kinds == [f.kind for f in got[name].provenance.findings]  # type: ignore[union-attr]
    assert again["signed"].provenance.c2pa_state == "Trusted"  # type: ignore[union-attr]

"""The published JSON Schemas (schemas/json/) checked by a validator we did not write.

The networknt JSON Schema validator (Java, draft 2020-12, format assertions on) validates the
image events as they travel on the input topic and the verdicts and dead letters the running
service wrote, so a subscriber in another language can trust the schema files.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from interop_support import JavaHelper, Live, image_bytes, sha
from kafka_support import unique

from schemas import ErrorCode, ImageData, ImageEvent, encode_image_event

pytestmark = pytest.mark.kafka

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "json"


def _events(tag: str) -> dict[str, tuple[bytes, list[tuple[str, bytes]]]]:
    """Image events that give a verdict or each kind of dead letter, by key (= event id)."""
    img = image_bytes(400)
    fields: dict[str, dict[str, Any]] = {
        "inline": {"data": img, "mime": "image/png", "sha256": sha(img), "size_bytes": len(img)},
        "ref": {"ref": "img/401.png", "sha256": sha(image_bytes(401))},
        "url-dead": {"url": "http://127.0.0.1:9/img/1.png"},  # fetch_failed
        "checksum": {"data": img, "sha256": "0" * 64},  # checksum_mismatch
        "not-image": {"data": b"GIF89a but not really", "mime": "image/gif"},  # decode error
    }
    out = {}
    for mode in ("binary", "structured"):
        for name, data in fields.items():
            event_id = f"schema-{tag}-{mode}-{name}"
            event = ImageEvent(
                id=event_id,
                source="/interop/schema",
                subject=f"c-{event_id}",
                data=ImageData(
                    content_id=f"c-{event_id}", tenant="t1", metadata={"k": [1, 2]}, **data
                ),
            )
            value, headers = encode_image_event(event, mode=mode, inline="base64")  # type: ignore[arg-type]
            out[event_id] = (value, list(headers))
    big = f"schema-{tag}-big"  # over 512 KiB: the dead letter keeps it by reference
    out[big] = (b"\x89PNG" + b"\0" * 600_000, [("ce_specversion", b"1.0"), ("ce_id", big.encode())])
    out[big][1].extend([("ce_source", b"/s"), ("ce_type", b"t"), ("content-type", b"image/png")])
    out[f"schema-{tag}-json"] = (b"{oops", [("content-type", b"application/cloudevents+json")])
    return out


def _values(bootstrap: str, topic: str, keys: set[bytes]) -> dict[bytes, bytes]:
    """The values of ``keys`` as the broker stores them on ``topic``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("io-schema"),
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    found: dict[bytes, bytes] = {}
    for _ in range(600):
        for msg in consumer.consume(100, 0.1):
            if msg.error() is None and msg.key() in keys:
                found[msg.key()] = msg.value()
        if len(found) == len(keys):
            break
    consumer.close()
    assert len(found) == len(keys)
    return found


def test_schema_files_validate_real_events_verdicts_and_dead_letters(
    java: JavaHelper, live: Live
) -> None:
    events = _events(uuid.uuid4().hex[:6])
    live.send((k.encode(), v, h) for k, (v, h) in events.items())
    seen = live.outcomes(events)
    codes = {d.code for k, d in seen.dead_letters.items() if k in events}
    assert codes >= {
        ErrorCode.FETCH_FAILED,
        ErrorCode.CHECKSUM_MISMATCH,
        ErrorCode.IMAGE_DECODE_ERROR,
        ErrorCode.INVALID_JSON,
    }, codes
    assert any(d.original.value_ref for d in seen.dead_letters.values())
    assert {"inline", "ref"} <= {k.rsplit("-", 1)[1] for k in events if k in seen.verdicts}

    on_topic = _values(live.bootstrap, live.input, {k.encode() for k in events})
    structured = [json.loads(v) for k, v in on_topic.items() if b"-structured-" in k]
    binary_json = [json.loads(v) for k, v in on_topic.items() if b"-binary-" in k]
    assert len(structured) == 5 and len(binary_json) == 5
    docs = {
        "verdict.schema.json": [json.loads(v) for _k, v, _h in seen.verdict_records],
        "dead-letter.schema.json": [json.loads(v) for _k, v, _h in seen.dead_letter_records],
        "image-event.schema.json": structured,
        "image-data.schema.json": binary_json,
    }
    negative = {  # the validator does validate: a wrong type, a missing field, an unknown code
        "verdict.schema.json": [dict(docs["verdict.schema.json"][0], score="high")],
        "dead-letter.schema.json": [
            {k: v for k, v in docs["dead-letter.schema.json"][0].items() if k != "original"},
            dict(docs["dead-letter.schema.json"][0], code="no_such_code"),
        ],
    }
    checked = java.validate({SCHEMAS / name: docs[name] + negative.get(name, []) for name in docs})
    for name, values in docs.items():
        errors = checked[SCHEMAS / name]
        assert len(errors) == len(values) + len(negative.get(name, [])), name
        bad = [(i, e) for i, e in enumerate(errors[: len(values)]) if e]
        assert not bad, f"{name}: {bad[:3]}"
        assert all(errors[len(values) :]), f"{name}: an invalid document passed"
    print({name: len(values) for name, values in docs.items()})

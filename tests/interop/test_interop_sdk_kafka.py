"""CloudEvents SDKs we did not write, through the real broker, in both directions.

Producers: the Python SDK (1.x, the 1.x API of 2.x, the 2.x core binding) and the Java SDK's
``CloudEventSerializer``, in every mode docs/events.md documents; each event must get a
verdict. Subscribers: the same SDKs decode our image events, verdicts and dead letters.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from interop_support import (
    IMAGE_TYPE,
    MODES,
    ImageServer,
    JavaHelper,
    Live,
    Message,
    image_bytes,
    sha,
    spec_for,
)
from kafka_support import create_topics, unique
from sdk_clients import SDKS, decode, encode

from schemas import ImageData, ImageEvent, encode_image_event
from schemas.dead_letter import DEAD_LETTER_EVENT_TYPE
from schemas.verdict import VERDICT_EVENT_TYPE

pytestmark = pytest.mark.kafka


def _assert_verdicts(live: Live, expected: dict[str, str]) -> None:
    """Every event id got a verdict (not a dead letter) for the image with that sha256."""
    seen = live.outcomes(expected)
    dead = {
        k: f"{d.code.value}: {d.message}" for k, d in seen.dead_letters.items() if k in expected
    }
    assert not dead, f"dead-lettered instead of judged: {dead}"
    for event_id, image_sha in expected.items():
        verdict = seen.verdicts[event_id]
        assert verdict.image.sha256 == image_sha, event_id
        assert verdict.content_id == f"c-{event_id}", event_id
        assert verdict.tenant == "t1", event_id


@pytest.mark.parametrize("sdk", SDKS)
def test_python_sdk_events_in_every_documented_mode_get_verdicts(
    sdk: str, live: Live, sdk1: Any, image_server: ImageServer
) -> None:
    specs, expected = [], {}
    for i, mode in enumerate(MODES):
        event_id = f"py{sdk}-{mode}-{uuid.uuid4().hex[:6]}"
        spec, image_sha = spec_for(mode, event_id, 100 + i, image_server.base_url)
        specs.append(spec)
        expected[event_id] = image_sha
    encoded = encode(sdk, specs, sdk1)
    live.send(
        (s["key"].encode(), value, list(headers.items()))
        for s, (headers, value) in zip(specs, encoded, strict=True)
    )
    _assert_verdicts(live, expected)


def test_sdk1_sends_structured_png_under_content_type_image_png_and_it_is_judged(
    live: Live, sdk1: Any
) -> None:
    """The issue's case: 1.x ``to_structured()`` of an image/png event."""
    event_id = f"issue-png-{uuid.uuid4().hex[:6]}"
    spec, image_sha = spec_for("structured-data_base64", event_id, 7, "unused")
    ((headers, value),) = encode("1.13.0", [spec], sdk1)
    assert headers == {"content-type": b"image/png"}  # the SDK's choice, not the binding's
    assert json.loads(value)["data_base64"]
    live.send([(event_id.encode(), value, list(headers.items()))])
    _assert_verdicts(live, {event_id: image_sha})


def test_java_sdk_events_in_every_documented_mode_get_verdicts(
    java: JavaHelper, live: Live, image_server: ImageServer
) -> None:
    specs, expected = [], {}
    for i, mode in enumerate(MODES):
        event_id = f"java-{mode}-{uuid.uuid4().hex[:6]}"
        spec, image_sha = spec_for(mode, event_id, 200 + i, image_server.base_url)
        if mode == "binary-raw":  # a number-typed extension, as a Java producer may send
            spec["extensions"]["sizebytes"] = len(image_bytes(200 + i))
        specs.append(spec)
        expected[event_id] = image_sha
    java.produce(live.bootstrap, live.input, specs)
    _assert_verdicts(live, expected)


# --- the other direction: what we send, read by the SDKs -----------------------------------


def _our_events(tag: str) -> dict[str, tuple[bytes, list[tuple[str, bytes]], dict[str, Any]]]:
    """Our encoder's output in every mode: key -> (value, headers, what a subscriber must see)."""
    out = {}
    img = image_bytes(300)
    sources: dict[str, dict[str, Any]] = {
        "url": {"url": "http://127.0.0.1:9/img/300.png"},
        "ref": {"ref": "img/300.png"},
        "base64": {"data": img, "mime": "image/png"},
        "raw": {"data": img, "mime": "image/png"},
    }
    for mode in ("binary", "structured"):
        for source, fields in sources.items():
            event_id = f"ours-{tag}-{mode}-{source}"
            event = ImageEvent(
                id=event_id,
                source="/interop/ours",
                subject=f"c-{event_id}",
                data=ImageData(content_id=f"c-{event_id}", sha256=sha(img), **fields),
            )
            inline = "raw" if source == "raw" else "base64"
            value, headers = encode_image_event(event, mode=mode, inline=inline)  # type: ignore[arg-type]
            if source == "raw":  # image fields travel as extension attributes
                expect = {"datacontenttype": "image/png", "data": img, "contentid": f"c-{event_id}"}
            elif mode == "binary":
                expect = {"datacontenttype": "application/json", "json": json.loads(value)}
            else:
                expect = {"datacontenttype": "application/json", "json": json.loads(value)["data"]}
            expect.update(id=event_id, source="/interop/ours", type=IMAGE_TYPE)
            out[event_id] = (value, list(headers), expect)
    return out


@pytest.fixture(scope="module")
def ours(live: Live) -> dict[str, Any]:
    """Our image events on their own topic, plus verdicts and dead letters from the service."""
    topic = unique("io-ours")
    create_topics(live.bootstrap, {topic: 1})
    events = _our_events(uuid.uuid4().hex[:6])
    producer = Producer({"bootstrap.servers": live.bootstrap})
    for key, (value, headers, _) in events.items():
        producer.produce(topic, key=key.encode(), value=value, headers=headers)
    assert producer.flush(30) == 0
    judged = {k: v for k, v in events.items() if "-url" not in k}  # port 9 is closed: no URL
    poison = {
        f"poison-json-{uuid.uuid4().hex[:6]}": b"{not json",
        f"poison-nodata-{uuid.uuid4().hex[:6]}": b'{"specversion": "1.0", "source": "/x"}',
    }
    live.send((k.encode(), v, list(h)) for k, (v, h, _) in judged.items())
    live.send(
        (k.encode(), v, [("content-type", b"application/cloudevents+json")])
        for k, v in poison.items()
    )
    seen = live.outcomes([*judged, *poison])
    assert set(poison) <= set(seen.dead_letters)
    consumer = Consumer(
        {
            "bootstrap.servers": live.bootstrap,
            "group.id": unique("io-ours-reader"),
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    records: list[Message] = []
    for _ in range(300):
        records += [
            (m.key(), m.value(), list(m.headers() or []))
            for m in consumer.consume(100, 0.1)
            if m.error() is None
        ]
        if len(records) == len(events):
            break
    consumer.close()
    assert len(records) == len(events)
    return {
        "topic": topic,
        "events": events,
        "records": records,
        "verdicts": list(seen.verdict_records),
        "dead_letters": list(seen.dead_letter_records),
    }


def _check_image_event(
    expect: dict[str, Any], attrs: dict[str, Any], data: bytes | None, content_type: str = ""
) -> None:
    for name in ("id", "source", "type"):
        assert attrs[name] == expect[name], (name, attrs)
    # The 1.x API reports a structured record's Kafka content-type as `datacontenttype`
    # (its from_structured() lets the header override the envelope): an SDK quirk.
    assert attrs["datacontenttype"] in (expect["datacontenttype"], content_type), attrs
    assert attrs["specversion"] == "1.0"
    assert data is not None
    if "json" in expect:
        assert json.loads(data) == expect["json"]
    else:
        assert data == expect["data"]
        assert attrs["contentid"] == expect["contentid"]


def _check_output(kind: str, attrs: dict[str, Any], data: bytes | None) -> None:
    """A verdict or dead letter as an SDK sees it: attributes agree with the JSON data."""
    assert data is not None
    body = json.loads(data)
    assert attrs["specversion"] == "1.0"
    assert attrs["source"] == "urn:synthscan:consumer"
    assert attrs["datacontenttype"] == "application/json"
    if kind == "verdict":
        assert attrs["type"] == VERDICT_EVENT_TYPE
        assert attrs["id"] == body["verdict_id"]
        assert attrs["subject"] == body["content_id"]
        assert attrs["label"] == body["label"]
    else:
        assert attrs["type"] == DEAD_LETTER_EVENT_TYPE
        assert attrs["id"] == body["dead_letter_id"]
        assert attrs["errorcode"] == body["code"]


@pytest.mark.parametrize("sdk", SDKS)
def test_python_sdk_decodes_our_events_verdicts_and_dead_letters(
    sdk: str, ours: dict[str, Any], sdk1: Any
) -> None:
    records = [(h, v) for _k, v, h in ours["records"]]
    for (key, _v, headers), seen in zip(ours["records"], decode(sdk, records, sdk1), strict=True):
        quirk = dict(headers)["content-type"].decode() if sdk != "2.x-core" else ""
        expect = ours["events"][key.decode()][2]
        _check_image_event(expect, seen["attributes"], seen["data"], quirk)
    for kind in ("verdicts", "dead_letters"):
        decoded = decode(sdk, [(h, v) for _k, v, h in ours[kind]], sdk1)
        assert decoded
        for seen in decoded:
            _check_output(kind.rstrip("s").replace("_", " "), seen["attributes"], seen["data"])


def test_java_sdk_decodes_our_events_verdicts_and_dead_letters(
    java: JavaHelper, ours: dict[str, Any], live: Live
) -> None:
    counts = {
        ours["topic"]: len(ours["records"]),
        live.verdict_topic: len(ours["verdicts"]),
        live.dlq_topic: len(ours["dead_letters"]),
    }
    got = java.consume(live.bootstrap, counts)
    assert {t: len(r) for t, r in got.items()} == counts
    for rec in got[ours["topic"]]:
        attrs = {**rec, **rec["extensions"]}
        data = base64.b64decode(rec["data_base64"]) if rec["data_base64"] else None
        _check_image_event(ours["events"][rec["key"]][2], attrs, data)
    for kind, topic in (("verdict", live.verdict_topic), ("dead letter", live.dlq_topic)):
        for rec in got[topic]:
            _check_output(kind, {**rec, **rec["extensions"]}, base64.b64decode(rec["data_base64"]))

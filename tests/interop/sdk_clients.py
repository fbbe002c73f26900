"""The three Python CloudEvents SDK clients the interop tests drive, behind one interface.

- ``1.13.0``: a real cloudevents 1.x install, in a subprocess (``sdk_v1_client.py``);
- ``2.x-v1api``: the 1.x API as cloudevents 2.x ships it (``cloudevents.v1.kafka``), in process;
- ``2.x-core``: the 2.x core Kafka binding (``cloudevents.core.bindings.kafka``), in process.

``encode(specs)`` -> Kafka ``(headers, value)`` per spec; ``decode(records)`` -> what a
subscriber sees per ``(headers, value)``: ``{"attributes": {...}, "data": bytes | None}``.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import sdk_v1_client
from cloudevents.core.bindings import kafka as core_kafka
from cloudevents.core.v1.event import CloudEvent as CoreEvent
from interop_support import SDK1_CLIENT

Encoded = tuple[dict[str, bytes], bytes]
SDKS = ("1.13.0", "2.x-v1api", "2.x-core")


def _from_wire(out: dict[str, Any]) -> Encoded:
    return {k: base64.b64decode(v) for k, v in out["headers"].items()}, base64.b64decode(
        out["value"]
    )


def _to_wire(headers: Sequence[tuple[str, bytes]], value: bytes) -> dict[str, Any]:
    return {
        "headers": {k: base64.b64encode(v).decode() for k, v in headers},
        "value": base64.b64encode(value).decode(),
    }


def _decoded(out: dict[str, Any]) -> dict[str, Any]:
    data = out["data_base64"]
    return {
        "attributes": out["attributes"],
        "data": None if data is None else base64.b64decode(data),
    }


def _run_sdk1(sdk1: Path, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, str(SDK1_CLIENT)],
        input="".join(json.dumps(r) + "\n" for r in requests),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(sdk1)},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    outs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(outs) == len(requests)
    return outs


def _core_event(spec: dict[str, Any]) -> CoreEvent:
    attrs: dict[str, Any] = {k: spec[k] for k in ("id", "source", "type", "subject")}
    attrs["time"] = datetime.fromisoformat(spec["time"])
    attrs["datacontenttype"] = spec["datacontenttype"]
    attrs.update(spec.get("extensions", {}))
    raw = "data_base64" in spec
    return CoreEvent(attrs, base64.b64decode(spec["data_base64"]) if raw else spec["data_json"])


def encode(sdk: str, specs: list[dict[str, Any]], sdk1: Path) -> list[Encoded]:
    if sdk == "1.13.0":
        outs = _run_sdk1(sdk1, [{"op": "encode", "spec": s} for s in specs])
        assert {o["version"] for o in outs} == {"1.13.0"}, "not the 1.x SDK"
        return [_from_wire(o) for o in outs]
    if sdk == "2.x-v1api":
        return [_from_wire(sdk_v1_client.encode(s)) for s in specs]
    encoded: list[Encoded] = []
    for spec in specs:
        event = _core_event(spec)
        if spec["mode"] == "structured":
            msg = core_kafka.to_structured_event(event)
        else:
            msg = core_kafka.to_binary_event(event)
        encoded.append((dict(msg.headers), msg.value))
    return encoded


def decode(
    sdk: str, records: list[tuple[Sequence[tuple[str, bytes]], bytes]], sdk1: Path
) -> list[dict[str, Any]]:
    if sdk == "1.13.0":
        outs = _run_sdk1(sdk1, [{"op": "decode", **_to_wire(h, v)} for h, v in records])
        assert {o["version"] for o in outs} == {"1.13.0"}, "not the 1.x SDK"
        return [_decoded(o) for o in outs]
    if sdk == "2.x-v1api":
        return [_decoded(sdk_v1_client.decode(**_to_wire(h, v))) for h, v in records]
    out: list[dict[str, Any]] = []
    for headers, value in records:
        msg = core_kafka.KafkaMessage(headers=dict(headers), key=None, value=value)
        event = core_kafka.from_kafka_event(msg)
        data = event.get_data()
        if isinstance(data, str):
            data = data.encode()
        elif isinstance(data, dict):
            data = json.dumps(data).encode()
        attrs = {
            k: v.isoformat() if isinstance(v, datetime) else str(v)
            for k, v in event.get_attributes().items()
        }
        out.append({"attributes": attrs, "data": data})
    return out

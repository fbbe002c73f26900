"""A producer/subscriber written against the CloudEvents Python SDK's 1.x Kafka API.

It runs unchanged on a real ``cloudevents`` 1.x install (``cloudevents.kafka``) and on the
compatibility layer of 2.x (``cloudevents.v1.kafka``). Imported by the tests for the latter;
run as a script (JSON lines on stdin -> JSON lines on stdout) under a 1.x install for the former:

    {"op": "encode", "spec": {...}}   -> {"headers": {name: base64}, "value": base64}
    {"op": "decode", "headers": {name: base64}, "value": base64}
                                      -> {"attributes": {...}, "data_base64": ..., "version": ...}

A spec is the one the Java helper reads: mode (binary|structured), id, source, type, subject,
time, datacontenttype, data_json (a JSON value) or data_base64, extensions.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

try:  # cloudevents 1.x
    from cloudevents import __version__
    from cloudevents.http import CloudEvent
    from cloudevents.kafka import (
        KafkaMessage,
        from_binary,
        from_structured,
        to_binary,
        to_structured,
    )
except ImportError:  # cloudevents 2.x keeps the 1.x API under cloudevents.v1
    from cloudevents import __version__
    from cloudevents.v1.http import CloudEvent
    from cloudevents.v1.kafka import (
        KafkaMessage,
        from_binary,
        from_structured,
        to_binary,
        to_structured,
    )


def _identity(data: Any) -> Any:
    return data


def encode(spec: dict[str, Any]) -> dict[str, Any]:
    """The Kafka headers and value the SDK makes for ``spec`` (to_binary / to_structured)."""
    attrs = {k: spec[k] for k in ("id", "source", "type", "subject", "time") if spec.get(k)}
    attrs["datacontenttype"] = spec["datacontenttype"]
    attrs.update(spec.get("extensions", {}))
    raw = "data_base64" in spec
    data = base64.b64decode(spec["data_base64"]) if raw else spec["data_json"]
    event = CloudEvent(attrs, data)
    if spec["mode"] == "structured":
        msg = to_structured(event)
    else:
        msg = to_binary(event, data_marshaller=_identity if raw else None)
    return {
        "headers": {k: base64.b64encode(v).decode() for k, v in msg.headers.items()},
        "value": base64.b64encode(msg.value).decode(),
        "version": __version__,
    }


def decode(headers: dict[str, str], value: str) -> dict[str, Any]:
    """What a 1.x subscriber sees in a Kafka record: attributes and the data bytes."""
    raw_headers = {k: base64.b64decode(v) for k, v in headers.items()}
    msg = KafkaMessage(raw_headers, None, base64.b64decode(value))
    if "ce_specversion" in raw_headers:
        event = from_binary(msg, data_unmarshaller=_identity)
    else:
        event = from_structured(msg)
    data = event.get_data()
    if isinstance(data, str):
        data = data.encode()
    elif data is not None and not isinstance(data, bytes):
        data = json.dumps(data).encode()
    return {
        "attributes": {k: str(v) for k, v in event.get_attributes().items()},
        "data_base64": None if data is None else base64.b64encode(data).decode(),
        "version": __version__,
    }


def main() -> None:
    for line in sys.stdin:
        req = json.loads(line)
        out = encode(req["spec"]) if req["op"] == "encode" else decode(req["headers"], req["value"])
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()

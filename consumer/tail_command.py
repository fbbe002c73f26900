"""``python -m consumer tail``: one line per verdict or dead letter on a topic."""

from __future__ import annotations

import time
import uuid

from consumer.kafka import BrokerCode, BrokerError
from consumer.kafka.kafka_clients import KafkaConsumer
from schemas import DEAD_LETTER_EVENT_TYPE, DeadLetter, Verdict, decode_dead_letter, decode_verdict

__all__ = ["format_record", "tail"]


def format_record(record: Verdict | DeadLetter) -> str:
    """``event_id  decision  score  label  top patch`` for a verdict (the decision leads: it
    is what a moderator acts on; the label is the binary cut at the threshold), ``code
    message`` for a dead letter."""
    if isinstance(record, DeadLetter):
        return f"{record.event_id or '-'}  DEAD-LETTER  {record.code.value}  {record.message}"
    top = record.patches[0] if record.patches else None
    patch = (
        f"top patch #{top.rank} {top.box.as_tuple()} w{top.window} att={top.attention:.3f}"
        if top is not None
        else "no patches"
    )
    decision = record.decision or record.label
    return (
        f"{record.event_id}  {decision:<9}  score={record.score:.4f}  label={record.label:<9}  "
        f"{patch}"
    )


def tail(
    bootstrap_servers: str,
    topic: str,
    *,
    count: int | None = None,
    timeout_s: float = 30.0,
    from_beginning: bool = True,
) -> int:
    """Print records of ``topic`` (read_committed, a throw-away group); return an exit code."""
    consumer = KafkaConsumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"synthscan-tail-{uuid.uuid4()}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    seen, last = 0, time.monotonic()
    try:
        while (count is None or seen < count) and time.monotonic() - last < timeout_s:
            for msg in consumer.consume(1, 0.2):
                if isinstance(msg, BrokerError):
                    if msg.code != BrokerCode.PARTITION_EOF:
                        print(f"error: {msg}", flush=True)
                    continue
                if msg.header_error is not None:  # a header name that is not UTF-8
                    print(
                        f"error: undecodable headers at offset {msg.offset}: {msg.header_error}",
                        flush=True,
                    )
                    continue
                headers = list(msg.headers)
                ce_type = (dict(headers).get("ce_type") or b"").decode("utf-8", "replace")
                record: Verdict | DeadLetter
                if ce_type == DEAD_LETTER_EVENT_TYPE:
                    record = decode_dead_letter(msg.value, headers)
                else:
                    record = decode_verdict(msg.value, headers)
                print(format_record(record), flush=True)
                seen += 1
                last = time.monotonic()
    finally:
        consumer.close()
    return 0 if count is None or seen >= count else 1

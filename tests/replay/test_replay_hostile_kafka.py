"""Replay survives a message whose headers the Kafka client cannot decode."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka_support import create_topics, unique
from raw_kafka import produce_raw
from replay_support import T0, produce_events, service_settings

from consumer.replay import ReplayOptions, parse_offsets, run_replay
from consumer.replay.output import dead_letter_path, read_jsonl
from detector import Detector

pytestmark = pytest.mark.kafka


def test_replay_dead_letters_a_header_name_that_is_not_utf8(
    kafka_bootstrap: str, checkpoint: Path, detector: Detector, tmp_path: Path
) -> None:
    topic = unique("rp-hostile")
    create_topics(kafka_bootstrap, {topic: 1})
    produce_events(kafka_bootstrap, topic, [1], T0, "ok")
    produce_raw(kafka_bootstrap, topic, b"{}", [(b"\xc3\x28bad", b"v")])
    produce_events(kafka_bootstrap, topic, [2], T0, "ok2")
    out = tmp_path / "replay.jsonl"
    outcome = run_replay(
        ReplayOptions(offsets=parse_offsets([f"{topic}:0:0-3"]), output_file=out, progress=False),
        service_settings(kafka_bootstrap, checkpoint, topic, unique("v"), unique("unused")),
        detector=detector,
    )
    assert (outcome.result.verdicts, outcome.result.dead_letters) == (2, 1)
    assert outcome.result.complete
    dead = list(read_jsonl(dead_letter_path(out)))
    assert [d["code"] for d in dead] == ["schema_violation"]
    assert "header" in dead[0]["message"]

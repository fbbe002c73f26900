"""Audit replay against the real broker: reproduce, flip, leave the live group alone, resume."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from kafka_support import committed, create_topics, unique
from replay_support import (
    T0,
    WINDOW,
    Recorded,
    negated_checkpoint,
    produce_events,
    read_verdicts,
    service_settings,
)

from consumer.__main__ import main as consumer_main
from consumer.kafka.backend import KafkaBackend
from consumer.kafka.kafka_clients import KafkaConsumer
from consumer.logs import configure_logging
from consumer.replay import ReplayOptions, parse_offsets, run_replay
from consumer.replay.output import read_jsonl
from detector import Detector
from schemas import Verdict

pytestmark = pytest.mark.kafka

TOLERANCE = 1e-4
"""Same model, same images: scores agree to this (batch composition changes float sums)."""


def _settings(rec: Recorded, **extra: Any) -> Any:
    return service_settings(
        rec.bootstrap, rec.checkpoint, rec.input_topic, rec.verdict_topic, unique("unused"), **extra
    )


def _window_options(rec: Recorded, out: Path, **extra: Any) -> ReplayOptions:
    options: dict[str, Any] = {
        "topics": [rec.input_topic],
        "from_ms": WINDOW[0],
        "to_ms": WINDOW[1],
        "output_file": out,
        "compare": True,
        "verdict_topic": rec.verdict_topic,
        "tolerance": TOLERANCE,
        "progress": False,
    }
    return ReplayOptions(**{**options, **extra})


class RecordingBackend(KafkaBackend):
    """The service's backend, remembering the group id of every reader it made."""

    def __init__(self) -> None:
        self.readers: list[str] = []

    def reader(self, conf: dict[str, Any]) -> KafkaConsumer:
        self.readers.append(str(conf.get("group.id")))
        return super().reader(conf)


def test_replay_of_a_window_reproduces_the_recorded_verdicts(
    recorded: Recorded, detector: Detector, tmp_path: Path
) -> None:
    out = tmp_path / "audit.jsonl"
    backend = RecordingBackend()
    outcome = run_replay(
        _window_options(recorded, out, run_id="same"),
        _settings(recorded),
        detector=detector,
        backend=backend,
    )

    # every client comes from the backend, like the service's: the window probe, the range
    # reader and the reader of the recorded verdicts (the comparison)
    assert len(backend.readers) == 3, backend.readers
    assert outcome.result.complete and outcome.result.verdicts == 8
    assert outcome.result.dead_letters == 1  # the poison message in the window, as live
    dead = list(read_jsonl(out.with_name(out.name + ".dead-letters.jsonl")))
    assert [d["code"] for d in dead] == ["invalid_json"]
    lines = [Verdict.model_validate(o) for o in read_jsonl(out)]
    assert {v.event_id for v in lines} == {s.event_id for s in recorded.window_events}
    assert all(v.replay is not None and v.replay.run_id == "same" for v in lines)
    assert all(v.replay is not None and v.replay.model_version == "1.0.0" for v in lines)
    assert sum(v.cached for v in lines) == 1  # seed 10 twice in the window

    report = json.loads(outcome.reports[0].read_text())  # type: ignore[index]
    counts = report["counts"]
    assert counts["matched_by_event_id"] == 8 and counts["unmatched"] == 0
    assert counts["flips"] == 0 and counts["within_tolerance"] == 8
    assert report["score_delta"]["max_abs"] <= TOLERANCE
    assert report["models"]["recorded"][0]["weights_sha256"] == detector.info.weights_sha256
    assert "## Flipped events (0)" in outcome.reports[1].read_text()  # type: ignore[index]


def test_replay_reports_flips_when_the_threshold_changes(
    recorded: Recorded, detector: Detector, tmp_path: Path
) -> None:
    scores = sorted({v.score for v in recorded.in_window()})
    gap, low = max((b - a, a) for a, b in itertools.pairwise(scores))
    threshold = low + gap / 2  # in the widest gap between recorded scores
    assert gap > 4 * TOLERANCE, "scores too close to split"
    expected = {
        v.event_id: ("synthetic" if v.score >= threshold else "real") for v in recorded.in_window()
    }
    flips = {e for e, label in expected.items() if label != _label_of(recorded, e)}
    assert flips, "the new threshold should flip some of the recorded labels"

    det = Detector.from_checkpoint(recorded.checkpoint, device="cpu", precision="fp32")
    outcome = run_replay(
        _window_options(recorded, tmp_path / "t.jsonl", threshold=threshold),
        _settings(recorded),
        detector=det,
    )

    report = outcome.comparison.to_dict()  # type: ignore[union-attr]
    assert {f["event_id"] for f in report["flipped"]} == flips
    up = sum(1 for e in flips if expected[e] == "synthetic")
    assert report["counts"]["real_to_synthetic"] == up
    assert report["counts"]["synthetic_to_real"] == len(flips) - up
    assert report["models"]["replay"][0]["threshold"] == pytest.approx(threshold)
    assert report["score_delta"]["max_abs"] <= TOLERANCE  # same weights: same scores


def _label_of(rec: Recorded, event_id: str) -> str:
    return next(v.label for v in rec.verdicts if v.event_id == event_id)


def test_candidate_checkpoint_via_the_cli_to_an_audit_topic(
    recorded: Recorded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """``python -m consumer replay --offsets ... --checkpoint candidate --output-topic``."""
    candidate = negated_checkpoint(recorded.checkpoint, tmp_path / "candidate.safetensors")
    audit = unique("rp-audit")
    # the audit topic does not exist yet: the replay creates it (broker defaults)
    # the whole topic, by explicit offsets: 0 up to the end captured at start
    argv = ["replay", "--bootstrap-servers", recorded.bootstrap, "--no-progress", "--compare"]
    argv += [
        "--offsets",
        f"{recorded.input_topic}:0:0-",
        "--offsets",
        f"{recorded.input_topic}:1:0-",
    ]
    argv += ["--checkpoint", str(candidate), "--output-topic", audit, "--run-id", "cand"]
    argv += ["--verdict-topic", recorded.verdict_topic, "--report", str(tmp_path / "cand")]
    argv += ["--set", "model.device=cpu", "--set", "model.precision=fp32"]
    monkeypatch.chdir(tmp_path)

    try:
        assert consumer_main(argv) == 0
        out = capsys.readouterr().out
    finally:
        configure_logging("warning", "console")  # main() bound the logs to capsys' stdout

    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["complete"] and summary["verdicts"] == 15 and summary["dead_letters"] == 1
    new = read_verdicts(recorded.bootstrap, audit, 15, timeout_s=30)
    assert len(new) == 15 and all(v.replay and v.replay.run_id == "cand" for v in new)
    report = json.loads((tmp_path / "cand.json").read_text())
    scores = {v.event_id: v.score for v in recorded.verdicts}
    for v in new:  # the candidate negates the logit: score -> 1 - score
        assert v.score == pytest.approx(1.0 - scores[v.event_id], abs=1e-4)
    assert report["counts"]["flips"] == sum(1 for v in recorded.verdicts if v.score != 0.5)
    assert report["counts"]["flips"] == 15
    versions = {m["version"] for m in report["models"]["recorded"]}
    assert versions == {"1.0.0"}
    assert {m["version"] for m in report["models"]["replay"]} == {"2.0.0-candidate"}
    assert (tmp_path / "cand.md").exists()


def test_replay_never_commits_into_the_live_group(
    recorded: Recorded, detector: Detector, tmp_path: Path
) -> None:
    before = committed(recorded.bootstrap, recorded.group, recorded.input_topic, 2)
    run_replay(
        _window_options(recorded, tmp_path / "g.jsonl", run_id="nocommit", compare=False),
        _settings(recorded),
        detector=detector,
    )
    after = committed(recorded.bootstrap, recorded.group, recorded.input_topic, 2)
    assert before == after == recorded.committed
    own = committed(recorded.bootstrap, "synthscan-replay-nocommit", recorded.input_topic, 2)
    assert all(o < 0 for o in own.values()), own  # the replay group committed nothing either


def test_an_interrupted_replay_resumes_by_run_id_and_keeps_its_window(
    recorded: Recorded, detector: Detector, tmp_path: Path, stop_after: Any
) -> None:
    """Stopped after 3 images, then resumed: each event once, and events that arrived after
    the first start (inside the time window) are not replayed: the ends were captured."""
    topic = unique("rp-resume")
    create_topics(recorded.bootstrap, {topic: 2})
    sent = produce_events(recorded.bootstrap, topic, list(range(30, 38)), T0 + 10_000, "r")
    out = tmp_path / "resume.jsonl"
    stopper = stop_after(3)
    options = _window_options(recorded, out, run_id="resume", compare=False, topics=[topic])
    batching = {"max_wait_ms": 0, "max_in_flight_messages": 2}
    settings = _settings(recorded, model={"max_batch_size": 1}, batching=batching)

    class Counting:  # a detector that stops the run after three images
        info = detector.info

        def predict(self, images: Any) -> Any:
            stopper.tick()
            return detector.predict(images)

    first = run_replay(options, settings, detector=Counting(), stop=stopper.event)
    assert not first.result.complete
    assert not json.loads(first.state_file.read_text())["complete"]
    written = len(list(read_jsonl(out)))
    assert 0 < written < 8
    produce_events(recorded.bootstrap, topic, [40, 41], T0 + 10_000, "late")

    second = run_replay(options, settings, detector=detector)

    assert second.result.complete
    lines = [Verdict.model_validate(o) for o in read_jsonl(out)]
    assert sorted(v.event_id for v in lines) == sorted(s.event_id for s in sent)
    assert second.result.verdicts == 8 - written


def test_bad_arguments_are_refused(recorded: Recorded, tmp_path: Path) -> None:
    settings = _settings(recorded)
    for extra in (
        {"threshold": 1.5},
        {"from_ms": WINDOW[1], "to_ms": WINDOW[0]},
        {"offsets": parse_offsets([f"{recorded.input_topic}:0:0-1"])},
        {"output_topic": "x"},  # and an output file
    ):
        with pytest.raises(ValueError):
            run_replay(_window_options(recorded, tmp_path / "bad.jsonl", **extra), settings)


def test_a_window_is_resolved_from_the_actual_timestamps(
    kafka_bootstrap: str, checkpoint: Path, detector: Detector, tmp_path: Path
) -> None:
    """Issue 19: one record stamped in 2100 among in-window ones made the window's end offset
    (found by time) land on it: 3 of 7 in-window events replayed, ``complete`` true anyway.
    Records stamped 1971 and 0 are outside any recent window but must not hide others."""
    topic = unique("rp-times")
    create_topics(kafka_bootstrap, {topic: 1})
    year_2100, year_1971 = 4_102_444_800_000, 31_536_000_000
    inside = produce_events(kafka_bootstrap, topic, [1, 2, 3], T0 + 10_000, "in-a")
    produce_events(kafka_bootstrap, topic, [4], year_2100, "future")
    inside += produce_events(kafka_bootstrap, topic, [5, 6], T0 + 12_000, "in-b")
    produce_events(kafka_bootstrap, topic, [7], year_1971, "old")
    produce_events(kafka_bootstrap, topic, [8], 0, "zero")
    inside += produce_events(kafka_bootstrap, topic, [9, 11], T0 + 5_000, "in-c")  # earlier
    produce_events(kafka_bootstrap, topic, [12], T0 + 50_000, "after")  # at --to: excluded
    out = tmp_path / "window.jsonl"
    options = ReplayOptions(
        topics=[topic],
        from_ms=T0,
        to_ms=T0 + 50_000,
        output_file=out,
        run_id="times",
        progress=False,
    )
    settings = service_settings(kafka_bootstrap, checkpoint, topic, "unused", unique("unused"))
    outcome = run_replay(options, settings, detector=detector)
    lines = [Verdict.model_validate(o) for o in read_jsonl(out)]
    assert sorted(v.event_id for v in lines) == sorted(s.event_id for s in inside)
    assert outcome.result.complete and outcome.result.verdicts == len(inside) == 7

    # a window around 1971 reaches the record stamped then, behind the later ones
    old = run_replay(
        ReplayOptions(
            topics=[topic],
            from_ms=year_1971 - 1000,
            to_ms=year_1971 + 1000,
            output_file=tmp_path / "old.jsonl",
            run_id="old",
            progress=False,
        ),
        settings,
        detector=detector,
    )
    assert old.result.complete
    assert [Verdict.model_validate(o).event_id for o in read_jsonl(tmp_path / "old.jsonl")] == [
        "old-0"
    ]

"""Unit tests of the replay pieces: time and offset parsing, the comparison, the state file."""

from __future__ import annotations

from pathlib import Path

import pytest

from consumer.items import OutRecord
from consumer.replay import OffsetRange, Scored, compare, parse_offsets, parse_time
from consumer.replay.compare import write_report
from consumer.replay.output import JsonlOutput
from consumer.replay.state import ReplayState


def test_parse_time_accepts_iso_8601_and_epoch_ms() -> None:
    assert parse_time("1700000000000") == 1_700_000_000_000
    assert parse_time("2023-11-14T22:13:20Z") == 1_700_000_000_000
    assert parse_time("2023-11-14T23:13:20+01:00") == 1_700_000_000_000
    assert parse_time("2023-11-14T22:13:20") == 1_700_000_000_000  # naive = UTC
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_parse_offsets() -> None:
    assert parse_offsets(["images:0:10-20", "a:b:3:5-"]) == [
        OffsetRange("images", 0, 10, 20),
        OffsetRange("a:b", 3, 5, -1),
    ]
    for bad in ["images:0:10", "images:x:1-2", "images:0:a-2", "0:1-2"]:
        with pytest.raises(ValueError):
            parse_offsets([bad])


def _scored(
    event: str, score: float, *, sha: str = "", threshold: float = 0.5, at: float = 0.0
) -> Scored:
    return Scored(
        event_id=event,
        sha256=sha or f"sha-{event}",
        label="synthetic" if score >= threshold else "real",
        score=score,
        threshold=threshold,
        model=("m", "1", "w" * 64, threshold),
        source=f"t[0]@{event}",
        produced_at=at,
    )


def test_compare_joins_by_event_id_then_sha256_and_counts_flips_both_ways() -> None:
    recorded = [
        _scored("a", 0.9),
        _scored("a", 0.2, at=5.0),  # a later duplicate of "a" wins
        _scored("b", 0.7),
        _scored("old-c", 0.4, sha="shared"),
        _scored("d", 0.6),
    ]
    new = [
        _scored("a", 0.8),  # real -> synthetic (against the later 0.2)
        _scored("b", 0.7),  # unchanged
        _scored("c", 0.47, sha="shared"),  # joined by sha256, unchanged label
        _scored("d", 0.3),  # synthetic -> real
        _scored("e", 0.5),  # never recorded
    ]
    data = compare("run", new, recorded, tolerance=1e-4).to_dict()
    c = data["counts"]
    assert (c["matched_by_event_id"], c["matched_by_sha256"], c["unmatched"]) == (3, 1, 1)
    assert (c["real_to_synthetic"], c["synthetic_to_real"], c["flips"]) == (1, 1, 2)
    assert c["within_tolerance"] == 1
    assert {f["event_id"] for f in data["flipped"]} == {"a", "d"}
    assert data["unmatched_events"] == ["e"]
    hist = {(b["lo"], b["hi"]): b["count"] for b in data["score_delta"]["histogram"]}
    assert sum(hist.values()) == 4
    assert hist[(0.5, 1.0)] == 1  # +0.6
    assert hist[(-0.5, -0.2)] == 1  # -0.3
    assert hist[(-1e-4, 1e-4)] == 1  # 0
    assert hist[(0.05, 0.1)] == 1  # +0.07
    assert data["score_delta"]["max_abs"] == pytest.approx(0.6)


def test_report_files(tmp_path: Path) -> None:
    comparison = compare("r1", [_scored("a", 0.9)], [_scored("a", 0.1)])
    json_path, md_path = write_report(comparison, tmp_path / "rep")
    assert json_path.name == "rep.json" and md_path.name == "rep.md"
    text = md_path.read_text()
    assert "## Flipped events (1)" in text and "| a |" in text


def test_state_round_trip_and_resume_point(tmp_path: Path) -> None:
    state = ReplayState(
        tmp_path / "s.json",
        "r1",
        "2026-01-01T00:00:00+00:00",
        [OffsetRange("t", 0, 5, 10), OffsetRange("t", 1, 0, 3)],
        next_offsets={("t", 0): 7},
        output_bytes={"verdicts": 12},
    )
    state.save()
    loaded = ReplayState.load(tmp_path / "s.json")
    assert loaded.ranges == state.ranges and loaded.output_bytes == {"verdicts": 12}
    assert [loaded.next_offset(r) for r in loaded.ranges] == [7, 0]
    assert loaded.remaining() == 3 + 3


def test_jsonl_output_truncates_to_the_durable_length_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    out = JsonlOutput(path)
    rec = OutRecord("x", None, b'{"source": {"topic": "t", "partition": 0, "offset": 1}}')
    done: list[int] = []
    out.write(rec, False, lambda: done.append(1))
    sizes = out.durable()
    out.write(
        OutRecord("x", None, b'{"source": {"topic": "t", "partition": 0, "offset": 2}}'),
        False,
        lambda: None,
    )
    out.close()
    resumed = JsonlOutput(path, sizes)
    assert resumed.already_written() == {("t", 0, 1)}  # offset 2 was never made durable
    resumed.close()
    assert done == [1] and path.read_bytes().count(b"\n") == 1

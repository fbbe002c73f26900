"""Replay builds its detector and records through the service's factory
(consumer.pipeline.assembly): the same decision policy and the same checkpoint sha256 check as the
live service."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from kafka_support import unique
from replay_support import WINDOW, Recorded, read_verdicts, service_settings

from consumer import Service
from consumer.errors import ConfigurationError
from consumer.replay import ReplayOptions, run_replay
from consumer.replay.output import read_jsonl
from detector import Detector
from schemas import Verdict

pytestmark = pytest.mark.kafka


def _edges(rec: Recorded) -> tuple[float, float]:
    """A band that splits the window's recorded scores three ways (the default band puts
    them all in one outcome: these random-init scores sit far below the 0.5 threshold)."""
    s = sorted({v.score for v in rec.in_window()})
    low, high = (s[1] + s[2]) / 2, (s[-2] + s[-1]) / 2
    assert min(s[2] - s[1], s[-1] - s[-2]) > 4e-4, "scores too close to split"
    return low, high


def _options(rec: Recorded, out: Path) -> ReplayOptions:
    return ReplayOptions(
        topics=[rec.input_topic], from_ms=WINDOW[0], to_ms=WINDOW[1], output_file=out,
        progress=False,
    )  # fmt: skip


def test_a_replay_under_a_non_default_decision_policy_gets_the_live_decisions(
    recorded: Recorded, detector: Detector, tmp_path: Path
) -> None:
    low, high = _edges(recorded)
    decision: Any = {"uncertain_low": low, "uncertain_high": high}
    verdicts = unique("rp-policy-verdicts")
    live_settings = service_settings(
        recorded.bootstrap, recorded.checkpoint, recorded.input_topic, verdicts,
        unique("rp-policy-live"), decision=decision,
    )  # fmt: skip
    service = Service(live_settings, detector=detector)
    thread = service.start()
    try:
        assert service.wait_ready(60), service.error
        live = read_verdicts(recorded.bootstrap, verdicts, 15, timeout_s=90)
    finally:
        service.stop()
        thread.join(30)
    live_decisions = {v.event_id: v.decision for v in live}

    settings = service_settings(
        recorded.bootstrap, recorded.checkpoint, recorded.input_topic, recorded.verdict_topic,
        unique("unused"), decision=decision,
    )  # fmt: skip
    out = tmp_path / "policy.jsonl"
    assert run_replay(_options(recorded, out), settings, detector=detector).result.complete
    replayed = {v.event_id: v.decision for v in map(Verdict.model_validate, read_jsonl(out))}

    assert len(replayed) == 8 and replayed == {e: live_decisions[e] for e in replayed}
    assert set(replayed.values()) == {"real", "uncertain", "synthetic"}
    default = {v.event_id: v.decision for v in recorded.in_window()}  # the default policy
    assert any(default[e] != d for e, d in replayed.items()), "the setting changed nothing"


def test_a_replay_of_a_checkpoint_whose_sha256_does_not_match_is_refused_like_the_service(
    recorded: Recorded, tmp_path: Path
) -> None:
    wrong = "0" * 64
    settings = service_settings(
        recorded.bootstrap, recorded.checkpoint, recorded.input_topic, recorded.verdict_topic,
        unique("rp-sha"),
    )  # fmt: skip
    settings = settings.model_copy(
        update={"model": dataclasses.replace(settings.model, checkpoint_sha256=wrong)}
    )
    service = Service(settings)
    thread = service.start()
    assert not service.wait_ready(30)
    thread.join(10)
    assert isinstance(service.error, ConfigurationError)
    assert f"!= expected {wrong}" in str(service.error)

    out = tmp_path / "sha.jsonl"
    with pytest.raises(ConfigurationError, match=f"!= expected {wrong}"):
        run_replay(_options(recorded, out), settings)
    assert not out.exists() and not out.with_name(out.name + ".state.json").exists()


def test_a_decision_setting_that_hides_an_outcome_is_refused_by_replay_and_service(
    recorded: Recorded, detector: Detector, tmp_path: Path
) -> None:
    settings = service_settings(
        recorded.bootstrap, recorded.checkpoint, recorded.input_topic, recorded.verdict_topic,
        unique("rp-band"), decision={"uncertain_margin": 0.5},  # fallback band [0.25, 0.75]
    )  # fmt: skip
    # fine: the fallback shrinks to stay inside (0, 1); a low edge of 0.9 above the high edge
    # 0.75 of the fallback leaves no uncertain band:
    bad = settings.model_copy(
        update={"decision": dataclasses.replace(settings.decision, uncertain_low=0.9)}
    )
    out = tmp_path / "band.jsonl"
    with pytest.raises(ConfigurationError, match=r"decision\.uncertain_low"):
        run_replay(_options(recorded, out), bad, detector=detector)
    assert not out.with_name(out.name + ".state.json").exists()
    service = Service(bad, detector=detector)
    thread = service.start()
    assert not service.wait_ready(30)
    thread.join(10)
    assert isinstance(service.error, ConfigurationError)
    assert "decision.uncertain_low" in str(service.error)

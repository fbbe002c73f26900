"""Settings: env parsing (nesting, lists, dicts), --set overrides, masking, client config."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError

from consumer.__main__ import main
from consumer.kafka.config import consumer_config, producer_config
from consumer.settings import ServiceSettings, mask_url, parse_overrides
from detector import ImageLimits
from detector.options import EngineOptions
from provenance import DecisionPolicy, ProvenanceConfig


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SYNTHSCAN_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = ServiceSettings()
    assert s.kafka.exactly_once is False
    assert s.http.port == 8080
    assert s.model.checkpoint.name == "glff-forensic-mobilenet_v2.safetensors"
    assert s.model.device == "auto"


def test_env_nested_lists_and_dicts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHSCAN_KAFKA__BOOTSTRAP_SERVERS", "b1:9092,b2:9092")
    monkeypatch.setenv("SYNTHSCAN_KAFKA__INPUT_TOPICS", "uploads.a, uploads.b")
    monkeypatch.setenv("SYNTHSCAN_KAFKA__LIBRDKAFKA", '{"security.protocol": "SASL_SSL"}')
    monkeypatch.setenv("SYNTHSCAN_MODEL__MAX_BATCH_SIZE", "32")
    monkeypatch.setenv("SYNTHSCAN_MODEL__LIMITS__FORMATS", "JPEG, PNG")
    monkeypatch.setenv("SYNTHSCAN_KAFKA__EXACTLY_ONCE", "true")
    monkeypatch.setenv("SYNTHSCAN_HTTP__PORT", "9100")
    s = ServiceSettings()
    assert s.kafka.bootstrap_servers == "b1:9092,b2:9092"
    assert s.kafka.input_topics == ["uploads.a", "uploads.b"]
    assert s.kafka.librdkafka == {"security.protocol": "SASL_SSL"}
    assert s.model.max_batch_size == 32
    assert s.model.limits.formats == frozenset({"JPEG", "PNG"})
    assert s.kafka.exactly_once is True
    assert s.http.port == 9100
    monkeypatch.setenv("SYNTHSCAN_KAFKA__INPUT_TOPICS", '["x"]')
    assert ServiceSettings().kafka.input_topics == ["x"]


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHSCAN_MODEL__MAX_BATCH_SIZE", "0")
    with pytest.raises(ValidationError):
        ServiceSettings()
    monkeypatch.delenv("SYNTHSCAN_MODEL__MAX_BATCH_SIZE")
    monkeypatch.setenv("SYNTHSCAN_KAFKA__INPUT_TOPICS", "")
    with pytest.raises(ValidationError):
        ServiceSettings()
    monkeypatch.delenv("SYNTHSCAN_KAFKA__INPUT_TOPICS")
    with pytest.raises(ValidationError, match="grace_s"):
        ServiceSettings.load(["shutdown.grace_s=400"])
    with pytest.raises(ValidationError):
        ServiceSettings.load(["kafka.no_such_setting=1"])


def test_overrides_win_over_env_and_merge_dicts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHSCAN_KAFKA__GROUP_ID", "from-env")
    monkeypatch.setenv("SYNTHSCAN_KAFKA__LIBRDKAFKA", '{"security.protocol": "SSL"}')
    s = ServiceSettings.load(
        [
            "kafka.group_id=from-cli",
            "kafka.librdkafka.ssl.ca.location=/ca.pem",
            "batching.max_wait_ms=5",
            "kafka.input_topics=a,b",
        ]
    )
    assert s.kafka.group_id == "from-cli"
    assert s.kafka.librdkafka == {"security.protocol": "SSL", "ssl.ca.location": "/ca.pem"}
    assert s.batching.max_wait_ms == 5.0
    assert s.kafka.input_topics == ["a", "b"]
    assert parse_overrides(["kafka.librdkafka.a.b=1"]) == {"kafka": {"librdkafka": {"a.b": "1"}}}
    with pytest.raises(ValueError):
        parse_overrides(["novalue"])


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHSCAN_KAFKA__SASL_USERNAME", "svc")
    monkeypatch.setenv("SYNTHSCAN_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv(
        "SYNTHSCAN_KAFKA__LIBRDKAFKA",
        '{"ssl.key.password": "pw1", "sasl.oauthbearer.client.secret": "pw2", "acks": "all"}',
    )
    s = ServiceSettings()
    text = json.dumps(s.masked())
    assert "hunter2" not in text and "pw1" not in text and "pw2" not in text
    assert '"acks": "all"' in text and '"sasl_username": "svc"' in text
    assert s.kafka.sasl_password is not None
    assert s.kafka.sasl_password.get_secret_value() == "hunter2"
    conf = consumer_config(s.kafka)
    assert conf["sasl.password"] == "hunter2" and conf["ssl.key.password"] == "pw1"


def test_client_configs_keep_the_delivery_guarantees() -> None:
    s = ServiceSettings.load(
        [
            'kafka.consumer_overrides={"enable.auto.commit": true, "fetch.min.bytes": 1}',
            'kafka.producer_overrides={"enable.idempotence": false}',
        ]
    )
    c = consumer_config(s.kafka)
    assert c["enable.auto.commit"] is False
    assert c["enable.auto.offset.store"] is False
    assert c["partition.assignment.strategy"] == "cooperative-sticky"
    assert c["fetch.min.bytes"] == 1
    p = producer_config(s.kafka)
    assert p["enable.idempotence"] is True
    assert p["compression.type"] == "zstd"
    assert "transactional.id" not in p
    eos = ServiceSettings.load(["kafka.exactly_once=true", "kafka.instance_id=pod-1"])
    eos_conf = producer_config(eos.kafka)
    assert eos_conf["transactional.id"] == "synthscan-pod-1"
    assert eos_conf["transaction.timeout.ms"] >= 60_000


def test_url_userinfo_is_masked_in_the_settings_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHSCAN_FETCH__OBJECT_BASE_URL", "https://svc:hunter2@store.example/b/")
    s = ServiceSettings()
    assert s.fetch.object_base_url == "https://svc:hunter2@store.example/b/"  # used as given
    text = json.dumps(s.masked())
    assert "hunter2" not in text and "svc:" not in text
    assert "https://**********@store.example/b/" in text
    assert mask_url("https://store.example/a@b") == "https://store.example/a@b"  # no userinfo
    assert mask_url("not a url @ all") == "not a url @ all"


@pytest.mark.parametrize(
    "env",
    [
        ("SYNTHSCAN_KAFKA__SASL_PASWORD", "hunter2"),  # misspelt: extra input
        ("SYNTHSCAN_KAFKA__LIBRDKAFKA", '{"sasl.password": ["hunter2"]}'),  # wrong type
        ("SYNTHSCAN_KAFKA__SESSION_TIMEOUT_MS", "hunter2"),
    ],
)
@pytest.mark.parametrize(
    "command", [["run"], ["replay", "--topic", "images", "--output-file", "out.jsonl"]]
)
def test_invalid_settings_never_echo_their_values(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: tuple[str, str],
    command: list[str],
) -> None:
    monkeypatch.setenv(*env)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "invalid" in err and "kafka." in err
    assert "hunter2" not in err


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("decision.uncertain_high=1.0", "decision.uncertain_high"),
        ("decision.uncertain_low=0", "decision.uncertain_low"),
        ("decision.uncertain_margin=0", "decision.uncertain_margin"),
    ],
)
def test_a_decision_edge_that_hides_an_outcome_is_refused_naming_it(
    override: str, named: str
) -> None:
    from consumer.settings import describe_error

    with pytest.raises(ValidationError) as info:
        ServiceSettings.load([override])
    assert named in describe_error(info.value)


def test_decision_edges_that_leave_no_uncertain_band_are_refused() -> None:
    with pytest.raises(ValidationError, match="uncertain_low must be below"):
        ServiceSettings.load(["decision.uncertain_low=0.7", "decision.uncertain_high=0.6"])


def test_moved_keys_still_work_with_a_deprecation_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SYNTHSCAN_BATCHING__MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("SYNTHSCAN_BATCHING__MAX_WAIT_MS", "7")
    monkeypatch.setenv("SYNTHSCAN_DECODE__MAX_SIDE", "300")
    monkeypatch.setenv("SYNTHSCAN_DECODE__FORMATS", "JPEG,PNG")
    with caplog.at_level(logging.WARNING, logger="consumer.settings"):
        s = ServiceSettings()
    assert s.model.max_batch_size == 8 and s.batching.max_wait_ms == 7.0
    assert s.model.limits.max_side == 300
    assert s.model.limits.formats == frozenset({"JPEG", "PNG"})
    assert "batching.max_batch_size is deprecated: use model.max_batch_size" in caplog.text
    assert "decode.* is deprecated: use model.limits.*" in caplog.text
    monkeypatch.setenv("SYNTHSCAN_MODEL__LIMITS__MAX_BYTES", "4096")
    again = ServiceSettings.load(["batching.max_batch_size=4", "decode.min_side=64"])
    assert again.model.max_batch_size == 4  # an override wins over env, old key or new
    assert (again.model.limits.min_side, again.model.limits.max_bytes) == (64, 4096)
    assert "max_batch_size" not in again.masked()["batching"] and "decode" not in again.masked()


def test_library_types_are_the_sections_and_their_bounds_are_checked() -> None:
    s = ServiceSettings.load(["decision.uncertain_margin=0.2", "provenance.workers=3"])
    assert isinstance(s.model, EngineOptions) and s.model.limits == ImageLimits()
    assert s.decision == DecisionPolicy(uncertain_margin=0.2)
    assert s.provenance == ProvenanceConfig(workers=3)
    refused = [
        "model.max_batch_size=2000",
        "model.device=gpu",
        "model.runtime=tensorrt",
        "model.checkpoint_sha256=abc",
        "model.limits.min_side=0",
        "model.limits.no_such_limit=1",
        "model.no_such_knob=1",
        "decision.uncertain_margin=0.6",
        "decision.uncertain_low=0.7",
        "decision.no_such=1",
        "provenance.workers=0",
        "provenance.no_such=1",
    ]
    for pair in refused:
        with pytest.raises(ValidationError):
            ServiceSettings.load([pair, "decision.uncertain_high=0.6"])
    assert ServiceSettings.load(["model.device=cuda:1"]).model.device == "cuda:1"

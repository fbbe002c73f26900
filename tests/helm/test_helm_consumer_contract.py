"""The chart's environment is accepted by the consumer's own settings class, value for value.

The consumer sections forbid unknown keys, so a misspelt or renamed `SYNTHSCAN_*` variable in the
chart would crash every pod at start; this test catches that without a cluster.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helm_support import CI_VALUES, Render, consumer, env, pod_spec, secret_refs

from consumer.settings import ServiceSettings


def _settings_from_render(
    render: Render, values: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[ServiceSettings, dict[str, str]]:
    docs = render(values)
    variables = env(docs)
    for name, (secret, key) in secret_refs(docs).items():
        variables[name] = f"{secret}/{key}"  # stand-in for the Secret's value
    for name in [n for n in os.environ if n.startswith("SYNTHSCAN_")]:
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return ServiceSettings(), variables


@pytest.mark.parametrize("values", [p.name for p in CI_VALUES])
def test_consumer_accepts_the_chart_environment(
    render: Render, values: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, variables = _settings_from_render(render, values, monkeypatch)
    known = {f"SYNTHSCAN_{section.upper()}__" for section in ServiceSettings.model_fields}
    for name in variables:
        if name.startswith("SYNTHSCAN_"):
            # extra="ignore" at the top level would silently drop an unknown section.
            assert any(name.startswith(prefix) for prefix in known), name
    assert settings.kafka.bootstrap_servers == variables["SYNTHSCAN_KAFKA__BOOTSTRAP_SERVERS"]
    assert settings.kafka.input_topics == json.loads(variables["SYNTHSCAN_KAFKA__INPUT_TOPICS"])
    assert settings.kafka.librdkafka == json.loads(variables["SYNTHSCAN_KAFKA__LIBRDKAFKA"])
    assert settings.model.checkpoint == Path(variables["SYNTHSCAN_MODEL__CHECKPOINT"])
    assert settings.model.checkpoint_sha256 == variables.get("SYNTHSCAN_MODEL__CHECKPOINT_SHA256")
    assert settings.http.port == consumer(render(values))["ports"][0]["containerPort"]
    # The kubelet waits longer than the consumer's own shutdown bound.
    assert settings.shutdown.grace_s < pod_spec(render(values))["terminationGracePeriodSeconds"]


def test_consumer_gets_sasl_credentials_and_tls_paths(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _ = _settings_from_render(render, "existing-secret-values.yaml", monkeypatch)
    assert settings.kafka.sasl_username == "synthscan-kafka-user/user"
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == "synthscan-kafka-user/pass"
    assert settings.kafka.exactly_once is True
    assert settings.kafka.librdkafka["ssl.key.location"] == "/etc/synthscan/kafka-tls/client.key"


def test_cpu_only_render_selects_the_cpu_device(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _ = _settings_from_render(render, "cpu-only-values.yaml", monkeypatch)
    assert settings.model.device == "cpu"
    assert settings.model.max_batch_size == 32
    assert settings.fetch.max_bytes == 52428800

"""TLS/SASL settings and the access check's error mapping, without a broker (the real
refusals are in ``test_consumer_secure_kafka.py``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from consumer.errors import KafkaAccessError
from consumer.kafka import BrokerCode, BrokerError
from consumer.kafka.access import access_error, check_access
from consumer.kafka.config import common_config
from consumer.settings import KafkaSettings, ServiceSettings, describe_error


def test_typed_security_settings_become_librdkafka_properties(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc",
        sasl_password="s3cret-value",
        ssl_ca_location=ca,
        librdkafka={"sasl.mechanism": "SCRAM-SHA-256"},
    )
    conf = common_config(settings)
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.password"] == "s3cret-value"
    assert conf["ssl.ca.location"] == str(ca)
    assert conf["sasl.mechanism"] == "SCRAM-SHA-256"  # the passthrough wins
    assert "ssl.certificate.location" not in conf


def test_secrets_are_masked_in_the_settings_log(tmp_path: Path) -> None:
    settings = ServiceSettings(
        kafka={"sasl_password": "s3cret-value", "ssl_key_password": "k3y-pass"}  # type: ignore[arg-type]
    )
    text = json.dumps(settings.masked())
    assert "s3cret-value" not in text and "k3y-pass" not in text


def test_a_missing_ca_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        KafkaSettings(ssl_ca_location=tmp_path / "nope.pem")
    assert "ssl_ca_location" in describe_error(info.value)


def test_authorization_errors_of_clients_become_access_errors() -> None:
    settings = KafkaSettings(sasl_username="svc", instance_id="pod-1")
    txn = BrokerError(BrokerCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "no")
    error = access_error(txn, settings)
    assert isinstance(error, KafkaAccessError)
    assert "user 'svc' was refused on a transactional id 'synthscan-pod-1'" in str(error)
    assert KafkaAccessError.exit_code == 3
    transport = BrokerError(BrokerCode.TRANSPORT, "down")
    assert access_error(transport, settings) is None


def test_the_check_can_be_switched_off() -> None:
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:1", access_check_timeout_s=0)
    began = time.monotonic()
    check_access(settings, common_config(settings))
    assert time.monotonic() - began < 1.0

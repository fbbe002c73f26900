"""Delivery budgets without a broker: the exactly-once drain fits its transaction timeout, and
dead letters fit the producer's record size limit."""

from __future__ import annotations

import hashlib
import random

from consumer import ServiceSettings
from consumer.items import Envelope, Failure
from consumer.kafka.config import max_record_bytes, producer_config, transaction_timeout_ms
from consumer.output.records import RecordFactory, record_size
from consumer.serving.service import in_flight_limit
from schemas import ErrorCode, ModelStamp, decode_dead_letter

CPU_SECONDS_PER_IMAGE = 0.4
"""The demo checkpoint on one CPU core (issue 10: ~2.5 images/s)."""


def test_exactly_once_defaults_drain_well_within_the_transaction_timeout() -> None:
    settings = ServiceSettings(kafka={"exactly_once": True})  # type: ignore[arg-type]
    timeout_s = producer_config(settings.kafka)["transaction.timeout.ms"] / 1000.0
    assert timeout_s == transaction_timeout_ms(settings.kafka) / 1000.0
    span_s = settings.kafka.commit_interval_s + in_flight_limit(settings) * CPU_SECONDS_PER_IMAGE
    assert 3 * span_s <= timeout_s <= 900
    assert in_flight_limit(ServiceSettings()) == 256  # at-least-once keeps the batching limit


def _stamp() -> ModelStamp:
    return ModelStamp(
        name="m",
        version="1",
        weights_sha256="0" * 64,
        threshold=0.5,
        preprocessing_version="1",
        torch_version="2",
        torchvision_version="0",
        device="cpu",
        precision="fp32",
        arch="glff",
        backbone="mobilenet_v2",
        patch_strategy="psm",
    )


def test_dead_letters_shrink_to_fit_and_keep_the_hash_of_the_whole() -> None:
    rng = random.Random(1)
    value = rng.randbytes(400_000)
    headers = tuple((f"h{i}", rng.randbytes(200_000)) for i in range(3))
    env = Envelope("in", 0, 7, rng.randbytes(50_000), value, headers, None, 1)
    limit = 300_000
    factory = RecordFactory(_stamp(), "v", "dlq", "g", "i", max_record_bytes=limit)
    record = factory.dead_letter(Failure(env, ErrorCode.INVALID_JSON, "bad"))
    assert record_size(record.key, record.value, record.headers) <= limit
    dead = decode_dead_letter(record.value, list(record.headers))
    original = dead.original
    assert original.value_sha256 == hashlib.sha256(value).hexdigest()
    assert original.value_size_bytes == len(value)
    assert original.value_truncated or original.value is None
    assert original.headers_omitted == 3 and not original.key_omitted
    minimal = factory.dead_letter(Failure(env, ErrorCode.INVALID_JSON, "bad"), minimal=True)
    small = decode_dead_letter(minimal.value, list(minimal.headers)).original
    assert small.value == b"" and small.key_omitted and small.headers_omitted == 3
    assert record_size(minimal.key, minimal.value, minimal.headers) < 4096


def test_record_limit_follows_the_producer_setting() -> None:
    settings = ServiceSettings(kafka={"producer_overrides": {"message.max.bytes": 50_000}})  # type: ignore[arg-type]
    assert max_record_bytes(settings.kafka) == 50_000
    assert max_record_bytes(ServiceSettings().kafka) == 1_000_000

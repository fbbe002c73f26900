"""Service settings (pydantic-settings): env prefix ``SYNTHSCAN_``, nested delimiter ``__``.

Example: ``SYNTHSCAN_KAFKA__BOOTSTRAP_SERVERS=broker:9092``,
``SYNTHSCAN_KAFKA__INPUT_TOPICS=uploads.a,uploads.b`` (or a JSON list),
``SYNTHSCAN_KAFKA__LIBRDKAFKA='{"security.protocol": "SASL_SSL"}'``,
``SYNTHSCAN_MODEL__MAX_BATCH_SIZE=32``. The CLI's ``--set kafka.group_id=x`` overrides env.

Library types are sections as they are, checked here: ``model`` is the engine's
:class:`~detector.options.EngineOptions` plus what only the service needs, ``provenance`` is
:class:`~provenance.ProvenanceConfig` and ``decision`` :class:`~provenance.DecisionPolicy`, so
each default is declared once, in its library. Keys that moved keep working with a log line:
``batching.max_batch_size`` (now ``model.max_batch_size``) and ``decode.*`` (now
``model.limits.*``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from consumer.library_settings import (
    DecisionSettings,
    ModelSection,
    ModelSettings,
    ProvenanceSettings,
    moved_keys,
    split_list,
)
from consumer.redaction import MASK as _MASK
from consumer.redaction import describe_error, mask_url
from detector.checkpoint import DEFAULT_CHECKPOINT
from provenance import DecisionPolicy, ProvenanceConfig

__all__ = [
    "DEFAULT_CHECKPOINT",
    "BatchingSettings",
    "CacheSettings",
    "DecisionSettings",
    "FetchSettings",
    "HttpSettings",
    "KafkaSettings",
    "LoggingSettings",
    "ModelSection",
    "ModelSettings",
    "ProvenanceSettings",
    "ServiceSettings",
    "ShutdownSettings",
    "describe_error",
    "mask_url",
    "parse_overrides",
]

_DICT_SETTINGS = ("librdkafka", "consumer_overrides", "producer_overrides")
_SECRET_KEY_PARTS = ("password", "secret", "token", "key.pem", "sasl.oauthbearer.config")


def _json_dict(value: Any) -> Any:
    if isinstance(value, str):
        return json.loads(value) if value.strip() else {}
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Section):
    """Where to read and write, and how to talk to the brokers."""

    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "synthscan"
    input_topics: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["images"])
    verdict_topic: str = "verdicts"
    dead_letter_topic: str = "images.dlq"
    latest_verdict_topic: str | None = None
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    exactly_once: bool = False
    transactional_id_prefix: str = "synthscan-"
    instance_id: str | None = None
    consume_batch: int = Field(default=100, ge=1)
    session_timeout_ms: int = Field(default=45_000, ge=1000)
    max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    statistics_interval_ms: int = Field(default=5_000, ge=0)
    commit_interval_s: float = Field(default=1.0, ge=0.0)
    revoke_drain_s: float = Field(default=10.0, ge=0.0)
    delivery_attempts: int = Field(default=3, ge=1)
    max_record_bytes: int | None = Field(default=None, ge=4096)
    transaction_max_in_flight: int = Field(default=32, ge=1)
    transaction_seconds_per_message: float = Field(default=1.0, gt=0.0)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] | None = None
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: FilePath | None = None
    """PEM bundle of the CA(s) the brokers' certificates chain to (else the system store)."""
    ssl_certificate_location: FilePath | None = None
    """Client certificate (PEM) for mutual TLS; goes with ``ssl_key_location``."""
    ssl_key_location: FilePath | None = None
    ssl_key_password: SecretStr | None = None
    access_check_timeout_s: float = Field(default=20.0, ge=0.0)
    """Start-up check of TLS, SASL and ACLs (:mod:`consumer.kafka.access`); 0 skips it."""
    librdkafka: Annotated[dict[str, str | int | float | bool], NoDecode] = Field(
        default_factory=dict
    )
    consumer_overrides: Annotated[dict[str, str | int | float | bool], NoDecode] = Field(
        default_factory=dict
    )
    producer_overrides: Annotated[dict[str, str | int | float | bool], NoDecode] = Field(
        default_factory=dict
    )

    _lists = field_validator("input_topics", mode="before")(split_list)
    _dicts = field_validator(
        "librdkafka", "consumer_overrides", "producer_overrides", mode="before"
    )(_json_dict)

    @field_validator("input_topics")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one input topic is required")
        return value


class BatchingSettings(_Section):
    """Micro-batching (dynamic batching) and backpressure; a micro-batch holds up to
    ``model.max_batch_size`` images, one forward pass."""

    max_wait_ms: float = Field(default=20.0, ge=0.0)
    max_in_flight_messages: int = Field(default=256, ge=1)
    max_in_flight_pixel_bytes: int = Field(default=1024**3, ge=1024**2)
    fetch_workers: int = Field(default=8, ge=1, le=256)
    """Threads that download claim-check URLs (fetching only: decoding has its own)."""
    decode_workers: int = Field(default=4, ge=1, le=256)
    """Threads that decode images, inline or fetched (a slow URL never holds one)."""


class FetchSettings(_Section):
    """Limits and policy of claim-check fetches (``SYNTHSCAN_FETCH__*`` in the service)."""

    timeout_s: Annotated[float, Field(gt=0)] = 10.0
    """Wall-clock budget of one attempt: connect, TLS, redirects, headers and body."""
    connect_timeout_s: Annotated[float, Field(gt=0)] = 3.0
    """Budget of one TCP connect (within ``timeout_s``)."""
    max_total_s: Annotated[float, Field(gt=0)] = 30.0
    """Budget of the whole fetch including retries and backoff."""
    max_bytes: Annotated[int, Field(ge=1)] = 50 * 1024 * 1024
    """Largest body accepted; bigger ones are abandoned (``fetch_too_large``)."""
    max_redirects: Annotated[int, Field(ge=0, le=20)] = 3
    retries: Annotated[int, Field(ge=0, le=10)] = 2
    """Extra attempts after the first, for transient failures only (connect, 5xx, 429)."""
    backoff_initial_s: Annotated[float, Field(ge=0)] = 0.2
    backoff_max_s: Annotated[float, Field(ge=0)] = 2.0
    allow_hosts: list[str] = Field(default_factory=list)
    """Host names exempt from the SSRF address check (e.g. an in-cluster object store)."""
    allow_cidrs: list[IPvAnyNetwork] = Field(default_factory=list)
    """Networks exempt from the SSRF address check (tests and the demo: ``127.0.0.1/32``)."""
    object_base_url: str | None = None
    """Base URL that event ``ref`` object keys are resolved against; None refuses refs."""
    max_per_host: int | None = Field(default=None, ge=1)
    """Most fetches from one host at a time (None: up to ``batching.fetch_workers``); the
    others wait in that host's queue without holding a fetch worker, so a slow or hostile host
    cannot take every worker from the others."""
    user_agent: str = "synthscan-fetch/1"
    ca_file: str | None = None
    """PEM bundle to verify TLS servers with, instead of the system store."""


class HttpSettings(_Section):
    """Metrics and health endpoints."""

    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=0, le=65535)
    heartbeat_timeout_s: float = Field(default=30.0, gt=0.0)


class ShutdownSettings(_Section):
    """SIGTERM/SIGINT handling."""

    grace_s: float = Field(default=25.0, gt=0.0)


class CacheSettings(_Section):
    """Verdict cache: a repeated image (same sha256, or a PDQ near-duplicate) skips inference."""

    enabled: bool = True
    max_entries: int = Field(default=100_000, ge=1)
    near_duplicate: bool = True
    near_duplicate_distance: int = Field(default=40, ge=0, le=256)
    near_duplicate_max_entries: int = Field(default=100_000, ge=1)
    near_duplicate_min_quality: int = Field(default=50, ge=0, le=100)


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class ServiceSettings(BaseSettings):
    """All settings of ``python -m consumer run``."""

    model_config = SettingsConfigDict(
        env_prefix="SYNTHSCAN_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    batching: BatchingSettings = BatchingSettings()
    model: ModelSection = ModelSettings()
    fetch: FetchSettings = FetchSettings()
    decode: Annotated[dict[str, Any] | None, Field(exclude=True)] = None
    """Deprecated spelling of ``model.limits`` (read from env/overrides, moved there)."""
    http: HttpSettings = HttpSettings()
    shutdown: ShutdownSettings = ShutdownSettings()
    logging: LoggingSettings = LoggingSettings()
    cache: CacheSettings = CacheSettings()
    provenance: ProvenanceSettings = ProvenanceConfig()
    decision: DecisionSettings = DecisionPolicy()

    _moved = model_validator(mode="before")(moved_keys)

    @model_validator(mode="after")
    def _grace_fits(self) -> ServiceSettings:
        if self.shutdown.grace_s * 1000 >= self.kafka.max_poll_interval_ms:
            raise ValueError("shutdown.grace_s must be below kafka.max_poll_interval_ms")
        return self

    @classmethod
    def load(cls, overrides: list[str] | None = None) -> ServiceSettings:
        """Env (``SYNTHSCAN_*``) then ``--set`` style overrides, merged key by key."""
        base = cls()
        if not overrides:
            return base
        return cls(**_deep_merge(base.model_dump(), parse_overrides(overrides)))

    def masked(self) -> dict[str, Any]:
        """The settings as JSON-able data with every secret masked (for the start-up log)."""
        data = self.model_dump(mode="json")
        return _mask(data)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _mask(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _mask(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, key) for v in value]
    lowered = key.lower()
    if value is not None and any(part in lowered for part in _SECRET_KEY_PARTS):
        return _MASK
    return mask_url(value) if isinstance(value, str) else value


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["kafka.group_id=x", "model.max_batch_size=8"]`` -> nested init kwargs.

    Values are strings (pydantic converts them like env values); a value starting with ``[``
    or ``{`` is parsed as JSON. Keys after the section name may contain dots only inside the
    librdkafka dicts (``kafka.librdkafka.security.protocol=SSL``).
    """
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        value: Any = json.loads(raw) if raw.lstrip()[:1] in ("[", "{") else raw
        parts = key.split(".")
        if len(parts) > 2 and parts[1] in _DICT_SETTINGS:
            parts = [*parts[:2], ".".join(parts[2:])]
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return result

"""The service: settings -> model, clients, pipeline, HTTP endpoints, poll loop.

In process::

    service = Service(ServiceSettings(kafka={"bootstrap_servers": ..., ...}))
    thread = service.start()          # runs in a background thread
    service.wait_ready(timeout=60)    # model warm and partitions assigned
    ...
    service.stop(); thread.join()     # drain, flush, commit, close

As a process: ``python -m consumer run`` (SIGTERM/SIGINT stop it the same way).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

import structlog
import torch
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from consumer.backpressure import Backpressure, PixelBudget
from consumer.clients import consumer_config, instance_id, max_record_bytes, producer_config
from consumer.commit_tracker import CommitTracker
from consumer.enrich import ProvenanceEnricher
from consumer.fetch import ImageFetcher
from consumer.health import HealthServer, HealthState
from consumer.items import Envelope
from consumer.latest_verdicts import ensure_compacted_topic
from consumer.metrics import Metrics
from consumer.model_reload import load_detector, reloader_for
from consumer.processor import StreamProcessor
from consumer.provenance_fields import policy_of
from consumer.records import RecordFactory, model_stamp
from consumer.settings import ServiceSettings
from consumer.steps.batch import BatchStep
from consumer.steps.commit import CommitPolicy, CommitStep
from consumer.steps.detect import DetectStep, Predictor
from consumer.steps.fetch_decode import FetchDecodeStep
from consumer.steps.parse import ParseStep
from consumer.steps.produce import ProduceStep
from consumer.steps.transaction import TransactionalCommitStep
from consumer.verdict_cache import with_cache
from detector import ModelInfo
from detector.runtime import default_threads

__all__ = ["LoadedDetector", "Service", "in_flight_limit"]

log = structlog.get_logger("consumer.service")


class LoadedDetector(Predictor, Protocol):
    """A warm model: :class:`detector.Detector` or a test double with ``info``."""

    info: ModelInfo


class Service:
    """One consumer instance: one process (or thread), one resident model."""

    def __init__(self, settings: ServiceSettings, *, detector: LoadedDetector | None = None):
        self.settings = settings
        self.metrics = Metrics()
        self.health = HealthState(heartbeat_timeout_s=settings.http.heartbeat_timeout_s)
        self.detector = detector
        self._stop = threading.Event()
        self._http: HealthServer | None = None
        self.pixels: PixelBudget | None = None  # decoded-pixel budget, once the pipeline runs
        self.error: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def run(self, install_signal_handlers: bool = False) -> None:
        """Run until :meth:`stop` (or SIGTERM/SIGINT when handlers are installed)."""
        if install_signal_handlers:
            self._install_signal_handlers()
        log.info("settings", settings=self.settings.masked())
        try:
            self._start_http()
            detector = self._load_detector()
            self._run_pipeline(detector)
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            if self._http is not None:
                self._http.stop()

    def start(self) -> threading.Thread:
        """Run in a daemon thread (in-process use: tests, notebooks, the demo)."""

        def target() -> None:
            try:
                self.run()
            except BaseException:
                log.exception("service_failed")

        thread = threading.Thread(target=target, name="synthscan-service", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Ask the loop to drain, commit and close (returns at once)."""
        self._stop.set()

    def wait_ready(self, timeout: float) -> bool:
        """Block until ``/readyz`` would say ready; False on timeout or failure."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.health.ready():
                return True
            if self.error is not None or self._stop.is_set():
                return False
            time.sleep(0.05)
        return False

    @property
    def http_port(self) -> int | None:
        return None if self._http is None else self._http.port

    # -- assembly --------------------------------------------------------------------------

    def _start_http(self) -> None:
        if not self.settings.http.enabled:
            return
        http = self.settings.http
        self._http = HealthServer(self.health, self.metrics.registry, http.host, http.port)
        self._http.start()
        log.info("http_listening", host=http.host, port=self._http.port)

    def _load_detector(self) -> LoadedDetector:
        if self.detector is None:
            model = self.settings.model
            began = time.monotonic()
            # unset: all CPUs but one (decoding and Kafka need a core; docs/detector.md)
            torch.set_num_threads(model.torch_threads or default_threads())
            max_batch = self.settings.batching.max_batch_size  # one forward pass per batch
            detector = load_detector(model, self.settings.decode, max_batch)  # + adapters, warm
            log.info(
                "model_loaded",
                seconds=round(time.monotonic() - began, 2),
                **detector.info.to_dict(),
            )
            self.detector = reloader_for(
                model, self.settings.decode, max_batch, detector, self.metrics, self._stop
            )
        self.metrics.set_model_info(_info_dict(self.detector.info))
        self.health.model_ready = True
        return self.detector

    def _run_pipeline(self, detector: LoadedDetector) -> None:
        kafka = self.settings.kafka
        if kafka.latest_verdict_topic is not None:
            ensure_compacted_topic(producer_config(kafka), kafka.latest_verdict_topic)
        tracker = CommitTracker()
        holder: dict[str, CommitStep] = {}
        conf = consumer_config(kafka)
        conf.update(
            stats_cb=self.metrics.on_stats,
            error_cb=self._on_client_error,
            on_commit=lambda err, parts: holder["commit"].on_commit(err, parts),
        )
        consumer = Consumer(conf)

        def new_producer() -> Producer:
            # exactly-once: the transaction step handles the producer's fatal errors
            on_error = self._on_producer_error if kafka.exactly_once else self._on_client_error
            return Producer({**producer_config(kafka), "error_cb": on_error})

        producer = new_producer()
        policy = CommitPolicy(kafka.commit_interval_s)
        commit: CommitStep
        if kafka.exactly_once:
            commit = TransactionalCommitStep(
                consumer, producer, tracker, self.metrics, policy, new_producer=new_producer
            )
        else:
            commit = CommitStep(consumer, tracker, self.metrics, policy)
        holder["commit"] = commit
        processors: list[StreamProcessor] = []

        def on_undeliverable(env: Envelope, reason: str) -> None:
            processors[0].on_undeliverable(env, reason)

        batching = self.settings.batching
        backpressure = Backpressure.from_limit(
            in_flight_limit(self.settings), batching.max_in_flight_pixel_bytes
        )
        self.pixels = backpressure.pixels
        if self.pixels is not None:
            pixels = self.pixels
            self.metrics.pixel_bytes.set_function(lambda: pixels.held)
        batch, head = self._build_steps(
            detector, producer, commit, tracker, on_undeliverable, backpressure
        )
        processor = StreamProcessor(
            consumer,
            kafka.input_topics,
            head,
            commit,
            tracker,
            backpressure,
            self.metrics,
            self.health,
            consume_batch=kafka.consume_batch,
            revoke_drain_s=kafka.revoke_drain_s,
            next_due=batch.due_in,
            reset_to_beginning=kafka.auto_offset_reset == "earliest",
        )
        if isinstance(commit, TransactionalCommitStep):
            commit.rewind = processor.rewind
            commit.drop = processor.drop_in_flight
        processors.append(processor)
        try:
            processor.run(self._stop, self.settings.shutdown.grace_s)
        finally:
            if isinstance(commit, TransactionalCommitStep):
                producer = commit.producer  # replaced after lost contact with the cluster
            try:
                left = producer.flush(2.0)
                if left:
                    log.warning("unflushed_records", count=left)
                else:
                    producer.close()  # nothing outstanding: release librdkafka's threads now
            except KafkaException as exc:  # a producer in a fatal state
                log.warning("producer_close_failed", error=str(exc.args[0]))

    def _build_steps(
        self,
        detector: LoadedDetector,
        producer: Producer,
        commit: CommitStep,
        tracker: CommitTracker,
        on_undeliverable: Callable[[Envelope, str], None],
        backpressure: Backpressure,
    ) -> tuple[BatchStep, ParseStep]:
        kafka, batching = self.settings.kafka, self.settings.batching

        def is_live(env: Envelope) -> bool:
            return tracker.is_current(env.tp, env.epoch)

        records = RecordFactory(
            model_stamp(detector.info),
            kafka.verdict_topic,
            kafka.dead_letter_topic,
            kafka.group_id,
            instance_id(kafka),
            kafka.latest_verdict_topic,
            policy_of(self.settings.decision),
            max_record_bytes=max_record_bytes(kafka),
        )
        produce = ProduceStep(
            producer,
            records,
            commit,
            self.metrics,
            is_live,
            max_attempts=kafka.delivery_attempts,
            on_failure=commit.on_failure,
            on_undeliverable=on_undeliverable,
        )
        if isinstance(commit, TransactionalCommitStep):
            commit.on_new_producer.append(produce.use)
        predictor = with_cache(detector, self.settings.cache, self.metrics.registry)
        enrich = ProvenanceEnricher(
            self.settings.provenance, self.metrics.registry, getattr(predictor, "cache", None)
        )
        detect = DetectStep(predictor, produce, self.metrics, is_live)
        batch = BatchStep(detect, batching.max_batch_size, batching.max_wait_ms / 1000.0)
        fetcher = ImageFetcher(self.settings.fetch)
        fetch = FetchDecodeStep(
            batch,
            produce,
            fetcher,
            self.settings.decode,
            self.metrics,
            workers=batching.fetch_workers,
            resolve_ref=_ref_resolver(fetcher),
            is_live=is_live,
            enrich=enrich,
            pixels=backpressure.pixels,
        )
        return batch, ParseStep(fetch, produce)

    # -- callbacks ---------------------------------------------------------------------------

    def _on_client_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.error("kafka_fatal_error", error=str(err))
            self._stop.set()
        else:
            log.warning("kafka_error", error=str(err))

    def _on_producer_error(self, err: KafkaError) -> None:
        """Transactional producer: a fatal error surfaces in the next transactional call, where
        the commit step replaces the producer (or stops the service when it was fenced)."""
        log.log(40 if err.fatal() else 30, "kafka_producer_error", error=str(err))

    def _install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("signal", signal=signal.Signals(signum).name)
            self._stop.set()
            signal.signal(signum, signal.SIG_DFL)  # a second signal kills at once

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def in_flight_limit(settings: ServiceSettings) -> int:
    """Backpressure limit; exactly-once drains it before every commit, so keep that short."""
    limit = settings.batching.max_in_flight_messages
    if settings.kafka.exactly_once:
        limit = min(limit, settings.kafka.transaction_max_in_flight)
    return limit


def _info_dict(info: Any) -> dict[str, Any]:
    to_dict = getattr(info, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else dict(vars(info))


def _ref_resolver(fetcher: Any) -> Any:
    return getattr(fetcher, "resolve_ref", None)

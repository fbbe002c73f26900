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

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

import structlog
import torch

from consumer.items import Envelope
from consumer.kafka import BrokerError
from consumer.kafka.access import access_error
from consumer.kafka.admin import topic_id_probe
from consumer.kafka.backend import Backend, KafkaBackend
from consumer.kafka.clients import CommitResults, ConsumerClient, ProducerClient, ProducerHandle
from consumer.kafka.config import consumer_config, producer_config
from consumer.output.destination import DestinationGate
from consumer.output.records import RecordFactory
from consumer.output.topic_watch import OutputTopicWatch, OutputTopicWatches
from consumer.pipeline.assembly import decision_policy, load_checked_detector, record_factory
from consumer.pipeline.backpressure import Backpressure, PixelBudget
from consumer.pipeline.commit_tracker import CommitTracker
from consumer.pipeline.factory import Pipeline, backpressure_for, build_pipeline
from consumer.pipeline.steps.commit import CommitPolicy, CommitStep
from consumer.pipeline.steps.detect import Predictor
from consumer.pipeline.steps.produce import ProduceStep
from consumer.pipeline.steps.transaction import TransactionalCommitStep
from consumer.pipeline.verdict_cache import with_cache
from consumer.serving.health import HealthServer, HealthState
from consumer.serving.metrics import Metrics
from consumer.serving.model_reload import reloader_for
from consumer.serving.poll_loop import StreamProcessor, Undeliverable
from consumer.settings import ServiceSettings
from detector import ModelInfo
from detector.runtime import default_threads

__all__ = ["LoadedDetector", "Service", "in_flight_limit"]

log = structlog.get_logger("consumer.serving.service")


class LoadedDetector(Predictor, Protocol):
    """A warm model: :class:`detector.Detector` or a test double with ``info``."""

    info: ModelInfo


class Service:
    """One consumer instance: one process (or thread), one resident model."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        detector: LoadedDetector | None = None,
        backend: Backend | None = None,
    ):
        self.settings = settings
        self.backend: Backend = backend or KafkaBackend()
        """Where the clients come from: Kafka, or :class:`consumer.kafka.memory.MemoryBackend`."""
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
            self.backend.check_access(self.settings.kafka)  # before a long model load
            detector = self._load_detector()
            self._run_pipeline(detector)
        except BrokerError as exc:  # a refusal after the check (transactional id, ...)
            denied = access_error(exc, self.settings.kafka)
            self.error = denied or exc
            if denied is None:
                raise
            raise denied from None
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
            detector = load_checked_detector(self.settings)  # + adapters, sha-checked, warm
            log.info(
                "model_loaded",
                seconds=round(time.monotonic() - began, 2),
                **detector.info.to_dict(),
            )
            self.detector = reloader_for(
                model,
                detector,
                self.metrics,
                self._stop,
                accept=lambda new: decision_policy(self.settings, new.info),
            )
        self.metrics.set_model_info(_info_dict(self.detector.info))
        self.health.model_ready = True
        return self.detector

    def _run_pipeline(self, detector: LoadedDetector) -> None:
        kafka = self.settings.kafka
        if kafka.latest_verdict_topic is not None:
            self.backend.ensure_compacted_topic(producer_config(kafka), kafka.latest_verdict_topic)
        tracker = CommitTracker()
        self.metrics.committed_offsets = tracker.committed_offsets  # the lag gauge's base
        results = CommitResults()
        consumer = self.backend.consumer(
            {
                **consumer_config(kafka),
                "stats_cb": self.metrics.on_stats,
                "error_cb": self._on_client_error,
                "on_commit": results.on_commit,
            }
        )
        # exactly-once: the transaction step handles the producer's fatal errors
        on_error = self._on_producer_error if kafka.exactly_once else self._on_client_error
        producers = ProducerHandle(
            lambda: self.backend.producer({**producer_config(kafka), "error_cb": on_error})
        )
        commit = self._commit_step(consumer, producers, tracker, results)
        undeliverable = Undeliverable()
        backpressure = backpressure_for(self.settings, in_flight_limit(self.settings))
        self.pixels = backpressure.pixels
        if self.pixels is not None:
            pixels = self.pixels
            self.metrics.pixel_bytes.set_function(lambda: pixels.held)

        def is_live(env: Envelope) -> bool:
            return tracker.is_current(env.tp, env.epoch)

        produce = self._produce_step(producers, detector, commit, is_live, undeliverable)
        pipeline = self._pipeline(detector, produce, backpressure, is_live)
        processor = StreamProcessor(
            consumer,
            kafka.input_topics,
            pipeline.head,
            commit,
            tracker,
            backpressure,
            self.metrics,
            self.health,
            consume_batch=kafka.consume_batch,
            revoke_drain_s=kafka.revoke_drain_s,
            next_due=pipeline.due_in,
            undeliverable=undeliverable,
        )
        try:
            processor.run(self._stop, self.settings.shutdown.grace_s)
        finally:
            pipeline.enrich.close()
            _close_producer(producers.current)  # replaced after lost contact with the cluster

    def _produce_step(
        self,
        producers: ProducerHandle,
        detector: LoadedDetector,
        commit: CommitStep,
        is_live: Callable[[Envelope], bool],
        undeliverable: Undeliverable,
    ) -> ProduceStep:
        """The output step; exactly-once: it holds outputs that ``commit`` releases."""
        kafka = self.settings.kafka
        produce = ProduceStep(
            producers,
            self._records(detector),
            commit,
            self.metrics,
            is_live,
            max_attempts=kafka.delivery_attempts,
            on_failure=commit.on_failure,
            on_undeliverable=undeliverable.report,
            gate=DestinationGate(lambda ok: setattr(self.health, "output_ok", ok)),
            watch=self._output_topic_watch(),
            hold=kafka.exactly_once,
        )
        if isinstance(commit, TransactionalCommitStep):
            commit.output = produce  # releases held outputs at each commit
        return produce

    def _output_topic_watch(self) -> OutputTopicWatches:
        """Watches the ids of the verdict and dead-letter topics (Kafka only: the in-memory
        broker has none)."""
        kafka = self.settings.kafka
        probe = None
        if isinstance(self.backend, KafkaBackend):
            probe = topic_id_probe(producer_config(kafka))
        recreated = self.metrics.output_topic_recreated
        topics = dict.fromkeys([kafka.verdict_topic, kafka.dead_letter_topic])
        return OutputTopicWatches([OutputTopicWatch(t, probe, recreated) for t in topics])

    def _pipeline(
        self,
        detector: LoadedDetector,
        output: ProduceStep,
        backpressure: Backpressure,
        is_live: Callable[[Envelope], bool],
    ) -> Pipeline:
        """The shared pipeline with the live extras: the verdict cache and provenance."""
        predictor = with_cache(detector, self.settings.cache, self.metrics.registry)
        cache = getattr(predictor, "cache", None)  # the verdict cache, when enabled
        return build_pipeline(
            self.settings,
            predictor,
            output,
            self.metrics,
            backpressure,
            is_live=is_live,
            cache=cache,
        )

    def _commit_step(
        self,
        consumer: ConsumerClient,
        producers: ProducerHandle,
        tracker: CommitTracker,
        results: CommitResults,
    ) -> CommitStep:
        kafka = self.settings.kafka
        policy = CommitPolicy(kafka.commit_interval_s)
        if not kafka.exactly_once:
            return CommitStep(consumer, tracker, self.metrics, policy, results)
        return TransactionalCommitStep(
            consumer,
            producers,
            tracker,
            self.metrics,
            policy,
            results,
            reset_to_beginning=kafka.auto_offset_reset == "earliest",
        )

    def _records(self, detector: LoadedDetector) -> RecordFactory:
        """Shared with replay (:mod:`consumer.pipeline.assembly`): the same decision policy and
        band."""
        return record_factory(
            self.settings, detector.info, latest_topic=self.settings.kafka.latest_verdict_topic
        )

    # -- callbacks ---------------------------------------------------------------------------

    def _on_client_error(self, err: BrokerError) -> None:
        if err.fatal:
            log.error("kafka_fatal_error", error=str(err))
            self._stop.set()
        else:
            log.warning("kafka_error", error=str(err))

    def _on_producer_error(self, err: BrokerError) -> None:
        """Transactional producer: a fatal error surfaces in the next transactional call, where
        the commit step replaces the producer (or stops the service when it was fenced)."""
        level = logging.ERROR if err.fatal else logging.WARNING
        log.log(level, "kafka_producer_error", error=str(err))

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


def _close_producer(producer: ProducerClient) -> None:
    """Flush; close when nothing is outstanding (releases librdkafka's threads now)."""
    try:
        left = producer.flush(2.0)
        if left:
            log.warning("unflushed_records", count=left)
        else:
            producer.close()
    except BrokerError as exc:  # a producer in a fatal state
        log.warning("producer_close_failed", error=str(exc))

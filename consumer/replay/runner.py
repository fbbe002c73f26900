"""The replay loop: assigned partitions -> the service's own steps -> an output, resumable.

The pipeline is the consumer's (:func:`consumer.pipeline.factory.build_pipeline`), ending in the
output's sink (:meth:`~consumer.replay.output.ReplayOutput.sink`: the live produce step for an
audit topic) and :class:`ReplayReceipts` instead of the commit step; admission is the same
:class:`~consumer.pipeline.backpressure.Backpressure` (in-flight messages and the pixel budget) that
pauses and resumes the partitions. The consumer has its own group id
(``synthscan-replay-<run_id>``), uses ``assign()`` and never commits: progress lives in the
run's state file, advanced with the same ordering rule as live commits
(:class:`~consumer.pipeline.commit_tracker.CommitTracker`): every offset below the saved one is
written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from consumer.items import Delivered
from consumer.kafka import BrokerCode, BrokerError, ConsumedRecord, PartitionOffset
from consumer.kafka.backend import KafkaBackend, ReplayBackend
from consumer.kafka.clients import ReaderClient
from consumer.kafka.config import replay_consumer_config
from consumer.kafka.messages import to_envelope
from consumer.output.records import RecordFactory
from consumer.pipeline.commit_tracker import CommitTracker
from consumer.pipeline.factory import backpressure_for, build_pipeline
from consumer.pipeline.steps.base import ProcessingStep
from consumer.pipeline.steps.detect import Predictor
from consumer.replay.output import ReplayOutput
from consumer.replay.ranges import OffsetRange, Partition
from consumer.replay.state import ReplayState
from consumer.serving.metrics import Metrics
from consumer.settings import ServiceSettings
from schemas import ReplayInfo

__all__ = ["ReplayReceipts", "ReplayResult", "ReplayRunner"]

log = structlog.get_logger("consumer.replay")

_SAVE_EVERY_S = 2.0


@dataclass
class ReplayResult:
    """What a run did (this invocation only)."""

    run_id: str
    verdicts: int
    dead_letters: int
    seconds: float
    complete: bool

    @property
    def events_per_s(self) -> float:
        return (self.verdicts + self.dead_letters) / self.seconds if self.seconds > 0 else 0.0


class ReplayReceipts(ProcessingStep[Delivered]):
    """Last step: a written record marks its offset done (the state file's progress)."""

    def __init__(self, tracker: CommitTracker, on_written: Callable[[], None]) -> None:
        self._tracker = tracker
        self._on_written = on_written
        self.verdicts = 0
        self.dead_letters = 0

    def submit(self, item: Delivered) -> None:
        env = item.envelope
        self._tracker.done(env.tp, env.offset, env.epoch)
        if item.dead_letter:
            self.dead_letters += 1
        else:
            self.verdicts += 1
        self._on_written()

    def poll(self) -> None:
        """Nothing asynchronous."""

    def join(self, timeout: float | None = None) -> None:
        """Nothing buffered."""

    def close(self) -> None:
        """The runner closes the output."""


class ReplayRunner:
    """Replays ``state.ranges`` through ``predictor`` into ``output``; see the module doc."""

    def __init__(
        self,
        settings: ServiceSettings,
        state: ReplayState,
        predictor: Predictor,
        records: RecordFactory,
        output: ReplayOutput,
        *,
        progress: bool = True,
        stop: threading.Event | None = None,
        backend: ReplayBackend | None = None,
    ) -> None:
        self.settings = settings
        self.backend: ReplayBackend = backend or KafkaBackend()
        self.state = state
        self.output = output
        self.stop = stop or threading.Event()
        self._progress = progress
        self._tracker = CommitTracker()
        self._metrics = Metrics()
        replay = ReplayInfo(
            run_id=state.run_id,
            model_version=str(state.model.get("version", "unknown")),
            started_at=datetime.fromisoformat(state.started_at),
        )
        self._bar: Any = None
        self._closed: dict[Partition, int] = {}
        self.outside_window = 0
        """Records read and skipped: their timestamp is outside the window."""
        self.receipts = ReplayReceipts(self._tracker, self._tick)
        self.sink = output.sink(records.with_replay(replay), self.receipts, self._metrics)
        limit = settings.batching.max_in_flight_messages
        self._backpressure = backpressure_for(settings, limit)
        self._pipeline = build_pipeline(
            settings, predictor, self.sink, self._metrics, self._backpressure
        )
        self._head = self._pipeline.head

    def _tick(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def run(self) -> ReplayResult:
        """Replay until every range is done (or ``stop``); save progress; never commit."""
        began = time.monotonic()
        ranges = [r for r in self.state.ranges if self.state.next_offset(r) < r.end]
        consumer = self.backend.reader(
            replay_consumer_config(self.settings.kafka, self.state.run_id)
        )
        skip = self.output.already_written()
        self._tracker.assign([r.tp for r in self.state.ranges])
        for r in self.state.ranges:  # nothing left: saved progress stays
            if self.state.next_offset(r) >= r.end:
                self.state.next_offsets[r.tp] = max(r.end, self.state.next_offsets.get(r.tp, 0))
        self._open_bar()
        try:
            if ranges:
                consumer.assign(
                    [
                        PartitionOffset(r.topic, r.partition, self.state.next_offset(r))
                        for r in ranges
                    ]
                )
                self._loop(consumer, {r.tp: r for r in ranges}, skip)
            if not self.stop.is_set():  # interrupted: in-flight work is redone on resume
                self._head.join(30.0)
            complete = not self.stop.is_set() and self._tracker.in_flight() == 0
            self._save(complete=complete)
        finally:
            self._pipeline.close()
            consumer.close()
            if self._bar is not None:
                self._bar.close()
        result = ReplayResult(
            self.state.run_id,
            self.receipts.verdicts,
            self.receipts.dead_letters,
            time.monotonic() - began,
            self.state.complete,
        )
        log.info(
            "replay_done",
            run_id=result.run_id,
            verdicts=result.verdicts,
            dead_letters=result.dead_letters,
            seconds=round(result.seconds, 2),
            events_per_s=round(result.events_per_s, 1),
            complete=result.complete,
            outside_window=self.outside_window,
        )
        return result

    def _open_bar(self) -> None:
        if not self._progress:
            return
        from tqdm import tqdm  # type: ignore[import-untyped]

        self._bar = tqdm(
            total=self.state.remaining(), unit="ev", desc=f"replay {self.state.run_id}"
        )

    def _loop(
        self, consumer: ReaderClient, open_ranges: dict[Partition, OffsetRange], skip: set[Any]
    ) -> None:
        """Consume, submit and poll until every range is closed and written (or ``stop``).

        While the pipeline is full the open ranges are paused and ``consume`` only serves
        callbacks (its timeout is the loop's pace); they resume once it drained to half.
        """
        last_save = time.monotonic()
        while not self.stop.is_set() and (open_ranges or self._tracker.in_flight() > 0):
            in_flight = self._tracker.in_flight()
            self._pace(consumer, open_ranges, in_flight)
            room = self._backpressure.max_in_flight - in_flight
            wait = 0.005 if in_flight else 0.1
            due = self._pipeline.due_in()
            wait = wait if due is None else min(wait, due)
            count = max(1, min(room, self.settings.kafka.consume_batch))
            for msg in consumer.consume(count, wait):
                self._accept(consumer, msg, open_ranges, skip)
            self._head.poll()
            if time.monotonic() - last_save >= _SAVE_EVERY_S:
                self._save(complete=False)
                last_save = time.monotonic()

    def _pace(
        self, consumer: ReaderClient, open_ranges: dict[Partition, OffsetRange], in_flight: int
    ) -> None:
        """Pause the open ranges when the pipeline admits no more; resume when it drained."""
        if not self._backpressure.admits(in_flight):
            if self._backpressure.on_rejected():
                consumer.pause([PartitionOffset(t, p) for t, p in open_ranges])
        elif self._backpressure.on_progress(in_flight, carrying=False):
            consumer.resume([PartitionOffset(t, p) for t, p in open_ranges])

    def _accept(
        self,
        consumer: ReaderClient,
        msg: ConsumedRecord | BrokerError,
        open_ranges: dict[Partition, OffsetRange],
        skip: set[Any],
    ) -> None:
        if isinstance(msg, BrokerError):
            if msg.code == BrokerCode.PARTITION_EOF:  # the end at start is <= this
                self._close_range(consumer, (str(msg.topic), int(msg.partition or 0)), open_ranges)
            elif msg.fatal:
                raise msg
            else:
                log.warning("consume_error", error=str(msg))
            return
        tp = (msg.topic, msg.partition)
        r = open_ranges.get(tp)
        if r is None:
            return
        offset = msg.offset
        if offset >= r.end:
            self._close_range(consumer, tp, open_ranges)
            return
        epoch = self._tracker.register(tp, offset)
        outside = not r.wants(msg.timestamp_ms)
        if outside or (tp[0], tp[1], offset) in skip:  # not in the window, or written before
            self._tracker.done(tp, offset, epoch)
            self.outside_window += outside
            self._tick()
        else:
            self._head.submit(to_envelope(msg, epoch))
        if offset + 1 >= r.end:
            self._close_range(consumer, tp, open_ranges)

    def _close_range(
        self, consumer: ReaderClient, tp: Partition, open_ranges: dict[Partition, OffsetRange]
    ) -> None:
        r = open_ranges.pop(tp, None)
        if r is not None:
            consumer.pause([PartitionOffset(tp[0], tp[1])])
            self._closed[tp] = r.end

    def _save(self, complete: bool) -> None:
        """Make the output durable first, then record how far it goes."""
        self.state.output_bytes = self.output.durable()
        offsets = self._tracker.committable()
        for tp, end in self._closed.items():  # past the end: gaps/markers up to it count
            if self._tracker.in_flight([tp]) == 0:
                offsets[tp] = end
        for tp, offset in offsets.items():
            self.state.next_offsets[tp] = max(offset, self.state.next_offsets.get(tp, 0))
        self.state.complete = complete
        self.state.save()

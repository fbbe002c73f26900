"""Fetch/decode step: claim-check download (inline images skip it), then decoding.

Two stages with their own thread pools and limits (issue 19: one pool did both, and slow URLs
held every worker for their whole budget while inline images waited behind them): *fetch*
(``fetch_workers`` threads, at most ``max_per_host`` fetches per host at a time; more wait in
that host's queue without holding a thread) and *decode* (``decode_workers`` threads). Inline
images go straight to the decode stage, so no URL, however slow, delays them.

With a :class:`~consumer.pipeline.backpressure.PixelBudget`, a worker reserves the decode working
set (``DECODE_BYTES_PER_PIXEL`` a pixel, from the image header) before decoding, waiting while the
budget is full; once decoded it keeps only the size of the pixel tensor, released when that
tensor is freed (the detect step drops it after inference).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Protocol
from urllib.parse import urlsplit

from consumer.errors import FetchForbiddenError
from consumer.items import Envelope, Failure, Outcome, WorkItem
from consumer.pipeline.backpressure import PixelBudget, Reservation
from consumer.pipeline.steps.base import ProcessingStep, remaining
from consumer.serving.metrics import Metrics
from detector import DECODE_BYTES_PER_PIXEL, ImageLimits, decode_image

__all__ = ["FetchDecodeStep", "Fetcher"]

_JOIN_POLL_S = 0.05
_NO_REFS = "object refs are not enabled (no fetch object base URL configured)"


class Fetcher(Protocol):
    """What the step needs of :class:`consumer.fetch.claim_check.ImageFetcher`."""

    def fetch(self, url: str, expected_sha256: str | None, expected_size: int | None) -> bytes: ...


class FetchDecodeStep(ProcessingStep[WorkItem]):
    """Runs fetch + decode of each item on a thread pool; forwards items as they finish.

    Completion order may differ from offset order: the commit tracker handles that. Failures
    become dead letters (codes from :func:`consumer.errors.error_code`).
    """

    def __init__(
        self,
        next_step: ProcessingStep[WorkItem],
        dead_letters: ProcessingStep[Outcome],
        fetcher: Fetcher | None,
        limits: ImageLimits,
        metrics: Metrics,
        *,
        workers: int = 8,
        decode_workers: int | None = None,
        max_per_host: int | None = None,
        resolve_ref: Callable[[str], str] | None = None,
        is_live: Callable[[Envelope], bool] = lambda _: True,
        enrich: Callable[[WorkItem, bytes], None] | None = None,
        pixels: PixelBudget | None = None,
    ) -> None:
        self.next_step = next_step
        self._enrich = enrich
        self._dead_letters = dead_letters
        self._fetcher = fetcher
        self._limits = limits
        self._metrics = metrics
        self._resolve_ref = resolve_ref
        self._is_live = is_live
        self._pixels = pixels
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch")
        self._decoders = ThreadPoolExecutor(
            max_workers=decode_workers or workers, thread_name_prefix="decode"
        )
        self._hosts = _HostSlots(max_per_host or workers)
        self._pending: list[Future[Outcome | None]] = []

    def submit(self, item: WorkItem) -> None:
        data = item.event.inline_bytes
        if data is not None:
            self._pending.append(self._decoders.submit(self._decode, item, data, time.time()))
            return
        outcome: Future[Outcome | None] = Future()
        self._pending.append(outcome)
        url = self._url(item)
        host = (urlsplit(url).hostname or "") if url else ""
        self._hosts.run(host, lambda: self._pool.submit(self._fetch_stage, item, outcome, host))

    def poll(self) -> None:
        self._forward_done()
        self.next_step.poll()

    def join(self, timeout: float | None = None) -> None:
        """Finish pending work, forwarding what is done meanwhile: a worker waiting for pixel
        room needs the decoded items ahead of it to reach the detector and free theirs."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._pending and remaining(deadline) != 0.0:
            left = remaining(deadline)
            step = _JOIN_POLL_S if left is None else min(_JOIN_POLL_S, left)
            wait(list(self._pending), timeout=step, return_when=FIRST_COMPLETED)
            self._forward_done()
            self.next_step.poll()
        self._forward_done()
        self.next_step.join(remaining(deadline))

    def close(self) -> None:
        if self._pixels is not None:
            self._pixels.close()  # wake workers waiting for pixel room
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._decoders.shutdown(wait=False, cancel_futures=True)
        self.next_step.close()

    def _forward_done(self) -> None:
        if not self._pending:
            return
        still: list[Future[Outcome | None]] = []
        for future in self._pending:
            if not future.done():
                still.append(future)
                continue
            if future.cancelled() or future.exception() is not None:  # shut down meanwhile
                continue
            outcome = future.result()
            if isinstance(outcome, WorkItem):
                self.next_step.submit(outcome)
            elif isinstance(outcome, Failure):
                self._dead_letters.submit(outcome)
        self._pending = still

    def _fetch_stage(self, item: WorkItem, outcome: Future[Outcome | None], host: str) -> None:
        """On a fetch worker: download, then hand the bytes to the decode stage."""
        try:
            if not self._is_live(item.envelope):
                outcome.set_result(None)
                return
            started = time.time()
            try:
                data = self._fetch(item)
            except Exception as exc:
                outcome.set_result(
                    Failure.of(item.envelope, exc, event=item.event, first_failure_at=started)
                )
                return
            decoding = self._decoders.submit(self._decode, item, data, started)
            decoding.add_done_callback(lambda done: _settle(outcome, done))
        except BaseException as exc:  # shut down meanwhile: nothing to forward
            if not outcome.done():
                outcome.set_exception(exc)
        finally:
            self._hosts.done(host)

    def _decode(self, item: WorkItem, data: bytes, started: float) -> Outcome | None:
        if not self._is_live(item.envelope):
            return None
        held: list[Reservation] = []
        try:
            began = time.perf_counter()
            item.image_size = len(data)
            item.image = decode_image(
                data, self._limits, before_decode=lambda w, h: self._admit(item, w, h, held)
            )
            item.timings.decode_ms = (time.perf_counter() - began) * 1000.0
            if self._enrich is not None:  # provenance + PDQ (never raises)
                self._enrich(item, data)
            del data  # the encoded bytes are not needed any more
            if held:
                held[0].shrink(item.image.nbytes)
                held[0].release_with(item.image.pixels)
                held.clear()
            return item
        except _Dropped:
            return None
        except Exception as exc:  # decode or enrichment: a dead letter
            return Failure.of(item.envelope, exc, event=item.event, first_failure_at=started)
        finally:
            for reservation in held:  # decoding failed: give the working set back
                reservation.release()

    def _admit(self, item: WorkItem, width: int, height: int, held: list[Reservation]) -> None:
        """Reserve the decode working set; waits while the pixel budget is full."""
        if self._pixels is None:
            return
        reservation = self._pixels.reserve(
            width * height * DECODE_BYTES_PER_PIXEL,
            keep_waiting=lambda: self._is_live(item.envelope),
        )
        if reservation is None:  # revoked while waiting, or shutting down
            raise _Dropped()
        held.append(reservation)

    def _url(self, item: WorkItem) -> str | None:
        url = item.event.url
        if url is None and item.event.ref is not None and self._resolve_ref is not None:
            try:
                url = self._resolve_ref(item.event.ref)
            except Exception:  # raised again (a dead letter) by the fetch stage
                return None
        return url

    def _fetch(self, item: WorkItem) -> bytes:
        url = item.event.url
        if url is None and item.event.ref is not None and self._resolve_ref is not None:
            url = self._resolve_ref(item.event.ref)
        if url is None or self._fetcher is None:
            raise FetchForbiddenError(_NO_REFS)
        began = time.perf_counter()
        try:
            return self._fetcher.fetch(url, item.event.sha256, item.event.size_bytes)
        finally:
            seconds = time.perf_counter() - began
            item.timings.fetch_ms = seconds * 1000.0
            self._metrics.fetch_latency.observe(seconds)


def _settle(outcome: Future[Outcome | None], done: Future[Outcome | None]) -> None:
    if done.cancelled():
        outcome.set_result(None)
    elif done.exception() is not None:
        outcome.set_exception(done.exception())
    else:
        outcome.set_result(done.result())


class _HostSlots:
    """At most ``limit`` fetches per host at a time; the others wait in the host's queue (not
    on a thread) and start, in order, as that host's fetches finish."""

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._lock = threading.Lock()
        self._active: dict[str, int] = {}
        self._waiting: dict[str, deque[Callable[[], object]]] = {}

    def run(self, host: str, start: Callable[[], object]) -> None:
        with self._lock:
            if self._active.get(host, 0) >= self._limit:
                self._waiting.setdefault(host, deque()).append(start)
                return
            self._active[host] = self._active.get(host, 0) + 1
        try:
            start()
        except RuntimeError:  # the pool was shut down
            self.done(host)

    def done(self, host: str) -> None:
        with self._lock:
            queue = self._waiting.get(host)
            if queue:
                start = queue.popleft()  # the slot passes to the next of this host
                if not queue:
                    del self._waiting[host]
            else:
                self._active[host] -= 1
                if not self._active[host]:
                    del self._active[host]
                return
        try:
            start()
        except RuntimeError:  # the pool was shut down
            self.done(host)


class _Dropped(Exception):
    """The item was revoked (or the step closed) while waiting for pixel room."""

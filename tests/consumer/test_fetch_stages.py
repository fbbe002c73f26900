"""Fetching and decoding are separate stages with separate limits (issue 19): slow URLs hold
fetch workers only, never the decoding of inline images, and no host gets more than
``max_per_host`` fetches at a time."""

from __future__ import annotations

import threading
import time
from collections import Counter

from consumer_support import Collect, encode, image_event
from kafka_support import image_bytes

from consumer.items import Envelope, WorkItem
from consumer.pipeline.steps.fetch_decode import FetchDecodeStep
from consumer.serving.metrics import Metrics
from detector import ImageLimits
from schemas import parse_image_event


def url_item(offset: int, url: str) -> WorkItem:
    value, headers = encode(image_event(f"u{offset}", url=url))
    env = Envelope("t", 0, offset, None, value, tuple(headers), None, 1)
    return WorkItem(envelope=env, event=parse_image_event(value, headers))


def inline_item(offset: int) -> WorkItem:
    value, headers = encode(image_event(f"i{offset}", data=image_bytes(offset)))
    env = Envelope("t", 0, offset, None, value, tuple(headers), None, 1)
    return WorkItem(envelope=env, event=parse_image_event(value, headers))


class SlowHostFetcher:
    """``slow.example`` trickles for ``seconds``; other hosts answer at once. Records the
    most fetches in progress per host."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.active: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self._lock = threading.Lock()

    def fetch(self, url: str, expected_sha256: str | None, expected_size: int | None) -> bytes:
        host = url.split("/")[2]
        with self._lock:
            self.active[host] += 1
            self.peak[host] = max(self.peak[host], self.active[host])
        try:
            if host == "slow.example":
                time.sleep(self.seconds)
            return image_bytes(7)
        finally:
            with self._lock:
                self.active[host] -= 1


def test_slow_urls_never_delay_inline_images() -> None:
    sink = Collect()
    fetcher = SlowHostFetcher(seconds=1.5)
    step = FetchDecodeStep(sink, Collect(), fetcher, ImageLimits(), Metrics(), workers=4)
    try:
        for i in range(16):  # 16 slow fetches: 6 s of the 4 fetch workers
            step.submit(url_item(i, f"http://slow.example/{i}.png"))
        for i in range(16, 20):
            step.submit(inline_item(i))
        arrived = None
        began = time.monotonic()
        while arrived is None and time.monotonic() - began < 15:
            step.poll()
            if any(item.event_id.startswith("i") for item in sink.items):
                arrived = time.monotonic() - began
            time.sleep(0.01)
        assert arrived is not None and arrived < 1.0, arrived
    finally:
        step.close()


def test_fetches_per_host_are_limited_and_other_hosts_go_on() -> None:
    sink = Collect()
    fetcher = SlowHostFetcher(seconds=0.5)
    step = FetchDecodeStep(
        sink, Collect(), fetcher, ImageLimits(), Metrics(), workers=8, max_per_host=2
    )
    try:
        for i in range(8):
            step.submit(url_item(i, f"http://slow.example/{i}.png"))
        step.submit(url_item(8, "http://fast.example/8.png"))
        began, fast = time.monotonic(), None
        while len(sink.items) < 9 and time.monotonic() - began < 15:
            step.poll()
            if fast is None and any(item.event_id == "u8" for item in sink.items):
                fast = time.monotonic() - began
            time.sleep(0.01)
        assert len(sink.items) == 9
        assert fetcher.peak["slow.example"] == 2
        assert fast is not None and fast < 0.4, fast
    finally:
        step.close()

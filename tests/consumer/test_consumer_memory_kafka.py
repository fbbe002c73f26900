"""Memory under a pixel flood: small files that decode to many pixels stay within the budget."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from consumer_support import TopicReader, Topics, encode, image_event, produce
from kafka_support import image_bytes
from PIL import Image

from consumer import Service
from detector import Detector

pytestmark = pytest.mark.kafka

SIDE = 2000  # 4 Mpx: 12 MB decoded, 52 MB decode working set, a ~15 KB PNG
BUDGET = 64 * 1024 * 1024
FLOOD = 8


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class RssSampler:
    """Samples this process's RSS every 10 ms in a thread; ``peak`` is the highest seen."""

    def __init__(self) -> None:
        self.base = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss_bytes())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak - self.base


def _solid_png(index: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (SIDE, SIDE), (index * 20 % 256, 255 - index, 7)).save(buf, "PNG")
    return buf.getvalue()


def test_pixel_flood_stays_within_the_pixel_budget(
    topics_factory: Callable[[int], Topics],
    checkpoint: Path,
    detector: Detector,
    run_service: Callable[..., Service],
) -> None:
    topics = topics_factory(1)
    flood = [_solid_png(i) for i in range(FLOOD)]
    assert sum(map(len, flood)) < 1024 * 1024  # 8 x 4 Mpx in under 1 MiB
    messages = [
        (f"px-{i}".encode(), *encode(image_event(f"px-{i}", data=data), inline="raw"))
        for i, data in enumerate(flood)
    ]
    good = image_bytes(1)
    messages.append((b"good", *encode(image_event("good", data=good), inline="raw")))
    warm = [(b"warm", *encode(image_event("warm", data=image_bytes(2)), inline="raw"))]
    produce(topics.bootstrap, topics.input, warm)

    settings = topics.settings(checkpoint, batching={"max_in_flight_pixel_bytes": BUDGET})
    service = run_service(settings, detector=detector)
    reader = TopicReader(topics.bootstrap, topics.verdicts)
    reader.read_until(1, timeout=120)  # libraries and pools loaded: measure the flood alone
    sampler = RssSampler()
    produce(topics.bootstrap, topics.input, messages)
    reader.read_until(len(messages) + 1, timeout=120)
    growth = sampler.stop()
    ids = sorted(v.event_id for v in reader.verdicts() if v.event_id != "warm")
    reader.close()
    assert ids == sorted([*(f"px-{i}" for i in range(FLOOD)), "good"])
    assert service.pixels is not None
    assert 0 < service.pixels.peak <= BUDGET  # the tracked in-flight pixels never exceeded it
    assert service.pixels.held == 0  # every reservation was given back
    # The budget bounds decoded pixels; the rest of the growth is the detector's own working set
    # for a batch of 4 Mpx images (bounded by its max_padded_pixels), about 400-700 MiB on CPU
    # depending on the runtime and on allocator arenas. The 1 GiB cap catches a return of the
    # unbounded decode (16 x 100 Mpx PNGs once took RSS from 0.7 to 9.1 GB).
    print(f"rss growth {growth / 2**20:.0f} MiB, pixel peak {service.pixels.peak / 2**20:.0f} MiB")
    assert growth < 1024 * 1024 * 1024, f"RSS grew by {growth / 2**20:.0f} MiB"

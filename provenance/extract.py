"""One entry point: every provenance source of one image, within a size and a time bound.

The sources run in a small worker pool and the caller waits at most ``timeout_s``: a source
stuck in native code (the C2PA SDK) cannot block the batch; the image gets a report that
says ``timed out`` and its verdict goes on. The stuck call keeps its worker until it returns
(native code cannot be interrupted); when every worker is stuck, further images skip the
sources at once (``workers busy``) instead of queueing behind them. Inputs over
``max_bytes`` are not handed to the parsers at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from provenance import c2pa_source, metadata, watermark
from provenance.findings import Finding, ProvenanceReport, Unreadable, clip
from provenance.pdq import pdq_hash

__all__ = ["Extractor", "ProvenanceConfig"]

MAX_FINDINGS = 64
MAX_UNREADABLE = 16
_Sources = tuple[list[Finding], list[Unreadable], str | None]
_Step = Callable[[], tuple[list[Finding], list[Unreadable]]]


@dataclass(frozen=True, slots=True)
class ProvenanceConfig:
    """What to extract and the bounds (the consumer's ``provenance`` settings)."""

    enabled: bool = True
    c2pa: bool = True
    trust_anchors: Path | None = None
    """PEM bundle of the C2PA trust anchors; without it no manifest can be ``Trusted``."""
    max_bytes: int = 52_428_800
    """Larger inputs are not parsed for metadata (reported unreadable)."""
    max_text_bytes: int = 1_048_576
    """Cap of one XMP packet or PNG text chunk (inflated size for compressed text)."""
    timeout_s: float = 2.0
    """Longest wait for the metadata sources of one image."""
    workers: int = 2
    watermark: bool = False
    """Decode the SD/SDXL invisible watermark (80-375 ms per 512x512 image, measured)."""
    watermark_max_pixels: int = 1_048_576
    pdq: bool = True


class Extractor:
    """Thread-safe; share one per process."""

    def __init__(self, config: ProvenanceConfig = ProvenanceConfig()) -> None:
        self.config = config
        self._anchors = config.trust_anchors.read_text() if config.trust_anchors else None
        self._pool = ThreadPoolExecutor(config.workers, thread_name_prefix="provenance")
        self._lock = threading.Lock()
        self._overdue = 0
        self._watermark = config.watermark and watermark.available()
        if config.watermark and not self._watermark:
            logging.getLogger(__name__).warning(
                "watermark decoding requested but invisible-watermark is not installed "
                "(pip install 'synthscan[watermark]'); it stays off"
            )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def extract(self, data: bytes, rgb: np.ndarray | None = None) -> ProvenanceReport:
        """The report of one image: ``data`` its file bytes, ``rgb`` its decoded pixels."""
        began = time.perf_counter()
        timings: dict[str, float] = {}
        pdq = None
        if self.config.pdq and rgb is not None:
            pdq = pdq_hash(rgb)
            timings["pdq_ms"] = (time.perf_counter() - began) * 1000.0
        if not self.config.enabled:
            return ProvenanceReport(pdq=pdq, extra=timings)
        findings, unreadable, state = self._bounded(data, rgb, timings)
        if len(findings) > MAX_FINDINGS:  # e.g. thousands of text chunks: keep the first ones
            dropped = len(findings) - MAX_FINDINGS
            findings = findings[:MAX_FINDINGS]
            unreadable.append(Unreadable("metadata", f"{dropped} more findings dropped"))
        unreadable = unreadable[:MAX_UNREADABLE]
        elapsed = (time.perf_counter() - began) * 1000.0
        return ProvenanceReport(
            tuple(findings), tuple(unreadable), elapsed, state, pdq, extra=timings
        )

    def _bounded(self, data: bytes, rgb: np.ndarray | None, timings: dict[str, float]) -> _Sources:
        if len(data) > self.config.max_bytes:
            reason = f"skipped: {len(data)} bytes over {self.config.max_bytes}"
            return [], [Unreadable("metadata", reason)], None
        with self._lock:
            if self._overdue >= self.config.workers:
                return [], [Unreadable("metadata", "skipped: workers busy with stuck inputs")], None
        began = time.perf_counter()
        future = self._pool.submit(self._sources, data, rgb, timings)
        try:
            result = future.result(timeout=self.config.timeout_s)
        except FutureTimeout:
            with self._lock:
                self._overdue += 1
            future.add_done_callback(self._settled)
            reason = f"timed out after {self.config.timeout_s:g} s"
            return [], [Unreadable("metadata", reason)], None
        timings["metadata_ms"] = (time.perf_counter() - began) * 1000.0
        return result

    def _settled(self, _future: Future[_Sources]) -> None:
        with self._lock:
            self._overdue -= 1

    def _sources(self, data: bytes, rgb: np.ndarray | None, timings: dict[str, float]) -> _Sources:
        cap = self.config.max_text_bytes
        findings: list[Finding] = []
        unreadable: list[Unreadable] = []
        state = None
        steps: list[tuple[str, _Step]] = [
            ("xmp", lambda: metadata.read_xmp(data, cap)),
            ("png_text", lambda: metadata.read_png_text(data, cap)),
            ("exif", lambda: metadata.read_exif(data)),
        ]
        for name, step in steps:
            found, bad = _guarded(name, step)
            findings += found
            unreadable += bad
        if self.config.c2pa:
            t0 = time.perf_counter()
            try:
                found, bad, state = c2pa_source.read_c2pa(data, self._anchors)
            except Exception as exc:  # a crash in the SDK binding is a report, not a crash
                found, bad = [], [Unreadable("c2pa", clip(f"{type(exc).__name__}: {exc}"))]
            timings["c2pa_ms"] = (time.perf_counter() - t0) * 1000.0
            findings += found
            unreadable += bad
        if self._watermark and rgb is not None:
            t0 = time.perf_counter()
            max_px = self.config.watermark_max_pixels
            found, bad = _guarded("watermark", lambda: watermark.read_watermark(rgb, max_px))
            timings["watermark_ms"] = (time.perf_counter() - t0) * 1000.0
            findings += found
            unreadable += bad
        return findings, unreadable, state


def _guarded(name: str, step: _Step) -> tuple[list[Finding], list[Unreadable]]:
    try:
        return step()
    except Exception as exc:  # RecursionError included: deep JSON is a report
        return [], [Unreadable(name, clip(f"{type(exc).__name__}: {exc}"))]

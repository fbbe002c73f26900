"""Provenance step of the pipeline: findings and PDQ of every decoded image, within bounds.

Runs in the fetch/decode pool right after decoding (a hook of
:class:`~consumer.pipeline.steps.fetch_decode.FetchDecodeStep`), so it costs no time on the poll
loop or the model thread. It never raises: whatever goes wrong becomes an ``unreadable`` entry of
the image's report and the verdict goes on. The PDQ hash is handed to the verdict cache for
its near-duplicate tier.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from consumer.pipeline.verdict_cache import pixel_digest
from provenance import Extractor, ProvenanceConfig, ProvenanceReport, Unreadable
from provenance.findings import clip

if TYPE_CHECKING:
    from consumer.items import WorkItem
    from consumer.pipeline.verdict_cache import VerdictCache

__all__ = ["ProvenanceEnricher", "ProvenanceMetrics"]

log = structlog.get_logger("consumer.provenance")


class ProvenanceMetrics:
    """``synthscan_provenance_*``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.seconds = Histogram(
            "synthscan_provenance_seconds",
            "Provenance extraction + PDQ time per image.",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )
        self.findings = Counter(
            "synthscan_provenance_findings",
            "Provenance findings, by kind and whether verified.",
            ["kind", "verified"],
            registry=registry,
        )
        self.unreadable = Counter(
            "synthscan_provenance_unreadable",
            "Sources present but unreadable within the bounds (or skipped), by source.",
            ["source"],
            registry=registry,
        )


class ProvenanceEnricher:
    """Callable hook ``(item, image bytes) -> None`` that sets ``item.provenance``."""

    def __init__(
        self,
        settings: ProvenanceConfig,
        registry: CollectorRegistry | None = None,
        cache: VerdictCache | None = None,
    ) -> None:
        self.extractor = Extractor(settings)
        self.metrics = ProvenanceMetrics(registry) if registry is not None else None
        self._cache = cache

    def close(self) -> None:
        self.extractor.close()

    def __call__(self, item: WorkItem, data: bytes) -> None:
        began = time.perf_counter()
        image = item.image
        try:
            rgb: Any = None if image is None else image.pixels.permute(1, 2, 0).numpy()
            report = self.extractor.extract(data, rgb)
        except Exception as exc:  # never lose the verdict over provenance
            log.warning("provenance_failed", event_id=item.event_id, error=repr(exc))
            report = ProvenanceReport(unreadable=(Unreadable("provenance", clip(repr(exc))),))
        item.provenance = report
        if self._cache is not None and image is not None:
            self._cache.note_pixels(image.sha256, pixel_digest(image))  # off the model thread
            if report.pdq is not None:
                self._cache.note_pdq(image.sha256, report.pdq, item.event_id)
        if self.metrics is not None:
            self.metrics.seconds.observe(time.perf_counter() - began)
            for finding in report.findings:
                self.metrics.findings.labels(finding.kind, str(finding.verified).lower()).inc()
            for bad in report.unreadable:
                self.metrics.unreadable.labels(bad.source).inc()

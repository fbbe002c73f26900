"""The one pipeline factory, used by the live service and by replay.

    parse -> fetch/decode -> batch -> detect -> output

Provenance (metadata, C2PA, PDQ) is read while decoding, in both, so replayed verdicts carry the
same decision and reasons as live ones; :meth:`Pipeline.close` stops its worker threads.
``output`` is the last part, given by the caller: the live service's produce -> commit steps
(:mod:`consumer.serving.service`), or replay's sink (:mod:`consumer.replay.runner`). Both turn an
outcome into its record with :func:`consumer.output.records.output_record`, so "a verdict that
cannot be built becomes a dead letter" is written once. Failures of any step go straight to
``output`` as :class:`~consumer.items.Failure` (codes: :mod:`consumer.errors`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from consumer.fetch.claim_check import ImageFetcher
from consumer.items import Envelope, Outcome
from consumer.pipeline.backpressure import Backpressure
from consumer.pipeline.steps.base import ProcessingStep
from consumer.pipeline.steps.batch import BatchStep
from consumer.pipeline.steps.detect import DetectStep, Predictor
from consumer.pipeline.steps.enrich import ProvenanceEnricher
from consumer.pipeline.steps.fetch_decode import FetchDecodeStep
from consumer.pipeline.steps.parse import ParseStep
from consumer.pipeline.verdict_cache import VerdictCache
from consumer.serving.metrics import Metrics
from consumer.settings import ServiceSettings

__all__ = ["Pipeline", "backpressure_for", "build_pipeline"]


def _always(_env: Envelope) -> bool:
    return True


@dataclass(frozen=True)
class Pipeline:
    """The head the loop submits to, and when the pending batch is due."""

    head: ParseStep
    batch: BatchStep
    enrich: ProvenanceEnricher

    def due_in(self) -> float | None:
        """Seconds until the pending batch is due (the loop shortens its poll timeout)."""
        return self.batch.due_in()

    def close(self) -> None:
        """Close the steps and the provenance workers."""
        self.head.close()
        self.enrich.close()


def backpressure_for(settings: ServiceSettings, max_in_flight: int) -> Backpressure:
    """Admission: at most ``max_in_flight`` messages and the decoded-pixel budget."""
    pixel_bytes = settings.batching.max_in_flight_pixel_bytes
    return Backpressure.from_limit(max_in_flight, pixel_bytes)


def build_pipeline(
    settings: ServiceSettings,
    predictor: Predictor,
    output: ProcessingStep[Outcome],
    metrics: Metrics,
    backpressure: Backpressure,
    *,
    is_live: Callable[[Envelope], bool] = _always,
    cache: VerdictCache | None = None,
) -> Pipeline:
    """Chain the steps in front of ``output``; ``is_live`` drops work of revoked partitions;
    ``cache`` (the live verdict cache) learns each image's PDQ hash for near-duplicates."""
    batching, max_batch = settings.batching, settings.model.max_batch_size
    enrich = ProvenanceEnricher(settings.provenance, metrics.registry, cache)
    detect = DetectStep(predictor, output, metrics, max_batch, is_live)
    batch = BatchStep(detect, max_batch, batching.max_wait_ms / 1000.0)
    fetcher = ImageFetcher(settings.fetch)
    fetch = FetchDecodeStep(
        batch,
        output,
        fetcher,
        settings.model.limits,
        metrics,
        workers=batching.fetch_workers,
        decode_workers=batching.decode_workers,
        max_per_host=settings.fetch.max_per_host,
        resolve_ref=fetcher.resolve_ref,
        is_live=is_live,
        enrich=enrich,
        pixels=backpressure.pixels,
    )
    return Pipeline(ParseStep(fetch, output), batch, enrich)

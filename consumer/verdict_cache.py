"""Duplicate images: a bounded LRU of predictions keyed by (image sha256, model key).

Viral images arrive thousands of times; the second and later copies need no inference. The
cache sits in front of the detector as a :class:`~consumer.steps.detect.Predictor`
(:class:`CachingPredictor`), so the detect step is unchanged: a batch is split into hits and
unique misses, only the misses reach the model, and duplicates *within* a batch are scored
once. Hits come back as :class:`CachedPrediction` and their verdicts say ``cached=True``.

The model key is the weights sha256 plus the threshold (a re-calibrated model must not reuse
old labels). The cache is per process (one resident model per pod) and thread-safe.

Near-duplicate tier: the same picture re-encoded, resized or lightly cropped has other bytes
but a close PDQ hash. The provenance step hands each image's PDQ to :meth:`VerdictCache.note_pdq`
before the batch reaches the cache; an exact miss then looks for an earlier image within
``near_duplicate_distance`` bits (:class:`~provenance.pdq_index.PdqIndex`) whose prediction is
still cached, and reuses it with its patch boxes scaled to the new image's size; the verdict
says ``cached: true`` and ``cache_match: {kind: near_duplicate, distance}``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry

from consumer.metrics import VerdictCacheMetrics
from detector import PatchEvidence, Prediction
from provenance.findings import PdqHash
from provenance.pdq_index import PdqIndex

if TYPE_CHECKING:
    from detector import DecodedImage, ModelInfo

__all__ = ["CachedPrediction", "CachingPredictor", "VerdictCache", "model_key", "with_cache"]

CacheKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class CachedPrediction(Prediction):
    """A prediction served from the cache (the verdict's ``cached`` and ``cache_match``)."""

    cached: bool = True
    match: str = "exact"
    """``exact`` (same sha256) or ``near_duplicate`` (PDQ within the distance)."""
    distance: int = 0
    """PDQ Hamming distance of a near-duplicate match."""


def model_key(info: ModelInfo) -> str:
    """What must match for a cached prediction to be reused: weights, threshold, adapters."""
    key = f"{info.name}:{info.version}:{info.weights_sha256}:{info.threshold:.6f}"
    adapters = getattr(info, "adapters", ())
    return key + "".join(f":{a.sha256}" for a in adapters)


class VerdictCache:
    """Bounded LRU of predictions; thread-safe; exports hit/miss/eviction metrics.

    Args:
        max_entries: capacity; the least recently used entry is evicted beyond it.
        registry: Prometheus registry for ``synthscan_verdict_cache_*`` (None: no metrics).
        near_duplicates: the PDQ index of the near-duplicate tier (None: exact matches only).
    """

    def __init__(
        self,
        max_entries: int,
        registry: CollectorRegistry | None = None,
        near_duplicates: PdqIndex[CacheKey] | None = None,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[CacheKey, Prediction] = OrderedDict()
        self._near = near_duplicates
        self._pdq: OrderedDict[str, PdqHash] = OrderedDict()  # sha256 -> PDQ, awaiting put()
        self.hits = 0
        self.near_hits = 0
        self.misses = 0
        self.evictions = 0
        self._metrics = VerdictCacheMetrics(registry) if registry is not None else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, sha256: str, model: str) -> CachedPrediction | None:
        """The cached prediction (marked cached) or None; counts a hit or a miss."""
        with self._lock:
            found = self._entries.get((sha256, model))
            if found is None:
                self.misses += 1
            else:
                self._entries.move_to_end((sha256, model))
                self.hits += 1
        if self._metrics is not None:
            (self._metrics.misses if found is None else self._metrics.hits).inc()
        return None if found is None else _as_cached(found)

    def note_pdq(self, sha256: str, pdq: PdqHash) -> None:
        """Remember the PDQ of an image on its way to the cache (bounded like the entries)."""
        if self._near is None or not sha256:
            return
        with self._lock:
            self._pdq[sha256] = pdq
            self._pdq.move_to_end(sha256)
            while len(self._pdq) > self.max_entries:
                self._pdq.popitem(last=False)

    def lookup(self, sha256: str, model: str, width: int, height: int) -> CachedPrediction | None:
        """Exact match, else the nearest near-duplicate still cached whose verdict was synthetic
        (a re-upload of a known fake); counts a hit or a miss. A near-copy of an image judged
        real is scored: it may be that photo regenerated or edited by a model, which PDQ cannot
        tell from a re-encode."""
        with self._lock:
            found = self._entries.get((sha256, model))
            if found is not None:
                self._entries.move_to_end((sha256, model))
            pdq = self._pdq.get(sha256) if found is None else None
        if found is not None:
            self._count(hit=True)
            return _as_cached(found)
        if pdq is not None and self._near is not None:
            for distance, key in self._near.nearest(pdq):
                if key[1] != model:
                    continue
                with self._lock:
                    earlier = self._entries.get(key)
                    if earlier is not None and not earlier.is_synthetic:
                        earlier = None  # a near-copy of a real photo may be an AI edit of it
                    if earlier is not None:
                        self._entries.move_to_end(key)
                        self.near_hits += 1
                if earlier is not None:
                    self._count(hit=True, near=True)
                    return _near_duplicate(earlier, distance, width, height)
        self._count(hit=False)
        return None

    def _count(self, hit: bool, near: bool = False) -> None:
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1
            ratio = self.hits / (self.hits + self.misses)
        if self._metrics is not None:
            (self._metrics.hits if hit else self._metrics.misses).inc()
            if near:
                self._metrics.near_hits.inc()
            self._metrics.hit_ratio.set(ratio)

    def put(self, sha256: str, model: str, prediction: Prediction) -> None:
        """Store ``prediction`` (a no-op for an empty sha256: PIL inputs have none)."""
        if not sha256:
            return
        evicted = 0
        with self._lock:
            pdq = self._pdq.pop(sha256, None)
            self._entries[(sha256, model)] = prediction
            self._entries.move_to_end((sha256, model))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                evicted += 1
            self.evictions += evicted
            size = len(self._entries)
        if pdq is not None and self._near is not None:
            self._near.add(pdq, (sha256, model))
        if self._metrics is not None:
            self._metrics.evictions.inc(evicted)
            self._metrics.size.set(size)
            if self._near is not None:
                self._metrics.near_entries.set(len(self._near))

    def count_hit(self) -> None:
        """Count a hit served outside :meth:`get` (a duplicate within one batch)."""
        with self._lock:
            self.hits += 1
        if self._metrics is not None:
            self._metrics.hits.inc()


class _Model(Protocol):
    info: ModelInfo

    def predict(self, images: Sequence[DecodedImage]) -> list[Prediction]: ...


class CachingPredictor:
    """A :class:`~consumer.steps.detect.Predictor` that asks the cache before the model."""

    def __init__(self, model: _Model, cache: VerdictCache) -> None:
        self.model = model
        self.cache = cache

    @property
    def info(self) -> ModelInfo:
        return self.model.info

    def predict(self, images: Sequence[DecodedImage]) -> list[Prediction]:
        """Hits from the cache, each unique miss through the model once, in input order."""
        key = model_key(self.model.info)
        results: list[Prediction | None] = []
        todo: dict[str, list[int]] = {}  # sha256 (or a unique stand-in) -> positions
        for index, image in enumerate(images):
            if image.sha256 in todo:  # a duplicate within this batch: scored once
                todo[image.sha256].append(index)
                results.append(None)
                self.cache.count_hit()
                continue
            hit = (
                self.cache.lookup(
                    image.sha256, key, getattr(image, "width", 0), getattr(image, "height", 0)
                )
                if image.sha256
                else None
            )
            results.append(hit)
            if hit is None:
                todo[image.sha256 or f"#{index}"] = [index]
        if todo:
            firsts = [positions[0] for positions in todo.values()]
            fresh = self.model.predict([images[i] for i in firsts])
            for positions, prediction in zip(todo.values(), fresh, strict=True):
                made_by = getattr(prediction, "model_info", None)  # a reload may have happened
                own_key = key if made_by is None else model_key(made_by)
                self.cache.put(images[positions[0]].sha256, own_key, prediction)
                results[positions[0]] = prediction
                for duplicate in positions[1:]:
                    results[duplicate] = _as_cached(prediction)
        return [r for r in results if r is not None]


def _as_cached(prediction: Prediction) -> CachedPrediction:
    if isinstance(prediction, CachedPrediction):
        return prediction
    return CachedPrediction(**{f.name: getattr(prediction, f.name) for f in fields(Prediction)})


def _near_duplicate(
    earlier: Prediction, distance: int, width: int, height: int
) -> CachedPrediction:
    """``earlier`` for an image of ``width`` x ``height``: patch boxes scaled and clipped."""
    sx, sy = width / max(earlier.width, 1), height / max(earlier.height, 1)
    patches = []
    for p in earlier.patches:
        x0, y0, x1, y1 = p.box
        nx0, ny0 = min(int(x0 * sx), width - 1), min(int(y0 * sy), height - 1)
        nx1 = min(max(round(x1 * sx), nx0 + 1), width)
        ny1 = min(max(round(y1 * sy), ny0 + 1), height)
        patches.append(
            PatchEvidence(p.rank, (nx0, ny0, nx1, ny1), p.window, p.activation, p.attention)
        )
    values = {f.name: getattr(earlier, f.name) for f in fields(Prediction)}
    values.update(patches=patches, width=width, height=height)
    return CachedPrediction(**values, match="near_duplicate", distance=distance)


def with_cache(model: _Model, settings: Any, registry: CollectorRegistry | None = None) -> Any:
    """``model`` behind a :class:`VerdictCache` per ``settings`` (a ``CacheSettings``), or as is."""
    if settings is None or not settings.enabled:
        return model
    near: PdqIndex[CacheKey] | None = None
    if getattr(settings, "near_duplicate", False):
        near = PdqIndex(
            settings.near_duplicate_max_entries,
            settings.near_duplicate_distance,
            settings.near_duplicate_min_quality,
        )
    return CachingPredictor(model, VerdictCache(settings.max_entries, registry, near))

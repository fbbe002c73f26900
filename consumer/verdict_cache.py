"""Duplicate images: a bounded LRU of predictions keyed by (image sha256, model key).

Viral images arrive thousands of times; the second and later copies need no inference. The
cache sits in front of the detector as a :class:`~consumer.steps.detect.Predictor`
(:class:`CachingPredictor`), so the detect step is unchanged: a batch is split into hits and
unique misses, only the misses reach the model, and duplicates *within* a batch are scored
once. Hits come back as :class:`CachedPrediction` and their verdicts say ``cached=True``.

The model key is the weights sha256 plus the threshold (a re-calibrated model must not reuse
old labels). The cache is per process (one resident model per pod) and thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry

from consumer.metrics import VerdictCacheMetrics
from detector import Prediction

if TYPE_CHECKING:
    from detector import DecodedImage, ModelInfo

__all__ = ["CachedPrediction", "CachingPredictor", "VerdictCache", "model_key", "with_cache"]

CacheKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class CachedPrediction(Prediction):
    """A prediction served from the cache (the verdict's ``cached`` field)."""

    cached: bool = True


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
    """

    def __init__(self, max_entries: int, registry: CollectorRegistry | None = None) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[CacheKey, Prediction] = OrderedDict()
        self.hits = 0
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

    def put(self, sha256: str, model: str, prediction: Prediction) -> None:
        """Store ``prediction`` (a no-op for an empty sha256: PIL inputs have none)."""
        if not sha256:
            return
        evicted = 0
        with self._lock:
            self._entries[(sha256, model)] = prediction
            self._entries.move_to_end((sha256, model))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                evicted += 1
            self.evictions += evicted
            size = len(self._entries)
        if self._metrics is not None:
            self._metrics.evictions.inc(evicted)
            self._metrics.size.set(size)

    def count_hit(self) -> None:
        """Count a hit served outside :meth:`get` (a duplicate within one batch)."""
        with self._lock:
            self.hits += 1
        if self._metrics is not None:
            self._metrics.hits.inc()

    def hit_ratio(self) -> float:
        with self._lock:
            total = self.hits + self.misses
            return self.hits / total if total else 0.0


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
            hit = self.cache.get(image.sha256, key) if image.sha256 else None
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


def with_cache(model: _Model, settings: Any, registry: CollectorRegistry | None = None) -> Any:
    """``model`` behind a :class:`VerdictCache` per ``settings`` (a ``CacheSettings``), or as is."""
    if settings is None or not settings.enabled:
        return model
    return CachingPredictor(model, VerdictCache(settings.max_entries, registry))

"""Duplicate images: a bounded LRU of predictions keyed by (image sha256, model key).

Viral images arrive thousands of times; the second and later copies need no inference. The
cache sits in front of the detector as a :class:`~consumer.pipeline.steps.detect.Predictor`
(:class:`CachingPredictor`), so the detect step is unchanged: a batch is split into hits and
unique misses, only the misses reach the model, and duplicates *within* a batch are scored
once. Only EXACT copies are hits: the same bytes (sha256) or the same decoded pixels (a
digest of the RGB array, noted by the provenance step in the decode pool: the same picture
re-wrapped, e.g. metadata stripped). Hits come back
as :class:`CachedPrediction` and their verdicts say ``cached=True``.

The model key is the weights sha256 plus the threshold (a re-calibrated model must not reuse
old labels). The cache is per process (one resident model per pod) and thread-safe.

Near-duplicate tier: near-duplicates never decide on their own. The provenance step hands
each image's PDQ (and event id) to :meth:`VerdictCache.note_pdq` before the batch reaches the
cache; an exact miss is SCORED by the model, and when an earlier image within
``near_duplicate_distance`` bits (:class:`~provenance.pdq_index.PdqIndex`) is still cached with
a synthetic label, the prediction comes back as :class:`MatchedPrediction`: the verdict says
``cached: false`` and ``cache_match: {kind: near_duplicate, distance, event_id}``, a
``cache_match`` reason, and the decision may move from ``real`` to ``uncertain`` (never to
``synthetic``). PDQ cannot tell a re-upload from an AI edit of a photo (both are a few bits
apart), so reusing a verdict would let anyone mark a genuine photo synthetic by posting an AI
edit of it first.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry

from consumer.serving.metrics import VerdictCacheMetrics
from detector import Prediction
from provenance.findings import PdqHash
from provenance.pdq_index import PdqIndex

if TYPE_CHECKING:
    from detector import DecodedImage, ModelInfo

__all__ = [
    "CachedPrediction",
    "CachingPredictor",
    "MatchedPrediction",
    "NearMatch",
    "VerdictCache",
    "model_key",
    "pixel_digest",
    "with_cache",
]

CacheKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class CachedPrediction(Prediction):
    """A prediction served from the cache (same bytes or pixels): ``cached`` verdicts."""

    cached: bool = True
    match: str = "exact"
    distance: int = 0


@dataclass(frozen=True, slots=True)
class NearMatch:
    """An earlier image with a synthetic label within the PDQ distance."""

    event_id: str
    distance: int


@dataclass(frozen=True, slots=True)
class MatchedPrediction(Prediction):
    """The model's own prediction of an image that is a PDQ near-duplicate of an earlier
    image labelled synthetic (``matched_event_id``): a reason, never the decision alone."""

    cached: bool = False
    match: str = "near_duplicate"
    distance: int = 0
    matched_event_id: str = ""


def pixel_digest(image: Any) -> str | None:
    """A digest of the decoded RGB pixels (and their shape), None without pixels."""
    pixels = getattr(image, "pixels", None)
    if pixels is None or pixels.numel() == 0:
        return None
    array = pixels.contiguous().numpy()
    digest = hashlib.blake2b(str(tuple(array.shape)).encode(), digest_size=20)
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


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
        self._pdq: OrderedDict[str, tuple[PdqHash, str]] = OrderedDict()  # awaiting put()
        self._events: dict[CacheKey, str] = {}  # the event id that was scored for an entry
        self._by_pixels: OrderedDict[tuple[str, str], CacheKey] = OrderedDict()
        self._digests: OrderedDict[str, str] = OrderedDict()  # sha256 -> pixel digest
        self.hits = 0
        self.near_hits = 0
        self.misses = 0
        self.evictions = 0
        self._metrics = VerdictCacheMetrics(registry) if registry is not None else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, sha256: str, model: str) -> Prediction | None:
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

    def note_pdq(self, sha256: str, pdq: PdqHash, event_id: str = "") -> None:
        """Remember the PDQ (and event id) of an image on its way to the cache (bounded)."""
        if self._near is None or not sha256:
            return
        with self._lock:
            self._pdq[sha256] = (pdq, event_id)
            self._pdq.move_to_end(sha256)
            while len(self._pdq) > self.max_entries:
                self._pdq.popitem(last=False)

    def note_pixels(self, sha256: str, digest: str | None) -> None:
        """Remember the pixel digest of an image on its way to the cache (computed in the
        fetch/decode pool by the provenance step, off the model's thread; bounded)."""
        if not sha256 or digest is None:
            return
        with self._lock:
            self._digests[sha256] = digest
            self._digests.move_to_end(sha256)
            while len(self._digests) > self.max_entries:
                self._digests.popitem(last=False)

    def noted_pixels(self, sha256: str) -> str | None:
        with self._lock:
            return self._digests.get(sha256)

    def lookup(self, sha256: str, model: str, pixels: str | None = None) -> Prediction | None:
        """The prediction of the same bytes, else of the same decoded pixels (a hit), or None
        (a miss: the image is scored)."""
        with self._lock:
            key = (sha256, model)
            if key not in self._entries and pixels is not None:
                key = self._by_pixels.get((pixels, model), key)
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
        self._count(hit=found is not None)
        return None if found is None else _as_cached(found)

    def near_synthetic(self, sha256: str, model: str) -> NearMatch | None:
        """The nearest earlier image within the PDQ distance, still cached, labelled synthetic
        (counted in ``near_duplicate_hits``; the image is scored all the same)."""
        with self._lock:
            noted = self._pdq.get(sha256)
        if noted is None or self._near is None:
            return None
        for distance, key in self._near.nearest(noted[0]):
            if key[1] != model:
                continue
            with self._lock:
                earlier = self._entries.get(key)
                event_id = self._events.get(key, "")
                if earlier is not None and earlier.is_synthetic:
                    self.near_hits += 1
                else:
                    continue
            if self._metrics is not None:
                self._metrics.near_hits.inc()
            return NearMatch(event_id, distance)
        return None

    def _count(self, hit: bool) -> None:
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1
            ratio = self.hits / (self.hits + self.misses)
        if self._metrics is not None:
            (self._metrics.hits if hit else self._metrics.misses).inc()
            self._metrics.hit_ratio.set(ratio)

    def put(
        self, sha256: str, model: str, prediction: Prediction, pixels: str | None = None
    ) -> None:
        """Store ``prediction`` (a no-op for an empty sha256: PIL inputs have none)."""
        if not sha256:
            return
        evicted = 0
        key = (sha256, model)
        with self._lock:
            pdq, event_id = self._pdq.pop(sha256, (None, ""))
            self._entries[key] = prediction
            self._entries.move_to_end(key)
            if event_id:
                self._events[key] = event_id
            if pixels is not None:
                self._by_pixels[(pixels, model)] = key
            while len(self._entries) > self.max_entries:
                gone, _ = self._entries.popitem(last=False)
                self._events.pop(gone, None)
                evicted += 1
            while len(self._by_pixels) > self.max_entries:
                self._by_pixels.popitem(last=False)
            self.evictions += evicted
            size = len(self._entries)
        if pdq is not None and self._near is not None:
            self._near.add(pdq, key)
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
    """A :class:`~consumer.pipeline.steps.detect.Predictor` that asks the cache before the model."""

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
        digests: dict[int, str | None] = {}  # noted by the provenance step
        for index, image in enumerate(images):
            if image.sha256 in todo:  # a duplicate within this batch: scored once
                todo[image.sha256].append(index)
                results.append(None)
                self.cache.count_hit()
                continue
            hit = None
            if image.sha256:
                digests[index] = self.cache.noted_pixels(image.sha256)
                hit = self.cache.lookup(image.sha256, key, digests[index])
            results.append(hit)
            if hit is None:
                todo[image.sha256 or f"#{index}"] = [index]
        if todo:
            firsts = [positions[0] for positions in todo.values()]
            fresh = self.model.predict([images[i] for i in firsts])
            for positions, prediction in zip(todo.values(), fresh, strict=True):
                made_by = getattr(prediction, "model_info", None)  # a reload may have happened
                own_key = key if made_by is None else model_key(made_by)
                first = images[positions[0]]
                near = self.cache.near_synthetic(first.sha256, own_key) if first.sha256 else None
                if near is not None:
                    prediction = _matched(prediction, near)
                self.cache.put(first.sha256, own_key, prediction, digests.get(positions[0]))
                results[positions[0]] = prediction
                for duplicate in positions[1:]:
                    results[duplicate] = _as_cached(prediction)
        return [r for r in results if r is not None]


def _as_cached(prediction: Prediction) -> Prediction:
    """A cache hit: the stored prediction, marked cached (an exact copy reuses the verdict,
    with the near-duplicate match of the image it copies, if any)."""
    if isinstance(prediction, CachedPrediction):
        return prediction
    if isinstance(prediction, MatchedPrediction):
        return replace(prediction, cached=True)
    return CachedPrediction(**{f.name: getattr(prediction, f.name) for f in fields(Prediction)})


def _matched(prediction: Prediction, near: NearMatch) -> MatchedPrediction:
    values = {f.name: getattr(prediction, f.name) for f in fields(Prediction)}
    return MatchedPrediction(**values, distance=near.distance, matched_event_id=near.event_id)


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

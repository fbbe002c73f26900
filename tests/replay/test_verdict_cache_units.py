"""Unit tests of the verdict cache: LRU bound, keys, thread safety, the caching predictor."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

from prometheus_client import CollectorRegistry

from consumer.pipeline.verdict_cache import (
    CachedPrediction,
    CachingPredictor,
    VerdictCache,
    model_key,
)
from detector import Prediction


def _pred(score: float) -> Prediction:
    return Prediction(
        score=score,
        is_synthetic=score >= 0.5,
        threshold=0.5,
        patches=[],
        global_attention=1.0,
        width=8,
        height=8,
    )


@dataclass
class _Image:
    sha256: str


@dataclass(frozen=True)
class _Info:
    name: str = "m"
    version: str = "1"
    weights_sha256: str = "w"
    threshold: float = 0.5


class _Model:
    def __init__(self) -> None:
        self.info: Any = _Info()
        self.seen: list[str] = []

    def predict(self, images: Any) -> list[Prediction]:
        self.seen.extend(im.sha256 for im in images)
        return [_pred(len(im.sha256) / 100) for im in images]


def test_lru_evicts_the_least_recently_used_and_counts() -> None:
    registry = CollectorRegistry()
    cache = VerdictCache(2, registry)
    cache.put("a", "m", _pred(0.1))
    cache.put("b", "m", _pred(0.2))
    assert cache.get("a", "m") is not None  # a is now the most recent
    cache.put("c", "m", _pred(0.3))  # evicts b
    assert cache.get("b", "m") is None
    assert cache.get("a", "m") is not None and cache.get("c", "m") is not None
    assert len(cache) == 2 and cache.evictions == 1
    assert (cache.hits, cache.misses) == (3, 1)
    assert registry.get_sample_value("synthscan_verdict_cache_hits_total") == 3
    assert registry.get_sample_value("synthscan_verdict_cache_misses_total") == 1
    assert registry.get_sample_value("synthscan_verdict_cache_entries") == 2


def test_the_model_is_part_of_the_key_and_hits_are_marked_cached() -> None:
    cache = VerdictCache(10)
    cache.put("a", "model-1", _pred(0.7))
    assert cache.get("a", "model-2") is None
    hit = cache.get("a", "model-1")
    assert isinstance(hit, CachedPrediction) and hit.cached and hit.score == 0.7
    info = _Info()
    recalibrated = replace(info, threshold=0.6)
    assert model_key(info) != model_key(recalibrated)  # type: ignore[arg-type]


def test_caching_predictor_runs_each_unique_miss_once_in_input_order() -> None:
    model = _Model()
    predictor = CachingPredictor(model, VerdictCache(10))
    first = predictor.predict([_Image("aa"), _Image("bbb"), _Image("aa")])  # type: ignore[list-item]
    assert model.seen == ["aa", "bbb"]  # the in-batch duplicate is scored once
    assert [p.score for p in first] == [0.02, 0.03, 0.02]
    assert [getattr(p, "cached", False) for p in first] == [False, False, True]
    second = predictor.predict([_Image("bbb"), _Image("c")])  # type: ignore[list-item]
    assert model.seen == ["aa", "bbb", "c"]
    assert [getattr(p, "cached", False) for p in second] == [True, False]
    assert (predictor.cache.hits, predictor.cache.misses) == (2, 3)


def test_concurrent_use_keeps_the_bound_and_the_counts() -> None:
    cache = VerdictCache(50)

    def work(offset: int) -> None:
        for i in range(2000):
            key = str((i * 7 + offset) % 120)
            if cache.get(key, "m") is None:
                cache.put(key, "m", _pred(0.5))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 50
    assert cache.hits + cache.misses == 8000

"""The lag gauge counts the offsets this instance committed (exactly-once commits through the
producer, which librdkafka's own ``consumer_lag`` never sees)."""

from __future__ import annotations

import json

from consumer.pipeline.commit_tracker import CommitTracker
from consumer.serving.metrics import Metrics


def _stats(**partitions: dict[str, object]) -> str:
    return json.dumps({"topics": {"images": {"partitions": partitions}}})


def test_offsets_committed_here_override_the_stale_value_librdkafka_read() -> None:
    metrics = Metrics()
    tracker = CommitTracker()
    tracker.assign([("images", 0), ("images", 1)])
    metrics.committed_offsets = tracker.committed_offsets
    stale = {"fetch_state": "active", "ls_offset": 300, "hi_offset": 300, "consumer_lag": 206}
    fresh = {"fetch_state": "active", "ls_offset": 50, "hi_offset": 50, "consumer_lag": 5}
    metrics.on_stats(_stats(**{"0": stale, "1": fresh}))
    assert metrics.consumer_lag_total._value.get() == 211  # nothing committed here yet
    tracker.mark_committed({("images", 0): 290})
    metrics.on_stats(_stats(**{"0": stale, "1": fresh}))
    assert metrics.consumer_lag_total._value.get() == 15
    tracker.mark_committed({("images", 0): 300, ("images", 1): 40})  # 1: librdkafka knows more
    metrics.on_stats(_stats(**{"0": stale, "1": fresh}))
    assert metrics.consumer_lag_total._value.get() == 5
    unknown_end = {"fetch_state": "active", "ls_offset": -1001, "hi_offset": -1001}
    metrics.on_stats(_stats(**{"0": unknown_end}))
    assert metrics.consumer_lag_total._value.get() == 0

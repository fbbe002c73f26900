"""The verdict topic's id is watched: a deleted and re-created topic is warned about once,
with the verdicts acknowledged since the last check that saw the old id."""

from __future__ import annotations

from concurrent.futures import Future

import structlog
from prometheus_client import CollectorRegistry, Counter

from consumer.items import Envelope
from consumer.output.topic_watch import OutputTopicWatch, OutputTopicWatches


def _env(offset: int, partition: int = 0) -> Envelope:
    return Envelope("in", partition, offset, None, b"", [], None, 1)


class Topic:
    """The id the next check reads; each check completes when :meth:`answer` is called."""

    def __init__(self) -> None:
        self.id: str | None = "old"
        self.futures: list[Future[str | None]] = []

    def probe(self, topic: str) -> Future[str | None]:
        assert topic == "verdicts"
        self.futures.append(Future())
        return self.futures[-1]

    def answer(self) -> None:
        self.futures[-1].set_result(self.id)


def test_a_new_topic_id_is_warned_about_once_with_the_window_since_the_last_check() -> None:
    now = [0.0]
    topic = Topic()
    counter = Counter("recreated", "", registry=CollectorRegistry())
    watch = OutputTopicWatch("verdicts", topic.probe, counter, interval_s=2.0, clock=lambda: now[0])
    gone: list[str] = []
    watch.on_gone = gone.append
    watch.tick()  # first check starts
    watch.acknowledged("verdicts", _env(0))
    topic.answer()
    watch.tick()  # "old" seen: acknowledged before this check started are safe
    now[0] = 2.0
    watch.tick()  # second check starts
    watch.acknowledged("verdicts", _env(1))
    watch.acknowledged("dead-letters", _env(2))  # another topic: not counted
    topic.answer()
    watch.tick()  # "old" again: offset 1 (acknowledged during the check) is still unconfirmed
    topic.id = None  # deleted
    now[0] = 4.0
    watch.tick()
    watch.acknowledged("verdicts", _env(3))
    watch.acknowledged("verdicts", _env(7, partition=1))
    topic.answer()
    with structlog.testing.capture_logs() as logs:
        watch.tick()  # missing: nothing to say yet (the destination gate holds output)
        topic.id = "new"
        now[0] = 6.0
        watch.tick()
        topic.answer()
        watch.tick()
        now[0] = 8.0
        watch.tick()
        topic.answer()
        watch.tick()  # "new" again: no second warning
    assert [e["event"] for e in logs] == ["output_topic_recreated"]
    [warning] = logs
    assert warning["topic"] == "verdicts"
    assert (warning["old_id"], warning["new_id"]) == ("old", "new")
    assert warning["may_be_lost"] == 3
    assert warning["replay_offsets"] == ["in:0:1-4", "in:1:7-8"]
    assert counter._value.get() == 1
    assert gone == ["verdicts: deleted"]  # once: the re-creation is the same episode


def test_a_replacement_seen_without_the_gap_is_reported_gone_too() -> None:
    topic = Topic()
    counter = Counter("recreated", "", registry=CollectorRegistry())
    watch = OutputTopicWatch("verdicts", topic.probe, counter, interval_s=0.0)
    gone: list[str] = []
    watch.on_gone = gone.append
    for topic_id in ("old", "old", "new", "new"):
        topic.id = topic_id
        watch.tick()
        topic.answer()
        watch.tick()
    assert gone == ["verdicts: re-created"] and counter._value.get() == 1


def test_without_a_probe_nothing_is_checked() -> None:
    counter = Counter("recreated", "", registry=CollectorRegistry())
    watch = OutputTopicWatch("verdicts", None, counter)
    watch.acknowledged("verdicts", _env(0))
    watch.tick()
    assert counter._value.get() == 0


def test_the_verdict_and_dead_letter_topics_are_watched_together() -> None:
    """One hook for both; each topic counts only what it acknowledged."""
    ids = {"verdicts": "v1", "dead-letters": "d1"}
    futures: list[Future[str | None]] = []

    def probe(topic: str) -> Future[str | None]:
        future: Future[str | None] = Future()
        future.set_result(ids[topic])
        futures.append(future)
        return future

    counter = Counter("recreated", "", registry=CollectorRegistry())
    now = [0.0]
    watches = OutputTopicWatches(
        [
            OutputTopicWatch(t, probe, counter, interval_s=2.0, clock=lambda: now[0])
            for t in ("verdicts", "dead-letters")
        ]
    )
    gone: list[str] = []
    watches.set_on_gone(gone.append)
    watches.tick()
    watches.tick()  # both ids known
    watches.acknowledged("dead-letters", _env(5))
    watches.acknowledged("verdicts", _env(6))
    ids["dead-letters"] = "d2"  # the dead-letter topic deleted and re-created
    now[0] = 2.0
    with structlog.testing.capture_logs() as logs:
        watches.tick()
        watches.tick()
    warned = [e for e in logs if e["event"] == "output_topic_recreated"]
    assert [(e["topic"], e["may_be_lost"], e["replay_offsets"]) for e in warned] == [
        ("dead-letters", 1, ["in:0:5-6"])
    ]
    assert gone == ["dead-letters: re-created"] and counter._value.get() == 1

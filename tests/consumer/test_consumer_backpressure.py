"""Backpressure: pause when the in-flight limit rejects a message, keep polling, resume when
drained, re-pause after a rebalance; revoked partitions are committed and forgotten."""

from __future__ import annotations

from typing import Any

from consumer.items import Delivered, Envelope
from consumer.kafka import ConsumedRecord, PartitionOffset
from consumer.pipeline.backpressure import Backpressure
from consumer.pipeline.commit_tracker import CommitTracker
from consumer.pipeline.steps.base import ProcessingStep
from consumer.pipeline.steps.commit import CommitPolicy, CommitStep
from consumer.serving.health import HealthState
from consumer.serving.metrics import Metrics
from consumer.serving.poll_loop import StreamProcessor


def record(topic: str, partition: int, offset: int) -> ConsumedRecord:
    return ConsumedRecord(topic, partition, offset, None, b"{}", (), 1_000)


class FakeConsumer:
    """Just enough of a :class:`~consumer.kafka.clients.ConsumerClient`; pause() really stops
    consume()."""

    def __init__(self) -> None:
        self.queue: list[ConsumedRecord] = []
        self.assigned: list[tuple[str, int]] = []
        self.assigned_at: list[tuple[str, int, int]] = []
        self.paused: set[tuple[str, int]] = set()
        self.pause_calls = 0
        self.resume_calls = 0
        self.commits: list[list[tuple[str, int, int]]] = []
        self.callbacks: dict[str, Any] = {}
        self.consume_calls = 0

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.callbacks = callbacks

    def consume(self, num_messages: int, timeout: float) -> list[ConsumedRecord]:
        self.consume_calls += 1
        out = [m for m in self.queue if (m.topic, m.partition) not in self.paused]
        out = out[:num_messages]
        self.queue = [m for m in self.queue if m not in out]
        return out

    def assignment(self) -> list[PartitionOffset]:
        return [PartitionOffset(t, p) for t, p in self.assigned]

    def incremental_assign(self, partitions: list[PartitionOffset]) -> None:
        # librdkafka keeps a partition's pause flag across unassign and assign (issue 10)
        self.assigned += [(p.topic, p.partition) for p in partitions]
        self.assigned_at += [(p.topic, p.partition, p.offset) for p in partitions]

    def incremental_unassign(self, partitions: list[PartitionOffset]) -> None:
        gone = {(p.topic, p.partition) for p in partitions}
        self.assigned = [tp for tp in self.assigned if tp not in gone]

    def pause(self, partitions: list[PartitionOffset]) -> None:
        self.pause_calls += 1
        self.paused |= {(p.topic, p.partition) for p in partitions}

    def resume(self, partitions: list[PartitionOffset]) -> None:
        self.resume_calls += 1
        self.paused -= {(p.topic, p.partition) for p in partitions}

    def commit(self, offsets: list[PartitionOffset], asynchronous: bool) -> list[PartitionOffset]:
        self.commits.append([(o.topic, o.partition, o.offset) for o in offsets])
        return offsets


class Sink(ProcessingStep[Envelope]):
    """A head step that keeps everything (work 'in flight') until the test completes it."""

    def __init__(self) -> None:
        self.items: list[Envelope] = []

    def submit(self, item: Envelope) -> None:
        self.items.append(item)

    def poll(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def make(
    limit: int, consume_batch: int = 100
) -> tuple[StreamProcessor, FakeConsumer, Sink, CommitStep, Backpressure]:
    consumer = FakeConsumer()
    tracker = CommitTracker()
    sink = Sink()
    metrics = Metrics()
    commit = CommitStep(consumer, tracker, metrics, CommitPolicy(min_interval_s=3600))  # type: ignore[arg-type]
    bp = Backpressure.from_limit(limit)
    proc = StreamProcessor(
        consumer,
        ["t"],
        sink,
        commit,
        tracker,
        bp,
        metrics,
        HealthState(),  # type: ignore[arg-type]
        consume_batch=consume_batch,
    )
    consumer.subscribe(["t"])
    proc._consumer.subscribe(
        ["t"], on_assign=proc._on_assign, on_revoke=proc._on_revoke, on_lost=proc._on_lost
    )
    return proc, consumer, sink, commit, bp


def assign(consumer: FakeConsumer, *tps: tuple[str, int]) -> None:
    consumer.callbacks["on_assign"](consumer, [PartitionOffset(t, p) for t, p in tps])


def test_backpressure_state_machine() -> None:
    bp = Backpressure.from_limit(4)
    assert bp.admits(3) and not bp.admits(4)
    assert bp.on_rejected() is True
    assert bp.on_rejected() is False  # already paused: no second pause()
    assert bp.on_progress(2, carrying=True) is False  # still holding a rejected message
    assert bp.on_progress(3, carrying=False) is False  # above the low watermark
    assert bp.on_progress(2, carrying=False) is True
    assert bp.paused is False


def test_pauses_at_the_limit_keeps_polling_and_resumes_when_drained() -> None:
    proc, consumer, sink, commit, bp = make(limit=4)
    assign(consumer, ("t", 0))
    consumer.queue = [record("t", 0, i) for i in range(6)]
    proc.run_once()
    assert [e.offset for e in sink.items] == [0, 1, 2, 3]
    assert bp.paused and consumer.paused == {("t", 0)}
    polls = consumer.consume_calls
    for _ in range(5):  # paused: the loop still polls (liveness) but gets nothing new
        proc.run_once()
    assert consumer.consume_calls == polls + 5
    assert len(sink.items) == 4 and consumer.pause_calls == 1
    for env in sink.items[:3]:
        commit.submit(Delivered(env, 0.0))
    proc.run_once()  # in flight 1: the 2 carried messages go in first -> 3 in flight
    assert [e.offset for e in sink.items] == [0, 1, 2, 3, 4, 5]
    assert bp.paused  # 3 > resume_at (2)
    commit.submit(Delivered(sink.items[3], 0.0))
    resumes = consumer.resume_calls
    proc.run_once()
    assert not bp.paused and consumer.resume_calls == resumes + 1 and not consumer.paused
    consumer.queue = [record("t", 0, 6)]
    proc.run_once()
    assert [e.offset for e in sink.items] == list(range(7))


def test_pause_is_reapplied_after_a_rebalance() -> None:
    proc, consumer, sink, _commit, bp = make(limit=2)
    assign(consumer, ("t", 0))
    consumer.queue = [record("t", 0, i) for i in range(5)]
    proc.run_once()
    assert bp.paused
    assign(consumer, ("t", 1))  # a new partition arrives while we are full
    assert consumer.paused == {("t", 0)}  # t[1] carries nothing: it may fetch a look-ahead
    consumer.queue.append(record("t", 1, 0))
    proc.run_once()
    assert all(e.partition == 0 for e in sink.items)
    assert consumer.paused == {("t", 0), ("t", 1)}  # now it carries one: paused too


def test_under_backpressure_a_partition_without_carried_messages_keeps_fetching() -> None:
    """Issue 19: a consume() that returned only partition 0's backlog paused every partition,
    so partition 1 was not even fetched until that backlog drained. A partition with nothing
    carried keeps fetching (its messages join the round-robin) while less than one consume
    batch is carried; at a full batch every partition is paused (memory stays bounded)."""
    proc, consumer, sink, commit, bp = make(limit=2, consume_batch=4)
    assign(consumer, ("t", 0), ("t", 1))
    consumer.queue = [record("t", 0, i) for i in range(4)]
    proc.run_once()  # 2 admitted, 2 carried: t[0] paused, t[1] still fetching
    assert bp.paused and consumer.paused == {("t", 0)}
    consumer.queue = [record("t", 1, i) for i in range(2)]
    proc.run_once()  # a full batch carried (4): both paused
    assert consumer.paused == {("t", 0), ("t", 1)}
    commit.submit(Delivered(sink.items[0], 0.0))
    proc.run_once()  # one slot: partition 1 takes its turn before partition 0's backlog
    assert [(e.partition, e.offset) for e in sink.items] == [(0, 0), (0, 1), (1, 0)]


def test_revoke_commits_done_work_and_drops_carried_messages() -> None:
    proc, consumer, sink, commit, _bp = make(limit=3)
    proc._revoke_drain_s = 0.05
    assign(consumer, ("t", 0), ("t", 1))
    consumer.queue = [record("t", 0, i) for i in range(4)] + [record("t", 1, i) for i in range(2)]
    proc.run_once()  # admitted round-robin: t[0]@0, t[1]@0, t[0]@1
    assert [(e.partition, e.offset) for e in sink.items] == [(0, 0), (1, 0), (0, 1)]
    assert len(proc._carried) == 3
    commit.submit(Delivered(sink.items[0], 0.0))  # t[0]@0 done, @1 still in flight
    consumer.callbacks["on_revoke"](consumer, [PartitionOffset("t", 0)])
    assert consumer.commits[-1] == [("t", 0, 1)]
    assert [(env.partition, env.offset) for env in proc._carried] == [(1, 1)]
    assert consumer.assigned == [("t", 1)]
    commit.submit(Delivered(sink.items[2], 0.0))  # late receipt of a revoked partition
    assert ("t", 0) not in proc._tracker.committable()


def test_pause_state_is_applied_after_a_lost_assignment_comes_back() -> None:
    """Paused by backpressure, then the assignment is lost (broker gone): the loop forgets the
    in-flight work and resumes (nothing assigned). librdkafka still has the partition paused;
    the re-assignment must resume it explicitly, or the consumer stalls while looking healthy."""
    proc, consumer, sink, _commit, bp = make(limit=2)
    assign(consumer, ("t", 0))
    consumer.queue = [record("t", 0, i) for i in range(5)]
    proc.run_once()
    assert bp.paused and consumer.paused == {("t", 0)}
    consumer.callbacks["on_lost"](consumer, [PartitionOffset("t", 0)])
    proc.run_once()  # nothing in flight any more: backpressure clears
    assert not bp.paused
    assign(consumer, ("t", 0))
    assert consumer.paused == set()
    consumer.queue = [record("t", 0, i) for i in range(2, 4)]
    proc.run_once()
    assert [e.offset for e in sink.items][-2:] == [2, 3]


def test_pixel_budget_waits_frees_with_the_tensor_and_admits_one_huge_image() -> None:
    import gc
    import threading

    import torch

    from consumer.pipeline.backpressure import PixelBudget

    budget = PixelBudget(100)
    first = budget.reserve(60)
    assert first is not None and budget.held == 60
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(budget.reserve(50)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and budget.held == 60  # 60 + 50 > 100: it waits
    tensor = torch.zeros(3)
    first.shrink(30)  # decoded: keep only the tensor's size
    first.release_with(tensor)
    waiter.join(5)
    assert not waiter.is_alive() and budget.held == 80 and budget.peak == 80
    del tensor
    gc.collect()
    assert budget.held == 50  # freed with the tensor
    assert budget.reserve(1000, keep_waiting=lambda: False, poll_s=0.01) is None  # revoked
    second = got[0]
    assert second is not None and hasattr(second, "release")
    second.release()  # type: ignore[attr-defined]
    second.release()  # type: ignore[attr-defined]  # idempotent
    huge = budget.reserve(1000)  # larger than the budget, nothing else held: granted alone
    assert huge is not None and budget.full
    bp = Backpressure(max_in_flight=10, resume_at=5, pixels=budget)
    assert not bp.admits(0)  # pixel budget full: pause even with no message in flight
    assert bp.on_rejected() and not bp.on_progress(0, carrying=False)
    huge.release()
    assert bp.admits(0) and bp.on_progress(0, carrying=False)
    late = threading.Thread(target=lambda: got.append(budget.reserve(10)))
    blocker = budget.reserve(100)
    late.start()
    budget.close()  # shutdown wakes the waiter with None
    late.join(5)
    assert got[-1] is None and blocker is not None


def test_offsets_that_start_over_reset_the_partition_instead_of_stopping() -> None:
    """Issue 19: the input topic deleted and re-created under the service: its offsets start
    again at 0 and the tracker refused them (``offset 0 registered after 297``), so the
    service exited. Now the partition's bookkeeping starts over (old work dropped)."""
    proc, consumer, sink, commit, _ = make(limit=100)
    assign(consumer, ("t", 0), ("t", 1))
    consumer.queue = [record("t", 0, o) for o in (296, 297)] + [record("t", 1, 5)]
    proc.run_once()
    old = list(sink.items)
    assert [e.offset for e in old] == [296, 5, 297]  # partitions take turns
    commit.submit(Delivered(old[0], 0.0))  # 296 done, 297 still in flight
    consumer.queue = [record("t", 0, o) for o in (0, 1)]  # the re-created topic
    proc.run_once()  # dropped, and the partition assigned again at offset 0
    assert len(sink.items) == 3 and ("t", 0) in consumer.assigned
    assert consumer.assigned_at[-1] == ("t", 0, 0)
    consumer.queue = [record("t", 0, o) for o in (0, 1)]  # fetched again from there
    proc.run_once()
    assert [(e.partition, e.offset) for e in sink.items[3:]] == [(0, 0), (0, 1)]
    for env in sink.items[3:]:
        commit.submit(Delivered(env, 0.0))
    commit.submit(Delivered(old[2], 0.0))  # late: the old incarnation's, ignored
    assert commit.commit_sync()[("t", 0)] == 2
    assert proc._tracker.in_flight([("t", 1)]) == 1  # the other partition is untouched

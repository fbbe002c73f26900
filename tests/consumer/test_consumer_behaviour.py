"""The service's behaviour, once, on both Kafka backends: the in-memory broker
(:mod:`consumer.kafka.memory`) and the real one (test ids ``[memory]`` and ``[kafka]``).

Verdicts and commits, dead-letter codes, a restart that resumes after the committed offsets,
backpressure, refused verdicts, an undeliverable record, and a hot model reload. What only a
real cluster has (transactions, rebalances between two members, lost brokers) stays in the
``*_kafka`` tests and ``tests/chaos``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from behaviour_support import (
    Bench,
    KafkaBench,
    MemoryBench,
    Message,
    all_committed,
    dead_letters,
    settings,
    until,
    verdicts,
)
from consumer_support import encode, http_get, image_event
from kafka_support import image_bytes, sha
from test_model_reload import wait_for, write_adapter

from consumer import Service, ServiceSettings
from consumer.serving.model_reload import ModelReloader
from detector import Detector
from schemas import ErrorCode


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def backend(request: pytest.FixtureRequest) -> Iterator[Bench]:
    bench: Bench
    if request.param == "memory":
        bench = MemoryBench(partitions=2)
    else:
        bench = KafkaBench(request.getfixturevalue("kafka_bootstrap"), partitions=2)
    yield bench
    bench.close()


class Runner:
    """Services on the bench's backend, in threads; all stopped (drained) at teardown."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.running: dict[int, tuple[Service, threading.Thread]] = {}

    def start(self, settings: ServiceSettings, detector: Any = None, ready: bool = True) -> Service:
        service = Service(settings, detector=detector, backend=self.bench.backend())
        self.running[id(service)] = (service, service.start())
        if ready:
            assert service.wait_ready(60), f"service not ready: {service.error!r}"
        return service

    def stop(self, service: Service) -> None:
        service.stop()
        _service, thread = self.running.pop(id(service))
        thread.join(30)
        assert not thread.is_alive(), "service did not stop in time"


@pytest.fixture
def run(backend: Bench) -> Iterator[Runner]:
    runner = Runner(backend)
    yield runner
    for service, _thread in list(runner.running.values()):
        runner.stop(service)


def events(ids: list[str], seed: int = 0) -> list[Message]:
    """One valid inline event per id, keyed by it."""
    out: list[Message] = []
    for i, eid in enumerate(ids):
        img = image_bytes(seed + i, size=(64, 56))
        value, headers = encode(image_event(eid, data=img, sha256=sha(img), size=len(img)))
        out.append((eid.encode(), value, headers))
    return out


def _metric(service: Service, name: str) -> float:
    return service.metrics.registry.get_sample_value(name) or 0.0


def test_every_event_gets_one_verdict_and_every_offset_is_committed(
    backend: Bench, run: Runner, checkpoint: Path, detector: Detector
) -> None:
    ids = [f"ev-{i}" for i in range(8)]
    backend.send(events(ids))
    run.start(settings(backend, checkpoint), detector)
    until(lambda: len(verdicts(backend)) >= len(ids) and all_committed(backend), what="commits")
    time.sleep(0.3)  # nothing more comes: none twice
    got = verdicts(backend)
    assert sorted(v.event_id for v in got) == sorted(ids)
    assert all(v.label == ("synthetic" if v.score >= v.threshold else "real") for v in got)
    assert {(v.source.topic, v.source.partition) for v in got} == {
        (backend.input, 0),
        (backend.input, 1),
    }
    assert all(v.model.weights_sha256 == detector.info.weights_sha256 for v in got)
    assert dead_letters(backend) == []


def _poison() -> list[tuple[ErrorCode, Message]]:
    ce = [("ce_specversion", b"1.0"), ("ce_id", b"p"), ("ce_source", b"/t")]
    png = [*ce, ("ce_type", b"io.synthscan.image.v1"), ("content-type", b"image/png")]
    structured = [("content-type", b"application/cloudevents+json")]
    good = image_bytes(7)
    schema = json.dumps({"specversion": "1.0", "data": {}}).encode()
    return [
        (ErrorCode.INVALID_JSON, (b"json", b"{not json", structured)),
        (ErrorCode.SCHEMA_VIOLATION, (b"schema", schema, structured)),
        (ErrorCode.MISSING_IMAGE, (b"empty", *encode(image_event("empty", data=b"")))),
        (ErrorCode.IMAGE_DECODE_ERROR, (b"garbage", b"\x89PNG garbage", png)),
        (
            ErrorCode.UNSUPPORTED_MEDIA,
            (b"tiny", *encode(image_event("tiny", data=image_bytes(9, size=(8, 8))))),
        ),
        (
            ErrorCode.CHECKSUM_MISMATCH,
            (b"sum", *encode(image_event("sum", data=good, sha256="0" * 64))),
        ),
    ]


def test_poison_inputs_become_dead_letters_with_their_codes_and_the_stream_goes_on(
    backend: Bench, run: Runner, checkpoint: Path, detector: Detector
) -> None:
    poison = _poison()
    good = [f"ok-{i}" for i in range(len(poison))]
    mixed = [m for pair in zip(events(good), [m for _c, m in poison], strict=True) for m in pair]
    backend.send(mixed, partition=0)
    run.start(settings(backend, checkpoint), detector)
    until(lambda: len(dead_letters(backend)) >= len(poison), what="dead letters")
    until(lambda: all_committed(backend), what="commits")
    letters = dead_letters(backend)
    assert {(d.original.key or b"").decode(): d.code for d in letters} == {
        key.decode(): code for code, (key, _v, _h) in poison
    }
    assert all(
        d.source.topic == backend.input and d.consumer_group == backend.group for d in letters
    )
    assert sorted(v.event_id for v in verdicts(backend)) == good


def test_a_restarted_service_resumes_after_the_committed_offsets(
    backend: Bench, run: Runner, checkpoint: Path, detector: Detector
) -> None:
    first_ids, later_ids = [f"a-{i}" for i in range(4)], [f"b-{i}" for i in range(4)]
    backend.send(events(first_ids))
    first = run.start(settings(backend, checkpoint), detector)
    until(lambda: len(verdicts(backend)) >= 4 and all_committed(backend), what="first commits")
    run.stop(first)
    backend.send(events(later_ids, seed=10))
    run.start(settings(backend, checkpoint), detector)
    until(lambda: len(verdicts(backend)) >= 8 and all_committed(backend), what="second commits")
    time.sleep(0.3)
    assert sorted(v.event_id for v in verdicts(backend)) == sorted(first_ids + later_ids)


class SlowDetector:
    """Takes 50 ms a batch; records batch sizes and whether the loop had paused meanwhile."""

    def __init__(self, inner: Detector) -> None:
        self.inner, self.info = inner, inner.info
        self.batches: list[int] = []
        self.paused: list[float] = []
        self.service: Service | None = None

    def predict(self, images: Any) -> Any:
        self.batches.append(len(images))
        time.sleep(0.05)
        if self.service is not None:
            self.paused.append(_metric(self.service, "synthscan_paused"))
        return self.inner.predict(images)


def test_backpressure_pauses_at_the_in_flight_limit_and_loses_nothing(
    backend: Bench, run: Runner, checkpoint: Path, detector: Detector
) -> None:
    ids = [f"ev-{i}" for i in range(10)]
    backend.send(events(ids), partition=0)
    slow = SlowDetector(detector)
    config = settings(backend, checkpoint, batching={"max_in_flight_messages": 2})
    slow.service = run.start(config, slow, ready=False)
    until(lambda: len(verdicts(backend)) >= len(ids) and all_committed(backend), what="commits")
    assert sorted(v.event_id for v in verdicts(backend)) == sorted(ids)
    assert max(slow.batches) <= 2  # max_batch_size is 4: only the limit keeps batches at 2
    assert 1.0 in slow.paused  # the partitions were paused while the model was busy


def test_refused_verdicts_become_output_rejected_dead_letters(
    backend: Bench, run: Runner, checkpoint: Path, detector: Detector
) -> None:
    refusing = backend.refusing_topic()
    ids = [f"ev-{i}" for i in range(3)]
    backend.send(events(ids))
    run.start(settings(backend, checkpoint, kafka={"verdict_topic": refusing}), detector)
    until(lambda: len(dead_letters(backend)) >= len(ids) and all_committed(backend), what="dlq")
    letters = dead_letters(backend)
    assert sorted(d.event_id or "" for d in letters) == ids
    assert all(d.code == ErrorCode.OUTPUT_REJECTED for d in letters)
    assert all("verdict not delivered" in d.message for d in letters)
    assert backend.records(refusing) == []


def test_an_undeliverable_record_holds_its_partition_only_and_turns_readiness_red(
    backend: Bench, run: Runner, checkpoint: Path, detector: Detector
) -> None:
    """The dead-letter topic refuses everything: the poison record on partition 0 can be
    written nowhere. Partition 0 stops at it (never committed past it), partition 1 goes on,
    readiness fails, the metric counts it once, and nothing spins."""
    backend.send(events(["p0-0"]), partition=0)
    backend.send([(b"bad", b"{oops", [])], partition=0)
    backend.send(events(["p0-2"], seed=2), partition=0)
    backend.send(events(["p1-0", "p1-1", "p1-2"], seed=3), partition=1)
    config = settings(backend, checkpoint, kafka={"dead_letter_topic": backend.refusing_topic()})
    service = run.start(config, detector, ready=False)
    expected = {"p0-0", "p1-0", "p1-1", "p1-2"}  # p0-2 may get one too (fetched before the hold)
    until(
        lambda: (
            service.health.stuck_partitions == 1
            and expected <= {v.event_id for v in verdicts(backend)}
            and backend.committed()[1] == backend.end_offsets()[1]
        ),
        what="partition 0 held, partition 1 done",
    )
    status, body = http_get(service.http_port, "/readyz")
    assert status == 503 and '"stuck_partitions": 1' in body
    assert http_get(service.http_port, "/healthz")[0] == 200  # alive: no restart would help
    assert _metric(service, "synthscan_undeliverable_records_total") == 1
    errors = _metric(service, "synthscan_produce_errors_total")
    time.sleep(1.0)
    assert _metric(service, "synthscan_produce_errors_total") == errors <= 3  # no spin
    assert backend.committed()[0] == 1  # never past the undeliverable record


def test_a_hot_reload_swaps_the_model_mid_stream_with_one_verdict_each(
    backend: Bench, run: Runner, checkpoint: Path, tmp_path: Path
) -> None:
    """An adapter dropped into the watched folder while events flow: every event gets exactly
    one verdict, stamps say which model made it (old ones first), /readyz stays up, and a
    corrupt replacement is refused while the new model keeps serving."""
    folder = tmp_path / "adapters"
    folder.mkdir()
    model = {"adapters_dir": folder, "reload_poll_s": 0.2, "warmup": False}
    service = run.start(settings(backend, checkpoint, model=model, cache={"enabled": False}))
    reloader = service.detector
    assert isinstance(reloader, ModelReloader)
    old_sha = reloader.info.weights_sha256
    sent: list[str] = []

    def send(ids: list[str]) -> None:
        sent.extend(ids)
        backend.send(events(ids, seed=len(sent)))
        until(lambda: len(verdicts(backend)) >= len(sent), what=f"verdicts of {ids}")

    send([f"before-{i}" for i in range(4)])
    during = [f"during-{i}" for i in range(6)]
    sender = threading.Thread(target=lambda: [backend.send(events([e])) for e in during])
    sender.start()
    write_adapter(folder / "newgen.safetensors", checkpoint)
    ready: list[int] = []
    while reloader.reloads < 1 and len(ready) < 600:
        ready.append(http_get(service.http_port, "/readyz")[0])
        time.sleep(0.1)
    sender.join(60)
    sent.extend(during)
    assert reloader.reloads == 1 and set(ready) == {200}
    new_info = reloader.info
    send([f"after-{i}" for i in range(3)])
    (folder / "newgen.safetensors").write_bytes(b"\x20\x00\x00\x00\x00\x00\x00\x00garbage")
    assert wait_for(lambda: reloader.refusals == 1)
    assert reloader.info is new_info and http_get(service.http_port, "/readyz")[0] == 200
    send([f"last-{i}" for i in range(2)])
    time.sleep(0.3)
    got = {v.event_id: v for v in verdicts(backend)}
    assert len(verdicts(backend)) == len(sent) and sorted(got) == sorted(sent)

    def by_new(eid: str) -> bool:
        v = got[eid]
        new = v.model.adapters is not None
        assert new == (v.attribution is not None)  # the stamp matches what the verdict holds
        if not new:
            assert v.model.weights_sha256 == old_sha
            return False
        assert [(a.generator, a.sha256) for a in v.model.adapters or []] == [
            (a.generator, a.sha256) for a in new_info.adapters or []
        ]
        assert v.attribution is not None and v.attribution.generator == "newgen"
        assert v.label == "synthetic"  # the test adapter fires on everything
        return True

    assert not any(by_new(e) for e in sent if e.startswith("before"))
    assert all(by_new(e) for e in sent if e.startswith(("after", "last")))
    made = sorted(during, key=lambda e: got[e].produced_at)
    assert [by_new(e) for e in made] == sorted(by_new(e) for e in made)

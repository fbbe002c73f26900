"""Model rollout without downtime, against the real broker: events flow, the model is swapped
mid-stream (an adapter dropped into the watched folder), every event gets exactly one verdict,
stamps say which model made each verdict, /readyz stays up, and a corrupt replacement is refused
while the old model keeps serving."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from consumer_support import TopicReader, Topics, encode, http_get, image_event, produce
from kafka_support import image_bytes, sha
from test_model_reload import wait_for, write_adapter

from consumer import Service
from consumer.model_reload import ModelReloader

pytestmark = pytest.mark.kafka


def _send(topics: Topics, ids: list[str]) -> None:
    messages = []
    for eid in ids:
        img = image_bytes(int(eid.split("-")[1]), size=(64, 56))
        value, headers = encode(image_event(eid, data=img, sha256=sha(img), size=len(img)))
        messages.append((eid.encode(), value, headers))
    produce(topics.bootstrap, topics.input, messages)


def test_swap_mid_stream_exactly_one_verdict_each_and_right_stamps(
    topics_factory: Callable[[int], Topics],
    checkpoint: Path,
    run_service: Callable[..., Service],
    tmp_path: Path,
) -> None:
    topics = topics_factory(2)
    folder = tmp_path / "adapters"
    folder.mkdir()
    settings = topics.settings(
        checkpoint,
        model={"adapters_dir": folder, "reload_poll_s": 0.2, "warmup": False},
        cache={"enabled": False},
    )
    service = run_service(settings)
    reloader = service.detector
    assert isinstance(reloader, ModelReloader)
    old_info = reloader.info
    reader = TopicReader(topics.bootstrap, topics.verdicts)

    before = [f"ev-{i}" for i in range(8)]
    _send(topics, before)
    reader.read_until(len(before), timeout=90)

    # events keep flowing while the new model is built and swapped in
    during = [f"ev-{i}" for i in range(8, 20)]
    sender = threading.Thread(target=lambda: [_send(topics, [e]) for e in during])
    sender.start()
    write_adapter(folder / "newgen.safetensors", checkpoint)
    ready_during: list[int] = []
    while reloader.reloads < 1 and len(ready_during) < 600:
        ready_during.append(http_get(service.http_port, "/readyz")[0])
        time.sleep(0.1)
    sender.join(60)
    assert reloader.reloads == 1 and set(ready_during) == {200}
    new_info = reloader.info

    after = [f"ev-{i}" for i in range(20, 26)]
    _send(topics, after)
    reader.read_until(len(before) + len(during) + len(after), timeout=90)

    # a corrupt replacement: refused, the adapter-carrying model keeps serving
    (folder / "newgen.safetensors").write_bytes(b"\x20\x00\x00\x00\x00\x00\x00\x00garbage")
    assert wait_for(lambda: reloader.refusals == 1)
    assert reloader.info is new_info
    assert http_get(service.http_port, "/readyz")[0] == 200
    last = [f"ev-{i}" for i in range(26, 30)]
    _send(topics, last)
    total = len(before) + len(during) + len(after) + len(last)
    reader.read_until(total, timeout=90)
    reader.settle(1.0)
    verdicts = {v.event_id: v for v in reader.verdicts()}
    assert len(reader.verdicts()) == total  # none twice
    assert sorted(verdicts) == sorted(before + during + after + last)  # none lost
    reader.close()

    def made_by_new(eid: str) -> bool:
        v = verdicts[eid]
        new = v.model.adapters is not None
        assert new == (v.attribution is not None)  # the stamp matches what the verdict holds
        if new:
            assert [a.generator for a in v.model.adapters or []] == ["newgen"]
            assert v.model.adapters[0].sha256 == new_info.adapters[0].sha256  # type: ignore[index]
            assert v.attribution is not None and v.attribution.generator == "newgen"
            assert v.label == "synthetic"  # the test adapter fires on everything
        else:
            assert v.model.weights_sha256 == old_info.weights_sha256
        return new

    assert not any(made_by_new(e) for e in before)
    assert all(made_by_new(e) for e in after + last)
    # old first, then new, in the order verdicts were made: decoding finishes out of order, so
    # a later offset can be in an earlier batch, but batches run one at a time
    made = sorted(during, key=lambda e: verdicts[e].produced_at)
    flags = [made_by_new(e) for e in made]
    assert flags == sorted(flags), "a verdict of the old model made after one of the new"

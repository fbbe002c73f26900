"""Knobs that must reach the model: a consumer batch is one forward pass of the detector, and
a candidate threshold is a new detector sharing the weights (the live one is untouched)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from consumer_support import Collect, encode, image_event, make_checkpoint
from kafka_support import image_bytes

from consumer.items import Envelope, WorkItem
from consumer.pipeline.factory import backpressure_for, build_pipeline
from consumer.pipeline.steps.batch import BatchStep
from consumer.pipeline.steps.detect import DetectStep
from consumer.serving.metrics import Metrics
from consumer.serving.service import Service
from consumer.settings import ServiceSettings
from detector import Detector, decode_image
from schemas import parse_image_event

N = 64


def _item(offset: int) -> WorkItem:
    data = image_bytes(offset, size=(48, 48))
    value, headers = encode(image_event(f"e{offset}", data=data))
    env = Envelope("t", 0, offset, None, value, tuple(headers), None, 1)
    item = WorkItem(envelope=env, event=parse_image_event(value, headers))
    item.image = decode_image(data)
    return item


def test_a_consumer_batch_of_64_is_one_forward_pass(tmp_path: Path) -> None:
    settings = ServiceSettings(
        model={
            "checkpoint": make_checkpoint(tmp_path / "m.safetensors"),
            "device": "cpu",
            "precision": "fp32",
            "warmup": False,
            "reload_poll_s": 0,
            "max_batch_size": N,
        },
        batching={"max_wait_ms": 60_000},
        http={"enabled": False},
    )
    service = Service(settings)
    try:
        reloader: Any = service._load_detector()  # what the service serves from
        detector: Detector = reloader.current
        assert detector.options.max_batch_size == N
        forwards: list[int] = []
        detector.model.register_forward_hook(
            lambda _m, args, _out: forwards.append(int(args[0].shape[0]))
        )
        calls: list[int] = []
        predict = reloader.predict

        def counting(images: Any) -> Any:
            calls.append(len(images))
            return predict(images)

        reloader.predict = counting
        out = Collect()
        batch = BatchStep(
            DetectStep(reloader, out, Metrics(), N), N, settings.batching.max_wait_ms / 1000
        )
        for i in range(N):
            batch.submit(_item(i))
        batch.join(120)
        assert calls == [N] and forwards == [N]
        assert len(out.items) == N and all(isinstance(o, WorkItem) for o in out.items)
    finally:
        service.stop()


def test_model_max_batch_size_sizes_the_batch_step_and_the_detect_merge() -> None:
    settings = ServiceSettings(model={"max_batch_size": 5, "device": "cpu"})  # type: ignore[arg-type]
    metrics = Metrics()
    pipeline = build_pipeline(
        settings,
        Collect(),  # type: ignore[arg-type]  # a predictor never called here
        Collect(),
        metrics,
        backpressure_for(settings, 8),
    )
    try:
        detect = pipeline.batch.next_step
        assert isinstance(detect, DetectStep)
        assert pipeline.batch._batcher.max_size == detect._max_batch == 5
    finally:
        pipeline.close()


def test_with_threshold_shares_the_weights_and_labels_at_the_new_threshold(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    base = Detector.from_checkpoint(make_checkpoint(tmp_path / "m.safetensors"), device="cpu")
    image = decode_image(image_bytes(1, size=(64, 64)))
    (before,) = base.predict([image])
    low, high = base.with_threshold(0.0), base.with_threshold(1.0)
    assert low.model is base.model and low.info.threshold == 0.0
    assert base.info.threshold == before.threshold  # the original is untouched
    (p_low,), (p_high,) = low.predict([image]), high.predict([image])
    assert p_low.score == before.score == p_high.score
    assert (p_low.label, p_low.threshold) == ("synthetic", 0.0)
    assert p_high.label == ("synthetic" if p_high.score >= 1.0 else "real")
    assert before.label == ("synthetic" if before.is_synthetic else "real")

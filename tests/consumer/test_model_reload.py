"""Hot model reload: SIGHUP, watched files, refusal of bad files (no broker needed)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch
from kafka_support import image_bytes

from consumer.serving.model_reload import ModelReloader, adapter_files, load_detector
from consumer.settings import ModelSettings
from detector import DecodedImage, Detector, decode_image
from detector.adapters import AdapterMetadata, save_adapter
from detector.checkpoint import file_sha256, load_checkpoint


def write_adapter(
    path: Path, checkpoint: Path, generator: str = "newgen", bias: float = 8.0
) -> Path:
    """A head adapter for ``checkpoint`` whose logit is the base's shifted by ``bias``."""
    model, _ = load_checkpoint(checkpoint)
    head = {f"head.{k}": v.clone() for k, v in model.head.state_dict().items()}
    head["head.bias"] += bias
    meta = AdapterMetadata(
        generator=generator,
        method="head",
        split=len(model.backbone.features) - 1,
        base_sha256=file_sha256(checkpoint),
        threshold=0.5,
    )
    tmp = path.with_suffix(".tmp")
    save_adapter(tmp, head, meta)
    os.replace(tmp, path)  # atomic: the watcher never sees half a file
    return path


def wait_for(predicate: object, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def _images() -> list[DecodedImage]:
    return [decode_image(image_bytes(s, size=(70, 60))) for s in range(2)]


@pytest.fixture
def settings(tmp_path: Path, checkpoint: Path) -> ModelSettings:
    (tmp_path / "adapters").mkdir()
    return ModelSettings(
        checkpoint=checkpoint,
        device="cpu",
        precision="fp32",
        warmup=False,
        adapters_dir=tmp_path / "adapters",
        reload_poll_s=0.1,
    )


def _reloader(settings: ModelSettings) -> ModelReloader:
    return ModelReloader(
        load_detector(settings),
        lambda: load_detector(settings),
        lambda: [settings.checkpoint, *adapter_files(settings)],
        poll_s=settings.reload_poll_s,
    )


def test_sighup_reloads_and_new_batches_use_the_new_model(settings: ModelSettings) -> None:
    reloader = _reloader(settings)
    reloader.start()
    try:
        old = reloader.current
        before = reloader.predict(_images())
        assert all(p.attribution is None and p.model_info is old.info for p in before)
        assert settings.adapters_dir is not None
        write_adapter(settings.adapters_dir / "newgen.safetensors", settings.checkpoint)
        reloader._poll_s = 0  # only the signal may trigger this reload
        assert reloader.install_sighup()
        os.kill(os.getpid(), signal.SIGHUP)
        assert wait_for(lambda: reloader.reloads == 1)
        after = reloader.predict(_images())
        assert reloader.current is not old
        for p in after:
            assert p.model_info is reloader.current.info
            assert p.attribution is not None and p.attribution.generator == "newgen"
        assert [a.generator for a in reloader.info.adapters] == ["newgen"]
    finally:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        reloader.stop()


def test_bad_files_are_refused_and_the_old_model_keeps_serving(
    settings: ModelSettings, tmp_path: Path
) -> None:
    reloader = _reloader(settings)
    reloader.start()
    try:
        serving = reloader.current
        assert settings.adapters_dir is not None
        other = tmp_path / "other.safetensors"
        other.write_bytes(settings.checkpoint.read_bytes()[:-8] + b"\0" * 8)  # another sha256
        bad_files: list[tuple[str, bytes]] = [
            ("corrupt.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json"),
            ("pickle.safetensors", b"\x80\x04\x95 pickled"),
        ]
        for name, payload in bad_files:
            (settings.adapters_dir / name).write_bytes(payload)
            refusals, reloads = reloader.refusals, reloader.reloads
            assert wait_for(lambda r=refusals: reloader.refusals == r + 1)  # type: ignore[misc]
            assert reloader.current is serving
            (settings.adapters_dir / name).unlink()
            assert wait_for(lambda r=reloads: reloader.reloads == r + 1)  # type: ignore[misc]
            serving = reloader.current  # the good set again
        wrong_base = write_adapter(tmp_path / "w.safetensors", other)
        os.replace(wrong_base, settings.adapters_dir / "wrong-base.safetensors")
        refusals = reloader.refusals
        assert wait_for(lambda: reloader.refusals == refusals + 1)
        assert reloader.current is serving
        preds = reloader.predict(_images())
        assert all(p.model_info is serving.info for p in preds)
        assert not reloader.changed()  # the refused files are not retried until they change
    finally:
        reloader.stop()


def test_in_flight_batch_finishes_on_the_model_it_started_with(settings: ModelSettings) -> None:
    reloader = _reloader(settings)
    old = reloader.current
    started, release = torch.multiprocessing.Event(), torch.multiprocessing.Event()
    original = old.predict

    def slow_predict(images: list[DecodedImage]) -> list[object]:
        started.set()
        release.wait(30)
        return original(images)  # type: ignore[return-value]

    old.predict = slow_predict  # type: ignore[method-assign,assignment]
    import threading

    result: list[object] = []
    worker = threading.Thread(target=lambda: result.extend(reloader.predict(_images())))
    worker.start()
    assert started.wait(30)
    assert settings.adapters_dir is not None
    write_adapter(settings.adapters_dir / "newgen.safetensors", settings.checkpoint)
    assert reloader.reload("test")
    release.set()
    worker.join(60)
    assert result and all(p.model_info is old.info for p in result)  # type: ignore[attr-defined]
    assert all(p.model_info is reloader.current.info for p in reloader.predict(_images()))


def test_detector_loads_adapters_folder_at_start(settings: ModelSettings) -> None:
    assert settings.adapters_dir is not None
    write_adapter(settings.adapters_dir / "a.safetensors", settings.checkpoint, "gen-a")
    det: Detector = load_detector(settings)
    assert [a.generator for a in det.info.adapters] == ["gen-a"]


def test_replay_scores_with_a_candidate_adapter(settings: ModelSettings, tmp_path: Path) -> None:
    from consumer.replay.cli import ReplayOptions, _detector
    from consumer.settings import ServiceSettings

    candidate = write_adapter(tmp_path / "cand.safetensors", settings.checkpoint, "cand")
    service = ServiceSettings(
        kafka={"input_topics": ["x"]},  # type: ignore[arg-type]
        model=settings,
    )
    det = _detector(ReplayOptions(adapters=[candidate]), service, None)
    assert [a.generator for a in det.info.adapters] == ["cand"]
    assert _detector(ReplayOptions(), service, None).info.adapters == ()  # the folder is empty


def test_a_model_the_decision_policy_refuses_is_not_swapped_in(settings: ModelSettings) -> None:
    """A hot reload checks what the service checked at start (its decision band must keep every
    outcome reachable): a refused model never serves, the old one does."""
    serving = load_detector(settings)
    loads = iter(
        [ValueError("'synthetic' unreachable: decision.uncertain_high 0.999 >= ..."), None]
    )

    def accept(new: Detector) -> None:
        problem = next(loads)
        if problem is not None:
            raise problem

    reloader = ModelReloader(
        serving,
        lambda: load_detector(settings),
        lambda: [settings.checkpoint],
        poll_s=0,
        accept=accept,
    )
    assert reloader.reload("test") is False
    assert reloader.current is serving and reloader.refusals == 1
    assert reloader.reload("test") is True
    assert reloader.current is not serving and reloader.reloads == 1

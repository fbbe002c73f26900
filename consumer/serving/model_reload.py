"""Hot model reload: swap base checkpoint + adapters while serving, without downtime.

:class:`ModelReloader` is the :class:`~consumer.pipeline.steps.detect.Predictor` the pipeline uses.
Each ``predict`` call takes the model in force when the batch STARTS and finishes on it; a reload
builds and warms the new model on a background thread, then swaps one reference, so in-flight
batches end on the old model and later batches use the new one. Every prediction carries the
:class:`~detector.ModelInfo` of the model that made it (the verdict's ``model`` stamp).

A reload is triggered by SIGHUP (:meth:`ModelReloader.install_sighup`), by :meth:`request`, or
by a change of the watched files (the checkpoint and ``*.safetensors`` in the adapters folder,
polled every ``reload_poll_s``). A new set that does not load (corrupt, pickled, an adapter
for another base, a checkpoint sha256 that does not match the configured one) is refused with
an ``model_reload_refused`` log line and the old model keeps serving; the same files are not
retried until they change again. ``/readyz`` is untouched throughout.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import structlog

from consumer.errors import ConfigurationError

if TYPE_CHECKING:
    from consumer.serving.metrics import Metrics
    from consumer.settings import ModelSettings
    from detector import DecodedImage, Detector, ModelInfo, Prediction

__all__ = ["ModelReloader", "adapter_files", "load_detector", "reloader_for"]

log = structlog.get_logger("consumer.serving.model_reload")

Fingerprint = tuple[tuple[str, int, int], ...]


def adapter_files(settings: ModelSettings) -> list[Path]:
    """The adapter files in force: ``*.safetensors`` of the adapters folder, sorted by name."""
    folder = settings.adapters_dir
    if folder is None:
        return []
    return sorted(p for p in Path(folder).glob("*.safetensors") if p.is_file())


def load_detector(settings: ModelSettings, adapters: Sequence[Path] | None = None) -> Detector:
    """Load the checkpoint and adapters the settings name (``adapters``: these files instead)
    with the engine options they hold, warm.

    Raises:
        ConfigurationError: the checkpoint is missing, corrupt, pickled or does not match its
            sha256 or its adapters; the device, precision or runtime cannot be used.
    """
    from detector import Detector, DetectorError

    if not settings.checkpoint.is_file():
        raise ConfigurationError(f"checkpoint not found: {settings.checkpoint}")
    try:
        detector = Detector.from_checkpoint(
            settings.checkpoint,
            settings,  # the engine options: device, precision, runtime, batch, limits, sha256
            adapters=adapter_files(settings) if adapters is None else list(adapters),
        )
    except DetectorError as exc:  # CheckpointError among them: a deployment error
        raise ConfigurationError(f"cannot load {settings.checkpoint}: {exc}") from exc
    if settings.warmup:
        detector.warmup()
    return detector


def _fingerprint(paths: Sequence[Path]) -> Fingerprint:
    out = []
    for path in paths:
        try:
            st = path.stat()
            out.append((str(path), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(path), -1, -1))
    return tuple(out)


def _info_summary(info: ModelInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "version": info.version,
        "weights_sha256": info.weights_sha256,
        "adapters": [f"{a.generator}@{a.sha256[:12]}" for a in info.adapters],
    }


class ModelReloader:
    """The resident model, swappable at runtime (see module docstring)."""

    def __init__(
        self,
        current: Detector,
        load: Callable[[], Detector],
        watched: Callable[[], Sequence[Path]],
        *,
        poll_s: float = 2.0,
        on_swap: Callable[[Detector], None] | None = None,
        stop: threading.Event | None = None,
        accept: Callable[[Detector], object] | None = None,
    ) -> None:
        self._current = current
        self._accept = accept
        """Raises to refuse a loaded model (the service: its decision policy must hold)."""
        self.info: ModelInfo = current.info
        """The serving model's info (replaced on each swap)."""
        self._load = load
        self._watched = watched
        self._poll_s = poll_s
        self._on_swap = on_swap
        self._wake = threading.Event()
        self._stop = stop if stop is not None else threading.Event()
        self._lock = threading.Lock()  # one reload at a time
        self._seen = _fingerprint(watched())
        self.reloads = 0
        self.refusals = 0
        self._thread: threading.Thread | None = None

    # -- the Predictor face -------------------------------------------------------------------

    @property
    def current(self) -> Detector:
        return self._current

    def predict(self, images: Sequence[DecodedImage]) -> list[Prediction]:
        """Score on the model in force now (the whole batch on that one model)."""
        return self._current.predict(images)

    def warmup(self) -> None:
        self._current.warmup()

    # -- reloading ----------------------------------------------------------------------------

    def reload(self, reason: str = "request") -> bool:
        """Load the configured files now; swap on success. False when refused."""
        with self._lock:
            fingerprint = _fingerprint(self._watched())
            began = time.monotonic()
            try:
                new = self._load()
                if self._accept is not None:
                    self._accept(new)
            except Exception as exc:
                self.refusals += 1
                self._seen = fingerprint  # do not retry the same files
                log.error(
                    "model_reload_refused",
                    reason=reason,
                    error=f"{type(exc).__name__}: {exc}",
                    serving=_info_summary(self._current.info),
                )
                return False
            old, self._current = self._current, new
            self.info = new.info
            self._seen = fingerprint
            self.reloads += 1
        log.info(
            "model_reloaded",
            reason=reason,
            seconds=round(time.monotonic() - began, 2),
            old=_info_summary(old.info),
            new=_info_summary(new.info),
        )
        if self._on_swap is not None:
            self._on_swap(new)
        return True

    def request(self) -> None:
        """Ask the watcher thread to reload soon (safe from a signal handler)."""
        self._wake.set()

    def changed(self) -> bool:
        """Whether the watched files differ from the last load attempt."""
        return _fingerprint(self._watched()) != self._seen

    def start(self) -> None:
        """Start the watcher thread (daemon): reloads on :meth:`request` or on a file change."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="model-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the watcher thread (sets the stop event it shares, if any)."""
        self._stop.set()
        self._wake.set()

    def _loop(self) -> None:
        checked = time.monotonic()
        while not self._stop.is_set():
            requested = self._wake.wait(min(self._poll_s, 1.0) if self._poll_s > 0 else 1.0)
            self._wake.clear()
            if self._stop.is_set():
                return
            if requested:
                self.reload("signal")
            elif self._poll_s > 0 and time.monotonic() - checked >= self._poll_s:
                checked = time.monotonic()
                if self.changed():
                    self.reload("files_changed")

    def install_sighup(self) -> bool:
        """Reload on SIGHUP (main thread only; False elsewhere)."""
        if threading.current_thread() is not threading.main_thread():
            return False

        def handler(signum: int, frame: FrameType | None) -> None:
            self.request()

        signal.signal(signal.SIGHUP, handler)
        return True


def reloader_for(
    settings: ModelSettings,
    detector: Detector,
    metrics: Metrics,
    stop: threading.Event,
    accept: Callable[[Detector], object] | None = None,
) -> ModelReloader:
    """The service's reloader: watches the configured files, reloads on SIGHUP (when created
    on the main thread), refreshes the ``synthscan_model`` info metric on each swap, and stops
    with the service; ``accept`` may refuse a loaded model (it keeps the old one)."""
    reloader = ModelReloader(
        detector,
        lambda: load_detector(settings),
        lambda: [settings.checkpoint, *adapter_files(settings)],
        poll_s=settings.reload_poll_s,
        on_swap=lambda new: metrics.set_model_info(new.info.to_dict()),
        stop=stop,
        accept=accept,
    )
    reloader.start()
    reloader.install_sighup()
    return reloader

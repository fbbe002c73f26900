"""Running on the CPU: the default thread count and decoding overlapped with compute."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar, cast

__all__ = ["available_cpus", "default_threads", "prefetch"]

T = TypeVar("T")
_DONE = object()


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def default_threads(cpus: int | None = None) -> int:
    """Torch intra-op threads for inference: one core is left to decoding and I/O.

    On 1-2 CPUs that means one thread: measured on a 2-vCPU machine, ``predict`` with two
    threads was slower than with one while images were decoded alongside (docs/detector.md).
    """
    cpus = available_cpus() if cpus is None else cpus
    return max(1, cpus - 1)


def prefetch(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Yield ``items`` while a background thread produces up to ``depth`` ahead.

    Use it to decode the next batch while the current one is computed (PIL and the torch
    kernels release the GIL). An exception in the producer is re-raised in the consumer.
    """
    buffer: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                buffer.put((True, item))
        except BaseException as exc:
            buffer.put((False, exc))
        buffer.put(_DONE)

    thread = threading.Thread(target=produce, name="synthscan-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            entry = buffer.get()
            if entry is _DONE:
                return
            ok, value = cast(tuple[bool, Any], entry)
            if not ok:
                raise value
            yield cast(T, value)
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full buffer
            try:
                buffer.get_nowait()
            except queue.Empty:
                thread.join(0.05)

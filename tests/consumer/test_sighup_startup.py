"""SIGHUP during start-up (before the model reloader installs its handler) must not kill the
service (issue 19): it is ignored from the first instruction of ``python -m consumer run``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_sighup_during_startup_is_ignored(checkpoint: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHSCAN_")}
    env["PYTHONPATH"] = str(ROOT)
    args = [
        "--set",
        "kafka.bootstrap_servers=127.0.0.1:9",  # nothing there: the loop just keeps trying
        "--set",
        f"model.checkpoint={checkpoint}",
        "--set",
        "model.device=cpu",
        "--set",
        "http.enabled=false",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "consumer", "run", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)  # importing torch, loading the model: no reload handler yet
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert proc.poll() is None, f"exited with {proc.returncode}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

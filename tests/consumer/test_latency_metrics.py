"""End-to-end latency metrics ignore timestamps outside a sane window."""

from __future__ import annotations

from consumer.serving.metrics import sane_age


def test_latency_ignores_timestamps_outside_a_sane_window() -> None:
    """Issue 19: records stamped 1971, 0 and 2100 put the end-to-end latency sum at 3.56e9 s."""
    now = 1_796_000_000.0
    assert sane_age(int((now - 2.5) * 1000), now) == 2.5
    assert sane_age(int((now + 10) * 1000), now) == 0.0  # small clock skew
    assert sane_age(None, now) is None
    assert sane_age(0, now) is None
    assert sane_age(31_536_000_000, now) is None  # 1971
    assert sane_age(4_102_444_800_000, now) is None  # 2100

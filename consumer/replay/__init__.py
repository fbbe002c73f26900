"""Audit replay: old topics through the current or a candidate model, compared with the record.

``python -m consumer replay`` (see :mod:`consumer.replay.cli`); in process::

    from consumer.replay import ReplayOptions, run_replay
    outcome = run_replay(ReplayOptions(topics=["images"], from_ms=..., output_file=path,
                                       compare=True), settings)
"""

from consumer.replay.cli import ReplayOptions, ReplayOutcome, register, run_replay
from consumer.replay.compare import Comparison, compare
from consumer.replay.ranges import OffsetRange, parse_offsets, parse_time
from consumer.replay.recorded import Scored

__all__ = [
    "Comparison",
    "OffsetRange",
    "ReplayOptions",
    "ReplayOutcome",
    "Scored",
    "compare",
    "parse_offsets",
    "parse_time",
    "register",
    "run_replay",
]

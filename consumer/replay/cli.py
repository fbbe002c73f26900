"""``python -m consumer replay``: audit a time window (or offsets) with the current or a
candidate model, write the verdicts to a JSONL file or an audit topic, optionally compare.

Examples::

    python -m consumer replay --topic images --from 2026-11-21T10:00:00Z --to 2026-11-21T11:00Z \\
        --output-file audit/run1.jsonl --compare --run-id run1
    python -m consumer replay --offsets images:0:100-200 --output-topic verdicts.audit \\
        --checkpoint candidate.safetensors --compare

Settings (bootstrap servers, model, fetch, decode, batching) come from ``SYNTHSCAN_*`` and
``--set`` like ``python -m consumer run``; the flags here override them. Re-running with the
same ``--run-id`` (and output) resumes where the run stopped.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from consumer.replay.compare import Comparison, compare, write_report
from consumer.replay.output import JsonlOutput, ReplayOutput, TopicOutput
from consumer.replay.ranges import OffsetRange, parse_offsets, parse_time, resolve_ranges
from consumer.replay.recorded import read_new_from_file, read_verdict_topic
from consumer.replay.state import ReplayState

if TYPE_CHECKING:  # the runner pulls in torch; `python -m consumer --help` should not
    from consumer.kafka.backend import ReplayBackend
    from consumer.replay.runner import ReplayResult
    from consumer.settings import ServiceSettings

__all__ = ["ReplayOptions", "ReplayOutcome", "register", "run_replay"]


@dataclass
class ReplayOptions:
    """One replay run (the CLI flags)."""

    topics: list[str] = field(default_factory=list)
    from_ms: int | None = None
    to_ms: int | None = None
    offsets: list[OffsetRange] = field(default_factory=list)
    output_file: Path | None = None
    output_topic: str | None = None
    run_id: str | None = None
    state_file: Path | None = None
    checkpoint: Path | None = None
    adapters: list[Path] | None = None  # None: the configured model.adapters_dir
    threshold: float | None = None
    compare: bool = False
    verdict_topic: str | None = None
    report: Path | None = None
    tolerance: float = 1e-4
    progress: bool = True


@dataclass
class ReplayOutcome:
    result: ReplayResult
    state_file: Path
    comparison: Comparison | None = None
    reports: tuple[Path, Path] | None = None


def run_replay(
    options: ReplayOptions,
    settings: ServiceSettings,
    *,
    detector: Any = None,
    stop: threading.Event | None = None,
    backend: ReplayBackend | None = None,
) -> ReplayOutcome:
    """Run (or resume) a replay; ``detector`` (a warm :class:`detector.Detector`) is optional;
    the clients come from ``backend`` (the service's :class:`~consumer.kafka.backend.KafkaBackend`
    by default)."""
    from consumer.kafka.backend import KafkaBackend
    from consumer.pipeline.assembly import decision_policy
    from consumer.replay.runner import ReplayRunner

    backend = backend or KafkaBackend()

    _validate(options)
    run_id = options.run_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
    state_path = options.state_file or (
        options.output_file.with_name(options.output_file.name + ".state.json")
        if options.output_file is not None
        else Path(f"replay-{run_id}.state.json")
    )
    detector = _detector(options, settings, detector)
    info = detector.info
    decision_policy(settings, info)  # refuses like the service, before any state is written
    model = {
        "version": info.version,
        "weights_sha256": info.weights_sha256,
        "threshold": info.threshold,
    }
    resuming = state_path.exists()
    if resuming:
        state = _resumed_state(options, state_path, run_id, model)
        run_id = state.run_id
    else:
        state = _new_state(options, settings, run_id, state_path, model, backend)
    output = _output(options, settings, state if resuming else None, backend)
    runner = ReplayRunner(
        settings, state, _predictor(settings, detector), _records(options, settings, run_id, info),
        output, progress=options.progress, stop=stop, backend=backend,
    )  # fmt: skip
    try:
        result = runner.run()
    finally:
        output.close()
    outcome = ReplayOutcome(result, state_path)
    if options.compare and result.complete:
        outcome.comparison = _compare(options, settings, run_id, state, backend)
        stem = options.report or (
            options.output_file.with_name(options.output_file.name + ".report")
            if options.output_file is not None
            else Path(f"replay-{run_id}.report")
        )
        outcome.reports = write_report(outcome.comparison, stem)
    return outcome


def _validate(options: ReplayOptions) -> None:
    if (options.output_file is None) == (options.output_topic is None):
        raise ValueError("give exactly one of --output-file / --output-topic")
    if options.threshold is not None and not 0.0 <= options.threshold <= 1.0:
        raise ValueError(f"--threshold must be in [0, 1], got {options.threshold}")
    if (
        options.from_ms is not None
        and options.to_ms is not None
        and options.from_ms >= options.to_ms
    ):
        raise ValueError("--from must be before --to")
    if options.offsets and (options.from_ms is not None or options.to_ms is not None):
        raise ValueError("give either --offsets or --from/--to, not both")


def _resumed_state(
    options: ReplayOptions, state_path: Path, run_id: str, model: dict[str, Any]
) -> ReplayState:
    state = ReplayState.load(state_path)
    if state.run_id != run_id and options.run_id is not None:
        raise ValueError(f"{state_path} belongs to run {state.run_id}, not {run_id}")
    if state.model and state.model != model:
        raise ValueError(f"run {state.run_id} used model {state.model}, not {model}")
    return state


def _new_state(
    options: ReplayOptions,
    settings: ServiceSettings,
    run_id: str,
    path: Path,
    model: dict[str, Any],
    backend: ReplayBackend,
) -> ReplayState:
    from consumer.kafka.config import replay_consumer_config

    topics = options.topics or list(settings.kafka.input_topics)
    probe = backend.reader(replay_consumer_config(settings.kafka, run_id))
    try:
        ranges = resolve_ranges(
            probe, topics, from_ms=options.from_ms, to_ms=options.to_ms, explicit=options.offsets
        )
    finally:
        probe.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    state = ReplayState(path, run_id, datetime.now(UTC).isoformat(), ranges, model=model)
    state.save()
    return state


def _detector(options: ReplayOptions, settings: ServiceSettings, detector: Any) -> Any:
    """Loaded like the service's (:mod:`consumer.pipeline.assembly`: the sha256 check included)."""
    if detector is None:
        from consumer.pipeline.assembly import load_checked_detector

        detector = load_checked_detector(
            settings, checkpoint=options.checkpoint, adapters=options.adapters
        )
    if options.threshold is not None:  # a candidate threshold: same weights, new labels
        detector = detector.with_threshold(options.threshold)
    return detector


def _predictor(settings: ServiceSettings, detector: Any) -> Any:
    from consumer.pipeline.verdict_cache import with_cache

    return with_cache(detector, getattr(settings, "cache", None))


def _records(options: ReplayOptions, settings: ServiceSettings, run_id: str, info: Any) -> Any:
    """The service's record factory (same decision policy and band), replay's topics."""
    from consumer.pipeline.assembly import record_factory

    topic = options.output_topic or "replay"
    return record_factory(
        settings,
        info,
        verdict_topic=topic,
        dead_letter_topic=f"{topic}.dlq",
        group=f"synthscan-replay-{run_id}",
        instance=run_id,
    )


def _output(
    options: ReplayOptions,
    settings: ServiceSettings,
    resume: ReplayState | None,
    backend: ReplayBackend,
) -> ReplayOutput:
    if options.output_file is not None:
        return JsonlOutput(options.output_file, None if resume is None else resume.output_bytes)
    from consumer.kafka.config import audit_producer_config

    assert options.output_topic is not None
    conf = audit_producer_config(settings.kafka)
    return TopicOutput(conf, options.output_topic, f"{options.output_topic}.dlq", backend)


def _compare(
    options: ReplayOptions,
    settings: ServiceSettings,
    run_id: str,
    state: ReplayState,
    backend: ReplayBackend,
) -> Comparison:
    from consumer.kafka.config import common_config

    conf = common_config(settings.kafka)
    if options.output_file is not None:
        new = read_new_from_file(options.output_file)
    else:
        assert options.output_topic is not None
        new = read_verdict_topic(
            conf,
            options.output_topic,
            lambda v: v.replay is not None and v.replay.run_id == run_id,
            backend=backend,
        )
    ids = {s.event_id for s in new}
    shas = {s.sha256 for s in new}
    recorded = read_verdict_topic(
        conf,
        options.verdict_topic or settings.kafka.verdict_topic,
        lambda v: v.replay is None and (v.event_id in ids or v.image.sha256 in shas),
        from_ms=options.from_ms,
        backend=backend,
    )
    return compare(run_id, new, recorded, options.tolerance)


# -- command line ---------------------------------------------------------------------------


def register(sub: Any) -> None:
    """Add the ``replay`` subcommand to ``python -m consumer``'s subparsers."""
    p = sub.add_parser(
        "replay",
        help="replay topics through the current or a candidate model (audit)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--topic", dest="topics", action="append", default=[], help="input topic")
    p.add_argument("--from", dest="from_ms", type=parse_time, help="ISO-8601 or epoch ms")
    p.add_argument("--to", dest="to_ms", type=parse_time, help="exclusive; ISO-8601 or epoch ms")
    p.add_argument("--offsets", action="append", default=[], help="topic:partition:start-end")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--output-file", type=Path, help="JSONL of the new verdicts")
    out.add_argument("--output-topic", help="audit topic of the new verdicts")
    p.add_argument("--run-id", help="name the run; the same id resumes it")
    p.add_argument("--state-file", type=Path, help="progress file (default: next to output)")
    p.add_argument("--checkpoint", type=Path, help="candidate checkpoint (default: model.*)")
    p.add_argument(
        "--adapter",
        action="append",
        type=Path,
        dest="adapters",
        help="candidate adapter file (repeatable; default: the files in model.adapters_dir)",
    )
    p.add_argument("--threshold", type=float, help="candidate decision threshold")
    p.add_argument("--compare", action="store_true", help="join with the recorded verdicts")
    p.add_argument("--verdict-topic", help="recorded verdicts (default: kafka.verdict_topic)")
    p.add_argument("--report", type=Path, help="report path stem (.md and .json are added)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="score 'unchanged' tolerance")
    p.add_argument("--bootstrap-servers", help="overrides kafka.bootstrap_servers")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """The subcommand; exit 0 when complete, 130 when interrupted (resume with --run-id)."""
    from pydantic import ValidationError

    from consumer.errors import ConfigurationError
    from consumer.logs import configure_logging
    from consumer.settings import ServiceSettings, describe_error

    overrides = list(args.set)
    if args.bootstrap_servers:
        overrides.append(f"kafka.bootstrap_servers={args.bootstrap_servers}")
    try:
        settings = ServiceSettings.load(overrides)
        options = ReplayOptions(
            topics=args.topics,
            from_ms=args.from_ms,
            to_ms=args.to_ms,
            offsets=parse_offsets(args.offsets),
            output_file=args.output_file,
            output_topic=args.output_topic,
            run_id=args.run_id,
            state_file=args.state_file,
            checkpoint=args.checkpoint,
            adapters=args.adapters,
            threshold=args.threshold,
            compare=args.compare,
            verdict_topic=args.verdict_topic,
            report=args.report,
            tolerance=args.tolerance,
            progress=not args.no_progress,
        )
    except (ValidationError, ValueError) as exc:
        print(f"invalid arguments: {describe_error(exc)}", file=sys.stderr)
        return 2
    configure_logging(settings.logging.level, settings.logging.format)
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        outcome = run_replay(options, settings, stop=stop)
    except (ValueError, ConfigurationError) as exc:
        print(f"cannot replay: {exc}", file=sys.stderr)
        return 2
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    r = outcome.result
    summary: dict[str, Any] = {
        "run_id": r.run_id,
        "complete": r.complete,
        "verdicts": r.verdicts,
        "dead_letters": r.dead_letters,
        "seconds": round(r.seconds, 3),
        "events_per_s": round(r.events_per_s, 2),
        "state_file": str(outcome.state_file),
    }
    if outcome.comparison is not None and outcome.reports is not None:
        summary["counts"] = outcome.comparison.to_dict()["counts"]
        summary["report"] = [str(p) for p in outcome.reports]
    print(json.dumps(summary), flush=True)
    return 0 if r.complete else 130

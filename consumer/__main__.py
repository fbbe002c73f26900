"""Command line: ``python -m consumer {run,tail,replay}``.

- ``run [--set section.key=value ...]``: the service (settings from ``SYNTHSCAN_*`` env, then
  ``--set`` overrides); stops cleanly on SIGTERM/SIGINT.
- ``tail --topic verdicts [--count N]``: print one line per verdict (label, score, top patch)
  or dead letter; exits after N records or ``--timeout`` seconds without one.
- ``replay --topic T --from ... --to ... --output-file F [--compare]``: audit replay (see
  :mod:`consumer.replay.cli`).
"""

from __future__ import annotations

import signal

if __name__ == "__main__":
    # SIGHUP asks the model reloader for a reload; its handler exists only once the model is
    # loaded. Before that the default action (terminate) killed a starting pod (issue 19).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

__all__ = ["main"]


def _run(args: argparse.Namespace) -> int:
    from consumer.errors import ConfigurationError, KafkaAccessError
    from consumer.logs import configure_logging
    from consumer.serving.service import Service
    from consumer.settings import ServiceSettings, describe_error

    try:
        settings = ServiceSettings.load(args.set)
    except (ValidationError, ValueError) as exc:
        print(f"invalid settings: {describe_error(exc)}", file=sys.stderr)
        return 2
    configure_logging(settings.logging.level, settings.logging.format)
    try:
        Service(settings).run(install_signal_handlers=True)
    except ConfigurationError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2
    except KafkaAccessError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return KafkaAccessError.exit_code
    return 0


def _tail(args: argparse.Namespace) -> int:
    from consumer.tail_command import tail

    return tail(
        args.bootstrap_servers,
        args.topic,
        count=args.count,
        timeout_s=args.timeout,
        from_beginning=not args.latest,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the service")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, e.g. kafka.group_id=g1 (repeatable)",
    )
    run.set_defaults(func=_run)
    tail = sub.add_parser("tail", help="print verdicts / dead letters from a topic")
    tail.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    tail.add_argument("--topic", default="verdicts")
    tail.add_argument("--count", type=int, default=None, help="exit after this many records")
    tail.add_argument(
        "--timeout", type=float, default=30.0, help="exit after this many seconds without a record"
    )
    tail.add_argument("--latest", action="store_true", help="only records written from now on")
    tail.set_defaults(func=_tail)
    from consumer.replay.cli import register as register_replay

    register_replay(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())

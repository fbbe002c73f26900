"""``python -m schemas {export [--check], compat, baseline}``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from schemas.export import BASELINE_DIR, SCHEMA_DIR, drift, incompatibilities, write


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m schemas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write JSON Schema files generated from the models")
    export.add_argument("--check", action="store_true", help="only compare; exit 1 on drift")
    export.add_argument("--dir", type=Path, default=SCHEMA_DIR)
    compat = sub.add_parser("compat", help="exit 1 if the models break the baseline contract")
    compat.add_argument("--baseline", type=Path, default=BASELINE_DIR)
    baseline = sub.add_parser("baseline", help="snapshot the current schemas as the new baseline")
    baseline.add_argument("--dir", type=Path, default=BASELINE_DIR)
    args = parser.parse_args(argv)

    if args.command == "export" and args.check:
        problems = drift(args.dir)
        for line in problems:
            print(f"drift: {line}", file=sys.stderr)
        if problems:
            print("run `python -m schemas export` and commit the result", file=sys.stderr)
        return 1 if problems else 0
    if args.command == "compat":
        problems = incompatibilities(args.baseline)
        for line in problems:
            print(f"breaking: {line}", file=sys.stderr)
        return 1 if problems else 0
    for path in write(args.dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m detector``: see :mod:`detector.cli`."""

from detector.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m benchmarks``: run every benchmark and print its figures."""

from __future__ import annotations

import sys

from benchmarks import delivery, fleet, incidents, journal, rules, spool, storm, tailing


def main() -> int:
    for bench in (rules, storm, spool, tailing, delivery, incidents, journal, fleet):
        bench.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())

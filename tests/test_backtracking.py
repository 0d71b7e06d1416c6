"""A rule that backtracks cannot stall the daemon: through the real daemon, hostile lines for a
catastrophic rule hold up neither reading nor another rule's alert by more than a second."""

from __future__ import annotations

import time
from pathlib import Path

from tests.daemon import Daemon, metrics, wait_until, write_config

# (a+)+b|c: exponential in re on a run of a's that ends in c. Hyperscan and RE2 pick such a line
# (it matches, at the c), so only the budget stands between the line and a stalled event loop.
CATASTROPHIC = """
  - name: catastrophic
    match: '(a+)+b|c'
    severity: info
"""


def test_a_catastrophic_rule_neither_stalls_reading_nor_delays_other_alerts(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra="http: {listen: '127.0.0.1:0'}\n")
    rules = tmp_path / "rules.d" / "rules.yaml"
    rules.write_text(rules.read_text(encoding="utf-8") + CATASTROPHIC, encoding="utf-8")
    daemon = Daemon(config).started()
    try:
        hostile = "x" + "a" * 40 + "c"  # several seconds of backtracking each, without a budget
        daemon.append(*[hostile] * 5)
        written = time.monotonic()
        daemon.append("LOUD after the hostile lines")
        wait_until(lambda: "loud: after the hostile lines" in daemon.stdout, what="the other rule's alert")
        delay = time.monotonic() - written
        print(f"the other rule's alert came {delay * 1000:.0f} ms after its line")
        assert delay < 1.0, f"another rule's alert waited {delay:.2f}s behind the hostile lines"

        stats = metrics(daemon)
        assert stats['tailhook_rule_over_budget_total{rule="catastrophic"}'] == 5
        assert stats['tailhook_lines_total{source="app"}'] == 6
        assert daemon.stderr.count("rule catastrophic: searching a line took over") == 1  # logged once

        daemon.append("an ordinary c line")  # the rule still works on lines it can decide in time
        wait_until(lambda: "[catastrophic]" in daemon.stdout, what="the catastrophic rule's own alert")
    finally:
        assert daemon.stop() == 0

"""Flood summaries, the pure part: what a summary says (when a backlog is a flood: tests/test_spool.py)."""

from __future__ import annotations

from tailhook.events import Kind, Notification, Severity
from tailhook.flood import SUMMARY_KEY, RuleFlood, summary


def test_a_summary_states_the_exact_numbers_and_shows_the_latest_alert() -> None:
    latest = Notification(
        kind=Kind.ALERT, rule="ssh-fail", severity=Severity.WARNING, key="198.18.0.31", title="ssh-fail 198.18.0.31",
        description="", line="the latest line", source="auth", host="web-1", time=5711.0, path="/var/log/auth.log",
    )  # fmt: skip
    top = [("198.18.0.0", 118), ("198.18.0.1", 118)]
    flood = RuleFlood("ssh-fail", 4712, 40, 1000.0, 5711.0, Severity.WARNING, top, latest)
    n = summary(flood, host="web-1", flood_after_s=30)
    assert (n.kind, n.rule, n.key, n.count, n.severity) == (
        Kind.SUMMARY,
        "ssh-fail",
        SUMMARY_KEY,
        4712,
        Severity.WARNING,
    )
    assert n.title == "ssh-fail: 4,712 alerts summed up, from 40 keys"
    assert n.description == (
        "4,712 ssh-fail alerts from 40 keys over 1.31 h (00:16:40 to 01:35:11 UTC) waited here, more than this "
        "channel takes in 30 s, so they are summed up. Most frequent: 198.18.0.0 (118), 198.18.0.1 (118). The latest "
        "is below; all of them: tailhook spool list --summarised."
    )
    assert (n.line, n.source, n.path, n.time) == ("the latest line", "auth", "/var/log/auth.log", 5711.0)
    one = summary(RuleFlood("web", 1, 1, 5.0, 5.0, Severity.ERROR, [("502", 1)], latest), host="h", flood_after_s=30)
    assert one.title == "web: 1 alert summed up, from 1 key"

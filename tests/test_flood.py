"""Flood summaries, the pure part: what a backlog becomes, per rule, with exact numbers."""

from __future__ import annotations

from tailhook.events import Kind, Notification, Severity
from tailhook.flood import SUMMARY_KEY, flooded, summaries


def alert(
    rule: str, key: str, at: float, severity: Severity = Severity.WARNING, kind: Kind = Kind.ALERT
) -> Notification:
    return Notification(
        kind=kind, rule=rule, severity=severity, key=key, title=f"{rule} {key}", description="",
        line=f"line of {key} at {at:g}", source="auth", host="web-1", time=at,
    )  # fmt: skip


def test_a_backlog_is_a_flood_when_it_outlasts_flood_after() -> None:
    assert not flooded(750, 25.0, 30.0)  # Discord's 5 per 2 s, 10 alerts a message: 750 in 30 s
    assert flooded(751, 25.0, 30.0)


def test_each_rules_alerts_become_one_summary_with_exact_numbers() -> None:
    waiting = [(i, 100.0 + i, alert("ssh-fail", f"198.18.0.{i % 40}", 1_000.0 + i)) for i in range(4712)]
    waiting += [(10_000 + i, 200.0 + i, alert("nginx-5xx", "502", 1_000.0 + i, Severity.ERROR)) for i in range(3)]
    waiting.append((20_000, 50.0, alert("disk", "sda", 999.0, Severity.CRITICAL)))  # never summed up
    waiting.append((20_001, 60.0, alert("ssh-fail", "x", 999.0, kind=Kind.DIGEST)))  # nor a digest

    ssh, nginx = summaries(waiting, host="web-1", flood_after_s=30)
    assert ssh.ids == tuple(range(4712)) and ssh.created == 100.0  # in the place of the oldest
    n = ssh.notification
    assert (n.kind, n.rule, n.key, n.count, n.severity) == (
        Kind.SUMMARY,
        "ssh-fail",
        SUMMARY_KEY,
        4712,
        Severity.WARNING,
    )
    assert n.title == "ssh-fail: 4,712 alerts summed up, from 40 keys"
    assert n.description.startswith("4,712 ssh-fail alerts from 40 keys over 1.31 h (00:16:40 to 01:35:11 UTC)")
    assert "Most frequent: 198.18.0.0 (118), 198.18.0.1 (118)" in n.description
    assert n.line == "line of 198.18.0.31 at 5711"  # the latest
    assert (nginx.notification.count, nginx.notification.severity, nginx.ids) == (
        3,
        Severity.ERROR,
        (10_000, 10_001, 10_002),
    )
    assert nginx.notification.title == "nginx-5xx: 3 alerts summed up, from 1 key"

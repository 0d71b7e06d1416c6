"""Floods: when a destination has more alerts waiting than it can take in time, sum them up per rule.

Discord takes a webhook's few requests per second, ten alerts each. When
more non-critical alerts wait for a destination than it can send within
``storm.flood_after`` (by the rate limits its sink reports), the alerts that
wait are taken out of its queue and each rule's become one summary
(``Kind.SUMMARY``) with exact numbers: how many, from how many keys, over
what span, the most frequent keys. The summary goes out at the severity of
the most severe alert it stands for, in the place of the oldest, so it is
not starved. Critical alerts are never summed up, nor are digests, notes and
summaries. The alerts summed up stay in the spool, inspectable
(``tailhook spool list --summarised``), and are counted in ``/metrics``.

Pure: this module only decides; the spool moves the rows in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from tailhook._units import seconds_in_words
from tailhook.events import Kind, Notification, Severity

__all__ = ["SUMMARY_KEY", "RuleFlood", "summary"]

SUMMARY_KEY = "(summary)"
TOP_KEYS = 5
"""A summary names this many of the most frequent keys."""


@dataclass(frozen=True, slots=True)
class RuleFlood:
    """What one rule's alerts waiting for a destination add up to (the spool counts them)."""

    rule: str
    count: int
    keys: int
    """Distinct keys among them."""
    first: float
    last: float
    """The times of the first and the last of them (their lines')."""
    severity: Severity
    """The most severe of them."""
    top: Sequence[tuple[str, int]]
    """The most frequent keys, most first, each with its count (at most ``TOP_KEYS``)."""
    latest: Notification


def summary(flood: RuleFlood, *, host: str, flood_after_s: float) -> Notification:
    """The one notification that stands for *flood*: exact numbers, the latest alert's line."""
    count, keys, rule = flood.count, flood.keys, flood.rule
    alerts = "alert" if count == 1 else "alerts"
    of_keys = f"{keys:,} {'key' if keys == 1 else 'keys'}"
    top = ", ".join(f"{key} ({times:,})" for key, times in flood.top)
    description = (
        f"{count:,} {rule} {alerts} from {of_keys} over {seconds_in_words(flood.last - flood.first)} "
        f"({_clock(flood.first)} to {_clock(flood.last)} UTC) waited here, more than this channel takes "
        f"in {seconds_in_words(flood_after_s)}, so they are summed up. Most frequent: {top}. The latest is below; "
        "all of them: tailhook spool list --summarised."
    )
    latest = flood.latest
    return Notification(
        kind=Kind.SUMMARY,
        rule=rule,
        severity=flood.severity,
        key=SUMMARY_KEY,
        title=f"{rule}: {count:,} {alerts} summed up, from {of_keys}",
        description=description,
        line=latest.line,
        source=latest.source,
        host=host,
        time=flood.last,
        path=latest.path,
        count=count,
    )


def _clock(when: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(when))

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
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from tailhook._units import seconds_in_words
from tailhook.events import Kind, Notification, Severity

__all__ = ["FLOOD_KINDS", "SUMMARY_KEY", "Summary", "flooded", "summaries"]

SUMMARY_KEY = "(summary)"
FLOOD_KINDS = frozenset({Kind.ALERT})
"""What a flood sums up: alerts. Digests, recoveries, notes and summaries always go as they are."""
TOP_KEYS = 5
"""A summary names this many of the most frequent keys."""


@dataclass(frozen=True, slots=True)
class Summary:
    notification: Notification
    ids: tuple[int, ...]
    """The spool ids of the alerts it stands for."""
    created: float
    """When the oldest of them was stored: the summary takes its place in the queue."""


def flooded(waiting: int, per_second: float, flood_after_s: float) -> bool:
    """Whether *waiting* alerts are more than *per_second* lets out in *flood_after_s*."""
    return waiting > per_second * flood_after_s


def summaries(waiting: Sequence[tuple[int, float, Notification]], *, host: str, flood_after_s: float) -> list[Summary]:
    """One summary per rule of *waiting* (spool id, stored at, notification), rules in the order of
    their oldest alert; only the kinds a flood sums up, below critical."""
    by_rule: dict[str, list[tuple[int, float, Notification]]] = {}
    for item in waiting:
        n = item[2]
        if n.kind in FLOOD_KINDS and n.severity < Severity.CRITICAL:
            by_rule.setdefault(n.rule, []).append(item)
    return [_summary(rule, items, host=host, flood_after_s=flood_after_s) for rule, items in by_rule.items()]


def _summary(rule: str, items: list[tuple[int, float, Notification]], *, host: str, flood_after_s: float) -> Summary:
    notifications = [n for _, _, n in items]
    count = len(items)
    keys = Counter(n.key for n in notifications)
    first, last = min(n.time for n in notifications), max(n.time for n in notifications)
    top = ", ".join(f"{key} ({times:,})" for key, times in keys.most_common(TOP_KEYS))
    latest = max(notifications, key=lambda n: n.time)
    severity = max(n.severity for n in notifications)
    sources = Counter(n.source for n in notifications)
    alerts = "alert" if count == 1 else "alerts"
    span = seconds_in_words(last - first)
    description = (
        f"{count:,} {rule} {alerts} from {len(keys):,} {'key' if len(keys) == 1 else 'keys'} "
        f"over {span} ({_clock(first)} to {_clock(last)} UTC) waited here, more than this channel takes "
        f"in {seconds_in_words(flood_after_s)}, so they are summed up. Most frequent: {top}. The latest is below; "
        "all of them: tailhook spool list --summarised."
    )
    notification = Notification(
        kind=Kind.SUMMARY,
        rule=rule,
        severity=severity,
        key=SUMMARY_KEY,
        title=f"{rule}: {count:,} {alerts} summed up, from {len(keys):,} {'key' if len(keys) == 1 else 'keys'}",
        description=description,
        line=latest.line,
        source=sources.most_common(1)[0][0],
        host=host,
        time=last,
        path=latest.path,
        count=count,
    )
    return Summary(notification, tuple(i for i, _, _ in items), min(created for _, created, _ in items))


def _clock(when: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(when))

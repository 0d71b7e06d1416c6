"""The daily report: once a day, one message saying that tailhook still watches, and what the day held.

``heartbeat: {report: {to: ops, at: "09:00"}}`` sends to ``ops``, every day at
09:00 in the host's local time, the daily summary teams otherwise script
themselves::

    tailhook on web-1: still watching 12 files, 1 journal; 0 waiting

    In the last 24 hours:
    37 alerts: 2 critical, 5 error, 30 warning
    • ssh-bruteforce: 30 warning
    • disk-full: 2 critical, 5 error
    Largest storms (events held back):
    • ssh-bruteforce: 1,204
    Dropped:
    • 3 for ops while the spool was full: 1 warning, 2 info
    Dead letters: 1 for ops

Its figures are the daemon's own metrics (``collect``, as prometheus_client
families): the gauges as they are now, the counters' increase since the last
report that was stored (the first after a start: since the start, when every
counter was zero). A counter that went down was reset and counts from zero, as
Prometheus's ``increase()`` has it; a family that is missing counts as zero.

The report is a notification like an alert's, handed to ``commit`` (the spool),
so it waits out an outage like one. When it cannot be made or stored, that is
logged and counted, the counters' baseline stays where it was (the next report
covers both days), and the next day goes on.

Time is a parameter: ``clock`` (seconds since the epoch) and ``sleep``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as time_of_day
from typing import TypeVar

from tailhook._errors import describe
from tailhook.config import ReportConfig
from tailhook.events import Delivery, Kind, Notification, Severity
from tailhook.metrics import Metric, counter
from tailhook.sinks.discord_payload import LIMITS, neutralise
from tailhook.sources import FOLLOWING
from tailhook.spool import SpoolFull

__all__ = ["RULE", "DailyReport", "next_report"]

log = logging.getLogger(__name__)

RULE = "tailhook-daily-report"
"""What a report's footer names as its rule: it is tailhook's own, as ``tailhook-spool-drops`` is."""
KEY = "daily-report"
TOP_RULES = 15
"""Rules listed with their alerts, most first; the rest are summed up in one line."""
TOP_STORMS = 5
"""Rules listed as the largest storms (events held back)."""
TOP_DESTINATIONS = 5
"""Destinations listed for drops, dead letters and what waits; the rest are summed up."""
RECHECK_S = 60.0
"""The longest one sleep lasts while waiting for ``at``: the wall clock may jump (NTP, a suspended
host) and a reload may move ``at``."""
DAY_S = 24 * 3600
_ON_TIME_S = 60.0
"""A report this close to 24 hours after the last one says "in the last 24 hours"."""

# What the report reads: the names of the samples (a counter's end in _total).
ALERTS = "tailhook_alerts_total"
HELD = "tailhook_storm_held_total"
DROPPED = "tailhook_spool_dropped_total"
DEAD_LETTERS = "tailhook_dead_letters_total"
WAITING = "tailhook_spool_pending"
_COUNTERS = (ALERTS, HELD, DROPPED, DEAD_LETTERS)
_GAUGES = (FOLLOWING, WAITING)

_DROP_CAUSES = {"full": "while the spool was full", "expired": "as older than spool.max_age"}

Labels = tuple[tuple[str, str], ...]
Reading = dict[str, dict[Labels, float]]
"""Sample name → its labels, sorted → value: what ``collect`` gave, of the samples the report reads."""


class DailyReport:
    """Sends *config*'s report every day at its ``at``: *collect* gives the daemon's metrics, *commit*
    stores the report's delivery (the spool). Make it at the start, while every counter is zero."""

    def __init__(
        self,
        config: ReportConfig,
        *,
        host: str,
        collect: Callable[[], Awaitable[Iterable[Metric]]],
        commit: Callable[[Sequence[Delivery]], Awaitable[None]],
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        """May be replaced while running (a reload): ``to`` applies from the next report, ``at`` within
        ``RECHECK_S``."""
        self.host = host
        self.daemon_metrics = collect
        self.commit = commit
        self.clock = clock
        self.sleep = sleep
        self.reports_total = 0
        self.failures_total = 0
        self._baseline: Reading = {}
        self._since = clock()
        self._since_start = True

    async def run(self) -> None:
        """Report at ``config.at`` every day, until cancelled."""
        while True:
            await self._wait_for_at()
            await self.report_now()

    async def _wait_for_at(self) -> None:
        at = self.config.at
        due = next_report(self.clock(), at)
        while (left := due - self.clock()) > 0:
            await self.sleep(min(left, RECHECK_S))
            if self.config.at != at:
                at = self.config.at
                due = next_report(self.clock(), at)

    async def report_now(self) -> bool:
        """Make the report of what happened since the last one and store it; whether it was stored."""
        now = self.clock()
        try:
            reading = _read(await self.daemon_metrics())
            notification = self._notification(reading, now)
            await self.commit([Delivery(self.config.to, notification)])
        except (SpoolFull, sqlite3.Error, OSError) as exc:
            self.failures_total += 1
            log.warning("daily report: not stored (%s); the next one covers this day too", describe(exc))
            return False
        self._baseline, self._since, self._since_start = reading, now, False
        self.reports_total += 1
        log.info("daily report stored for %s", self.config.to)
        return True

    def _notification(self, reading: Reading, now: float) -> Notification:
        """The report of *reading* (made at *now*) against the last report's."""
        day = _Day.of(reading, self._baseline)
        period = _period(self._since, now, start=self._since_start)
        return Notification(
            kind=Kind.ALERT,
            rule=RULE,
            severity=Severity.INFO,
            key=KEY,
            title=_title(self.host, day),
            description=_description(period, day),
            line="",
            source="tailhook",
            host=self.host,
            time=now,
        )

    def collect(self) -> Iterator[Metric]:
        """The report's own metrics, as a prometheus_client collector gives them."""
        yield counter("tailhook_reports_total", "Daily reports stored for delivery.", self.reports_total)
        yield counter(
            "tailhook_report_failures_total",
            "Daily reports that could not be made or stored (each is logged).",
            self.failures_total,
        )


def next_report(now: float, at: int) -> float:
    """The first moment after *now* at which the host's local clock reads *at* (minutes after midnight).

    On a day whose clock change skips *at* (02:30 as 02:00 jumps to 03:00) it is an hour later that
    day (03:30); on a day that repeats it, the first time.
    """
    moment = time_of_day(at // 60, at % 60)
    day = datetime.fromtimestamp(now).date()
    while (due := datetime.combine(day, moment).timestamp()) <= now:
        day += timedelta(days=1)
    return due


# ── the figures ─────────────────────────────────────────────────────────────


def _read(families: Iterable[Metric]) -> Reading:
    reading: Reading = {name: {} for name in (*_COUNTERS, *_GAUGES)}
    for family in families:
        for sample in family.samples:
            values = reading.get(sample.name)
            if values is not None:
                labels = tuple(sorted(sample.labels.items()))
                values[labels] = values.get(labels, 0.0) + sample.value
    return reading


def _increase(now: Mapping[Labels, float], before: Mapping[Labels, float]) -> dict[Labels, float]:
    """Each counter's growth from *before* to *now*; one that went down was reset, and counts from zero."""
    grown = {}
    for labels, value in now.items():
        earlier = before.get(labels, 0.0)
        grown[labels] = value - earlier if value >= earlier else value
    return grown


def _by(values: Mapping[Labels, float], *names: str) -> Counter[tuple[str, ...]]:
    """*values* summed per the values of the labels *names* (a missing label: ``""``)."""
    summed: Counter[tuple[str, ...]] = Counter()
    for labels, value in values.items():
        found = dict(labels)
        summed[tuple(found.get(name, "") for name in names)] += round(value)
    return +summed  # without the zeros


@dataclass(frozen=True, slots=True)
class _Day:
    """What a report says: the counters' increase over its period, the gauges now."""

    alerts: Counter[tuple[str, ...]]
    """Per rule and severity."""
    held: Counter[tuple[str, ...]]
    """Per rule."""
    dropped: Counter[tuple[str, ...]]
    """Per destination, severity and reason."""
    dead_letters: Counter[tuple[str, ...]]
    """Per destination."""
    following: Counter[tuple[str, ...]]
    """Per kind (file, journal), now."""
    waiting: Counter[tuple[str, ...]]
    """Per destination, now."""

    @classmethod
    def of(cls, reading: Reading, baseline: Reading) -> _Day:
        def grown(name: str) -> dict[Labels, float]:
            return _increase(reading.get(name, {}), baseline.get(name, {}))

        return cls(
            alerts=_by(grown(ALERTS), "rule", "severity"),
            held=_by(grown(HELD), "rule"),
            dropped=_by(grown(DROPPED), "destination", "severity", "reason"),
            dead_letters=_by(grown(DEAD_LETTERS), "destination"),
            following=_by(reading.get(FOLLOWING, {}), "kind"),
            waiting=_by(reading.get(WAITING, {}), "destination"),
        )


# ── the text ────────────────────────────────────────────────────────────────


def _title(host: str, day: _Day) -> str:
    following = ", ".join(_count(n, kind) for (kind,), n in sorted(day.following.items()))
    watching = f"still watching {following}" if following else "watching nothing"
    figures = f"{watching}; {day.waiting.total():,} waiting"
    title = f"tailhook on {host}: {figures}"
    # a host name as long as DNS allows would push the figures out: the host is in the embed's field too
    return title if len(neutralise(title)) <= LIMITS.title else f"tailhook: {figures}"


def _period(since: float, now: float, *, start: bool) -> str:
    if not start and abs(now - since - DAY_S) <= _ON_TIME_S:
        return "In the last 24 hours"
    return f"Since {'the start' if start else 'the last report'} {_when(since, now)}"


def _when(moment: float, now: float) -> str:
    """*moment* as seen from *now*, in local time: ``at 14:32``, ``yesterday at 14:32``, ``on 2025-03-28 at 14:32``."""
    then, today = datetime.fromtimestamp(moment), datetime.fromtimestamp(now).date()
    clock = then.strftime("%H:%M")
    if then.date() == today:
        return f"at {clock}"
    if then.date() == today - timedelta(days=1):
        return f"yesterday at {clock}"
    return f"on {then.date().isoformat()} at {clock}"


def _description(period: str, day: _Day) -> str:
    """The report's text, within Discord's description limit once neutralised: fewer rules listed
    (down to none) until it fits."""
    shown = TOP_RULES
    while True:
        text = "\n".join([f"{period}:", *_alerts(day, shown), *_storms(day), *_losses(day), *_waiting(day)])
        if len(neutralise(text)) <= LIMITS.description or shown == 0:
            return text  # at 0 still too long (names at Discord's limits): the sink cuts the end
        shown -= 1


def _alerts(day: _Day, shown: int) -> list[str]:
    """How many alerts of each severity, then per rule, most first: *shown* rules, and the rest summed up."""
    if not day.alerts:
        return ["A quiet day: no alerts."]
    per_rule: dict[str, Counter[str]] = {}
    per_severity: Counter[str] = Counter()
    for (rule, severity), n in day.alerts.items():
        per_rule.setdefault(rule, Counter())[severity] += n
        per_severity[severity] += n
    top, others, more = _ranked({rule: counts.total() for rule, counts in per_rule.items()}, shown)
    lines = [f"{_count(per_severity.total(), 'alert')}: {_severities(per_severity)}"]
    lines.extend(f"• {rule}: {_severities(per_rule[rule])}" for rule, _ in top)
    if others:
        lines.append(f"• and {_count(others, 'more rule')}: {_count(more, 'alert')}")
    return lines


def _storms(day: _Day) -> list[str]:
    if not day.held:
        return []
    top, others, more = _ranked({rule: n for (rule,), n in day.held.items()}, TOP_STORMS)
    lines = ["Largest storms (events held back):", *(f"• {rule}: {n:,}" for rule, n in top)]
    if others:
        lines.append(f"• and {_count(others, 'more rule')}: {_count(more, 'event')}")
    return lines


def _losses(day: _Day) -> list[str]:
    """Notifications dropped, per destination and why, and dead letters: each only when there are any."""
    lines = []
    if day.dropped:
        per: dict[tuple[str, str], Counter[str]] = {}
        for (destination, severity, reason), n in day.dropped.items():
            per.setdefault((destination, reason), Counter())[severity] += n
        top, others, more = _ranked({key: counts.total() for key, counts in per.items()}, TOP_DESTINATIONS)
        lines.append("Dropped:")
        for (destination, reason), n in top:
            cause = _DROP_CAUSES.get(reason, f"({reason})")
            lines.append(f"• {n:,} for {destination} {cause}: {_severities(per[destination, reason])}")
        if others:
            lines.append(f"• and {more:,} more for {_count(others, 'other destination')}")
    if day.dead_letters:
        lines.append(f"Dead letters: {_per_destination(day.dead_letters)}")
    return lines


def _waiting(day: _Day) -> list[str]:
    return [f"Waiting now: {_per_destination(day.waiting)}"] if day.waiting else []


def _per_destination(counts: Counter[tuple[str, ...]]) -> str:
    """``3 for ops, 1 for audit``: most first, ``TOP_DESTINATIONS`` of them and the rest summed up."""
    top, others, more = _ranked({destination: n for (destination,), n in counts.items()}, TOP_DESTINATIONS)
    parts = [f"{n:,} for {destination}" for destination, n in top]
    if others:
        parts.append(f"{more:,} for {_count(others, 'other destination')}")
    return ", ".join(parts)


K = TypeVar("K")


def _ranked(totals: Mapping[K, int], cap: int) -> tuple[list[tuple[K, int]], int, int]:
    """The *cap* largest of *totals*, most first (ties by name); then how many others there are and
    what they add up to."""
    ranked = sorted(totals.items(), key=lambda item: (-item[1], str(item[0])))
    rest = ranked[cap:]
    return ranked[:cap], len(rest), sum(n for _, n in rest)


def _severities(counts: Counter[str]) -> str:
    """``2 critical, 5 error``: most severe first; a label that is no severity last."""
    return ", ".join(f"{n:,} {label}" for label, n in sorted(counts.items(), key=lambda item: _rank(item[0])))


def _rank(label: str) -> tuple[int, str]:
    try:
        return -Severity.parse(label), label
    except ValueError:
        return 0, label


def _count(n: int, thing: str) -> str:
    return f"{n:,} {thing}{'' if n == 1 else 's'}"

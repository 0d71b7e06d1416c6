"""The daily report: the day's figures from the daemon's metrics, its text within Discord's limits,
and its schedule in local time across clock changes, on a fake clock."""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime

import pytest
from prometheus_client import CollectorRegistry, Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from tailhook.config import ReportConfig
from tailhook.events import Delivery, Kind, Severity
from tailhook.report import RECHECK_S, RULE, DailyReport, next_report
from tailhook.sinks.discord_payload import LIMITS, TRUNCATION_MARKER, embed_for, embed_size
from tailhook.spool import Spool, SpoolFull
from tests.conftest import FakeClock

BERLIN = "CET-1CEST,M3.5.0,M10.5.0/3"
"""Europe/Berlin's rules as a POSIX TZ string: summer time from the last Sunday of March, 02:00 → 03:00,
to the last Sunday of October, 03:00 → 02:00. Needs no zoneinfo files."""
NINE = 9 * 60


@pytest.fixture(autouse=True)
def berlin_time() -> Iterator[None]:
    """The host's local time is Berlin's for these tests, whatever the machine's is."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = BERLIN
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def local(text: str) -> float:
    """Seconds since the epoch of a local date-time such as ``2025-03-10 14:32``."""
    return datetime.fromisoformat(text).timestamp()


def shown(moment: float) -> str:
    return datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M")


# ── small components that report metrics as the daemon's will ──────────────


class Pipeline:
    """Alerts stored per rule and severity, and events storm control held per rule."""

    def __init__(self) -> None:
        self.alerts: Counter[tuple[str, str]] = Counter()
        self.held: Counter[str] = Counter()

    def collect(self) -> Iterator[Metric]:
        alerts = CounterMetricFamily("tailhook_alerts", "Alerts stored.", labels=["rule", "severity"])
        for (rule, severity), n in self.alerts.items():
            alerts.add_metric([rule, severity], n)
        held = CounterMetricFamily("tailhook_storm_held_total", "Events held.", labels=["rule"])
        for rule, n in self.held.items():
            held.add_metric([rule], n)
        yield from (alerts, held)


class Spooled:
    """Notifications dropped, dead letters, and what waits now, per destination."""

    def __init__(self) -> None:
        self.dropped: Counter[tuple[str, str, str]] = Counter()
        self.dead: Counter[str] = Counter()
        self.pending: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        labels = ["destination", "severity", "reason"]
        dropped = CounterMetricFamily("tailhook_spool_dropped", "Dropped.", labels=labels)
        for key, n in self.dropped.items():
            dropped.add_metric(list(key), n)
        dead = CounterMetricFamily("tailhook_dead_letters", "Dead letters.", labels=["destination"])
        for destination, n in self.dead.items():
            dead.add_metric([destination], n)
        pending = GaugeMetricFamily("tailhook_spool_pending", "Waiting.", labels=["destination"])
        for destination, n in self.pending.items():
            pending.add_metric([destination], n)
        yield from (dropped, dead, pending)


class Sources:
    def __init__(self, files: int = 0, journals: int = 0) -> None:
        self.following = {"file": files, "journal": journals}

    def collect(self) -> Iterator[Metric]:
        following = GaugeMetricFamily("tailhook_following", "Followed now.", labels=["kind"])
        for kind, n in self.following.items():
            following.add_metric([kind], n)
        yield following


class Daemon:
    """The components in a registry, the report, and the deliveries it committed with their times."""

    def __init__(self, clock: FakeClock, *, at: int = NINE, host: str = "web-1", **following: int) -> None:
        self.pipeline, self.spool, self.sources = Pipeline(), Spooled(), Sources(**following)
        self.registry = CollectorRegistry()
        for component in (self.pipeline, self.spool, self.sources):
            self.registry.register(component)
        self.clock = clock
        self.committed: list[tuple[float, Delivery]] = []
        self.failures: list[Exception] = []
        """Raised by the next commits, one each."""
        self.report = DailyReport(
            ReportConfig("ops", at), host=host, collect=self.collect, commit=self.commit, clock=clock, sleep=clock.sleep
        )
        self.registry.register(self.report)

    async def collect(self) -> list[Metric]:
        return list(self.registry.collect())

    async def commit(self, deliveries: Sequence[Delivery]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.committed.extend((self.clock(), delivery) for delivery in deliveries)

    def texts(self) -> list[str]:
        return [delivery.notification.description for _, delivery in self.committed]


class Enough(Exception):
    """Stops ``run()``: the test has seen what it waited for."""


def stop_after(daemon: Daemon, reports: int) -> None:
    """The fake clock's sleep ends the run once *reports* were made (stored or not)."""
    sleep = daemon.clock.sleep

    async def sleep_or_stop(seconds: float) -> None:
        if daemon.report.reports_total + daemon.report.failures_total >= reports:
            raise Enough
        await sleep(seconds)

    daemon.report.sleep = sleep_or_stop


# ── the text ────────────────────────────────────────────────────────────────


async def test_a_report_counts_what_the_day_held_not_the_totals() -> None:
    clock = FakeClock(local("2025-03-10 14:32"))
    daemon = Daemon(clock, files=12, journals=1)
    daemon.pipeline.alerts.update({("ssh", "warning"): 40, ("disk-full", "critical"): 1})
    daemon.pipeline.held["ssh"] = 500
    daemon.spool.dead["ops"] = 2
    clock.advance(3600)
    assert await daemon.report.report_now()

    clock.advance(24 * 3600)
    daemon.pipeline.alerts.update({("ssh", "warning"): 30, ("disk-full", "critical"): 2, ("disk-full", "error"): 5})
    daemon.pipeline.held.update({"ssh": 1204, "nginx-5xx": 310})
    daemon.spool.dropped.update({("ops", "info", "full"): 2, ("ops", "warning", "full"): 1})
    daemon.spool.dead["ops"] += 1
    assert await daemon.report.report_now()

    first, second = daemon.texts()
    assert first.splitlines()[:2] == ["Since the start at 14:32:", "41 alerts: 1 critical, 40 warning"]
    assert second == (
        "In the last 24 hours:\n"
        "37 alerts: 2 critical, 5 error, 30 warning\n"
        "• ssh: 30 warning\n"
        "• disk-full: 2 critical, 5 error\n"
        "Largest storms (events held back):\n"
        "• ssh: 1,204\n"
        "• nginx-5xx: 310\n"
        "Dropped:\n"
        "• 3 for ops while the spool was full: 1 warning, 2 info\n"
        "Dead letters: 1 for ops"
    )
    _, delivery = daemon.committed[1]
    n = delivery.notification
    assert (delivery.destination, n.kind, n.severity, n.rule, n.key) == (
        "ops",
        Kind.ALERT,
        Severity.INFO,
        RULE,
        "daily-report",
    )
    assert (n.title, n.host, n.time) == (
        "tailhook on web-1: still watching 12 files, 1 journal; 0 waiting",
        "web-1",
        clock(),
    )


async def test_a_quiet_day_and_missing_families_count_as_zero() -> None:
    clock = FakeClock(local("2025-03-10 14:32"))
    daemon = Daemon(clock)
    daemon.registry.unregister(daemon.spool)  # no drops, dead letters or waiting reported at all
    daemon.pipeline.alerts[("ssh", "warning")] = 7
    assert await daemon.report.report_now()
    clock.advance(24 * 3600)
    assert await daemon.report.report_now()  # nothing new: the 7 were yesterday's

    assert daemon.texts()[1] == "In the last 24 hours:\nA quiet day: no alerts."
    assert daemon.committed[1][1].notification.title == "tailhook on web-1: watching nothing; 0 waiting"


async def test_the_title_says_what_is_followed_and_waits_now() -> None:
    clock = FakeClock(local("2025-03-10 14:32"))
    daemon = Daemon(clock, files=1, journals=2)
    daemon.spool.pending.update({"ops": 2, "audit": 1, "idle": 0})
    assert await daemon.report.report_now()
    (_, delivery), *_ = daemon.committed
    assert delivery.notification.title == "tailhook on web-1: still watching 1 file, 2 journals; 3 waiting"
    assert daemon.texts()[0].splitlines()[-1] == "Waiting now: 2 for ops, 1 for audit"


async def test_a_counter_that_was_reset_counts_from_zero() -> None:
    clock = FakeClock(local("2025-03-10 14:32"))
    daemon = Daemon(clock)
    daemon.pipeline.alerts[("ssh", "warning")] = 50
    assert await daemon.report.report_now()
    daemon.pipeline.alerts[("ssh", "warning")] = 4  # its component was made anew
    clock.advance(24 * 3600)
    assert await daemon.report.report_now()
    assert daemon.texts()[1].splitlines()[1] == "4 alerts: 4 warning"


async def test_the_busiest_rules_first_and_the_rest_summed_up() -> None:
    clock = FakeClock(local("2025-03-10 14:32"))
    daemon = Daemon(clock)
    for i in range(1, 21):  # rule-01 had 1 alert … rule-20 had 20
        daemon.pipeline.alerts[(f"rule-{i:02}", "error")] = i
    for i in range(1, 8):
        daemon.pipeline.held[f"storm-{i}"] = 100 * i
    assert await daemon.report.report_now()

    lines = daemon.texts()[0].splitlines()
    assert lines[1] == "210 alerts: 210 error"
    assert lines[2:4] == ["• rule-20: 20 error", "• rule-19: 19 error"]
    assert lines[16:18] == ["• rule-06: 6 error", "• and 5 more rules: 15 alerts"]  # 1 + 2 + 3 + 4 + 5
    storms = lines[lines.index("Largest storms (events held back):") + 1 :]
    assert storms == [*(f"• storm-{i}: {100 * i}" for i in range(7, 2, -1)), "• and 2 more rules: 300 events"]


async def test_with_many_long_rule_names_the_report_fits_a_discord_embed_uncut() -> None:
    clock = FakeClock(local("2025-03-10 14:32"))
    daemon = Daemon(clock, files=3)
    name = "a_" * 31 + "r"  # 63 characters, each "_" escaped for Discord's Markdown
    for i in range(400):
        daemon.pipeline.alerts[(f"{name}{i}", "warning")] = 1000 + i
        daemon.pipeline.alerts[(f"{name}{i}", "critical")] = 1
        daemon.pipeline.held[f"{name}{i}"] = i
    for i in range(40):
        daemon.spool.dropped[(f"{name}{i}", "info", "full")] = i + 1
        daemon.spool.dead[f"{name}{i}"] = i + 1
        daemon.spool.pending[f"{name}{i}"] = i + 1
    assert await daemon.report.report_now()

    notification = daemon.committed[0][1].notification
    embed = embed_for(notification)
    description = str(embed["description"])
    assert len(description) <= LIMITS.description and embed_size(embed) <= LIMITS.total
    assert TRUNCATION_MARKER not in description  # fitted by listing fewer rules, not cut off
    assert f"• {name}399: 1 critical, 1,399 warning".replace("_", "\\_") in description
    assert "more rules: " in description and description.endswith("for 35 other destinations")


async def test_a_report_is_stored_in_the_spool_like_an_alert(spool: Spool) -> None:
    daemon = Daemon(FakeClock(local("2025-03-10 14:32")), files=1)
    daemon.report.commit = spool.commit
    assert await daemon.report.report_now()
    (stored,) = await spool.next("ops")
    assert stored.delivery.notification.title == "tailhook on web-1: still watching 1 file; 0 waiting"


# ── when ────────────────────────────────────────────────────────────────────


async def test_the_first_report_waits_for_at_then_one_every_day() -> None:
    clock = FakeClock(local("2025-03-10 14:32"))
    daemon = Daemon(clock)
    stop_after(daemon, 3)
    with pytest.raises(Enough):
        await daemon.report.run()
    assert [shown(moment) for moment, _ in daemon.committed] == [
        "2025-03-11 09:00",
        "2025-03-12 09:00",
        "2025-03-13 09:00",
    ]
    assert [moment for moment, _ in daemon.committed] == [local("2025-03-11 09:00") + 24 * 3600 * i for i in range(3)]
    assert max(clock.slept) == RECHECK_S  # never one long sleep: a clock that jumps is seen
    assert daemon.texts()[0].startswith("Since the start yesterday at 14:32:\n")
    assert daemon.texts()[1].startswith("In the last 24 hours:\n")


@pytest.mark.parametrize(
    ("start", "reports", "hours"),
    [  # the clocks go forward on 2025-03-30 and back on 2025-10-26: days of 23 and 25 hours
        ("2025-03-29 12:00", ["2025-03-30 09:00", "2025-03-31 09:00"], [20, 24]),
        ("2025-10-24 12:00", ["2025-10-25 09:00", "2025-10-26 09:00", "2025-10-27 09:00"], [21, 25, 24]),
    ],
)
async def test_reports_keep_to_local_time_across_clock_changes(
    start: str, reports: list[str], hours: list[int]
) -> None:
    clock = FakeClock(local(start))
    daemon = Daemon(clock)
    stop_after(daemon, len(reports))
    with pytest.raises(Enough):
        await daemon.report.run()
    moments = [local(start), *(moment for moment, _ in daemon.committed)]
    assert [shown(moment) for moment in moments[1:]] == reports
    assert [round((b - a) / 3600, 3) for a, b in itertools.pairwise(moments)] == hours
    if len(reports) == 3:  # the 25-hour day was not 24 hours
        assert daemon.texts()[1].startswith("Since the last report yesterday at 09:00:\n")
        assert daemon.texts()[2].startswith("In the last 24 hours:\n")


def test_a_time_the_clock_skips_is_taken_an_hour_later_and_a_repeated_one_once() -> None:
    half_past_two = 2 * 60 + 30
    assert shown(next_report(local("2025-03-30 01:00"), half_past_two)) == "2025-03-30 03:30"
    first = next_report(local("2025-10-26 01:00"), half_past_two)
    assert shown(first) == "2025-10-26 02:30" and shown(next_report(first, half_past_two)) == "2025-10-27 02:30"


async def test_a_reload_that_moves_at_applies_to_the_report_being_waited_for() -> None:
    clock = FakeClock(local("2025-03-10 08:00"))
    daemon = Daemon(clock)
    stop_after(daemon, 1)
    sleep = daemon.report.sleep

    async def reload_then_sleep(seconds: float) -> None:
        daemon.report.config = ReportConfig("audit", 8 * 60 + 30)
        await sleep(seconds)

    daemon.report.sleep = reload_then_sleep
    with pytest.raises(Enough):
        await daemon.report.run()
    ((moment, delivery),) = daemon.committed
    assert (shown(moment), delivery.destination) == ("2025-03-10 08:30", "audit")


@pytest.mark.parametrize("failure", [SpoolFull("disk full"), sqlite3.OperationalError("disk I/O error")])
async def test_a_report_not_stored_keeps_the_baseline_and_the_next_day_goes_on(
    failure: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(local("2025-03-10 14:32"))
    daemon = Daemon(clock)
    daemon.pipeline.alerts[("ssh", "warning")] = 3  # before the first report, which fails
    daemon.failures.append(failure)
    original = daemon.collect

    async def collect_and_count() -> list[Metric]:  # three more each day
        daemon.pipeline.alerts[("ssh", "warning")] += 3
        return await original()

    daemon.report.daemon_metrics = collect_and_count
    stop_after(daemon, 2)
    with caplog.at_level(logging.WARNING, logger="tailhook.report"), pytest.raises(Enough):
        await daemon.report.run()

    ((moment, _),) = daemon.committed
    assert shown(moment) == "2025-03-12 09:00"
    assert daemon.texts()[0].splitlines()[:2] == ["Since the start on 2025-03-10 at 14:32:", "9 alerts: 9 warning"]
    assert "daily report: not stored" in caplog.text and type(failure).__name__ in caplog.text
    assert daemon.registry.get_sample_value("tailhook_reports_total") == 1
    assert daemon.registry.get_sample_value("tailhook_report_failures_total") == 1

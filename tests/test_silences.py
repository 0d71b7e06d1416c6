"""Silences on a fake clock: what they hold, when, and the one note each occurrence ends with.

The restart and CLI tests go through a real spool file: what an occurrence held is stored with the
commit, and its note is stored in the commit that forgets it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tailhook.config import ScheduleConfig, SilenceConfig
from tailhook.events import AUDIT_COLOUR, Delivery, Kind, Notification, Severity, Style
from tailhook.silence_admin import add, expire
from tailhook.silences import Silence, Silences, format_span
from tailhook.sinks.console import format_notification
from tailhook.sinks.discord_payload import embed_for
from tailhook.spool import Spool
from tailhook.spool_admin import connect
from tests.conftest import FakeClock

pytestmark = pytest.mark.timeout(30)

HOUR = 3600.0
BERLIN = ZoneInfo("Europe/Berlin")


def alert(
    rule: str = "ssh",
    severity: Severity = Severity.WARNING,
    *,
    source: str = "auth",
    host: str = "web-1",
    kind: Kind = Kind.ALERT,
    count: int = 1,
) -> Notification:
    return Notification(
        kind=kind, rule=rule, severity=severity, key="k", title=f"{rule} alert", description="", line="a line",
        source=source, host=host, time=0.0, count=count,
    )  # fmt: skip


def fixed(name: str, starts: float, ends: float, **matchers: object) -> SilenceConfig:
    return SilenceConfig(name=name, file="tailhook.yaml", line=1, starts=starts, ends=ends, **matchers)  # type: ignore[arg-type]


def weekly(
    name: str, days: set[int], starts: str, ends: str, timezone: str | None, **matchers: object
) -> SilenceConfig:
    def minutes(text: str) -> int:
        hours, mins = text.split(":")
        return int(hours) * 60 + int(mins)

    schedule = ScheduleConfig(frozenset(days), minutes(starts), minutes(ends), timezone)
    return SilenceConfig(name=name, file="tailhook.yaml", line=1, schedule=schedule, **matchers)  # type: ignore[arg-type]


def at(text: str, zone: ZoneInfo = BERLIN) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


# ── matching ─────────────────────────────────────────────────────────────────


def test_a_silence_holds_what_it_names_and_nothing_else(clock: FakeClock) -> None:
    silences = Silences(
        [fixed("deploy", 0, 10 * HOUR, rules=frozenset({"ssh", "sudo"}), hosts=frozenset({"web-1"}))],
        host="web-1",
        clock=clock,
    )
    assert silences.holds(alert("ssh"))
    assert silences.holds(alert("sudo", Severity.ERROR))
    assert not silences.holds(alert("oom"))
    assert not silences.holds(alert("ssh", host="web-2"))

    by_source = Silences([fixed("s", 0, HOUR, sources=frozenset({"nginx"}))], host="h", clock=clock)
    assert by_source.holds(alert(source="nginx")) and not by_source.holds(alert(source="auth"))
    by_severity = Silences([fixed("s", 0, HOUR, severities=frozenset({Severity.INFO}))], host="h", clock=clock)
    assert by_severity.holds(alert(severity=Severity.INFO)) and not by_severity.holds(alert(severity=Severity.ERROR))


def test_critical_passes_unless_the_silence_names_critical(clock: FakeClock) -> None:
    everything = Silences([fixed("all", 0, HOUR)], host="h", clock=clock)
    assert everything.holds(alert(severity=Severity.ERROR))
    assert not everything.holds(alert(severity=Severity.CRITICAL))

    named = Silences(
        [fixed("all", 0, HOUR, severities=frozenset({Severity.CRITICAL, Severity.ERROR}))], host="h", clock=clock
    )
    assert named.holds(alert(severity=Severity.CRITICAL))
    assert named.holds(alert(severity=Severity.ERROR))
    assert not named.holds(alert(severity=Severity.WARNING))


def test_a_note_is_never_held_and_a_recovery_is_held_uncounted(clock: FakeClock) -> None:
    silences = Silences([fixed("all", 0, 2000)], host="h", clock=clock)
    assert not silences.holds(replace(alert(), kind=Kind.NOTE, rule=""))
    assert silences.holds(alert(kind=Kind.RECOVERY))
    assert silences.held() == {}
    assert silences.holds(alert(kind=Kind.DIGEST, count=40))  # a digest counts what it stands for
    assert silences.held() == {"config:all": 40}


# ── fixed times ──────────────────────────────────────────────────────────────


def test_a_fixed_silence_holds_from_its_start_to_its_end_then_sends_one_note(clock: FakeClock) -> None:
    start = clock.now + 60
    silences = Silences(
        [fixed("deploy", start, start + 2 * HOUR, reason="deploy")], host="web-1", clock=clock
    )  # fmt: skip
    assert not silences.holds(alert())
    assert silences.next_deadline() is None

    clock.now = start
    for _ in range(30):
        assert silences.holds(alert("ssh"))
    for _ in range(7):
        assert silences.holds(alert("nginx-5xx", Severity.ERROR))
    assert silences.next_deadline() == start + 2 * HOUR
    clock.now = start + 2 * HOUR - 1
    assert silences.due() == []

    clock.now = start + 2 * HOUR
    assert not silences.holds(alert())  # the end is not in the silence
    (note,) = silences.due()
    assert note.kind is Kind.NOTE and note.severity is Severity.INFO and note.rule == ""
    assert note.key == "config:deploy" and note.host == "web-1" and note.count == 37
    assert note.time == start + 2 * HOUR
    assert note.title == "37 alerts held during 'deploy', 2 h"
    assert note.description == (
        "by rule: ssh 30, nginx-5xx 7\nsilence config:deploy, from 1970-01-01 00:17:40Z to 1970-01-01 02:17:40Z"
    )
    assert silences.due(float("inf")) == []  # one note, once
    assert silences.next_deadline() is None


def test_a_silence_that_held_nothing_ends_without_a_note(clock: FakeClock) -> None:
    silences = Silences([fixed("quiet", 0, 2000, rules=frozenset({"ssh"}))], host="h", clock=clock)
    assert not silences.holds(alert("oom"))
    clock.now = 3000
    assert silences.due() == []
    assert silences.changes() == []


def test_a_note_names_the_silence_without_a_reason_and_sums_the_rules_past_ten(clock: FakeClock) -> None:
    silences = Silences([fixed("nightly", 0, 1090)], host="h", clock=clock)
    for i in range(12):
        for _ in range(12 - i):
            silences.holds(alert(f"r{i:02d}"))
    (note,) = silences.due(1090)
    assert note.title == "78 alerts held during 'nightly', 18 min"
    assert note.description.startswith(
        "by rule: r00 12, r01 11, r02 10, r03 9, r04 8, r05 7, r06 6, r07 5, r08 4, r09 3, and 2 more rules 3\n"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (45, "45 s"), (600, "10 min"), (7200, "2 h"), (5400, "1 h 30 min"), (3 * 86400 + 4 * 3600, "3 d 4 h")],
)
def test_spans(seconds: float, text: str) -> None:
    assert format_span(seconds) == text


# ── weekly schedules ─────────────────────────────────────────────────────────


def test_a_weekly_window_crossing_midnight_in_its_time_zone(clock: FakeClock) -> None:
    """Fridays 22:00-06:00 in Berlin (summer: UTC+2): on Friday night until Saturday morning, not on Saturday."""
    silences = Silences(
        [weekly("backup", {4}, "22:00", "06:00", "Europe/Berlin", reason="nightly backup")], host="h", clock=clock
    )
    clock.now = at("2025-06-06T21:59:59")  # a Friday
    assert not silences.holds(alert())
    clock.now = at("2025-06-06T22:00:00")
    assert silences.holds(alert())
    clock.now = at("2025-06-07T05:59:59")  # Saturday morning, the same occurrence
    assert silences.holds(alert())
    assert silences.next_deadline() == at("2025-06-07T06:00:00")
    clock.now = at("2025-06-07T06:00:00")
    assert not silences.holds(alert())
    (note,) = silences.due()
    assert note.title == "2 alerts held during 'nightly backup', 8 h"
    assert "from 2025-06-06 20:00:00Z to 2025-06-07 04:00:00Z" in note.description

    clock.now = at("2025-06-07T23:00:00")  # Saturday night: not a listed day
    assert not silences.holds(alert())
    clock.now = at("2025-06-13T23:30:00")  # the next Friday: a new occurrence, its own note
    assert silences.holds(alert())
    clock.now = at("2025-06-14T06:00:00")
    (note,) = silences.due()
    assert note.title == "1 alert held during 'nightly backup', 8 h"


def test_the_time_zone_decides_when_a_schedule_is_on(clock: FakeClock) -> None:
    in_utc = Silences([weekly("w", {0, 1, 2, 3, 4, 5, 6}, "09:00", "10:00", "UTC")], host="h", clock=clock)
    in_berlin = Silences([weekly("w", {0, 1, 2, 3, 4, 5, 6}, "09:00", "10:00", "Europe/Berlin")], host="h", clock=clock)
    clock.now = at("2025-01-15T09:30:00", ZoneInfo("UTC"))  # winter: Berlin is UTC+1, so 10:30 there
    assert in_utc.holds(alert()) and not in_berlin.holds(alert())
    clock.now = at("2025-01-15T08:30:00", ZoneInfo("UTC"))
    assert in_berlin.holds(alert()) and not in_utc.holds(alert())


def test_a_schedule_across_the_change_to_summer_time_lasts_what_the_clock_on_the_wall_says(clock: FakeClock) -> None:
    """Sunday 30 March 2025, 01:00-04:00 in Berlin is two hours long: 02:00 became 03:00."""
    silences = Silences([weekly("dst", {6}, "01:00", "04:00", "Europe/Berlin")], host="h", clock=clock)
    clock.now = at("2025-03-30T01:30:00")
    assert silences.holds(alert())
    (note,) = silences.due(at("2025-03-30T04:00:00"))
    assert note.title == "1 alert held during 'dst', 2 h"


# ── changes while running ────────────────────────────────────────────────────


def test_a_config_silence_removed_by_a_reload_ends_then_with_its_note(clock: FakeClock) -> None:
    silences = Silences([fixed("deploy", 0, 10 * HOUR, reason="deploy")], host="h", clock=clock)
    assert silences.holds(alert())
    clock.advance(600)
    silences.replace_configured([])
    assert not silences.holds(alert())
    (note,) = silences.due()
    assert note.title == "1 alert held during 'deploy', 27 min"  # from 0 to 1600 s


def test_a_silence_extended_by_a_reload_goes_on_counting(clock: FakeClock) -> None:
    silences = Silences([fixed("deploy", 0, 2000)], host="h", clock=clock)
    assert silences.holds(alert())
    silences.replace_configured([fixed("deploy", 0, 5000)])
    clock.now = 3000
    assert silences.holds(alert())
    assert silences.due() == []
    (note,) = silences.due(5000)
    assert note.count == 2


# ── the spool: restarts, and silences from the command line ──────────────────


async def test_a_restart_neither_loses_the_held_count_nor_sends_the_note_twice(
    tmp_path: Path, clock: FakeClock
) -> None:
    config = [fixed("deploy", 0, 2 * HOUR, reason="deploy")]
    spool = await Spool.open(tmp_path, clock=clock)
    silences = Silences(config, host="h", clock=clock)
    for _ in range(3):
        assert silences.holds(alert())
    await spool.commit([], silences=silences.changes())
    await spool.close()

    # after a restart: the three are still counted; two more join them
    spool = await Spool.open(tmp_path, clock=clock)
    silences = Silences(config, host="h", clock=clock)
    silences.restore(await spool.silence_held())
    silences.replace_stored(await spool.silences())
    assert silences.held() == {"config:deploy": 3}
    assert silences.holds(alert("sudo")) and silences.holds(alert("sudo"))
    await spool.commit([], silences=silences.changes())
    clock.now = 2 * HOUR
    (note,) = silences.due()
    assert note.title == "5 alerts held during 'deploy', 2 h"
    assert note.description.startswith("by rule: ssh 3, sudo 2\n")
    # a crash before the note is stored: it is made again after the restart
    await spool.close()
    spool = await Spool.open(tmp_path, clock=clock)
    silences = Silences(config, host="h", clock=clock)
    silences.restore(await spool.silence_held())
    (again,) = silences.due()
    assert again == note
    await spool.commit([Delivery("alerts", again)], silences=silences.changes())
    await spool.close()

    # the note and the forgetting were one commit: after another restart, nothing is due
    spool = await Spool.open(tmp_path, clock=clock)
    try:
        assert await spool.silence_held() == []
        silences = Silences(config, host="h", clock=clock)
        silences.restore(await spool.silence_held())
        assert silences.due(float("inf")) == []
        assert [s.delivery.notification.title for s in await spool.next("alerts")] == [note.title]
    finally:
        await spool.close()


async def test_a_silence_from_the_command_line_is_picked_up_live_and_expired_early(tmp_path: Path) -> None:
    clock = FakeClock(start=time.time())
    spool = await Spool.open(tmp_path, clock=clock)
    try:
        silences = Silences(host="web-1", clock=clock)
        silences.replace_stored(await spool.silences())
        assert await spool.silences_changed() == []  # the first call answers
        assert await spool.silences_changed() is None  # nothing changed since
        assert not silences.holds(alert())

        with connect(tmp_path) as db:  # as `tailhook silence add --rule ssh --for 2h --reason deploy` does
            added = add(
                db,
                Silence(
                    id="cli:new", reason="deploy", rules=frozenset({"ssh"}), starts=clock.now, ends=clock.now + 2 * HOUR
                ),
                now=clock.now,
            )
        assert added.id == "cli:1"
        stored = await spool.silences_changed()
        assert stored == [added]
        silences.replace_stored(stored)
        assert silences.holds(alert("ssh")) and not silences.holds(alert("oom"))
        assert silences.next_deadline() == clock.now + 2 * HOUR
        await spool.commit([], silences=silences.changes())

        clock.advance(1800)
        with connect(tmp_path) as db:  # `tailhook silence expire cli:1`, half an hour in
            expired = expire(db, "cli:1", now=clock.now)
        assert expired.expired == clock.now
        stored = await spool.silences_changed()
        assert stored == [expired]
        silences.replace_stored(stored)
        assert not silences.holds(alert("ssh"))
        (note,) = silences.due()
        assert note.title == "1 alert held during 'deploy', 30 min" and note.key == "cli:1"
        await spool.commit([Delivery("alerts", note)], silences=silences.changes())
        assert await spool.silence_held() == []
        assert await spool.silences() == [expired]  # kept a day after it is over, then no longer read
        clock.advance(2 * 86400)
        assert await spool.silences() == []
    finally:
        await spool.close()


def test_the_active_silences_are_worked_out_again_only_at_a_start_or_an_end(clock: FakeClock) -> None:
    silences = Silences(
        [fixed(f"s{i}", 1000 + i * 100, 5000, rules=frozenset({f"r{i}"})) for i in range(5)], host="h", clock=clock
    )
    assert silences.holds(alert("r0"))
    assert silences._active_until == 1100  # the next start
    clock.now = 1150
    assert silences.holds(alert("r1")) and not silences.holds(alert("r2"))
    clock.now = 5000
    assert not silences.holds(alert("r0"))
    assert silences._active_until == float("inf")


def test_the_sinks_show_a_note_as_tailhooks_own(clock: FakeClock) -> None:
    silences = Silences([fixed("deploy", 0, 2000, reason="deploy")], host="web-1", clock=clock)
    silences.holds(alert())
    (note,) = silences.due(2000)

    text = format_notification(note, destination="alerts")
    assert text.splitlines()[0].endswith(" INFO note [config:deploy] → alerts")
    assert text.splitlines()[1:] == [
        "   1 alert held during 'deploy', 33 min",
        "   by rule: ssh 1",
        "   silence config:deploy, from 1970-01-01 00:00:00Z to 1970-01-01 00:33:20Z",
    ]
    embed = embed_for(note)
    assert embed["color"] == AUDIT_COLOUR
    assert embed["title"] == "1 alert held during 'deploy', 33 min"
    assert str(embed["description"]).startswith("by rule: ssh 1\n")
    assert embed["fields"] == [{"name": "host", "value": "web-1", "inline": True}]
    assert embed["footer"] == {"text": "tailhook · note"}
    assert "**tailhook**" in str(embed_for(note, style=Style.COMPACT)["description"])

"""The spool on real SQLite files: round trips, order, atomic checkpoints, the size cap, damage."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from tailhook.absence import AbsenceState
from tailhook.events import AlertField, Delivery, Kind, Mentions, Notification, Severity, Style
from tailhook.fleet_storm import ShareState
from tailhook.silences import HeldState
from tailhook.spool import (
    _SCHEMA_V1,
    _SCHEMA_V2,
    _SCHEMA_V3,
    _SCHEMA_V4,
    _SCHEMA_V5,
    FILE_NAME,
    OLDEST_FIRST_AFTER_S,
    SCHEMA_VERSION,
    Checkpoint,
    Spool,
    decode_delivery,
    encode_delivery,
    encode_notification,
)
from tailhook.storm import KeyChange, KeyState
from tests.conftest import FakeClock
from tests.conftest import make_delivery as delivery

pytestmark = pytest.mark.timeout(30)


def test_the_codec_keeps_every_field() -> None:
    n = Notification(
        kind=Kind.DIGEST, rule="ssh", severity=Severity.WARNING, key="1.2.3.4", title="t ✓", description="d",
        line="l\n2", source="auth", host="web-1", time=1_790_000_000.25, path="/var/log/auth.log",
        captures={"ip": "1.2.3.4"}, count=7,
    )  # fmt: skip
    original = Delivery("audit", n, Style.COMPACT, Mentions(roles=("123456789012345678",), everyone=True))
    assert decode_delivery(encode_delivery(original)) == original


def reference_fields(n: Notification) -> dict[str, Any]:
    """A notification's members as tailhook always wrote them: one dict through ``json.dumps``."""
    data = {
        "kind": n.kind.value, "rule": n.rule, "severity": n.severity.label, "key": n.key, "title": n.title,
        "description": n.description, "line": n.line, "source": n.source, "host": n.host, "time": n.time,
        "path": n.path, "captures": dict(n.captures), "count": n.count,
    }  # fmt: skip
    if n.fields:
        data["fields"] = [{"name": f.name, "value": f.value, "inline": f.inline} for f in n.fields]
    return data


def dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


@pytest.mark.parametrize(
    "text", ["plain", 'quote " and \\ backslash', "new\nline\ttab\x00\x1f", "é ✓ 😀", "\u2028 \ud800 lone"]
)
@pytest.mark.parametrize("when", [1_790_000_000.25, 0.0, -0.0, 1e300, float("inf"), float("nan"), 5])
def test_the_codec_writes_the_same_text_as_json_dumps(text: str, when: float) -> None:
    n = Notification(
        kind=Kind.ALERT, rule=text, severity=Severity.ERROR, key=text, title=text, description=text, line=text,
        source=text, host=text, time=when, path=text, captures={text: text, "ip": "1.2.3.4"}, count=3,
    )  # fmt: skip
    for d in (
        Delivery(text, n, Style.COMPACT, Mentions(roles=(text,), users=("1",), everyone=True)),
        Delivery("audit", replace(n, fields=RUNBOOK, captures=MappingProxyType({"a": text}))),
        Delivery("audit", replace(n, captures={"n": None})),  # not what a rule makes: the general encoder
    ):
        m = d.mentions
        mentions = {"roles": list(m.roles), "users": list(m.users), "everyone": m.everyone}
        head = {"destination": d.destination, "style": d.style.value, "mentions": mentions}
        assert encode_delivery(d) == dumps(head | reference_fields(d.notification))
        assert encode_notification(d.notification) == dumps(reference_fields(d.notification))


RUNBOOK = (AlertField("runbook", "https://wiki.example.com/ssh ✓"), AlertField("team", "ops", inline=True))


def with_fields(title: str) -> Delivery:
    d = delivery(title)
    return Delivery(d.destination, replace(d.notification, fields=RUNBOOK))


def test_the_codec_keeps_a_rules_fields_and_writes_none_when_there_are_none() -> None:
    original = with_fields("t")
    assert decode_delivery(encode_delivery(original)) == original
    assert "fields" not in json.loads(encode_delivery(delivery("t")))  # bodies as before fields existed


def test_the_codec_keeps_a_digests_excerpt_and_writes_none_when_there_is_none() -> None:
    d = delivery("t")
    digest = Delivery(d.destination, replace(d.notification, kind=Kind.DIGEST, excerpt='line "1"\nline 2 ✓'))
    assert decode_delivery(encode_delivery(digest)) == digest
    assert json.loads(encode_delivery(digest))["excerpt"] == 'line "1"\nline 2 ✓'
    assert "excerpt" not in encode_delivery(d)  # bodies as before excerpts existed


async def test_fields_survive_a_restart_in_alerts_and_in_storm_windows(tmp_path: Path) -> None:
    held = with_fields("held").notification
    spool = await Spool.open(tmp_path)
    await spool.commit([with_fields("alert")], [], [(("r", "k"), KeyState("r", "k", 1.0, 1, 4, held))])
    await spool.close()

    spool = await Spool.open(tmp_path)
    try:
        (stored,) = await spool.next("alerts")
        assert stored.delivery == with_fields("alert")
        (window,) = await spool.storm_keys()
        assert window.last_held is not None and window.last_held.fields == RUNBOOK
    finally:
        await spool.close()


async def test_bodies_written_before_fields_existed_read_as_having_none(tmp_path: Path) -> None:
    """A spool of the current schema, written by a tailhook without ``fields``: bodies without the key."""
    old = delivery("old")
    body = json.loads(encode_delivery(old))
    last_held = json.loads(encode_notification(old.notification))
    assert "fields" not in body and "fields" not in last_held
    spool = await Spool.open(tmp_path)
    await spool.close()
    with sqlite3.connect(tmp_path / FILE_NAME, isolation_level=None) as db:
        text = json.dumps(body)
        db.execute(
            "INSERT INTO notifications (destination, severity, created, size, body) VALUES ('alerts', 40, 1.0, ?, ?)",
            (len(text.encode()), text),
        )
        db.execute(
            "INSERT INTO storm_keys (rule, key, opened, sent, held, last_held) VALUES ('r', 'k', 1.0, 1, 2, ?)",
            (json.dumps(last_held),),
        )

    spool = await Spool.open(tmp_path)
    try:
        (stored,) = await spool.next("alerts")
        assert stored.delivery == old and stored.delivery.notification.fields == ()
        (window,) = await spool.storm_keys()
        assert window.last_held == old.notification
    finally:
        await spool.close()


async def test_a_commit_that_fails_otherwise_than_on_a_full_disk_raises_and_stores_nothing(spool: Spool) -> None:
    broken: list[KeyChange] = [(("ssh", "1.2.3.4"), "not a window state")]  # type: ignore[list-item]
    with pytest.raises(AttributeError):
        await spool.commit([delivery("a")], [Checkpoint("auth", "/var/log/auth.log", {"offset": 1})], broken)
    assert await spool.pending() == 0
    assert await spool.checkpoints("auth") == {}
    await spool.commit([delivery("b")])  # and the next one goes through
    assert await spool.pending() == 1


async def test_round_trip_in_order_per_destination(spool: Spool) -> None:
    await spool.commit([delivery("a1"), delivery("b1", destination="audit"), delivery("a2")])
    first = await spool.next("alerts", limit=10)
    assert [s.delivery.notification.title for s in first] == ["a1", "a2"]
    await spool.delivered([first[0].id])
    assert [s.delivery.notification.title for s in await spool.next("alerts", 10)] == ["a2"]
    assert await spool.pending() == 2
    assert await spool.pending("audit") == 1


async def test_the_most_severe_go_first_and_the_oldest_after_a_minute(tmp_path: Path, clock: FakeClock) -> None:
    """A critical alert written behind a flood of warnings goes out next; within a severity, oldest
    first; and one that waited OLDEST_FIRST_AFTER_S leads the next request whatever its severity."""
    spool = await Spool.open(tmp_path, clock=clock)
    try:
        await spool.commit([delivery("info 1", Severity.INFO)])
        await spool.commit([delivery(f"warning {i}", Severity.WARNING) for i in range(20)])
        await spool.commit([delivery("error 1"), delivery("critical 1", Severity.CRITICAL), delivery("error 2")])
        titles = [s.delivery.notification.title for s in await spool.next("alerts", 5)]
        assert titles == ["critical 1", "error 1", "error 2", "warning 0", "warning 1"]
        assert [s.delivery.notification.title for s in await spool.next("alerts", 1)] == ["critical 1"]

        clock.advance(OLDEST_FIRST_AFTER_S)  # the info alert has waited long enough: it leads
        titles = [s.delivery.notification.title for s in await spool.next("alerts", 5)]
        assert titles == ["info 1", "critical 1", "error 1", "error 2", "warning 0"]
        oldest = await spool.next("alerts", 1)
        assert [s.delivery.notification.title for s in oldest] == ["info 1"]
        await spool.delivered([oldest[0].id])
        titles = [s.delivery.notification.title for s in await spool.next("alerts", 3)]
        assert titles == ["warning 0", "critical 1", "error 1"]  # now the first warning is the oldest
    finally:
        await spool.close()


async def test_notifications_and_checkpoints_survive_a_reopen(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path)
    await spool.commit([delivery("kept")], [Checkpoint("app", "/var/log/app.log", {"offset": 120})])
    await spool.close()

    spool = await Spool.open(tmp_path)
    try:
        assert [s.delivery.notification.title for s in await spool.next("alerts")] == ["kept"]
        assert await spool.checkpoints("app") == {"/var/log/app.log": {"offset": 120}}
        await spool.commit([], [Checkpoint("app", "/var/log/app.log", None)])
        assert await spool.checkpoints("app") == {}
    finally:
        await spool.close()


async def test_concurrent_commits_all_land(spool: Spool) -> None:
    await asyncio.gather(*(spool.commit([delivery(f"n{i}")], [Checkpoint("s", f"k{i}", {"i": i})]) for i in range(200)))
    assert await spool.pending() == 200
    assert len(await spool.checkpoints("s")) == 200


async def test_failures_are_recorded_and_rejects_become_dead_letters(spool: Spool) -> None:
    await spool.commit([delivery("bad"), delivery("good")])
    bad, good = await spool.next("alerts", 2)
    await spool.failed([bad.id], "Discord answered 503", next_attempt=99.0)
    (again, _) = await spool.next("alerts", 2)
    assert again.attempts == 1
    await spool.reject([bad.id], 'Discord answered 400: {"code":50035}')

    status = await spool.status()
    assert status.dead_letters == {"alerts": 1}
    assert [s.id for s in await spool.next("alerts", 10)] == [good.id]


async def test_a_full_spool_drops_the_lowest_severities_first(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path, max_bytes=60_000)
    try:
        for i in range(40):
            severity = [Severity.DEBUG, Severity.INFO, Severity.WARNING, Severity.CRITICAL][i % 4]
            await spool.commit([delivery(f"n{i}", severity, size=2000)])
        status = await spool.status()
        left = {severity: count for (_, severity), count in status.pending.items()}
        assert status.bytes <= 60_000
        assert (left[Severity.CRITICAL], left[Severity.WARNING]) == (10, 10)  # none of these dropped
        assert Severity.DEBUG not in left  # the lowest went first, then info
        assert 0 < status.drops[("alerts", Severity.INFO)] == 10 - left.get(Severity.INFO, 0)
        assert status.drops[("alerts", Severity.DEBUG)] == 10
        assert set(status.drops) == {("alerts", Severity.DEBUG), ("alerts", Severity.INFO)}
        assert await spool.take_drops("alerts") == {
            ("full", Severity.DEBUG): 10,
            ("full", Severity.INFO): status.drops[("alerts", Severity.INFO)],
        }
        assert await spool.take_drops("alerts") == {}  # announced once
    finally:
        await spool.close()


async def test_critical_is_dropped_only_when_nothing_else_is_left(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path, max_bytes=10_000)
    try:
        for i in range(10):
            await spool.commit([delivery(f"c{i}", Severity.CRITICAL, size=2000)])
        titles = [s.delivery.notification.title for s in await spool.next("alerts", 100)]
        assert titles == ["c6", "c7", "c8", "c9"]  # the oldest went first
        assert (await spool.status()).drops == {("alerts", Severity.CRITICAL): 6}
    finally:
        await spool.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
async def test_a_damaged_database_is_moved_aside(tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / FILE_NAME
    if damage == "garbage":
        path.write_bytes(b"this is not a database" * 100)
    else:
        spool = await Spool.open(tmp_path)
        await spool.commit([delivery(f"n{i}", size=3000) for i in range(200)])
        await spool.close()
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    spool = await Spool.open(tmp_path)
    try:
        await spool.commit([delivery("fresh")])
        assert [s.delivery.notification.title for s in await spool.next("alerts")] == ["fresh"]
    finally:
        await spool.close()
    aside = [p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert any(name.startswith(f"{FILE_NAME}.corrupt-") for name in aside)
    assert "is damaged" in caplog.text and "moved aside" in caplog.text


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="newer than this tailhook knows"):
        await Spool.open(tmp_path)


async def test_rows_removed_by_another_process_free_their_room(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path, max_bytes=10_000)
    try:
        await spool.commit([delivery(f"i{i}", Severity.INFO, size=1500) for i in range(5)])
        with sqlite3.connect(tmp_path / FILE_NAME) as other:  # as `tailhook spool drop` would
            other.execute("DELETE FROM notifications")
        await spool.commit([delivery(f"w{i}", Severity.WARNING, size=1500) for i in range(4)])
        assert [s.delivery.notification.title for s in await spool.next("alerts", 10)] == ["w0", "w1", "w2", "w3"]
        assert (await spool.status()).drops == {}
    finally:
        await spool.close()


async def test_storm_windows_are_stored_with_the_commit_and_forgotten_when_closed(tmp_path: Path) -> None:
    held = delivery("held").notification
    windows: list[KeyChange] = [
        (("r", "a"), KeyState("r", "a", 100.0, 3, 7, held)),
        (("r", "b"), KeyState("r", "b", 101.0, 1, 0, None)),
    ]
    spool = await Spool.open(tmp_path)
    await spool.commit([delivery("alert")], [], windows)
    await spool.close()

    spool = await Spool.open(tmp_path)
    try:
        stored = {(w.rule, w.key): w for w in await spool.storm_keys()}
        assert stored == {("r", "a"): windows[0][1], ("r", "b"): windows[1][1]}
        await spool.commit([], [], [(("r", "a"), None)])
        assert [w.key for w in await spool.storm_keys()] == ["b"]
    finally:
        await spool.close()


async def test_a_window_change_of_counts_alone_keeps_the_held_line_stored_before(tmp_path: Path) -> None:
    held = delivery("held").notification
    spool = await Spool.open(tmp_path)
    try:
        await spool.commit([], [], [(("r", "a"), KeyState("r", "a", 100.0, 3, 7, held))])
        counts_only = KeyState("r", "a", 100.0, 3, 9, None, fresh=False)
        await spool.commit([], [], [(("r", "a"), counts_only)])
        (stored,) = await spool.storm_keys()
        assert (stored.sent, stored.held, stored.last_held) == (3, 9, held)
    finally:
        await spool.close()


async def test_notifications_older_than_max_age_are_dropped_and_counted(tmp_path: Path, clock: FakeClock) -> None:
    spool = await Spool.open(tmp_path, max_age=3600, clock=clock)
    try:
        await spool.commit([delivery("old info", Severity.INFO), delivery("old error")])
        clock.advance(1800)
        await spool.commit([delivery("young")])
        clock.advance(1801)  # the first two are now older than an hour
        assert [s.delivery.notification.title for s in await spool.next("alerts", 10)] == ["young"]
        assert spool.has_drops("alerts")
        assert await spool.take_drops("alerts") == {("expired", Severity.INFO): 1, ("expired", Severity.ERROR): 1}
        assert (await spool.status()).bytes == len(encode_delivery(delivery("young")))
    finally:
        await spool.close()


async def test_without_max_age_nothing_expires(spool: Spool) -> None:
    spool.clock = lambda: 1e12  # thousands of years later
    await spool.commit([delivery("patient")])
    assert [s.delivery.notification.title for s in await spool.next("alerts")] == ["patient"]


async def test_a_version_1_spool_is_migrated_with_everything_it_held(tmp_path: Path) -> None:
    """A spool written by the first schema: alerts waiting, a dead letter, checkpoints, drops not yet announced."""
    waiting = [delivery(f"waiting {i}", Severity.WARNING) for i in range(3)]
    with sqlite3.connect(tmp_path / FILE_NAME, isolation_level=None) as db:
        db.executescript(f"BEGIN; {_SCHEMA_V1} PRAGMA user_version = 1; COMMIT;")
        db.executemany(
            "INSERT INTO notifications (destination, severity, created, attempts, last_error, size, body) "
            "VALUES ('alerts', 30, 50.0, 2, 'HTTP 503', ?, ?)",
            [(len(encode_delivery(d).encode()), encode_delivery(d)) for d in waiting],
        )
        dead = encode_delivery(delivery("refused"))
        db.execute("INSERT INTO dead_letters VALUES (7, 'alerts', 40, 40.0, 41.0, 1, 'HTTP 400: embeds', ?)", (dead,))
        db.execute("INSERT INTO checkpoints VALUES ('app', '/var/log/app.log', '{\"offset\": 4096}')")
        db.execute("INSERT INTO drops VALUES ('alerts', 20, 12)")

    spool = await Spool.open(tmp_path)
    try:
        items = await spool.next("alerts", 10)
        assert [s.delivery for s in items] == waiting
        assert [s.attempts for s in items] == [2, 2, 2]
        status = await spool.status()
        assert status.dead_letters == {"alerts": 1}
        assert status.bytes == sum(len(encode_delivery(d).encode()) for d in waiting)
        assert await spool.checkpoints("app") == {"/var/log/app.log": {"offset": 4096}}
        assert await spool.take_drops("alerts") == {("full", Severity.INFO): 12}
        assert await spool.storm_keys() == []
        await spool.commit([delivery("new")], [], [(("r", "k"), KeyState("r", "k", 1.0, 1, 0, None))])
        assert len(await spool.storm_keys()) == 1
    finally:
        await spool.close()
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 10
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM notifications WHERE destination = 'alerts' ORDER BY severity DESC, id"
        ).fetchall()
        assert "notifications_by_priority" in str(plan), plan
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_a_version_3_spool_is_migrated_and_keeps_what_it_held(tmp_path: Path) -> None:
    """Version 4 adds the silences a command line stores and what occurrences of silences held;
    version 5 the alerts summed up in floods and the state of absence rules."""
    waiting = delivery("waiting", Severity.WARNING)
    with sqlite3.connect(tmp_path / FILE_NAME, isolation_level=None) as db:
        db.executescript(f"BEGIN; {_SCHEMA_V1} {_SCHEMA_V2} {_SCHEMA_V3} PRAGMA user_version = 3; COMMIT;")
        body = encode_delivery(waiting)
        db.execute(
            "INSERT INTO notifications (destination, severity, created, size, body) VALUES ('alerts', 30, 5.0, ?, ?)",
            (len(body.encode()), body),
        )
        db.execute("INSERT INTO storm_windows VALUES ('r', 'k', 1.0, 3, 9, NULL)")

    spool = await Spool.open(tmp_path)
    try:
        assert [s.delivery for s in await spool.next("alerts")] == [waiting]
        (key,) = await spool.storm_keys()  # a version 6 window: a storm counted from its opening
        assert (key.opened, key.held, key.first, key.last, key.events) == (1.0, 9, 1.0, 1.0, 12)
        assert await spool.silences() == [] and await spool.silence_held() == []
        held = HeldState("config:deploy", 100.0, "deploy", {"ssh": 2})
        await spool.commit([], silences=[(("config:deploy", 100.0), held)])
        assert await spool.silence_held() == [held]
        assert await spool.absences() == []
    finally:
        await spool.close()
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 10
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_a_version_5_spool_is_migrated_its_flood_columns_filled_and_its_numbering_kept(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Version 6 derives kind, rule, key and time from each body; the rows keep their ids and the next
    notification does not take an id a sent one had (dead letters and summed-up alerts keep theirs)."""
    waiting = [flood_delivery("ssh", f"198.18.0.{i}") for i in range(3)] + [
        flood_delivery("ssh", "x", kind=Kind.DIGEST)
    ]
    with sqlite3.connect(tmp_path / FILE_NAME, isolation_level=None) as db:
        schemas = f"{_SCHEMA_V1} {_SCHEMA_V2} {_SCHEMA_V3} {_SCHEMA_V4} {_SCHEMA_V5}"
        db.executescript(f"BEGIN; {schemas} PRAGMA user_version = 5; COMMIT;")
        rows = [("alerts", 20, 5.0, len(encode_delivery(d).encode()), encode_delivery(d)) for d in waiting]
        db.executemany("INSERT INTO notifications (destination, severity, created, size, body) VALUES (?, ?, ?, ?, ?)",
                       [rows[0], *rows, rows[0]])  # fmt: skip
        db.execute("DELETE FROM notifications WHERE id IN (1, 6)")  # the first and the last, sent
    spool = await Spool.open(tmp_path, clock=clock)
    try:
        assert [s.delivery for s in await spool.next("alerts", 10)] == waiting
        assert await spool.flood_waiting("alerts", 2)  # three alerts; the digest is not one
        assert not await spool.flood_waiting("alerts", 3)
        (summary,) = await spool.summarise("alerts", host="web-1", flood_after_s=30)
        assert (summary.rule, summary.count) == ("ssh", 3)
        await spool.commit([flood_delivery("ssh", "new")])
    finally:
        await spool.close()
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 10
        ids = [row[0] for row in db.execute("SELECT id FROM notifications ORDER BY id")]
        assert ids == [5, 7, 8]  # the digest; the summary of 2-4 and the new alert, numbered after the sent 6
        columns = db.execute("SELECT kind, rule, key, time FROM notifications WHERE id = 8").fetchone()
        assert columns == ("alert", "ssh", "new", 1000.0)
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_silence_counts_are_stored_with_the_commit_and_forgotten_with_the_note(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path)
    key = ("cli:1", 50.0)
    try:
        await spool.commit([], silences=[(key, HeldState("cli:1", 50.0, "deploy", {"ssh": 1}))])
        await spool.commit([], silences=[(key, HeldState("cli:1", 50.0, "deploy", {"ssh": 4, "sudo": 1}))])
        assert await spool.silence_held() == [HeldState("cli:1", 50.0, "deploy", {"ssh": 4, "sudo": 1})]
        await spool.commit([delivery("the note")], [], [], silences=[(key, None)])
        assert await spool.silence_held() == []
        assert [s.delivery.notification.title for s in await spool.next("alerts")] == ["the note"]
    finally:
        await spool.close()


async def test_absence_rules_state_is_stored_with_the_commit_and_forgotten_when_gone(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path)
    try:
        await spool.commit(
            [], absences=[("backup", AbsenceState("backup", 100.0, False)), ("beat", AbsenceState("beat", 5.0, True))]
        )
        await spool.commit([], absences=[("beat", None)])
        assert await spool.absences() == [AbsenceState("backup", 100.0, False)]
    finally:
        await spool.close()


async def test_fleet_shares_are_stored_with_the_commit_and_forgotten_when_decided(tmp_path: Path) -> None:
    base = flood_delivery("e500", "upstream").notification
    open_share = ShareState("e500", "upstream", 1_000_000, 1_010_000, "E500", base, 4, 1, 2, True, True, None)
    closing = replace(open_share, key="db", counted=7, claim_at=1011.0)
    spool = await Spool.open(tmp_path)
    try:
        await spool.commit(
            [], fleet=[(("e500", "upstream", 1_000_000), open_share), (("e500", "db", 1_000_000), closing)]
        )
        await spool.commit([], fleet=[(("e500", "db", 1_000_000), None)])  # its digest decided
        assert await spool.fleet_shares() == [open_share]
    finally:
        await spool.close()
    spool = await Spool.open(tmp_path)  # and across a restart
    try:
        assert await spool.fleet_shares() == [open_share]
    finally:
        await spool.close()


def flood_delivery(rule: str, key: str, severity: Severity = Severity.WARNING, kind: Kind = Kind.ALERT) -> Delivery:
    n = Notification(
        kind=kind, rule=rule, severity=severity, key=key, title=f"{rule} {key}", description="",
        line=f"a line about {key}", source="auth", host="web-1", time=1000.0,
    )  # fmt: skip
    return Delivery("alerts", n)


async def test_a_flood_is_summed_up_per_rule_and_the_alerts_kept_aside(tmp_path: Path, clock: FakeClock) -> None:
    spool = await Spool.open(tmp_path, clock=clock)
    try:
        critical = flood_delivery("disk", "sda", Severity.CRITICAL)
        digest = flood_delivery("ssh", "x", kind=Kind.DIGEST)
        await spool.commit([flood_delivery("ssh", f"198.18.0.{i % 7}") for i in range(100)] + [critical, digest])
        clock.advance(5)
        await spool.commit([flood_delivery("web", "502", Severity.ERROR) for _ in range(20)])
        assert not await spool.flood_waiting("alerts", 120)  # 120 alerts wait: not more than 120
        assert await spool.flood_waiting("alerts", 119)
        before = (await spool.status()).bytes

        ssh, web = await spool.summarise("alerts", host="web-1", flood_after_s=30)
        assert (ssh.count, web.count) == (100, 20)
        assert "Most frequent: 198.18.0.0 (15), 198.18.0.1 (15)" in ssh.description  # 100 over 7 keys: 15, 15, …
        waiting = [s.delivery.notification for s in await spool.next("alerts", 10)]
        assert [(n.kind, n.rule, n.count) for n in waiting] == [
            (Kind.ALERT, "disk", 1),  # critical: never summed up, first
            (Kind.SUMMARY, "web", 20),  # error before warning
            (Kind.DIGEST, "ssh", 1),
            (Kind.SUMMARY, "ssh", 100),
        ]
        assert not await spool.flood_waiting("alerts", 0)  # nothing left to sum up
        assert (await spool.status()).bytes < before  # 120 alerts out, 2 summaries in
        with sqlite3.connect(tmp_path / FILE_NAME) as db:
            kept = db.execute("SELECT summary, count(*) FROM summarised GROUP BY summary ORDER BY summary").fetchall()
        assert kept == [("ssh: 100 alerts summed up, from 7 keys", 100), ("web: 20 alerts summed up, from 1 key", 20)]
    finally:
        await spool.close()

"""The spool on real SQLite files: round trips, order, atomic checkpoints, the size cap, damage."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tailhook.events import Delivery, Kind, Mentions, Notification, Severity, Style
from tailhook.spool import FILE_NAME, Checkpoint, Spool, decode_delivery, encode_delivery
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


async def test_round_trip_in_order_per_destination(spool: Spool) -> None:
    await spool.commit([delivery("a1"), delivery("b1", destination="audit"), delivery("a2")])
    first = await spool.next("alerts", limit=10)
    assert [s.delivery.notification.title for s in first] == ["a1", "a2"]
    await spool.delivered([first[0].id])
    assert [s.delivery.notification.title for s in await spool.next("alerts", 10)] == ["a2"]
    assert await spool.pending() == 2
    assert await spool.pending("audit") == 1


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
            Severity.DEBUG: 10,
            Severity.INFO: status.drops[("alerts", Severity.INFO)],
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

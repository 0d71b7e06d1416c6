"""The spool's part in storms as one message: only the newest update of a key waits, and the message
a key's alerts are edited into is remembered with the delivery, across a restart."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tailhook.events import Delivery, Kind
from tailhook.spool import INCIDENT_KEPT_S, SHOWN_CHARS, Spool
from tests.conftest import make_delivery


def of(kind: Kind, key: str, title: str, destination: str = "alerts") -> Delivery:
    delivery = make_delivery(title, destination=destination)
    return Delivery(destination, dataclasses.replace(delivery.notification, kind=kind, key=key))


async def test_only_the_newest_update_of_a_key_waits(spool: Spool) -> None:
    await spool.commit([of(Kind.ALERT, "a", "first"), of(Kind.UPDATE, "a", "x 2"), of(Kind.UPDATE, "b", "b x 2")])
    await spool.commit([of(Kind.UPDATE, "a", "x 3")])
    await spool.commit([of(Kind.UPDATE, "a", "x 4"), of(Kind.UPDATE, "a", "x 5", destination="audit")])

    titles = [item.delivery.notification.title for item in await spool.next("alerts", 10)]
    assert titles == ["first", "b x 2", "x 4"]  # in the order stored: each key's newest in the place of its last
    assert [item.delivery.notification.title for item in await spool.next("audit", 10)] == ["x 5"]
    bodies = await spool._run(lambda: [row[0] for row in spool.db.execute("SELECT body FROM notifications")])
    assert (await spool.status()).bytes == sum(len(body.encode()) for body in bodies)  # replaced ones freed


async def test_a_digest_or_resolved_note_replaces_the_waiting_update_of_its_key(spool: Spool) -> None:
    await spool.commit([of(Kind.UPDATE, "a", "a x 2"), of(Kind.UPDATE, "b", "b x 2")])
    await spool.commit([of(Kind.DIGEST, "a", "a (+9 more)"), of(Kind.RECOVERY, "b", "Resolved: b")])

    titles = [item.delivery.notification.title for item in await spool.next("alerts", 10)]
    assert titles == ["a (+9 more)", "Resolved: b"]


async def test_a_post_remembers_the_message_of_each_key_it_showed_and_an_edit_rewrites_it(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path)
    try:
        await spool.commit([of(Kind.ALERT, "a", "alert a"), of(Kind.ALERT, "b", "alert b")])
        waiting = await spool.next("alerts", 10)
        await spool.posted([s.id for s in waiting], [s.delivery for s in waiting], message=("111", "900", None))
        assert await spool.pending("alerts") == 0
    finally:
        await spool.close()

    spool = await Spool.open(tmp_path)  # a restart remembers it
    try:
        incident = await spool.incident("alerts", "r", "b")
        assert incident is not None
        assert (incident.message_id, incident.webhook, incident.thread_id, incident.slot) == ("111", "900", None, 1)
        assert [d.notification.title for d in incident.deliveries] == ["alert a", "alert b"]
        assert await spool.incident("audit", "r", "b") is None

        await spool.commit([of(Kind.UPDATE, "b", "b x 7")])
        (update,) = await spool.next("alerts", 10)
        shown = (incident.deliveries[0], update.delivery)
        await spool.edited([update.id], "alerts", dataclasses.replace(incident, deliveries=shown))
        assert await spool.pending("alerts") == 0
        a = await spool.incident("alerts", "r", "a")
        assert a is not None and [d.notification.title for d in a.deliveries] == ["alert a", "b x 7"]

        # resolved: the key has no incident any more; the message stays while another key's is it
        await spool.commit([of(Kind.RECOVERY, "b", "Resolved: b")])
        (recovery,) = await spool.next("alerts", 10)
        await spool.edited([recovery.id], "alerts", dataclasses.replace(incident, deliveries=shown))
        assert await spool.incident("alerts", "r", "b") is None
        assert await spool.incident("alerts", "r", "a") is not None
        # deleted in Discord: what it showed is posted anew in its place (here: a digest, which is no key's message)
        anew = [of(Kind.DIGEST, "c", "c (+1 more)")]
        await spool.posted([], anew, message=("222", "900", None), replaces="111")
        assert await spool.incident("alerts", "r", "a") is None
        assert await spool._run(lambda: spool.db.execute("SELECT count(*) FROM messages").fetchone()[0]) == 0
    finally:
        await spool.close()


async def test_one_edit_carries_what_waits_for_every_key_of_its_message_and_waits_its_turn(tmp_path: Path) -> None:
    now = [1000.0]
    spool = await Spool.open(tmp_path, clock=lambda: now[0])
    try:
        await spool.commit([of(Kind.ALERT, key, f"alert {key}") for key in "abc"])
        await spool.commit([of(Kind.ALERT, "d", "alert d")])
        first, second = await spool.next("alerts", 3), await spool.next("alerts", 10)
        await spool.posted([s.id for s in first], [s.delivery for s in first], message=("111", "900", None))
        await spool.posted([s.id for s in second[-1:]], [second[-1].delivery], message=("222", "900", None))
        await spool.commit([of(Kind.UPDATE, "c", "c x 2"), of(Kind.UPDATE, "d", "d x 2"),
                            of(Kind.DIGEST, "a", "a (+5 more)"), of(Kind.ALERT, "e", "alert e")])  # fmt: skip

        # both messages changed just now: their updates wait; a digest and a post do not
        titles = [item.delivery.notification.title for item in await spool.next("alerts", 10, edit_every=5)]
        assert titles == ["a (+5 more)", "alert e"]
        assert await spool.edits_due("alerts", 5) == 1005.0
        now[0] += 5.5
        assert await spool.edits_due("alerts", 5) is None
        assert len(await spool.next("alerts", 10, edit_every=5)) == 4

        edits = await spool.edits("alerts", "111")
        assert [(item.delivery.notification.title, slot) for item, slot in edits] == [("c x 2", 2), ("a (+5 more)", 0)]
        incident = await spool.incident("alerts", "r", "c")
        assert incident is not None
        await spool.edited([item.id for item, _ in edits], "alerts", incident)
        assert [item.delivery.notification.title for item in await spool.next("alerts", 10, edit_every=5)] == [
            "d x 2", "alert e"
        ]  # fmt: skip
    finally:
        await spool.close()


async def test_a_spool_of_version_8_keeps_its_incidents(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path)
    try:
        await spool.commit([of(Kind.ALERT, "a", "alert a")])
        waiting = await spool.next("alerts", 10)
        await spool.posted([s.id for s in waiting], [s.delivery for s in waiting], message=("111", "900", None))
        await spool.commit([of(Kind.UPDATE, "a", "a x 2")])

        def downgrade() -> None:  # what version 8 had: an index of waiting updates only, no threads
            spool.db.executescript(
                "DROP TABLE fleet_shares; "  # (version 10's)
                "DROP TABLE threads; DROP INDEX messages_by_thread; ALTER TABLE messages DROP COLUMN files; "
                "DROP INDEX notifications_by_key; "
                "CREATE INDEX notifications_updates "
                "ON notifications (destination, rule, key) WHERE kind = 'update'; PRAGMA user_version = 8;"
            )

        await spool._run(downgrade)
    finally:
        await spool.close()
    spool = await Spool.open(tmp_path)
    try:
        assert [item.delivery.notification.title for item, _ in await spool.edits("alerts", "111")] == ["a x 2"]
        plan = await spool._run(lambda: str(spool.db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM notifications WHERE destination = 'alerts' AND rule = 'r' "
            "AND key = 'a' AND kind IN ('update', 'digest', 'recovery')").fetchall()))  # fmt: skip
        assert "notifications_by_key" in plan
        assert await spool.thread("alerts", "r", "a") is None
        incident = await spool.incident("alerts", "r", "a")
        assert incident is not None and incident.files is None  # not known: an edit cannot keep them
    finally:
        await spool.close()


async def test_a_key_keeps_its_thread_until_the_thread_is_gone_or_quiet_for_a_day(tmp_path: Path) -> None:
    now = [1000.0]
    spool = await Spool.open(tmp_path, clock=lambda: now[0])
    try:
        await spool.commit([of(Kind.ALERT, "a", "alert a")])
        waiting = await spool.next("alerts", 10)
        message = ("111", "900", "555")
        await spool.posted([s.id for s in waiting], [s.delivery for s in waiting], message=message, threads=True)
        assert await spool.thread("alerts", "r", "a") == "555"
        assert await spool.thread("alerts", "r", "b") is None and await spool.thread("audit", "r", "a") is None
        assert await spool.incident("alerts", "r", "a") is not None

        await spool.forget_thread("alerts", "555")  # deleted in Discord, with its messages
        assert await spool.thread("alerts", "r", "a") is None
        assert await spool.incident("alerts", "r", "a") is None

        await spool.commit([of(Kind.ALERT, "a", "alert a")])
        waiting = await spool.next("alerts", 10)
        await spool.posted([s.id for s in waiting], [s.delivery for s in waiting], message=("222", "900", "666"),
                           incidents=False, threads=True)  # fmt: skip
        assert await spool.incident("alerts", "r", "a") is None  # storm_updates: post
        now[0] += INCIDENT_KEPT_S + 1
        await spool.next("alerts", 10)
        assert await spool.thread("alerts", "r", "a") is None
    finally:
        await spool.close()


async def test_a_message_keeps_its_files_ids_and_only_the_start_of_a_long_line(spool: Spool) -> None:
    long = of(Kind.ALERT, "a", "alert a")
    long = Delivery("alerts", dataclasses.replace(long.notification, line="x" * 100_000))
    await spool.commit([long])
    waiting = await spool.next("alerts", 10)
    await spool.posted([s.id for s in waiting], [s.delivery for s in waiting], message=("111", "900", None),
                       files=("333",))  # fmt: skip
    incident = await spool.incident("alerts", "r", "a")
    assert incident is not None and incident.files == ("333",)
    assert incident.deliveries[0].notification.line == "x" * SHOWN_CHARS  # the whole went as a file

    await spool.edited([], "alerts", dataclasses.replace(incident, files=("333", "444")))
    again = await spool.incident("alerts", "r", "a")
    assert again is not None and again.files == ("333", "444")

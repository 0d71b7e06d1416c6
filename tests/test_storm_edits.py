"""A storm as one message that edits itself (``storm_updates: edit``), through the daemon and the
Discord stand-in: the first alert posts, the storm's updates and digest edit that message, its
recovery turns it green; a restart goes on editing the same message; a deleted message makes the
next edit a post."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailhook.events import RECOVERY_COLOUR
from tests.daemon import Daemon, wait_until, write_config
from tests.discord_standin import ThreadedStandIn, standin_in_thread

pytestmark = pytest.mark.timeout(90)


def config(directory: Path, url: str, *, storm: str, resolved_post: bool = False) -> Path:
    """The daemon's test config, its destination editing storms, and a route that pings a role."""
    return write_config(
        directory,
        url=url,
        storm=storm,
        destination=f"storm_updates: edit, resolved_post: {str(resolved_post).lower()}",
        extra='routes:\n  - {to: [alerts], mention: {roles: ["123456789012345678"]}}\n',
    )


def only_message(discord: ThreadedStandIn) -> tuple[str, dict[str, object]]:
    (message_id,) = discord.messages
    message = discord.messages[message_id]
    (embed,) = message.embeds
    return message_id, embed


def test_two_thousand_identical_errors_are_one_post_and_a_few_edits(tmp_path: Path) -> None:
    with standin_in_thread() as discord:
        daemon = Daemon(
            config(tmp_path, discord.url(), storm="{window: 3s, max_per_window: 1, update_every: 1s}")
        ).started()
        try:
            daemon.append(*["LOUD disk full"] * 2000)
            discord.wait_for(1, timeout=30)
            # the updates while it storms (every second at most, here), then the digest at the window's end
            wait_until(lambda: any("+1999 more" in str(m.embeds) for m in discord.messages.values()),
                       timeout=30, what="the digest's edit")  # fmt: skip
        finally:
            assert daemon.stop() == 0
        message_id, embed = only_message(discord)
        posts, edits = discord.received, discord.edits
    assert len(posts) == 1 and 1 <= len(edits) <= 4, (len(posts), len(edits))
    assert embed["title"] == "loud: disk full \\(+1999 more\\)"  # Markdown escaped for Discord
    assert all(edit.message_id == message_id for edit in edits)
    assert "<@&123456789012345678>" in posts[0].payload.get("content", "")  # the post pings, once
    for edit in edits:  # an edit without allowed_mentions would have its content parsed again
        assert edit.payload["allowed_mentions"] == {"parse": []}
        assert "<@&" not in edit.payload.get("content", "")


def test_a_recovered_storm_turns_its_message_green(tmp_path: Path) -> None:
    storm = "{window: 2s, max_per_window: 1, recovery: {after: 2s}}"
    with standin_in_thread() as discord:
        daemon = Daemon(config(tmp_path, discord.url(), storm=storm, resolved_post=True)).started()
        try:
            daemon.append("LOUD fan failure", "LOUD fan failure", "LOUD fan failure")
            discord.wait_for(1, timeout=30)
            wait_until(lambda: any(e.get("color") == RECOVERY_COLOUR for m in discord.messages.values()
                                   for e in m.embeds), timeout=30, what="the green edit")  # fmt: skip
            discord.wait_for(2, timeout=30)  # resolved_post: a short message of its own too
        finally:
            assert daemon.stop() == 0
        first, second = discord.messages.values()
    (resolved,) = first.embeds
    assert resolved["title"].startswith("Resolved: loud: fan failure")
    assert second.embeds[0]["title"].startswith("Resolved: loud: fan failure")
    assert "<@&" not in second.content  # the note pings no one


def test_a_restart_mid_storm_goes_on_editing_the_same_message(tmp_path: Path) -> None:
    with standin_in_thread() as discord:
        path = config(tmp_path, discord.url(), storm="{window: 30s, max_per_window: 1, update_every: 1s}")
        daemon = Daemon(path).started()
        try:
            daemon.append("LOUD pump", "LOUD pump")
            discord.wait_for(1, timeout=30)
            discord.wait_for_edits(1, timeout=30)  # the update: 2 so far
        finally:
            assert daemon.stop() == 0
        again = Daemon(path).started()
        try:
            again.append("LOUD pump", "LOUD pump")
            wait_until(lambda: any("× 4 " in str(m.embeds) for m in discord.messages.values()), timeout=30,
                       what="the count of 4 in an edit")  # fmt: skip
        finally:
            assert again.stop() == 0
        message_id, _ = only_message(discord)
        assert len(discord.received) == 1
        assert {edit.message_id for edit in discord.edits} == {message_id}


def test_a_deleted_message_makes_the_next_edit_a_post(tmp_path: Path) -> None:
    with standin_in_thread() as discord:
        daemon = Daemon(
            config(tmp_path, discord.url(), storm="{window: 30s, max_per_window: 1, update_every: 1s}")
        ).started()
        try:
            daemon.append("LOUD valve", "LOUD valve")
            discord.wait_for(1, timeout=30)
            discord.wait_for_edits(1, timeout=30)
            (first_id,) = discord.messages
            discord.delete_message(first_id)
            daemon.append("LOUD valve")
            discord.wait_for(2, timeout=30)  # the update, posted as a message of its own
            daemon.append("LOUD valve")
            wait_until(lambda: len(discord.edits) >= 2, timeout=30, what="the next update: an edit of the new post")
        finally:
            assert daemon.stop() == 0
        (second_id,) = discord.messages
        assert second_id != first_id
        assert discord.edits[-1].message_id == second_id
        assert "× 4 " in str(discord.messages[second_id].embeds)


def test_the_keys_of_one_message_share_its_edits_at_most_one_per_update_every(tmp_path: Path) -> None:
    keys = [f"pump {n}" for n in range(5)]
    with standin_in_thread() as discord:
        daemon = Daemon(
            config(tmp_path, discord.url(), storm="{window: 30s, max_per_window: 1, update_every: 1s}")
        ).started()
        try:
            daemon.append(*(f"LOUD {key}" for key in keys))  # one commit: one post of five embeds
            discord.wait_for(1, timeout=30)
            daemon.append(*(f"LOUD {key}" for key in keys * 3))
            wait_until(lambda: str(discord.messages).count("× 4 ") == 5, timeout=30, what="five counts of 4")
            daemon.append(*(f"LOUD {key}" for key in keys * 2))
            wait_until(lambda: str(discord.messages).count("× 6 ") == 5, timeout=30, what="five counts of 6")
        finally:
            assert daemon.stop() == 0
        (message_id,) = discord.messages
        posts, edits = discord.received, discord.edits
    assert len(posts) == 1 and len(posts[0].payload["embeds"]) == 5
    # each key's update went in a shared edit: two rounds of five updates took far fewer than ten edits
    assert 2 <= len(edits) <= 4, [len(e.payload["embeds"]) for e in edits]
    assert all(edit.message_id == message_id for edit in edits)
    for before, after in zip([posts[0], *edits], edits, strict=False):
        assert after.time - before.time >= 0.95  # at most one change of the message per update_every
    assert max(sum(a != b for a, b in zip(before.payload["embeds"], after.payload["embeds"], strict=True))
               for before, after in zip([posts[0], *edits], edits, strict=False)) >= 2  # fmt: skip


def test_an_absence_rule_that_matches_again_turns_its_alert_green(tmp_path: Path) -> None:
    with standin_in_thread() as discord:
        path = config(tmp_path, discord.url(), storm="{window: 30s, max_per_window: 1}")
        (tmp_path / "rules.d" / "absence.yaml").write_text(
            "rules:\n  - {name: backup, match: 'backup done', severity: error, expect: {every: 2s}}\n", encoding="utf-8"
        )
        daemon = Daemon(path).started()
        try:
            (alert,) = discord.wait_for(1, timeout=30)  # nothing matched for 2 s
            daemon.append("backup done")
            wait_until(lambda: discord.edits, timeout=30, what="the green edit")
        finally:
            assert daemon.stop() == 0
        edit = discord.edits[0]
        (resolved,) = discord.messages[alert.message_id].embeds
    assert alert.payload["embeds"][0]["title"] == "backup: no line for 2 s"
    assert edit.message_id == alert.message_id
    assert resolved["title"] == "Resolved: backup matches again" and resolved["color"] == RECOVERY_COLOUR


def test_a_crash_between_discords_answer_and_the_spools_record_posts_again_and_edits_only_the_new_post(
    tmp_path: Path,
) -> None:
    with standin_in_thread() as discord:
        path = config(tmp_path, discord.url(), storm="{window: 30s, max_per_window: 1, update_every: 1s}")
        daemon = Daemon(path).started()
        try:
            discord.hold_answer_next()  # Discord stores the post; tailhook never hears so
            daemon.append("LOUD pump")
            discord.wait_for(1, timeout=30)
        finally:
            daemon.kill()
            discord.release_answers()
        again = Daemon(path).started()
        try:
            again.append("LOUD pump", "LOUD pump")
            wait_until(lambda: "× 3 " in str(discord.messages), timeout=30, what="the count of 3 in an edit")
        finally:
            assert again.stop() == 0
        first, second = discord.received
        edits = discord.edits
    assert first.payload["embeds"][0]["title"] == second.payload["embeds"][0]["title"] == "loud: pump"
    assert edits and all(edit.message_id == second.message_id for edit in edits)  # never the one it never knew

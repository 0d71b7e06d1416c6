"""A forum post per incident (``threads: per_incident``), through the daemon and the Discord stand-in's
forum channel: each storm key opens one post, tagged by severity, and its later alerts, edits and
resolved note go into it, across a restart; a thread deleted in Discord makes the key's next alert
open a new one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailhook.events import RECOVERY_COLOUR
from tests.daemon import Daemon, wait_until, write_config
from tests.discord_messages import Received
from tests.discord_standin import TOKEN, ThreadedStandIn, standin_in_thread

pytestmark = pytest.mark.timeout(120)

FORUM = "112233445566778899"
CRITICAL_TAG = "445566778899001122"


def config(directory: Path, url: str, *, storm: str, updates: str = "edit") -> Path:
    return write_config(
        directory,
        url=url,
        storm=storm,
        destination=(
            f"thread_name: '{{title}}', threads: per_incident, storm_updates: {updates}, "
            f"applied_tags: {{critical: ['{CRITICAL_TAG}']}}"
        ),
    )


def key_of(request: Received) -> str:
    """Which of the test's keys a post or an edit is about, by its embeds' titles."""
    (key,) = {word for embed in request.payload["embeds"] for word in ("pump", "fan") if word in embed["title"]}
    return key


def green(discord: ThreadedStandIn, thread_id: str) -> bool:
    return any(embed.get("color") == RECOVERY_COLOUR for m in discord.messages_in(thread_id) for embed in m.embeds)


def test_each_key_keeps_its_alerts_edits_and_recovery_in_its_own_thread_across_a_restart(tmp_path: Path) -> None:
    storm = "{window: 3s, max_per_window: 1, update_every: 1s, recovery: {after: 2s}}"
    with standin_in_thread(webhooks={FORUM: TOKEN}, forum_webhooks={FORUM}) as discord:
        path = config(tmp_path, discord.url(FORUM), storm=storm)
        daemon = Daemon(path).started()
        try:
            daemon.append("LOUD pump", "LOUD fan", "LOUD pump", "LOUD fan")
            wait_until(lambda: len(discord.threads) == 2 and len(discord.edits) >= 1, timeout=30,
                       what="two posts and an edit")  # fmt: skip
        finally:
            assert daemon.stop() == 0
        threads = {key_of(post): post.channel_id for post in discord.received}
        assert len(threads) == 2 and len(set(threads.values())) == 2
        again = Daemon(path).started()
        try:
            again.append("LOUD pump", "LOUD fan", "LOUD pump", "LOUD fan")
            wait_until(lambda: all(green(discord, thread) for thread in threads.values()), timeout=60,
                       what="both threads' storms resolved in place")  # fmt: skip
        finally:
            assert again.stop() == 0
        opened = dict(discord.threads)
        posts, edits = discord.received, discord.edits
    assert set(opened) == set(threads.values())  # no other post was opened
    assert {thread.name for thread in opened.values()} == {"loud: pump", "loud: fan"}
    assert all(thread.applied_tags == (CRITICAL_TAG,) for thread in opened.values())
    assert len(edits) >= 4  # updates, digests and resolved notes, before and after the restart
    for request in [*posts, *edits]:
        assert request.channel_id == threads[key_of(request)], request
    for edit in edits:
        assert edit.query.get("thread_id") == threads[key_of(edit)]
    for post in posts:  # only the post that opened a thread names it and tags it
        opening = post.channel_id == post.message_id
        assert ("thread_name" in post.payload) == opening == ("applied_tags" in post.payload)


def test_a_deleted_thread_makes_the_next_alert_of_its_key_open_a_new_one(tmp_path: Path) -> None:
    with standin_in_thread(webhooks={FORUM: TOKEN}, forum_webhooks={FORUM}) as discord:
        daemon = Daemon(config(tmp_path, discord.url(FORUM), storm="{window: 60s, max_per_window: 100}")).started()
        try:
            daemon.append("LOUD pump")
            (first,) = discord.wait_for(1, timeout=30)
            daemon.append("LOUD pump")
            discord.wait_for(2, timeout=30)
            discord.delete_thread(first.channel_id)
            daemon.append("LOUD pump")
            discord.wait_for(3, timeout=30)
            daemon.append("LOUD pump")  # the webhook is live: into the new thread
            discord.wait_for(4, timeout=30)
        finally:
            assert daemon.stop() == 0
        posts = discord.received
        statuses = [status for _, _, status in discord.requests]
    assert [post.channel_id == first.channel_id for post in posts] == [True, True, False, False]
    assert posts[2].channel_id == posts[2].message_id  # it opened a post of its own
    assert posts[3].channel_id == posts[2].channel_id and posts[3].query.get("thread_id") == posts[2].channel_id
    assert statuses.count(404) == 1

"""The Discord sink's posts as editable messages, and its edits, over real HTTP against the stand-in.

A post answers the message it made (``Posted``); an edit changes that message
through the webhook that posted it, pings no one, is paced by the edit
route's own bucket, and says ``MISSING`` when the message cannot be edited.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from tests.discord_standin import OTHER_TOKEN, TOKEN, TOKENS, WEBHOOK_ID, DiscordStandIn
from tests.metrics import reported

from tailhook.config import DestinationConfig, WebhookUrl
from tailhook.events import Delivery, Kind, Mentions, Notification, Severity
from tailhook.sinks import Outcome, Posted, Result
from tailhook.sinks.discord import CLOUDFLARE_BACKOFF_S, DiscordSink, GlobalPause
from tailhook.sinks.discord_payload import embed_for

pytestmark = pytest.mark.timeout(30)

OTHER_ID = "998877665544332211"
FORUM_ID, FORUM_TOKEN = "887766554433221100", "forum-" + "T0KEN" * 12
THREAD_ID = "445566778899001122"
ROLE = "123456789012345678"
NOBODY = Mentions()
ONCALL = Mentions(roles=(ROLE,), everyone=True)
RATE_LIMITED = {"message": "You are being rate limited.", "retry_after": 0.2, "global": False}


@pytest.fixture
async def two_webhooks() -> AsyncIterator[DiscordStandIn]:
    async with DiscordStandIn(webhooks={WEBHOOK_ID: TOKEN, OTHER_ID: OTHER_TOKEN}) as standin:
        yield standin


def destination(*urls: str, **kwargs: object) -> DestinationConfig:
    return DestinationConfig(name="alerts", urls=tuple(WebhookUrl(url) for url in urls), **kwargs)  # type: ignore[arg-type]


def delivery(title: str = "disk full", mentions: Mentions = NOBODY) -> Delivery:
    n = Notification(
        kind=Kind.ALERT, rule="disk", severity=Severity.CRITICAL, key="k", title=title, description="",
        line=f"kernel: {title}", source="system", host="web-1", time=1_790_000_000.0, captures={"dev": "sdb"},
    )  # fmt: skip
    return Delivery("alerts", n, mentions=mentions)


async def post(sink: DiscordSink, title: str = "disk full", mentions: Mentions = NOBODY) -> Posted:
    result = await sink.send([delivery(title, mentions)])
    assert result.outcome is Outcome.SENT and result.posted is not None, result
    return result.posted


def statuses(discord: DiscordStandIn) -> list[tuple[str, int]]:
    return [(method, status) for method, _, status in discord.requests]


# ── a post answers the message it made ──────────────────────────────────────


async def test_a_post_answers_its_message_and_the_webhooks_id(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    posted = await post(sink)

    (message,) = discord.received
    assert posted == Posted(message_id=message.message_id, webhook=WEBHOOK_ID, thread_id=None, files=())
    assert posted.message_id in discord.messages
    assert TOKEN not in repr(posted)


async def test_a_post_into_a_thread_answers_that_thread(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = DiscordSink(destination(discord.url(), thread_id=THREAD_ID), session=session)
    posted = await post(sink)

    assert posted.thread_id == THREAD_ID
    assert discord.messages[posted.message_id].channel_id == THREAD_ID


async def test_a_forum_post_answers_the_thread_it_opened(session: aiohttp.ClientSession) -> None:
    async with DiscordStandIn(webhooks={FORUM_ID: FORUM_TOKEN}, forum_webhooks=[FORUM_ID]) as forum:
        sink = DiscordSink(
            destination(forum.url(FORUM_ID, FORUM_TOKEN), thread_name="{host}: {title}"), session=session
        )
        first, second = await post(sink, "disk full"), await post(sink, "oom")

        assert [first.thread_id, second.thread_id] == [r.channel_id for r in forum.received]
        assert first.thread_id != second.thread_id  # each post opened its own
        assert forum.threads[first.thread_id or ""].name == "web-1: disk full"
        assert first.webhook == FORUM_ID


async def test_a_post_into_an_incident_thread_names_no_thread_and_a_gone_thread_is_missing(
    session: aiohttp.ClientSession,
) -> None:
    async with DiscordStandIn(webhooks={FORUM_ID: FORUM_TOKEN}, forum_webhooks=[FORUM_ID]) as forum:
        tags = {Severity.CRITICAL: ("111122223333444455",), Severity.INFO: ("999988887777666655",)}
        sink = DiscordSink(
            destination(forum.url(FORUM_ID, FORUM_TOKEN), thread_name="{title}", applied_tags=tags), session=session
        )
        opened = await post(sink, "disk full")  # opens a post, tagged by its severity
        into = await sink.send([delivery("disk full again")], thread_id=opened.thread_id)
        assert into.outcome is Outcome.SENT and into.posted is not None
        assert into.posted.thread_id == opened.thread_id
        first, second = forum.received
        assert first.payload["applied_tags"] == ["111122223333444455"] and first.thread_name == "disk full"
        assert "thread_name" not in second.payload and "applied_tags" not in second.payload
        assert second.query["thread_id"] == opened.thread_id == second.channel_id

        forum.delete_thread(opened.thread_id or "")
        gone = await sink.send([delivery("and again")], thread_id=opened.thread_id)
        assert gone.outcome is Outcome.MISSING and "Unknown Channel" in gone.detail
        assert (await sink.send([delivery("a new post")])).outcome is Outcome.SENT  # the webhook is live
        assert forum.received[-1].thread_name == "a new post"


@pytest.mark.parametrize("status", [200, 204])
async def test_a_2xx_without_a_message_object_is_sent_with_nothing_to_edit(
    discord: DiscordStandIn, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    caplog.set_level(logging.DEBUG, logger="tailhook.sinks.discord")
    sink = DiscordSink(destination(discord.url()), session=session)
    discord.fail_next(status)  # 200 with Discord's generic body, or 204 with none: no message id
    result = await sink.send([delivery()])

    assert result == Result(Outcome.SENT)
    assert "no message object" in caplog.text


# ── an edit changes the message, pinging no one ─────────────────────────────


async def test_an_edit_changes_the_message_and_pings_no_one(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = DiscordSink(destination(discord.url(), username="ops", avatar_url="https://example.com/a.png"),
                       session=session)  # fmt: skip
    posted = await post(sink, "disk full", ONCALL)
    update = [delivery("disk full × 4,712", ONCALL), delivery("@everyone <@&1> too", ONCALL)]
    result = await sink.edit(posted, update)

    assert result == Result(Outcome.SENT, posted=posted)  # its files as Discord answered: none
    (edit,) = discord.edits
    assert edit.message_id == posted.message_id and edit.query == {}
    assert set(edit.payload) == {"embeds", "allowed_mentions"}  # no pings, no username, avatar or thread_name
    assert edit.payload["allowed_mentions"] == {"parse": []}
    message = discord.messages[posted.message_id]
    assert list(message.embeds) == [embed_for(d.notification, style=d.style) for d in update]  # as a post's
    assert message.embeds[1]["title"].startswith("@\u200beveryone <\u200b@&1")  # the log's text pings no one
    assert message.content == f"<@&{ROLE}> @everyone"  # the post's pings stay as they were, and ping no more
    assert message.allowed_mentions == {"parse": []}
    assert message.edits == 1


async def test_every_edit_carries_allowed_mentions(discord: DiscordStandIn, session: aiohttp.ClientSession) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    posted = await post(sink)
    for count in range(3):
        assert (await sink.edit(posted, [delivery(f"disk full × {count}")])).outcome is Outcome.SENT

    assert [edit.payload["allowed_mentions"] for edit in discord.edits] == [{"parse": []}] * 3
    assert discord.messages[posted.message_id].embeds[0]["title"] == "disk full × 2"
    assert (sink.counts.requests, sink.counts.edits) == (4, 3)
    metrics = reported(sink)
    assert metrics["tailhook_discord_edits_total"] == {(("destination", "alerts"),): 3.0}
    assert metrics["tailhook_discord_requests_total"] == {(("destination", "alerts"),): 4.0}


async def test_an_edit_in_a_thread_names_the_thread(discord: DiscordStandIn, session: aiohttp.ClientSession) -> None:
    sink = DiscordSink(destination(discord.url(), thread_id=THREAD_ID), session=session)
    posted = await post(sink)
    result = await sink.edit(posted, [delivery("resolved")])

    assert result.outcome is Outcome.SENT
    (edit,) = discord.edits
    assert edit.query == {"thread_id": THREAD_ID}
    assert discord.messages[posted.message_id].embeds[0]["title"] == "resolved"


async def test_an_edit_of_a_forum_post_goes_into_the_thread_it_opened(session: aiohttp.ClientSession) -> None:
    async with DiscordStandIn(webhooks={FORUM_ID: FORUM_TOKEN}, forum_webhooks=[FORUM_ID]) as forum:
        sink = DiscordSink(destination(forum.url(FORUM_ID, FORUM_TOKEN), thread_name="{title}"), session=session)
        posted = await post(sink)
        result = await sink.edit(posted, [delivery("resolved")])

        assert result.outcome is Outcome.SENT
        assert forum.edits[0].query == {"thread_id": posted.thread_id}
        assert "thread_name" not in forum.edits[0].payload
        assert forum.messages[posted.message_id].embeds[0]["title"] == "resolved"


async def test_an_edit_goes_through_the_webhook_that_posted(
    two_webhooks: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    discord = two_webhooks
    sink = DiscordSink(destination(discord.url(), discord.url(OTHER_ID, OTHER_TOKEN)), session=session)
    posts = [await post(sink, f"alert {i}") for i in range(2)]
    assert {p.webhook for p in posts} == {WEBHOOK_ID, OTHER_ID}  # spread over both
    for posted in posts:
        assert (await sink.edit(posted, [delivery("edited")])).outcome is Outcome.SENT

    assert [(e.webhook_id, e.message_id) for e in discord.edits] == [(p.webhook, p.message_id) for p in posts]


# ── what cannot be edited ───────────────────────────────────────────────────


async def test_an_edit_of_a_deleted_message_is_missing_and_the_webhook_lives(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    posted = await post(sink)
    discord.delete_message(posted.message_id)
    result = await sink.edit(posted, [delivery("again")])

    assert result.outcome is Outcome.MISSING
    assert '"code":10008' in result.detail and TOKEN not in result.detail
    assert sink.webhooks[0].dead is None
    assert (await sink.send([delivery("posted anew")])).outcome is Outcome.SENT


async def test_an_edit_through_a_deleted_webhook_buries_it_and_is_dead_when_it_was_the_only_one(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    posted = await post(sink)
    discord.delete_webhook(WEBHOOK_ID)
    result = await sink.edit(posted, [delivery("again")])

    assert result.outcome is Outcome.DEAD
    assert '"code":10015' in result.detail
    assert sink.webhooks[0].dead is not None
    assert (await sink.send([delivery("new")])).outcome is Outcome.DEAD
    assert statuses(discord) == [("POST", 200), ("PATCH", 404)]  # the dead webhook got no more requests


async def test_an_edit_through_a_deleted_webhook_is_missing_while_another_lives(
    two_webhooks: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    discord = two_webhooks
    sink = DiscordSink(destination(discord.url(), discord.url(OTHER_ID, OTHER_TOKEN)), session=session)
    posts = [await post(sink, f"alert {i}") for i in range(2)]
    gone = next(p for p in posts if p.webhook == WEBHOOK_ID)
    discord.delete_webhook(WEBHOOK_ID)

    first, again = await sink.edit(gone, [delivery("x")]), await sink.edit(gone, [delivery("y")])

    assert (first.outcome, again.outcome) == (Outcome.MISSING, Outcome.MISSING)  # post anew, through the other
    assert sink.webhooks[0].dead is not None and sink.webhooks[1].dead is None
    assert [(m, h, s) for m, h, s in discord.requests if m == "PATCH"] == [("PATCH", WEBHOOK_ID, 404)]  # once
    assert (await sink.send([delivery("anew")])).outcome is Outcome.SENT


@pytest.mark.parametrize("status", [401, 403])
async def test_an_edit_refused_for_the_token_buries_the_webhook(
    discord: DiscordStandIn, session: aiohttp.ClientSession, status: int
) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    posted = await post(sink)
    discord.fail_next(status, on="edit")
    result = await sink.edit(posted, [delivery("again")])

    assert result.outcome is Outcome.DEAD
    assert result.detail.startswith(f"Discord answered {status}: ") and TOKEN not in result.detail
    assert sink.webhooks[0].dead is not None


async def test_a_message_of_a_webhook_the_destination_no_longer_has_is_missing(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    posted = await post(sink)
    result = await sink.edit(Posted(posted.message_id, webhook=OTHER_ID), [delivery("again")])
    not_an_id = await sink.edit(Posted("../../x", webhook=WEBHOOK_ID), [delivery("again")])

    assert result.outcome is Outcome.MISSING and OTHER_ID in result.detail
    assert not_an_id.outcome is Outcome.MISSING
    assert statuses(discord) == [("POST", 200)]  # no request for either


# ── pacing and passing failures ─────────────────────────────────────────────


async def test_a_429_on_an_edit_is_waited_out_and_retried(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    posted = await post(sink)
    discord.fail_next(429, body=RATE_LIMITED, on="edit")
    before = time.monotonic()
    result = await sink.edit(posted, [delivery("again")])

    assert result.outcome is Outcome.SENT
    assert statuses(discord) == [("POST", 200), ("PATCH", 429), ("PATCH", 200)]
    assert discord.edits[0].time - before >= 0.2
    assert sink.counts.rate_limited == 1


async def test_a_global_429_on_an_edit_sets_the_pause_every_webhook_shares(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    pause = GlobalPause()
    sink = DiscordSink(destination(discord.url()), session=session, global_pause=pause)
    posted = await post(sink)
    discord.global_429(0.3, on="edit")

    assert (await sink.edit(posted, [delivery("again")])).outcome is Outcome.SENT
    assert pause.until > 0
    assert statuses(discord) == [("POST", 200), ("PATCH", 429), ("PATCH", 200)]


async def test_a_cloudflare_429_on_an_edit_backs_off_for_minutes(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    posted = await post(sink)
    discord.cloudflare_429(on="edit")
    result = await sink.edit(posted, [delivery("again")])

    assert result.outcome is Outcome.RETRY and result.retry_after == CLOUDFLARE_BACKOFF_S


async def test_edits_are_paced_by_their_own_bucket(session: aiohttp.ClientSession) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(seconds)

    async with DiscordStandIn(bucket_limit=3, bucket_reset_after=0.5) as discord:
        sink = DiscordSink(destination(discord.url()), session=session, sleep=sleep)
        posted = await post(sink)
        for i in range(3):  # the edit bucket's three
            assert (await sink.edit(posted, [delivery(f"edit {i}")])).outcome is Outcome.SENT
        assert sink.webhooks[0].edits.remaining == 0 and sink.webhooks[0].posts.remaining == 2
        await post(sink, "a post has a bucket of its own")
        assert slept == []  # the empty edit bucket held no post back
        assert (await sink.edit(posted, [delivery("edit 4")])).outcome is Outcome.SENT
        assert len(slept) == 1  # the fourth edit waited for its bucket

    assert 429 not in [status for _, _, status in discord.requests]
    assert sink.webhooks[0].edits.limit == 3


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_5xx_on_an_edit_is_retried_later(
    discord: DiscordStandIn, session: aiohttp.ClientSession, status: int
) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    posted = await post(sink)
    discord.fail_next(status, on="edit")
    result = await sink.edit(posted, [delivery("again")])

    assert result.outcome is Outcome.RETRY and result.detail.startswith(f"Discord answered {status}: ")
    assert sink.webhooks[0].dead is None


async def test_a_dropped_edit_is_retried_later(discord: DiscordStandIn, session: aiohttp.ClientSession) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    posted = await post(sink)
    discord.drop_next(on="edit")
    result = await sink.edit(posted, [delivery("again")])

    assert result.outcome is Outcome.RETRY and result.detail.startswith("request failed: ")


async def test_a_400_on_an_edit_is_rejected_with_discords_error(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    posted = await post(sink)
    body = {"code": 50035, "errors": {"embeds": {"_errors": [{"code": "MAX_EMBED_SIZE_EXCEEDED"}]}},
            "message": "Invalid Form Body"}  # fmt: skip
    discord.fail_next(400, body=body, on="edit")
    result = await sink.edit(posted, [delivery("again")])

    assert result.outcome is Outcome.REJECTED
    assert '"code":50035' in result.detail and "MAX_EMBED_SIZE_EXCEEDED" in result.detail


# ── secrecy ─────────────────────────────────────────────────────────────────


async def test_no_token_in_any_edit_result_or_log(
    two_webhooks: DiscordStandIn, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    discord = two_webhooks
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    unreachable = DiscordSink(
        destination(f"http://127.0.0.1:{port}/api/webhooks/{WEBHOOK_ID}/{TOKEN}"), session=session
    )
    sink = DiscordSink(destination(discord.url(), discord.url(OTHER_ID, OTHER_TOKEN)), session=session)
    posts = [await post(sink, f"alert {i}") for i in range(2)]
    assert [p.webhook for p in posts] == [WEBHOOK_ID, OTHER_ID]
    results = [await unreachable.edit(posts[0], [delivery()])]
    discord.fail_next(429, body=RATE_LIMITED, on="edit")
    discord.drop_next(on="edit")
    results.append(await sink.edit(posts[0], [delivery()]))
    discord.fail_next(503, on="edit")
    results.append(await sink.edit(posts[0], [delivery()]))
    discord.delete_message(posts[1].message_id)
    results.append(await sink.edit(posts[1], [delivery()]))
    discord.fail_next(401, on="edit")
    results.append(await sink.edit(posts[0], [delivery()]))
    discord.delete_webhook(OTHER_ID)
    results.append(await sink.edit(posts[1], [delivery()]))

    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.RETRY, Outcome.RETRY, Outcome.MISSING,
                                            Outcome.MISSING, Outcome.DEAD]  # fmt: skip
    assert "ClientConnectorError" in results[0].detail
    for text in [r.detail for r in results] + [caplog.text, repr(sink), repr(posts)]:
        for token in TOKENS:
            assert token[:20] not in text

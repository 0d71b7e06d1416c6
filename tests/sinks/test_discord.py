"""The Discord sink over real HTTP against the stand-in: answers, pacing, 429s, secrecy."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import aiohttp
import pytest
from tests.discord_standin import OTHER_TOKEN, TOKEN, WEBHOOK_ID, DiscordStandIn

from tailhook.config import DestinationConfig, WebhookUrl
from tailhook.dispatch import Dispatcher
from tailhook.events import Delivery, Kind, Mentions, Notification, Severity
from tailhook.sinks import Outcome
from tailhook.sinks.discord import CLOUDFLARE_BACKOFF_S, DiscordSink, GlobalPause, probe_webhook, scrub_credentials
from tailhook.spool import Spool

pytestmark = pytest.mark.timeout(30)


def destination(*urls: str, **kwargs: object) -> DestinationConfig:
    return DestinationConfig(name="alerts", urls=tuple(WebhookUrl(url) for url in urls), **kwargs)  # type: ignore[arg-type]


NOBODY = Mentions()


def delivery(title: str = "disk full", mentions: Mentions = NOBODY) -> Delivery:
    n = Notification(
        kind=Kind.ALERT, rule="disk", severity=Severity.CRITICAL, key="k", title=title, description="",
        line=f"kernel: {title}", source="system", host="web-1", time=1_790_000_000.0, captures={"dev": "sdb"},
    )  # fmt: skip
    return Delivery("alerts", n, mentions=mentions)


async def test_a_message_is_stored_with_wait_true(discord: DiscordStandIn, session: aiohttp.ClientSession) -> None:
    sink = DiscordSink(destination(discord.url(), username="ops", thread_id="123456789012345678"), session=session)
    result = await sink.send([delivery()])

    assert result.outcome is Outcome.SENT
    (message,) = discord.received
    assert message.query == {"wait": "true", "thread_id": "123456789012345678"}
    assert message.payload["username"] == "ops"
    assert message.payload["allowed_mentions"] == {"parse": []}
    assert message.payload["embeds"][0]["color"] == 0xFF0000


async def test_configured_mentions_are_the_only_ones_allowed(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    await sink.send([delivery("@everyone look", Mentions(roles=("123456789012345678",)))])

    (message,) = discord.received
    assert message.payload["allowed_mentions"] == {"parse": [], "roles": ["123456789012345678"], "users": []}
    assert message.payload["content"] == "<@&123456789012345678>"


async def test_pacing_follows_the_bucket_headers(discord: DiscordStandIn, session: aiohttp.ClientSession) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    for i in range(12):
        assert (await sink.send([delivery(f"alert {i}")])).outcome is Outcome.SENT

    assert len(discord.received) == 12
    assert sink.counts.rate_limited == 0  # the sink waited for the bucket instead of running into 429s
    assert [status for _, _, status in discord.requests] == [200] * 12


async def test_throughput_is_learnt_from_the_bucket_headers(session: aiohttp.ClientSession) -> None:
    async with DiscordStandIn(bucket_limit=8, bucket_reset_after=4.0) as discord:
        sink = DiscordSink(destination(discord.url(), discord.url()), session=session)
        assert sink.throughput() == 2 * 5 / 2.0 * 10  # before any answer: what webhooks are known to get
        await sink.send([delivery()])
        # the webhook answered: 8 per 4 s, 10 embeds a message; the other still assumed
        assert sink.throughput() == pytest.approx(8 / 4.0 * 10 + 5 / 2.0 * 10, rel=0.01)


async def test_a_429_is_waited_out_and_retried(discord: DiscordStandIn, session: aiohttp.ClientSession) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    discord.fail_next(429, body={"message": "You are being rate limited.", "retry_after": 0.2, "global": False})
    before = time.monotonic()
    result = await sink.send([delivery()])

    assert result.outcome is Outcome.SENT
    assert [status for _, _, status in discord.requests] == [429, 200]
    assert discord.received[0].time - before >= 0.2  # retried only after retry_after
    assert sink.counts.rate_limited == 1


async def test_a_global_429_pauses_every_webhook(discord: DiscordStandIn, session: aiohttp.ClientSession) -> None:
    pause = GlobalPause()
    first = DiscordSink(destination(discord.url()), session=session, global_pause=pause)
    second = DiscordSink(destination(discord.url()), session=session, global_pause=pause)
    discord.global_429(0.3)

    assert (await first.send([delivery()])).outcome is Outcome.SENT
    assert pause.until > 0
    assert (await second.send([delivery()])).outcome is Outcome.SENT
    assert [status for _, _, status in discord.requests] == [429, 200, 200]


async def test_a_cloudflare_429_backs_off_for_minutes(discord: DiscordStandIn, session: aiohttp.ClientSession) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    discord.cloudflare_429()
    result = await sink.send([delivery()])

    assert result.outcome is Outcome.RETRY
    assert result.retry_after == CLOUDFLARE_BACKOFF_S
    assert len(discord.requests) == 1


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(500, Outcome.RETRY), (502, Outcome.RETRY), (503, Outcome.RETRY), (400, Outcome.REJECTED),
     (401, Outcome.DEAD), (403, Outcome.DEAD), (404, Outcome.DEAD)],
)  # fmt: skip
async def test_each_status_gets_its_reaction(
    discord: DiscordStandIn, session: aiohttp.ClientSession, status: int, outcome: Outcome
) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    discord.fail_next(status)
    result = await sink.send([delivery()])

    assert result.outcome is outcome
    assert result.detail.startswith(f"Discord answered {status}: ")
    assert TOKEN not in result.detail


async def test_a_400_is_rejected_with_discords_error_body(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    body = {"code": 50035, "errors": {"embeds": {"0": {"title": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH"}]}}}},
            "message": "Invalid Form Body"}  # fmt: skip
    discord.fail_next(400, body=body)
    result = await sink.send([delivery()])

    assert result.outcome is Outcome.REJECTED
    assert '"code":50035' in result.detail and "BASE_TYPE_MAX_LENGTH" in result.detail


async def test_network_failures_are_retried_and_never_show_the_token(
    discord: DiscordStandIn, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    unreachable = DiscordSink(
        destination(f"http://127.0.0.1:{port}/api/webhooks/{WEBHOOK_ID}/{TOKEN}"), session=session
    )
    dropped = DiscordSink(destination(discord.url()), session=session)
    discord.drop_next()

    results = [await unreachable.send([delivery()]), await dropped.send([delivery()])]

    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.RETRY]
    assert "ClientConnectorError" in results[0].detail
    for text in [r.detail for r in results] + [caplog.text, repr(unreachable), str(unreachable.config)]:
        assert TOKEN not in text


async def test_the_probe(discord: DiscordStandIn, session: aiohttp.ClientSession) -> None:
    (ok,) = await probe_webhook(destination(discord.url()), session=session)
    (wrong,) = await probe_webhook(destination(discord.url(token="x" + TOKEN[1:])), session=session)
    discord.delete_webhook(WEBHOOK_ID)
    (gone,) = await probe_webhook(destination(discord.url()), session=session)

    assert (ok.ok, ok.dead) == (True, False)
    assert (wrong.ok, wrong.dead) == (False, True) and "401" in wrong.detail
    assert (gone.ok, gone.dead) == (False, True) and "404" in gone.detail
    assert discord.received == []  # a probe posts nothing
    assert all(TOKEN not in r.detail for r in (ok, wrong, gone))


async def test_one_message_carries_up_to_ten_alerts(discord: DiscordStandIn, session: aiohttp.ClientSession) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    small = [delivery(f"alert {i}") for i in range(12)]
    big = [delivery("x" * 1000 + f" {i}") for i in range(12)]  # a 256-character title and the line: ~1300 each

    assert sink.batch(small) == 10
    assert 1 < sink.batch(big) < 10
    assert (await sink.send(small[:10])).outcome is Outcome.SENT
    (message,) = discord.received
    assert [e["title"] for e in message.payload["embeds"]] == [f"alert {i}" for i in range(10)]


OTHER_ID = "998877665544332211"


async def test_requests_spread_over_the_webhooks_of_a_channel_and_fail_over(session: aiohttp.ClientSession) -> None:
    async with DiscordStandIn(
        bucket_limit=3, bucket_reset_after=5.0, webhooks={WEBHOOK_ID: TOKEN, OTHER_ID: OTHER_TOKEN}
    ) as discord:
        sink = DiscordSink(destination(discord.url(), discord.url(OTHER_ID, OTHER_TOKEN)), session=session)
        for i in range(6):  # two buckets of three: no waiting for a reset, no 429
            assert (await sink.send([delivery(f"alert {i}")])).outcome is Outcome.SENT
        hooks = [hook for _, hook, _ in discord.requests]
        assert sorted(hooks) == sorted([OTHER_ID, WEBHOOK_ID] * 3)
        assert sink.counts.rate_limited == 0

    async with DiscordStandIn(webhooks={WEBHOOK_ID: TOKEN, OTHER_ID: OTHER_TOKEN}) as discord:
        sink = DiscordSink(destination(discord.url(), discord.url(OTHER_ID, OTHER_TOKEN)), session=session)
        discord.delete_webhook(WEBHOOK_ID)
        results = [await sink.send([delivery(f"alert {i}")]) for i in range(4)]

        assert [r.outcome for r in results] == [Outcome.SENT] * 4  # failed over at once
        assert [(hook, status) for _, hook, status in discord.requests].count((WEBHOOK_ID, 404)) == 1
        assert [hook for _, hook, _ in discord.requests].count(WEBHOOK_ID) == 1  # then left alone
        assert sink.webhooks[0].dead is not None and sink.webhooks[1].dead is None

        discord.delete_webhook(OTHER_ID)
        assert (await sink.send([delivery("last")])).outcome is Outcome.DEAD  # none left


async def test_a_dead_webhook_is_asked_again_only_when_its_recheck_is_due(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = DiscordSink(destination(discord.url()), session=session, recheck_s=0.3)
    discord.fail_next(401)
    assert (await sink.send([delivery()])).outcome is Outcome.DEAD

    assert not await sink.revive()  # not due: no request at all
    assert len(discord.requests) == 1
    assert 0 < sink.recheck_in() <= 0.3
    await asyncio.sleep(sink.recheck_in())
    assert await sink.revive()  # Discord's GET says the webhook is fine again
    assert discord.requests[-1][0] == "GET" and discord.received == []  # the check posted nothing
    assert (await sink.send([delivery()])).outcome is Outcome.SENT

    discord.delete_webhook(WEBHOOK_ID)
    assert (await sink.send([delivery()])).outcome is Outcome.DEAD
    await asyncio.sleep(sink.recheck_in())
    assert not await sink.revive()  # still gone: one GET, and the next not before recheck_s
    assert [method for method, _, _ in discord.requests].count("GET") == 2
    assert sink.recheck_in() > 0.2


async def test_alerts_that_ping_different_people_do_not_share_a_message(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    oncall = Mentions(roles=("123456789012345678",))
    assert sink.batch([delivery("a", oncall), delivery("b", oncall), delivery("c"), delivery("d", oncall)]) == 2
    assert sink.batch([delivery("a"), delivery("b", oncall)]) == 1


async def test_a_message_no_request_could_carry_is_rejected_not_raised(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = DiscordSink(destination(discord.url()), session=session)
    crowd = Mentions(roles=tuple(str(123456789012345678 + i) for i in range(101)))  # Discord takes 100
    result = await sink.send([delivery("too many pings", crowd)])

    assert result.outcome is Outcome.REJECTED and "at most 100" in result.detail
    assert discord.requests == []


def test_credentials_in_any_url_are_scrubbed() -> None:
    text = "Cannot connect to host, url='http://bob:p%C3%A4%20ss@127.0.0.1:3128/x' and https://u:hunter2@proxy/"
    scrubbed = scrub_credentials(text, "http://bob:pä ss@127.0.0.1:3128")
    assert "bob" not in scrubbed and "p%C3%A4" not in scrubbed and "hunter2" not in scrubbed
    assert "http://***@127.0.0.1:3128/x" in scrubbed
    unchanged = "https://example.com/x?to=ops@corp.example and https://example.com/#me@there"
    assert scrub_credentials(unchanged) == unchanged


async def test_a_webhook_that_died_beside_live_ones_is_rechecked_by_the_dispatcher(
    spool: Spool, session: aiohttp.ClientSession
) -> None:
    async with DiscordStandIn(webhooks={WEBHOOK_ID: TOKEN, OTHER_ID: OTHER_TOKEN}) as discord:
        sink = DiscordSink(
            destination(discord.url(), discord.url(OTHER_ID, OTHER_TOKEN)), session=session, recheck_s=0.3
        )
        dispatcher = Dispatcher({"alerts": sink}, spool, host="h")
        discord.fail_next(401)  # the first request, to the first webhook, is refused once
        task = asyncio.create_task(dispatcher.run())
        try:
            await spool.commit([delivery("one")])
            await discord.wait_for(1)
            assert sink.webhooks[0].dead is not None and dispatcher.states["alerts"].dead is None
            async with asyncio.timeout(5):  # idle, and still the dead one is asked about when due
                while sink.webhooks[0].dead is not None:
                    await asyncio.sleep(0.01)
            await spool.commit([delivery("two")])
            await discord.wait_for(2)
        finally:
            task.cancel()

    requests = [(method, hook, status) for method, hook, status in discord.requests]
    assert requests[0] == ("POST", WEBHOOK_ID, 401)
    assert ("GET", WEBHOOK_ID, 200) in requests
    assert requests[-1] == ("POST", WEBHOOK_ID, 200)  # back in use, with its fresh bucket
    assert [method for method, _, _ in requests].count("GET") == 1


async def test_a_shared_429_holds_back_every_webhook_of_the_channel(session: aiohttp.ClientSession) -> None:
    async with DiscordStandIn(webhooks={WEBHOOK_ID: TOKEN, OTHER_ID: OTHER_TOKEN}) as discord:
        sink = DiscordSink(destination(discord.url(), discord.url(OTHER_ID, OTHER_TOKEN)), session=session)
        body = {"message": "You are being rate limited.", "retry_after": 0.3, "global": False}
        discord.fail_next(429, body=body, headers={"X-RateLimit-Scope": "shared"})
        before = time.monotonic()
        assert (await sink.send([delivery()])).outcome is Outcome.SENT

    assert [status for _, _, status in discord.requests] == [429, 200]
    assert discord.received[0].time - before >= 0.3  # the other webhook waited too: same channel, same limit


async def test_a_429_of_one_webhook_leaves_the_others_free(session: aiohttp.ClientSession) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with DiscordStandIn(webhooks={WEBHOOK_ID: TOKEN, OTHER_ID: OTHER_TOKEN}) as discord:
        sink = DiscordSink(destination(discord.url(), discord.url(OTHER_ID, OTHER_TOKEN)), session=session, sleep=sleep)
        for title in ("a", "b"):  # one answer each, with the route's bucket hash, which is the same for both
            assert (await sink.send([delivery(title)])).outcome is Outcome.SENT
        body = {"message": "You are being rate limited.", "retry_after": 30.0, "global": False}
        discord.fail_next(429, body=body, headers={"X-RateLimit-Scope": "user"})
        assert (await sink.send([delivery("c")])).outcome is Outcome.SENT

    (limited,) = [hook for _, hook, status in discord.requests if status == 429]
    assert discord.requests[-1][1] != limited  # the other webhook took it at once
    assert slept == []

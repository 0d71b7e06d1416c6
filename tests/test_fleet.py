"""Fleet mode's shared pacing against a real redis-server: one budget per webhook across daemons, a
429 that one meets pauses all, the token never reaches Redis, and without Redis each goes on alone
(twenty daemons of a fleet: tests/test_fleet_daemons.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tailhook.config import DestinationConfig, FleetConfig, WebhookUrl
from tailhook.events import Delivery, Kind, Notification, Severity
from tailhook.fleet import Fleet, webhook_key
from tailhook.sinks import Outcome
from tailhook.sinks.discord import DiscordSink
from tests.discord_standin import TOKEN, WEBHOOK_ID, DiscordStandIn
from tests.metrics import reported
from tests.redis_server import RedisServer, redis_server

pytestmark = pytest.mark.timeout(60)

PASSWORD = "s3cret-pw"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as running:
        yield running


def fleet_of(server: RedisServer, clock: list[float] | None = None) -> Fleet:
    config = FleetConfig(server.url, "shop", timeout=0.2)
    return Fleet(config) if clock is None else Fleet(config, clock=lambda: clock[0])


async def test_daemons_share_one_budget_per_webhook_and_route(server: RedisServer) -> None:
    one, two = fleet_of(server), fleet_of(server)
    try:
        waits = [await fleet.take(WEBHOOK_ID, "post", 5, 2.0) for fleet in (one, two) * 4]
        assert waits[:5] == [0.0] * 5  # a window not seen yet: the limit and period known
        assert all(0 < wait <= 2.0 for wait in waits[5:])
        await one.learn("998877665544332211", "post", 2, 0.4)  # Discord says: 2 left, the window ends in 0.4 s
        later = [await two.take("998877665544332211", "post", 5, 2.0) for _ in range(3)]
        assert later[:2] == [0.0, 0.0] and 0 < later[2] <= 0.4
        assert await one.take(WEBHOOK_ID, "edit", 5, 2.0) == 0.0  # edits have a bucket of their own
        assert await one.take("112233445566778800", "post", 5, 2.0) == 0.0  # and so has each webhook
    finally:
        await one.close()
        await two.close()


async def test_a_429_that_one_daemon_meets_pauses_the_others(server: RedisServer) -> None:
    one, two = fleet_of(server), fleet_of(server)
    try:
        await one.pause(WEBHOOK_ID, "post", 1.5)
        assert 1.0 < await two.take(WEBHOOK_ID, "post", 5, 2.0) <= 1.5
        assert await two.take(WEBHOOK_ID, "edit", 5, 2.0) == 0.0  # that route only
        await one.pause(WEBHOOK_ID, None, 0.8)  # a global 429: every route
        assert 0 < await two.take(WEBHOOK_ID, "edit", 5, 2.0) <= 0.8
        assert reported(one)["tailhook_fleet_pauses_total"] == {(("fleet", "shop"),): 2}
    finally:
        await one.close()
        await two.close()


async def test_without_redis_each_daemon_goes_on_alone_and_rejoins_when_it_answers(server: RedisServer) -> None:
    clock = [0.0]
    fleet = fleet_of(server, clock)
    try:
        server.kill()
        assert await fleet.take(WEBHOOK_ID, "post", 5, 2.0) == 0.0
        assert not fleet.up and reported(fleet)["tailhook_fleet_up"] == {(("fleet", "shop"),): 0.0}
        errors = fleet.errors
        assert await fleet.take(WEBHOOK_ID, "post", 5, 2.0) == 0.0  # not asked again before its time
        assert fleet.errors == errors
        server.start()
        clock[0] += 1.5
        assert await fleet.take(WEBHOOK_ID, "post", 5, 2.0) == 0.0
        assert fleet.up
    finally:
        await fleet.close()


async def test_the_token_reaches_redis_nowhere(server: RedisServer) -> None:
    session_fleet = fleet_of(server)
    try:
        async with DiscordStandIn() as discord, aiohttp.ClientSession() as session:
            sink = DiscordSink(destination(discord.url()), session=session, fleet=session_fleet)
            for n in range(3):
                assert (await sink.send([delivery(f"alert {n}")])).outcome is Outcome.SENT
            await session_fleet.pause(WEBHOOK_ID, "post", 5.0)
    finally:
        await session_fleet.close()
    stored = server.stored()
    assert stored and all(key.startswith(b"tailhook:shop:") for key, _ in stored)
    for key, value in stored:
        for secret in (TOKEN.encode(), WEBHOOK_ID.encode()):
            assert secret not in key and secret not in value
    assert any(webhook_key("shop", WEBHOOK_ID).encode() in key for key, _ in stored)


async def test_two_daemons_sharing_a_webhook_stay_under_its_limit(server: RedisServer) -> None:
    one, two = fleet_of(server), fleet_of(server)
    try:
        async with DiscordStandIn(bucket_limit=5, bucket_reset_after=0.5) as discord, aiohttp.ClientSession() as s:
            sinks = [DiscordSink(destination(discord.url()), session=s, fleet=fleet) for fleet in (one, two)]

            async def post(sink: DiscordSink, n: int) -> None:
                for i in range(n):
                    assert (await sink.send([delivery(f"alert {i}")])).outcome is Outcome.SENT

            await asyncio.gather(*(post(sink, 12) for sink in sinks))
            statuses = [status for _, _, status in discord.requests]
    finally:
        await one.close()
        await two.close()
    assert statuses.count(200) == 24
    assert statuses.count(429) <= 1  # without the fleet, each daemon alone would meet one in every window


def destination(url: str) -> DestinationConfig:
    return DestinationConfig(name="alerts", urls=(WebhookUrl(url),))


def delivery(title: str) -> Delivery:
    n = Notification(kind=Kind.ALERT, rule="r", severity=Severity.ERROR, key="k", title=title, description="",
                     line="", source="s", host="h", time=1.0)  # fmt: skip
    return Delivery("alerts", n)


async def test_rediss_with_the_fleets_ca_and_a_password(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with redis_server(tmp_path, tls=True, password=PASSWORD) as server:
        assert server.url.startswith("rediss://") and server.certificate is not None
        trusted = Fleet(FleetConfig(server.url, "shop", password=PASSWORD, timeout=1.0, ca_file=server.certificate))
        untrusted = Fleet(FleetConfig(server.url, "shop", password=PASSWORD, timeout=1.0))
        wrong = Fleet(FleetConfig(server.url, "shop", password="x" + PASSWORD, timeout=1.0, ca_file=server.certificate))
        try:
            await trusted.pause(WEBHOOK_ID, "post", 5.0)
            assert trusted.up and trusted.pauses == 1
            assert 0 < await trusted.take(WEBHOOK_ID, "post", 5, 2.0) <= 5.0  # through TLS, with the password
            assert await untrusted.take(WEBHOOK_ID, "post", 5, 2.0) == 0.0  # a certificate it cannot check:
            assert not untrusted.up  # it goes on alone
            assert await wrong.take(WEBHOOK_ID, "post", 5, 2.0) == 0.0
            assert not wrong.up
        finally:
            for fleet in (trusted, untrusted, wrong):
                await fleet.close()
    assert "does not answer" in caplog.text
    assert PASSWORD not in caplog.text

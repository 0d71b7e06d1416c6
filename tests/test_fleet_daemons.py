"""Twenty ``tailhook run`` daemons of one fleet (as 20 sidecars or a DaemonSet would run: their own
state, log and host name) posting to one webhook of the Discord stand-in, with a real redis-server:

1. the same error on every daemon: at most ``max_per_window`` first alerts across the fleet, and one
   digest whose count is exact;
2. 20 x 20 distinct alerts all arrive, at most 1% of requests answered 429;
3. Redis killed: every alert written afterwards still arrives; Redis back: the daemons rejoin and
   share pacing again;
4. the token and the webhook's id appear nowhere in Redis.

One test in phases: starting 20 daemons is the costly part.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.daemon import Daemon, metrics, stop_all, wait_until, write_config
from tests.discord_standin import TOKEN, WEBHOOK_ID, ThreadedStandIn, standin_in_thread
from tests.redis_server import RedisServer, redis_server

pytestmark = pytest.mark.timeout(240)

DAEMONS = 20
STARTING = 4
"""Daemons started at once (each takes about a second of CPU to start)."""
MAX_PER_WINDOW = 3
STORM = f"{{window: 3s, max_per_window: {MAX_PER_WINDOW}, max_keys_per_window: 100000, flood_after: 1h}}"
FIRST = "loud: E500 upstream timeout"
DIGEST = re.compile(re.escape(FIRST) + r" \\?\(\+(\d+) more\\?\)")  # Discord's Markdown escapes the brackets


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    (tmp_path / "redis").mkdir()
    with redis_server(tmp_path / "redis") as running:
        yield running


def titles(discord: ThreadedStandIn) -> list[str]:
    """The embed titles of every request the stand-in took: posts and edits."""
    return [e.get("title", "") for r in [*discord.received, *discord.edits] for e in r.payload.get("embeds", [])]


def statuses(discord: ThreadedStandIn, since: int = 0) -> list[int]:
    return [status for _, _, status in discord.requests[since:]]


def fleet_up(daemons: list[Daemon]) -> bool:
    return all(metrics(d).get('tailhook_fleet_up{fleet="shop"}') == 1.0 for d in daemons)


def phase(what: str, started: float) -> None:
    """Print how long the test has run when *what* is done (pytest -s shows it)."""
    print(f"{what}: {time.monotonic() - started:.1f} s")


def test_twenty_daemons_share_one_storm_and_one_webhook_and_outlive_redis(tmp_path: Path, server: RedisServer) -> None:
    started = time.monotonic()
    with standin_in_thread(bucket_limit=5, bucket_reset_after=0.5) as discord, ExitStack() as stack:
        daemons = []
        for n in range(DAEMONS):
            folder = tmp_path / f"pod-{n}"
            folder.mkdir()
            extra = (f"host: pod-{n}\nprobe: {{mode: off}}\nhttp: {{listen: '127.0.0.1:0'}}\n"
                     f"fleet: {{redis: '{server.url}', name: shop}}\n")  # fmt: skip
            daemon = Daemon(write_config(folder, url=discord.url(), extra=extra, storm=STORM),
                            env={"TAILHOOK_LOG_LEVEL": "info"})  # fmt: skip
            stack.callback(daemon.close)
            daemons.append(daemon)
            if len(daemons) % STARTING == 0:  # a few at a time: the tests of other workers run meanwhile
                for starting in daemons[-STARTING:]:
                    starting.wait_for_log("started on", timeout=60)
        phase("started", started)

        # 1. the same error, 10 times on each daemon: 200 events, one storm
        for daemon in daemons:
            daemon.append(*["LOUD E500 upstream timeout"] * 10)
        wait_until(lambda: any(DIGEST.search(t) for t in titles(discord)), timeout=30, what="the fleet's digest")
        wait_until(lambda: all(metrics(d).get('tailhook_fleet_storm_windows{fleet="shop"}') == 0.0 for d in daemons),
                   timeout=20, what="every daemon done with the window")  # fmt: skip
        phase("one storm", started)
        storm = titles(discord)
        digests = [int(m[1]) for t in storm if (m := DIGEST.search(t))]
        assert digests == [200 - MAX_PER_WINDOW], storm  # one digest, its count exact
        posted = [r for r in discord.received for e in r.payload.get("embeds", []) if e.get("title") == FIRST]
        assert len(posted) == MAX_PER_WINDOW  # first alerts across the fleet, not 3 per daemon

        # 2. 20 x 20 distinct alerts
        for n, daemon in enumerate(daemons):
            daemon.append(*(f"LOUD pod-{n} alert {i}" for i in range(20)))
        wanted = {f"loud: pod-{n} alert {i}" for n in range(DAEMONS) for i in range(20)}
        wait_until(lambda: wanted <= set(titles(discord)), timeout=60, what="400 distinct alerts")
        phase("400 distinct alerts", started)
        shared = statuses(discord)
        assert shared.count(429) <= 0.01 * len(shared), shared
        distinct = [t for t in titles(discord) if " alert " in t]
        assert sorted(distinct) == sorted(wanted)  # each once

        # 4. nothing in Redis says which webhook (nor its token)
        stored = server.stored()
        assert any(b":storm:" in key for key, _ in stored)  # (the budget's keys expire within a second)
        for key, value in stored:
            for secret in (TOKEN.encode(), WEBHOOK_ID.encode()):
                assert secret not in key and secret not in value

        # 3. Redis killed: what is written afterwards still arrives, each daemon pacing alone
        server.kill()
        for n, daemon in enumerate(daemons):
            daemon.append(*(f"LOUD pod-{n} without redis {i}" for i in range(5)))
        alone = {f"loud: pod-{n} without redis {i}" for n in range(DAEMONS) for i in range(5)}
        wait_until(lambda: alone <= set(titles(discord)), timeout=60, what="the alerts written without Redis")
        wait_until(lambda: not any(fleet_up([d]) for d in daemons), timeout=10, what="every daemon alone")
        phase("without Redis", started)
        # ... and back: the daemons rejoin on their own, and share the budget again
        server.start()
        wait_until(lambda: fleet_up(daemons), timeout=60, what="every daemon back in the fleet")
        phase("rejoined", started)
        back_from = len(discord.requests)
        for n, daemon in enumerate(daemons):
            daemon.append(*(f"LOUD pod-{n} back {i}" for i in range(20)))
        back = {f"loud: pod-{n} back {i}" for n in range(DAEMONS) for i in range(20)}
        wait_until(lambda: back <= set(titles(discord)), timeout=60, what="the alerts written with Redis back")
        phase("400 more", started)
        rejoined = statuses(discord, back_from)
        assert rejoined.count(429) <= 0.01 * len(rejoined), rejoined
        assert server.calls("evalsha") >= len(rejoined)  # each request took from the budget in Redis again
        assert stop_all(daemons) == [0] * DAEMONS
    assert all("pacing alone" in d.stderr and "answers again" in d.stderr for d in daemons)

"""Delivery: requests and time for 1,000 distinct alerts through a Discord-like rate-limit bucket.

Each approach posts to a fresh Discord stand-in (a thread of this process, a
real HTTP server on 127.0.0.1) whose webhook has a bucket of 5 requests per
window, as Discord's has, with its real ``X-RateLimit-*`` headers and 429s:

- tailhook: ``tailhook run`` (a subprocess, as users run it) follows one file
  (``start_at: beginning``, so no line can be missed), with one rule that
  matches every line and a storm key per line, so storm control holds none
  back, and the startup probe off. Once it has logged ``started on``, 1,000
  distinct alert lines are appended with one ``write``.
- one request per alert: what the common integrations do, written fairly: an
  aiohttp loop that POSTs each alert as one embed with ``?wait=true``, waits
  out a 429 for its ``retry_after`` and retries, and, when a response says
  ``X-RateLimit-Remaining: 0``, waits its ``X-RateLimit-Reset-After`` before
  the next request.

Time runs from the moment before the ``write`` (tailhook) or the first request
(the loop) to the moment the stand-in accepted the message that carried the
last of the 1,000 alerts, both on this process's monotonic clock. Alerts are
counted as embeds (a message may carry up to 10), each by its number, so a
duplicate does not count twice. Requests and 429s are the POSTs the stand-in
answered.

Discord's window is about 2 s: one request per alert would take about 400 s,
too long for ``make bench``. So the window is scaled to 0.2 s by default
(``--reset-after 2.0`` runs at Discord's). The seconds and alerts/s are as
measured at that scale; the request counts do not depend on it, and since both
approaches spend their time waiting for the bucket, neither does the time ratio
(nearly: the cost of a request is a larger share of a shorter window).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import math
import os
import re
import sys
import tempfile
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from tests.daemon import Daemon, wait_until
from tests.discord_standin import ThreadedStandIn, standin_in_thread

from benchmarks.tailing import ratio, running

ALERTS = 1000
BUCKET_LIMIT = 5
"""Requests per window of one webhook's bucket, as on Discord."""
DISCORD_RESET_AFTER_S = 2.0
SCALED_RESET_AFTER_S = 0.2
ALERT_NUMBER = re.compile(r"bench-(\d+)")
STATUSES_OK = frozenset({200, 204, 429})


@dataclass(frozen=True)
class Delivered:
    approach: str
    requests: int
    """POSTs the stand-in answered, 429s included."""
    rate_limited: int
    """Of those, answered 429."""
    seconds: float
    """From the first alert's write or request to the stand-in accepting the last alert."""

    @property
    def alerts_per_second(self) -> float:
        return ALERTS / self.seconds


def alert_line(n: int) -> str:
    return f"Nov 23 10:00:01 web-1 app[4242]: queue bench-{n:04d} is full (depth 1000, dropping)\n"


def bucket_floor_s(requests: int, reset_after_s: float) -> float:
    """The least time *requests* can take through the bucket: every window but the last runs out."""
    return (math.ceil(requests / BUCKET_LIMIT) - 1) * reset_after_s


def timeout_s(reset_after_s: float) -> float:
    """Twice what one request per alert needs at this window, and some: past it, something is wrong."""
    return 2 * bucket_floor_s(ALERTS, reset_after_s) + 30


# ── what the stand-in saw ───────────────────────────────────────────────────


def alerts_by_number(discord: ThreadedStandIn) -> tuple[dict[int, float], int]:
    """When each alert's number first arrived; and how many embeds carried an alert at all."""
    first: dict[int, float] = {}
    embeds = 0
    for message in discord.received:
        for sent in message.payload.get("embeds") or []:
            found = ALERT_NUMBER.search(str(sent.get("title", "")))
            if found:
                embeds += 1
                first.setdefault(int(found[1]), message.time)
    return first, embeds


def wait_for_alerts(discord: ThreadedStandIn, timeout: float, what: str) -> None:
    """Until all ALERTS have arrived; on timeout, say what did and how the stand-in answered."""
    try:
        wait_until(lambda: len(alerts_by_number(discord)[0]) >= ALERTS, timeout, what)
    except AssertionError as exc:
        statuses = collections.Counter(status for method, _, status in discord.requests if method == "POST")
        arrived = len(alerts_by_number(discord)[0])
        raise AssertionError(f"{exc}: {arrived} of {ALERTS} arrived; POSTs by status: {dict(statuses)}") from None


def tally(discord: ThreadedStandIn, approach: str, started: float) -> Delivered:
    """The figures of one run, from the stand-in's records; refuses a run with answers other than 2xx and 429."""
    statuses = [status for method, _, status in discord.requests if method == "POST"]
    others = collections.Counter(status for status in statuses if status not in STATUSES_OK)
    if others:
        raise AssertionError(f"{approach}: the stand-in refused requests: {dict(others)}")
    first, embeds = alerts_by_number(discord)
    if embeds != ALERTS:
        raise AssertionError(f"{approach}: {embeds} embeds carried the {ALERTS} alerts (duplicates)")
    return Delivered(
        approach=approach,
        requests=len(statuses),
        rate_limited=statuses.count(429),
        seconds=max(first.values()) - started,
    )


# ── tailhook ────────────────────────────────────────────────────────────────


RULES = """
rules:
  - name: queue-full
    match: 'queue (?P<queue>\\S+) is full'
    severity: error
    key: '{queue}'
    title: 'queue {queue} is full'
"""


def tailhook_config(url: str) -> str:
    """One file source from its beginning, no probe, the stand-in; every alert has its own storm key."""
    return textwrap.dedent(
        f"""
        state_dir: state
        shutdown_timeout: 2s
        probe: {{mode: 'off'}}
        sources:
          - {{name: app, paths: [app.log], start_at: beginning}}
        rules:
          paths: [rules.yaml]
        destinations:
          alerts: {{url: '{url}'}}
        """
    ).lstrip()


def tailhook(folder: Path, reset_after_s: float) -> Delivered:
    log = folder / "app.log"
    log.touch()
    (folder / "rules.yaml").write_text(RULES.lstrip(), encoding="utf-8")
    config = folder / "tailhook.yaml"
    with standin_in_thread(bucket_limit=BUCKET_LIMIT, bucket_reset_after=reset_after_s) as discord:
        config.write_text(tailhook_config(discord.url()), encoding="utf-8")
        with running(config) as daemon:
            daemon.wait_for_log("started on", timeout=60)
            started = append_at_once(log, "".join(alert_line(n) for n in range(ALERTS)).encode())
            wait_for_alerts_from(daemon, discord, timeout_s(reset_after_s))
        return tally(discord, "tailhook run", started)


def wait_for_alerts_from(daemon: Daemon, discord: ThreadedStandIn, timeout: float) -> None:
    """Until all ALERTS have arrived; on timeout, with the end of tailhook's log."""
    try:
        wait_for_alerts(discord, timeout, "tailhook's alerts")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\ntailhook's log ends:\n{daemon.stderr[-4000:]}") from None


# ── one request per alert ───────────────────────────────────────────────────


def embed(n: int) -> dict[str, Any]:
    """One alert as a plain integration renders it: title, the line, colour, host, timestamp."""
    return {
        "title": f"queue bench-{n:04d} is full",
        "description": f"```\n{alert_line(n).rstrip()}\n```",
        "color": 0xE67E22,
        "fields": [{"name": "host", "value": "web-1", "inline": True}],
        "timestamp": datetime.now(UTC).isoformat(),
    }


async def post_until_accepted(session: aiohttp.ClientSession, url: str, payload: Mapping[str, Any]) -> None:
    """POST *payload*, retrying each 429 after its ``retry_after``; then wait if the bucket is empty."""
    while True:
        async with session.post(url, params={"wait": "true"}, json=payload) as response:
            body = await response.json(content_type=None)
            remaining = response.headers.get("X-RateLimit-Remaining")
            reset_after = response.headers.get("X-RateLimit-Reset-After")
            if response.status == 429:
                await asyncio.sleep(float(body["retry_after"]))
                continue
            response.raise_for_status()
        if remaining == "0" and reset_after is not None:
            await asyncio.sleep(float(reset_after))
        return


async def post_each(url: str) -> float:
    """Every alert in its own request, one after the other; when the first request started."""
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        for n in range(ALERTS):
            await post_until_accepted(session, url, {"embeds": [embed(n)], "allowed_mentions": {"parse": []}})
        return started


def one_per_alert(reset_after_s: float) -> Delivered:
    with standin_in_thread(bucket_limit=BUCKET_LIMIT, bucket_reset_after=reset_after_s) as discord:
        started = asyncio.run(asyncio.wait_for(post_each(discord.url()), timeout_s(reset_after_s)))
        wait_for_alerts(discord, 10, "the loop's alerts")  # the loop has had its last answer: they are there
        return tally(discord, "one request per alert", started)


# ── the report ──────────────────────────────────────────────────────────────


def report(results: Sequence[Delivered], reset_after_s: float) -> None:
    scale = DISCORD_RESET_AFTER_S / reset_after_s
    print(
        f"delivery: {ALERTS:,} distinct alerts at once through a Discord-like bucket of "
        f"{BUCKET_LIMIT} requests per {reset_after_s:g} s"
    )
    if scale != 1:
        print(
            f"  the bucket is scaled: Discord's is {BUCKET_LIMIT} per {DISCORD_RESET_AFTER_S:g} s, "
            f"{ratio(DISCORD_RESET_AFTER_S, reset_after_s)} slower (--reset-after 2.0 runs at Discord's): seconds and "
            "alerts/s are at this scale; requests do not depend on it, and the time ratio hardly does"
        )
    print(f"  {'approach':24} {'requests':>9} {'429s':>6} {'seconds':>9} {'alerts/s':>9}   bucket floor")
    for result in results:
        floor = bucket_floor_s(result.requests, reset_after_s)
        print(
            f"  {result.approach:24} {result.requests:>9,} {result.rate_limited:>6,} {result.seconds:>9.2f} "
            f"{result.alerts_per_second:>9.1f}   {floor:.2f} s for its requests"
        )
    ours, theirs = results
    print(
        f"  ratio     tailhook sends {ratio(ours.requests, theirs.requests)} the requests of one per alert, "
        f"in {ratio(ours.seconds, theirs.seconds)} its time"
    )


def positive_seconds(text: str) -> float:
    seconds = float(text)
    if not seconds > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return seconds


def append_at_once(log: Path, data: bytes) -> float:
    """Append *data* to *log* with one ``write``, as a burst arrives; ``time.monotonic()`` just before it."""
    out = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        started = time.monotonic()
        written = os.write(out, data)
    finally:
        os.close(out)
    assert written == len(data), f"a short write: {written} of {len(data)} bytes"
    return started


def reset_after(parser: argparse.ArgumentParser, argv: Sequence[str]) -> float:
    """*argv*'s ``--reset-after``: the stand-in bucket's window in seconds, scaled unless it says otherwise."""
    parser.add_argument(
        "--reset-after",
        type=positive_seconds,
        default=SCALED_RESET_AFTER_S,
        metavar="SECONDS",
        help=f"the bucket's window in seconds (default {SCALED_RESET_AFTER_S:g}; Discord's: {DISCORD_RESET_AFTER_S:g})",
    )
    return float(parser.parse_args(argv).reset_after)


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.delivery",
        description=f"Requests and time for {ALERTS:,} distinct alerts through a Discord-like rate-limit bucket.",
    )
    reset_after_s = reset_after(parser, argv)
    with tempfile.TemporaryDirectory(prefix="tailhook-bench-") as name:
        results = [tailhook(Path(name), reset_after_s), one_per_alert(reset_after_s)]
    report(results, reset_after_s)


if __name__ == "__main__":
    main(sys.argv[1:])

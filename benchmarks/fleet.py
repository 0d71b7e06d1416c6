"""Fleet mode: 20 tailhooks posting to one webhook, each pacing itself alone against sharing its pacing.

Each configuration starts 20 ``tailhook run`` processes (as 20 sidecars or a
DaemonSet would be: their own state, their own log file, ``probe`` off) that
all post to one webhook of a Discord stand-in (a thread of this process, a
real HTTP server on 127.0.0.1) whose bucket is 5 requests per window, with
Discord's ``X-RateLimit-*`` headers and 429s. Once every daemon has started,
100 distinct alerts are appended to each daemon's log (one ``write`` each,
one after the other), 2,000 in all, each its own storm key (so storm control
lets each through) and nothing summed up (``flood_after: 1h``):

1. alone: each daemon paces itself by the headers it sees, as without
   ``fleet:``;
2. fleet: ``fleet: {redis, name}`` on every daemon, with a real
   ``redis-server`` (the Debian package, on a free loopback port, no
   persistence): one budget per webhook for all 20.

Figures, from the stand-in's records: requests (every POST it answered),
429s among them, messages (the 2xx), and the time from the first ``write``
to the stand-in's accepting the last of the 2,000 alerts. Each run checks
that every alert arrived exactly once and that the stand-in answered nothing
but 2xx and 429; otherwise it stops with an error.

Then, with the same daemons, one storm: the same error 50 times on each
daemon (1,000 events, rule ``e500``: ``window: 5s, max_per_window: 3``).
Figures: the first alerts that reached the channel, the digests (posted, or
edits of a first alert's message), and the events the digests count; each
run checks that alerts and digests account for all 1,000 events.

The window is scaled to 0.2 s, as in ``benchmarks/delivery.py``
(``--reset-after 2.0`` runs at Discord's own pace); requests and 429s do not
depend on the scale, the seconds do. Discord bans an address that collects
10,000 401, 403 or 429 answers in 10 minutes; what counts here is how many
429s a fleet of sidecars collects while delivering the same alerts.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tests.daemon import Daemon, stop_all, wait_until
from tests.discord_standin import ThreadedStandIn, standin_in_thread
from tests.redis_server import redis_server

from benchmarks.delivery import BUCKET_LIMIT, reset_after
from benchmarks.tailing import DAEMON_ENV

DAEMONS = 20
ALERTS_EACH = 100
ALERTS = DAEMONS * ALERTS_EACH
NUMBERED = re.compile(r"pod-(\d+) alert (\d+)")
RULES = r"""
rules:
  - name: failed
    match: 'FAILED (?P<what>pod-\d+ alert \d+)'
    severity: error
    key: '{what}'
    title: 'failed: {what}'
  - name: e500
    match: 'E500 upstream timeout'
    severity: error
    title: 'E500 upstream timeout'
    storm: {window: 5s, max_per_window: 3}
"""
STORM_EACH = 50
STORM_TITLE = "E500 upstream timeout"
DIGEST = re.compile(re.escape(STORM_TITLE) + r" \\?\(\+(\d+) more\\?\)")


@dataclass(frozen=True)
class Cost:
    setup: str
    requests: int
    rate_limited: int
    messages: int
    seconds: float
    storm_alerts: int = 0
    """The storm's first alerts that reached the channel."""
    storm_digests: int = 0
    storm_held: int = 0
    """Events the storm's digests count."""


def config(folder: Path, url: str, fleet: str, host: str) -> Path:
    (folder / "rules.yaml").write_text(RULES.lstrip(), encoding="utf-8")
    (folder / "app.log").touch()
    path = folder / "tailhook.yaml"
    path.write_text(
        textwrap.dedent(f"""
            host: {host}
            state_dir: state
            shutdown_timeout: 2s
            probe: {{mode: off}}
            sources:
              - {{name: app, paths: [app.log], start_at: end}}
            rules:
              paths: [rules.yaml]
            storm: {{window: 60s, max_per_window: 1000, max_keys_per_window: 100000, flood_after: 1h}}
            destinations:
              alerts: {{url: '{url}'}}
            """).lstrip()
        + fleet,
        encoding="utf-8",
    )
    return path


def arrived(discord: ThreadedStandIn) -> Counter[tuple[int, int]]:
    found: Counter[tuple[int, int]] = Counter()
    for message in discord.received:
        for embed in message.payload.get("embeds", []):
            match = NUMBERED.search(embed.get("title", ""))
            if match:
                found[int(match[1]), int(match[2])] += 1
    return found


def run(folder: Path, name: str, reset_after_s: float, redis_url: str | None) -> Cost:
    folder.mkdir()
    fleet = f"fleet: {{redis: '{redis_url}', name: bench}}\n" if redis_url else ""
    with (
        standin_in_thread(bucket_limit=BUCKET_LIMIT, bucket_reset_after=reset_after_s) as discord,
        ExitStack() as stack,
    ):
        daemons = []
        for n in range(DAEMONS):
            home = folder / f"pod-{n}"
            home.mkdir()
            daemon = Daemon(config(home, discord.url(), fleet, f"pod-{n}"), env=DAEMON_ENV)
            stack.callback(daemon.kill)
            daemons.append(daemon.started())
        started = time.monotonic()
        for n, daemon in enumerate(daemons):
            daemon.append(*(f"app[1]: FAILED pod-{n} alert {i}" for i in range(ALERTS_EACH)))
        wait_until(lambda: len(arrived(discord)) >= ALERTS, 60 + 4 * ALERTS * reset_after_s, f"{name}: all alerts")
        seconds = time.monotonic() - started
        counts = arrived(discord)
        statuses = [status for method, _, status in discord.requests if method == "POST"]
        alerts, digests = storm(discord, daemons, name)
        stop_all(daemons)
    if sorted(counts) != [(n, i) for n in range(DAEMONS) for i in range(ALERTS_EACH)] or set(counts.values()) != {1}:
        raise AssertionError(f"{name}: not every alert arrived exactly once")
    others = {status for status in statuses if status not in (200, 429)}
    if others:
        raise AssertionError(f"{name}: the stand-in answered {sorted(others)}")
    return Cost(name, len(statuses), statuses.count(429), statuses.count(200), seconds, alerts, len(digests),
                sum(digests))  # fmt: skip


def storm(discord: ThreadedStandIn, daemons: Sequence[Daemon], name: str) -> tuple[int, list[int]]:
    """The same error ``STORM_EACH`` times on every daemon: the first alerts that reached the channel,
    and the count of each digest (posted, or an edit of a first alert's message)."""
    for daemon in daemons:
        daemon.append(*["app[1]: E500 upstream timeout"] * STORM_EACH)
    total = STORM_EACH * len(daemons)

    def seen() -> tuple[int, list[int]]:
        """First alerts as posted (an edit repeats the embeds of its message it leaves as they are), and
        digests as posted or edited in."""
        posted = [e.get("title", "") for r in discord.received for e in r.payload.get("embeds", [])]
        edited = [e.get("title", "") for r in discord.edits for e in r.payload.get("embeds", [])]
        return posted.count(STORM_TITLE), [int(m[1]) for t in posted + edited if (m := DIGEST.search(t))]

    def accounted() -> int:
        alerts, digests = seen()
        return alerts + sum(digests)

    wait_until(lambda: accounted() >= total, 60, f"{name}: the storm's digests")
    alerts, digests = seen()
    if alerts + sum(digests) != total:
        raise AssertionError(f"{name}: {alerts} alerts and digests of {sum(digests)} for {total} events")
    return alerts, digests


def report(costs: Sequence[Cost], reset_after_s: float) -> None:
    alone, fleet = costs
    print(
        f"fleet: {DAEMONS} tailhooks x {ALERTS_EACH} distinct alerts to one webhook of a Discord-like bucket "
        f"({BUCKET_LIMIT} requests per {reset_after_s:g} s)"
    )
    print(f"  {'configuration':<20} {'requests':>9} {'429s':>6} {'messages':>9} {'seconds':>8}")
    for cost in costs:
        print(
            f"  {cost.setup:<20} {cost.requests:>9,} {cost.rate_limited:>6,} {cost.messages:>9,} {cost.seconds:>8.1f}"
        )
    print(f"  the same error {STORM_EACH} times on each tailhook ({STORM_EACH * DAEMONS:,} events, 3 per 5 s window):")
    for cost in costs:
        print(f"  {cost.setup:<20} {cost.storm_alerts:>4} first alerts, {cost.storm_digests:>3} digests "
              f"counting {cost.storm_held:,}")  # fmt: skip
    share = fleet.rate_limited / max(1, fleet.requests)
    print(
        f"  README: | fleet mode (`python -m benchmarks.fleet`): {DAEMONS} tailhooks x {ALERTS_EACH} distinct alerts "
        f"to one webhook ({BUCKET_LIMIT} requests per {reset_after_s:g} s) | with `fleet:` (Redis): "
        f"{fleet.requests:,} requests, {fleet.rate_limited:,} 429s ({share:.1%}), {fleet.seconds:.1f} s | each alone: "
        f"{alone.requests:,} requests, {alone.rate_limited:,} 429s, {alone.seconds:.1f} s | "
        f"{_fewer(fleet.rate_limited, alone.rate_limited)}; {alone.requests / fleet.requests:.1f}x fewer requests |"
    )
    print(
        f"  README: | fleet storm (`python -m benchmarks.fleet`): the same error {STORM_EACH} times on each of "
        f"{DAEMONS} tailhooks | with `fleet:`: {fleet.storm_alerts} first alerts, {fleet.storm_digests} digest(s) | "
        f"each alone: {alone.storm_alerts} first alerts, {alone.storm_digests} digests | "
        f"{(alone.storm_alerts + alone.storm_digests) / max(1, fleet.storm_alerts + fleet.storm_digests):.0f}x "
        "fewer alerts and digests |"
    )


def _fewer(ours: int, theirs: int) -> str:
    return f"no 429s against {theirs:,}" if ours == 0 else f"{theirs / ours:,.0f}x fewer 429s"


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fleet",
        description=f"{DAEMONS} tailhooks posting to one webhook, alone and as a fleet sharing pacing through Redis.",
    )
    reset_after_s = reset_after(parser, argv)
    with tempfile.TemporaryDirectory(prefix="tailhook-bench-") as name, redis_server(Path(name)) as server:
        costs = [
            run(Path(name) / "alone", "each alone", reset_after_s, None),
            run(Path(name) / "fleet", "fleet (Redis)", reset_after_s, server.url),
        ]
    report(costs, reset_after_s)


if __name__ == "__main__":
    main(sys.argv[1:])

"""Incidents: what a 10,000-event storm across 50 keys costs on Discord, as posts, as digests, as edits.

The storm: 10,000 lines ``… LOUD err-NN write failed on /dev/sdb (ev-NNNNN)``,
50 keys (``err-00`` to ``err-49``) taking turns, 200 lines each, each line
numbered, appended with one ``write``. One rule matches them all; its storm
key is the captured ``err-NN``. Each configuration runs ``tailhook run`` (a
subprocess, as users run it; one file source from its beginning, the
startup probe off, a fresh state directory) against a fresh Discord
stand-in (a thread of this process, a real HTTP server on 127.0.0.1) whose
webhook has a bucket of 5 requests per window for posts and another for
edits, with Discord's ``X-RateLimit-*`` headers and 429s:

1. one message per alert: ``storm: {window: 60s, max_per_window: 1000000,
   max_keys_per_window: 100000}``, ``storm_updates: post``: every event is an
   alert (tailhook still puts up to 10 in a message);
2. digests only: ``storm: {window: 10s, max_per_window: 1}``,
   ``storm_updates: post``: each key's first alert, then at the window's end
   a digest per key ("(+199 more)");
3. edits: the same storm with ``storm_updates: edit`` on the destination:
   each key's first alert is posted, then its message is edited with the
   storm's count (at most every ``storm.update_every``, 5 s, the default) and
   with the digest at the window's end.

The window is 10 s (Discord-scale storms use minutes) so that the run takes a
couple of minutes; with every event in one burst, the window's length only
moves the digests later. All three set ``storm.flood_after: 1h``: by default
tailhook sums up the alerts that wait longer than 30 s at Discord's pace into
one summary per rule, so the first configuration would not send one message
per alert at all; the other two never have more than 50 alerts waiting.

Figures, from the stand-in's records: messages posted (accepted POSTs),
edits (accepted PATCHes), requests and 429s (every request it answered), the
embeds the posts carried and those the edits carried (an edit sends the whole
message: every embed of the keys that share it), and the time from the
moment before the ``write`` to the moment the stand-in accepted what
completed the storm's record: the last of the 10,000 alerts (1), the last
key's digest, posted (2) or edited in (3). Then, before the daemon stops,
tailhook's spool is asked until nothing waits in it, so nothing was left to
send, and the configuration is checked: (1) each of the 10,000 events
arrived exactly once, 200 per key; (2) each key's first alert and one digest
"(+199 more)" arrived, nothing else; (3) each key's first alert was posted
once, and each key's embed, as its message stands at the end, says "(+199
more)" (Discord Markdown escapes the parentheses). A run that fails a check,
or that the stand-in answered with anything but 2xx and 429, stops with an
error.

Discord's window is about 2 s: one message per alert, 1,000 messages of 10
alerts, would take about 400 s at that pace. So the window is scaled to
0.2 s, as in ``benchmarks/delivery.py`` (``--reset-after 2.0`` runs at
Discord's). The requests, messages and edits do not depend on the scale:
the 50 first alerts share 5 messages; one edit carries the updates of every
key of its message (due 5 s into the burst), one its digests; a message's
updates wait ``update_every`` after its last change, its digests do not.
The seconds do depend on it, and for the edits they are mostly the
window's 10 s.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import tempfile
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.daemon import Daemon, run_cli, wait_until
from tests.discord_standin import Received, ThreadedStandIn, standin_in_thread

from benchmarks.delivery import (
    BUCKET_LIMIT,
    DISCORD_RESET_AFTER_S,
    append_at_once,
    bucket_floor_s,
    reset_after,
)
from benchmarks.tailing import DAEMON_ENV, running

EVENTS = 10_000
KEYS = 50
PER_KEY = EVENTS // KEYS
WINDOW_S = 10
"""The storm window of configurations 2 and 3, in seconds."""
UPDATE_EVERY_S = 5
"""``storm.update_every`` (its default), in seconds: how often a storm's message is edited, at most."""
EMBEDS_PER_MESSAGE = 10
STATUSES_OK = frozenset({200, 204, 429})
KEY = re.compile(r"err-(\d+)")
EVENT = re.compile(r"ev-(\d+)")
MORE = re.compile(r"\\?\(\+([\d,]+) more\\?\)")
"""A digest's title: "loud: err-07 \\(+199 more\\)", the parentheses escaped for Discord's Markdown."""


# ── the storm and the configurations ────────────────────────────────────────


RULES = r"""
rules:
  - name: loud
    match: 'LOUD (?P<code>err-\d+) (?P<what>.*)'
    severity: error
    key: '{code}'
    title: 'loud: {code}'
"""


def event_line(n: int) -> str:
    return f"Nov 30 08:30:00 web-1 app[4242]: LOUD err-{n % KEYS:02d} write failed on /dev/sdb (ev-{n:05d})\n"


@dataclass(frozen=True)
class Setup:
    name: str
    storm: str
    """The main file's ``storm`` section."""
    storm_updates: str
    """The destination's ``storm_updates``."""
    finished: Callable[[ThreadedStandIn], float | None]
    """When the stand-in accepted what completed the storm's record; ``None`` until it did."""
    check: Callable[[ThreadedStandIn], None]
    """Raises AssertionError if what arrived is not what this configuration should deliver."""


def tailhook_config(setup: Setup, url: str) -> str:
    """One file source from its beginning, no probe, the stand-in as the only destination."""
    return textwrap.dedent(
        f"""
        state_dir: state
        shutdown_timeout: 2s
        probe: {{mode: 'off'}}
        sources:
          - {{name: app, paths: [app.log], start_at: beginning}}
        rules:
          paths: [rules.yaml]
        storm: {setup.storm}
        destinations:
          alerts: {{url: '{url}', storm_updates: {setup.storm_updates}}}
        """
    ).lstrip()


# ── what the stand-in saw ───────────────────────────────────────────────────


def embeds_of(received: Received) -> list[dict[str, Any]]:
    """The embeds a post or an edit carried."""
    return list(received.payload.get("embeds") or [])


def key_of(embed: dict[str, Any]) -> int:
    found = KEY.search(str(embed.get("title", "")))
    if found is None:
        raise AssertionError(f"an embed of no key: {embed.get('title')!r}")
    return int(found[1])


def held_of(embed: dict[str, Any]) -> int | None:
    """A digest's "(+N more)", or ``None`` for an alert or an update."""
    found = MORE.search(str(embed.get("title", "")))
    return None if found is None else int(found[1].replace(",", ""))


def alert_arrivals(discord: ThreadedStandIn) -> dict[int, float]:
    """When each event's alert first arrived, by event number."""
    first: dict[int, float] = {}
    for message in discord.received:
        for embed in embeds_of(message):
            found = EVENT.search(str(embed.get("description", "")))
            if found and held_of(embed) is None:
                first.setdefault(int(found[1]), message.time)
    return first


def every_alert_arrived(discord: ThreadedStandIn) -> float | None:
    received = discord.received
    if sum(len(embeds_of(message)) for message in received) < EVENTS:
        return None  # the cheap test first: it is asked every 20 ms
    first = alert_arrivals(discord)
    return max(first.values()) if len(first) == EVENTS else None


def digest_arrivals(discord: ThreadedStandIn) -> dict[int, float]:
    """When each key's full digest ("+199 more") first arrived, posted or edited in."""
    first: dict[int, float] = {}
    for request in sorted([*discord.received, *discord.edits], key=lambda r: r.time):
        for embed in embeds_of(request):
            if held_of(embed) == PER_KEY - 1:
                first.setdefault(key_of(embed), request.time)
    return first


def every_digest_arrived(discord: ThreadedStandIn) -> float | None:
    first = digest_arrivals(discord)
    return max(first.values()) if len(first) == KEYS else None


def check_alerts(discord: ThreadedStandIn) -> None:
    """Every event exactly once, 200 per key; no digest, no edit."""
    events: collections.Counter[int] = collections.Counter()
    keys: collections.Counter[int] = collections.Counter()
    for message in discord.received:
        for embed in embeds_of(message):
            found = EVENT.search(str(embed.get("description", "")))
            if found is None or held_of(embed) is not None:
                raise AssertionError(f"one message per alert: not an alert: {embed.get('title')!r}")
            events[int(found[1])] += 1
            keys[key_of(embed)] += 1
    twice = sum(1 for count in events.values() if count > 1)
    assert set(events) == set(range(EVENTS)) and not twice, (len(events), twice)
    assert set(keys.values()) == {PER_KEY} and len(keys) == KEYS, keys
    assert not discord.edits, len(discord.edits)


def check_digests(discord: ThreadedStandIn) -> None:
    """Each key's first alert and its digest "(+199 more)", posted; nothing else."""
    alerts: collections.Counter[int] = collections.Counter()
    digests: collections.Counter[int] = collections.Counter()
    for message in discord.received:
        for embed in embeds_of(message):
            held = held_of(embed)
            if held is None:
                alerts[key_of(embed)] += 1
            else:
                assert held == PER_KEY - 1, embed.get("title")
                digests[key_of(embed)] += 1
    assert alerts == digests == collections.Counter(range(KEYS)), (alerts, digests)
    assert not discord.edits, len(discord.edits)


def check_edits(discord: ThreadedStandIn) -> None:
    """Each key's first alert posted once, every edit of a posted message, and each key's embed, as
    its message stands now, its digest "(+199 more)"."""
    posted = collections.Counter(key_of(embed) for message in discord.received for embed in embeds_of(message))
    assert posted == collections.Counter(range(KEYS)), posted
    ids = {message.message_id for message in discord.received}
    assert all(edit.message_id in ids for edit in discord.edits), "an edit of a message never posted"
    final = {key_of(embed): held_of(embed) for message in discord.messages.values() for embed in message.embeds}
    assert final == dict.fromkeys(range(KEYS), PER_KEY - 1), final


SETUPS = (
    Setup(
        "one message per alert",
        "{window: 60s, max_per_window: 1000000, max_keys_per_window: 100000, flood_after: 1h}",
        "post",
        every_alert_arrived,
        check_alerts,
    ),
    Setup(
        "digests only",
        f"{{window: {WINDOW_S}s, max_per_window: 1, flood_after: 1h}}",
        "post",
        every_digest_arrived,
        check_digests,
    ),
    Setup(
        "edits",
        f"{{window: {WINDOW_S}s, max_per_window: 1, update_every: {UPDATE_EVERY_S}s, flood_after: 1h}}",
        "edit",
        every_digest_arrived,
        check_edits,
    ),
)


# ── a run ───────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Cost:
    setup: str
    posts: int
    """Messages posted: POSTs the stand-in accepted."""
    edits: int
    """PATCHes it accepted."""
    requests: int
    """Every request it answered, 429s included."""
    rate_limited: int
    embeds_posted: int
    embeds_edited: int
    """Embeds the edits carried: each edit sends every embed of its message."""
    seconds: float
    """From the moment before the ``write`` to the stand-in accepting what completed the record."""
    updates: int = 0
    """Of the edits, those that sent a storm's count under way."""
    late_updates: int = 0
    """Of those, the ones accepted more than the window after the ``write``: after their key's window
    had closed, with its digest waiting behind them (the windows opened within the burst's first
    moment, so this is close)."""
    digest_edits: int = 0
    """Of the edits, those that sent a digest (the others changed nothing)."""


def timeout_s(reset_after_s: float) -> float:
    """Twice what the largest configuration's requests need at this window, and some: past it, something is wrong."""
    return WINDOW_S + 2 * bucket_floor_s(EVENTS // EMBEDS_PER_MESSAGE + 2 * KEYS, reset_after_s) + 60


def spool_waiting(config: Path) -> int:
    """How many notifications wait in tailhook's spool, from ``tailhook spool status --json``."""
    result = run_cli("spool", "status", "--json", "-c", str(config), env=DAEMON_ENV)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["dead_letters"] == 0, status
    return int(status["waiting"])


def storm(folder: Path, setup: Setup, reset_after_s: float) -> Cost:
    folder.mkdir()
    log = folder / "app.log"
    log.touch()
    (folder / "rules.yaml").write_text(RULES.lstrip(), encoding="utf-8")
    config = folder / "tailhook.yaml"
    with standin_in_thread(bucket_limit=BUCKET_LIMIT, bucket_reset_after=reset_after_s) as discord:
        config.write_text(tailhook_config(setup, discord.url()), encoding="utf-8")
        with running(config) as daemon:
            daemon.wait_for_log("started on", timeout=60)
            started = append_at_once(log, "".join(event_line(n) for n in range(EVENTS)).encode())
            wait_for(daemon, discord, setup, timeout_s(reset_after_s))
            wait_until(lambda: spool_waiting(config) == 0, 30, f"{setup.name}: an empty spool")
        setup.check(discord)
        return tally(discord, setup, started)


def wait_for(daemon: Daemon, discord: ThreadedStandIn, setup: Setup, timeout: float) -> None:
    """Until the storm's record is complete; on timeout, what arrived and the end of tailhook's log."""
    try:
        wait_until(lambda: setup.finished(discord) is not None, timeout, f"{setup.name}: the storm's record")
    except AssertionError as exc:
        statuses = collections.Counter((method, status) for method, _, status in discord.requests)
        raise AssertionError(
            f"{exc}: {len(discord.received)} posts, {len(discord.edits)} edits; requests by method and status: "
            f"{dict(statuses)}\ntailhook's log ends:\n{daemon.stderr[-4000:]}"
        ) from None


def tally(discord: ThreadedStandIn, setup: Setup, started: float) -> Cost:
    """The figures of one run, from the stand-in's records; refuses a run with answers other than 2xx and 429."""
    statuses = [status for _, _, status in discord.requests]
    others = collections.Counter(status for status in statuses if status not in STATUSES_OK)
    if others:
        raise AssertionError(f"{setup.name}: the stand-in refused requests: {dict(others)}")
    finished = setup.finished(discord)
    assert finished is not None
    kinds = edit_kinds(discord)
    updates = [at for at, kind in kinds if kind == "update"]
    return Cost(
        setup=setup.name,
        posts=len(discord.received),
        edits=len(discord.edits),
        requests=len(statuses),
        rate_limited=statuses.count(429),
        embeds_posted=sum(len(embeds_of(message)) for message in discord.received),
        embeds_edited=sum(len(embeds_of(edit)) for edit in discord.edits),
        seconds=finished - started,
        updates=len(updates),
        late_updates=sum(1 for at in updates if at - started > WINDOW_S),
        digest_edits=sum(1 for _, kind in kinds if kind == "digest"),
    )


def edit_kinds(discord: ThreadedStandIn) -> list[tuple[float, str]]:
    """When each edit arrived and what it changed, found by comparing its message with what it showed
    before: ``update`` (a count under way), ``digest``, or ``nothing``."""
    shown = {message.message_id: embeds_of(message) for message in discord.received}
    kinds = []
    for edit in sorted(discord.edits, key=lambda e: e.time):
        before, after = shown.get(edit.message_id, []), embeds_of(edit)
        shown[edit.message_id] = after
        changed = [embed for slot, embed in enumerate(after) if slot >= len(before) or before[slot] != embed]
        if not changed:
            kinds.append((edit.time, "nothing"))
        else:
            kinds.append((edit.time, "update" if any(held_of(embed) is None for embed in changed) else "digest"))
    return kinds


# ── the report ──────────────────────────────────────────────────────────────


def times(ours: int, theirs: int) -> str:
    """*ours* against *theirs* in words: "190x fewer", "10x more", "as many"."""
    if ours == theirs:
        return "as many"
    more, word = (ours / theirs, "more") if ours > theirs else (theirs / ours, "fewer")
    return f"{more:,.0f}x {word}" if more >= 10 else f"{more:.1f}x {word}"


def report(costs: Sequence[Cost], reset_after_s: float) -> None:
    scale = DISCORD_RESET_AFTER_S / reset_after_s
    print(
        f"incidents: a storm of {EVENTS:,} events across {KEYS} keys ({PER_KEY} each, interleaved) through "
        f"tailhook run, to a Discord-like bucket of {BUCKET_LIMIT} requests per {reset_after_s:g} s (posts and edits "
        f"each); window {WINDOW_S} s for digests and edits, update_every {UPDATE_EVERY_S} s"
    )
    if scale != 1:
        print(
            f"  the bucket is scaled: Discord's is {BUCKET_LIMIT} per {DISCORD_RESET_AFTER_S:g} s "
            "(--reset-after 2.0 runs at Discord's): seconds are at this scale; messages, edits and requests do not "
            "depend on it"
        )
    print(
        f"  {'configuration':24} {'messages':>9} {'edits':>6} {'requests':>9} {'429s':>5} "
        f"{'embeds posted':>14} {'in edits':>9} {'seconds':>8}"
    )
    for cost in costs:
        print(
            f"  {cost.setup:24} {cost.posts:>9,} {cost.edits:>6,} {cost.requests:>9,} {cost.rate_limited:>5,} "
            f"{cost.embeds_posted:>14,} {cost.embeds_edited:>9,} {cost.seconds:>8.1f}"
        )
    each, digests, edits = costs
    print(
        f"  edits: of the {edits.edits}, {edits.updates} sent a count under way ({edits.late_updates} of them more "
        f"than {WINDOW_S} s after the write: their window had closed, the digest waiting behind), "
        f"{edits.digest_edits} a digest, {edits.edits - edits.updates - edits.digest_edits} changed nothing"
    )
    for other in (each, digests):
        print(
            f"  ratio     edits against {other.setup}: {times(edits.posts, other.posts)} messages, "
            f"{times(edits.requests, other.requests)} requests"
        )
    scaled = (
        f"{BUCKET_LIMIT} requests per window, scaled to {reset_after_s:g} s"
        if scale != 1
        else (f"Discord's {BUCKET_LIMIT} requests per {reset_after_s:g} s")
    )
    print(
        f"  README: | incidents: a storm of {EVENTS:,} events across {KEYS} keys through a Discord-like bucket "
        f"({scaled}; window {WINDOW_S} s, update_every {UPDATE_EVERY_S} s) | edits (`storm_updates: edit`): "
        f"{edits.posts:,} messages, {edits.requests:,} requests ({edits.edits:,} edits), {edits.rate_limited} 429s, "
        f"{edits.seconds:.1f} s | one message per alert: {each.posts:,} messages, {each.requests:,} requests, "
        f"{each.seconds:.1f} s; digests only: {digests.posts:,} messages, {digests.requests:,} requests, "
        f"{digests.seconds:.1f} s | {times(edits.posts, each.posts)} messages and "
        f"{times(edits.requests, each.requests)} requests than one per alert; {times(edits.posts, digests.posts)} "
        f"messages and {times(edits.requests, digests.requests)} requests than digests only |"
    )


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.incidents",
        description=f"Messages and requests a storm of {EVENTS:,} events across {KEYS} keys costs on Discord.",
    )
    reset_after_s = reset_after(parser, argv)
    with tempfile.TemporaryDirectory(prefix="tailhook-bench-") as name:
        costs = [storm(Path(name) / f"setup-{n}", setup, reset_after_s) for n, setup in enumerate(SETUPS, 1)]
    report(costs, reset_after_s)


if __name__ == "__main__":
    main(sys.argv[1:])

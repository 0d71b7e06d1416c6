"""Floods through the daemon and the Discord stand-in (its real limit: 5 requests per 2 s)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.daemon import Daemon, wait_until, write_config
from tests.discord_standin import ThreadedStandIn, standin_in_thread

pytestmark = pytest.mark.timeout(120)


def ssh(address: str) -> str:
    return f"Nov 23 10:00:00 web-1 sshd[812]: Failed password for root from {address} port 22 ssh2"


def test_ten_thousand_identical_errors_give_the_first_alerts_and_one_exact_digest(tmp_path: Path) -> None:
    with standin_in_thread() as discord:
        config = write_config(tmp_path, url=discord.url(), storm="{window: 5s, max_per_window: 3}")
        daemon = Daemon(config).started()
        try:
            for _ in range(10):  # 10,000 lines, written within 2 s
                daemon.append(*(ssh("203.0.113.7") for _ in range(1000)))
            alert = "SSH password failure for root from 203.0.113.7"
            digest = f"{alert} \\(+9997 more\\)"  # Markdown escaped in the embed
            wait_until(lambda: digest in shown(discord), timeout=30, what="the digest, edited in")
        finally:
            assert daemon.stop() == 0
        now = shown(discord)
    # the three first alerts were posted; the storm's count went into the last one's embed, by edits
    assert [embed["title"] for embed in discord.embeds] == [alert] * 3
    assert now == [alert] * 2 + [digest]
    assert 1 <= len(discord.edits) <= 4


def shown(discord: ThreadedStandIn) -> list[str]:
    """The titles of every embed as the channel shows them now."""
    return [embed["title"] for message in discord.messages.values() for embed in message.embeds]


def test_five_thousand_distinct_keys_are_summed_up_and_a_critical_line_behind_them_arrives_within_ten_seconds(
    tmp_path: Path,
) -> None:
    """Each line a first alert of its own key: far more than Discord takes in storm.flood_after (30 s at
    5 requests per 2 s, 10 alerts each), so they are summed up, exactly, and the channel stays usable."""
    with standin_in_thread() as discord:
        # Every key a window of its own (past the default 1,000 keys of a rule at once, new keys share
        # its overflow key): the flood reaches the spool whole, and the dispatcher sums it up.
        storm = "{window: 60s, max_per_window: 3, max_keys_per_window: 10000}"
        config = write_config(tmp_path, url=discord.url(), storm=storm)
        daemon = Daemon(config).started()
        try:
            started = time.monotonic()
            daemon.append(*(ssh(f"198.18.{n // 250}.{n % 250}") for n in range(5000)))
            wait_until(lambda: len(discord.embeds) >= 1, timeout=30, what="the flood to start arriving")
            written = time.monotonic()
            daemon.append("LOUD the database is on fire")
            wait_until(
                lambda: any(e["title"] == "loud: the database is on fire" for e in discord.embeds),
                timeout=10,
                what="the critical alert",
            )
            arrived = time.monotonic() - written

            def accounted() -> int:
                alone = sum(e["title"].startswith("SSH password failure") for e in discord.embeds)
                return alone + sum(
                    int(m[1].replace(",", "")) for e in discord.embeds if (m := SUMMED.match(e["title"]))
                )

            wait_until(lambda: accounted() >= 5000, timeout=30, what="every alert sent or summed up")
            elapsed = time.monotonic() - started
            messages = sum(1 for method, _, status in discord.requests if method == "POST" and status == 200)
        finally:
            assert daemon.stop() == 0
    assert arrived < 10
    assert accounted() == 5000  # exact: each alert once, alone or in a summary
    assert elapsed < 60 and messages <= 40  # the whole flood, well within its first minute
    summaries = [e for e in discord.embeds if SUMMED.match(e["title"])]
    assert summaries and all("Most frequent:" in e["description"] for e in summaries)


def test_a_scan_from_three_thousand_addresses_is_one_storm_of_its_rule_with_an_exact_count(tmp_path: Path) -> None:
    """Past 1,000 keys of one rule with a window open (the default), new keys share the rule's overflow
    key: its first alerts go out, its digest counts the rest; sent, summed up or digested, each line once."""
    with standin_in_thread() as discord:
        config = write_config(tmp_path, url=discord.url(), storm="{window: 5s, max_per_window: 3}")
        daemon = Daemon(config).started()
        try:
            daemon.append(*(ssh(f"198.18.{n // 250}.{n % 250}") for n in range(3000)))

            def accounted() -> int:
                titles = [e["title"] for e in discord.embeds]
                alone = sum(t.startswith("SSH password failure") and not DIGESTED.search(t) for t in titles)
                held = sum(int(m[1]) for e in discord.embeds if (m := DIGESTED.search(e["title"])))
                summed = sum(int(m[1].replace(",", "")) for e in discord.embeds if (m := SUMMED.match(e["title"])))
                return alone + held + summed

            wait_until(lambda: accounted() >= 3000, timeout=60, what="every line sent, summed up or digested")
        finally:
            assert daemon.stop() == 0
    assert accounted() == 3000
    (digest,) = [e for e in discord.embeds if DIGESTED.search(e["title"])]
    assert "at most 1,000 keys of a rule at once" in digest["description"]
    assert int(DIGESTED.search(digest["title"])[1]) == 1997  # every line past the first 1,003 alerts


DIGESTED = re.compile(r" \\\(\+(\d+) more\\\)$")
SUMMED = re.compile(r"^ssh-failure: ([\d,]+) alerts? summed up, from [\d,]+ keys?$")

"""Floods through the daemon and the Discord stand-in (its real limit: 5 requests per 2 s)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.daemon import Daemon, wait_until, write_config
from tests.discord_standin import standin_in_thread

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
            embeds = discord.wait_for_embeds(4, timeout=30)
        finally:
            assert daemon.stop() == 0
    titles = [embed["title"] for embed in embeds]
    alert = "SSH password failure for root from 203.0.113.7"
    assert titles == [alert] * 3 + [f"{alert} \\(+9997 more\\)"]  # Markdown escaped in the embed
    assert len(discord.embeds) == 4


def test_a_critical_line_behind_a_flood_of_five_thousand_distinct_keys_arrives_within_ten_seconds(
    tmp_path: Path,
) -> None:
    with standin_in_thread() as discord:
        config = write_config(tmp_path, url=discord.url(), storm="{window: 60s, max_per_window: 3}")
        daemon = Daemon(config).started()
        try:
            daemon.append(*(ssh(f"198.18.{n // 250}.{n % 250}") for n in range(5000)))
            wait_until(lambda: len(discord.embeds) >= 10, timeout=30, what="the flood to start arriving")
            written = time.monotonic()
            daemon.append("LOUD the database is on fire")
            wait_until(
                lambda: any(e["title"] == "loud: the database is on fire" for e in discord.embeds),
                timeout=10,
                what="the critical alert",
            )
            assert time.monotonic() - written < 10
            assert len(discord.embeds) < 5000  # it came before the flood was through
        finally:
            daemon.kill()

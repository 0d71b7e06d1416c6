"""The daily report through the running daemon: made from its own metrics, stored in its spool,
delivered to the Discord stand-in. The daemon runs in-process (``App.run``) so the test can ask for
the report now instead of waiting for its time of day."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tailhook.app import App
from tailhook.config import load_config
from tests.daemon import write_config
from tests.discord_standin import DiscordStandIn

pytestmark = pytest.mark.timeout(60)


async def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def embeds(discord: DiscordStandIn) -> list[dict[str, Any]]:
    return [embed for message in discord.received for embed in message.payload.get("embeds", [])]


async def test_the_report_says_what_is_followed_and_what_the_day_held(tmp_path: Path) -> None:
    discord = DiscordStandIn()
    await discord.start()
    try:
        path = write_config(
            tmp_path,
            url=discord.url(),
            storm="{window: 10m, max_per_window: 1}",
            extra="heartbeat:\n  report: {to: alerts, at: '04:00'}\n",
        )
        (tmp_path / "app.log").write_text(
            "LOUD disk\nLOUD disk\nLOUD disk\nFailed password for root from 192.0.2.7 port 22\n"
        )
        app = App(load_config(path))
        running = asyncio.create_task(app.run())
        await wait_for(lambda: len(embeds(discord)) == 2)  # the two first alerts: LOUD disk once, ssh once
        assert app.report is not None
        await wait_for(lambda: app.pipeline.storm.held_total == 2)  # the other two LOUD disk

        assert await app.report.report_now()
        await wait_for(lambda: len(embeds(discord)) == 3)
        report = embeds(discord)[2]
        app._stopping.set()
        assert await running == 0
    finally:
        await discord.stop()

    assert report["title"] == f"tailhook on {app.config.host}: still watching 1 file; 0 waiting"
    text = report["description"]
    assert text.startswith("Since the start at ")
    assert "2 alerts: 1 critical, 1 error" in text
    assert "anything-loud: 1 critical" in text and "ssh-failure: 1 error" in text
    assert "Largest storms \\(events held back\\):\n• anything-loud: 2" in text  # parentheses escaped for Discord
    assert "Dropped" not in text and "Dead letters" not in text

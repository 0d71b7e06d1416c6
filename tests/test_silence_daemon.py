"""Silences through the running daemon: added and expired from the command line while it runs,
alerts held and counted, one note at the end; a silence of the config file; critical alerts pass."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import Daemon, metrics, run_cli, wait_until, write_config
from tests.discord_standin import ThreadedStandIn, standin_in_thread

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def discord() -> Iterator[ThreadedStandIn]:
    with standin_in_thread() as standin:
        yield standin


def ssh(n: int) -> str:
    return f"Nov 23 10:00:00 web-1 sshd[812]: Failed password for root from 198.51.100.{n} port 22 ssh2"


def test_a_silence_added_while_the_daemon_runs_holds_alerts_until_expired_then_says_what_it_held(
    tmp_path: Path, discord: ThreadedStandIn
) -> None:
    config = write_config(tmp_path, url=discord.url(), extra="http: {listen: '127.0.0.1:0'}\n")
    daemon = Daemon(config).started()
    try:
        added = run_cli(
            "silence", "add", "-c", str(config), "--rule", "ssh-failure", "--for", "2h", "--reason", "deploy"
        )
        assert added.returncode == 0, added.stderr
        (silence,) = json.loads(run_cli("silence", "list", "-c", str(config), "--json").stdout)
        active = f'tailhook_silence_active{{silence="{silence["id"]}"}}'
        wait_until(lambda: metrics(daemon).get(active) == 1, what="the daemon to see the silence")
        daemon.append(ssh(1))
        wait_until(lambda: metrics(daemon).get("tailhook_silenced_total") == 1, what="the alert to be held")
        daemon.append(ssh(2), ssh(3), "LOUD still goes out")
        discord.wait_for_embeds(1)
        wait_until(lambda: metrics(daemon).get("tailhook_silenced_total") == 3, what="three alerts held")
        assert [embed["title"] for embed in discord.embeds] == ["loud: still goes out"]

        expired = run_cli("silence", "expire", "-c", str(config), silence["id"])
        assert expired.returncode == 0, expired.stderr
        (note,) = [e for e in discord.wait_for_embeds(2) if e["title"] != "loud: still goes out"]
        assert note["title"].startswith("3 alerts held during 'deploy'")
        assert "ssh-failure 3" in note["description"]
        daemon.append(ssh(4))  # after the silence: sent
        assert discord.wait_for_embeds(3)[-1]["title"] == "SSH password failure for root from 198.51.100.4"
    finally:
        assert daemon.stop() == 0

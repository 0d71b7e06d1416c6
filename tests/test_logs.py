"""--log-format json: one JSON object per line, through the daemon, with no secret in it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.daemon import Daemon, write_config
from tests.discord_standin import standin_in_thread


def test_json_logs_parse_line_by_line_and_hold_no_token(tmp_path: Path) -> None:
    with standin_in_thread() as discord:
        config = write_config(tmp_path, url=discord.url())
        daemon = Daemon(config, "--log-format", "json").started()
        try:
            daemon.append("LOUD the disk is on fire")
            discord.wait_for_embeds(1, timeout=30)
        finally:
            assert daemon.stop() == 0
        token = discord.url().rsplit("/", 1)[-1]
    lines = daemon.stderr.splitlines()
    entries = [json.loads(line) for line in lines]  # every line, or this raises
    assert len(entries) >= 3
    assert all(set(entry) >= {"time", "level", "logger", "message"} for entry in entries)
    assert all(entry["time"].endswith("Z") and entry["level"] in {"debug", "info", "warning", "error"}
               for entry in entries)  # fmt: skip
    assert any("started on" in entry["message"] for entry in entries)
    assert token not in daemon.stderr

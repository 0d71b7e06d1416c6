"""A Discord outage: alerts wait in the spool, then all arrive, in order, within the rate limits."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from tests.daemon import Daemon, wait_until, write_config
from tests.discord_standin import standin_in_thread

ALERTS = 1000
NUMBERED = re.compile(r"^loud: outage (\d+)$")


def spooled(state_dir: Path) -> int:
    """How many notifications wait in the daemon's spool, read as another process would."""
    try:
        with sqlite3.connect(f"file:{state_dir / 'spool.sqlite3'}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM notifications").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def read_to_the_end(state_dir: Path, log: Path) -> bool:
    """Whether the daemon's checkpoint for *log* says every line of it was read and committed."""
    try:
        with sqlite3.connect(f"file:{state_dir / 'spool.sqlite3'}?mode=ro", uri=True, timeout=5) as db:
            row = db.execute("SELECT value FROM checkpoints WHERE key = ?", (str(log),)).fetchone()
    except sqlite3.OperationalError:
        return False
    return row is not None and json.loads(row[0])["offset"] == log.stat().st_size


@pytest.mark.timeout(180)
def test_a_thousand_alerts_survive_an_outage(tmp_path: Path) -> None:
    with standin_in_thread(bucket_limit=50, bucket_reset_after=1.0) as discord:
        discord.set_status(503)
        daemon = Daemon(write_config(tmp_path, url=discord.url(), extra="probe: {mode: off}\n")).started()
        try:
            daemon.append(*(f"LOUD outage {n}" for n in range(ALERTS)))
            wait_until(lambda: spooled(tmp_path / "state") >= ALERTS, timeout=30, what="every alert in the spool")
            daemon.wait_for_log("Discord answered 503")
            discord.set_status(None)
            discord.drop_next()  # the first try after the outage meets a dropped connection
            wait_until(lambda: len(discord.embeds) >= ALERTS, timeout=120, what=f"all {ALERTS} alerts")
        finally:
            assert daemon.stop() == 0

        order = [int(NUMBERED.match(e["title"]).group(1)) for e in discord.embeds]  # type: ignore[union-attr]
        statuses = [status for method, _, status in discord.requests if method == "POST"]

    assert order == list(range(ALERTS))  # all of them, once each, in order
    assert statuses.count(429) <= 5  # paced by the bucket headers, not by running into 429s
    assert statuses.count(200) <= ALERTS // 10 + 10  # batched: up to ten alerts to a message
    assert spooled(tmp_path / "state") == 0
    assert "Traceback" not in daemon.stderr


@pytest.mark.timeout(180)
def test_a_full_spool_keeps_every_critical_and_says_what_it_dropped(tmp_path: Path) -> None:
    with standin_in_thread(bucket_limit=50, bucket_reset_after=1.0) as discord:
        discord.set_status(503)
        config = write_config(tmp_path, url=discord.url(), extra="probe: {mode: off}\nspool: {max_bytes: 200KiB}\n")
        daemon = Daemon(config).started()
        try:
            lines = []
            for n in range(100):  # one critical among every six info alerts of 400+ bytes
                lines.append(f"LOUD keep {n}")
                lines.extend(f"CHATTER flood {6 * n + i} {'x' * 400}" for i in range(6))
            daemon.append(*lines)
            wait_until(lambda: read_to_the_end(tmp_path / "state", daemon.log), timeout=30, what="the flood read")
            discord.set_status(None)
            wait_until(
                lambda: any("dropped while the spool was full" in e["title"] for e in discord.embeds),
                timeout=120,
                what="the drop announcement",
            )  # fmt: skip
            wait_until(lambda: spooled(tmp_path / "state") == 0, timeout=60, what="an empty spool")
        finally:
            assert daemon.stop() == 0

        titles = [e["title"] for e in discord.embeds]

    kept = {t for t in titles if t.startswith("loud: keep ")}
    chatter = [t for t in titles if t.startswith("chatter: flood ")]
    (announcement,) = [t for t in titles if "dropped while the spool was full" in t]
    dropped = int(announcement.split()[0])
    assert kept == {f"loud: keep {n}" for n in range(100)}  # every critical arrived
    assert dropped > 0 and len(chatter) + dropped == 600  # each info alert arrived or was counted
    assert announcement == f"{dropped} info notifications dropped while the spool was full"

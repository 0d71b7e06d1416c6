"""Storm control across restarts: its windows live in the spool, not in the process."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.daemon import Daemon, wait_until, write_config

pytestmark = pytest.mark.timeout(90)

ALERT = "   loud: disk full\n"
DIGEST = "   loud: disk full (+3 more)\n"


def run(config: Path) -> Daemon:
    daemon = Daemon(config)
    try:
        return daemon.started()
    except BaseException:
        daemon.kill()
        raise


def processed(daemon: Daemon, marker: str) -> None:
    """Append a line of its own key and wait for its alert: every earlier line has been through the rules."""
    daemon.append(f"LOUD {marker}")
    wait_until(lambda: f"   loud: {marker}\n" in daemon.stdout, what=f"the {marker} alert")


def windows(tmp_path: Path) -> dict[str, tuple[int, int]]:
    with sqlite3.connect(tmp_path / "state" / "spool.sqlite3") as db:
        rows = db.execute(
            "SELECT key, sent, held FROM storm_keys WHERE rule = 'anything-loud' AND opened IS NOT NULL"
        ).fetchall()
    return {key: (sent, held) for key, sent, held in rows}


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_a_restart_in_a_storm_neither_repeats_alerts_nor_forgets_what_was_held(tmp_path: Path, stop: str) -> None:
    config = write_config(tmp_path, storm="{window: 1h, max_per_window: 2}")
    daemon = run(config)
    daemon.append(*["LOUD disk full"] * 3)
    processed(daemon, "first run")
    assert daemon.stdout.count(ALERT) == 2  # the third is held
    if stop == "sigterm":
        assert daemon.stop() == 0
    else:
        daemon.kill()
    assert windows(tmp_path)["disk full"] == (2, 1)

    daemon = run(config)
    daemon.append(*["LOUD disk full"] * 2)
    processed(daemon, "second run")
    assert daemon.stop() == 0
    assert ALERT not in daemon.stdout, "the window did not survive the restart"
    assert windows(tmp_path)["disk full"] == (2, 3)

    # Down longer than the (now shorter) window: it closes at the first tick, and its digest counts both runs.
    config = write_config(tmp_path, storm="{window: 1s, max_per_window: 2}")
    daemon = run(config)
    wait_until(lambda: DIGEST in daemon.stdout, what="the digest of the window held over two runs")
    wait_until(lambda: "disk full" not in windows(tmp_path), what="the closed window to leave the spool")
    assert daemon.stop() == 0
    assert ALERT not in daemon.stdout

"""A spool on a disk that fills up: no crash, no corruption, nothing lost once space returns.

The state_dir is an 8 MiB tmpfs mounted by the test (as root), part of it taken
by a filler file that the test deletes to give the space back.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import small_tmpfs
from tests.daemon import Daemon, wait_until, write_config
from tests.discord_standin import standin_in_thread

NUMBERED = re.compile(r"^loud: big (\d+) ")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "small-disk", "8m") as mount:
        yield mount


def integrity(spool: Path) -> str:
    with sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=5) as db:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])


@pytest.mark.timeout(180)
def test_a_full_disk_pauses_reading_and_loses_nothing(tmp_path: Path, small_disk: Path) -> None:
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * 6 * 1024 * 1024)  # leaves about 2 MiB
    with standin_in_thread(bucket_limit=200, bucket_reset_after=1.0) as discord:
        discord.set_status(503)
        config = write_config(
            tmp_path, url=discord.url(), extra=f"probe: {{mode: off}}\nstate_dir: {small_disk}\n"
        ).read_text()
        (tmp_path / "tailhook.yaml").write_text(config.replace("state_dir: state\n", ""))
        daemon = Daemon(tmp_path / "tailhook.yaml").started()
        try:
            count = 2000  # each alert stores its 300-byte text three times: more than the 2 MiB left
            daemon.append(*(f"LOUD big {n} {'y' * 300}" for n in range(count)))
            daemon.wait_for_log("the disk of the spool is full", timeout=60)
            assert daemon.process.poll() is None  # still running
            assert integrity(small_disk / "spool.sqlite3") == "ok"

            filler.unlink()  # space returns
            discord.set_status(None)
            try:
                wait_until(lambda: len({e["title"] for e in discord.embeds}) >= count,
                           timeout=90, what=f"all {count} alerts")  # fmt: skip
            except AssertionError as exc:
                files = {p.name: p.stat().st_size for p in small_disk.iterdir()}
                raise AssertionError(f"{exc}; on the small disk: {files}; received {len(discord.embeds)}") from None
            daemon.wait_for_log("the spool has space again")
        finally:
            assert daemon.stop() == 0
        received = {int(NUMBERED.match(e["title"]).group(1)) for e in discord.embeds}  # type: ignore[union-attr]

    assert received == set(range(count))
    assert integrity(small_disk / "spool.sqlite3") == "ok"
    assert "Traceback" not in daemon.stderr

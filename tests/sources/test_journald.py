"""The journald source over real journal files written by systemd-journal-remote."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tailhook.config import JournaldSourceConfig, journal_reader
from tailhook.events import Line
from tailhook.sources.journald import JournaldSource
from tailhook.spool import Checkpoint

JOURNAL_REMOTE = shutil.which("systemd-journal-remote") or "/lib/systemd/systemd-journal-remote"

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(not Path(JOURNAL_REMOTE).exists(), reason="systemd-journal-remote is not installed"),
]


@pytest.fixture(params=["systemd-python", "journalctl"])
def reader(request: pytest.FixtureRequest) -> str:
    """Every test runs against both readers."""
    if journal_reader(request.param) is None:
        pytest.skip(f"{request.param} is not installed here")
    return str(request.param)


def write_journal(directory: Path, entries: Sequence[tuple[str, int, str]], first: int = 0) -> None:
    """Append entries (unit, priority, message) to a journal file in *directory*, as journald would store them."""
    now = int(time.time() * 1_000_000)
    export = "".join(
        f"__CURSOR=s=0;i={first + i}\n__REALTIME_TIMESTAMP={now + i}\n__MONOTONIC_TIMESTAMP={1000 + first + i}\n"
        f"_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=test-host\n"
        f"MESSAGE={message}\nPRIORITY={priority}\n_SYSTEMD_UNIT={unit}\n"
        f"SYSLOG_IDENTIFIER={unit.removesuffix('.service')}\n_PID={4000 + first + i}\n\n"
        for i, (unit, priority, message) in enumerate(entries)
    )
    subprocess.run(
        [JOURNAL_REMOTE, f"--output={directory / 'remote.journal'}", "-"],
        input=export.encode(),
        check=True,
        capture_output=True,
    )


async def test_entries_filtered_by_unit_and_priority_become_lines(tmp_path: Path, reader: str) -> None:
    write_journal(
        tmp_path,
        [
            ("ssh.service", 3, "Failed password for root from 203.0.113.9 port 22 ssh2"),
            ("nginx.service", 3, "worker process 12 exited on signal 11"),
            ("ssh.service", 6, "Accepted publickey for deploy"),
        ],
    )
    config = JournaldSourceConfig(
        name="journal", units=("ssh.service",), priority=4, directory=str(tmp_path), start_at="beginning", reader=reader
    )
    source = JournaldSource(config)
    lines: list[Line] = []
    cursors: list[Checkpoint] = []
    arrived = asyncio.Event()

    async def emit(batch: Sequence[Line], checkpoints: Sequence[Checkpoint]) -> None:
        lines.extend(batch)
        cursors.extend(checkpoints)
        arrived.set()

    await source.start()
    task = asyncio.create_task(source.run(emit))
    try:
        async with asyncio.timeout(10):
            await arrived.wait()
            arrived.clear()
            write_journal(tmp_path, [("ssh.service", 2, "error: PAM: Authentication failure for root")], first=3)
            while len(lines) < 2:
                await arrived.wait()
                arrived.clear()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert [line.text for line in lines] == [
        "Failed password for root from 203.0.113.9 port 22 ssh2",
        "error: PAM: Authentication failure for root",
    ]
    first = lines[0]
    assert first.source == "journal"
    assert dict(first.fields) == {
        "unit": "ssh.service",
        "identifier": "ssh",
        "pid": "4000",
        "priority": "err",
        "hostname": "test-host",
    }
    assert abs(first.time - time.time()) < 60


async def test_a_missing_journal_folder_is_reported_and_tried_again(
    tmp_path: Path, reader: str, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "later"
    config = JournaldSourceConfig(name="journal", directory=str(folder), start_at="beginning", reader=reader)
    source = JournaldSource(config)
    lines: list[Line] = []

    async def emit(batch: Sequence[Line], checkpoints: Sequence[Checkpoint]) -> None:
        lines.extend(batch)

    await source.start()
    task = asyncio.create_task(source.run(emit))
    try:
        async with asyncio.timeout(10):
            while not (str(folder) in caplog.text and "No such file or directory" in caplog.text):
                await asyncio.sleep(0.02)
            folder.mkdir()
            write_journal(folder, [("ssh.service", 3, "the journal is there now")])
            while not lines:  # opened again after a second, and read from the start
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [line.text for line in lines] == ["the journal is there now"]


async def test_stopping_while_a_read_waits_is_safe(tmp_path: Path, reader: str) -> None:
    """The binding's handle is closed by its own thread after the read: closing it under a read crashed
    the process; journalctl is stopped and waited for."""
    write_journal(tmp_path, [("ssh.service", 3, "one entry")])
    config = JournaldSourceConfig(name="journal", directory=str(tmp_path), start_at="end", reader=reader)

    async def emit(batch: Sequence[Line], checkpoints: Sequence[Checkpoint]) -> None:
        return None

    for _ in range(6):
        source = JournaldSource(config)
        await source.start()
        task = asyncio.create_task(source.run(emit))
        await asyncio.sleep(0.01)  # let the read start waiting on the journal, then stop mid-wait
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

"""A 1 GiB line with no newline: cut, counted, and read past in bounded memory."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.daemon import Daemon, wait_until, write_config

pytestmark = pytest.mark.timeout(240)

GIB = 1 << 30
CHUNK = 16 << 20


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def test_a_gigabyte_line_without_newline_keeps_memory_bounded(tmp_path: Path) -> None:
    daemon = Daemon(write_config(tmp_path)).started()
    try:
        baseline = peak_rss_bytes(daemon.process.pid)
        daemon.append("LOUD before the giant")
        chunk = b"x" * CHUNK
        started = time.monotonic()
        with daemon.log.open("ab") as out:
            for _ in range(GIB // CHUNK):
                out.write(chunk)
        daemon.append("", "LOUD after the giant")  # ends the giant line, then one more
        wait_until(lambda: "loud: after the giant" in daemon.stdout, timeout=180, what="the line after the giant")
        elapsed = time.monotonic() - started
        peak = peak_rss_bytes(daemon.process.pid)
    finally:
        code = daemon.stop()
        daemon.log.unlink()  # pytest keeps the last runs' folders: do not leave a GiB behind
    print(f"1 GiB line written and read past in {elapsed:.1f}s; peak RSS {peak >> 20} MiB, {baseline >> 20} at start")
    assert code == 0
    assert "loud: before the giant" in daemon.stdout
    assert peak - baseline < 64 << 20, f"memory grew by {(peak - baseline) >> 20} MiB reading one line"

"""Durable notifications per second: tailhook's spool beside the naive approach.

- naive: one SQLite transaction per notification (WAL, synchronous=FULL),
  what a store that commits each alert as it comes does.
- tailhook, batched: ``Spool.commit`` of 100 notifications with a checkpoint,
  as one read turn of a busy file produces them.
- tailhook, group commit: 1,000 single-notification commits in flight at once
  (many sources), which the spool writes together.
- ingest commit per line: 100,000 lines that match nothing, committed as
  checkpoints in batches of 1,000 lines, the cost each line pays for durability.

All on the same disk (a temporary folder), one after the other, same run.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from tailhook.events import Delivery, Kind, Notification, Severity
from tailhook.spool import Checkpoint, Spool, encode_delivery

COUNT = 2000


def delivery(n: int) -> Delivery:
    notification = Notification(
        kind=Kind.ALERT, rule="ssh", severity=Severity.WARNING, key=f"198.51.100.{n % 250}",
        title=f"SSH password failure for root from 198.51.100.{n % 250}", description="",
        line=f"Nov 23 06:40:51 web-1 sshd[{n}]: Failed password for root from 198.51.100.7 port 61022 ssh2",
        source="auth", host="web-1", time=time.time(), captures={"user": "root", "ip": "198.51.100.7"},
    )  # fmt: skip
    return Delivery("alerts", notification)


def naive(folder: Path) -> float:
    db = sqlite3.connect(folder / "naive.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE n (id INTEGER PRIMARY KEY, body TEXT)")
    started = time.perf_counter()
    for n in range(COUNT):
        db.execute("INSERT INTO n (body) VALUES (?)", (encode_delivery(delivery(n)),))
    elapsed = time.perf_counter() - started
    db.close()
    return COUNT / elapsed


async def batched(folder: Path) -> float:
    spool = await Spool.open(folder / "batched")
    started = time.perf_counter()
    for first in range(0, COUNT, 100):
        batch = [delivery(n) for n in range(first, first + 100)]
        await spool.commit(batch, [Checkpoint("auth", "/var/log/auth.log", {"offset": first})])
    elapsed = time.perf_counter() - started
    await spool.close()
    return COUNT / elapsed


async def group_commit(folder: Path) -> float:
    spool = await Spool.open(folder / "group")
    started = time.perf_counter()
    await asyncio.gather(*(spool.commit([delivery(n)]) for n in range(COUNT)))
    elapsed = time.perf_counter() - started
    await spool.close()
    return COUNT / elapsed


async def ingest_cost_per_line(folder: Path) -> float:
    spool = await Spool.open(folder / "ingest")
    lines, batch = 100_000, 1000
    started = time.perf_counter()
    for first in range(0, lines, batch):
        await spool.commit([], [Checkpoint("app", "/var/log/app.log", {"offset": first * 80})])
    elapsed = time.perf_counter() - started
    await spool.close()
    return elapsed / lines * 1e6


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tailhook-bench-") as name:
        folder = Path(name)
        peer = naive(folder)
        ours_batched = asyncio.run(batched(folder))
        ours_group = asyncio.run(group_commit(folder))
        per_line = asyncio.run(ingest_cost_per_line(folder))
    print(f"durable notifications (WAL, synchronous=FULL), {COUNT:,} each")
    print(f"  naive, a transaction each    {peer:>10,.0f} /s")
    print(f"  tailhook, batches of 100     {ours_batched:>10,.0f} /s   {ours_batched / peer:5.1f}x naive")
    print(f"  tailhook, group commit       {ours_group:>10,.0f} /s   {ours_group / peer:5.1f}x naive")
    print(f"  ingest commit, per line      {per_line:>10.2f} µs (checkpoint every 1,000 lines)")

"""The journald source: entries of the systemd journal, filtered by unit and priority.

Reads through systemd-python (the ``journald`` extra) in one worker thread that
owns the journal handle (opens, reads and closes it); the event loop never waits on it. Entries become
lines whose text is ``MESSAGE`` and whose fields give templates ``unit``,
``identifier`` and ``pid``.

When systemd-python is not installed the source says so loudly and reads
nothing; the other sources go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from tailhook.config import JournaldSourceConfig
from tailhook.events import Line
from tailhook.metrics import Metric, counter, gauge
from tailhook.sources import FOLLOWING, FOLLOWING_HELP, Emit
from tailhook.spool import Checkpoint

__all__ = ["JournaldSource", "journald_available"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_WAIT_S = 0.5
"""How long one read waits for new entries, so cancellation is never held up longer."""
_BATCH = 1000
CURSOR_KEY = "cursor"


def _close(reader: Any) -> None:
    with contextlib.suppress(Exception):
        reader.close()


def journald_available() -> bool:
    """Whether systemd-python can be imported."""
    try:
        import systemd.journal  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


class JournaldSource:
    def __init__(self, config: JournaldSourceConfig, *, checkpoints: Mapping[str, Any] | None = None) -> None:
        self.name = config.name
        self.config = config
        saved = (checkpoints or {}).get(CURSOR_KEY)
        self._cursor: str | None = saved.get("cursor") if saved else None
        self.lines = 0
        self._reader: Any = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"journal-{config.name}")
        """The one thread that touches the journal handle."""

    async def start(self) -> None:
        if not journald_available():
            log.error(
                "source %s: systemd-python is not installed, so the journal cannot be read; "
                "install it with: pip install 'tailhook[journald]'",
                self.name,
            )
            return
        try:
            self._reader = await self._in_thread(self._open)
        except OSError as exc:
            log.error("source %s: cannot open the journal: %s", self.name, exc)

    def following(self) -> Counter[str]:
        return Counter(journal=1)

    def collect(self) -> Iterable[Metric]:
        yield gauge(FOLLOWING, FOLLOWING_HELP, {(self.name, "journal"): float(self._reader is not None)}, "source",
                    "kind")  # fmt: skip
        yield counter("tailhook_journal_entries_total", "Journal entries read, per source.", {self.name: self.lines},
                      "source")  # fmt: skip

    async def run(self, emit: Emit) -> None:
        reader = self._reader
        if reader is None:
            return
        try:
            while True:
                batch, cursor = await self._in_thread(self._read, reader)
                if batch:
                    self.lines += len(batch)
                    await emit(batch, [Checkpoint(self.name, CURSOR_KEY, {"cursor": cursor})])
        finally:
            # Closed by the journal's own thread, after any read still running there:
            # closing it from here while a read is in flight would crash the process.
            self._thread.submit(_close, reader)
            self._thread.shutdown(wait=False)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _open(self) -> Any:
        from systemd import journal  # noqa: PLC0415 - the optional extra

        reader = journal.Reader(path=self.config.directory) if self.config.directory else journal.Reader()
        reader.log_level(self.config.priority)
        for unit in self.config.units:
            reader.add_match(_SYSTEMD_UNIT=unit)
        if self._cursor is not None:
            reader.seek_cursor(self._cursor)
            entry = reader.get_next()  # the entry at the cursor was read last time
            if entry and not reader.test_cursor(self._cursor):
                reader.get_previous()  # that entry is gone (vacuumed): start with the next one
        elif self.config.start_at == "end":
            reader.seek_tail()
            reader.get_previous()
        return reader

    def _read(self, reader: Any) -> tuple[list[Line], str | None]:
        """Up to a batch of entries, and the cursor of the last one."""
        lines: list[Line] = []
        cursor = None
        while len(lines) < _BATCH:
            entry = reader.get_next()
            if not entry:
                break
            lines.append(self._line(entry))
            cursor = entry.get("__CURSOR")
        if not lines:
            reader.wait(_WAIT_S)
        return lines, cursor

    def _line(self, entry: dict[str, Any]) -> Line:
        message = entry.get("MESSAGE", "")
        if isinstance(message, bytes):
            message = message.decode("utf-8", errors="replace")
        stamp = entry.get("__REALTIME_TIMESTAMP")
        return Line(
            text=str(message),
            source=self.name,
            time=stamp.timestamp() if stamp is not None else time.time(),
            fields={
                "unit": str(entry.get("_SYSTEMD_UNIT", "")),
                "identifier": str(entry.get("SYSLOG_IDENTIFIER", "")),
                "pid": str(entry.get("_PID", "")),
            },
        )

"""Reading the journal through systemd-python (the ``journald`` extra).

One worker thread owns the journal handles (opens, reads and closes them); the
event loop never waits on them. The low-level reader is used as it is: entries
come as raw bytes (decoded by the source, like journalctl's), and
``data_threshold`` is raised so a field is whole up to what the source cuts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from systemd import journal

from tailhook.config import JournaldSourceConfig
from tailhook.sources.journald import (
    BATCH,
    WAIT_S,
    Entry,
    InvalidCursor,
    ReaderError,
    Start,
    match_terms,
)

__all__ = ["BindingReader"]

T = TypeVar("T")


class BindingReader:
    kind = "systemd-python"

    def __init__(self, config: JournaldSourceConfig) -> None:
        self.config = config
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"journal-{config.name}")
        self._reader: Any = None
        self._whole: Any = None
        """The same journal without filters, asked for its last entry."""

    async def open(self, start: Start) -> int:
        return await self._in_thread(self._open, start)

    async def read(self) -> list[Entry]:
        return await self._in_thread(self._read)

    async def last(self, before: float | None = None) -> Entry | None:
        return await self._in_thread(self._last, before)

    async def close(self) -> None:
        # Closed by the journal's own thread, after any read still running there: closing a
        # handle from another thread while a read is in flight crashes the process.
        self._thread.submit(self._close)
        self._thread.shutdown(wait=False)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
        except InvalidCursor:
            raise
        except (OSError, ValueError) as exc:  # a folder that is not there, a corrupted file (EBADMSG)
            raise ReaderError(str(exc) or type(exc).__name__) from exc

    def _journal(self) -> Any:
        if self.config.directory:
            handle = journal._Reader(0, path=self.config.directory)
        elif self.config.namespace:
            handle = journal._Reader(journal.LOCAL_ONLY, namespace=self.config.namespace)
        else:
            handle = journal._Reader(journal.LOCAL_ONLY)
        handle.data_threshold = self.config.max_line_bytes * 4 + 64  # UTF-8: at most 4 bytes a character
        return handle

    def _open(self, start: Start) -> int:
        reader = self._reader = self._journal()
        for number, term in enumerate(match_terms(self.config)):
            if number:
                reader.add_disjunction()
            for name, value in term:
                reader.add_match(f"{name}={value}")
        skipped = 0
        if start.cursor is not None:
            try:
                reader.seek_cursor(start.cursor)
            except (ValueError, OSError) as exc:
                raise InvalidCursor(str(exc)) from exc
            if reader._next() and not reader.test_cursor(start.cursor):
                # Its entry is gone (vacuumed), or does not pass the filters (the checkpoint of a
                # sparse filter moved on): the one after is the next to read.
                _unread(reader)
            if start.since is not None:
                skipped = self._skip_before(start.since)
        elif start.head:
            reader.seek_head()
        else:
            self._seek_end()
        return skipped

    def _seek_end(self) -> None:
        """Make the next read return the first entry appended from now on.

        On systemd 252 ``seek_tail()`` alone is not that: the next read returns the last entry there is
        at the time of that read (one read already, or the newest of those appended meanwhile, the
        ones before it skipped). Stepping back onto the last entry is; and when no entry passes the
        filters, seeking to the last entry of the whole journal (a cursor it does not pass: the next
        read returns the first one after it that does); and with no entry at all, the head."""
        reader = self._reader
        reader.seek_tail()
        if reader._previous():
            return
        last = self._last()
        if last is None:
            reader.seek_head()
        else:
            reader.seek_cursor(last.cursor)

    def _skip_before(self, since: float) -> int:
        """Move past the entries logged before *since*; how many."""
        reader, skipped = self._reader, 0
        while reader._next():
            if reader._get_realtime() >= since * 1_000_000:
                _unread(reader)
                break
            skipped += 1
        return skipped

    def _read(self) -> list[Entry]:
        reader, entries = self._reader, list[Entry]()
        while len(entries) < BATCH and reader._next():
            # All fields at once: asking for the few lines need one by one (_get) is twice as slow.
            entries.append(Entry(reader._get_cursor(), reader._get_realtime() / 1_000_000, reader._get_all()))
        if not entries:
            reader.wait(int(WAIT_S * 1_000_000))
        return entries

    def _last(self, before: float | None = None) -> Entry | None:
        if self._whole is None:
            self._whole = self._journal()
        whole = self._whole
        if before is None:
            whole.seek_tail()
        else:
            whole.seek_realtime(int(before * 1_000_000))
        if not whole._previous():
            return None
        return Entry(whole._get_cursor(), whole._get_realtime() / 1_000_000, {})

    def _close(self) -> None:
        for handle in (self._reader, self._whole):
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.close()
        self._reader = self._whole = None


def _unread(reader: Any) -> None:
    """Make the entry just read the next one read. Not by stepping back (``_previous``): with no earlier
    entry that passes the filters, the step fails and leaves the reader on this entry, and the next
    read skips it."""
    reader.seek_cursor(reader._get_cursor())

"""The journald source: entries of the systemd journal, filtered as journalctl filters them.

Two readers, one behaviour
--------------------------
The journal is read through systemd-python (the ``journald`` extra,
``journal_binding.py``) when it can be imported, else through ``journalctl
--output=json --follow`` run as a subprocess (``journal_cli.py``); a source
may ask for one with ``reader:``. Both apply the same filters (``units``,
``identifiers``, ``priority``, ``matches``, ``this_boot``) as journal matches,
hand over raw entries, and this module makes the lines: ``MESSAGE`` is the
text, and templates get ``unit``, ``identifier``, ``pid``, ``priority`` (its
name: ``err``), ``hostname`` (the entry's ``_HOSTNAME``) and the fields the
source names in ``fields:``. Binary and non-UTF-8 values are decoded with
replacement; a value longer than ``max_line_bytes`` characters is cut there
and ends in the cut marker, like a long line of a file.

Position
--------
The cursor of the last entry handed on is the source's checkpoint, stored in
the ingest commit with what the entries made, never before: a crash reads
them again, nothing is lost. At start:

- with a stored cursor, reading goes on after the entry it names; if that
  entry was vacuumed since, with the first entry after where it was (it is
  not skipped). An invalid cursor falls back to the tail, with a warning.
- when the stored cursor is older than ``max_catchup`` (by entry time), the
  entries between are skipped, counted, and said so;
- without one, the tail (``start_at: end``) or the first entry.

With filters, a journal may go a long while without an entry that passes: so
that a restart does not scan all of it again, once the source has been quiet
for ``ADVANCE_AFTER_S`` the checkpoint moves on to the journal's last entry
logged at least ``SETTLE_S`` ago (a reader has had time to hand over any
entry before it; the very last entry will not do, as a busy journal always
has one younger than that), if that is past the checkpoint. A reader that fails (a journalctl that exits, a
corrupted file that makes the binding fail) is opened again from the last
checkpoint, after 1 s, doubling up to ``MAX_BACKOFF_S`` while it keeps failing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tailhook.config import JournaldSourceConfig, journal_reader
from tailhook.events import PRIORITY_NAMES, Line
from tailhook.metrics import Metric, counter, gauge
from tailhook.sources import FOLLOWING, FOLLOWING_HELP, Emit
from tailhook.sources.decode import CUT_MARKER
from tailhook.spool import Checkpoint

__all__ = [
    "CURSOR_KEY",
    "Entry",
    "InvalidCursor",
    "JournalReader",
    "JournaldSource",
    "ReaderError",
    "Start",
    "cursor_time",
    "journald_available",
    "match_terms",
]

log = logging.getLogger(__name__)

CURSOR_KEY = "cursor"
BATCH = 1000
"""Entries handed on at most at once."""
WAIT_S = 0.5
"""How long one read waits for new entries, so cancellation is never held up longer."""
ADVANCE_AFTER_S = 5.0
SETTLE_S = 2.0
MAX_BACKOFF_S = 60.0
WANTED_FIELDS = ("MESSAGE", "PRIORITY", "_SYSTEMD_UNIT", "SYSLOG_IDENTIFIER", "_PID", "_HOSTNAME", "_TRANSPORT")
"""The entry fields every line needs (a reader may leave the others out)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One journal entry as a reader hands it over: values raw (``str``, ``bytes``, or journalctl's
    list of byte values for a binary one)."""

    cursor: str
    realtime: float
    """When it was logged, in seconds since the epoch."""
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Start:
    """Where a reader starts."""

    cursor: str | None
    """After this entry (or, if it no longer exists, with the first entry after where it was)."""
    head: bool = False
    """Without a cursor: from the first entry; else the tail (only entries appended from now)."""
    since: float | None = None
    """Skip entries logged before this (``max_catchup``), counting them."""


class ReaderError(Exception):
    """The reader failed (journalctl exited, the journal could not be read): open it again."""


class InvalidCursor(ReaderError):
    """The stored cursor is not a cursor the journal can seek to."""


class JournalReader(Protocol):
    kind: str
    """``systemd-python`` or ``journalctl``."""

    async def open(self, start: Start) -> int:
        """Open the journal at *start*; how many entries ``start.since`` skipped."""
        ...

    async def read(self) -> list[Entry]:
        """The next entries (at most ``BATCH``); none after waiting about ``WAIT_S`` for them."""
        ...

    async def last(self, before: float | None = None) -> Entry | None:
        """The journal's last entry (logged before *before*, when given), whatever the filters (its
        cursor and time only)."""
        ...

    async def close(self) -> None: ...


def journald_available() -> bool:
    """Whether a journald source can read the journal here (through systemd-python or journalctl)."""
    return journal_reader() is not None


def match_terms(config: JournaldSourceConfig) -> list[list[tuple[str, str]]]:
    """The source's filters as journal matches: terms joined by OR, each a list of ``FIELD=value``
    matches (values of one field OR'd, fields AND'd), as journalctl's ``+`` and the binding's
    ``add_disjunction`` take them. ``[]``: no filter."""
    base = [("_SYSTEMD_UNIT", unit) for unit in config.units]
    base += [(name, value) for name, values in config.matches for value in values]
    if config.priority < 7:
        base += [("PRIORITY", str(level)) for level in range(config.priority + 1)]
    if config.this_boot:
        base.append(("_BOOT_ID", current_boot()))
    if not config.identifiers:
        return [base] if base else []
    terms = [base + [("SYSLOG_IDENTIFIER", identifier) for identifier in config.identifiers]]
    if "kernel" in config.identifiers:  # the kernel's messages, whatever their identifier says
        terms.append([*base, ("_TRANSPORT", "kernel")])
    return terms


def current_boot() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")


def cursor_time(cursor: str) -> float | None:
    """When the entry a cursor names was logged (its ``t=`` part, in hex microseconds), if it says."""
    for part in cursor.split(";"):
        if part.startswith("t="):
            try:
                return int(part[2:], 16) / 1_000_000
            except ValueError:
                return None
    return None


def text_of(value: Any) -> str:
    """A field's value as text: bytes and journalctl's lists of byte values decoded with replacement."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, list):
        if value and all(isinstance(v, int) for v in value):
            return bytes(v & 0xFF for v in value).decode("utf-8", errors="replace")
        return text_of(value[0]) if value else ""  # a field given more than once: its first value
    return "" if value is None else str(value)


def make_reader(config: JournaldSourceConfig, kind: str) -> JournalReader:
    if kind == "systemd-python":
        from tailhook.sources.journal_binding import BindingReader  # noqa: PLC0415 - needs the extra

        return BindingReader(config)
    from tailhook.sources.journal_cli import JournalctlReader  # noqa: PLC0415

    return JournalctlReader(config)


class JournaldSource:
    def __init__(
        self,
        config: JournaldSourceConfig,
        *,
        checkpoints: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        reader: Callable[[JournaldSourceConfig, str], JournalReader] = make_reader,
    ) -> None:
        self.name = config.name
        self.config = config
        saved = (checkpoints or {}).get(CURSOR_KEY)
        self._cursor: str | None = saved.get("cursor") if saved else None
        self.clock = clock
        self._make_reader = reader
        self.kind = journal_reader(config.reader)
        """The reader it uses, ``None`` when there is none here."""
        self._reader: JournalReader | None = None
        self.entries = 0
        self.cut = 0
        """Field values cut at ``max_line_bytes``."""
        self.skipped = 0
        """Entries skipped by ``max_catchup``."""
        self.reopened = 0
        self._open_error: str | None = None

    # ── the loop ────────────────────────────────────────────────────────────

    async def start(self) -> None:
        if self.kind is None:
            log.error("source %s: the journal cannot be read here: neither systemd-python nor journalctl is "
                      "installed (pip install 'tailhook[journald]')", self.name)  # fmt: skip
            return
        because = (
            " (systemd-python is not installed)" if self.kind == "journalctl" and self.config.reader == "auto" else ""
        )
        log.info("source %s: reading the journal%s through %s%s", self.name, self._where(), self.kind, because)
        await self._open()

    def following(self) -> Counter[str]:
        return Counter(journal=1)

    def collect(self) -> Iterable[Metric]:
        open_now = {(self.name, "journal"): float(self._reader is not None)}
        yield gauge(FOLLOWING, FOLLOWING_HELP, open_now, "source", "kind")
        yield counter("tailhook_journal_entries_total", "Journal entries read, per source.", {self.name: self.entries},
                      "source")  # fmt: skip
        yield counter("tailhook_journal_fields_cut_total", "Journal field values cut at max_line_bytes.",
                      {self.name: self.cut}, "source")  # fmt: skip
        yield counter("tailhook_journal_skipped_total", "Entries skipped at a start because they were older "
                      "than max_catchup.", {self.name: self.skipped}, "source")  # fmt: skip
        yield counter("tailhook_journal_reopened_total", "Times the journal was opened again after its reader "
                      "failed.", {self.name: self.reopened}, "source")  # fmt: skip

    async def run(self, emit: Emit) -> None:
        if self.kind is None:
            return
        backoff = 1.0
        quiet_since = self.clock()
        try:
            while True:
                if self._reader is None:
                    await asyncio.sleep(backoff)
                    backoff = min(MAX_BACKOFF_S, backoff * 2)
                    self.reopened += 1
                    await self._open()
                    continue
                try:
                    entries = await self._reader.read()
                except ReaderError as exc:
                    await self._failed(exc)
                    continue
                backoff = 1.0
                if entries:
                    await self._hand_on(entries, emit)
                    quiet_since = self.clock()
                elif self.config.filtered and self.clock() - quiet_since >= ADVANCE_AFTER_S:
                    quiet_since = self.clock()
                    await self._advance(emit)
        finally:
            await self._close()

    async def _hand_on(self, entries: Sequence[Entry], emit: Emit) -> None:
        lines = [self._line(entry) for entry in entries]
        cursor = entries[-1].cursor
        await emit(lines, [Checkpoint(self.name, CURSOR_KEY, {"cursor": cursor})])
        self._cursor = cursor
        self.entries += len(entries)

    async def _advance(self, emit: Emit) -> None:
        """With filters and nothing passing them: move the checkpoint to the journal's last entry,
        once no entry before it can still be on its way."""
        assert self._reader is not None
        try:
            # Not the very last entry: on a busy journal there always is one younger than SETTLE_S.
            last = await self._reader.last(before=self.clock() - SETTLE_S)
            read_to = None if self._cursor is None else cursor_time(self._cursor)
            if last is None or last.cursor == self._cursor or (read_to is not None and last.realtime <= read_to):
                return
            more = await self._reader.read()  # anything before that entry has come through by now
        except ReaderError as exc:
            await self._failed(exc)
            return
        if more:
            await self._hand_on(more, emit)
            return
        await emit([], [Checkpoint(self.name, CURSOR_KEY, {"cursor": last.cursor})])
        self._cursor = last.cursor

    async def _open(self, *, at_tail: bool = False) -> None:
        """Open the reader at the last checkpoint (*at_tail*: at the end of the journal); on failure,
        leave it closed for ``run`` to try again."""
        assert self.kind is not None
        reader = self._make_reader(self.config, self.kind)
        try:
            skipped = await reader.open(Start(None) if at_tail else self._start())
        except InvalidCursor as exc:
            if not at_tail:  # (at the tail no stored cursor is asked for: then it is like any failure)
                await reader.close()
                self._forget_cursor(exc)
                await self._open(at_tail=True)
                return
            await self._not_opened(reader, exc)
            return
        except ReaderError as exc:
            await self._not_opened(reader, exc)
            return
        if self._open_error is not None:
            log.warning("source %s: the journal is open again", self.name)
            self._open_error = None
        if skipped:
            self.skipped += skipped
            log.warning("source %s: skipped %d journal entries older than max_catchup (%gs) since the last "
                        "checkpoint", self.name, skipped, self.config.max_catchup)  # fmt: skip
        self._reader = reader

    def _start(self) -> Start:
        since = None if self.config.max_catchup is None else self.clock() - self.config.max_catchup
        if self._cursor is not None:
            logged = cursor_time(self._cursor)
            if since is not None and logged is not None and logged >= since:
                since = None  # the checkpoint is recent: nothing to skip
            return Start(self._cursor, since=since)
        return Start(None, head=self.config.start_at == "beginning")

    async def _not_opened(self, reader: JournalReader, exc: Exception) -> None:
        await reader.close()
        if str(exc) != self._open_error:
            log.error("source %s: cannot open the journal%s: %s; trying again", self.name, self._where(), exc)
            self._open_error = str(exc)

    def _forget_cursor(self, exc: InvalidCursor) -> None:
        log.warning("source %s: the stored cursor is not valid here (%s); starting at the end of the journal",
                    self.name, exc)  # fmt: skip
        self._cursor = None

    async def _failed(self, exc: ReaderError) -> None:
        if isinstance(exc, InvalidCursor):
            self._forget_cursor(exc)
        else:
            log.warning("source %s: reading the journal failed (%s); opening it again from the last checkpoint",
                        self.name, exc)  # fmt: skip
        await self._close()

    async def _close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.close()

    def _where(self) -> str:
        if self.config.directory:
            return f" in {self.config.directory}"
        if self.config.namespace:
            return f" of namespace {self.config.namespace}"
        return ""

    # ── entries to lines ────────────────────────────────────────────────────

    def _line(self, entry: Entry) -> Line:
        values = entry.fields
        priority = text_of(values.get("PRIORITY"))
        identifier = self._text(values.get("SYSLOG_IDENTIFIER"))
        if not identifier and text_of(values.get("_TRANSPORT")) == "kernel":
            identifier = "kernel"
        fields = {
            "unit": self._text(values.get("_SYSTEMD_UNIT")),
            "identifier": identifier,
            "pid": self._text(values.get("_PID")),
            "priority": PRIORITY_NAMES[int(priority)] if priority.isdigit() and int(priority) < 8 else "",
            "hostname": self._text(values.get("_HOSTNAME")),
        }
        for name in self.config.fields:
            fields[name] = self._text(values.get(name))
        return Line(text=self._text(values.get("MESSAGE")), source=self.name, time=entry.realtime, fields=fields)

    def _text(self, value: Any) -> str:
        text = text_of(value)
        if len(text) > self.config.max_line_bytes:
            self.cut += 1
            return text[: self.config.max_line_bytes] + CUT_MARKER
        return text

"""Reading the journal through ``journalctl --output=json --follow``, for hosts without systemd-python.

The command, and the traps it steps around:

- ``--cursor C``, never ``--after-cursor C``: journalctl's own skip of the
  cursor's entry can skip the first entry of a new boot instead (systemd
  #38912), and skips a real entry when the cursor's was vacuumed. This reader
  drops the first entry only if it is the one the cursor names.
- The tail is where the journal ends when the source opens it (``--cursor``
  of its last entry, asked for first), not ``--lines=0``: journalctl finds the
  end only once it has started, and would miss what was appended meanwhile,
  after the source said it was reading. Likewise a stored cursor is tried
  first (``--lines=0``), so an invalid one fails at the open, and the source
  falls back to the tail of that moment, as with the binding.
- ``--merge``: on systemd 250–257, ``--follow`` alone means the current boot
  only, which would lose the entries of the boot before a reboot that come
  after the cursor.
- ``--all`` (fields in full, binary ones as lists of byte values, which the
  source decodes) and ``--output-fields`` (only the fields lines need, so a
  large unrelated field never crosses the pipe).
- The filters as journal matches, OR'd terms joined by ``+``.

A line longer than ``MAX_LINE_BYTES`` on the pipe (a giant entry) is skipped
whole, bounding memory; journalctl's exit, whatever its code, is a
``ReaderError`` (the source opens the journal again from its checkpoint).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from typing import Any

from tailhook.config import JournaldSourceConfig
from tailhook.sources.journald import (
    BATCH,
    WAIT_S,
    WANTED_FIELDS,
    Entry,
    InvalidCursor,
    ReaderError,
    Start,
    cursor_time,
    match_terms,
)

__all__ = ["JournalctlReader"]

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 16 << 20
"""One entry's JSON at most; a longer one is skipped whole."""
_CHUNK = 1 << 16
ONE_SHOT_TIMEOUT_S = 30.0


class JournalctlReader:
    kind = "journalctl"

    def __init__(self, config: JournaldSourceConfig, *, command: str = "journalctl") -> None:
        self.config = config
        self.command = command
        self._process: asyncio.subprocess.Process | None = None
        self._buffer = bytearray()
        self._skipping = False
        """Inside a line longer than ``MAX_LINE_BYTES``: dropped up to its end."""
        self._drop: str | None = None
        """The cursor of an entry read already: dropped if it comes first."""
        self.oversized = 0

    # ── the command ─────────────────────────────────────────────────────────

    def _journal_args(self) -> list[str]:
        if self.config.directory:
            return [f"--directory={self.config.directory}"]
        if self.config.namespace:
            return [f"--namespace={self.config.namespace}"]
        return []

    def _match_args(self) -> list[str]:
        args: list[str] = []
        for number, term in enumerate(match_terms(self.config)):
            if number:
                args.append("+")
            args.extend(f"{name}={value}" for name, value in term)
        return args

    def _fields(self) -> str:
        return ",".join(dict.fromkeys((*WANTED_FIELDS, *self.config.fields)))

    async def open(self, start: Start) -> int:
        skipped = 0
        if start.cursor is not None:
            if start.since is not None and (cursor_time(start.cursor) or 0.0) < start.since:
                skipped = await self._count_between(start.cursor, start.since)
                position = [f"--since=@{start.since:.6f}"]
            else:
                # An invalid cursor fails here, at the open:
                await self._one_shot([*self._journal_args(), f"--cursor={start.cursor}", "--lines=0", "--no-pager"])
                position = [f"--cursor={start.cursor}"]
                self._drop = start.cursor
        elif start.head:
            position = ["--lines=all"]
        else:
            position = await self._tail()
        args = [
            *self._journal_args(),
            "--output=json",
            "--all",
            "--follow",
            "--merge",
            "--no-pager",
            "--quiet",
            f"--output-fields={self._fields()}",
            *position,
            *self._match_args(),
        ]
        self._process = await self._spawn(args)
        return skipped

    async def _spawn(self, args: list[str]) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                self.command,
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise ReaderError(f"cannot run {self.command}: {exc.strerror or exc}") from exc

    async def _tail(self) -> list[str]:
        """The position after the journal's last entry now (an empty journal: its start)."""
        last = await self.last()
        if last is None:
            return ["--lines=all"]  # nothing there yet: whatever comes is new
        self._drop = last.cursor
        return [f"--cursor={last.cursor}"]

    async def _count_between(self, cursor: str, since: float) -> int:
        """How many entries passing the filters come after *cursor* and before *since*."""
        entries = await self._cursors(f"--cursor={cursor}", f"--until=@{since:.6f}", *self._match_args())
        count = len(entries)
        if entries and entries[0].get("__CURSOR") == cursor:
            count -= 1  # the cursor's own entry was read already
        return count

    async def _cursors(self, *args: str) -> list[dict[str, Any]]:
        """The entries journalctl lists with *args* (its cursor and time only), in its order."""
        lines = await self._one_shot(
            [*self._journal_args(), "--output=json", "--output-fields=__CURSOR", "--no-pager", "--quiet", "--merge",
             *args]
        )  # fmt: skip
        return [json.loads(line) for line in lines]

    async def _one_shot(self, args: list[str]) -> list[bytes]:
        process = await self._spawn(args)
        try:
            async with asyncio.timeout(ONE_SHOT_TIMEOUT_S):
                out, err = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise ReaderError(f"{self.command} did not answer within {ONE_SHOT_TIMEOUT_S:g}s") from None
        if process.returncode != 0:
            raise _failure(process.returncode, err)
        return [line for line in out.splitlines() if line.startswith(b"{")]

    # ── reading ─────────────────────────────────────────────────────────────

    async def read(self) -> list[Entry]:
        process = self._process
        assert process is not None and process.stdout is not None
        entries: list[Entry] = []
        while len(entries) < BATCH:
            line = self._next_line()
            if line is not None:
                entry = self._entry(line)
                if entry is not None:
                    entries.append(entry)
                continue
            if entries:
                return entries  # nothing more at hand: hand these on now
            try:
                async with asyncio.timeout(WAIT_S):
                    chunk = await process.stdout.read(_CHUNK)
            except TimeoutError:
                return entries
            if not chunk:
                raise await self._exited(process)
            self._buffer += chunk
        return entries

    def _next_line(self) -> bytes | None:
        """The next whole line in the buffer; lines past ``MAX_LINE_BYTES`` are dropped."""
        buffer = self._buffer
        end = buffer.find(b"\n")
        while end >= 0:
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            if not self._skipping:
                return line
            self._skipping = False
            end = buffer.find(b"\n")
        if len(buffer) > MAX_LINE_BYTES:
            if not self._skipping:
                self.oversized += 1
                log.warning("journal source %s: an entry of more than %d MiB skipped", self.config.name,
                            MAX_LINE_BYTES >> 20)  # fmt: skip
            self._skipping = True
            buffer.clear()
        return None

    def _entry(self, line: bytes) -> Entry | None:
        if not line.startswith(b"{"):
            return None  # "-- cursor: …" and the like
        try:
            values: dict[str, Any] = json.loads(line)
        except ValueError:
            log.warning("journal source %s: journalctl wrote a line that is not JSON; skipped", self.config.name)
            return None
        cursor = values.get("__CURSOR")
        if not isinstance(cursor, str):
            return None
        if self._drop is not None:
            drop, self._drop = self._drop, None
            if cursor == drop:
                return None  # the entry the stored cursor names: read before the stop
        try:
            realtime = int(values.get("__REALTIME_TIMESTAMP", 0)) / 1_000_000
        except (TypeError, ValueError):
            realtime = 0.0
        return Entry(cursor, realtime, values)

    async def _exited(self, process: asyncio.subprocess.Process) -> ReaderError:
        assert process.stderr is not None
        err = await process.stderr.read()
        code = await process.wait()
        self._process = None
        return _failure(code, err)

    async def last(self, before: float | None = None) -> Entry | None:
        # --reverse: with --until, --lines counts back from the journal's end, not from the --until
        until = [] if before is None else [f"--until=@{before:.6f}", "--reverse"]
        entries = await self._cursors("--lines=1", *until)
        if not entries:
            return None
        values = entries[-1]
        return Entry(values["__CURSOR"], int(values.get("__REALTIME_TIMESTAMP", 0)) / 1_000_000, {})

    async def close(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(5):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def _failure(code: int | None, err: bytes) -> ReaderError:
    said = err.decode("utf-8", errors="replace").strip().splitlines()
    text = said[-1] if said else "no message"
    if "cursor" in text.lower():
        return InvalidCursor(text)
    return ReaderError(f"journalctl exited with {code}: {text}")

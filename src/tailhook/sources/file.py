"""The file source: follow every file that matches a set of globs.

Files are found by glob at start, on filesystem events (watchfiles, with a
short debounce so a new line reaches the rules in milliseconds) and on a
periodic safety rescan that also catches what events missed.

Each followed file is read from where the last complete line ended. A line is
emitted only once its newline has been written; a line longer than
``max_line_bytes`` is cut there, marked, and the rest of it skipped, so memory
stays bounded whatever a writer does. Bytes are decoded as UTF-8 with
replacement characters; a trailing CR is dropped.

Rotation: when the path names another file (rename and create), the old file
is read to its end before the new one is followed from its start; when a file
shrinks below the read offset (copytruncate), it is read again from 0.
Files present at the first start are read from ``start_at``; files that
appear later are read from the beginning.

Reads run in a worker thread: the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import glob
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import watchfiles

from tailhook.config import FileSourceConfig
from tailhook.events import Line
from tailhook.sources import Emit
from tailhook.spool import Checkpoint

__all__ = ["FileSource"]

log = logging.getLogger(__name__)

CUT_MARKER = " …[line cut: longer than max_line_bytes]"
_CHUNK_BYTES = 256 * 1024
_TURN_BYTES = 256 * 1024
"""At most this much of one file per turn, so one busy file cannot starve the others
and one ingest commit stays small enough to fit on a nearly full disk."""


@dataclass(slots=True)
class _Followed:
    """One open file and how far into it complete lines have been read."""

    path: str
    handle: BinaryIO
    device: int
    inode: int
    offset: int
    partial: bytearray = field(default_factory=bytearray)
    skipping: bool = False
    """Inside an over-long line whose head was already emitted."""
    committed: int = 0
    """The offset last handed out in a checkpoint."""

    def close(self) -> None:
        self.handle.close()


@dataclass(slots=True)
class Counters:
    lines: int = 0
    bytes: int = 0
    cut_lines: int = 0
    rotations: int = 0
    truncations: int = 0


class FileSource:
    """Follows the files of one ``type: file`` source."""

    def __init__(
        self,
        config: FileSourceConfig,
        *,
        checkpoints: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = config.name
        self.config = config
        self.clock = clock
        self._saved = dict(checkpoints or {})
        """Checkpoints from the last run, by path, used as each file is first opened."""
        self._first_start = not self._saved
        self._forgotten: list[Checkpoint] = []
        self.counters = Counters()
        self._files: dict[str, _Followed] = {}
        self._wake = asyncio.Event()
        self._recursive = any("**" in p for p in config.paths)
        self._watched: frozenset[str] = frozenset()
        self._watcher: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # ── the loop ────────────────────────────────────────────────────────────

    async def start(self) -> None:
        """Open the files present now (from ``start_at``) and start watching for more."""
        await asyncio.to_thread(self._discover, first=True)
        await self._watch_folders()

    async def run(self, emit: Emit) -> None:
        try:
            while True:
                turn, more = await asyncio.to_thread(self._read_turn)
                for lines, checkpoints in turn:
                    await emit(lines, checkpoints)
                if more:
                    continue  # a file has more than one turn's worth: another turn before waiting
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.config.rescan_interval):
                        await self._wake.wait()
                self._wake.clear()
                await asyncio.to_thread(self._discover, first=False)
                await self._watch_folders()
        finally:
            await self._stop_watching()
            for followed in self._files.values():
                followed.close()

    async def _watch_folders(self) -> None:
        """Watch the folders the globs need now; then look for files made while nothing watched."""
        folders = self._watch_dirs()
        if folders == self._watched:
            return
        await self._stop_watching()
        self._watched = folders
        if folders:
            self._stop = asyncio.Event()
            self._watcher = asyncio.create_task(self._watch(sorted(folders), self._stop), name=f"watch-{self.name}")
            # watchfiles registers its inotify watches in the first step of that task, before
            # its first await: one turn of the loop, and every later change wakes us.
            await asyncio.sleep(0)
        await asyncio.to_thread(self._discover, first=False)

    async def _stop_watching(self) -> None:
        if self._watcher is None:
            return
        self._stop.set()
        self._watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watcher
        self._watcher = None

    async def _watch(self, dirs: list[str], stop: asyncio.Event) -> None:
        try:
            async for _ in watchfiles.awatch(
                *dirs,
                watch_filter=None,
                debounce=50,
                step=5,
                stop_event=stop,
                recursive=self._recursive,
                ignore_permission_denied=True,
            ):
                self._wake.set()
        except (OSError, RuntimeError) as exc:  # e.g. out of inotify watches
            log.warning(
                "source %s: filesystem events unavailable (%s); rescanning every %gs instead",
                self.name,
                exc,
                self.config.rescan_interval,
            )

    def _watch_dirs(self) -> frozenset[str]:
        """The folders to watch: each glob's base, or while it is missing, its nearest existing parent.

        Watching the parent is what notices the base folder being made. With a
        ``**`` glob watches are recursive, so a missing base is left to the rescan
        rather than watching a whole parent tree.
        """
        dirs = set()
        for pattern in self.config.paths:
            base = _glob_base(pattern)
            while not os.path.isdir(base) and not self._recursive and os.path.dirname(base) != base:
                base = os.path.dirname(base)
            if os.path.isdir(base):
                dirs.add(base)
        return frozenset(dirs)

    # ── discovery (worker thread) ───────────────────────────────────────────

    def _discover(self, *, first: bool) -> None:
        found = set(self._matching_paths())
        for path in found - set(self._files):
            self._open(path, at_end=first and self._first_start and self.config.start_at == "end")
        for path in list(self._files):
            if path not in found:
                self._forget(path)

    def _matching_paths(self) -> Iterator[str]:
        for pattern in self.config.paths:
            for path in glob.iglob(pattern, recursive=True):
                if not self._excluded(path) and os.path.isfile(path):
                    yield os.path.abspath(path)

    def _excluded(self, path: str) -> bool:
        name = os.path.basename(path)
        return any(fnmatch.fnmatch(name, ex) or fnmatch.fnmatch(path, ex) for ex in self.config.exclude)

    def _open(self, path: str, *, at_end: bool) -> _Followed | None:
        try:
            handle = open(path, "rb", buffering=0)  # noqa: SIM115 - kept open while followed
        except OSError as exc:
            log.warning("source %s: cannot open %s: %s", self.name, path, exc.strerror)
            return None
        stat = os.fstat(handle.fileno())
        followed = _Followed(path, handle, stat.st_dev, stat.st_ino, offset=0)
        saved = self._saved.pop(path, None)
        if saved is not None:
            self._resume(followed, saved, stat.st_size)
        elif at_end and stat.st_size:
            followed.offset = stat.st_size
            handle.seek(stat.st_size - 1)
            followed.skipping = handle.read(1) != b"\n"  # do not emit the tail of a half line
            if followed.skipping:
                followed.offset = stat.st_size - 1
        followed.committed = followed.offset
        handle.seek(followed.offset)
        self._files[path] = followed
        log.info("source %s: following %s from byte %d", self.name, path, followed.offset)
        return followed

    def _resume(self, followed: _Followed, saved: Mapping[str, Any], size: int) -> None:
        """Start where the last run stopped, if the file is still the one it read."""
        same = (saved.get("dev"), saved.get("ino")) == (followed.device, followed.inode)
        offset = int(saved.get("offset", 0))
        if same and offset <= size:
            followed.offset = offset
            followed.skipping = bool(saved.get("skipping"))
        else:
            why = "shrank while tailhook was stopped" if same else "is another file than before"
            log.info("source %s: %s %s; reading it from the start", self.name, followed.path, why)

    def _forget(self, path: str) -> None:
        """The path vanished or was excluded: stop following it."""
        followed = self._files.pop(path)
        followed.close()
        self._forgotten.append(Checkpoint(self.name, path, None))
        log.info("source %s: %s is gone; no longer followed", self.name, path)

    def _checkpoint(self, followed: _Followed) -> Checkpoint:
        """How far complete lines of *followed* have been read; never past the last newline."""
        offset = followed.offset - len(followed.partial)
        value = {"dev": followed.device, "ino": followed.inode, "offset": offset, "skipping": followed.skipping}
        return Checkpoint(self.name, followed.path, value)

    # ── reading (worker thread) ─────────────────────────────────────────────

    def _size(self, followed: _Followed) -> int:
        try:
            return os.fstat(followed.handle.fileno()).st_size
        except OSError:
            return followed.offset

    def _read_turn(self) -> tuple[list[tuple[list[Line], list[Checkpoint]]], bool]:
        """One bounded read of every followed file: its lines and its new checkpoint, per file;
        and whether any file has more to read already."""
        turn: list[tuple[list[Line], list[Checkpoint]]] = []
        if self._forgotten:
            turn.append(([], self._forgotten))
            self._forgotten = []
        for path in list(self._files):
            followed = self._files[path]
            replaced = self._replaced(followed)
            if self._size(followed) < followed.offset:
                self._truncated(followed)
            lines = self._read(followed, budget=_TURN_BYTES if replaced is None else None)
            if replaced is not None:
                followed.close()
                self.counters.rotations += 1
                log.info("source %s: %s was rotated; following the new file", self.name, path)
                del self._files[path]
                self._saved.pop(path, None)
                new = self._open(path, at_end=False)
                if new is not None:
                    followed = new
                    lines.extend(self._read(new, budget=_TURN_BYTES))
            if lines or followed.offset != followed.committed:
                followed.committed = followed.offset
                turn.append((lines, [self._checkpoint(followed)]))
        return turn, any(f.offset < self._size(f) for f in self._files.values())

    def _replaced(self, followed: _Followed) -> os.stat_result | None:
        """The stat of a different file now at the path, if there is one."""
        try:
            stat = os.stat(followed.path)
        except OSError:
            return None
        if (stat.st_dev, stat.st_ino) == (followed.device, followed.inode):
            return None
        return stat

    def _truncated(self, followed: _Followed) -> None:
        log.info("source %s: %s was truncated; reading it again from the start", self.name, followed.path)
        self.counters.truncations += 1
        followed.offset = 0
        followed.partial.clear()
        followed.skipping = False
        followed.handle.seek(0)

    def _read(self, followed: _Followed, *, budget: int | None) -> list[Line]:
        """Complete lines from *followed*, up to *budget* bytes (``None``: to the end)."""
        lines: list[Line] = []
        read = 0
        while budget is None or read < budget:
            chunk = followed.handle.read(_CHUNK_BYTES)
            if not chunk:
                break
            read += len(chunk)
            self.counters.bytes += len(chunk)
            lines.extend(self._split(followed, chunk))
        return lines

    def _split(self, followed: _Followed, chunk: bytes) -> Iterator[Line]:
        limit = self.config.max_line_bytes
        start = 0
        now = self.clock()
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                break
            piece = chunk[start:end]
            start = end + 1
            if followed.skipping:
                followed.skipping = False
                followed.partial.clear()
                followed.offset += len(piece) + 1
                continue
            followed.partial += piece
            raw = bytes(followed.partial)
            followed.partial.clear()
            followed.offset += len(piece) + 1
            yield self._line(followed, raw[:limit], now, cut=len(raw) > limit)
        rest = chunk[start:]
        if followed.skipping:
            followed.offset += len(rest)
        elif len(followed.partial) + len(rest) > limit:
            # An over-long line with no newline yet: emit its head, skip the rest.
            head = bytes(followed.partial + rest[: limit - len(followed.partial)])
            followed.offset += len(rest)
            followed.partial.clear()
            followed.skipping = True
            yield self._line(followed, head, now, cut=True)
        else:
            followed.partial += rest
            followed.offset += len(rest)

    def _line(self, followed: _Followed, raw: bytes, now: float, *, cut: bool) -> Line:
        text = raw.decode("utf-8", errors="replace")
        text = text.removesuffix("\r")
        if cut:
            self.counters.cut_lines += 1
            text += CUT_MARKER
        self.counters.lines += 1
        return Line(text=text, source=self.name, time=now, path=followed.path)


def _glob_base(pattern: str) -> str:
    """The longest leading folder of *pattern* with no glob characters."""
    parts = []
    for part in pattern.split(os.sep):
        if glob.has_magic(part):
            break
        parts.append(part)
    base = os.sep.join(parts) or os.sep
    if base == pattern:  # a plain file path: watch its folder
        base = os.path.dirname(pattern) or "."
    return base

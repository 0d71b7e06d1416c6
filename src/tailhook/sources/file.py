"""The file source: follow every file that matches a set of globs, losing nothing.

Discovery
    Files are found by glob at start, on filesystem events (watchfiles, with a
    short debounce so a new line reaches the rules in milliseconds) and on a
    periodic safety rescan that also catches what events missed. With
    ``poll: true``, or when the kernel refuses more inotify watches, the
    followed files are polled every ``poll_interval`` instead. Symlinks are
    followed, and the folders of their targets watched (Kubernetes'
    ``/var/log/containers``). Compressed files are never read.

Identity
    A file is its (device, inode) plus a checksum of its first bytes (up to
    ``FINGERPRINT_BYTES``), so a reused inode or a file deleted and made again
    under the same name is a new file, and files whose first lines are the
    same are still told apart by their inodes. A file reached by two paths is
    followed once.

Reading
    Each file is read from where the last complete line ended. A line is
    emitted only once its newline has been written; a line longer than
    ``max_line_bytes`` is cut there, marked, and the rest of it skipped, so
    memory stays bounded whatever a writer does. Bytes are decoded as UTF-8
    with replacement characters; a trailing CR is dropped. Each turn reads at
    most ``_TURN_READ_BYTES`` of one file and ``_TURN_TOTAL`` in all, starting
    from a different file each turn, so one busy file cannot starve the
    others; one turn is one batch for the ingest commit. What one commit
    stores is bounded apart: a file's turn also ends after ``_TURN_BYTES`` of
    lines that may become events (every line, or in a block only those the
    daemon's ``prescan`` says some rule may match), so a turn of lines that
    all match stays small while one of lines that mostly do not is large, and
    costs one commit for many megabytes.

Rotation and truncation
    When the path names another file, or no file, the old one is read on
    ("draining") until it has been quiet at its end for ``rotate_wait``,
    while the new one is followed from its start: a writer that has not yet
    reopened its log keeps writing into the renamed file. When a file shrinks
    below the read offset (copytruncate), the rest of what was not yet read is
    taken from the copy, if one with the same first bytes sits beside it, and
    the file is read again from 0, skipping the NUL padding that a writer
    without ``O_APPEND`` leaves behind.

Checkpoints
    ``{dev, ino, head, head_len, offset, tail, skipping}`` per file, never
    past the last complete line (nor past a line a multiline event or a
    partial container line still holds), written in the ingest commit. At
    start each is checked against the file: same identity, not shorter, and
    the same bytes just before the offset (``tail``); otherwise the file
    changed while tailhook was stopped and is read from the start. A file
    rotated while tailhook was stopped is found beside its old path by its
    identity and read from its checkpoint to its end.

Files present at the first start are read from ``start_at``; files that
appear later from the beginning. Reads run in a worker thread: the event
loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import glob
import hashlib
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import watchfiles

from tailhook.config import FileSourceConfig
from tailhook.events import Line
from tailhook.metrics import Metric, counter, gauge
from tailhook.sources import FOLLOWING, FOLLOWING_HELP, Block, Emit
from tailhook.sources.decode import CUT_MARKER, Framer, FramerCounts, MultilineSettings, Record
from tailhook.sources.reader import LineCutter, Run
from tailhook.spool import Checkpoint

__all__ = ["CUT_MARKER", "FileSource", "Prescan", "Scanned"]

log = logging.getLogger(__name__)

FINGERPRINT_BYTES = 1024
"""The first bytes of a file whose checksum is part of its identity."""
TAIL_BYTES = 64
"""The bytes just before a checkpoint's offset, checked again at the next start."""
_CHUNK_BYTES = 256 * 1024
_TURN_BYTES = 256 * 1024
"""At most this much of one file per turn in lines that may become events (``Scanned``): it bounds
what one ingest commit stores, so that a commit still fits on a nearly full disk (the spool refuses
new alerts with less than ``spool.MIN_FREE_BYTES`` free, and one commit must fit in what is left)."""
_TURN_READ_BYTES = 2 * 1024 * 1024
"""At most this much read of one file per turn, so one busy file cannot starve the others."""
_TURN_TOTAL = 4 * 1024 * 1024
"""At most this much of all files per turn: one ingest commit's worth of lines in memory."""
_SKIP_CHECKPOINT_S = 1.0
_COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".lzma", ".zip", ".Z", ".br")
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18", b"PK\x03\x04")

FileId = tuple[int, int]
"""(device, inode)."""


class Scanned(Protocol):
    """What the daemon's ``prescan`` made of a block's bytes; it travels with the ``Block``."""

    @property
    def matching_bytes(self) -> int:
        """How many of the block's bytes are in lines some rule may match: what may become events."""
        ...


Prescan = Callable[[bytes, str], Scanned]
"""The rules' engine pass over a block's bytes (of the source named), run in the reading thread."""


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


@dataclass(slots=True)
class FileCounts(FramerCounts):
    """What reading one path met since it was first followed: its rotated files count under it too."""

    lines: int = 0
    bytes: int = 0
    """Bytes read."""
    cut_lines: int = 0
    """Lines cut at ``max_line_bytes``."""
    rotations: int = 0
    truncations: int = 0
    recovered_from_copies: int = 0
    """Copies (copytruncate) whose unread end was read before the truncated file."""


@dataclass(slots=True)
class _Followed:
    """One open file and how far into it complete lines have been read."""

    key: str
    """Its checkpoint's key: the path, or ``<path> (rotated <inode>)`` while it drains."""
    path: str
    """The path it was found under; lines carry it."""
    handle: BinaryIO
    device: int
    inode: int
    cutter: LineCutter
    """Where reading stands: the offset, a partial line, an over-long line being skipped."""
    head: str = ""
    head_len: int = 0
    committed: int = -1
    """The offset last handed out in a checkpoint."""
    committed_at: float = 0.0
    rotated: float | None = None
    """When its path stopped naming it (it drains until quiet for ``rotate_wait``)."""
    quiet_since: float = 0.0
    framer: Framer | None = None
    """Turns raw lines into events (containers' partial lines, JSON, multiline); ``None`` for plain lines."""
    counts: FileCounts = field(default_factory=FileCounts)
    """Its path's counts (shared with the other files of the same path)."""

    @property
    def offset(self) -> int:
        """Bytes consumed, including a partial line."""
        return self.cutter.offset

    @property
    def skipping(self) -> bool:
        return self.cutter.skipping

    def resume(self, offset: int, *, skipping: bool = False) -> None:
        """Read on from *offset* (*skipping*: inside an over-long line whose head was given out)."""
        self.cutter.restart(offset)
        self.cutter.skipping = skipping
        self.handle.seek(offset)

    @property
    def position(self) -> int:
        """Where reading would start again: before the partial line and anything the framer holds."""
        position = self.cutter.position
        if self.framer is not None:
            held = self.framer.held_from()
            if held is not None and held < position:
                return held
        return position

    @property
    def id(self) -> FileId:
        return (self.device, self.inode)

    def close(self) -> None:
        self.handle.close()


class FileSource:
    """Follows the files of one ``type: file`` source."""

    def __init__(
        self,
        config: FileSourceConfig,
        *,
        checkpoints: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        blocks: bool = False,
        prescan: Prescan | None = None,
    ) -> None:
        self.name = config.name
        self._runs = blocks
        """Plain lines go out as ``Block``s of whole lines (the daemon's rules scan them in one pass)."""
        self._prescan = prescan
        """Run on each block's bytes in the reading thread; what it returns travels with the block, and
        says how much of the block counts against ``_TURN_BYTES``."""
        self.config = config
        self.clock = clock
        self._saved: dict[str, Mapping[str, Any]] = dict(checkpoints or {})
        """Checkpoints from the last run, by key, until the start has resolved them."""
        self._first_start = not self._saved
        self._forgotten: list[Checkpoint] = []
        self.counts: dict[str, FileCounts] = {}
        """Per path followed now, what reading it met (``collect`` reports them)."""
        self._files: dict[str, _Followed] = {}
        """Followed files by key."""
        self._by_id: dict[FileId, _Followed] = {}
        self._skipped: set[str] = set()
        """Paths matched but not followed (compressed), so they are reported once."""
        self._wake = asyncio.Event()
        self._rescan = True
        self._last_rescan = 0.0
        self._recursive = any("**" in p for p in config.paths)
        self._watched: frozenset[str] = frozenset()
        self._watcher: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._polling = config.poll
        self._known: dict[str, str] = {}
        """The paths and symlink targets of followed files, to their keys: a change to one needs no rescan."""
        self._events_for: set[str] = set()
        """Keys of the followed files that events said changed since the last turn."""
        self._behind: set[str] = set()
        """Keys of the files the last turn did not read to their end."""
        self._next_first = 0
        """Where the next turn starts in the list of files (fairness)."""
        self._watched_files = 0
        """How many files were followed when the watched folders were last worked out."""

    # ── the loop ────────────────────────────────────────────────────────────

    async def start(self) -> None:
        """Open the files present now (from checkpoints or ``start_at``) and start watching for more."""
        await asyncio.to_thread(self._start)
        await self._watch_folders()

    async def run(self, emit: Emit) -> None:
        only: set[str] | None = None  # the first turn looks at every file
        reading: asyncio.Future[tuple[list[Line | Block], list[Checkpoint], bool]] | None = None
        """The read turn under way in a worker thread (shielded: a cancellation must not leave it
        running unwatched while the files it reads are closed)."""
        try:
            while True:
                if reading is None:
                    reading = asyncio.ensure_future(asyncio.to_thread(self._read_turn, only))
                lines, checkpoints, more = await asyncio.shield(reading)
                reading = None
                if len(self._files) != self._watched_files:  # files followed in folders not watched yet
                    await self._watch_folders()
                if more:
                    # A file has more than one turn's worth: read the next turn while this one is
                    # stored. Its checkpoints are committed after this turn's, in order; if we stop
                    # first, what it read was never committed and is read again.
                    reading = asyncio.ensure_future(asyncio.to_thread(self._read_turn, set()))
                if lines or checkpoints:
                    await emit(lines, checkpoints)
                if more:
                    only = set()  # a file has more than one turn's worth: another turn before waiting
                    continue
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._idle_timeout()):
                        await self._wake.wait()
                woken = self._wake.is_set()
                self._wake.clear()
                if self._rescan:
                    await self._watch_folders()
                # Woken by events about followed files only: read just those. Otherwise look at all.
                only, self._events_for = self._events_for, set()
                if not woken or self._rescan or self._polling or self._watcher is None:
                    only = None
        finally:
            if reading is not None:
                await asyncio.wait([reading])  # its thread reads the files that are about to close
                if not reading.cancelled() and reading.exception() is not None:
                    log.debug("source %s: a read turn failed while stopping: %s", self.name, reading.exception())
            await self._stop_watching()
            for followed in self._files.values():
                followed.close()

    def following(self) -> Counter[str]:
        return Counter(file=len(self._files))

    def collect(self) -> Iterable[Metric]:
        """Per path followed now: what reading it met, and how far its checkpoint is behind its end."""
        counts = {(self.name, path): c for path, c in list(self.counts.items())}  # one step: a read may add one

        def each(name: str, help: str, value: Callable[[FileCounts], int]) -> Metric:
            return counter(name, help, {key: value(c) for key, c in counts.items()}, "source", "path")

        yield each("tailhook_file_read_lines_total", "Lines read, per file.", lambda c: c.lines)
        yield each("tailhook_file_read_bytes_total", "Bytes read, per file.", lambda c: c.bytes)
        yield each("tailhook_file_lines_cut_total", "Lines cut at max_line_bytes.", lambda c: c.cut_lines)
        yield each("tailhook_file_rotations_total", "Times the path came to name another file (rotation), "
                   "or none.", lambda c: c.rotations)  # fmt: skip
        yield each("tailhook_file_truncations_total", "Times the file was truncated (copytruncate).",
                   lambda c: c.truncations)  # fmt: skip
        yield each("tailhook_file_copies_recovered_total", "Copies made by copytruncate whose unread end was "
                   "read before the truncated file.", lambda c: c.recovered_from_copies)  # fmt: skip
        yield each("tailhook_file_malformed_total", "Lines not in the source's format (cri, json), passed on "
                   "as plain lines.", lambda c: c.malformed)  # fmt: skip
        yield each("tailhook_file_events_cut_total", "Events (joined partial lines, multiline) cut at "
                   "max_line_bytes.", lambda c: c.cut)  # fmt: skip
        lag: Counter[tuple[str, str]] = Counter()
        for followed in list(self._files.values()):
            try:
                size = os.fstat(followed.handle.fileno()).st_size
            except (OSError, ValueError):  # closed meanwhile by the reading thread
                continue
            lag[self.name, followed.path] += max(0, size - max(followed.committed, 0))
        yield gauge("tailhook_file_checkpoint_lag_bytes", "Bytes of the file past its stored checkpoint "
                    "(a rotated file still being read counts under its path).", lag, "source", "path")  # fmt: skip
        yield gauge(FOLLOWING, FOLLOWING_HELP, {(self.name, "file"): len(self._files)}, "source", "kind")

    def _idle_timeout(self) -> float:
        """How long to wait for an event before looking anyway."""
        timeout = self.config.rescan_interval
        if self._polling:
            timeout = min(timeout, self.config.poll_interval)
        if any(f.rotated is not None for f in self._files.values()):
            timeout = min(timeout, max(0.05, self.config.rotate_wait / 4))
        deadlines = [d for f in self._files.values() if f.framer is not None and (d := f.framer.deadline()) is not None]
        if deadlines:
            timeout = min(timeout, max(0.0, min(deadlines) - self.clock()) + 0.001)
        return timeout

    async def _watch_folders(self) -> None:
        """Watch the folders the globs and followed files need now."""
        if self._polling:
            return
        folders = await asyncio.to_thread(self._watch_dirs)
        self._watched_files = len(self._files)
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
        self._rescan = True  # files made while nothing watched

    async def _stop_watching(self) -> None:
        if self._watcher is None:
            return
        self._stop.set()
        self._watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._watcher
        self._watcher = None

    async def _watch(self, dirs: list[str], stop: asyncio.Event) -> None:
        """Wake the loop on changes in *dirs*; fall back to polling when the kernel has no watches left.

        ``ignore_permission_denied`` would also hide "no watches left" (the watcher then reports
        nothing, ever), so it is only turned on after a folder we may not read was met.
        """
        ignore_denied = False
        while True:
            try:
                async for changes in watchfiles.awatch(
                    *dirs,
                    watch_filter=None,
                    debounce=50,
                    step=5,
                    stop_event=stop,
                    recursive=self._recursive,
                    ignore_permission_denied=ignore_denied,
                ):
                    for change, path in changes:
                        key = self._known.get(path)
                        if change != watchfiles.Change.modified or key is None:
                            self._rescan = True
                        else:
                            self._events_for.add(key)
                    self._wake.set()
                return
            except (OSError, RuntimeError) as exc:  # e.g. out of inotify watches
                if not ignore_denied and (isinstance(exc, PermissionError) or "ermission denied" in str(exc)):
                    log.info("source %s: some folders under %s cannot be watched: %s", self.name, dirs, exc)
                    ignore_denied = True
                    continue
                log.warning(
                    "source %s: filesystem events unavailable (%s); polling every %gs instead",
                    self.name,
                    exc,
                    self.config.poll_interval,
                )
                self._polling = True
                self._wake.set()
                return

    def _watch_dirs(self) -> frozenset[str]:
        """The folders to watch: each glob's base (or while it is missing, its nearest existing
        parent, to notice it being made), the folders its folder wildcards match (a glob's files may
        lie deeper than its base, where a change wakes nothing else: /var/log/pods/*/*/*.log), the
        folders of the files followed, and those of symlinked files' targets.

        With a ``**`` glob watches are recursive, so a missing base is left to the rescan
        rather than watching a whole parent tree.
        """
        dirs = set()
        for pattern in self.config.paths:
            base = _glob_base(pattern)
            while not os.path.isdir(base) and not self._recursive and os.path.dirname(base) != base:
                base = os.path.dirname(base)
            if os.path.isdir(base):
                dirs.add(base)
            if not self._recursive:  # the folders between the base and the files: pods/*/ and pods/*/*/
                level = os.path.dirname(pattern)
                while glob.has_magic(level):
                    dirs.update(path for path in glob.glob(level) if os.path.isdir(path))
                    level = os.path.dirname(level)
        known = {}
        for key, followed in list(self._files.items()):
            known[followed.path] = key
            if not self._recursive:  # a glob's files deeper than its base: /var/log/pods/*/*/*.log
                dirs.add(os.path.dirname(followed.path))
            with contextlib.suppress(OSError):
                real = os.path.realpath(followed.path)
                known[real] = key
                if os.path.dirname(followed.path) != os.path.dirname(real):
                    dirs.add(os.path.dirname(real))
        self._known = known
        return frozenset(dirs)

    # ── the start (worker thread) ───────────────────────────────────────────

    def _start(self) -> None:
        """Resolve the last run's checkpoints, then open what the globs find.

        Every file a checkpoint names that is no longer at its path (rotated while we were
        stopped, or draining when we stopped) is found first, so that the globs, should they
        match its new name, find it already followed instead of new.
        """
        for key, saved in list(self._saved.items()):
            path = str(saved.get("path", key))
            if key == path and _file_id(path) == (saved.get("dev"), saved.get("ino")):
                continue  # still there: resumed (or read again, if it changed) when the globs find it
            del self._saved[key]
            if key != path:
                self._forgotten.append(Checkpoint(self.name, key, None))
            self._recover(path, saved)
        self._discover(first=True)
        for key in self._saved:  # matched by no glob any more
            self._forgotten.append(Checkpoint(self.name, key, None))
        self._saved.clear()

    def _recover(self, path: str, saved: Mapping[str, Any], *, copy: bool = False) -> None:
        """The file a checkpoint of *path* names is not at *path* as it was: it was rotated while we
        were stopped (or, with *copy*, copied and truncated). Find it (or its copy) beside *path*
        and read the rest of it."""
        if copy:
            found = self._find(os.path.dirname(path), lambda entry: self._is_copy(entry, saved))
        else:
            found = self._find(os.path.dirname(path), lambda entry: _same_file(entry, saved))
        if found is None:
            if not copy:
                log.info("source %s: %s was rotated or removed while tailhook was stopped", self.name, path)
            return
        inode = _file_id(found)
        followed = self._open(found, key=_rotated_key(path, inode[1] if inode else 0), path=path, offset=0)
        if followed is None:
            return
        reason = self._changed(followed, saved, same_inode=not copy)
        if reason:
            log.info("source %s: %s (rotated from %s) %s; not read again", self.name, found, path, reason)
            self._close(followed)
            return
        followed.resume(int(saved.get("offset", 0)), skipping=bool(saved.get("skipping")))
        self._drain(followed)
        log.info(
            "source %s: %s was rotated to %s while tailhook was stopped; reading the rest of it from byte %d",
            self.name,
            path,
            found,
            followed.offset,
        )

    # ── discovery (worker thread) ───────────────────────────────────────────

    def _discover(self, *, first: bool) -> None:
        self._rescan = False
        self._last_rescan = self.clock()
        at_end = first and self._first_start and self.config.start_at == "end"
        found = set()
        for path in self._matching_paths():
            found.add(path)
            if path not in self._files:
                self._found(path, at_end=at_end)
        for key, followed in list(self._files.items()):
            if followed.rotated is None and key not in found:
                self._moved(followed)
        self._skipped &= found

    def _matching_paths(self) -> Iterator[str]:
        for pattern in self.config.paths:
            for path in glob.iglob(pattern, recursive=True):
                if not self._excluded(path) and os.path.isfile(path):
                    yield os.path.abspath(path)

    def _excluded(self, path: str) -> bool:
        name = os.path.basename(path)
        if name.endswith(_COMPRESSED_SUFFIXES):
            return True
        return any(fnmatch.fnmatch(name, ex) or fnmatch.fnmatch(path, ex) for ex in self.config.exclude)

    def _found(self, path: str, *, at_end: bool) -> None:
        """A path the globs match and nothing follows under that name."""
        try:
            stat = os.stat(path)
        except OSError:
            return
        known = self._by_id.get((stat.st_dev, stat.st_ino))
        if known is not None:
            if known.rotated is not None:  # a draining file renamed into the globs: follow it on there
                self._rekey(known, path)
                known.rotated = None
            return  # else: the same file under another name (a symlink, a hard link); once is enough
        if path in self._skipped:
            return
        followed = self._open(path, key=path, path=path, offset=0)
        if followed is None:
            return
        saved = self._saved.pop(path, None)
        if saved is not None:
            reason = self._changed(followed, saved)
            if reason is None:
                followed.resume(int(saved.get("offset", 0)), skipping=bool(saved.get("skipping")))
            else:
                log.info("source %s: %s %s; reading it from the start", self.name, path, reason)
                followed.cutter.padding = True
                self._recover(path, saved, copy=True)  # copytruncate while we were stopped
        elif at_end and stat.st_size:
            half_line = os.pread(followed.handle.fileno(), 1, stat.st_size - 1) != b"\n"
            # do not emit the tail of a half line: skip from just before the end to its newline
            followed.resume(stat.st_size - 1 if half_line else stat.st_size, skipping=half_line)
        followed.handle.seek(followed.offset)
        log.info("source %s: following %s from byte %d", self.name, path, followed.offset)

    def _open(self, found: str, *, key: str, path: str, offset: int) -> _Followed | None:
        try:
            handle = open(found, "rb", buffering=0)  # noqa: SIM115 - kept open while followed
        except OSError as exc:
            log.warning("source %s: cannot open %s: %s", self.name, found, exc.strerror)
            return None
        stat = os.fstat(handle.fileno())
        if os.pread(handle.fileno(), 6, 0).startswith(_COMPRESSED_MAGIC):
            handle.close()
            self._skipped.add(found)
            log.info("source %s: %s is compressed; not read", self.name, found)
            return None
        counts = self._counts(path)
        framer = self._framer(counts)
        cutter = self._cutter(offset, framer)
        followed = _Followed(key, path, handle, stat.st_dev, stat.st_ino, cutter, framer=framer, counts=counts)
        self._fingerprint(followed)
        self._files[key] = followed
        self._by_id[followed.id] = followed
        return followed

    def _cutter(self, offset: int, framer: Framer | None, *, skipping: bool = False) -> LineCutter:
        """Whole lines go out in runs when the source asks for them and no framer needs each line."""
        runs = self._runs and framer is None
        return LineCutter(self.config.max_line_bytes, offset, runs=runs, skipping=skipping)

    def _counts(self, path: str) -> FileCounts:
        counts = self.counts.get(path)
        if counts is None:
            counts = self.counts[path] = FileCounts()
        return counts

    def _framer(self, counts: FileCounts) -> Framer | None:
        config = self.config
        if config.format == "plain" and config.multiline is None:
            return None  # one line, one event: no framing needed
        multiline = None
        if config.multiline is not None:
            multiline = MultilineSettings(
                start=re.compile(config.multiline.start) if config.multiline.start else None,
                continuation=re.compile(config.multiline.continuation) if config.multiline.continuation else None,
                max_lines=config.multiline.max_lines,
                timeout=config.multiline.timeout,
            )
        return Framer(
            config.format,
            message_key=config.message_key,
            multiline=multiline,
            max_bytes=config.max_line_bytes,
            counts=counts,
        )

    def _changed(self, followed: _Followed, saved: Mapping[str, Any], *, same_inode: bool = True) -> str | None:
        """Why *followed* is not where *saved* left it, or ``None`` if it is.

        With *same_inode* false, *followed* may be a copy: only its bytes are compared.
        """
        if same_inode and (saved.get("dev"), saved.get("ino")) != followed.id:
            return "is another file than before"
        fd = followed.handle.fileno()
        head_len = int(saved.get("head_len", 0))
        if "head" in saved and _digest(os.pread(fd, head_len, 0)) != saved["head"]:
            return "is another file than before (its inode was reused)"
        offset = int(saved.get("offset", 0))
        if os.fstat(fd).st_size < offset:
            return "shrank while tailhook was stopped"
        start = max(0, offset - TAIL_BYTES)
        if "tail" in saved and _digest(os.pread(fd, offset - start, start)) != saved["tail"]:
            return "changed before the saved position while tailhook was stopped"
        return None

    def _fingerprint(self, followed: _Followed) -> None:
        """Checksum the first bytes, once more of them exist than last time (up to ``FINGERPRINT_BYTES``)."""
        if followed.head_len >= FINGERPRINT_BYTES:
            return
        data = os.pread(followed.handle.fileno(), FINGERPRINT_BYTES, 0)
        if len(data) > followed.head_len or not followed.head:
            followed.head, followed.head_len = _digest(data), len(data)

    def _moved(self, followed: _Followed) -> None:
        """Its path names another file now, or none: read on in the old one until it is quiet."""
        followed.counts.rotations += 1
        log.info("source %s: %s was rotated or removed; reading on in the old file for now", self.name, followed.path)
        self._rekey(followed, _rotated_key(followed.path, followed.inode))
        self._drain(followed)
        self._rescan = True

    def _drain(self, followed: _Followed) -> None:
        followed.rotated = followed.quiet_since = self.clock()

    def _rekey(self, followed: _Followed, key: str) -> None:
        del self._files[followed.key]
        self._forgotten.append(Checkpoint(self.name, followed.key, None))
        followed.key = key
        followed.committed = -1
        self._files[key] = followed

    def _close(self, followed: _Followed) -> None:
        del self._files[followed.key]
        if self._by_id.get(followed.id) is followed:
            del self._by_id[followed.id]
        followed.close()
        if not any(other.path == followed.path for other in self._files.values()):
            self.counts.pop(followed.path, None)  # a path no longer followed stops being reported

    def _forget(self, followed: _Followed) -> None:
        self._close(followed)
        self._forgotten.append(Checkpoint(self.name, followed.key, None))

    def _find(self, folder: str, match: Callable[[os.DirEntry[str]], bool]) -> str | None:
        """The first file in *folder* that *match* accepts."""
        try:
            with os.scandir(folder or ".") as entries:
                for entry in entries:
                    if not entry.name.endswith(_COMPRESSED_SUFFIXES) and match(entry):
                        return entry.path
        except OSError:
            pass
        return None

    def _checkpoint(self, followed: _Followed) -> Checkpoint:
        """How far complete lines of *followed* have been read; never past the last newline."""
        offset = followed.position
        self._fingerprint(followed)
        start = max(0, offset - TAIL_BYTES)
        tail = _digest(os.pread(followed.handle.fileno(), offset - start, start))
        value = {
            "dev": followed.device,
            "ino": followed.inode,
            "head": followed.head,
            "head_len": followed.head_len,
            "offset": offset,
            "tail": tail,
            "skipping": followed.skipping and offset == followed.offset,
        }
        if followed.rotated is not None:
            value["path"] = followed.path
        return Checkpoint(self.name, followed.key, value)

    # ── reading (worker thread) ─────────────────────────────────────────────

    def _read_turn(self, only: set[str] | None = None) -> tuple[list[Line | Block], list[Checkpoint], bool]:
        """One bounded read of the followed files: their lines, their new checkpoints, and
        whether any file has more to read already.

        With *only*, the files events named, the files still behind, draining files and files
        whose framer has a deadline are looked at; the rest are known to be unchanged. That keeps
        a line in one of a thousand files from costing a thousand system calls.
        """
        now = self.clock()
        if only is None or self._rescan or now - self._last_rescan >= self.config.rescan_interval:
            only = None
            self._check_paths(self._files.values())
            self._discover(first=False)
        files = self._in_turn_order()
        if only is not None:
            wanted = only | self._behind
            files = [
                f
                for f in files
                if f.key in wanted
                or f.rotated is not None
                or (f.framer is not None and f.framer.deadline() is not None)
            ]
            self._check_paths(files)
            files = [f for f in files if f.key in self._files]
        self._behind = set()
        lines: list[Line | Block] = []
        checkpoints: list[Checkpoint] = []
        total = 0
        more = False
        for followed in files:
            if total >= _TURN_TOTAL:
                self._behind.add(followed.key)
                more = True
                continue
            size = self._size(followed)
            if followed.rotated is None and size < followed.offset:
                lines.extend(self._truncated(followed, size))
            before, produced = followed.offset, len(lines)
            read, at_end = self._read(followed, budget=_TURN_BYTES)
            lines.extend(read)
            total += followed.offset - before
            if not at_end:
                self._behind.add(followed.key)
                more = True
            if followed.rotated is not None:
                if followed.offset != before:
                    followed.quiet_since = now
                elif at_end and now - followed.quiet_since >= self.config.rotate_wait:
                    lines.extend(self._flush(followed))
                    self._forget(followed)
                    log.info("source %s: done with the rotated %s", self.name, followed.path)
                    continue
            # A turn that only skipped (the rest of an over-long line) need not cost a commit:
            # its checkpoint waits until lines come, the file is caught up, or a second passed.
            if followed.framer is not None:
                lines.extend(self._lines(followed, followed.framer.due(now), now))
            position = followed.position
            if position != followed.committed and (
                len(lines) > produced or at_end or now - followed.committed_at >= _SKIP_CHECKPOINT_S
            ):
                checkpoints.append(self._checkpoint(followed))
                followed.committed, followed.committed_at = position, now
        forgotten, self._forgotten = self._forgotten, []
        return lines, forgotten + checkpoints, more

    def _in_turn_order(self) -> list[_Followed]:
        """Draining files first (their lines are older); then the rest, from a different one each turn."""
        draining = [f for f in self._files.values() if f.rotated is not None]
        draining.sort(key=lambda f: f.rotated or 0.0)
        live = [f for f in self._files.values() if f.rotated is None]
        if live:
            self._next_first = (self._next_first + 1) % len(live)
            live = live[self._next_first :] + live[: self._next_first]
        return draining + live

    def _check_paths(self, files: Iterable[_Followed]) -> None:
        """Notice followed paths that now name another file, or none."""
        for followed in list(files):
            if followed.rotated is not None:
                continue
            try:
                stat = os.stat(followed.path)
            except OSError:
                self._moved(followed)
                continue
            if (stat.st_dev, stat.st_ino) != followed.id:
                self._moved(followed)

    def _size(self, followed: _Followed) -> int:
        try:
            return os.fstat(followed.handle.fileno()).st_size
        except OSError:
            return followed.offset

    def _truncated(self, followed: _Followed, size: int) -> list[Line | Block]:
        """copytruncate: take what was not yet read from the copy, then read the file again from 0."""
        log.info("source %s: %s was truncated; reading it again from the start", self.name, followed.path)
        followed.counts.truncations += 1
        lines = self._from_copy(followed)
        lines.extend(self._flush(followed))
        followed.cutter.restart(0, padding=True)
        followed.head, followed.head_len = "", 0
        followed.handle.seek(0)
        return lines

    def _is_copy(self, entry: os.DirEntry[str], saved: Mapping[str, Any]) -> bool:
        """Whether *entry* starts with the bytes *saved* starts with and reaches its offset: a copy.

        A file that is followed is never taken for a copy: it is read whole anyway.
        """
        head_len, offset = int(saved.get("head_len", 0)), int(saved.get("offset", 0))
        try:
            stat = entry.stat()
        except OSError:
            return False
        if not head_len or (stat.st_dev, stat.st_ino) in self._by_id or stat.st_size < max(offset, head_len):
            return False
        try:
            with open(entry.path, "rb") as copy:
                return _digest(copy.read(head_len)) == saved.get("head")
        except OSError:
            return False

    def _from_copy(self, followed: _Followed) -> list[Line | Block]:
        """The lines after *followed*'s offset in the copy logrotate made just before truncating it."""
        offset = followed.cutter.position
        saved = {"head": followed.head, "head_len": followed.head_len, "offset": offset}
        found = self._find(os.path.dirname(followed.path), lambda entry: self._is_copy(entry, saved))
        if found is None:
            return []
        try:
            handle = open(found, "rb", buffering=0)  # noqa: SIM115 - closed below, or followed
        except OSError:
            return []
        stat = os.fstat(handle.fileno())
        cutter = self._cutter(offset, None, skipping=followed.skipping)
        copy = _Followed(found, followed.path, handle, stat.st_dev, stat.st_ino, cutter, counts=followed.counts)
        handle.seek(offset)
        lines, _ = self._read(copy, budget=None)
        followed.counts.recovered_from_copies += 1
        log.info(
            "source %s: read %d bytes of %s from its copy %s", self.name, copy.offset - offset, followed.path, found
        )
        if found in set(self._matching_paths()):
            # The globs match the copy too: follow it from here on, so it is not read again as new.
            copy.path, copy.counts = found, self._counts(found)
            self._files[found] = self._by_id[copy.id] = copy
        else:
            lines.extend(self._flush(copy))
            handle.close()
        return lines

    def _flush(self, followed: _Followed) -> list[Line | Block]:
        """What *followed* holds back (a last line without a newline, an open multiline event),
        when the file is left for good."""
        lines: list[Line | Block] = []
        now = self.clock()
        last = followed.cutter.flush()
        if last is not None:
            lines.extend(self._line(followed, last.raw, now, (last.start, last.end), cut=False))
        if followed.framer is not None:
            lines.extend(self._lines(followed, followed.framer.flush(), now))
        return lines

    def _read(self, followed: _Followed, *, budget: int | None) -> tuple[list[Line | Block], bool]:
        """Complete lines from *followed*, while fewer than *budget* bytes of them may become
        events and fewer than ``_TURN_READ_BYTES`` were read (``None``: to the end); and whether
        the read met the file's end (a full budget counts as not yet).

        Each read is at most what is left of *budget*, so lines that all match stop at it (give
        or take one line), and stops once that is under a quarter of a chunk.
        """
        lines: list[Line | Block] = []
        read = matching = 0
        while budget is None or (budget - matching >= _CHUNK_BYTES // 4 and read < _TURN_READ_BYTES):
            size = _CHUNK_BYTES if budget is None else min(_CHUNK_BYTES, budget - matching)
            chunk = followed.handle.read(size)
            if not chunk:
                return lines, True
            read += len(chunk)
            followed.counts.bytes += len(chunk)
            matching += self._split(followed, chunk, lines)
        return lines, False

    def _split(self, followed: _Followed, chunk: bytes, lines: list[Line | Block]) -> int:
        """Add the lines *chunk* completes to *lines*; how many of their bytes may become events."""
        now = self.clock()
        matching = 0
        for piece in followed.cutter.split(chunk):
            if isinstance(piece, Run):
                count = piece.lines
                followed.counts.lines += count
                scanned = self._prescan(piece.data, self.name) if self._prescan is not None else None
                matching += len(piece.data) if scanned is None else scanned.matching_bytes
                lines.append(Block(piece.data, count, self.name, followed.path, now, scanned))
            else:
                matching += len(piece.raw) + 1
                lines.extend(self._line(followed, piece.raw, now, (piece.start, piece.end), cut=piece.cut))
        return matching

    def _line(self, followed: _Followed, raw: bytes, now: float, span: tuple[int, int], *, cut: bool) -> list[Line]:
        """The line(s) one raw line makes: itself, or what its file's framer gives out for it."""
        text = raw.decode("utf-8", errors="replace")
        text = text.removesuffix("\r")
        if cut:
            followed.counts.cut_lines += 1
            text += CUT_MARKER
        followed.counts.lines += 1
        if followed.framer is None:
            return [Line(text=text, source=self.name, time=now, path=followed.path)]
        return self._lines(followed, followed.framer.feed(text, span[0], span[1], now), now)

    def _lines(self, followed: _Followed, records: list[Record], now: float) -> list[Line]:
        return [Line(text=r.text, source=self.name, time=now, path=followed.path, fields=r.fields) for r in records]


def _rotated_key(path: str, inode: int) -> str:
    return f"{path} (rotated {inode})"


def _file_id(path: str) -> FileId | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


def _same_file(entry: os.DirEntry[str], saved: Mapping[str, Any]) -> bool:
    try:
        stat = entry.stat()
    except OSError:
        return False
    return (stat.st_dev, stat.st_ino) == (saved.get("dev"), saved.get("ino"))


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

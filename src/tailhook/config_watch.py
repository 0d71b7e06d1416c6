"""Watch the config file and the rule files; say when what they hold has changed.

What is watched
    The config file's folder; each rule glob's base (its longest leading folder
    without glob characters, recursively for a ``**`` glob, and while it is
    missing its nearest existing parent, to see it made); the folder of each
    rule file the globs match. For every symlink on the way to one of these,
    the folder that holds the link is watched too, and the way followed to its
    end. That is what a Kubernetes ConfigMap or Secret volume needs: there
    ``rules.yaml -> ..data/rules.yaml`` and ``..data -> ..2026_11_29_10_00_00.1``,
    and the kubelet updates the volume by writing a new timestamped folder and
    renaming a ``..data_tmp`` link over ``..data``, which is an event in the
    mounted folder itself, not in the file's.

What counts as a change
    An event only says "look". What decides is a fingerprint of what the paths
    name now: the config file and every file the rule globs match (the same
    ``glob`` calls the loader makes), each with a hash of its content, or that
    it is missing or unreadable. Another file in the same folder, a ``touch``,
    or a ConfigMap update that left these files' content as it was changes
    nothing. Size, mtime and the resolved path are deliberately left out: they
    change when the content does not.

When
    After the first event, once ``debounce_s`` pass without another, and at
    most ``max_delay_s`` after it: an editor's burst of writes becomes one
    reload, and a folder that never goes quiet (a busy log beside the config)
    still gets its reload within ``max_delay_s``.

What counts as loaded
    The fingerprint taken when the watch is made (right after the config was
    loaded), then the one taken just before each load (``loading()``): a load
    that fails is not retried until the files change again, a SIGHUP reload
    makes the pending file-change reload unnecessary, and an edit made while a
    load reads the files is seen afterwards. Files that a reload newly names
    (a new ``rules.paths`` glob) are not known to be loaded, so one more reload
    follows such a change: a reload too many, never one too few.

Without inotify
    When the kernel gives no watches, the fingerprint is taken every
    ``poll_interval_s`` instead, and that is logged once.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence

import watchfiles

__all__ = ["ConfigWatch", "Fingerprint", "WatchedPaths", "fingerprint", "folders_to_watch"]

log = logging.getLogger(__name__)

WatchedPaths = tuple[str, Sequence[str]]
"""The config file, and the rule globs it names (``Config.path``, ``Config.rule_paths``)."""

Fingerprint = Mapping[str, str]
"""Per file that the config and rules consist of now: a hash of its content, or why there is none."""

_MAX_SYMLINK_HOPS = 40
"""As the kernel's ``ELOOP`` limit."""


class ConfigWatch:
    """Calls ``changed`` with the files that changed, after each change to the config or rule files.

    ``start()`` starts watching, ``run()`` acts on what is seen until cancelled. *paths* is asked
    again after each change, so the folders watched follow what the running config names.
    """

    def __init__(
        self,
        paths: Callable[[], WatchedPaths],
        changed: Callable[[list[str]], Awaitable[object]],
        *,
        debounce_s: float = 0.25,
        max_delay_s: float = 1.0,
        poll_interval_s: float = 1.0,
        poll: bool = False,
    ) -> None:
        """Take the files as they are now as loaded (it reads them: make it right after loading).

        *debounce_s*: seconds without an event before looking; *max_delay_s*: seconds from the
        first event after which we look even if events go on; *poll_interval_s*: seconds between
        looks when there are no filesystem events (or *poll* asks for none).
        """
        self._paths = paths
        self._changed = changed
        self.debounce_s = debounce_s
        self.max_delay_s = max_delay_s
        self.poll_interval_s = poll_interval_s
        self._polling = poll
        self._loaded: Fingerprint = fingerprint(*paths())
        self._stirred = asyncio.Event()
        """Set by an event in a watched folder, or by a watcher that ended: look."""
        self._watchers: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._rearm = False
        self.watched: Mapping[str, bool] = {}
        """The folders watched now, each with whether recursively."""
        self.looks = 0
        """How many times the files were compared with what was loaded."""

    async def start(self) -> None:
        """Watch from now on (``run()`` acts on what is seen)."""
        if not self._polling and not self._watchers:
            await self._arm()

    async def run(self) -> None:
        """Reload on each change until cancelled."""
        try:
            await self.start()
            while not self._polling:
                await self._stirred.wait()
                await self._settle()
                await self._look()
                if self._rearm or await asyncio.to_thread(folders_to_watch, *self._paths()) != self.watched:
                    await self._disarm()
                    await self._arm()
            await self._disarm()
            while True:
                await asyncio.sleep(self.poll_interval_s)
                await self._look()
        finally:
            await self._disarm()

    @contextlib.asynccontextmanager
    async def loading(self) -> AsyncIterator[None]:
        """Wrap one load of the config: the files as they were just before it count as loaded.

        A file that the paths match only after it (a new glob's, or one made while it read) is
        not known to be loaded: the next look reloads.
        """
        paths = self._paths()
        before = await asyncio.to_thread(fingerprint, *paths)
        yield
        if self._paths() != paths:
            after = await asyncio.to_thread(fingerprint, *self._paths())
            before = {path: before.get(path, "not loaded") for path in after}
        self._loaded = before

    async def _arm(self) -> None:
        folders = await asyncio.to_thread(folders_to_watch, *self._paths())
        self._rearm = False
        self._stop = asyncio.Event()
        self._watchers = [
            asyncio.create_task(self._watch(sorted(f for f, r in folders.items() if r == recursive), recursive))
            for recursive in sorted(set(folders.values()))
        ]
        self.watched = folders
        log.debug("watching %s for changes to the config and rule files", ", ".join(sorted(folders)))
        await asyncio.sleep(0)  # watchfiles registers its inotify watches in the first step of each task
        self._stirred.set()  # and look once: what changed while nothing watched

    async def _disarm(self) -> None:
        if not self._watchers:
            return
        self._stop.set()  # the watcher threads see it within a step; only then can they be cancelled
        for watcher in self._watchers:
            watcher.cancel()
        # asyncio.wait, not suppress(CancelledError) around each: that would swallow our own cancellation.
        await asyncio.wait(self._watchers)
        self._watchers = []
        self.watched = {}

    async def _look(self) -> None:
        now = await asyncio.to_thread(fingerprint, *self._paths())
        self.looks += 1
        changed = sorted(p for p in self._loaded.keys() | now.keys() if self._loaded.get(p) != now.get(p))
        if changed:
            self._loaded = now
            await self._changed(changed)

    async def _settle(self) -> None:
        """Wait until ``debounce_s`` pass without an event, at most ``max_delay_s``."""
        loop = asyncio.get_running_loop()
        latest = loop.time() + self.max_delay_s
        while True:
            self._stirred.clear()
            quiet_s = min(self.debounce_s, latest - loop.time())
            if quiet_s <= 0:
                return
            try:
                async with asyncio.timeout(quiet_s):
                    await self._stirred.wait()
            except TimeoutError:
                return

    async def _watch(self, folders: list[str], recursive: bool) -> None:
        """Stir on every event in *folders*; when they cannot be watched, say why and poll."""
        stop = self._stop
        try:
            async for _ in watchfiles.awatch(
                *folders, watch_filter=None, debounce=50, step=5, stop_event=stop, recursive=recursive
            ):
                self._stirred.set()
        except FileNotFoundError:  # a folder went away between listing and watching: list again
            self._rearm = True
        except (OSError, RuntimeError) as exc:  # e.g. no inotify watches left
            if not self._polling:
                log.warning(
                    "cannot watch the config and rule files (%s); looking at them every %gs instead",
                    exc,
                    self.poll_interval_s,
                )
            self._polling = True
        finally:
            if not stop.is_set():
                self._stirred.set()  # the watcher ended on its own: let run() see why


def fingerprint(config_file: str, rule_globs: Iterable[str]) -> dict[str, str]:
    """What the config and rule files hold now: per file, a hash of its content, or why there is none.

    The rule files are those the globs match now (a plain path that matches nothing counts as
    missing), as the loader finds them.
    """
    files = dict.fromkeys([config_file])
    for pattern in rule_globs:
        matched = sorted(glob.glob(pattern, recursive=True))
        if not matched and not glob.has_magic(pattern):
            matched = [pattern]
        files.update(dict.fromkeys(matched))
    return {path: _content_hash(path) for path in files}


def _content_hash(path: str) -> str:
    try:
        with open(path, "rb") as file:
            return hashlib.blake2b(file.read(), digest_size=16).hexdigest()  # config and rule files are small
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable: {exc.strerror}"


def folders_to_watch(config_file: str, rule_globs: Iterable[str]) -> dict[str, bool]:
    """The folders whose events may change the fingerprint, each with whether to watch it recursively."""
    folders: dict[str, bool] = {}

    def add(folder: str, *, recursive: bool = False) -> None:
        folder = os.path.abspath(folder)
        while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
            folder, recursive = os.path.dirname(folder), False  # watch the parent to see it made
        folders[folder] = folders.get(folder, False) or recursive

    def add_file(path: str) -> None:
        holders, end = _symlinks_on_the_way(path)
        for holder in holders:
            add(holder)
        add(os.path.dirname(end))

    add_file(config_file)
    for pattern in rule_globs:
        base = _glob_base(pattern)
        holders, end = _symlinks_on_the_way(base)
        for holder in holders:
            add(holder)
        add(end, recursive="**" in pattern)
        for path in glob.glob(pattern, recursive=True) if glob.has_magic(pattern) else [pattern]:
            add_file(path)
    return folders


def _symlinks_on_the_way(path: str) -> tuple[list[str], str]:
    """The folders that hold a symlink met on the way to *path*, and where the way ends."""
    holders: list[str] = []
    path = os.path.abspath(path)
    for _ in range(_MAX_SYMLINK_HOPS):
        parts = path.split(os.sep)
        for i in range(2, len(parts) + 1):
            prefix = os.sep.join(parts[:i])
            if os.path.islink(prefix):
                holder = os.path.dirname(prefix)
                holders.append(holder)
                try:
                    target = os.readlink(prefix)
                except OSError:  # replaced as we looked: the next event looks again
                    return holders, path
                path = os.path.normpath(os.path.join(holder, target, *parts[i:]))
                break
        else:
            return holders, path
    return holders, path


def _glob_base(pattern: str) -> str:
    """The longest leading folder of *pattern* without glob characters (a plain path: its folder)."""
    parts: list[str] = []
    for part in pattern.split(os.sep):
        if glob.has_magic(part):
            break
        parts.append(part)
    base = os.sep.join(parts) or os.sep
    if base == pattern:
        base = os.path.dirname(pattern) or "."
    return base

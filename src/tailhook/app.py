"""The daemon: wires sources → rules → storm control → routes → dispatcher → sinks.

``App.run`` owns the one event loop's tasks in a ``TaskGroup``. Shutdown on
SIGTERM or SIGINT reads as a sequence:

1. stop the sources (what they read is committed, or is read again next time);
2. store storm control's open windows, so the next start goes on with them
   (a dry run, whose spool is thrown away, sends what they hold as digests);
3. let the dispatcher deliver what is due, bounded by ``shutdown_timeout``;
4. cancel the rest and close the sinks. What is left waits in the spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from tailhook import __version__
from tailhook.config import Config, FileSourceConfig
from tailhook.dispatch import Dispatcher
from tailhook.events import Delivery, Line, Notification
from tailhook.routes import Router
from tailhook.rules import RuleSet
from tailhook.sinks import Sink
from tailhook.sinks.console import ConsoleSink
from tailhook.sinks.discord import DiscordSink, GlobalPause, ProbeResult, probe_webhook
from tailhook.sources import Source
from tailhook.sources.file import FileSource
from tailhook.spool import Checkpoint, Spool, SpoolFull
from tailhook.storm import StormControl

__all__ = ["EX_CONFIG", "App", "probe_destinations"]

log = logging.getLogger(__name__)

EX_CONFIG = 78
CONSOLE = "console"
DISK_FULL_RETRY_S = 1.0


class App:
    def __init__(self, config: Config, *, dry_run: bool = False) -> None:
        self.config = config
        self.dry_run = dry_run
        self.drain_timeout_s = config.shutdown_timeout
        self.rules = RuleSet(config.rules, host=config.host)
        self._storm_of = {rule.name: rule.storm for rule in self.rules.rules}
        self.storm = StormControl(config.storm, host=config.host)
        self.router = Router(config.routes) if config.destinations else Router(())
        self._console_only = not config.destinations
        self.spool: Spool | None = None
        self.dispatcher: Dispatcher | None = None
        self._stopping = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._disk_full = False

    # ── lifecycle ───────────────────────────────────────────────────────────

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; the process exit code."""
        if not self.dry_run:
            return await self._run_in(self.config.state_dir)
        # A dry run never touches the real spool: its alerts and checkpoints belong to the real daemon.
        with tempfile.TemporaryDirectory(prefix="tailhook-dry-run-") as scratch:
            return await self._run_in(Path(scratch))

    async def _run_in(self, state_dir: Path) -> int:
        try:
            self.spool = await Spool.open(
                state_dir, max_bytes=self.config.spool.max_bytes, max_age=self.config.spool.max_age
            )
        except OSError as exc:
            log.error("cannot use state_dir %s: %s", state_dir, exc.strerror or exc)
            return 1
        self._session = aiohttp.ClientSession(headers={"User-Agent": f"tailhook/{__version__}"})
        try:
            if not self.dry_run and self.config.destinations and self.config.probe.mode != "off":
                code = await self._probe()
                if code:
                    return code
            self.dispatcher = Dispatcher(self._sinks(), self.spool, host=self.config.host)
            self.storm.restore(await self.spool.storm_windows(), self._storm_of.get)
            return await self._serve(await self._sources())
        finally:
            await self._session.close()
            await self.spool.close()

    async def _serve(self, sources: Sequence[Source]) -> int:
        assert self.dispatcher is not None and self.spool is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stopping.set)
        for source in sources:
            await source.start()
        pending = await self.spool.pending()
        log.info(
            "tailhook %s started on %s: %d sources, %d rules, destinations: %s; %d alerts waiting in the spool",
            __version__,
            self.config.host,
            len(sources),
            len(self.rules),
            ", ".join(self.dispatcher.sinks) + (" (dry run: console only)" if self.dry_run else ""),
            pending,
        )
        _notify_systemd("READY=1")
        try:
            async with asyncio.TaskGroup() as group:
                delivering = group.create_task(self.dispatcher.run(), name="dispatcher")
                reading = [group.create_task(s.run(self.ingest), name=f"source-{s.name}") for s in sources]
                ticking = group.create_task(self._tick_storm(), name="storm")
                await self._stopping.wait()
                _notify_systemd("STOPPING=1")
                log.info("stopping: no more reading; delivering what is due (at most %gs)", self.drain_timeout_s)
                # 1. stop the sources; what they read is committed or will be read again
                for task in [*reading, ticking]:
                    task.cancel()
                # 2. storm windows stay open across the restart; a dry run's spool does not survive it
                await self._commit(self._route(self.storm.due(float("inf") if self.dry_run else None)))
                # 3. deliver what is due, bounded
                if not await self.dispatcher.drain(self.drain_timeout_s):
                    log.warning("stopping with %d alerts in the spool; they are sent at the next start",
                                await self.spool.pending())  # fmt: skip
                # 4. cancel the rest
                delivering.cancel()
        finally:
            for sink in self.dispatcher.sinks.values():
                await sink.close()
        return 0

    # ── the pipeline ────────────────────────────────────────────────────────

    async def ingest(self, lines: Sequence[Line], checkpoints: Sequence[Checkpoint] = ()) -> None:
        """Rules and storm control over one batch of lines; the results and checkpoints committed together."""
        notifications: list[Notification] = []
        for line in lines:
            for event in self.rules.match(line):
                notifications.extend(self.storm.admit(event, self._storm_of[event.rule]))
        await self._commit(self._route(notifications), checkpoints)

    def _route(self, notifications: Sequence[Notification]) -> list[Delivery]:
        if self._console_only:
            return [Delivery(CONSOLE, n) for n in notifications]
        return [d for n in notifications for d in self.router.deliveries(n)]

    async def _commit(self, deliveries: Sequence[Delivery], checkpoints: Sequence[Checkpoint] = ()) -> None:
        """Store in the spool with the storm windows that changed; while the disk is full, wait for space.

        The sources wait with us: they read on only after their commit.
        """
        assert self.spool is not None
        while True:
            windows = self.storm.changes()
            if not deliveries and not checkpoints and not windows:
                return
            try:
                await self.spool.commit(deliveries, checkpoints, windows)
            except SpoolFull as exc:
                self.storm.unsaved(windows)
                if not self._disk_full:
                    log.error("the disk of the spool is full (%s); reading is paused until there is space", exc)
                    self._disk_full = True
                await asyncio.sleep(DISK_FULL_RETRY_S)
                continue
            if self._disk_full:
                log.warning("the spool has space again; reading goes on")
                self._disk_full = False
            return

    async def _tick_storm(self) -> None:
        """Send digests as storm windows close."""
        while True:
            deadline = self.storm.next_deadline()
            delay = 1.0 if deadline is None else min(1.0, max(0.0, deadline - self.storm.clock()))
            await asyncio.sleep(delay)
            await self._commit(self._route(self.storm.due()))

    # ── building the stages ─────────────────────────────────────────────────

    async def _sources(self) -> list[Source]:
        assert self.spool is not None
        sources: list[Source] = []
        for config in self.config.sources:
            checkpoints = await self.spool.checkpoints(config.name)
            if isinstance(config, FileSourceConfig):
                sources.append(FileSource(config, checkpoints=checkpoints))
            else:
                from tailhook.sources.journald import JournaldSource  # noqa: PLC0415 - optional extra

                sources.append(JournaldSource(config, checkpoints=checkpoints))
        return sources

    def _sinks(self) -> dict[str, Sink]:
        if self._console_only:
            return {CONSOLE: ConsoleSink(CONSOLE)}
        if self.dry_run:
            return {name: ConsoleSink(name) for name in self.config.destinations}
        assert self._session is not None
        pause = GlobalPause()
        return {
            name: DiscordSink(destination, session=self._session, global_pause=pause)
            for name, destination in self.config.destinations.items()
        }

    async def _probe(self) -> int:
        assert self._session is not None
        results = await probe_destinations(self.config, session=self._session)
        exit_now = False
        for result in results:
            if result.ok:
                log.info("destination %s: %s", result.destination, result.detail)
            elif result.dead and self.config.probe.on_failure == "exit":
                log.error(
                    "destination %s: %s; the webhook does not exist or its token is wrong",
                    result.destination,
                    result.detail,
                )
                exit_now = True
            else:
                log.warning("destination %s: %s; alerts wait until it answers", result.destination, result.detail)
        return EX_CONFIG if exit_now else 0


async def probe_destinations(config: Config, *, session: aiohttp.ClientSession) -> list[ProbeResult]:
    """Check every destination's webhook with Discord, all at once, as ``probe.mode`` says."""
    message = None
    if config.probe.mode == "message":
        message = (
            f"tailhook {__version__} started on {config.host}: {len(config.sources)} sources, {len(config.rules)} rules"
        )
    checks = (probe_webhook(d, session=session, message=message) for d in config.destinations.values())
    return list(await asyncio.gather(*checks))


def _notify_systemd(state: str) -> None:
    """Tell systemd (``Type=notify``) about our state, when it is listening."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(state.encode(), address)

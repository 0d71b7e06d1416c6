"""The daemon: wires sources → rules → storm control → routes → dispatcher → sinks.

``App.run`` owns the one event loop's tasks in a ``TaskGroup``. Shutdown on
SIGTERM or SIGINT reads as a sequence:

1. stop the sources (no new lines are read);
2. send what storm control still holds as digests;
3. let the dispatcher deliver what is queued, bounded by ``drain_timeout_s``;
4. cancel the rest and close the sinks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Sequence

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
from tailhook.storm import StormControl

__all__ = ["EX_CONFIG", "App", "probe_destinations"]

log = logging.getLogger(__name__)

EX_CONFIG = 78
CONSOLE = "console"


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
        self.dispatcher: Dispatcher | None = None
        self._stopping = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None

    # ── lifecycle ───────────────────────────────────────────────────────────

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; the process exit code."""
        self._session = aiohttp.ClientSession(headers={"User-Agent": f"tailhook/{__version__}"})
        try:
            if not self.dry_run and self.config.destinations and self.config.probe.mode != "off":
                code = await self._probe()
                if code:
                    return code
            sinks = self._sinks()
            self.dispatcher = Dispatcher(sinks)
            return await self._serve(self._sources())
        finally:
            await self._session.close()

    async def _serve(self, sources: Sequence[Source]) -> int:
        assert self.dispatcher is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stopping.set)
        for source in sources:
            await source.start()
        log.info(
            "tailhook %s started on %s: %d sources, %d rules, destinations: %s",
            __version__,
            self.config.host,
            len(sources),
            len(self.rules),
            ", ".join(self.dispatcher.sinks) + (" (dry run: console only)" if self.dry_run else ""),
        )
        _notify_systemd("READY=1")
        try:
            async with asyncio.TaskGroup() as group:
                delivering = group.create_task(self.dispatcher.run(), name="dispatcher")
                reading = [group.create_task(s.run(self.ingest), name=f"source-{s.name}") for s in sources]
                ticking = group.create_task(self._tick_storm(), name="storm")
                await self._stopping.wait()
                _notify_systemd("STOPPING=1")
                log.info("stopping: no more reading; delivering what is queued (at most %gs)", self.drain_timeout_s)
                # 1. stop the sources
                for task in [*reading, ticking]:
                    task.cancel()
                # 2. what storm control holds goes out as digests
                await self._route(self.storm.due(float("inf")))
                # 3. deliver what is queued, bounded
                if not await self.dispatcher.drain(self.drain_timeout_s):
                    log.warning("stopping with %d alerts undelivered", self.dispatcher.pending())
                # 4. cancel the rest
                delivering.cancel()
        finally:
            for sink in self.dispatcher.sinks.values():
                await sink.close()
        return 0

    # ── the pipeline ────────────────────────────────────────────────────────

    async def ingest(self, lines: Sequence[Line]) -> None:
        """Rules and storm control over one batch of lines; the results are queued."""
        notifications: list[Notification] = []
        for line in lines:
            for event in self.rules.match(line):
                notifications.extend(self.storm.admit(event, self._storm_of[event.rule]))
        if notifications:
            await self._route(notifications)

    async def _route(self, notifications: Sequence[Notification]) -> None:
        assert self.dispatcher is not None
        for notification in notifications:
            if self._console_only:
                await self.dispatcher.put([Delivery(CONSOLE, notification)])
            else:
                await self.dispatcher.put(self.router.deliveries(notification))

    async def _tick_storm(self) -> None:
        """Send digests as storm windows close."""
        while True:
            deadline = self.storm.next_deadline()
            delay = 1.0 if deadline is None else min(1.0, max(0.0, deadline - self.storm.clock()))
            await asyncio.sleep(delay)
            due = self.storm.due()
            if due:
                await self._route(due)

    # ── building the stages ─────────────────────────────────────────────────

    def _sources(self) -> list[Source]:
        sources: list[Source] = []
        for config in self.config.sources:
            if isinstance(config, FileSourceConfig):
                sources.append(FileSource(config))
            else:
                from tailhook.sources.journald import JournaldSource  # noqa: PLC0415 - optional extra

                sources.append(JournaldSource(config))
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

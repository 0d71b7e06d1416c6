"""The daemon: wires sources → the pipeline (rules → storm control → silences →
routes) → spool → dispatcher → sinks.

SIGHUP, or a change to the config file or a rule file (``ConfigWatch``, one
reload at a time either way), reloads them: the next pipeline (rules, routes,
storm defaults, silences, absence rules) takes over the running one's state
and is swapped in at once, and destinations change in place (a destination whose
webhooks or options changed gets a new sink, which brings a dead one back; in
one left as it was, what is dead is asked about again now); sources,
``state_dir``, ``spool`` and ``http`` need a restart. A config that does not
load leaves the running one in place, and says why.

``App.run`` owns the one event loop's tasks in a ``TaskGroup``. Shutdown on
SIGTERM or SIGINT reads as a sequence:

1. stop the sources (what they read is committed, or is read again next time);
2. store storm control's keys (open windows and all), so the next start goes on with them
   (a dry run, whose spool is thrown away, sends what they hold as digests);
3. let the dispatcher deliver what is due, bounded by ``shutdown_timeout``;
4. cancel the rest and close the sinks. What is left waits in the spool.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import signal
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import aiohttp

from tailhook import __version__, systemd
from tailhook._errors import describe
from tailhook._units import seconds_in_words
from tailhook.config import EX_CONFIG, Config, ConfigError, FileSourceConfig, load_config
from tailhook.config_watch import ConfigWatch
from tailhook.dispatch import ANNOUNCEMENT_ROOM, Dispatcher
from tailhook.engines import ENGINES, best_available
from tailhook.events import Delivery, Line
from tailhook.fleet import Fleet, FleetUnavailable
from tailhook.fleet_storm import FleetStorm, ShareChange, instance_id
from tailhook.heartbeat import Heartbeat
from tailhook.http import HttpServer
from tailhook.metrics import Metric, Registry, counter, gauge
from tailhook.pipeline import CONSOLE, Pipeline, Prescanned, router_for
from tailhook.report import DailyReport
from tailhook.rules import RuleSet, rule_set
from tailhook.sinks import Sink
from tailhook.sinks.console import ConsoleSink
from tailhook.sinks.discord import Counts, DiscordSink, GlobalPause, ProbeResult, probe_webhook
from tailhook.sources import Block, Source
from tailhook.sources.file import FileSource
from tailhook.sources.journald import JournaldSource
from tailhook.spool import Checkpoint, Spool, SpoolFull

__all__ = ["EX_CONFIG", "App", "probe_destinations"]

log = logging.getLogger(__name__)

DISK_FULL_RETRY_S = 1.0
STATUS_EVERY_S = 10.0
"""How often systemd's status line (``systemctl status``) is brought up to date, at most."""
GC_THRESHOLD = 20_000
"""New container objects (net) between two runs of the youngest generation of the garbage collector
while the daemon runs, instead of Python's 700 (see ``_collect_less``)."""


class App:
    def __init__(self, config: Config, *, dry_run: bool = False, rules: RuleSet | None = None) -> None:
        """*rules*: *config*'s rules, built already (``rule_set``); else built here."""
        self.config = config
        self.dry_run = dry_run
        self.drain_timeout_s = config.shutdown_timeout
        self.pipeline = Pipeline.build(config, rule_set(config, host=config.host) if rules is None else rules)
        """Rules → storm control → routes; a reload swaps in the next one."""
        self.metrics = Registry()
        """What /metrics shows: each component as it registers, reporting its own."""
        self.metrics.register(self, self.pipeline)
        self._console_only = not config.destinations
        self.spool: Spool | None = None
        self.dispatcher: Dispatcher | None = None
        self.heartbeat: Heartbeat | None = None
        self.report: DailyReport | None = None
        self._stopping = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._global_pause = GlobalPause()
        self.fleet: Fleet | None = None
        """Fleet mode (``fleet:``): pacing shared with the fleet's other tailhooks, from the start's
        config (a reload that changes ``fleet:`` takes effect at the next start)."""
        self.fleet_storm: FleetStorm | None = None
        """Fleet mode's storm keys: the first alerts of a key claimed across the fleet, one digest."""
        self._disk_full = False
        self._ready = False
        self.reloads: Counter[str] = Counter()
        """Config reloads, per result: ``success`` or ``failure``."""
        self.loaded_at = time.time()
        """When the running config was loaded (the start, or the last successful reload)."""
        self._reloading = asyncio.Lock()
        """One reload at a time, whether a signal or a file change asked for it."""
        self.config_watch = ConfigWatch(lambda: (self.config.path, self.config.rule_paths), self._reload_for)
        self._counts: defaultdict[str, Counts] = defaultdict(Counts)
        """Per destination, its Discord requests and 429s, across the sinks reloads give it."""

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
        # trust_env: HTTPS_PROXY, HTTP_PROXY and NO_PROXY apply to destinations without their own `proxy:`.
        self._session = aiohttp.ClientSession(headers={"User-Agent": f"tailhook/{__version__}"}, trust_env=True)
        try:
            if self.config.fleet is not None and not self.dry_run:
                try:
                    self.fleet = Fleet(self.config.fleet)
                except FleetUnavailable as exc:
                    log.error("%s", exc)
                    return EX_CONFIG
                self.fleet_storm = FleetStorm(self.fleet, host=self.config.host, instance=instance_id(state_dir))
                self.pipeline.storm.closures = []  # the windows that close, for the fleet to take
                self.metrics.register(self.fleet, self.fleet_storm)
                log.info("fleet %s: pacing shared through Redis at %s", self.config.fleet.name,
                         self.config.fleet.redacted())  # fmt: skip
            if not self.dry_run and self.config.destinations and self.config.probe.mode != "off":
                code = await self._probe()
                if code:
                    return code
            self.dispatcher = Dispatcher(
                self._sinks(), self.spool, host=self.config.host, flood_after_s=self.config.storm.flood_after
            )
            self._edit_storms(self.config)
            self.metrics.register(self.dispatcher, self.spool)
            self.report = self._daily_report()  # made now, while every counter it reads is zero
            spool = self.spool
            self.pipeline.restore(
                await spool.storm_keys(),
                held=await spool.silence_held(),
                silences=await spool.silences(),
                absences=await spool.absences(),
                escalations=await spool.escalations(),
            )
            if self.fleet_storm is not None:
                self.fleet_storm.restore(await spool.fleet_shares())
            http = self._http_server()
            if http is not None:
                try:
                    await http.start()
                except OSError as exc:
                    log.error("%s", exc.strerror or exc)
                    return 1
            sources = await self._sources()
            self.metrics.register(*sources)
            try:
                return await self._serve(sources)
            finally:
                if http is not None:
                    await http.stop()
        finally:
            if self.fleet is not None:
                await self.fleet.close()
            await self._session.close()
            await self.spool.close()

    async def _serve(self, sources: Sequence[Source]) -> int:
        assert self.dispatcher is not None and self.spool is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stopping.set)
        reload_wanted = asyncio.Event()
        loop.add_signal_handler(signal.SIGHUP, reload_wanted.set)
        for source in sources:
            await source.start()
        await self.config_watch.start()  # from here on, edits to the config and rule files are seen
        pending = await self.spool.pending()
        log.info(
            "tailhook %s started on %s: %d sources, %d rules, destinations: %s; %d alerts waiting in the spool",
            __version__,
            self.config.host,
            len(sources),
            len(self.pipeline.rules),
            ", ".join(self.dispatcher.sinks) + (" (dry run: console only)" if self.dry_run else ""),
            pending,
        )
        log.info("%s", describe_matching(self.pipeline.rules))
        systemd.notify("READY=1")
        self._ready = True
        collect_as_before = _collect_less()
        try:
            async with asyncio.TaskGroup() as group:
                delivering = group.create_task(self.dispatcher.run(), name="dispatcher")
                reading = [group.create_task(s.run(self.ingest), name=f"source-{s.name}") for s in sources]
                ticking = group.create_task(self._tick(), name="ticker")
                reloading = group.create_task(self._reload_on(reload_wanted), name="reload")
                watching = group.create_task(self.config_watch.run(), name="config-watch")
                informing = group.create_task(self._inform_systemd(sources), name="systemd")
                beating = group.create_task(self._heartbeat(sources), name="heartbeat")
                reporting = group.create_task(self.report.run(), name="report") if self.report else None
                await self._stopping.wait()
                self._ready = False
                reloading.cancel()
                systemd.notify("STOPPING=1")
                log.info("stopping: no more reading; delivering what is due (at most %gs)", self.drain_timeout_s)
                # 1. stop the sources and the config watch; what they read is committed or will be read again
                for task in [*reading, ticking, watching, informing, beating, *filter(None, [reporting])]:
                    task.cancel()
                # 2. storm windows stay open across the restart; a dry run's spool does not survive it.
                #    Bounded too: on a disk that stays full the commit would wait for ever.
                try:
                    async with asyncio.timeout(self.drain_timeout_s):
                        await self._commit(self.pipeline.flush if self.dry_run else self.pipeline.tick, ticked=True)
                except TimeoutError:
                    log.error("stopping without storing the storm windows: the disk of the spool is still full")
                # 3. deliver what is due, bounded
                if not await self.dispatcher.drain(self.drain_timeout_s):
                    log.warning("stopping with %d alerts in the spool; they are sent at the next start",
                                await self.spool.pending())  # fmt: skip
                # 4. cancel the rest
                delivering.cancel()
        finally:
            collect_as_before()
            for sink in self.dispatcher.sinks.values():
                await sink.close()
        return 0

    # ── the pipeline ────────────────────────────────────────────────────────

    async def ingest(self, lines: Sequence[Line | Block], checkpoints: Sequence[Checkpoint] = ()) -> None:
        """The pipeline over one batch of lines; what it makes and the checkpoints committed together."""
        await self._commit(self.pipeline.ingest(lines), checkpoints)

    def prescan(self, data: bytes, source: str) -> Prescanned:
        """The running pipeline's ``prescan`` (whichever runs when the source reads)."""
        return self.pipeline.prescan(data, source)

    async def _commit(
        self,
        made: Sequence[Delivery] | Callable[[], Sequence[Delivery]],
        checkpoints: Sequence[Checkpoint] = (),
        *,
        ticked: bool = False,
    ) -> None:
        """Store in the spool with the storm windows that changed; while the disk is full, wait for space.
        *made*: the deliveries, or what makes them (``Pipeline.tick``: in fleet mode it runs under the
        fleet's lock, so that the windows it closes are the fleet's to take in this commit). In fleet
        mode, the fleet decides on them first (*ticked*: they are what time brought, not lines; the
        fleet's digests due come with them).

        The sources wait with us: they read on only after their commit.
        """
        assert self.spool is not None
        fleet = self.fleet_storm
        shares: list[ShareChange] = []
        if fleet is None:
            deliveries = made() if callable(made) else made
            changes = self.pipeline.changes()
        else:
            async with fleet.lock:  # the storm's changes as the fleet's last decision left them
                deliveries = made() if callable(made) else made
                decided = self.pipeline.route(await fleet.due()) if ticked else []
                changes = self.pipeline.changes()
                deliveries = [
                    *await fleet.filter(deliveries, changes.storm, self.pipeline.storm, admitted=not ticked),
                    *decided,
                ]
                shares = fleet.changes()
        while True:
            if not deliveries and not checkpoints and not changes and not shares:
                return
            try:
                await self.spool.commit(
                    deliveries,
                    checkpoints,
                    changes.storm,
                    silences=changes.silences,
                    absences=changes.absences,
                    escalations=changes.escalations,
                    fleet=shares,
                )
            except SpoolFull as exc:
                self.pipeline.unsaved(changes)
                if fleet is not None:
                    fleet.unsaved(shares)
                if not self._disk_full:
                    log.error("the disk of the spool is full (%s); reading is paused until there is space", exc)
                    self._disk_full = True
                await asyncio.sleep(DISK_FULL_RETRY_S)
                changes = self.pipeline.changes()
                shares = [] if fleet is None else fleet.changes()
                continue
            if self._disk_full:
                log.warning("the spool has space again; reading goes on")
                self._disk_full = False
            return

    async def _tick(self) -> None:
        """What time alone brings (digests as storm windows close, resolved notes, the ends of
        silences), as it comes; silences added or expired by ``tailhook silence`` within a second."""
        assert self.spool is not None
        while True:
            fleet = self.fleet_storm
            deadlines = [self.pipeline.next_deadline(), None if fleet is None else fleet.next_deadline()]
            deadline = min((d for d in deadlines if d is not None), default=None)
            delay = 1.0 if deadline is None else min(1.0, max(0.0, deadline - self.pipeline.clock()))
            await asyncio.sleep(delay)
            stored = await self.spool.silences_changed()
            if stored is not None:
                self.pipeline.silences.replace_stored(stored)
            if self.fleet is not None:
                await self.fleet.rejoin()
            # Shielded: a stop cancels the ticker, and a fleet digest this host won must be stored
            # with the share it decides (the stop's own commit waits for this one).
            await asyncio.shield(self._commit(self.pipeline.tick, ticked=True))

    async def _inform_systemd(self, sources: Sequence[Source]) -> None:
        """Under systemd: ``WATCHDOG=1`` at the pace its watchdog asks for, and a status line
        ("following 12 files, 1 journal; 3 alerts waiting") at least every ``STATUS_EVERY_S``."""
        if not systemd.listening():
            return
        interval = systemd.watchdog_interval()
        every = STATUS_EVERY_S if interval is None else min(interval, STATUS_EVERY_S)
        status_at: float | None = None
        while True:
            now = time.monotonic()
            if status_at is None or now - status_at >= STATUS_EVERY_S:
                status, status_at = await self._status_line(sources), now
                systemd.notify(f"STATUS={status}", *(["WATCHDOG=1"] if interval is not None else []))
            elif interval is not None:
                systemd.notify("WATCHDOG=1")
            await asyncio.sleep(every)

    async def _heartbeat(self, sources: Sequence[Source]) -> None:
        if self.config.heartbeat is None:
            return
        assert self._session is not None
        self.heartbeat = Heartbeat(
            self.config.heartbeat, self._session, check=self._health_problem, status=lambda: self._status_line(sources)
        )
        self.metrics.register(self.heartbeat)
        await self.heartbeat.run()

    def _edit_storms(self, config: Config) -> None:
        """Tell the dispatcher which destinations edit a storm's message (the pipeline knows already)."""
        assert self.dispatcher is not None
        editing = {name: d for name, d in config.destinations.items() if d.storm_updates == "edit"}
        self.dispatcher.editing = frozenset(editing)
        self.dispatcher.resolved_post = {name: d.resolved_post for name, d in editing.items()}
        self.dispatcher.edit_every = config.storm.update_every
        self.dispatcher.per_incident = frozenset(
            name for name, d in config.destinations.items() if d.threads == "per_incident"
        )

    def _daily_report(self) -> DailyReport | None:
        """``heartbeat.report``'s, stored in the spool as an alert would be (console only: to the console)."""
        if self.config.report is None:
            return None
        assert self.spool is not None
        config = self.config.report
        if self._console_only:
            config = dataclasses.replace(config, to=CONSOLE)
        spool = self.spool
        report = DailyReport(
            config,
            host=self.config.host,
            collect=self.metrics.snapshot,
            commit=lambda deliveries: spool.commit(deliveries, room=ANNOUNCEMENT_ROOM),
        )
        self.metrics.register(report)
        return report

    async def _health_problem(self) -> str | None:
        """What makes tailhook unhealthy now, for the heartbeat: a spool that cannot write, a dead
        destination, or one whose oldest waiting alert has waited longer than ``stuck_after``."""
        assert self.spool is not None and self.config.heartbeat is not None
        if self._disk_full:
            return "the disk of the spool is full: reading is paused"
        states = self.dispatcher.states if self.dispatcher else {}
        for name, state in sorted(states.items()):
            if state.dead is not None:
                return f"destination {name} is dead: {state.dead}"
        now, limit = self.spool.clock(), self.config.heartbeat.stuck_after
        for name, oldest in sorted((await self.spool.status()).oldest.items()):
            if now - oldest > limit:
                return (f"destination {name}: an alert has waited {seconds_in_words(now - oldest)}, "
                        f"more than heartbeat.stuck_after ({seconds_in_words(limit)})")  # fmt: skip
        return None

    async def _status_line(self, sources: Sequence[Source]) -> str:
        following: Counter[str] = Counter()
        for source in sources:
            following.update(source.following())
        parts = ", ".join(f"{n} {kind}{'' if n == 1 else 's'}" for kind, n in sorted(following.items()))
        assert self.spool is not None
        waiting = await self.spool.pending()
        return f"following {parts or 'nothing'}; {waiting} alert{'' if waiting == 1 else 's'} waiting"

    # ── building the stages ─────────────────────────────────────────────────

    async def _sources(self) -> list[Source]:
        assert self.spool is not None
        sources: list[Source] = []
        for config in self.config.sources:
            checkpoints = await self.spool.checkpoints(config.name)
            if isinstance(config, FileSourceConfig):
                sources.append(FileSource(config, checkpoints=checkpoints, blocks=True, prescan=self.prescan))
            else:
                sources.append(JournaldSource(config, checkpoints=checkpoints))
        return sources

    def _sinks(self) -> dict[str, Sink]:
        if self._console_only:
            return {CONSOLE: ConsoleSink(CONSOLE)}
        return {name: self._sink(name, self.config) for name in self.config.destinations}

    def _sink(self, name: str, config: Config) -> Sink:
        if self.dry_run:
            return ConsoleSink(name)
        assert self._session is not None
        return DiscordSink(
            config.destinations[name],
            session=self._session,
            global_pause=self._global_pause,
            counts=self._counts[name],
            fleet=self.fleet,
        )

    # ── reload (SIGHUP, or a change to the config or rule files) ────────────

    async def _reload_on(self, wanted: asyncio.Event) -> None:
        while True:
            await wanted.wait()
            wanted.clear()
            await self.reload()

    async def _reload_for(self, changed: Sequence[str]) -> None:
        log.info("reloading: %s changed", ", ".join(changed))
        await self.reload()

    async def reload(self) -> bool:
        """Load the config file again and apply what can change while running; whether it loaded.

        One at a time; what the files hold as it starts counts as loaded for the config watch.
        """
        async with self._reloading, self.config_watch.loading():
            return await self._reload()

    async def _reload(self) -> bool:
        log.info("reloading %s", self.config.path)
        systemd.notify("RELOADING=1")
        try:
            new = await asyncio.to_thread(load_config, self.config.path)
            rules = await asyncio.to_thread(rule_set, new, host=self.config.host)  # compiling takes a while
            self._apply(new, rules)
        except ConfigError as exc:
            self.reloads["failure"] += 1
            count = len(exc.problems)
            log.error(
                "reload: %d problem%s in the configuration; the running configuration stays:\n  %s",
                count,
                "s" if count != 1 else "",
                "\n  ".join(str(problem) for problem in exc.problems),
            )
            return False
        except Exception as exc:  # nothing is applied before everything is built: the old config stays
            self.reloads["failure"] += 1
            log.error("reload failed, the running configuration stays: %s", describe(exc))
            return False
        finally:
            systemd.notify("READY=1")
        self.reloads["success"] += 1
        self.loaded_at = time.time()
        return True

    def _apply(self, new: Config, rules: RuleSet) -> None:
        """Build everything the new config needs, then switch to it at once (no ``await``: no line
        is routed, and no notification stored, half-way between the two)."""
        old = self.config
        fixed = [
            key
            for key, before, after in (
                ("sources", old.sources, new.sources),
                ("state_dir", old.state_dir, new.state_dir),
                ("host", old.host, new.host),
                ("spool", old.spool, new.spool),
                ("http", old.http, new.http),
                ("heartbeat", old.heartbeat, new.heartbeat),
                ("heartbeat.report", old.report, new.report),
                ("destinations (from none or to none)", not old.destinations, not new.destinations),
            )
            if before != after
        ]
        destinations, routes = old.destinations, old.routes
        changed: dict[str, Sink] = {}
        removed: list[str] = []
        recheck: list[str] = []
        if not self._console_only and new.destinations:
            destinations, routes = new.destinations, new.routes
            removed = sorted(old.destinations.keys() - new.destinations.keys())
            for name, destination in new.destinations.items():
                if old.destinations.get(name) != destination:
                    changed[name] = self._sink(name, new)
                else:
                    recheck.append(name)  # unchanged: whatever of it is dead is asked about again now

        router = self.pipeline.router if self._console_only else router_for(routes, new.rules)

        # the switch
        pipeline, self.pipeline = self.pipeline, self.pipeline.reloaded(new, rules, router)
        self.metrics.replace(pipeline, self.pipeline)
        self.drain_timeout_s = new.shutdown_timeout
        if self.dispatcher is not None:
            self._edit_storms(new)
            self.dispatcher.flood_after_s = new.storm.flood_after
            for name in removed:
                self.dispatcher.remove(name)
            for name, sink in changed.items():
                self.dispatcher.replace(name, sink)
            for name in recheck:
                self.dispatcher.recheck(name)
        self.config = dataclasses.replace(
            new,
            sources=old.sources,
            state_dir=old.state_dir,
            host=old.host,
            spool=old.spool,
            http=old.http,
            heartbeat=old.heartbeat,
            report=old.report,
            destinations=destinations,
            routes=routes,
        )

        if fixed:
            log.warning("reload: %s changed; that takes a restart, until then the old settings stay", ", ".join(fixed))
        for name in removed:
            log.warning("reload: destination %s is gone; its alerts stay in the spool (tailhook spool list)", name)
        log.info(
            "reloaded: %d rules, %d routes, destinations: %s%s",
            len(rules),
            len(self.pipeline.router.routes),
            ", ".join(self.dispatcher.sinks) if self.dispatcher else "none",
            f"; new sinks for {', '.join(changed)}" if changed else "",
        )

    # ── /healthz /readyz /metrics ───────────────────────────────────────────

    def _http_server(self) -> HttpServer | None:
        if self.config.http.listen is None:
            return None
        return HttpServer(
            self.config.http.listen,
            live=lambda: None,
            ready=self._readiness,
            exposition=self.metrics.exposition,
            degraded=self._degraded,
        )

    def _degraded(self) -> str | None:
        if self.fleet is not None and not self.fleet.up:
            return "the fleet's Redis does not answer; pacing alone"
        return None

    def _readiness(self) -> str | None:
        if self._stopping.is_set():
            return "stopping"
        if not self._ready:
            return "starting"
        if self._disk_full:
            return "the disk of the spool is full; reading is paused"
        return None

    def collect(self) -> Iterable[Metric]:
        """The daemon's own facts: its version and its reloads."""
        yield gauge("tailhook_build_info", "The running version.", {__version__: 1}, "version")
        yield counter("tailhook_config_reloads_total", "Config reloads (SIGHUP or a file change), per result.",
                      {result: self.reloads[result] for result in ("success", "failure")}, "result")  # fmt: skip
        yield gauge("tailhook_config_last_reload_success_timestamp_seconds",
                    "When the running config was loaded (the start or the last successful reload), in Unix time.",
                    self.loaded_at)  # fmt: skip

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


def describe_matching(rules: RuleSet) -> str:
    """How the rules are matched, for the log at start: the engine, and what stays off it."""
    text = f"rules: matched with the {rules.engine} engine"
    best = best_available()
    if rules.engine != best:
        text += f" (set by rules.engine; {best} is installed)"
    elif best != ENGINES[0]:
        text += f" ({ENGINES[0]} is not installed: pip install 'tailhook[fast]')"
    fallbacks = rules.fallbacks()
    if fallbacks:
        text += "; on the literal prefilter: " + "; ".join(f"{name} ({why})" for name, why in sorted(fallbacks.items()))
    return text


async def probe_destinations(config: Config, *, session: aiohttp.ClientSession) -> list[ProbeResult]:
    """Check every destination's webhook with Discord, all at once, as ``probe.mode`` says."""
    message = None
    if config.probe.mode == "message":
        message = (
            f"tailhook {__version__} started on {config.host}: {len(config.sources)} sources, {len(config.rules)} rules"
        )
    checks = (probe_webhook(d, session=session, message=message) for d in config.destinations.values())
    return [result for results in await asyncio.gather(*checks) for result in results]


def _collect_less() -> Callable[[], None]:
    """Tune Python's cyclic garbage collector for the daemon's steady state; a function that
    undoes it.

    The pipeline makes and drops a few objects per line that matches (a ``Line``, its ``Event``,
    captures), none in a reference cycle: reference counting frees them, and the collector only
    walks them. With its default threshold it ran every 700 new objects, and every hundredth run
    walked everything start-up made (modules, config, compiled rules): about a quarter of the
    reading time with 200 rules. So what exists now, which lives as long as the daemon, is moved
    out of the collector's sight (``gc.freeze``), and the youngest generation is collected after
    ``GC_THRESHOLD`` new objects instead. Garbage in cycles still goes, a little later.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *thresholds[1:])

    def undo() -> None:
        gc.set_threshold(*thresholds)
        gc.unfreeze()

    return undo

"""The pipeline: lines in, deliveries out. Rules → storm control → silences → routes, on one clock.

Pure and synchronous: no I/O, no event loop, no tasks. The daemon feeds it
what its sources read (``ingest``) and asks it every second, or at its next
deadline, what time alone brings (``tick``: digests, resolved notes, the notes
of silences that ended); whatever comes out is stored in the spool together
with ``changes()`` (the storm windows and silence counts those deliveries
belong to) in one commit, so the spool always holds both or neither. Tests
drive it with a fake clock.

A reload does not change a pipeline: it builds the next one
(``reloaded``), which takes over the storm state (so the windows of rules
that did not change go on, and a removed rule's open windows still send their
digests) and the counters, and the daemon swaps them in one assignment.

It reports its own metrics (``collect()``): lines per source, matches per rule,
alerts per rule and severity, lines a rule ran out of time on, storm
control's, the silences', absences' and escalations'.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from tailhook.absence import AbsenceChange, Absences, AbsenceState
from tailhook.config import Config, RouteConfig, RuleConfig
from tailhook.escalation import EscalationChange, Escalations, FiringState
from tailhook.events import Delivery, Event, Kind, Line, Notification
from tailhook.metrics import Metric, counter, gauge
from tailhook.routes import Router
from tailhook.rules import RuleSet
from tailhook.silences import HeldState, Silence, SilenceChange, Silences
from tailhook.sources import Block
from tailhook.storm import KeyChange, KeyState, StormControl

__all__ = ["CONSOLE", "Changes", "Pipeline", "Prescanned", "router_for", "router_of"]

CONSOLE = "console"
"""The destination of every notification when the config has none: the console sink."""


@dataclasses.dataclass(frozen=True, slots=True)
class Prescanned:
    """A block's candidate lines, and the rules that found them."""

    rules: RuleSet
    candidates: list[tuple[int, int, list[int]]]
    matching_bytes: int
    """The bytes of the candidate lines, newlines included (``sources.file.Scanned``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Changes:
    """What changed in the pipeline's state, to store with the deliveries it made."""

    storm: list[KeyChange]
    silences: list[SilenceChange]
    absences: list[AbsenceChange]
    escalations: list[EscalationChange]

    def __bool__(self) -> bool:
        return bool(self.storm or self.silences or self.absences or self.escalations)


class Pipeline:
    """*rules*, then *storm* control, then *silences*, then *router*: what the daemon makes of lines."""

    def __init__(
        self,
        rules: RuleSet,
        storm: StormControl,
        silences: Silences,
        router: Router,
        *,
        absences: Absences,
        escalations: Escalations,
    ) -> None:
        self.rules = rules
        self.storm = storm
        self.silences = silences
        self.absences = absences
        """Rules with ``expect: {every}``, watched for their absence."""
        self.escalations = escalations
        """Routes with ``after``, which take an alert once its key has been firing that long."""
        self.router = router
        self.lines: Counter[str] = Counter()
        """Lines read, per source."""
        self.matches: Counter[str] = Counter()
        """Events, per rule."""
        self.alerts: Counter[tuple[str, str]] = Counter()
        """Alerts that went on to their destinations (no silence held them), per rule and severity."""
        self.editing: frozenset[str] = frozenset()
        """Destinations that edit a storm's message (``storm_updates: edit``): the only ones updates go to."""

    @classmethod
    def build(cls, config: Config, rules: RuleSet, *, clock: Callable[[], float] = time.time) -> Pipeline:
        """The pipeline of *config*, whose rules (compiled already) are *rules*."""
        storm = StormControl(config.storm, host=config.host, clock=clock)
        silences = Silences(config.silences, host=config.host, clock=clock)
        absences = Absences(config.rules, host=config.host, clock=clock)
        escalations = Escalations(config.routes if config.destinations else (), default=config.storm, clock=clock)
        pipeline = cls(rules, storm, silences, router_of(config), absences=absences, escalations=escalations)
        pipeline.edit_storms_of(config)
        return pipeline

    def edit_storms_of(self, config: Config) -> None:
        """Send updates of storms under way to the destinations of *config* that edit their message."""
        self.editing = frozenset(name for name, d in config.destinations.items() if d.storm_updates == "edit")
        self.storm.updates_every = config.storm.update_every if self.editing else None

    def reloaded(self, config: Config, rules: RuleSet, router: Router) -> Pipeline:
        """The next pipeline after a reload: new rules, silences of the config and routes; this
        one's storm state, silence counts and counters."""
        self.storm.default = config.storm
        self.storm.adopt({rule.name: rule.storm for rule in rules.rules}.get)
        self.silences.replace_configured(config.silences)
        self.absences.replace_rules(config.rules)
        self.escalations.replace_routes(config.routes if config.destinations else (), default=config.storm)
        pipeline = Pipeline(
            rules, self.storm, self.silences, router, absences=self.absences, escalations=self.escalations
        )
        pipeline.lines, pipeline.matches, pipeline.alerts = self.lines, self.matches, self.alerts
        pipeline.edit_storms_of(config)
        return pipeline

    @property
    def clock(self) -> Callable[[], float]:
        return self.storm.clock

    # ── lines in, deliveries out ────────────────────────────────────────────

    def ingest(self, lines: Iterable[Line | Block]) -> list[Delivery]:
        """What *lines* cause now, addressed. A ``Block`` of plain lines is scanned whole: only the
        lines some rule may match become ``Line``s."""
        notifications: list[Notification] = []
        rules, matches = self.rules, self.matches
        expecting = self.absences.names
        before = [matches[rule] for rule in expecting]
        with rules.watching():
            for item in lines:
                if isinstance(item, Block):
                    self.lines[item.source] += item.lines
                    self._admit_block(item, notifications)
                else:
                    self.lines[item.source] += 1
                    for event in rules.match(item):
                        matches[event.rule] += 1
                        self._admit(event, notifications)
        for rule, count in zip(expecting, before, strict=True):
            if matches[rule] != count:
                notifications.extend(self.absences.seen(rule))
        return self.route(notifications)

    def _admit_block(self, block: Block, notifications: list[Notification]) -> None:
        """The events of *block*'s lines through storm control, each as soon as it is made: in a storm
        most are held at once, and an event that lives no longer than that costs the least."""
        rules = self.rules
        scanned = block.scanned
        # scanned ahead by these rules, or not (yet, or by rules a reload has replaced since)
        if isinstance(scanned, Prescanned) and scanned.rules is rules:
            candidates = scanned.candidates
        else:
            candidates = rules.candidates(block.data, source=block.source)
        source, when, path, host = block.source, block.time, block.path, rules.host
        origin = rules.origin(path)  # one path per block
        admit, matches = self._admit, self.matches
        for _, text, hits in rules.confirm(block.data, candidates, source=source):
            line = Line(text, source, when, path)
            for rule, match in hits:
                matches[rule.name] += 1
                admit(rule.event(line, match, host=host, origin=origin), notifications)

    def _admit(self, event: Event, notifications: list[Notification]) -> None:
        """*event* through storm control into *notifications*; its key's escalation clocks told."""
        sent = self.storm.admit(event)
        notifications.extend(sent)
        escalations = self.escalations
        if escalations:
            escalations.seen(event)
            for notification in sent:
                if notification.kind is Kind.ALERT:
                    escalations.alerted(notification, event)

    def tick(self, now: float | None = None) -> list[Delivery]:
        """What time alone brings by *now* (default: the clock's now): digests of windows that
        closed, resolved notes, the notes of silences that ended."""
        now = self.clock() if now is None else now
        deliveries = self.route([*self.storm.due(now), *self.absences.due(now), *self.silences.due(now)])
        for route, notification in self.escalations.due(now):
            if not self.silences.holds(notification):
                deliveries.extend(Delivery(name, notification, route.style, route.mentions) for name in route.to)
        return deliveries

    def flush(self) -> list[Delivery]:
        """Everything storm control holds, now: every open window's digest (for a dry run's end,
        whose windows do not outlive it)."""
        return self.route(self.storm.due(float("inf")))

    def next_deadline(self) -> float | None:
        """When ``tick`` next has something to do, on the pipeline's clock."""
        parts = (self.storm, self.absences, self.silences, self.escalations)
        deadlines = [d for d in (part.next_deadline() for part in parts) if d is not None]
        return min(deadlines, default=None)

    def route(self, notifications: Sequence[Notification]) -> list[Delivery]:
        """Where *notifications* go, but for those a silence holds (it counts them instead)."""
        deliveries, holds, alerts = self.router.deliveries, self.silences.holds, self.alerts
        out: list[Delivery] = []
        for notification in notifications:
            if notification.kind is Kind.UPDATE:  # not an alert: silences neither hold nor count it
                out.extend(d for d in deliveries(notification) if d.destination in self.editing)
                continue
            if holds(notification):
                continue
            if notification.kind is Kind.ALERT:
                alerts[notification.rule, notification.severity.label] += 1
            out.extend(deliveries(notification))
        return out

    def prescan(self, data: bytes, source: str) -> Prescanned:
        """The rules' engine pass over a block, in the source's reading thread. Hyperscan lets go of
        the GIL while it scans but takes it back for every match it reports, so it overlaps little
        with the loop's work on the block before; the source sizes its turns by what it finds."""
        rules = self.rules
        candidates = rules.candidates(data, source=source)
        return Prescanned(rules, candidates, sum(end - start + 1 for start, end, _ in candidates))

    # ── state kept in the spool ─────────────────────────────────────────────

    def changes(self) -> Changes:
        """What changed since the last call and is to be stored with the deliveries it caused."""
        return Changes(
            self.storm.changes(), self.silences.changes(), self.absences.changes(), self.escalations.changes()
        )

    def unsaved(self, changes: Changes) -> None:
        """*changes* could not be stored: they come out again with the next ``changes()``."""
        self.storm.unsaved(changes.storm)
        self.silences.unsaved(changes.silences)
        self.absences.unsaved(changes.absences)
        self.escalations.unsaved(changes.escalations)

    def restore(
        self,
        keys: Iterable[KeyState],
        *,
        held: Iterable[HeldState] = (),
        silences: Iterable[Silence] = (),
        absences: Iterable[AbsenceState] = (),
        escalations: Iterable[FiringState] = (),
    ) -> None:
        """Take back what the spool kept from before a restart: storm control's keys (their open
        windows, escalation and storms), what silences held, the silences ``tailhook silence add``
        stored, when each absence rule last matched, and the clocks of escalation routes."""
        self.storm.restore(keys, {rule.name: rule.storm for rule in self.rules.rules}.get)
        self.absences.restore(absences)
        self.escalations.restore(escalations)
        self.silences.restore(held)
        self.silences.replace_stored(silences)

    def collect(self) -> Iterable[Metric]:
        yield counter("tailhook_lines_total", "Lines read, per source.", self.lines, "source")
        yield counter("tailhook_matches_total", "Lines a rule matched, per rule.", self.matches, "rule")
        yield counter("tailhook_alerts_total", "Alerts that went on to their destinations (no silence held "
                      "them), per rule and severity.", self.alerts, "rule", "severity")  # fmt: skip
        yield counter(
            "tailhook_rule_over_budget_total",
            "Lines skipped for a rule because its regex ran out of time on them (backtracking), per rule.",
            self.rules.over_budget,
            "rule",
        )
        yield from self.storm.collect()
        yield counter("tailhook_silenced_total", "Alerts a silence held.", self.silences.held_total)
        yield counter(
            "tailhook_escalations_total",
            "Alerts sent to an escalation route (after:) because their key was still firing.",
            self.escalations.escalated_total,
        )
        yield counter(
            "tailhook_absence_alerts_total",
            "Alerts that a rule with expect: {every} matched no line for that long.",
            self.absences.alerts_total,
        )
        yield gauge(
            "tailhook_silence_held",
            "Alerts each silence holds so far (its occurrence under way), per silence id.",
            self.silences.held(),
            "silence",
        )
        yield gauge(
            "tailhook_silence_active",
            "1 for each silence on now, per silence id.",
            dict.fromkeys(self.silences.active(), 1.0),
            "silence",
        )


def router_of(config: Config) -> Router:
    """*config*'s routes; with no destination, one route: everything to the console."""
    if not config.destinations:
        return Router((RouteConfig(to=(CONSOLE,)),))
    return router_for(config.routes, config.rules)


def router_for(routes: Iterable[RouteConfig], rules: Iterable[RuleConfig]) -> Router:
    """The routes that take each alert as it comes (not the escalation routes, which wait)."""
    return Router((route for route in routes if route.after is None), rules=rules)

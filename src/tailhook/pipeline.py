"""The pipeline: lines in, deliveries out. Rules → storm control → routes, on one clock.

Pure and synchronous: no I/O, no event loop, no tasks. The daemon feeds it
what its sources read (``ingest``) and asks it every second, or at its next
deadline, what time alone brings (``tick``: digests, resolved notes); whatever
comes out is stored in the spool together with ``changes()`` (the storm
windows those deliveries belong to) in one commit, so the spool always holds
both or neither. Tests drive it with a fake clock.

A reload does not change a pipeline: it builds the next one
(``reloaded``), which takes over the storm state (so the windows of rules
that did not change go on, and a removed rule's open windows still send their
digests) and the counters, and the daemon swaps them in one assignment.

Its counters are its own (``metrics()``): lines per source, matches per rule,
lines a rule ran out of time on, and storm control's.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from tailhook.config import Config, RouteConfig
from tailhook.events import Delivery, Line, Notification
from tailhook.metrics import Metric, per
from tailhook.routes import Router
from tailhook.rules import RuleSet
from tailhook.sources import Block
from tailhook.storm import StormControl, WindowChange, WindowState

__all__ = ["CONSOLE", "Pipeline", "Prescanned", "router_of"]

CONSOLE = "console"
"""The destination of every notification when the config has none: the console sink."""


@dataclasses.dataclass(frozen=True, slots=True)
class Prescanned:
    """A block's candidate lines, and the rules that found them."""

    rules: RuleSet
    candidates: list[tuple[int, int, list[int]]]
    matching_bytes: int
    """The bytes of the candidate lines, newlines included (``sources.file.Scanned``)."""


class Pipeline:
    """*rules*, then *storm* control, then *router*: what the daemon makes of lines."""

    def __init__(self, rules: RuleSet, storm: StormControl, router: Router) -> None:
        self.rules = rules
        self.storm = storm
        self.router = router
        self.lines: Counter[str] = Counter()
        """Lines read, per source."""
        self.matches: Counter[str] = Counter()
        """Events, per rule."""

    @classmethod
    def build(cls, config: Config, rules: RuleSet, *, clock: Callable[[], float] = time.time) -> Pipeline:
        """The pipeline of *config*, whose rules (compiled already) are *rules*."""
        storm = StormControl(config.storm, host=config.host, clock=clock)
        return cls(rules, storm, router_of(config))

    def reloaded(self, config: Config, rules: RuleSet, router: Router) -> Pipeline:
        """The next pipeline after a reload: new rules and routes, this one's storm state and counts."""
        self.storm.default = config.storm
        self.storm.adopt({rule.name: rule.storm for rule in rules.rules}.get)
        pipeline = Pipeline(rules, self.storm, router)
        pipeline.lines, pipeline.matches = self.lines, self.matches
        return pipeline

    @property
    def clock(self) -> Callable[[], float]:
        return self.storm.clock

    # ── lines in, deliveries out ────────────────────────────────────────────

    def ingest(self, lines: Iterable[Line | Block]) -> list[Delivery]:
        """What *lines* cause now, addressed. A ``Block`` of plain lines is scanned whole: only the
        lines some rule may match become ``Line``s."""
        notifications: list[Notification] = []
        rules, admit, matches = self.rules, self.storm.admit, self.matches
        with rules.watching():
            for item in lines:
                if isinstance(item, Block):
                    self.lines[item.source] += item.lines
                    self._admit_block(item, notifications)
                else:
                    self.lines[item.source] += 1
                    for event in rules.match(item):
                        matches[event.rule] += 1
                        notifications.extend(admit(event))
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
        admit, matches = self.storm.admit, self.matches
        for _, text, hits in rules.confirm(block.data, candidates, source=source):
            line = Line(text, source, when, path)
            for rule, match in hits:
                matches[rule.name] += 1
                notifications.extend(admit(rule.event(line, match, host=host)))

    def tick(self, now: float | None = None) -> list[Delivery]:
        """What time alone brings by *now* (default: the clock's now): digests of windows that
        closed, resolved notes."""
        return self.route(self.storm.due(now))

    def flush(self) -> list[Delivery]:
        """Everything storm control holds, now: every open window's digest (for a dry run's end,
        whose windows do not outlive it)."""
        return self.route(self.storm.due(float("inf")))

    def next_deadline(self) -> float | None:
        """When ``tick`` next has something to do, on the pipeline's clock."""
        return self.storm.next_deadline()

    def route(self, notifications: Sequence[Notification]) -> list[Delivery]:
        deliveries = self.router.deliveries
        return [d for n in notifications for d in deliveries(n)]

    def prescan(self, data: bytes, source: str) -> Prescanned:
        """The rules' engine pass over a block, in the source's reading thread. Hyperscan lets go of
        the GIL while it scans but takes it back for every match it reports, so it overlaps little
        with the loop's work on the block before; the source sizes its turns by what it finds."""
        rules = self.rules
        candidates = rules.candidates(data, source=source)
        return Prescanned(rules, candidates, sum(end - start + 1 for start, end, _ in candidates))

    # ── state kept in the spool ─────────────────────────────────────────────

    def changes(self) -> list[WindowChange]:
        """What changed since the last call and is to be stored with the deliveries it caused."""
        return self.storm.changes()

    def unsaved(self, changes: Iterable[WindowChange]) -> None:
        """*changes* could not be stored: they come out again with the next ``changes()``."""
        self.storm.unsaved(changes)

    def restore(self, windows: Iterable[WindowState]) -> None:
        """Take back what the spool kept from before a restart."""
        self.storm.restore(windows, {rule.name: rule.storm for rule in self.rules.rules}.get)

    def metrics(self) -> list[Metric]:
        return [
            Metric("tailhook_lines_total", "counter", "Lines read, per source.", per("source", self.lines)),
            Metric("tailhook_matches_total", "counter", "Lines a rule matched, per rule.", per("rule", self.matches)),
            Metric(
                "tailhook_rule_over_budget_total",
                "counter",
                "Lines skipped for a rule because its regex ran out of time on them (backtracking), per rule.",
                per("rule", self.rules.over_budget),
            ),
            *self.storm.metrics(),
        ]


def router_of(config: Config) -> Router:
    """*config*'s routes; with no destination, one route: everything to the console."""
    if not config.destinations:
        return Router((RouteConfig(to=(CONSOLE,)),))
    return Router(config.routes, rules=config.rules)

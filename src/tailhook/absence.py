"""Absence rules: a rule that must match every so often, and an alert when it has not.

A rule with ``expect: {every: 10m}`` is watched for its silence rather than
its lines: a backup job that stopped logging, a heartbeat line that stopped.
When no line matched it for ``every`` seconds, one alert goes out (its
severity, its name; the key ``absent``); when a line matches it again, one
resolved note says after how long. Until then it does not alert again.

Each expecting rule has one deadline (its last match plus ``every``) in one
heap; a match only moves the rule's deadline, so the cost per event stays
flat. What each rule last saw, and whether it alerted, is handed out by
``changes()`` to be stored in the spool with the commit of the deliveries of
that moment, and ``restore()`` takes it back at the next start: a restart
neither forgets a deadline nor fires it again, and time spent stopped
counts (the clock is the wall clock). A rule first watched starts its clock
then.

Pure: time comes from the ``clock`` given.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tailhook._units import seconds_in_words
from tailhook.config import RuleConfig
from tailhook.events import Kind, Notification, Severity

__all__ = ["ABSENT_KEY", "AbsenceChange", "AbsenceState", "Absences"]

ABSENT_KEY = "absent"
"""The key of every absence alert and its resolved note."""


@dataclass(frozen=True, slots=True)
class AbsenceState:
    """One expecting rule as the spool stores it."""

    rule: str
    last: float
    """Its last match, or when it was first watched."""
    alerted: bool
    """An absence alert went out since ``last``."""


AbsenceChange = tuple[str, AbsenceState | None]
"""A rule's state to store, or ``None``: no longer expecting, to be forgotten."""


@dataclass(slots=True)
class _Expectation:
    every: float
    severity: Severity
    last: float
    alerted: bool = False

    def deadline(self) -> float | None:
        return None if self.alerted else self.last + self.every


class Absences:
    """The enabled rules of *rules* that have ``expect: {every}``, each watched for its absence."""

    def __init__(self, rules: Iterable[RuleConfig], *, host: str, clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.clock = clock
        self._rules: dict[str, _Expectation] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._changed: set[str] = set()
        self.alerts_total = 0
        self.replace_rules(rules)

    def replace_rules(self, rules: Iterable[RuleConfig]) -> None:
        """The expecting rules from now on (a reload): a rule kept keeps its clock; a new one starts
        its own now; a removed one is forgotten."""
        now = self.clock()
        wanted = {r.name: r for r in rules if r.enabled and r.expect_every is not None}
        for name in self._rules.keys() - wanted.keys():
            del self._rules[name]
            self._changed.add(name)
        for name, rule in wanted.items():
            assert rule.expect_every is not None
            known = self._rules.get(name)
            if known is None:
                self._rules[name] = _Expectation(rule.expect_every, rule.severity, now)
                self._changed.add(name)
            else:
                known.every, known.severity = rule.expect_every, rule.severity
            self._push(name)

    @property
    def names(self) -> frozenset[str]:
        """The rules watched."""
        return frozenset(self._rules)

    def seen(self, rule: str) -> list[Notification]:
        """*rule* matched a line now: its clock starts again; the resolved note if it had alerted."""
        expectation = self._rules.get(rule)
        if expectation is None:
            return []
        now = self.clock()
        out = []
        if expectation.alerted:
            out.append(self._resolved(rule, expectation, now))
        expectation.last, expectation.alerted = now, False
        self._changed.add(rule)
        self._push(rule)
        return out

    def due(self, now: float | None = None) -> list[Notification]:
        """The absence alerts of the rules whose deadline passed by *now*."""
        now = self.clock() if now is None else now
        out = []
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            when, rule = heapq.heappop(deadlines)
            expectation = self._rules.get(rule)
            if expectation is None or expectation.deadline() != when:
                continue  # stale: the rule matched since, or is gone
            expectation.alerted = True
            self._changed.add(rule)
            self.alerts_total += 1
            out.append(self._absent(rule, expectation, now))
        return out

    def next_deadline(self) -> float | None:
        deadlines = self._deadlines
        while deadlines:
            when, rule = deadlines[0]
            expectation = self._rules.get(rule)
            if expectation is not None and expectation.deadline() == when:
                return when
            heapq.heappop(deadlines)
        return None

    def _push(self, rule: str) -> None:
        deadline = self._rules[rule].deadline()
        if deadline is not None:
            heapq.heappush(self._deadlines, (deadline, rule))

    # ── persistence ─────────────────────────────────────────────────────────

    def changes(self) -> list[AbsenceChange]:
        changed, self._changed = self._changed, set()
        out: list[AbsenceChange] = []
        for rule in sorted(changed):
            known = self._rules.get(rule)
            out.append((rule, None if known is None else AbsenceState(rule, known.last, known.alerted)))
        return out

    def unsaved(self, changes: Iterable[AbsenceChange]) -> None:
        self._changed.update(rule for rule, _ in changes)

    def restore(self, states: Iterable[AbsenceState]) -> None:
        """Take back what was stored before a restart, for the rules still expecting; the time the
        daemon was stopped counts."""
        for state in states:
            expectation = self._rules.get(state.rule)
            if expectation is None:
                self._changed.add(state.rule)  # no longer expecting: forget it in the spool too
                continue
            expectation.last, expectation.alerted = state.last, state.alerted
            self._changed.discard(state.rule)
            self._push(state.rule)

    # ── the notifications ───────────────────────────────────────────────────

    def _absent(self, rule: str, expectation: _Expectation, now: float) -> Notification:
        span = seconds_in_words(expectation.every)
        description = (
            f"Rule {rule} expects a line at least every {span}; the last one came at {_utc(expectation.last)} "
            "(or tailhook began watching for it then)."
        )
        return self._note(
            Kind.ALERT, rule, expectation, now, title=f"{rule}: no line for {span}", description=description
        )

    def _resolved(self, rule: str, expectation: _Expectation, now: float) -> Notification:
        description = (
            f"A line matched after {seconds_in_words(now - expectation.last)} without one (expected every "
            f"{seconds_in_words(expectation.every)})."
        )
        return self._note(
            Kind.RECOVERY, rule, expectation, now, title=f"Resolved: {rule} matches again", description=description
        )

    def _note(
        self, kind: Kind, rule: str, expectation: _Expectation, now: float, *, title: str, description: str
    ) -> Notification:
        """What an absence rule says: no line of its own, so no source, line or captures."""
        return Notification(
            kind=kind,
            rule=rule,
            severity=expectation.severity,
            key=ABSENT_KEY,
            title=title,
            description=description,
            line="",
            source="",
            host=self.host,
            time=now,
        )


def _utc(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))

"""Silences: alerts held (counted, not sent) while a silence is on, and one note when it ends.

A silence names which notifications it holds (rules, sources, hosts,
severities: each a set, or ``None`` for any) and when: fixed times
(``starts`` to ``ends``; ``ends`` ``None``: until expired), or a weekly
schedule, each occurrence of which holds and ends on its own. Silences come
from the config (``config:<name>``) and from ``tailhook silence add``, which
stores them in the spool (``cli:<n>``); ``expired`` ends one early.

Critical notifications pass a silence unless its ``severities`` names
critical. A note (``Kind.NOTE``) is never held. A held notification is counted
in every active silence it matches, under its rule: an alert as 1, a digest
as the alerts it stands for (its ``count``). A recovery is held too but not
counted: it is no alert.

When an occurrence that held something ends (its time is up, it was expired,
its silence was removed from the config or changed so that the occurrence is
no longer one of it), ``due()`` gives one note (``Kind.NOTE``, severity info,
rule ``""``, key the silence's id) saying how many alerts it held, during
what, for how long, and how many per rule, most first. An occurrence that
held nothing ends without a note.

Pure: time comes from the ``clock`` given (the wall clock: occurrences
outlive the process). What the counts became since the last call is handed
out by ``changes()``, to be stored in the spool in the same commit as the
notifications, a note included, so that after a restart (``restore()``) the
counts are neither lost nor the note sent twice.

Cost: ``holds()`` looks only at the silences active now; which ones are is
worked out again only when the clock passes the next start or end of any.
"""

from __future__ import annotations

import math
import time
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from tailhook.config import WEEKDAYS, ScheduleConfig, SilenceConfig
from tailhook.events import Kind, Notification, Severity

__all__ = [
    "HeldState",
    "OccurrenceKey",
    "Silence",
    "SilenceChange",
    "Silences",
    "format_span",
    "note_for",
]

OccurrenceKey = tuple[str, float]
"""``(silence id, when the occurrence began)``: what one end-of-silence note counts."""

BY_RULE_SHOWN = 10
"""A note names at most this many rules, most held first; the rest are summed up."""


@dataclass(frozen=True, slots=True)
class Silence:
    """One silence: what it matches, why, and when. Exactly one of ``starts`` and ``schedule`` is set."""

    id: str
    """``config:<name>`` for a silence of the config file, ``cli:<n>`` for one of ``tailhook silence add``."""
    reason: str = ""
    rules: frozenset[str] | None = None
    sources: frozenset[str] | None = None
    hosts: frozenset[str] | None = None
    severities: frozenset[Severity] | None = None
    starts: float | None = None
    """Seconds since the epoch; with ``ends``."""
    ends: float | None = None
    """``None``: until expired."""
    schedule: ScheduleConfig | None = None
    expired: float | None = None
    """When it was ended early; from then on it holds nothing."""

    def __post_init__(self) -> None:
        if (self.starts is None) == (self.schedule is None):
            raise ValueError(f"silence {self.id}: give starts or schedule, exactly one")

    @classmethod
    def from_config(cls, config: SilenceConfig) -> Silence:
        return cls(
            id=f"config:{config.name}",
            reason=config.reason,
            rules=config.rules,
            sources=config.sources,
            hosts=config.hosts,
            severities=config.severities,
            starts=config.starts,
            ends=config.ends,
            schedule=config.schedule,
        )

    @property
    def label(self) -> str:
        """What a note calls it: its reason, else its name."""
        return self.reason or self.id.removeprefix("config:")

    def matches(self, n: Notification) -> bool:
        """Whether *n* is one this silence holds while active (critical only if it names critical)."""
        if self.severities is None:
            if n.severity is Severity.CRITICAL:
                return False
        elif n.severity not in self.severities:
            return False
        return (
            (self.rules is None or n.rule in self.rules)
            and (self.sources is None or n.source in self.sources)
            and (self.hosts is None or n.host in self.hosts)
        )

    def window_at(self, now: float) -> tuple[float, float] | None:
        """``(start, end)`` of the occurrence active at *now* (end ``inf``: until expired), or ``None``."""
        for start, end in self._windows(now):
            if start > now:
                return None
            if now < end:
                return start, end
        return None

    def next_window(self, now: float) -> tuple[float, float] | None:
        """The first occurrence that begins after *now*, or ``None``."""
        for start, end in self._windows(now):
            if start > now:
                return start, end
        return None

    def ends_at(self, start: float) -> float | None:
        """When the occurrence that began at *start* ends; ``None`` if no occurrence of this silence begins then."""
        for begins, end in self._windows(start):
            if begins == start:
                return end
            if begins > start:
                break
        return None

    def _windows(self, around: float) -> Iterator[tuple[float, float]]:
        """Occurrences in order of their start, from the last one that may still be on at *around*."""
        limit = math.inf if self.expired is None else self.expired
        if self.schedule is None:
            assert self.starts is not None
            end = min(math.inf if self.ends is None else self.ends, limit)
            if self.starts < end:
                yield self.starts, end
            return
        for start, end in _schedule_windows(self.schedule, around):
            if start >= limit:
                return
            yield start, min(end, limit)

    def describe(self) -> str:
        """What it holds, in words: ``rules ssh, nginx-5xx; severity warning``, or ``every alert but critical``."""
        parts = [
            f"{what} {', '.join(sorted(names))}"
            for what, names in (("rules", self.rules), ("sources", self.sources), ("hosts", self.hosts))
            if names is not None
        ]
        if self.severities is not None:
            parts.append(f"severities {', '.join(s.label for s in sorted(self.severities, reverse=True))}")
        return "; ".join(parts) or "every alert but critical"

    def when(self) -> str:
        """When it is on, in words: ``2025-06-01 22:00:00Z to …`` or ``mon, tue 22:00-06:00 Europe/Berlin``."""
        if self.schedule is not None:
            s = self.schedule
            days = ", ".join(WEEKDAYS[d] for d in sorted(s.days))
            return f"{days} {_hhmm(s.starts)}-{_hhmm(s.ends)} {s.timezone or 'local time'}"
        assert self.starts is not None
        return f"{_utc(self.starts)} to {'expired' if self.ends is None else _utc(self.ends)}"


@dataclass(frozen=True, slots=True)
class HeldState:
    """What one occurrence of a silence has held so far, as the spool stores it."""

    silence: str
    starts: float
    reason: str
    """The silence's label when it last held, so that a note can be made without the silence."""
    held: Mapping[str, int]
    """Per rule, how many alerts."""

    @property
    def total(self) -> int:
        return sum(self.held.values())


SilenceChange = tuple[OccurrenceKey, HeldState | None]
"""An occurrence's counts to store, or ``None`` when its note is made (or it ended holding nothing): forget it."""


@dataclass(slots=True)
class _Occurrence:
    label: str
    held: Counter[str] = field(default_factory=Counter)
    ends: float | None = None
    """Set when its silence went away (or changed): it ended then."""


class Silences:
    """The silences in force, what they hold, and the notes of those that ended.

    The config's silences are given at construction (``replace_configured`` on a reload); the stored
    ones (``tailhook silence add``) with ``replace_stored`` whenever the spool's change. At start, call
    ``restore`` with the spool's held states and ``replace_stored`` before the first ``due()``.
    """

    def __init__(
        self,
        configured: Iterable[SilenceConfig] = (),
        *,
        host: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.clock = clock
        self._configured = tuple(Silence.from_config(c) for c in configured)
        self._stored: tuple[Silence, ...] = ()
        self._by_id: dict[str, Silence] = {}
        self._occurrences: dict[OccurrenceKey, _Occurrence] = {}
        self._changed: set[OccurrenceKey] = set()
        self._active: list[tuple[Silence, float]] = []
        self._active_from = math.inf
        self._active_until = -math.inf
        """``_active`` holds for a clock in ``[_active_from, _active_until)``; outside, it is worked out again."""
        self.held_total = 0
        """Alerts held since start, for metrics."""
        self._index()

    # ── what is in force ─────────────────────────────────────────────────────

    def replace_configured(self, configured: Iterable[SilenceConfig]) -> None:
        """The config's silences after a reload; an occurrence of one removed or changed ends now."""
        self._configured = tuple(Silence.from_config(c) for c in configured)
        self._index()

    def replace_stored(self, stored: Iterable[Silence]) -> None:
        """The silences the spool holds (``tailhook silence add``/``expire``), as they are now."""
        stored = tuple(stored)
        if stored != self._stored:
            self._stored = stored
            self._index()

    def silences(self) -> list[Silence]:
        """Every silence known: the config's, then the stored ones."""
        return [*self._configured, *self._stored]

    def _index(self) -> None:
        self._by_id = {s.id: s for s in (*self._configured, *self._stored)}
        self._active, self._active_from, self._active_until = [], math.inf, -math.inf
        self._end_orphans(self.clock())

    def _end_orphans(self, now: float) -> None:
        """Occurrences whose silence is gone, or no longer has them, end at *now*."""
        for (silence_id, start), occurrence in self._occurrences.items():
            if occurrence.ends is None:
                silence = self._by_id.get(silence_id)
                if silence is None or silence.ends_at(start) is None:
                    occurrence.ends = now

    def _find_active(self, now: float) -> None:
        active: list[tuple[Silence, float]] = []
        until = math.inf
        for silence in self._by_id.values():
            window = silence.window_at(now)
            if window is not None:
                active.append((silence, window[0]))
                until = min(until, window[1])
            else:
                upcoming = silence.next_window(now)
                if upcoming is not None:
                    until = min(until, upcoming[0])
        self._active, self._active_from, self._active_until = active, now, until

    # ── holding ──────────────────────────────────────────────────────────────

    def active(self) -> list[str]:
        """The ids of the silences on now."""
        now = self.clock()
        if not self._active_from <= now < self._active_until:
            self._find_active(now)
        return [silence.id for silence, _ in self._active]

    def holds(self, n: Notification) -> bool:
        """Whether *n* is held (not to be sent): an active silence matches it. Counted if so."""
        if not self._by_id or n.kind is Kind.NOTE:
            return False
        now = self.clock()
        if not self._active_from <= now < self._active_until:
            self._find_active(now)
        held = False
        for silence, start in self._active:
            if silence.matches(n):
                held = True
                if n.kind is not Kind.RECOVERY:
                    self._count((silence.id, start), silence.label, n)
        return held

    def _count(self, key: OccurrenceKey, label: str, n: Notification) -> None:
        occurrence = self._occurrences.get(key)
        if occurrence is None:
            occurrence = self._occurrences[key] = _Occurrence(label)
        occurrence.label = label
        count = max(1, n.count)
        occurrence.held[n.rule] += count
        self.held_total += count
        self._changed.add(key)

    def held(self) -> dict[str, int]:
        """Per silence id, how many alerts its occurrences not yet noted have held."""
        out: Counter[str] = Counter()
        for (silence_id, _), occurrence in self._occurrences.items():
            out[silence_id] += occurrence.held.total()
        return dict(out)

    # ── ending ───────────────────────────────────────────────────────────────

    def _end_of(self, key: OccurrenceKey, occurrence: _Occurrence) -> float:
        if occurrence.ends is not None:
            return occurrence.ends
        silence = self._by_id.get(key[0])
        end = None if silence is None else silence.ends_at(key[1])
        if end is None:  # restored, and its silence is gone: it ended when that was noticed
            end = occurrence.ends = self.clock()
        return end

    def due(self, now: float | None = None) -> list[Notification]:
        """The notes of the occurrences that have ended by *now* and held something; they are forgotten."""
        now = self.clock() if now is None else now
        out: list[Notification] = []
        for key, occurrence in list(self._occurrences.items()):
            end = self._end_of(key, occurrence)
            if end <= now:
                del self._occurrences[key]
                self._changed.add(key)
                if occurrence.held:
                    state = HeldState(key[0], key[1], occurrence.label, dict(occurrence.held))
                    out.append(note_for(state, ends=end, host=self.host))
        return out

    def next_deadline(self) -> float | None:
        """When the first occurrence that held something ends (and its note is due), on this clock."""
        ends = [self._end_of(key, occurrence) for key, occurrence in self._occurrences.items()]
        finite = [end for end in ends if end != math.inf]
        return min(finite) if finite else None

    # ── persistence ──────────────────────────────────────────────────────────

    def changes(self) -> list[SilenceChange]:
        """The occurrences changed since the last call, to store with the notifications of the same moment."""
        changed, self._changed = self._changed, set()
        out: list[SilenceChange] = []
        for key in changed:
            occurrence = self._occurrences.get(key)
            state = None if occurrence is None else HeldState(key[0], key[1], occurrence.label, dict(occurrence.held))
            out.append((key, state))
        return out

    def unsaved(self, changes: Iterable[SilenceChange]) -> None:
        """*changes* could not be stored: hand them out again with the next ``changes()``."""
        self._changed.update(key for key, _ in changes)

    def restore(self, states: Iterable[HeldState]) -> None:
        """Take back what occurrences had held when the daemon stopped (the spool's ``silence_held``)."""
        for state in states:
            key = (state.silence, state.starts)
            self._occurrences[key] = _Occurrence(state.reason, Counter(state.held))


def note_for(state: HeldState, *, ends: float, host: str) -> Notification:
    """The end-of-silence note: ``37 alerts held during 'deploy', 2 h``; by rule, most first."""
    total = state.total
    alerts = "alert" if total == 1 else "alerts"
    ranked = sorted(state.held.items(), key=lambda item: (-item[1], item[0]))
    by_rule = ", ".join(f"{rule or '(none)'} {count:,}" for rule, count in ranked[:BY_RULE_SHOWN])
    rest = ranked[BY_RULE_SHOWN:]
    if rest:
        by_rule += f", and {len(rest)} more rules {sum(count for _, count in rest):,}"
    span = format_span(ends - state.starts)
    return Notification(
        kind=Kind.NOTE,
        rule="",
        severity=Severity.INFO,
        key=state.silence,
        title=f"{total:,} {alerts} held during '{state.reason}', {span}",
        description=f"by rule: {by_rule}\nsilence {state.silence}, from {_utc(state.starts)} to {_utc(ends)}",
        line="",
        source="",
        host=host,
        time=ends,
        count=total,
    )


def format_span(seconds: float) -> str:
    """``45 s``, ``10 min``, ``2 h``, ``1 h 30 min``, ``3 d 4 h``: rounded to its largest two units."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    minutes = round(s / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def _utc(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _schedule_windows(schedule: ScheduleConfig, around: float) -> Iterator[tuple[float, float]]:
    """The schedule's occurrences in order, from the day before *around*'s (one may run past midnight)."""
    zone = zoneinfo.ZoneInfo(schedule.timezone) if schedule.timezone else None
    first = datetime.fromtimestamp(around, zone).date() - timedelta(days=1)
    length_days = 1 if schedule.ends <= schedule.starts else 0
    for offset in range(9):  # the day before, and a week and a day after: every listed day comes up
        day = first + timedelta(days=offset)
        if day.weekday() in schedule.days:
            yield (
                _moment(day, schedule.starts, zone),
                _moment(day + timedelta(days=length_days), schedule.ends, zone),
            )


def _moment(day: date, minutes: int, zone: zoneinfo.ZoneInfo | None) -> float:
    """Seconds since the epoch of *minutes* after midnight on *day*, in *zone* (``None``: local time)."""
    return datetime(day.year, day.month, day.day, minutes // 60, minutes % 60, tzinfo=zone).timestamp()

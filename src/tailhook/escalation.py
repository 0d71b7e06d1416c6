"""Escalation routes: an alert whose key is still firing some time after its first alert also goes
to a louder destination, once.

A route with ``after: 10m`` takes no alert as it comes. When an alert opens a
key's storm (its first alert), each escalation route that would take that
alert notes the time; ``after`` later, if the key is still firing (one of its
events came within its storm ``window`` of that moment), the route gets one
notification saying so ("Still firing after 10 min: …", with the count of
events since the first alert), in the route's style and with its mentions.
A key that went quiet before then never escalates, and a key escalates once
per storm: only a first alert after it went quiet for a whole window starts
a new one. This is the chain production alerting sets up by hand (P0 to the
platform team after 5 minutes, to on-call after 10), made from storm state.

Each tracked key has one deadline per route in one heap; an event touches
only its own key. Memory: a key is forgotten once it went quiet for a whole
window. The clocks are stored with the ingest commit (``changes()``, and
``restore()`` at the next start), each route known by what it says
(``route_id``): after a restart a key escalates when it would have, to the
routes that are still configured.

Pure: time comes from the ``clock`` given.
"""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from tailhook._records import record
from tailhook._units import seconds_in_words
from tailhook.config import RouteConfig, StormConfig
from tailhook.events import Event, Kind, Notification
from tailhook.routes import matches_route

__all__ = ["EscalationChange", "Escalations", "FiringState", "route_id"]

_Key = tuple[str, str]
_QUIET = -1
"""The deadline of a key that escalated everywhere it could: forgotten once quiet for a window."""


@dataclass(slots=True)
class _Firing:
    first: Notification
    """The key's first alert of this storm."""
    since: float
    last: float
    window: float
    """The key's storm window: it is still firing while an event came within this long."""
    events: int = 1
    pending: set[int] = field(default_factory=set)
    """The routes (by index) yet to be escalated to."""
    changed: bool = False
    """In ``Escalations._changed`` already."""


@record
class FiringState:
    """One key's escalation clocks as the spool stores them: its first alert, since when and until
    when it fired, and the routes (by ``route_id``) it has yet to escalate to."""

    rule: str
    key: str
    first: Notification
    since: float
    last: float
    window: float
    events: int
    pending: tuple[str, ...]


EscalationChange = tuple[tuple[str, str], FiringState | None]
"""A key's clocks to store, or ``None``: forgotten."""


def route_id(route: RouteConfig) -> str:
    """What a route says, as text that is the same in every process: how a stored clock finds its route."""
    parts = {
        "to": list(route.to),
        "severities": None if route.severities is None else sorted(int(s) for s in route.severities),
        "rules": None if route.rules is None else sorted(route.rules),
        "sources": None if route.sources is None else sorted(route.sources),
        "hosts": None if route.hosts is None else sorted(route.hosts),
        "after": route.after,
    }
    return json.dumps(parts, sort_keys=True, separators=(",", ":"))


class Escalations:
    """The routes with ``after`` of *routes*, each escalated to once per storm of a key."""

    def __init__(
        self, routes: Iterable[RouteConfig], *, default: StormConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.clock = clock
        self.default = default
        self.routes: tuple[RouteConfig, ...] = ()
        self._firing: dict[_Key, _Firing] = {}
        self._deadlines: list[tuple[float, _Key, int]] = []
        self._changed: list[_Key] = []
        self.escalated_total = 0
        self.replace_routes(routes, default=default)

    def replace_routes(self, routes: Iterable[RouteConfig], *, default: StormConfig) -> None:
        """The escalation routes from now on (a reload): if they changed, keys being watched start
        afresh."""
        self.default = default
        escalating = tuple(route for route in routes if route.after is not None)
        if escalating != self.routes:
            self.routes = escalating
            self._changed.extend(self._firing)  # forgotten, in the spool too
            self._firing.clear()
            self._deadlines.clear()

    def __bool__(self) -> bool:
        return bool(self.routes)

    def alerted(self, notification: Notification, event: Event) -> None:
        """Storm control sent *notification*, an alert of *event*: the first of a storm starts the
        escalation clocks of the routes that would take it."""
        key = (notification.rule, notification.key)
        if key in self._firing or notification.kind is not Kind.ALERT:
            return
        wanted = {i for i, route in enumerate(self.routes) if matches_route(route, notification)}
        if not wanted:
            return
        now = self.clock()
        window = (event.storm or self.default).window
        firing = self._firing[key] = _Firing(notification, now, now, window, pending=wanted)
        self._mark(key, firing)
        for i in wanted:
            after = self.routes[i].after
            assert after is not None
            heapq.heappush(self._deadlines, (now + after, key, i))

    def seen(self, event: Event) -> None:
        """An event of a key (held or sent): it is still firing."""
        key = (event.rule, event.key)
        firing = self._firing.get(key)
        if firing is not None:
            firing.last = self.clock()
            firing.events += 1
            self._mark(key, firing)

    def due(self, now: float | None = None) -> list[tuple[RouteConfig, Notification]]:
        """The escalations due by *now*: each route whose time came for a key still firing, with
        what to send it."""
        now = self.clock() if now is None else now
        out: list[tuple[RouteConfig, Notification]] = []
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            when, key, index = heapq.heappop(deadlines)
            firing = self._firing.get(key)
            if firing is None or not _valid(firing, index):
                continue
            quiet = when - firing.last >= firing.window
            if index == _QUIET or quiet:
                if quiet:
                    del self._firing[key]  # the storm is over: the next first alert starts anew
                    self._changed.append(key)
                else:
                    heapq.heappush(deadlines, (firing.last + firing.window, key, _QUIET))
                continue
            firing.pending.discard(index)
            self._mark(key, firing)
            out.append((self.routes[index], self._note(firing, when)))
            self.escalated_total += 1
            if not firing.pending:  # escalated everywhere: once per storm, so kept until it is quiet
                heapq.heappush(deadlines, (firing.last + firing.window, key, _QUIET))
        return out

    def next_deadline(self) -> float | None:
        deadlines = self._deadlines
        while deadlines:
            _, key, index = deadlines[0]
            firing = self._firing.get(key)
            if firing is not None and _valid(firing, index):
                return deadlines[0][0]
            heapq.heappop(deadlines)
        return None

    def _note(self, firing: _Firing, when: float) -> Notification:
        first = firing.first
        span = seconds_in_words(when - firing.since)
        return replace(
            first,
            title=f"Still firing after {span}: {first.title}",
            description=f"{firing.events:,} events since the first alert, {span} ago; the first is below.\n\n"
            + first.description,
            count=firing.events,
        )

    # ── persistence ─────────────────────────────────────────────────────────

    def _mark(self, key: _Key, firing: _Firing) -> None:
        if not firing.changed:
            firing.changed = True
            self._changed.append(key)

    def changes(self) -> list[EscalationChange]:
        """The keys whose clocks changed since the last call, to store with the commit."""
        changed, self._changed = self._changed, []
        out: list[EscalationChange] = []
        for key in dict.fromkeys(changed):
            firing = self._firing.get(key)
            if firing is None:
                out.append((key, None))
                continue
            firing.changed = False
            pending = tuple(sorted(route_id(self.routes[i]) for i in firing.pending))
            state = FiringState(key[0], key[1], firing.first, firing.since, firing.last, firing.window,
                                firing.events, pending)  # fmt: skip
            out.append((key, state))
        return out

    def unsaved(self, changes: Iterable[EscalationChange]) -> None:
        """*changes* could not be stored: hand them out again with the next ``changes()``."""
        for key, _ in changes:
            firing = self._firing.get(key)
            if firing is None:
                self._changed.append(key)
            else:
                self._mark(key, firing)

    def restore(self, states: Iterable[FiringState]) -> None:
        """Take back the clocks stored before a restart, for the routes still configured (the time
        the daemon was stopped counts); a key none of whose routes is left is forgotten."""
        index = {route_id(route): i for i, route in enumerate(self.routes)}
        for state in states:
            key = (state.rule, state.key)
            pending = {index[r] for r in state.pending if r in index}
            if not pending and state.pending:
                self._changed.append(key)  # its routes are gone
                continue
            firing = self._firing[key] = _Firing(
                state.first, state.since, state.last, state.window, state.events, pending
            )
            for i in pending:
                after = self.routes[i].after
                assert after is not None
                heapq.heappush(self._deadlines, (state.since + after, key, i))
            if not pending:  # escalated everywhere: kept until it is quiet
                heapq.heappush(self._deadlines, (firing.last + firing.window, key, _QUIET))

    @property
    def watched(self) -> int:
        """Keys whose escalation clocks run."""
        return len(self._firing)


def _valid(firing: _Firing, index: int) -> bool:
    return index in firing.pending or (index == _QUIET and not firing.pending)

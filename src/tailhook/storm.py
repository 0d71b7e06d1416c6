"""Storm control: per rule key, the first alerts at once, the rest summarised.

Each ``(rule, key)`` pair has its own window, which opens at the first event
for that key. Within a window the first ``max_per_window`` events go out as
alerts at once; later ones are held back and counted. When the window closes,
one digest says how many were held (if ``digest`` is on), and the key starts
afresh with its next event. A digest is the last held event's notification
with its count, title and description changed: its line, captures and the
rule's ``fields:`` are that event's, so a runbook link still shows.

Pure: time comes from the ``clock`` given, so tests advance a fake clock
instead of sleeping. It is the wall clock (seconds since the epoch) because
windows outlive the process: every window an event or a tick changed is
handed out by ``changes()`` and stored in the spool in the same ingest commit
as the notifications it let through, and ``restore()`` takes them back at the
next start. A restart in the middle of a storm therefore neither repeats the
first alerts nor forgets the held count; a window that closed while the daemon
was down sends its digest at the first tick.

The counts are stored with every change; the held line a digest shows (a
rendered notification, the costly part: in a flood every commit changes every
open window) at most every ``HELD_STORED_EVERY_S`` per window. So after a
crash, a digest shows a line held at most that much before the last one; the
count is exact all the same. Without a crash, the digest shows the last one.

Memory is bounded: a closed window is forgotten, and at most ``max_keys``
windows are tracked (the oldest is closed early when a new key arrives at the
cap).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from tailhook.config import StormConfig
from tailhook.events import Event, Kind, Notification

__all__ = ["StormControl", "StormKey", "WindowState"]

HELD_STORED_EVERY_S = 1.0
"""How often an open window's last held line is stored, at most (its counts: every change)."""

StormKey = tuple[str, str]
"""``(rule name, rendered key)``: what one storm window counts."""


@dataclass(slots=True)
class _Window:
    config: StormConfig
    opened: float
    sent: int = 0
    held: int = 0
    last_held: Event | Notification | None = None
    """The last event held back; a notification once restored from the spool. Kept as the
    event while the storm goes on, so a held line costs no notification of its own."""
    held_stored: float | None = None
    """When ``last_held`` was last handed out to be stored (``None``: never, in this process)."""

    def closes(self) -> float:
        return self.opened + self.config.window

    def last_notification(self, host: str) -> Notification | None:
        if isinstance(self.last_held, Event):
            self.last_held = Notification.alert(self.last_held, host=host)
        return self.last_held


@dataclass(frozen=True, slots=True)
class WindowState:
    """One open window as the spool stores it."""

    rule: str
    key: str
    opened: float
    sent: int
    held: int
    last_held: Notification | None
    held_fresh: bool = True
    """``last_held`` is to be stored; if not, the one stored before stays (only the counts changed)."""


WindowChange = tuple[StormKey, WindowState | None]
"""A window's state to store, or ``None`` when it closed and is to be forgotten."""


class StormControl:
    """Decides, per storm key, which events become notifications now or later."""

    def __init__(
        self,
        default: StormConfig,
        *,
        host: str,
        clock: Callable[[], float] = time.time,
        max_keys: int = 100_000,
    ) -> None:
        self.default = default
        self.host = host
        self.clock = clock
        self.max_keys = max_keys
        self._windows: dict[StormKey, _Window] = {}
        self._closing: list[tuple[float, StormKey]] = []
        """A heap of (close time, key), so that finding the windows due costs nothing while none is.
        An entry whose window closed early, or opened again since, is passed over when it comes up."""
        self._changed: set[StormKey] = set()
        self.held_total = 0

    def admit(self, event: Event, storm: StormConfig | None = None) -> list[Notification]:
        """The notifications *event* causes now (none while it is held back).

        May include digests of windows that had to close first.
        """
        now = self.clock()
        closing = self._closing
        out = self.due(now) if closing and closing[0][0] <= now else []
        key: StormKey = (event.rule, event.key)
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= self.max_keys:
                out.extend(self._close(next(iter(self._windows))))
            window = self._windows[key] = _Window(storm or self.default, opened=now)
            self._push(window.closes(), key)
        if window.sent < window.config.max_per_window:
            window.sent += 1
            out.append(Notification.alert(event, host=self.host))
        else:
            window.held += 1
            window.last_held = event
            self.held_total += 1
        self._changed.add(key)
        return out

    def _push(self, closes: float, key: StormKey) -> None:
        closing = self._closing
        heapq.heappush(closing, (closes, key))
        if len(closing) > 2 * len(self._windows) + 1024:
            # Entries of windows closed early (at the key cap) wait for their time; with many keys
            # coming and going, start afresh from the open windows (amortised: rare, and linear).
            self._closing = [(w.closes(), k) for k, w in self._windows.items()]
            heapq.heapify(self._closing)

    def due(self, now: float | None = None) -> list[Notification]:
        """Digests of every window that has closed by *now*."""
        now = self.clock() if now is None else now
        out: list[Notification] = []
        closing = self._closing
        while closing and closing[0][0] <= now:
            closes, key = heapq.heappop(closing)
            window = self._windows.get(key)
            if window is not None and window.closes() == closes:
                out.extend(self._close(key))
        return out

    def next_deadline(self) -> float | None:
        """When the earliest open window closes, on this object's clock."""
        closing = self._closing
        while closing:
            closes, key = closing[0]
            window = self._windows.get(key)
            if window is not None and window.closes() == closes:
                return closes
            heapq.heappop(closing)  # that window closed early or opened again: forget the entry
        return None

    def __len__(self) -> int:
        return len(self._windows)

    # ── persistence ─────────────────────────────────────────────────────────

    def changes(self) -> list[WindowChange]:
        """The windows changed since the last call, to store with the notifications they caused."""
        changed, self._changed = self._changed, set()
        now = self.clock()
        out: list[WindowChange] = []
        for key in changed:
            window = self._windows.get(key)
            state = None
            if window is not None:
                stored = window.held_stored
                if window.last_held is None or stored is None or not 0 <= now - stored < HELD_STORED_EVERY_S:
                    window.held_stored = now
                    last = window.last_notification(self.host)
                    state = WindowState(key[0], key[1], window.opened, window.sent, window.held, last)
                else:
                    state = WindowState(key[0], key[1], window.opened, window.sent, window.held, None, held_fresh=False)
            out.append((key, state))
        return out

    def unsaved(self, changes: Iterable[WindowChange]) -> None:
        """*changes* could not be stored: hand them out again with the next ``changes()``."""
        for key, state in changes:
            self._changed.add(key)
            window = self._windows.get(key)
            if window is not None and state is not None and state.held_fresh:
                window.held_stored = None  # its held line too

    def restore(self, states: Iterable[WindowState], config_of: Callable[[str], StormConfig | None]) -> None:
        """Take back the windows stored before a restart, under each rule's current settings.

        A window whose rule is gone keeps the default settings, so its digest still goes out.
        """
        for state in states:
            config = config_of(state.rule) or self.default
            window = self._windows[(state.rule, state.key)] = _Window(
                config, state.opened, state.sent, state.held, state.last_held
            )
            self._push(window.closes(), (state.rule, state.key))

    def _close(self, key: StormKey) -> list[Notification]:
        window = self._windows.pop(key)
        self._changed.add(key)
        if not window.held or not window.config.digest:
            return []
        last = window.last_notification(self.host)
        if last is None:
            return []
        return [
            replace(
                last,
                kind=Kind.DIGEST,
                count=window.held,
                title=f"{last.title} (+{window.held} more)",
                description=_digest_text(window),
            )
        ]


def _digest_text(window: _Window) -> str:
    held = window.held
    events = "event was" if held == 1 else "events were"
    seconds = window.config.window
    span = f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
    return f"{held} more {events} held back in this {span} window; the last one is below."

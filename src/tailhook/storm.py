"""Storm control: per rule key, the first alerts at once, the rest summarised.

Each ``(rule, key)`` pair has its own window, which opens at the first event
for that key. Within a window the first ``max_per_window`` events go out as
alerts at once; later ones are held back and counted. When the window closes,
one digest says how many were held (if ``digest`` is on), and the key starts
afresh with its next event. A digest is the last held event's notification
with its count, title and description changed: its line, captures and the
rule's ``fields:`` are that event's, so a runbook link still shows. Its
``excerpt`` is the text of the lines held, one per line, for a sink to attach
as a file: the first ``attach_held`` of them (1,000), and no more than
``HELD_CHARS_PER_WINDOW`` characters per window and ``HELD_CHARS_TOTAL``
across all open windows (a line over ``HELD_LINE_CHARS`` is cut); a last line
says how many more were held and not kept, and which cap stopped them. Kept
lines are references to the events' text, appended as they come (no copy per
event), and freed when their window closes.

Beyond one window, per key (each optional, in the rule's ``storm:``):

- **Severity upgrade.** An event more severe than any alert of its window
  goes out at once, whatever the window has sent.
- **Thresholds** (``min_count: N``): nothing goes out until N events of the
  key arrived within ``window`` seconds; the alert then says so ("5 in 60 s").
- **Escalation** (``max_window``): a window that held events back makes the
  key's next window twice as long, up to ``max_window``; each quiet stretch of
  a window's length halves it again. Critical windows do not escalate.
- **Recovery** (``recovery: {after}``): a key that stormed (held events back)
  and then stayed quiet for ``after`` sends one resolved note naming the
  storm's span and total.
- **The key caps.** At most ``max_keys_per_window`` keys of one rule have a
  window open at once, and at most ``max_keys`` keys are tracked in all. An
  event under a new key past either cap goes to its rule's overflow key
  (``OVERFLOW_KEY``), a window like any other, whose digest counts what it
  held: a unique id per line cannot grow memory, and a scan from 60,000
  addresses is one storm of its rule (its first keys alerting on their own),
  not 60,000 alerts to store and sum up. A key remembered beyond its window
  (for escalation or recovery) opens its next window past the rule's cap.

Cost per event is constant: an event touches only its own key, and each key
has one deadline (its window's close, its recovery or its decay) in one heap,
so a tick pops only what is due.

Pure: time comes from the ``clock`` given, so tests advance a fake clock
instead of sleeping. It is the wall clock (seconds since the epoch) because
windows outlive the process: every window an event or a tick changed is
handed out by ``changes()`` and stored in the spool in the same ingest commit
as the notifications it let through, and ``restore()`` takes them back at the
next start. A restart in the middle of a storm therefore neither repeats the
first alerts nor forgets the held count; a window that closed while the daemon
was down sends its digest at the first tick. What lies beyond the open windows
is stored the same way (``KeyState``): escalation levels, storms awaiting
their recovery note, counts below a threshold.

The counts are stored with every change; the held line a digest shows and the
latest event a recovery note shows (rendered notifications, the costly part:
in a flood every commit changes every open window) at most every
``HELD_STORED_EVERY_S`` per key. So after a crash, a digest shows a line held
at most that much before the last one; the count is exact all the same.
Without a crash, the digest shows the last one.

The lines a digest attaches are not stored at all: they live in memory only,
so after a restart a restored window's digest attaches only the lines held
since the restart (a first line says how many were held before it). Storing
them would put megabytes of log text in the spool for each storm, rewritten
with every commit that changes its window.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from tailhook._records import record
from tailhook._units import seconds_in_words
from tailhook.config import StormConfig
from tailhook.events import Event, Kind, Notification, Severity
from tailhook.metrics import Metric, counter, gauge

__all__ = [
    "HELD_CHARS_PER_WINDOW",
    "HELD_CHARS_TOTAL",
    "HELD_LINE_CHARS",
    "HELD_STORED_EVERY_S",
    "OVERFLOW_KEY",
    "Closure",
    "KeyState",
    "StormControl",
    "StormKey",
]

HELD_STORED_EVERY_S = 1.0
"""How often a key's held line and latest event are stored, at most (its counts: every change)."""
OVERFLOW_KEY = "(keys past the cap)"
"""The key of a rule's events under new keys past ``max_keys_per_window`` or ``max_keys``."""
HELD_LINE_CHARS = 64 * 1024
"""A held line longer than this many characters is kept cut to them, followed by ``CUT_MARK``."""
CUT_MARK = " …[cut]"
HELD_CHARS_PER_WINDOW = 4 * 1024 * 1024
"""The most characters of held lines one window keeps for its digest (``attach_held`` counts lines;
this bounds a window of long lines: 1,000 tracebacks)."""
HELD_CHARS_TOTAL = 64 * 1024 * 1024
"""The most characters of held lines all open windows keep together: a flood across many keys cannot
make the lines kept for digests take the daemon's memory."""

StormKey = tuple[str, str]
"""``(rule name, rendered key)``: what one storm window counts."""


@dataclass(slots=True)
class _Window:
    """One open window of a key; its settings are the key's (``_Key.config``)."""

    opened: float
    length: float
    """Seconds: the settings' ``window``, or longer once the key escalated."""
    sent: int = 0
    held: int = 0
    last_held: Event | Notification | None = None
    """The last event held back; a notification once restored from the spool. Kept as the
    event while the storm goes on, so a held line costs no notification of its own."""
    top: Severity | None = None
    """The most severe alert this window sent (``None`` once restored: then nothing upgrades)."""
    update_at: float | None = None
    """When the held count goes out as an update (``updates_every``); ``None``: none due."""
    kept: list[str] = field(default_factory=list)
    """The text of the first lines held (in this process), for the digest's ``excerpt``."""
    kept_chars: int = 0
    """Characters in ``kept``, counted in ``StormControl._kept_chars`` too until the window closes."""
    unkept: int = 0
    """Lines held after a cap stopped the keeping: counted only."""
    unkept_why: str = ""
    """The cap that stopped the keeping, in words; ``""``: lines are still kept. Once stopped, a window
    keeps no more (a line freed elsewhere does not make room), so what it kept is the first lines held."""
    before_restart: int = 0
    """Lines held before the window was restored from the spool: their text was never stored."""
    line_stored: bool = False
    """A held line of this window was handed out to be stored: a restart can make its digest."""

    def closes(self) -> float:
        return self.opened + self.length

    def next_time(self) -> float:
        closes = self.opened + self.length
        return closes if self.update_at is None or self.update_at >= closes else self.update_at

    def last_notification(self, host: str) -> Notification | None:
        if isinstance(self.last_held, Event):
            self.last_held = Notification.alert(self.last_held, host=host)
        return self.last_held


@dataclass(slots=True)
class _Key:
    """One key: its open window, and what outlives a window (escalation, a storm's span)."""

    config: StormConfig
    window: _Window | None = None
    level: int = 0
    """Escalation: the next window is ``window * 2**level`` long (at most ``max_window``)."""
    quiet_from: float = 0.0
    """When the last window closed (or the level last went down): a quiet stretch counts from here."""
    first: float | None = None
    """The first event of the storm under way (``None``: no storm; only a key that held events back stormed)."""
    last: float = 0.0
    events: int = 0
    """Events since ``first``."""
    latest: Event | Notification | None = None
    """The latest event, for the recovery note (kept only when the key's settings have one)."""
    stormed: bool = False
    notes_stored: float | None = None
    """When the window's held line and ``latest`` were last handed out to be stored (``None``:
    not since the window opened, in this process)."""
    pending: deque[float] | None = None
    """Below ``min_count``: the times of the events of the last ``window`` seconds (made when first needed)."""
    changed: bool = False
    """In ``StormControl._changed`` already: a storm's every event marks its key, and a flag on the key
    it holds anyway costs less than a set of all the keys a commit changed."""

    def deadline(self) -> float | None:
        """When this key next needs a tick; ``None``: never (it may be forgotten)."""
        if self.window is not None:
            return self.window.next_time()
        config = self.config
        times: list[float] = []
        if self.pending:
            times.append(self.pending[0] + config.window)
        if self.stormed and config.recovery_after is not None:
            times.append(self.last + config.recovery_after)
        if self.level:
            times.append(self.quiet_from + _length(config, self.level))
        return min(times) if times else None


def _length(config: StormConfig, level: int) -> float:
    if config.max_window is None or not level:
        return config.window
    return min(config.window * (1 << level), config.max_window)


@record
class KeyState:
    """One key as the spool stores it: its open window, if any (``opened`` not ``None``), and what
    outlives a window: its escalation, the storm under way (for the recovery note) and the times of
    its events below a threshold."""

    rule: str
    key: str
    opened: float | None
    sent: int
    held: int
    last_held: Notification | None
    fresh: bool = True
    """``last_held`` and ``latest`` are to be stored; if not, those stored before stay (only the
    counts changed: a flood changes every key each commit, and rendering is the costly part)."""
    length: float | None = None
    """The open window's length, longer than the settings' ``window`` once escalated (``None``: that)."""
    level: int = 0
    quiet_from: float = 0.0
    first: float | None = None
    last: float | None = None
    """The key's latest event (``None``: ``opened``)."""
    events: int = 0
    stormed: bool = False
    latest: Notification | None = None
    pending: tuple[float, ...] = ()


@record
class Closure:
    """A window that closed: what it held, and its digest (``None``: none, as it held nothing or its
    settings have ``digest: false``)."""

    key: StormKey
    opened: float
    held: int
    digest_on: bool
    digest: Notification | None


KeyChange = tuple[StormKey, KeyState | None]
"""A key's state to store, or ``None`` when it is forgotten."""


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
        self._keys: dict[StormKey, _Key] = {}
        self._deadlines: list[tuple[float, StormKey]] = []
        """A heap of (deadline, key), so that finding what is due costs nothing while nothing is. An
        entry whose key has another deadline by now is passed over when it comes up."""
        self._changed: list[StormKey] = []
        """Keys changed since the last ``changes()``, each once while its ``_Key.changed`` holds."""
        self._open_keys: Counter[str] = Counter()
        """Per rule, its keys with a window open (its overflow key not counted)."""
        self.held: Counter[str] = Counter()
        """Events held, per rule."""
        self.updates_every: float | None = None
        """Seconds between updates of a storm under way (``Kind.UPDATE``), for destinations that edit
        a storm's message; ``None``: no updates (no destination edits)."""
        self.overflow_total = 0
        """Events that came under a rule's overflow key."""
        self._kept_chars = 0
        """Characters of held lines the open windows keep for their digests (``HELD_CHARS_TOTAL``)."""
        self.upgrades_total = 0
        self.recoveries_total = 0
        self.closures: list[Closure] | None = None
        """Fleet mode (``tailhook.fleet_storm``) sets a list here: every window that closes is added to
        it, with what it held and its digest, for the fleet to take (``None``: nobody takes them)."""

    def admit(self, event: Event) -> list[Notification]:
        """The notifications *event* causes now (none while it is held back or below its threshold).

        May include the digests and notes of keys whose time had come.
        """
        now = self.clock()
        deadlines = self._deadlines
        out = self.due(now) if deadlines and deadlines[0][0] <= now else []
        key: StormKey = (event.rule, event.key)
        state = self._keys.get(key)
        if state is None:
            config = event.storm or self.default
            if len(self._keys) >= self.max_keys or self._open_keys[event.rule] >= config.max_keys_per_window:
                key = (event.rule, OVERFLOW_KEY)
                self.overflow_total += 1
                state = self._keys.get(key)
            if state is None:
                state = self._keys[key] = _Key(config)
        state.last = now
        if state.config.recovery_after is not None:
            state.latest = event
        if state.first is not None:
            state.events += 1
        window = state.window
        if window is None:
            window = self._open(key, state, event, now, out)
            if window is None:
                self._mark(key, state)
                return out  # below the threshold
        elif window.sent < state.config.max_per_window:
            window.sent += 1
            out.append(Notification.alert(event, host=self.host))
            window.top = max(window.top or event.severity, event.severity)
        elif window.top is not None and event.severity > window.top:
            window.sent += 1
            window.top = event.severity
            self.upgrades_total += 1
            out.append(Notification.alert(event, host=self.host))
        else:
            window.held += 1
            window.last_held = event
            self.held[event.rule] += 1
            self._keep(window, state.config, event.line.text)
            if self.updates_every is not None and window.update_at is None:
                window.update_at = now + self.updates_every
                self._push(state, key)
            if state.first is None:  # the key storms from here: it counts for a recovery note
                state.first, state.events = window.opened, window.sent + window.held
        self._mark(key, state)
        return out

    def _open(self, key: StormKey, state: _Key, event: Event, now: float, out: list[Notification]) -> _Window | None:
        """A new window for *key* at *event*, with its first alert in *out*; ``None`` while the key
        has fewer than ``min_count`` events within a window."""
        config = state.config = event.storm or self.default
        if config.min_count > 1:
            pending = state.pending
            if pending is None:
                pending = state.pending = deque()
            pending.append(now)
            while pending and pending[0] <= now - config.window:
                pending.popleft()
            if len(pending) < config.min_count:
                self._push(state, key)  # its deadline: when the oldest of them drops out
                return None
            count = len(pending)
            pending.clear()
        level = 0 if event.severity >= Severity.CRITICAL else state.level
        window = state.window = _Window(now, _length(config, level), sent=1, top=event.severity)
        state.notes_stored = None
        if key[1] != OVERFLOW_KEY:
            self._open_keys[key[0]] += 1
        alert = Notification.alert(event, host=self.host)
        if config.min_count > 1:
            alert = replace(alert, title=f"{alert.title} ({count} in {seconds_in_words(config.window)})")
        out.append(alert)
        self._push(state, key)
        return window

    def _keep(self, window: _Window, config: StormConfig, text: str) -> None:
        """Keep the text of a line *window* held, for its digest, if no cap stands in the way; else
        count it. Constant time: an append (a long line is cut once, to a bounded length)."""
        if not (config.digest and config.attach_held):
            return  # no digest, or none with lines: nothing to keep them for
        if window.unkept_why:
            window.unkept += 1
            return
        if len(window.kept) >= config.attach_held:
            why = f"attach_held: {config.attach_held}"
        else:
            if len(text) > HELD_LINE_CHARS:
                text = text[:HELD_LINE_CHARS] + CUT_MARK
            size = len(text)
            if window.kept_chars + size > HELD_CHARS_PER_WINDOW:
                why = f"at most {HELD_CHARS_PER_WINDOW:,} characters per window"
            elif self._kept_chars + size > HELD_CHARS_TOTAL:
                why = f"at most {HELD_CHARS_TOTAL:,} characters across all open windows"
            else:
                window.kept.append(text)
                window.kept_chars += size
                self._kept_chars += size
                return
        window.unkept_why = why
        window.unkept = 1

    def _excerpt(self, window: _Window) -> str:
        """The lines *window* kept, as its digest's ``excerpt``, with what it did not keep said; they
        are freed here (the digest holds the one string made of them)."""
        lines = window.kept
        self._kept_chars -= window.kept_chars
        window.kept, window.kept_chars = [], 0
        if not lines and not window.unkept:
            return ""  # nothing held since the window opened (or was restored), or keeping is off
        if window.before_restart:
            n = window.before_restart
            lines.insert(
                0, f"… {n:,} {_lines(n)} held back before a restart, not kept (held lines live in memory only)"
            )
        if window.unkept:
            n = window.unkept
            lines.append(f"… and {n:,} more {_lines(n)} held back, not kept ({window.unkept_why})")
        return "\n".join(lines)

    def _mark(self, key: StormKey, state: _Key) -> None:
        """*key* changed: ``changes()`` hands it out next."""
        if not state.changed:
            state.changed = True
            self._changed.append(key)

    def _push(self, state: _Key, key: StormKey) -> None:
        deadline = state.deadline()
        if deadline is None:
            return
        deadlines = self._deadlines
        heapq.heappush(deadlines, (deadline, key))
        if len(deadlines) > 2 * len(self._keys) + 1024:
            # Entries of keys whose deadline moved wait for their time; with many keys coming and
            # going, start afresh from the keys (amortised: rare, and linear).
            self._deadlines = [(d, k) for k, s in self._keys.items() if (d := s.deadline()) is not None]
            heapq.heapify(self._deadlines)

    def due(self, now: float | None = None) -> list[Notification]:
        """Digests and notes of every key whose time came by *now*."""
        now = self.clock() if now is None else now
        out: list[Notification] = []
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            when, key = heapq.heappop(deadlines)
            state = self._keys.get(key)
            if state is None or state.deadline() != when:
                continue  # a stale entry: that key's deadline moved, or the key is gone
            self._step(key, state, when, out, now)
            self._mark(key, state)
            if state.deadline() is None:
                del self._keys[key]
            else:
                self._push(state, key)
                deadlines = self._deadlines
        return out

    def _step(self, key: StormKey, state: _Key, when: float, out: list[Notification], now: float) -> None:
        """What happens to *key* at its deadline *when*: its window closes, its storm is over, its
        threshold count runs out or its escalation goes down a step."""
        config = state.config
        window = state.window
        if window is not None:
            if window.update_at is not None and window.update_at < window.closes():
                window.update_at = None  # the next event held schedules the next one
                # (none when the window closes by now too: its digest says it all)
                update = None if window.closes() <= now else self._update(key, window, when)
                if update is not None:
                    out.append(update)
                return
            out.extend(self._close(key, state, when))
            return
        pending = state.pending
        if pending and pending[0] + config.window <= when:
            while pending and pending[0] <= when - config.window:
                pending.popleft()
        if state.stormed and config.recovery_after is not None and state.last + config.recovery_after <= when:
            note = self._recovered(state)
            if note is not None:
                out.append(note)
        if state.level and state.quiet_from + _length(config, state.level) <= when:
            state.level -= 1
            state.quiet_from = when

    def _close(self, key: StormKey, state: _Key, when: float) -> list[Notification]:
        window = state.window
        assert window is not None
        state.window = None
        if key[1] != OVERFLOW_KEY:
            self._open_keys[key[0]] -= 1
        state.quiet_from = when
        config = state.config
        excerpt = self._excerpt(window)  # the kept lines are freed whether a digest goes out or not
        if window.held:
            state.stormed = True
            if config.max_window is not None and window.top is not Severity.CRITICAL:
                state.level = min(state.level + 1, _levels(config))
        elif state.level:
            state.level -= 1
        last = window.last_notification(self.host) if window.held and config.digest else None
        digest = None
        if last is not None:
            digest = replace(
                last,
                kind=Kind.DIGEST,
                key=key[1],  # the overflow key's digest stands for many keys
                count=window.held,
                title=f"{last.title} (+{window.held} more)",
                description=_digest_text(key, window, config.max_keys_per_window, self.max_keys),
                excerpt=excerpt if config.attach_held else "",
            )
        if self.closures is not None:
            self.closures.append(Closure(key, window.opened, window.held, config.digest, digest))
        return [] if digest is None else [digest]

    def _update(self, key: StormKey, window: _Window, when: float) -> Notification | None:
        """How the storm of *key*'s open window stands: its latest event held, and how many so far."""
        last = window.last_notification(self.host)
        if last is None:
            return None
        total = window.sent + window.held
        rate = total / max(1.0, when - window.opened)
        return replace(
            last,
            kind=Kind.UPDATE,
            key=key[1],
            count=total,
            excerpt="",  # kept small: an edit under way; the digest attaches the lines
            description=(
                f"× {total:,} since {_clock(window.opened)} · last {_clock(when)} UTC "
                f"({rate:,.1f} a second); the latest below.\n{last.description}"
            ).rstrip(),
        )

    def _recovered(self, state: _Key) -> Notification | None:
        """The resolved note of a key's storm, which has been quiet for ``recovery_after``; ``None`` if
        the key kept no latest event (its settings had no recovery note while it stormed: a reload)."""
        last, first, after, events = (
            self._latest_notification(state),
            state.first,
            state.config.recovery_after,
            state.events,
        )
        state.stormed, state.first, state.events, state.latest = False, None, 0, None
        if last is None or first is None or after is None:
            return None
        span = seconds_in_words(state.last - first) if state.last > first else "an instant"
        self.recoveries_total += 1
        return replace(
            last,
            kind=Kind.RECOVERY,
            count=events,
            title=f"Resolved: {last.title}",
            description=(
                f"Quiet for {seconds_in_words(after)}. The storm lasted {span}, "
                f"from {_clock(first)} to {_clock(state.last)} UTC: {events:,} events in all."
            ),
        )

    def _latest_notification(self, state: _Key) -> Notification | None:
        """The key's latest event as a notification, made once and kept (a recovery note and the
        spool both want it)."""
        if isinstance(state.latest, Event):
            state.latest = Notification.alert(state.latest, host=self.host)
        return state.latest

    def next_deadline(self) -> float | None:
        """When the earliest key needs a tick, on this object's clock."""
        deadlines = self._deadlines
        while deadlines:
            when, key = deadlines[0]
            state = self._keys.get(key)
            if state is not None and state.deadline() == when:
                return when
            heapq.heappop(deadlines)  # that key's deadline moved, or the key is gone: forget the entry
        return None

    def __len__(self) -> int:
        """Keys tracked: with an open window, or remembered beyond it."""
        return len(self._keys)

    def adopt(self, config_of: Callable[[str], StormConfig | None]) -> None:
        """Reloaded rules: each key of a rule still there follows that rule's settings from now on
        (an open window closes at its opening plus the new ``window``); a removed rule's keys keep
        theirs, so its open windows still send their digests."""
        for key, state in self._keys.items():
            config = config_of(key[0])
            if config is None or config == state.config:
                continue
            state.config = config
            if state.window is not None:
                state.window.length = _length(config, 0)
            self._push(state, key)

    def window_of(self, key: StormKey) -> tuple[float, StormConfig] | None:
        """How long *key*'s open window is (its settings' ``window``, or longer once escalated), and the
        settings it follows; ``None``: it has no window open."""
        state = self._keys.get(key)
        if state is None or state.window is None:
            return None
        return state.window.length, state.config

    def align(self, key: StormKey, opened: float, length: float) -> None:
        """*key*'s open window is the fleet's, which opened at *opened* for *length* seconds
        (``tailhook.fleet_storm``): it closes when the fleet's does, so that what it held is counted
        in the fleet's window and its digest comes when the fleet's is due."""
        state = self._keys.get(key)
        window = None if state is None else state.window
        if state is None or window is None or (window.opened, window.length) == (opened, length):
            return
        window.opened, window.length = opened, length
        self._push(state, key)
        self._mark(key, state)

    @property
    def held_total(self) -> int:
        return self.held.total()

    def collect(self) -> Iterable[Metric]:
        yield counter("tailhook_storm_held_total", "Events storm control held, per rule.", self.held, "rule")
        yield counter(
            "tailhook_storm_overflow_total",
            "Events under a new key past a cap (a rule's max_keys_per_window keys with a window open, or "
            "the keys storm control tracks at most), counted in the rule's overflow key.",
            self.overflow_total,
        )
        yield counter(
            "tailhook_storm_upgrades_total",
            "Events sent at once because they were more severe than their window's alerts.",
            self.upgrades_total,
        )
        yield counter("tailhook_storm_recoveries_total", "Resolved notes sent.", self.recoveries_total)
        yield gauge("tailhook_storm_keys", "Keys storm control tracks now.", len(self._keys))
        yield gauge("tailhook_storm_open_windows", "Storm windows open now.", self._open_keys.total())

    # ── persistence ─────────────────────────────────────────────────────────

    def changes(self) -> list[KeyChange]:
        """The keys changed since the last call, to store with the notifications they caused."""
        changed, self._changed = self._changed, []
        now = self.clock()
        out: list[KeyChange] = []
        for key in dict.fromkeys(changed):  # twice if forgotten and tracked again since
            state = self._keys.get(key)
            if state is None:
                out.append((key, None))
                continue
            state.changed = False
            out.append((key, self._stored(key, state, now)))
        return out

    def _stored(self, key: StormKey, state: _Key, now: float) -> KeyState:
        """*key*'s state to store: with its held line and latest event rendered if they are due to be
        stored (``HELD_STORED_EVERY_S``), else only what it counts."""
        window = state.window
        stored = state.notes_stored
        fresh = (
            stored is None
            or not 0 <= now - stored < HELD_STORED_EVERY_S
            or (window is not None and window.held > 0 and not window.line_stored)  # its first held line
        )
        last_held = latest = None
        if fresh:
            state.notes_stored = now
            if window is not None:
                last_held = window.last_notification(self.host)
                window.line_stored = last_held is not None
            latest = self._latest_notification(state)
        pending = tuple(state.pending) if state.pending else ()
        if window is None:
            opened, sent, held, length = None, 0, 0, None
        else:
            opened, sent, held = window.opened, window.sent, window.held
            length = window.length if window.length != state.config.window else None
        return KeyState(
            key[0], key[1], opened, sent, held, last_held, fresh, length, state.level, state.quiet_from,
            state.first, state.last, state.events, state.stormed, latest, pending,
        )  # fmt: skip

    def unsaved(self, changes: Iterable[KeyChange]) -> None:
        """*changes* could not be stored: hand them out again with the next ``changes()``."""
        for key, change in changes:
            state = self._keys.get(key)
            if state is None:
                self._changed.append(key)  # forgotten since: its deletion is what is still to store
            else:
                self._mark(key, state)
                if change is not None and change.fresh:
                    state.notes_stored = None  # its held line and latest event too

    def restore(self, states: Iterable[KeyState], config_of: Callable[[str], StormConfig | None]) -> None:
        """Take back the keys stored before a restart, under each rule's current settings: their
        open windows (an escalated one as long as its level makes it now), escalation levels, storms
        awaiting their recovery note, and counts below a threshold.

        A key whose rule is gone keeps the default settings, so its digest still goes out.
        """
        for stored in states:
            config = config_of(stored.rule) or self.default
            key = (stored.rule, stored.key)
            window = None
            if stored.opened is not None:
                length = config.window if stored.length is None else _length(config, stored.level)
                if stored.length is not None and not stored.level:
                    length = stored.length  # not escalated: a window moved onto its fleet's (``align``)
                window = _Window(stored.opened, length, stored.sent, stored.held, stored.last_held)
                window.before_restart, window.line_stored = stored.held, stored.last_held is not None
                if stored.key != OVERFLOW_KEY:
                    self._open_keys[stored.rule] += 1
            state = self._keys[key] = _Key(
                config,
                window=window,
                level=min(stored.level, _levels(config)) if config.max_window is not None else 0,
                quiet_from=stored.quiet_from,
                first=stored.first,
                last=stored.last if stored.last is not None else stored.opened or 0.0,
                events=stored.events,
                latest=stored.latest,
                stormed=stored.stormed,
                pending=deque(stored.pending) if stored.pending else None,
            )
            if state.deadline() is None:
                del self._keys[key]  # nothing left to do under the settings as they are now
            else:
                self._push(state, key)


def _levels(config: StormConfig) -> int:
    """How many times a window doubles before it reaches ``max_window``."""
    assert config.max_window is not None
    level = 0
    while config.window * (1 << level) < config.max_window:
        level += 1
    return level


def _digest_text(key: StormKey, window: _Window, per_rule: int, max_keys: int) -> str:
    held = window.held
    span = seconds_in_words(window.length)
    if key[1] == OVERFLOW_KEY:
        return (
            f"{held:,} more events under new keys were held back in this {span} window: storm control gives "
            f"at most {per_rule:,} keys of a rule at once ({max_keys:,} in all) a window of their own, and "
            "the rest share this one. The last one is below."
        )
    events = "event was" if held == 1 else "events were"
    return f"{held} more {events} held back in this {span} window; the last one is below."


def _lines(n: int) -> str:
    return "line" if n == 1 else "lines"


def _clock(when: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(when))

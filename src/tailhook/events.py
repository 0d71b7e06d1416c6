"""The values that flow through the pipeline: lines, events, notifications.

This module is a leaf: it imports nothing else of tailhook's but ``_records``, so every stage
can depend on it without creating a cycle.

    Line ──rules──▶ Event ──storm control──▶ Notification ──routes──▶ Delivery
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

from tailhook._records import record

if TYPE_CHECKING:  # a type only: this module imports nothing of tailhook's when it runs
    from tailhook.config import StormConfig

__all__ = [
    "AUDIT_COLOUR",
    "PRIORITY_NAMES",
    "PRIORITY_SEVERITIES",
    "RECOVERY_COLOUR",
    "SEVERITY_CHOICES",
    "STORM_EDITS",
    "AlertField",
    "Delivery",
    "Event",
    "Kind",
    "Line",
    "Mentions",
    "Notification",
    "Rendered",
    "Severity",
    "Style",
]

_EMPTY: Mapping[str, str] = MappingProxyType({})


class Severity(enum.IntEnum):
    """How urgent an alert is; a larger value is more urgent."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Read a severity name or alias (``P0``..``P3``, ``DEV``), any case.

        Raises ``ValueError`` with the accepted names when *text* is none of them.
        """
        found = _SEVERITY_NAMES.get(text.strip().lower())
        if found is None:
            raise ValueError(f"unknown severity {text!r}; expected one of {SEVERITY_CHOICES}")
        return found

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def colour(self) -> int:
        """The embed colour Discord shows for this severity."""
        return _COLOURS[self]


_SEVERITY_NAMES: dict[str, Severity] = {s.name.lower(): s for s in Severity} | {
    "p0": Severity.CRITICAL,
    "p1": Severity.ERROR,
    "p2": Severity.WARNING,
    "p3": Severity.INFO,
    "dev": Severity.DEBUG,
}
SEVERITY_CHOICES = "critical, error, warning, info, debug (or P0, P1, P2, P3, DEV)"

PRIORITY_NAMES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
"""The syslog priorities of journal entries (``PRIORITY`` 0..7), as journalctl names them."""
PRIORITY_SEVERITIES: Mapping[str, Severity] = MappingProxyType(
    dict(zip(PRIORITY_NAMES, [Severity.CRITICAL] * 3 + [Severity.ERROR, Severity.WARNING, Severity.INFO,
                                                          Severity.INFO, Severity.DEBUG], strict=True))
)  # fmt: skip
"""A priority's severity (``severity: from_priority``): emerg, alert and crit are critical; notice is info."""

_COLOURS = {
    Severity.CRITICAL: 0xFF0000,
    Severity.ERROR: 0xFF8800,
    Severity.WARNING: 0xFFCC00,
    Severity.INFO: 0x3399FF,
    Severity.DEBUG: 0x808080,
}
RECOVERY_COLOUR = 0x00CC66
AUDIT_COLOUR = 0xFFFFFF


@record
class Line:
    """One log line (or one multiline event) as a source read it.

    ``fields`` holds what a source knows beyond the text, for templates:
    journald's ``unit``, ``identifier`` and ``pid``, a container's ``stream``.
    ``time`` is seconds since the epoch when the line was read or logged.
    """

    text: str
    source: str
    time: float
    path: str = ""
    fields: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


class AlertField(NamedTuple):
    """One of a rule's ``fields:`` as rendered for one event: a name, a value, side by side or not.

    Rendered in full; a sink cuts what its receiver cannot show (Discord: name 256, value 1024).
    """

    name: str
    value: str
    inline: bool = False


Rendered = tuple[str, str, tuple[AlertField, ...]]
"""An event's title, description and fields."""


class Event:
    """A line that a rule matched, with its storm key.

    Its title, description and fields come from templates too, but most events
    of a storm are only counted: given *render* instead, they are rendered the
    first time they are asked for, and only then.
    """

    __slots__ = ("_render", "_rendered", "captures", "key", "line", "origin", "rule", "severity", "storm")

    def __init__(
        self,
        *,
        rule: str,
        severity: Severity,
        key: str,
        captures: Mapping[str, str],
        line: Line,
        title: str = "",
        description: str = "",
        fields: tuple[AlertField, ...] = (),
        render: Callable[[], Rendered] | None = None,
        storm: StormConfig | None = None,
        origin: Mapping[str, str] = _EMPTY,
    ) -> None:
        self.rule = rule
        self.origin = origin
        """Where the line came from beyond the host (``tailhook.origin``): cluster, node, namespace, pod, container."""
        self.storm = storm
        """The rule's own storm settings; ``None``: the defaults apply."""
        self.severity = severity
        self.key = key
        self.captures = captures
        self.line = line
        self._render = render
        self._rendered: Rendered | None = None if render is not None else (title, description, fields)

    def _parts(self) -> Rendered:
        if self._rendered is None:
            assert self._render is not None
            self._rendered, self._render = self._render(), None
        return self._rendered

    @property
    def title(self) -> str:
        return self._parts()[0]

    @property
    def description(self) -> str:
        return self._parts()[1]

    @property
    def fields(self) -> tuple[AlertField, ...]:
        return self._parts()[2]

    def __repr__(self) -> str:
        return f"Event(rule={self.rule!r}, key={self.key!r}, line={self.line.text!r})"


class Kind(enum.StrEnum):
    """What a notification says: one alert, a digest of held ones, a recovery, a summary of a flood,
    or a note from tailhook itself, or the state of a storm under way (an update).

    A summary stands for a rule's alerts that waited for a destination when more were waiting than
    it could take in time (``tailhook.flood``); its ``count`` is how many.
    A note (the end of a silence: what it held) belongs to no rule: its ``rule`` is ``""``, which no
    rule can be named, its ``key`` says what it is about (the silence's id), and no silence holds it.
    """

    ALERT = "alert"
    DIGEST = "digest"
    RECOVERY = "recovery"
    SUMMARY = "summary"
    NOTE = "note"
    UPDATE = "update"
    """A storm under way, for a destination that edits the key's message instead of posting
    (``storm_updates: edit``): the latest event held, and how many so far. Never a post of its own."""


STORM_EDITS = frozenset({Kind.UPDATE, Kind.DIGEST, Kind.RECOVERY})
"""What edits a storm key's message, for a destination that edits (a post when there is none), and,
waiting in the spool, replaces the key's waiting update: only the newest state of a storm is sent."""


@record
class Notification:
    """What storm control lets through, ready for any sink to render.

    ``count`` is how many events the notification stands for: 1 for an alert,
    the number held back for a digest. ``fields`` are the rule's ``fields:``
    rendered for the event (a digest's: those of the last event held back).
    """

    kind: Kind
    rule: str
    severity: Severity
    key: str
    title: str
    description: str
    line: str
    source: str
    host: str
    time: float
    path: str = ""
    captures: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    count: int = 1
    fields: tuple[AlertField, ...] = ()
    origin: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    """Where the line came from beyond ``host``, those of cluster, node, namespace, pod and container known."""
    excerpt: str = ""
    """Text that goes with it as a file rather than in it: a digest's lines held back, one per line."""

    @classmethod
    def alert(cls, event: Event, *, host: str) -> Notification:
        title, description, fields = event._parts()  # rendered once for all three
        return cls(
            kind=Kind.ALERT,
            rule=event.rule,
            severity=event.severity,
            key=event.key,
            title=title,
            description=description,
            line=event.line.text,
            source=event.line.source,
            host=host,
            time=event.line.time,
            path=event.line.path,
            captures=event.captures,
            fields=fields,
            origin=event.origin,
        )


class Style(enum.StrEnum):
    """How a destination shows a notification: a full embed or one compact line."""

    FULL = "full"
    COMPACT = "compact"


@dataclass(frozen=True, slots=True)
class Mentions:
    """Who a delivery may ping. Empty by default: log text never pings anyone."""

    roles: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    everyone: bool = False

    def __bool__(self) -> bool:
        return bool(self.roles or self.users or self.everyone)


@record
class Delivery:
    """A notification addressed to one destination, as a route decided."""

    destination: str
    notification: Notification
    style: Style = Style.FULL
    mentions: Mentions = Mentions()

"""The config file and the rule files: load, validate, and freeze.

Every problem in every file is collected before anything is reported, and
each names its file, line and key (``ConfigError.problems``), so an operator
fixes a broken config in one pass. Unknown keys are errors. ``${VAR}`` and
``${VAR:-default}`` are expanded in string values; a webhook URL may come from
a file (``url_file``). Relative paths are read from the config file's folder.

Each component receives its own frozen part of the result: a source its
``FileSourceConfig``, the Discord sink its ``DestinationConfig`` and so on.
"""

from __future__ import annotations

import glob
import importlib.util
import ipaddress
import logging
import os
import re
import shutil
import socket
import string
import zoneinfo
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar, cast
from urllib.parse import unquote, urlsplit

from tailhook import _yaml, engines
from tailhook._files import shared_mode
from tailhook._units import parse_duration, parse_size
from tailhook.events import PRIORITY_NAMES, Mentions, Severity, Style
from tailhook.origin import FIELDS as ORIGIN_FIELDS
from tailhook.origin import from_environment
from tailhook.sinks.discord_payload import LIMITS, RULE_FIELDS_MAX

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_MAX_LINE_BYTES",
    "EX_CONFIG",
    "Config",
    "ConfigError",
    "DestinationConfig",
    "FieldConfig",
    "FileSourceConfig",
    "HeartbeatConfig",
    "HttpConfig",
    "JournaldSourceConfig",
    "MatchingConfig",
    "MultilineConfig",
    "ProbeConfig",
    "Problem",
    "ReportConfig",
    "RouteConfig",
    "RuleConfig",
    "ScheduleConfig",
    "SecretUrl",
    "SilenceConfig",
    "SourceConfig",
    "SpoolConfig",
    "StormConfig",
    "WebhookUrl",
    "load_config",
    "load_rules",
    "template_fields",
]

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = "/etc/tailhook/tailhook.yaml"
DEFAULT_MAX_LINE_BYTES = 64 * 1024
"""A file source's ``max_line_bytes`` when it names none: longer lines are cut there."""
EX_CONFIG = 78
"""The exit code for a config or rule file that does not load (sysexits' EX_CONFIG), and for a webhook
Discord says does not exist: systemd and Kubernetes then show a config problem, not a restart loop."""
T = TypeVar("T")
_NONE: tuple[str, ...] = ()
_DEFAULT_SPOOL_BYTES = 256 * 1024 * 1024


# ── problems ────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in one file, at one line, under one key."""

    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(Exception):
    """The config or a rule file is invalid; ``problems`` lists every fault found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        problems = list(problems)
        files = {p.file: i for i, p in reversed(list(enumerate(problems)))}
        self.problems = tuple(sorted(problems, key=lambda p: (files[p.file], p.line)))
        super().__init__("\n".join(str(p) for p in self.problems))


# ── the frozen result ───────────────────────────────────────────────────────


class SecretUrl:
    """A URL whose path or query is a secret (a heartbeat's, as healthchecks.io or Uptime Kuma give
    them): ``str`` and ``repr`` show its scheme and host only; ``reveal()`` gives the URL itself."""

    __slots__ = ("_url", "redacted")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("not an http(s) URL")
        self._url = url.strip()
        self.redacted = f"{parts.scheme}://{parts.netloc}/***"

    def reveal(self) -> str:
        return self._url

    def __repr__(self) -> str:
        return f"SecretUrl({self.redacted!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretUrl) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)


class WebhookUrl:
    """A Discord webhook URL. Its token is a secret: ``str`` and ``repr`` hide it.

    Only ``reveal()`` gives the real URL, for the HTTP request itself.
    """

    __slots__ = ("_url", "id", "old_host", "redacted")

    _PATH = re.compile(r"^(?P<base>.*/webhooks/(?P<id>\d{1,25}))/(?P<token>[A-Za-z0-9_.\-]{1,200})/?$")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url.strip())
        found = self._PATH.match(parts.path)
        if parts.scheme not in ("http", "https") or not parts.hostname or found is None:
            raise ValueError("not a Discord webhook URL; expected https://discord.com/api/webhooks/ID/TOKEN")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError("a webhook URL must use https (plain http is allowed only on loopback, for tests)")
        if parts.query or parts.fragment:
            raise ValueError("a webhook URL takes no query or fragment; use thread_id for threads")
        netloc = parts.netloc
        self.old_host: str | None = None
        """The ``discordapp.com`` host the URL was given with, before it became ``discord.com``."""
        host = parts.hostname.removesuffix(".")
        if host == "discordapp.com" or host.endswith(".discordapp.com"):
            # The old host has its own, stricter rate limit: the same webhook on discord.com.
            self.old_host = host
            netloc = netloc.replace(parts.hostname, host.removesuffix("discordapp.com") + "discord.com")
        self._url = f"{parts.scheme}://{netloc}{found.group('base')}/{found.group('token')}"
        self.id = found.group("id")
        self.redacted = f"{parts.scheme}://{netloc}{found.group('base')}/***"

    def reveal(self) -> str:
        """The URL with its token, for the request line and nothing else."""
        return self._url

    @property
    def token(self) -> str:
        return self._url.rsplit("/", 1)[1]

    def __repr__(self) -> str:
        return f"WebhookUrl({self.redacted!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WebhookUrl) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class MultilineConfig:
    """How the lines of one event (a traceback) are told from the lines that start the next."""

    start: str | None = None
    """A line matching this regex starts an event; others continue the open one."""
    continuation: str | None = None
    """A line matching this regex continues the previous event; others start one."""
    max_lines: int = 200
    timeout: float = 1.0
    """Seconds after its last line that an open event is given out."""


@dataclass(frozen=True, slots=True)
class FileSourceConfig:
    name: str
    paths: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    start_at: Literal["end", "beginning"] = "end"
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    rescan_interval: float = 10.0
    """Seconds between safety rescans of the globs, besides filesystem events."""
    rotate_wait: float = 5.0
    """Seconds a rotated-away file must stay quiet at its end before it is closed."""
    poll: bool = False
    """Poll the followed files instead of waiting for filesystem events (NFS, some overlay filesystems)."""
    poll_interval: float = 0.25
    format: Literal["plain", "cri", "json"] = "plain"
    message_key: str = "message"
    """With ``format: json``, the key whose value the rules match."""
    multiline: MultilineConfig | None = None
    type: Literal["file"] = "file"


@dataclass(frozen=True, slots=True)
class JournaldSourceConfig:
    name: str
    units: tuple[str, ...] = ()
    """``_SYSTEMD_UNIT`` values, any of them (empty: every unit)."""
    priority: int = 7
    """Entries of this syslog priority (0 emerg … 7 debug) and more urgent."""
    directory: str | None = None
    """Read journal files from this folder instead of the system journal."""
    start_at: Literal["end", "beginning"] = "end"
    identifiers: tuple[str, ...] = ()
    """``SYSLOG_IDENTIFIER`` values, any of them; ``kernel`` takes the kernel's messages (``_TRANSPORT=kernel``)."""
    matches: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """Field matches as journalctl takes them: any value of a field, every field."""
    this_boot: bool = False
    namespace: str | None = None
    """A journal namespace (``systemd-journald@NAMESPACE``) instead of the default one."""
    fields: tuple[str, ...] = ()
    """Entry fields templates may name as ``{FIELD}``, beyond unit, identifier, pid, priority and hostname."""
    max_catchup: float | None = 3600.0
    """After a stop, read at most this far back (by entry time); older entries are skipped and counted."""
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    """A field longer than this is cut there, as a long line is."""
    reader: Literal["auto", "systemd-python", "journalctl"] = "auto"
    """``auto``: systemd-python when it can be imported, else ``journalctl`` as a subprocess."""
    type: Literal["journald"] = "journald"

    @property
    def filtered(self) -> bool:
        """Whether the journal's entries are filtered (so the cursor must be moved on without them)."""
        return bool(self.units or self.identifiers or self.matches or self.priority < 7 or self.this_boot)


SourceConfig = FileSourceConfig | JournaldSourceConfig


MAX_ATTACH_HELD = 100_000
"""The most ``storm.attach_held`` may be: a digest's file of held lines is for reading, not for keeping
a flood (storm control caps their characters as well)."""


@dataclass(frozen=True, slots=True)
class StormConfig:
    window: float = 60.0
    """Seconds of one storm window per rule key."""
    max_per_window: int = 3
    digest: bool = True
    """At the end of a window, send one digest of what was held back."""
    max_window: float | None = None
    """Escalation: a key whose window held events back gets a window twice as long the next time,
    up to this many seconds (and back by half per quiet window); ``None``: every window as long."""
    min_count: int = 1
    """Alert only once this many events of a key arrived within ``window`` seconds."""
    recovery_after: float | None = None
    """Seconds a key that stormed must stay quiet before a resolved note says so; ``None``: no note."""
    update_every: float = 5.0
    """For destinations with ``storm_updates: edit``: a storm's message is edited at most this often
    (the main file's ``storm:`` only)."""
    flood_after: float = 30.0
    """A destination with more non-critical alerts waiting than it can send in this many seconds
    (its rate limits) has them summed up per rule (the main file's ``storm:`` only)."""
    max_keys_per_window: int = 1000
    """At most this many keys of one rule have a window open at once; an event under another new key
    counts under the rule's overflow key (a scan from 60,000 addresses is one storm, not 60,000)."""
    attach_held: int = 1000
    """A digest carries the text of at most this many of the lines its window held back (its first
    ones), as a file beside the message; 0: none. Memory only, within caps of storm control's own
    (``tailhook.storm.HELD_CHARS_PER_WINDOW``, ``HELD_CHARS_TOTAL``)."""
    fleet: bool = True
    """With ``fleet:`` in the main config: this rule's keys storm fleet-wide (their first alerts claimed
    across the fleet, one digest for all hosts); ``False``: each host's storm control alone."""


@dataclass(frozen=True, slots=True)
class FieldConfig:
    """One of a rule's ``fields:``: an extra embed field, its name and value templates."""

    name: str
    value: str
    inline: bool = False


@dataclass(frozen=True, slots=True)
class RuleConfig:
    name: str
    file: str
    line: int
    match: str
    severity: Severity = Severity.WARNING
    exclude: str | None = None
    key: str | None = None
    title: str | None = None
    description: str = ""
    sources: tuple[str, ...] | None = None
    storm: StormConfig | None = None
    enabled: bool = True
    """``False``: loaded and checked, but never matched."""
    fields: tuple[FieldConfig, ...] = ()
    to: tuple[str, ...] | None = None
    """The destinations of this rule's alerts, instead of what the routes say; ``None``: the routes decide."""
    mentions: Mentions | None = None
    """Who this rule's alerts ping, in every delivery, instead of the route's; ``None``: the route's."""
    expect_every: float | None = None
    """An absence rule (``expect: {every}``): an alert when no line matched it for this many seconds."""
    from_priority: bool = False
    """``severity: from_priority``: each alert's severity is its journal entry's ``PRIORITY``, at least
    ``severity`` (``severity_floor``); a line without one has ``severity``."""


ENGINE_CHOICES = ("auto", *engines.ENGINES)
DEFAULT_LINE_BUDGET_S = 0.1


@dataclass(frozen=True, slots=True)
class MatchingConfig:
    """How lines are matched against the rules (``rules:`` in the config file)."""

    engine: str = "auto"
    """``auto`` (the best installed), ``hyperscan``, ``re2`` or ``re`` (no multi-pattern engine)."""
    line_budget: float = DEFAULT_LINE_BUDGET_S
    """CPU seconds one rule's regex may spend on one line before the line is skipped for that rule."""


@dataclass(frozen=True, slots=True)
class DestinationConfig:
    name: str
    urls: tuple[WebhookUrl, ...]
    """One or more webhooks of the same channel; requests are spread across them."""
    username: str | None = None
    avatar_url: str | None = None
    thread_id: str | None = None
    thread_name: str | None = None
    """For a forum channel: each message opens a post named by this template."""
    suppress_notifications: frozenset[Severity] = frozenset()
    """Severities whose messages are posted without a push or desktop notification."""
    proxy: str | None = field(default=None, repr=False)
    """``http(s)://[user:password@]host:port``; ``None``: ``HTTPS_PROXY``/``NO_PROXY`` from the environment."""
    storm_updates: Literal["edit", "post"] = "edit"
    """``edit``: a storm is one message: its key's latest post is edited as the storm goes on, its
    digest and its resolved note are edits of it. ``post``: each a message of its own."""
    resolved_post: bool = False
    """With ``storm_updates: edit``: a resolved storm also gets a short message of its own."""
    threads: Literal["per_message", "per_incident"] = "per_message"
    """For a forum channel (``thread_name``): ``per_message``, each message opens a post;
    ``per_incident``, each storm key has one post, and its later alerts, digests, edits and
    resolved note go into it."""
    applied_tags: Mapping[Severity, tuple[str, ...]] = field(default_factory=dict)
    """For a forum channel: the tag ids a new post gets, by the severity of its first alert."""


@dataclass(frozen=True, slots=True)
class RouteConfig:
    to: tuple[str, ...]
    severities: frozenset[Severity] | None = None
    rules: frozenset[str] | None = None
    sources: frozenset[str] | None = None
    hosts: frozenset[str] | None = None
    namespaces: frozenset[str] | None = None
    """Kubernetes namespaces the alert came from (``tailhook.origin``); ``None``: any, or none known."""
    style: Style = Style.FULL
    mentions: Mentions = field(default_factory=Mentions)
    continue_: bool = False
    after: float | None = None
    """An escalation route: it takes an alert only once its key has been firing this many seconds
    (``tailhook.escalation``), never at once; ``None``: a route of every alert as it comes."""


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """``fleet:``: the Redis (or Valkey) through which the tailhooks of one fleet share each webhook's
    pacing and their storm keys. Redis holds coordination state only, never an alert."""

    redis: str = field(repr=False)
    """``redis://`` or ``rediss://`` (TLS) URL; it may hold a password, so it is never shown."""
    name: str
    """The fleet's name: every key it uses starts with ``tailhook:<name>:``."""
    password: str | None = field(default=None, repr=False)
    timeout: float = 0.25
    """Seconds each call to Redis may take before the daemon goes on alone."""
    ca_file: Path | None = None
    """``rediss://``: the CA certificates (PEM) to check the server's certificate against, instead of
    the system's (a private CA: an in-cluster Redis, some managed ones)."""

    def redacted(self) -> str:
        """Where the Redis is, without credentials: ``redis://host:port/db``."""
        parts = urlsplit(self.redis)
        return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"


@dataclass(frozen=True, slots=True)
class HeartbeatConfig:
    """``heartbeat:``'s ``url``: a URL pinged every ``every`` seconds while tailhook is healthy, and its
    ``fail_url`` (default: the URL with ``/fail``, as healthchecks.io has it) when not.

    The same section's ``report`` is the ``ReportConfig``, apart: a heartbeat may be only a report.
    """

    url: SecretUrl
    fail_url: SecretUrl
    every: float = 300.0
    stuck_after: float = 600.0
    """A destination whose oldest waiting alert is older than this, or that is dead, is unhealthy."""
    method: Literal["get", "post"] = "post"
    """``post`` sends a line saying how tailhook is (or what is wrong) as the body; ``get`` only asks."""


DEFAULT_REPORT_AT = 9 * 60
"""A daily report's ``at`` when it names none: 09:00."""


@dataclass(frozen=True, slots=True)
class ReportConfig:
    """``heartbeat.report:``: once a day, a message to a destination saying what tailhook follows and
    what the day held (``tailhook.report``)."""

    to: str
    """The destination's name."""
    at: int = DEFAULT_REPORT_AT
    """When: minutes after midnight in the host's local time (``"09:00"``: 540)."""


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    mode: Literal["get", "message", "off"] = "get"
    on_failure: Literal["exit", "warn"] = "exit"


@dataclass(frozen=True, slots=True)
class SpoolConfig:
    max_bytes: int = _DEFAULT_SPOOL_BYTES
    max_age: float | None = None
    """Seconds a notification may wait; older ones are dropped and announced. ``None``: no limit."""


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""A schedule's ``days``, in the order of ``date.weekday()`` (0 is Monday)."""


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    """A weekly window: on each of ``days``, from ``starts`` to ``ends`` (minutes after midnight).

    ``ends`` at or before ``starts`` is on the next day (22:00-06:00 crosses midnight; equal: 24 hours).
    """

    days: frozenset[int]
    """0 is Monday, as ``date.weekday()``."""
    starts: int
    ends: int
    timezone: str | None = None
    """An IANA name (``Europe/Berlin``); ``None``: the host's local time."""


@dataclass(frozen=True, slots=True)
class SilenceConfig:
    """One of the ``silences:``: which alerts it holds, why, and when: fixed times or a weekly schedule.

    A matcher left at ``None`` matches everything; critical alerts pass unless ``severities`` names critical.
    """

    name: str
    file: str
    line: int
    reason: str = ""
    rules: frozenset[str] | None = None
    sources: frozenset[str] | None = None
    hosts: frozenset[str] | None = None
    severities: frozenset[Severity] | None = None
    starts: float | None = None
    """With ``ends``: seconds since the epoch (``from``/``until``); ``None`` with a ``schedule``."""
    ends: float | None = None
    schedule: ScheduleConfig | None = None


@dataclass(frozen=True, slots=True)
class HttpConfig:
    listen: str | None = None
    """``host:port`` for /healthz /readyz /metrics; ``None`` serves nothing."""


@dataclass(frozen=True, slots=True)
class Config:
    path: str
    state_dir: Path
    host: str
    sources: tuple[SourceConfig, ...]
    rule_paths: tuple[str, ...]
    rules: tuple[RuleConfig, ...]
    matching: MatchingConfig
    destinations: Mapping[str, DestinationConfig]
    routes: tuple[RouteConfig, ...]
    storm: StormConfig = StormConfig()
    probe: ProbeConfig = ProbeConfig()
    heartbeat: HeartbeatConfig | None = None
    """The URL to ping; ``None``: none (no ``heartbeat:``, or one that is only a ``report``)."""
    fleet: FleetConfig | None = None
    """``fleet:``: pacing shared with other tailhooks through Redis; ``None``: this daemon alone."""
    report: ReportConfig | None = None
    """``heartbeat.report``: the daily report; ``None``: none."""
    identity: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """tailhook's place beyond ``host`` (``tailhook.origin``): those of cluster, node, namespace, pod
    and container that ``identity:`` or the environment give."""
    spool: SpoolConfig = SpoolConfig()
    http: HttpConfig = HttpConfig()
    shutdown_timeout: float = 10.0
    """Seconds to keep delivering after SIGTERM before exiting."""
    silences: tuple[SilenceConfig, ...] = ()


# ── reading one file ────────────────────────────────────────────────────────

_MISSING: Any = object()
_ENV = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class _File:
    """Collects the problems of one file while its values are read."""

    def __init__(self, name: str, problems: list[Problem]) -> None:
        self.name = name
        self.problems = problems

    def problem(self, line: int, key: str, message: str) -> None:
        self.problems.append(Problem(self.name, line, key, message))

    def section(self, value: Any, key: str, line: int) -> _Section | None:
        if value is None:
            value = _yaml.LocatedDict()
            value.line, value.lines, value.duplicates = line, {}, []
        if not isinstance(value, _yaml.LocatedDict):
            self.problem(line, key, f"must be a mapping of keys to values, not {_kind(value)}")
            return None
        return _Section(self, value, key)


class _Section:
    """One mapping of a file: values are taken by key, leftovers are errors."""

    def __init__(self, file: _File, mapping: _yaml.LocatedDict, path: str) -> None:
        self.file = file
        self.mapping = mapping
        self.path = path
        self.taken: set[str] = set()
        for key, line in mapping.duplicates:
            file.problem(line, self.key(str(key)), "given twice; the second would silently win")

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def line(self, name: str) -> int:
        return self.mapping.lines.get(name, self.mapping.line)

    def has(self, name: str) -> bool:
        return name in self.mapping

    def get(self, name: str, convert: Callable[[Any], T], default: T = _MISSING, *, required: bool = False) -> T:
        """The value of *name* converted, or *default*; a problem if it is invalid or required and missing."""
        self.taken.add(name)
        if name not in self.mapping or self.mapping[name] is None:
            if default is _MISSING or required:
                self.file.problem(self.mapping.line, self.key(name), "is required")
            return default
        try:
            return convert(_expand(self.mapping[name]))
        except ValueError as exc:
            self.file.problem(self.line(name), self.key(name), str(exc))
            return default

    def raw(self, name: str) -> Any:
        self.taken.add(name)
        return self.mapping.get(name)

    def sub(self, name: str) -> _Section | None:
        self.taken.add(name)
        return self.file.section(self.mapping.get(name), self.key(name), self.line(name))

    def items(self, name: str) -> list[tuple[Any, str, int]]:
        """The items of the list under *name*, each with its key path and line."""
        self.taken.add(name)
        value = self.mapping.get(name)
        if value is None:
            return []
        if not isinstance(value, _yaml.LocatedList):
            self.file.problem(self.line(name), self.key(name), f"must be a list, not {_kind(value)}")
            return []
        return [(item, f"{self.key(name)}[{i}]", value.lines[i]) for i, item in enumerate(value)]

    def done(self) -> None:
        for key in self.mapping:
            if key not in self.taken:
                self.file.problem(self.line(key), self.key(str(key)), "unknown key")


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _expand(value: Any) -> Any:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in strings, recursively in lists."""
    if isinstance(value, str):
        return _ENV.sub(_env_value, value)
    if isinstance(value, _yaml.LocatedList):
        expanded = _yaml.LocatedList(_expand(item) for item in value)
        expanded.line, expanded.lines = value.line, value.lines
        return expanded
    return value


def _env_value(found: re.Match[str]) -> str:
    name, default = found.group("name"), found.group("default")
    value = os.environ.get(name)
    if value is None or (value == "" and default is not None):
        if default is None:
            raise ValueError(f"environment variable {name} is not set (write ${{{name}:-default}} for a default)")
        return default
    return value


# ── converters: value → typed value, or ValueError with a message ──────────


def _str(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"must be a string, not {_kind(value)}")
    text = str(value)
    if not text.strip():
        raise ValueError("must not be empty")
    return text


def _str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (_str(value),)
    if not isinstance(value, list):
        raise ValueError(f"must be a list of strings, not {_kind(value)}")
    return tuple(_str(item) for item in value)


def _str_set(value: Any) -> frozenset[str]:
    return frozenset(_str_list(value))


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {_kind(value)}")
    return value


def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a whole number of at least 1, not {_kind(value)}")
    return value


def _whole_number_up_to(most: int) -> Callable[[Any], int]:
    """A whole number from 0 (off) to *most*: a bound, so that a slip of the keyboard cannot ask for millions."""

    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
            raise ValueError(f"must be a whole number from 0 to {most:,}, not {_kind(value)}")
        return value

    return convert


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


def _choice(*choices: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> str:
        if value is False and "off" in choices:  # YAML 1.1 reads a bare `off` as false
            return "off"
        if isinstance(value, bool) or value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, not {value!r}")
        return cast(str, value)

    return convert


def _name(value: Any) -> str:
    text = _str(value)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", text):
        raise ValueError(f"{text!r} is not a name: use letters, digits, '-', '_' and '.', at most 64")
    return text


def _severity(value: Any) -> Severity:
    return Severity.parse(_str(value))


def _severities(value: Any) -> frozenset[Severity]:
    return frozenset(_severity(item) for item in _str_list(value))


def _snowflakes(value: Any) -> tuple[str, ...]:
    items = tuple(str(item) for item in (value if isinstance(value, list) else [value]))
    for item in items:
        if not re.fullmatch(r"\d{15,25}", item):
            raise ValueError(f"{item!r} is not a Discord ID (a number of 17 to 20 digits)")
    return items


def _regex(value: Any) -> str:
    pattern = _str(value)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"regex does not compile: {exc}") from None
    return pattern


_JOURNAL_PRIORITIES = {name: number for number, name in enumerate(PRIORITY_NAMES)} | {"error": 3}


def _engine(value: Any) -> str:
    engine = str(_choice(*ENGINE_CHOICES)(value))
    if engine != "auto" and not engines.available(engine):
        raise ValueError(f"the {engine} engine is not installed (pip install 'tailhook[fast]'), or use auto")
    return engine


def _journal_priority(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 7:
        return value
    found = _JOURNAL_PRIORITIES.get(str(value).lower())
    if found is None:
        raise ValueError(f"must be a syslog priority 0..7 or one of {', '.join(_JOURNAL_PRIORITIES)}")
    return found


def _listen(value: Any) -> str | None:
    text = _str(value)
    if text in ("off", "none"):
        return None
    _, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{text!r} is not host:port, such as 127.0.0.1:9420 (port 0: any free one, logged)")
    return text


# ── the main file ───────────────────────────────────────────────────────────


def load_config(path: str | os.PathLike[str]) -> Config:
    """Load and validate *path* and every rule file it names.

    Raises ``ConfigError`` listing every problem found in all of them.
    """
    problems: list[Problem] = []
    config_path = Path(path)
    file = _File(str(config_path), problems)
    document = _read_yaml(config_path, file)
    top = file.section(document, "", 1) if document is not _MISSING else None
    if top is None:
        raise ConfigError(problems)
    base = config_path.parent

    sources = _sources(top, base)
    destinations = _destinations(top, base)
    routes = _routes(top, destinations)
    rules_section = top.sub("rules")
    rule_paths: tuple[str, ...] = ()
    matching = MatchingConfig()
    if rules_section is not None:
        rule_paths = tuple(str(base / p) for p in rules_section.get("paths", _str_list, _NONE))
        matching = MatchingConfig(
            engine=rules_section.get("engine", _engine, "auto"),
            line_budget=rules_section.get("line_budget", _positive_duration, DEFAULT_LINE_BUDGET_S),
        )
        rules_section.done()
    storm = _storm(top.sub("storm"), StormConfig(), main=True)
    probe = _probe(top.sub("probe"))
    # Without a destinations section everything goes to the console, whatever a `to:` names.
    known_destinations = destinations if top.has("destinations") else None
    heartbeat, report = _heartbeat(top.sub("heartbeat") if top.has("heartbeat") else None, base, known_destinations)
    spool = _spool(top.sub("spool"))
    http = _http(top.sub("http"))
    silences, silenced_rules = _silences(top, sources)
    state_dir = base / top.get("state_dir", _str, "/var/lib/tailhook")
    host = top.get("host", _str, socket.gethostname())
    identity = _identity(top.sub("identity") if top.has("identity") else None)
    shutdown_timeout = top.get("shutdown_timeout", _positive_duration, 10.0)
    fleet = _fleet(top.sub("fleet") if top.has("fleet") else None, base)
    top.done()

    problems_before_rules = len(problems)
    rules = _load_rule_files(rule_paths, _source_formats(sources), problems, known_destinations)
    if len(problems) == problems_before_rules:  # a rule file with problems may lack a rule it means
        _check_silenced_rules(file, silenced_rules, {rule.name for rule in rules})
    if problems:
        raise ConfigError(problems)
    return Config(
        path=str(config_path),
        state_dir=state_dir,
        host=host,
        sources=sources,
        rule_paths=rule_paths,
        rules=rules,
        matching=matching,
        destinations=MappingProxyType(destinations),
        routes=routes,
        storm=storm,
        probe=probe,
        heartbeat=heartbeat,
        report=report,
        identity=identity,
        spool=spool,
        http=http,
        shutdown_timeout=shutdown_timeout,
        silences=silences,
        fleet=fleet,
    )


def _fleet(section: _Section | None, base: Path) -> FleetConfig | None:
    """``fleet: {redis, name, password | password_file, timeout, ca_file}``."""
    if section is None:
        return None
    url = section.get("redis", _redis_url, "", required=True)
    name = section.get("name", _name, "", required=True)
    if section.has("password") and section.has("password_file"):
        section.file.problem(section.line("password_file"), section.key("password_file"),
                             "give password or password_file, not both")  # fmt: skip
    password = section.get("password", _str, None)
    if section.has("password_file"):
        password = section.get("password_file", lambda v: _secret_file(base / _str(v), "a Redis password"), None)
    timeout = section.get("timeout", _positive_duration, 0.25)
    ca_file = section.get("ca_file", lambda v: _pem_file(base / _str(v)), None)
    if ca_file is not None and url and not url.startswith("rediss://"):
        section.file.problem(section.line("ca_file"), section.key("ca_file"), "needs a rediss:// URL (TLS)")
    section.done()
    if importlib.util.find_spec("redis") is None:
        section.file.problem(section.mapping.line, section.path,
                             "fleet mode needs the redis package: pip install 'tailhook[fleet]'")  # fmt: skip
    if not url or not name:
        return None
    return FleetConfig(url, name, password or None, timeout, ca_file)


def _pem_file(path: Path) -> Path:
    """*path*, a readable file of PEM certificates."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError(f"{path} holds no PEM certificate")
    return path


def _redis_url(value: Any) -> str:
    text = _str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError("must be a redis:// or rediss:// URL with a host")
    return text


def _read_yaml(path: Path, file: _File) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        file.problem(0, "", f"cannot read: {exc.strerror if isinstance(exc, OSError) else exc}")
        return _MISSING
    try:
        return _yaml.load(text)
    except _yaml.YamlError as exc:
        file.problem(exc.line, "", str(exc))
        return _MISSING


def _sources(top: _Section, base: Path) -> tuple[SourceConfig, ...]:
    sources: list[SourceConfig] = []
    seen: set[str] = set()
    for item, key, line in top.items("sources"):
        section = top.file.section(item, key, line)
        if section is None:
            continue
        name = section.get("name", _name, "", required=True)
        if name and name in seen:
            top.file.problem(section.line("name"), f"{key}.name", f"another source is also named {name!r}")
        seen.add(name)
        kind = section.get("type", _choice("file", "journald"), "file")
        source = _file_source(section, name, base) if kind == "file" else _journald_source(section, name, base)
        section.done()
        if source is not None:
            sources.append(source)
    if not top.has("sources"):
        top.file.problem(1, "sources", "is required: at least one file or journald source")
    return tuple(sources)


def _file_source(section: _Section, name: str, base: Path) -> FileSourceConfig | None:
    paths = section.get("paths", _str_list, _NONE, required=True)
    exclude = section.get("exclude", _str_list, _NONE)
    start_at = section.get("start_at", _choice("end", "beginning"), "end")
    text_format = section.get("format", _choice("plain", "cri", "json"), "plain")
    message_key = section.get("message_key", _str, "message")
    if section.has("message_key") and text_format != "json":
        section.file.problem(
            section.line("message_key"), section.key("message_key"), "only means something with format: json"
        )
    multiline = _multiline(section.sub("multiline")) if section.has("multiline") else None
    max_line_bytes = section.get("max_line_bytes", parse_size, DEFAULT_MAX_LINE_BYTES)
    rescan = section.get("rescan_interval", _positive_duration, 10.0)
    rotate_wait = section.get("rotate_wait", _positive_duration, 5.0)
    poll = section.get("poll", _bool, False)
    poll_interval = section.get("poll_interval", _positive_duration, 0.25)
    if max_line_bytes < 256:
        section.file.problem(section.line("max_line_bytes"), section.key("max_line_bytes"), "must be at least 256B")
    if not paths:
        return None
    return FileSourceConfig(
        name=name,
        paths=tuple(str(base / p) for p in paths),
        exclude=exclude,
        start_at=cast(Literal["end", "beginning"], start_at),
        max_line_bytes=max_line_bytes,
        rescan_interval=rescan,
        rotate_wait=rotate_wait,
        poll=poll,
        poll_interval=poll_interval,
        format=cast(Literal["plain", "cri", "json"], text_format),
        message_key=message_key,
        multiline=multiline,
    )


def _multiline(section: _Section | None) -> MultilineConfig | None:
    if section is None:
        return None
    start = section.get("start", _regex, None)
    continuation = section.get("continuation", _regex, None)
    if not section.has("start") and not section.has("continuation"):
        section.file.problem(
            section.mapping.line, section.key("start"), "is required (or continuation): a regex of a line's beginning"
        )
    elif section.has("start") and section.has("continuation"):
        section.file.problem(
            section.line("continuation"), section.key("continuation"), "give start or continuation, not both"
        )
    multiline = MultilineConfig(
        start=start,
        continuation=continuation,
        max_lines=section.get("max_lines", _positive_int, 200),
        timeout=section.get("timeout", _positive_duration, 1.0),
    )
    section.done()
    return multiline


JOURNAL_READERS = ("systemd-python", "journalctl")
"""The ways to read the journal, best first: the binding (the ``journald`` extra), or journalctl as a subprocess."""


def journal_reader(wanted: str = "auto") -> str | None:
    """The reader a journald source asking for *wanted* (``auto`` or one of ``JOURNAL_READERS``) gets
    here; ``None`` when it is not there."""
    if wanted in ("auto", "systemd-python"):
        try:
            import systemd.journal  # noqa: F401, PLC0415 - the optional extra
        except ImportError:
            if wanted == "systemd-python":
                return None
        else:
            return "systemd-python"
    return "journalctl" if shutil.which("journalctl") else None


_JOURNAL_FIELD = re.compile(r"[A-Z_][A-Z0-9_]*")


def _journal_field(value: Any) -> str:
    text = _str(value)
    if not _JOURNAL_FIELD.fullmatch(text):
        raise ValueError(f"{text!r} is not a journal field name (capital letters, digits and _, such as _COMM)")
    return text


def _journal_matches(value: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(value, dict):
        raise ValueError(f"must be a mapping of journal fields to a value or a list of values, not {_kind(value)}")
    matches = []
    for field_name, values in value.items():
        listed = _str_list(values if isinstance(values, list) else [values])
        if not listed:
            raise ValueError(f"{field_name}: needs at least one value")
        matches.append((_journal_field(field_name), tuple(listed)))
    return tuple(matches)


def _catchup(value: Any) -> float | None:
    if value in ("off", "none", False):
        return None
    return _positive_duration(value)


def _journald_source(section: _Section, name: str, base: Path) -> JournaldSourceConfig:
    directory = section.get("directory", _str, None)
    reader = section.get("reader", _choice("auto", *JOURNAL_READERS), "auto")
    if journal_reader(reader) is None:
        why = {
            "auto": "neither systemd-python nor journalctl is installed: pip install 'tailhook[journald]' "
            "(it needs libsystemd's headers), or install journalctl (Debian: the systemd package)",
            "systemd-python": "systemd-python is not installed: pip install 'tailhook[journald]', "
            "or reader: auto to use journalctl",
            "journalctl": "journalctl is not installed (Debian: the systemd package)",
        }[reader]
        section.file.problem(section.line("reader") if section.has("reader") else section.mapping.line,
                             section.key("reader"), f"the journal cannot be read: {why}")  # fmt: skip
    max_line_bytes = section.get("max_line_bytes", parse_size, DEFAULT_MAX_LINE_BYTES)
    if max_line_bytes < 256:
        section.file.problem(section.line("max_line_bytes"), section.key("max_line_bytes"), "must be at least 256B")
    return JournaldSourceConfig(
        name=name,
        units=section.get("units", _str_list, _NONE),
        priority=section.get("priority", _journal_priority, 7),
        directory=str(base / directory) if directory else None,
        start_at=section.get("start_at", _choice("end", "beginning"), "end"),
        identifiers=section.get("identifiers", _str_list, _NONE),
        matches=section.get("matches", _journal_matches, ()),
        this_boot=section.get("this_boot", _bool, False),
        namespace=section.get("namespace", _str, None),
        fields=tuple(section.get("fields", lambda v: [_journal_field(f) for f in _str_list(v)], [])),
        max_catchup=section.get("max_catchup", _catchup, cast(float | None, 3600.0)),
        max_line_bytes=max(256, max_line_bytes),
        reader=cast(Literal["auto", "systemd-python", "journalctl"], reader),
    )


def _destinations(top: _Section, base: Path) -> dict[str, DestinationConfig]:
    section = top.sub("destinations")
    if section is None:
        return {}
    destinations: dict[str, DestinationConfig] = {}
    for name in list(section.mapping):
        key = section.key(str(name))
        try:
            _name(name)
        except ValueError as exc:
            section.file.problem(section.line(name), key, str(exc))
            continue
        item = section.sub(name)
        if item is None:
            continue
        urls = _webhook_urls(item, base)
        thread_id = item.get("thread_id", lambda v: _snowflakes(v)[0], None)
        thread_name = item.get("thread_name", _thread_name, None)
        if thread_id is not None and thread_name is not None:
            item.file.problem(
                item.line("thread_name"), item.key("thread_name"), "give thread_id or thread_name, not both"
            )
        destination = DestinationConfig(
            name=name,
            urls=urls,
            username=item.get("username", _username, None),
            avatar_url=item.get("avatar_url", _str, None),
            thread_id=thread_id,
            thread_name=thread_name,
            suppress_notifications=item.get("suppress_notifications", _severities, frozenset()),
            proxy=item.get("proxy", _proxy_url, None),
            storm_updates=item.get("storm_updates", _choice("edit", "post"), "edit"),
            resolved_post=item.get("resolved_post", _bool, False),
            threads=item.get("threads", _choice("per_message", "per_incident"), "per_message"),
            applied_tags=item.get("applied_tags", _applied_tags, {}),
        )
        for key in ("threads", "applied_tags"):
            if key in item.mapping and thread_name is None:
                item.file.problem(item.line(key), item.key(key), "is for a forum channel: needs thread_name")
        item.done()
        if urls:
            destinations[name] = destination
    return destinations


THREAD_NAME_FIELDS = ("title", "rule", "severity", "host", "source")
"""What a forum post's ``thread_name`` template may name."""


def _thread_name(value: Any) -> str:
    text = _str(value)
    unknown = sorted(set(template_fields(text)) - set(THREAD_NAME_FIELDS))
    if unknown:
        raise ValueError(f"names {', '.join(unknown)}; a thread name may use {', '.join(THREAD_NAME_FIELDS)}")
    return text


def _applied_tags(value: Any) -> dict[Severity, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise ValueError(f"must be a mapping of severities to forum tag ids, not {_kind(value)}")
    tags = {}
    for name, ids in value.items():
        listed = _snowflakes(ids)
        if len(listed) > MAX_APPLIED_TAGS:
            raise ValueError(f"{name}: at most {MAX_APPLIED_TAGS} tags (Discord's limit), not {len(listed)}")
        tags[_severity(name)] = listed
    return tags


MAX_APPLIED_TAGS = 5
"""Tags on one forum post, at most (Discord's limit)."""


def _proxy_url(value: Any) -> str:
    text = _str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// proxy URL, such as http://proxy.internal:3128")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise ValueError("has a port that is not a number") from None
    try:  # Proxy-Authorization is Basic, in latin-1
        f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("has a user name or password with characters outside latin-1") from None
    return text


def _username(value: Any) -> str:
    text = _str(value)
    if len(text) > 80:
        raise ValueError("must be at most 80 characters (Discord's limit)")
    if "discord" in text.lower() or text.lower() == "clyde":
        raise ValueError("Discord refuses usernames containing 'discord' or equal to 'clyde'")
    return text


MAX_WEBHOOKS = 15
"""Discord allows at most 15 webhooks per channel."""


_warned: set[Path] = set()
"""Secret files reported as readable by others: once each per process, not at every reload."""


def _secret_file(path: Path, what: str) -> str:
    """The text of a file holding a secret (*what*: ``url_file``), stripped; reported if others may
    read it; ``ValueError`` if it cannot be read."""
    _warn_if_shared(path, what)
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None


def _warn_if_shared(path: Path, what: str) -> None:
    mode = shared_mode(path)
    if mode is not None and path not in _warned:
        _warned.add(path)
        log.warning(
            "%s holds %s and may be read by others (mode %04o): chmod 600 it "
            "(in Kubernetes, give the Secret's volume defaultMode: 0400)", path, what, mode,
        )  # fmt: skip


def _webhook_urls(item: _Section, base: Path) -> tuple[WebhookUrl, ...]:
    """The webhook URLs from ``url`` or ``url_file`` (each one or a list); a problem for each bad one."""
    has_url, has_file = item.has("url"), item.has("url_file")
    if has_url == has_file:
        item.file.problem(item.mapping.line, item.path, "needs exactly one of url or url_file")
        item.raw("url"), item.raw("url_file")
        return ()
    name = "url" if has_url else "url_file"

    def read(value: str) -> WebhookUrl:
        if has_url:
            return WebhookUrl(value)
        path = base / value
        text = _secret_file(path, "a webhook's token")
        try:
            return WebhookUrl(text)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    def convert(value: Any) -> tuple[WebhookUrl, ...]:
        urls = tuple(read(text) for text in _str_list(value))
        for url in urls:
            if url.old_host is not None:
                log.warning("%s: %s is used as %s: discordapp.com has its own, stricter rate limit",
                            item.key(name), url.old_host, url.redacted)  # fmt: skip
        if not urls:
            raise ValueError("must name at least one webhook")
        if len(urls) > MAX_WEBHOOKS:
            raise ValueError(f"names {len(urls)} webhooks; Discord allows at most {MAX_WEBHOOKS} per channel")
        if len(set(urls)) != len(urls):
            raise ValueError("names the same webhook twice")
        return urls

    return item.get(name, convert, ())


def _routes(top: _Section, destinations: Mapping[str, DestinationConfig]) -> tuple[RouteConfig, ...]:
    if not top.has("routes"):
        top.raw("routes")
        return (RouteConfig(to=tuple(destinations)),) if destinations else ()
    routes: list[RouteConfig] = []
    for item, key, line in top.items("routes"):
        section = top.file.section(item, key, line)
        if section is None:
            continue
        to = section.get("to", _str_list, _NONE, required=True)
        for name in to:
            if name not in destinations and top.has("destinations"):
                section.file.problem(section.line("to"), section.key("to"), f"no destination is named {name!r}")
        severities = section.get("severities", _severities, None)
        mentions = _mentions(section.sub("mention"))
        if mentions.everyone and severities != frozenset({Severity.CRITICAL}):
            section.file.problem(
                section.line("mention"),
                section.key("mention.everyone"),
                "only a route for critical alone may ping @everyone",
            )
        routes.append(
            RouteConfig(
                to=to,
                severities=severities,
                rules=section.get("rules", _str_set, None),
                sources=section.get("sources", _str_set, None),
                hosts=section.get("hosts", _str_set, None),
                namespaces=section.get("namespaces", _str_set, None),
                style=Style(section.get("style", _choice("full", "compact"), "full")),
                mentions=mentions,
                continue_=section.get("continue", _bool, False),
                after=section.get("after", _positive_duration, None),
            )
        )
        section.done()
    return tuple(routes)


def _mentions(section: _Section | None) -> Mentions:
    if section is None:
        return Mentions()
    mentions = Mentions(
        roles=section.get("roles", _snowflakes, ()),
        users=section.get("users", _snowflakes, ()),
        everyone=section.get("everyone", _bool, False),
    )
    section.done()
    return mentions


def _storm(section: _Section | None, default: StormConfig, *, main: bool = False) -> StormConfig:
    """A ``storm:`` section: the main file's (*main*), or a rule's."""
    if section is None:
        return default
    window = section.get("window", _positive_duration, default.window)
    max_window = section.get("max_window", _positive_duration, default.max_window)
    if max_window is not None and max_window < window:
        problem = f"must be at least window ({window:g}s)"
        section.file.problem(section.line("max_window"), section.key("max_window"), problem)
        max_window = None
    recovery = section.sub("recovery") if section.has("recovery") else None
    recovery_after = default.recovery_after
    if recovery is not None:
        recovery_after = recovery.get("after", _positive_duration, required=True)
        recovery.done()
    storm = StormConfig(
        window=window,
        max_per_window=section.get("max_per_window", _positive_int, default.max_per_window),
        digest=section.get("digest", _bool, default.digest),
        max_window=max_window,
        min_count=section.get("min_count", _positive_int, default.min_count),
        recovery_after=recovery_after,
        max_keys_per_window=section.get("max_keys_per_window", _positive_int, default.max_keys_per_window),
        attach_held=section.get("attach_held", _whole_number_up_to(MAX_ATTACH_HELD), default.attach_held),
        fleet=section.get("fleet", _bool, default.fleet),
        flood_after=section.get("flood_after", _positive_duration, default.flood_after)
        if main
        else default.flood_after,
        update_every=section.get("update_every", _positive_duration, default.update_every)
        if main
        else default.update_every,
    )
    section.done()
    return storm


def _identity(section: _Section | None) -> Mapping[str, str]:
    """``identity:``, each field not given there from the environment (``tailhook.origin``)."""
    found = from_environment()
    if section is not None:
        for name in ORIGIN_FIELDS:
            value = section.get(name, _str, None)
            if value is not None:
                found[name] = value
        section.done()
    return MappingProxyType({name: found[name] for name in ORIGIN_FIELDS if found.get(name)})


_PING_KEYS = ("fail_url", "every", "stuck_after", "method")
"""``heartbeat:``'s keys that only mean something with a URL to ping."""


def _heartbeat(
    section: _Section | None, base: Path, destinations: Container[str] | None
) -> tuple[HeartbeatConfig | None, ReportConfig | None]:
    """``heartbeat:``: the URL to ping (``url`` or ``url_file``), the daily ``report``, or both.

    *destinations* ``None``: none are configured (everything goes to the console), so any ``to`` goes.
    """
    if section is None:
        return None, None
    report = _report(section.sub("report"), destinations) if section.has("report") else None
    has_url, has_file = section.has("url"), section.has("url_file")
    if has_url != has_file:
        return _ping(section, base), report
    if has_url:
        section.file.problem(section.mapping.line, section.path, "needs exactly one of url or url_file")
    elif not section.has("report"):
        section.file.problem(
            section.mapping.line, section.path, "needs url or url_file (the URL to ping), a report, or both"
        )
    else:  # only a report
        for key in _PING_KEYS:
            if section.has(key):
                section.file.problem(section.line(key), section.key(key), "only means something with url or url_file")
    for key in ("url", "url_file", *_PING_KEYS):
        section.raw(key)
    section.done()
    return None, report


def _ping(section: _Section, base: Path) -> HeartbeatConfig | None:
    """``heartbeat:``'s URL to ping (exactly one of ``url`` and ``url_file`` is given) and how."""

    def secret(value: Any) -> SecretUrl:
        return SecretUrl(_str(value))

    def from_file(value: Any) -> SecretUrl:
        return SecretUrl(_secret_file(base / _str(value), "a heartbeat's URL"))

    url = section.get("url", secret, None) if section.has("url") else section.get("url_file", from_file, None)
    fail_url = section.get("fail_url", secret, None)
    every = section.get("every", _positive_duration, 300.0)
    stuck_after = section.get("stuck_after", _positive_duration, 600.0)
    method = section.get("method", _choice("get", "post"), "post")
    section.done()
    if url is None:
        return None
    if fail_url is None:
        fail_url = SecretUrl(url.reveal().split("?", 1)[0].rstrip("/") + "/fail")
    return HeartbeatConfig(url, fail_url, every, stuck_after, cast(Literal["get", "post"], method))


def _report(section: _Section | None, destinations: Container[str] | None) -> ReportConfig | None:
    """``heartbeat.report:``: ``to`` a configured destination, ``at`` a local time of day."""
    if section is None:
        return None
    to = section.get("to", _str, "", required=True)
    if to and destinations is not None and to not in destinations:
        section.file.problem(section.line("to"), section.key("to"), f"no destination is named {to!r}")
    at = section.get("at", _time_of_day, DEFAULT_REPORT_AT)
    section.done()
    return ReportConfig(to, at) if to else None


def _probe(section: _Section | None) -> ProbeConfig:
    if section is None:
        return ProbeConfig()
    probe = ProbeConfig(
        mode=section.get("mode", _choice("get", "message", "off"), "get"),
        on_failure=section.get("on_failure", _choice("exit", "warn"), "exit"),
    )
    section.done()
    return probe


def _spool(section: _Section | None) -> SpoolConfig:
    if section is None:
        return SpoolConfig()
    spool = SpoolConfig(
        max_bytes=section.get("max_bytes", parse_size, _DEFAULT_SPOOL_BYTES),
        max_age=section.get("max_age", _positive_duration, None),
    )
    section.done()
    return spool


_SilencedRules = list[tuple[int, str, frozenset[str]]]
"""Each silence's ``rules:`` with its line and key, checked once the rule files are read."""


def _silences(top: _Section, sources: Iterable[SourceConfig]) -> tuple[tuple[SilenceConfig, ...], _SilencedRules]:
    silences: list[SilenceConfig] = []
    silenced_rules: _SilencedRules = []
    seen: set[str] = set()
    source_names = {source.name for source in sources}
    for item, index_key, line in top.items("silences"):
        named = isinstance(item, dict) and isinstance(item.get("name"), str)
        section = top.file.section(item, f"{index_key} ({item['name']})" if named else index_key, line)
        if section is None:
            continue
        name = section.get("name", _name, "", required=True)
        if name and name in seen:
            section.file.problem(section.line("name"), section.key("name"), f"another silence is also named {name!r}")
        seen.add(name)
        rules = section.get("rules", _str_set, None)
        if rules:
            silenced_rules.append((section.line("rules"), section.key("rules"), rules))
        silence_sources = section.get("sources", _str_set, None)
        for source in sorted(silence_sources or ()):
            if source not in source_names:
                section.file.problem(section.line("sources"), section.key("sources"), f"no source is named {source!r}")
        silence = SilenceConfig(
            name=name,
            file=section.file.name,
            line=line,
            reason=section.get("reason", _str, ""),
            rules=rules,
            sources=silence_sources,
            hosts=section.get("hosts", _str_set, None),
            severities=section.get("severities", _severities, None),
            **_silence_times(section),
        )
        section.done()
        if name:
            silences.append(silence)
    return tuple(silences), silenced_rules


def _silence_times(section: _Section) -> dict[str, Any]:
    """``starts`` and ``ends`` from ``from``/``until``, or ``schedule``: exactly one of the two ways."""
    fixed = section.has("from") or section.has("until")
    if section.has("schedule"):
        schedule = _schedule(section.sub("schedule"))
        if fixed:
            key = "from" if section.has("from") else "until"
            section.file.problem(section.line(key), section.key(key), "give from/until or schedule, not both")
            section.raw("from"), section.raw("until")
        return {"schedule": schedule}
    if not fixed:
        section.file.problem(
            section.mapping.line, section.path, "needs from and until (date-times), or a weekly schedule"
        )
        return {}
    starts = section.get("from", _moment, None, required=True)
    ends = section.get("until", _moment, None, required=True)
    if starts is not None and ends is not None and ends <= starts:
        section.file.problem(section.line("until"), section.key("until"), "must be later than from")
    return {"starts": starts, "ends": ends}


def _schedule(section: _Section | None) -> ScheduleConfig | None:
    if section is None:
        return None
    schedule = ScheduleConfig(
        days=section.get("days", _weekdays, frozenset(), required=True),
        starts=section.get("from", _time_of_day, 0, required=True),
        ends=section.get("until", _time_of_day, 0, required=True),
        timezone=section.get("timezone", _timezone, None),
    )
    section.done()
    return schedule


def _check_silenced_rules(file: _File, silenced_rules: _SilencedRules, rule_names: Container[str]) -> None:
    for line, key, names in silenced_rules:
        for name in sorted(names):
            if name not in rule_names:
                file.problem(line, key, f"no rule is named {name!r}")


def _moment(value: Any) -> float:
    """Seconds since the epoch of an ISO 8601 date-time; without an offset, in the host's local time."""
    if isinstance(value, datetime):  # YAML reads an unquoted date-time itself
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        text = _str(value).strip()
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is not a date-time; write it as ISO 8601, such as 2025-06-01T22:00:00+02:00 "
                "(without an offset: the host's local time)"
            ) from None
    return moment.timestamp()


_TIME_OF_DAY = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def _time_of_day(value: Any) -> int:
    """Minutes after midnight of ``"HH:MM"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError("must be a time of day in quotes, such as '22:00' (unquoted, YAML reads 22:00 as a number)")
    found = _TIME_OF_DAY.fullmatch(_str(value).strip())
    if found is None:
        raise ValueError(f"{value!r} is not a time of day; write it as 'HH:MM', such as '06:30' or '22:00'")
    return int(found.group(1)) * 60 + int(found.group(2))


_WEEKDAY_NAMES = {name: i for i, name in enumerate(WEEKDAYS)} | {
    name: i for i, name in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
}


def _weekdays(value: Any) -> frozenset[int]:
    names = _str_list(value)
    days = set()
    for name in names:
        day = _WEEKDAY_NAMES.get(name.strip().lower())
        if day is None:
            raise ValueError(f"{name!r} is not a day of the week; use {', '.join(WEEKDAYS)}")
        days.add(day)
    if not days:
        raise ValueError(f"must name at least one day: {', '.join(WEEKDAYS)}")
    return frozenset(days)


def _timezone(value: Any) -> str:
    name = _str(value).strip()
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin or UTC") from None
    return name


def _http(section: _Section | None) -> HttpConfig:
    if section is None:
        return HttpConfig()
    http = HttpConfig(listen=section.get("listen", _listen, None))
    section.done()
    return http


# ── rule files ──────────────────────────────────────────────────────────────

TEMPLATE_FIELDS = frozenset(
    {
        "line",
        "source",
        "path",
        "host",
        "rule",
        "severity",
        "unit",
        "identifier",
        "pid",
        "priority",
        "hostname",
        "stream",
        *ORIGIN_FIELDS,
    }
)
"""Names every template may use besides the rule's named captures."""


def template_fields(template: str) -> list[str]:
    """The field names a ``{name}`` template uses; ``ValueError`` if it is malformed."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"template {template!r} is malformed: {exc}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"template field {{{name}}} is not a name; use {{line}} or a named capture")
        if conversion not in (None, "r", "s", "a") or not _text_spec(spec or ""):
            shown = f"{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
            raise ValueError(f"template field {shown} cannot format text; use {{{name}}}")
        names.append(name)
    return names


def _text_spec(spec: str) -> bool:
    """Whether *spec* formats a string (``>20`` does, ``d`` does not); no nested fields."""
    if "{" in spec:
        return False
    try:
        format("", spec)
    except ValueError:
        return False
    return True


def load_rules(
    paths: Iterable[str], sources: Iterable[SourceConfig] | None, *, destinations: Iterable[str] | None = None
) -> tuple[RuleConfig, ...]:
    """Load every rule file matched by the globs in *paths*; ``ConfigError`` lists all problems.

    *sources* ``None``: the sources are not known (rule files tried alone), so any source name goes;
    likewise any destination name in a rule's ``to:`` with *destinations* ``None``.
    """
    problems: list[Problem] = []
    names = _AnySource() if sources is None else _source_formats(sources)
    known = None if destinations is None else frozenset(destinations)
    rules = _load_rule_files(tuple(paths), names, problems, known)
    if problems:
        raise ConfigError(problems)
    return rules


class _AnySource(dict[str, str]):
    """Every source name is known, as a plain one."""

    def __contains__(self, name: object) -> bool:
        return True

    def __missing__(self, name: str) -> str:
        return "plain"


def _source_formats(sources: Iterable[SourceConfig]) -> dict[str, str]:
    """Each source's name and the format of its lines (what templates may use depends on it); a
    journald source's is ``journald`` and the entry fields it gives templates (``journald:_COMM,…``)."""
    return {s.name: s.format if isinstance(s, FileSourceConfig) else ",".join(("journald", *s.fields)) for s in sources}


def _entry_fields(source_names: Mapping[str, str], sources: Iterable[str] | None) -> set[str]:
    """The journal fields the journald sources among *sources* (``None``: all) give templates."""
    return {
        name
        for source, found in source_names.items()
        if found.startswith("journald") and (sources is None or source in sources)
        for name in found.split(",")[1:]
    }


def _load_rule_files(
    patterns: tuple[str, ...],
    source_names: Mapping[str, str],
    problems: list[Problem],
    destinations: Container[str] | None = None,
) -> tuple[RuleConfig, ...]:
    """*destinations* ``None``: not known, so any name in a rule's ``to:`` goes."""
    rules: list[RuleConfig] = []
    seen: dict[str, str] = {}
    for pattern in patterns:
        matched = sorted(glob.glob(pattern, recursive=True))
        if not matched and not glob.has_magic(pattern):
            problems.append(Problem(pattern, 0, "", "rule file does not exist"))
        for path in matched:
            for rule in _rule_file(path, source_names, problems, destinations):
                if rule.name in seen:
                    problems.append(
                        Problem(path, rule.line, "name", f"rule {rule.name!r} is also defined in {seen[rule.name]}")
                    )
                seen[rule.name] = f"{path}:{rule.line}"
                rules.append(rule)
    return tuple(rules)


def _rule_file(
    path: str, source_names: Mapping[str, str], problems: list[Problem], destinations: Container[str] | None
) -> list[RuleConfig]:
    file = _File(path, problems)
    document = _read_yaml(Path(path), file)
    top = file.section(document, "", 1) if document is not _MISSING else None
    if top is None:
        return []
    rules = []
    for item, index_key, line in top.items("rules"):
        named = isinstance(item, dict) and isinstance(item.get("name"), str)
        section = file.section(item, f"{index_key} ({item['name']})" if named else index_key, line)
        if section is not None:
            rule = _rule(section, path, line, source_names, destinations)
            section.done()
            if rule is not None:
                rules.append(rule)
    top.done()
    return rules


def _rule(
    section: _Section,
    path: str,
    line: int,
    source_names: Mapping[str, str],
    destinations: Container[str] | None,
) -> RuleConfig | None:
    name = section.get("name", _name, "", required=True)
    match = section.get("match", _regex, "", required=True)
    exclude = section.get("exclude", _regex, None)
    from_priority = section.has("severity") and section.raw("severity") == "from_priority"
    if from_priority:
        severity = section.get("severity_floor", _severity, Severity.DEBUG)
    else:
        severity = section.get("severity", _severity, Severity.WARNING)
        if section.has("severity_floor"):
            section.file.problem(section.line("severity_floor"), section.key("severity_floor"),
                                 "only means something with severity: from_priority")  # fmt: skip
            section.raw("severity_floor")
    sources = section.get("sources", _str_list, None)
    for source in sources or ():
        if source not in source_names:
            section.file.problem(section.line("sources"), section.key("sources"), f"no source is named {source!r}")
    captures = set(re.compile(match).groupindex) if match else set()
    captures |= _entry_fields(source_names, sources)
    # A JSON source's keys are fields too, and which keys its lines have is only known as they come.
    json_fields = any(f == "json" for n, f in source_names.items() if sources is None or n in sources)
    templates = {}
    for key in ("key", "title", "description"):
        templates[key] = section.get(key, _str, None)
        _check_template(section, key, templates[key], captures, any_name=json_fields)
    fields = _rule_fields(section, captures, any_name=json_fields)
    storm = _storm(section.sub("storm"), StormConfig()) if section.has("storm") else None
    enabled = section.get("enabled", _bool, True)
    to = _rule_to(section, destinations)
    mentions = _mentions(section.sub("mention")) if section.has("mention") else None
    expect = section.sub("expect") if section.has("expect") else None
    expect_every = None
    if expect is not None:
        expect_every = expect.get("every", _positive_duration, required=True)
        expect.done()
    if mentions is not None and mentions.everyone and severity is not Severity.CRITICAL:
        section.file.problem(
            section.line("mention"),
            section.key("mention.everyone"),
            "only a rule of severity critical may ping @everyone",
        )
    if not name or not match:
        return None
    return RuleConfig(
        name=name,
        file=path,
        line=line,
        match=match,
        severity=severity,
        exclude=exclude,
        key=templates["key"],
        title=templates["title"],
        description=templates["description"] or "",
        sources=sources,
        storm=storm,
        enabled=enabled,
        fields=fields,
        to=to,
        mentions=mentions,
        expect_every=expect_every,
        from_priority=from_priority,
    )


def _rule_fields(section: _Section, captures: set[str], *, any_name: bool) -> tuple[FieldConfig, ...]:
    """A rule's ``fields:``: each a name and a value template, and whether it sits inline."""
    fields = []
    items = section.items("fields")
    for item, key, line in items:
        field_section = section.file.section(item, key, line)
        if field_section is None:
            continue
        templates = {}
        for part in ("name", "value"):
            templates[part] = field_section.get(part, _str, "", required=True)
            _check_template(field_section, part, templates[part] or None, captures, any_name=any_name)
        inline = field_section.get("inline", _bool, False)
        field_section.done()
        if templates["name"] and templates["value"]:
            fields.append(FieldConfig(templates["name"], templates["value"], inline))
    if len(items) > RULE_FIELDS_MAX:
        section.file.problem(
            section.line("fields"),
            section.key("fields"),
            f"has {len(items)} fields; a rule may add at most {RULE_FIELDS_MAX} "
            f"(a Discord embed takes {LIMITS.fields}, and source, host and the captures need the rest)",
        )
    return tuple(fields)


def _rule_to(section: _Section, destinations: Container[str] | None) -> tuple[str, ...] | None:
    to = section.get("to", _str_list, None)
    if to is None:
        return None
    if not to:
        section.file.problem(
            section.line("to"),
            section.key("to"),
            "must name at least one destination (or leave it out: the routes decide)",
        )
        return None
    for name in to:
        if destinations is not None and name not in destinations:
            section.file.problem(section.line("to"), section.key("to"), f"no destination is named {name!r}")
    if len(set(to)) != len(to):
        section.file.problem(section.line("to"), section.key("to"), "names a destination twice")
    return to


def _check_template(
    section: _Section, key: str, template: str | None, captures: set[str], *, any_name: bool = False
) -> None:
    if template is None:
        return
    try:
        names = template_fields(template)
    except ValueError as exc:
        section.file.problem(section.line(key), section.key(key), str(exc))
        return
    if any_name:
        return
    for name in names:
        if name not in captures and name not in TEMPLATE_FIELDS:
            known = ", ".join(sorted(captures | TEMPLATE_FIELDS))
            section.file.problem(
                section.line(key),
                section.key(key),
                f"{{{name}}} is neither a named capture of match nor one of: {known}",
            )

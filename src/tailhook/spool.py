"""The spool: one SQLite database in ``state_dir`` that nothing is lost from.

Invariants
----------
1. A notification is in the spool from the commit that stored it until the
   commit that deleted it after the destination's 2xx, or moved it to the dead
   letters after a final refusal. Delivery is at-least-once: a crash between
   Discord's 2xx and the delete sends it again on the next start.
2. The ingest commit: the notifications a batch of lines produced and the
   source's new checkpoint are written in ONE transaction. A crash before it
   loses nothing (the lines are read again); after it, nothing is read twice.
3. Per destination, notifications are delivered most severe first (critical,
   error, warning, info, debug), oldest first within a severity (by ``id``),
   so a critical alert written behind a flood of warnings goes out next. So
   that nothing waits for ever behind a flood of more severe ones, the oldest
   notification takes the first place of a request once it has waited
   ``OLDEST_FIRST_AFTER_S``.
4. New alerts are refused while less than ``MIN_FREE_BYTES`` is free on the
   disk, keeping room for the deletes that make room (see ``SpoolFull``).
5. The spool's notifications never take more than ``max_bytes``: when a
   commit would pass it, the lowest severities go first, oldest first
   (debug, info, then warning; error and critical only when nothing else is
   left), each drop counted per destination, severity and reason in
   ``drops`` until a delivery to that destination announces them. With
   ``max_age`` set, a notification stored longer ago than that is dropped
   and counted the same way (reason ``expired``) instead of being sent.
6. Storm-control keys changed by a batch are stored in the batch's ingest
   commit (``storm_keys``: a key's open window, its escalation, the storm
   awaiting its recovery note, its events below a threshold), so the
   notifications a key let through and its counts never disagree after a
   crash, and a restart forgets no storm.
7. One worker thread owns the connection; the event loop never waits on the
   disk. Commits that arrive while one is being written are written together
   in the next transaction (group commit).
8. Silences: ``tailhook silence add`` and ``expire`` write ``silences``
   (another process, while the daemon runs; the daemon only reads it, and
   sees a change through ``PRAGMA data_version``). What an occurrence of a
   silence has held is stored in the commit of the notifications of the same
   moment (``silence_held``), and its row is deleted in the commit that
   stores its end-of-silence note: after a crash the count is whole and the
   note is sent once.
9. A flood: when a destination has more alerts waiting than it can take in
   time (``tailhook.flood``), its waiting non-critical alerts are moved, in
   one transaction, to ``summarised`` and one summary per rule takes their
   place (its ``created`` the oldest of theirs). Summed-up alerts are kept
   for ``SUMMARISED_KEEP_S`` to be inspected, never sent.
10. Absence rules: when each last matched and whether it alerted
   (``absences``) is stored in the commit of the notifications of the same
   moment, so a restart neither forgets a deadline nor fires it twice.
11. Storms as one message (``storm_updates: edit``): of a storm key's
   updates (``Kind.UPDATE``) only the newest waits: a commit of a newer one, or
   of the key's digest or resolved note, replaces it. The message a post made (``messages``: its id, webhook, thread and
   the deliveries it shows) and the storm keys whose latest post it is
   (``incidents``) are written in the transaction that deletes what it
   delivered, so a restart edits the same message; an edit rewrites the
   message's deliveries in the transaction that deletes the edit's
   notifications (one edit carries what waits for every key of its message,
   ``edits``; ``next`` holds back the updates of a message changed less than
   ``edit_every`` ago, never a digest or resolved note, which a later post
   of its key must not overtake). A crash between Discord's 2xx and that transaction posts the
   message again (at-least-once), and never edits a message it does not know.
   With ``threads: per_incident``, the thread a key's post went into or
   opened (``threads``) is written in the same transaction, and the key's
   later notifications go into it. An incident or a thread quiet for
   ``INCIDENT_KEPT_S`` is forgotten.

On disk
-------
``state_dir/spool.sqlite3`` (with its ``-wal`` and ``-shm``), WAL mode,
``synchronous=FULL``. ``PRAGMA user_version`` is the schema version, migrated
forward at open. A file that is not a healthy database is moved aside as
``spool.sqlite3.corrupt-<UTC time>`` and a fresh one started.

Schema version 9::

    notifications(id INTEGER PRIMARY KEY AUTOINCREMENT, destination TEXT,
                  severity INTEGER, created REAL, attempts INTEGER,
                  next_attempt REAL, last_error TEXT, size INTEGER, body TEXT,
                  kind, rule, key, time: GENERATED ALWAYS AS (json_extract(body, …)) STORED)
    dead_letters(id INTEGER PRIMARY KEY, destination TEXT, severity INTEGER,
                 created REAL, failed REAL, attempts INTEGER, error TEXT, body TEXT)
    checkpoints(source TEXT, key TEXT, value TEXT, PRIMARY KEY (source, key))
    drops(destination TEXT, severity INTEGER, reason TEXT, count INTEGER,
          PRIMARY KEY (destination, severity, reason))
    storm_keys(rule TEXT, key TEXT, opened REAL, sent INTEGER, held INTEGER,
               last_held TEXT, length REAL, level INTEGER, quiet_from REAL,
               first REAL, last REAL, events INTEGER, stormed INTEGER,
               latest TEXT, pending TEXT, PRIMARY KEY (rule, key)) WITHOUT ROWID
    silences(id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL, reason TEXT,
             rules TEXT, sources TEXT, hosts TEXT, severities TEXT,
             starts REAL, ends REAL, expired REAL)
    silence_held(silence TEXT, starts REAL, reason TEXT, held TEXT,
                 PRIMARY KEY (silence, starts))
    summarised(id INTEGER PRIMARY KEY, destination TEXT, severity INTEGER,
               created REAL, summarised REAL, summary TEXT, body TEXT)
    absences(rule TEXT PRIMARY KEY, last REAL, alerted INTEGER)
    escalations(rule TEXT, key TEXT, first TEXT, since REAL, last REAL, window REAL,
                events INTEGER, pending TEXT, PRIMARY KEY (rule, key)) WITHOUT ROWID
    messages(destination TEXT, id TEXT, webhook TEXT, thread TEXT, body TEXT, updated REAL, files TEXT,
             PRIMARY KEY (destination, id)) WITHOUT ROWID
    incidents(destination TEXT, rule TEXT, key TEXT, message TEXT, slot INTEGER, updated REAL,
              PRIMARY KEY (destination, rule, key)) WITHOUT ROWID
    threads(destination TEXT, rule TEXT, key TEXT, thread TEXT, updated REAL,
            PRIMARY KEY (destination, rule, key)) WITHOUT ROWID

``body`` is the delivery as JSON (``encode_delivery``), ``last_held`` the
notification as JSON (``encode_notification``); times are seconds since the
epoch. Version 1 had no ``storm_windows``, no index on ``created`` and no
``reason`` in ``drops`` (every drop then was for a full spool); version 2 no
index on ``(destination, severity DESC, id)``, the order of delivery;
version 3 no ``silences`` and no ``silence_held``; version 4 no
``summarised`` and no ``absences``; version 5 no ``kind``, ``rule``,
``key`` and ``time`` in ``notifications``: SQLite derives them from the body
as it stores a row (the body stays the one record), for the flood's
summaries; version 6 had ``storm_windows`` (the open windows only) where
``storm_keys`` is, and no ``escalations`` (the clocks of escalation routes:
``first`` the key's first alert as JSON, ``pending`` a JSON list of the
routes, by ``escalation.route_id``, it has yet to escalate to); version 7 no
``messages`` and ``incidents`` (``messages.body`` a JSON list of the message's
deliveries, each as ``encode_delivery`` makes it; ``webhook`` the webhook's id,
never its token; ``incidents.slot`` the key's place in that list); version 8
its index of waiting updates only, where version 9 indexes every waiting notification by its key,
no ``threads`` (the thread each storm key's notifications go into) and no
``messages.files`` (a JSON list of the ids of a message's files, ``NULL``:
not known). A message's stored deliveries keep at most ``SHOWN_CHARS`` of
their line and excerpt: an embed shows less, and the whole went as a file.
``summarised.summary`` is the title of the summary that stands for the row.
In ``storm_keys``, ``opened`` is ``NULL`` for a key with no window open,
``length`` ``NULL`` for a window as long as its settings say (not escalated),
``last_held`` and ``latest`` notifications as JSON, ``pending`` a JSON list of times.

A stored silence's id is ``cli:<id>``; ``rules``, ``sources``, ``hosts`` and
``severities`` are JSON lists (``NULL``: any), severities by name; ``ends``
``NULL`` is until expired. ``silence_held.silence`` is a silence's id
(``cli:<n>`` or ``config:<name>``), ``starts`` when that occurrence began,
``reason`` what its note calls it, ``held`` a JSON object of counts per rule.

The JSON of a notification may gain keys without a new schema version, as
long as a body without the key still reads as it meant when it was written:
the decoder gives the key's default, and an older tailhook ignores the key.
So far: ``fields`` (a rule's ``fields:``, a list of ``{name, value, inline}``,
written only when there are some; absent: none), ``origin`` (an object of
cluster, node, namespace, pod and container, those known; absent: none) and
``excerpt`` (a digest's lines held back, sent as a file; absent: none).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from tailhook._files import private_file, private_folder, shared_mode
from tailhook.absence import AbsenceChange, AbsenceState
from tailhook.escalation import EscalationChange, FiringState
from tailhook.events import STORM_EDITS, AlertField, Delivery, Kind, Mentions, Notification, Severity, Style
from tailhook.fleet_storm import ShareChange, ShareState
from tailhook.flood import TOP_KEYS, RuleFlood, summary
from tailhook.metrics import Metric, counter, gauge
from tailhook.silences import HeldState, Silence, SilenceChange
from tailhook.storm import KeyChange, KeyState

__all__ = [
    "INCIDENT_KEPT_S",
    "SCHEMA_VERSION",
    "SHOWN_CHARS",
    "Checkpoint",
    "DeadLetter",
    "DropReason",
    "Drops",
    "Incident",
    "Spool",
    "SpoolStatus",
    "Spooled",
    "decode_delivery",
    "decode_notification",
    "encode_delivery",
    "encode_notification",
    "read_held",
    "read_silences",
    "read_status",
    "silence_columns",
    "silence_from_row",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 10
FILE_NAME = "spool.sqlite3"
_EDITS = f"kind IN ({', '.join(sorted(repr(str(kind)) for kind in STORM_EDITS))})"
"""``STORM_EDITS`` in SQL."""
_DUE = (
    "NOT (kind = 'update' AND EXISTS (SELECT 1 FROM incidents i JOIN messages m ON m.destination = i.destination "
    "AND m.id = i.message WHERE i.destination = notifications.destination AND i.rule = notifications.rule "
    "AND i.key = notifications.key AND m.updated > ?))"
)
"""A notification that is not an update of a message changed after the cutoff (the ``?``). Only
updates wait their turn: a digest or resolved note goes at once (and carries what waits for its
message), so a later post of its key never overtakes it and takes its edit."""
SHOWN_CHARS = 16 * 1024
"""What a message's stored deliveries keep of their line and excerpt: an embed shows at most 4,096."""
INCIDENT_KEPT_S = 86400.0
"""An incident (the message a storm key's alerts are edited into) quiet this long is forgotten."""
MIN_FREE_BYTES = 1 << 20
"""New alerts are refused (``SpoolFull``) while less than this is free on the spool's disk,
so that deleting delivered ones, which needs room in the WAL too, can always go on."""
OLDEST_FIRST_AFTER_S = 60.0
"""A notification that has waited this long goes first in its destination's next request, whatever
its severity: more severe ones go first otherwise, and a flood of them must not hold it back for ever."""
_FLOOD_ALERTS = (
    "SELECT id, rule, key, time, severity, created FROM notifications "
    "WHERE destination = ? AND severity < ? AND kind = 'alert' ORDER BY id"
)
"""What a flood of one destination sums up (parameters: destination, critical), as its summaries need it."""
T = TypeVar("T")
SUMMARISED_KEEP_S = 86_400.0
"""How long alerts summed up in a flood are kept to be inspected (``tailhook spool list --summarised``)."""

_SCHEMA_V1 = """
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    severity INTEGER NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX notifications_by_destination ON notifications (destination, id);
CREATE INDEX notifications_by_severity ON notifications (severity, id);
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY,
    destination TEXT NOT NULL,
    severity INTEGER NOT NULL,
    created REAL NOT NULL,
    failed REAL NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE checkpoints (
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (source, key)
);
CREATE TABLE drops (
    destination TEXT NOT NULL,
    severity INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (destination, severity)
);
"""
_SCHEMA_V2 = """
CREATE INDEX notifications_by_created ON notifications (created);
CREATE TABLE drops_v2 (
    destination TEXT NOT NULL,
    severity INTEGER NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (destination, severity, reason)
);
INSERT INTO drops_v2 (destination, severity, reason, count) SELECT destination, severity, 'full', count FROM drops;
DROP TABLE drops;
ALTER TABLE drops_v2 RENAME TO drops;
CREATE TABLE storm_windows (
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    opened REAL NOT NULL,
    sent INTEGER NOT NULL,
    held INTEGER NOT NULL,
    last_held TEXT,
    PRIMARY KEY (rule, key)
);
"""
_SCHEMA_V3 = """
CREATE INDEX notifications_by_priority ON notifications (destination, severity DESC, id);
"""
_SCHEMA_V4 = """
CREATE TABLE silences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    reason TEXT NOT NULL,
    rules TEXT,
    sources TEXT,
    hosts TEXT,
    severities TEXT,
    starts REAL NOT NULL,
    ends REAL,
    expired REAL
);
CREATE TABLE silence_held (
    silence TEXT NOT NULL,
    starts REAL NOT NULL,
    reason TEXT NOT NULL,
    held TEXT NOT NULL,
    PRIMARY KEY (silence, starts)
);
"""
_SCHEMA_V5 = """
CREATE TABLE summarised (
    id INTEGER PRIMARY KEY,
    destination TEXT NOT NULL,
    severity INTEGER NOT NULL,
    created REAL NOT NULL,
    summarised REAL NOT NULL,
    summary TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX summarised_by_time ON summarised (summarised);
CREATE TABLE absences (
    rule TEXT PRIMARY KEY,
    last REAL NOT NULL,
    alerted INTEGER NOT NULL
);
"""
_SCHEMA_V6 = """
CREATE TABLE notifications_v6 (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    severity INTEGER NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL,
    body TEXT NOT NULL,
    kind TEXT GENERATED ALWAYS AS (json_extract(body, '$.kind')) STORED,
    rule TEXT GENERATED ALWAYS AS (json_extract(body, '$.rule')) STORED,
    key TEXT GENERATED ALWAYS AS (json_extract(body, '$.key')) STORED,
    time REAL GENERATED ALWAYS AS (json_extract(body, '$.time')) STORED
);
INSERT INTO notifications_v6 (id, destination, severity, created, attempts, next_attempt, last_error, size, body)
    SELECT id, destination, severity, created, attempts, next_attempt, last_error, size, body FROM notifications;
DELETE FROM sqlite_sequence WHERE name = 'notifications_v6';
UPDATE sqlite_sequence SET name = 'notifications_v6' WHERE name = 'notifications';
DROP TABLE notifications;
ALTER TABLE notifications_v6 RENAME TO notifications;
CREATE INDEX notifications_by_destination ON notifications (destination, id);
CREATE INDEX notifications_by_severity ON notifications (severity, id);
CREATE INDEX notifications_by_created ON notifications (created);
CREATE INDEX notifications_by_priority ON notifications (destination, severity DESC, id);
"""
"""Version 6: what a flood's summaries need of an alert (its kind, rule, key and time) in columns that
SQLite derives from the body as it stores it, so that summing 60,000 alerts up parses no JSON. The body
stays the one record of a notification; the numbering of notifications goes on where it was (no id is
used twice: dead letters and summed-up alerts keep theirs)."""
_SCHEMA_V7 = """
CREATE TABLE storm_keys (
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    opened REAL,
    sent INTEGER NOT NULL DEFAULT 0,
    held INTEGER NOT NULL DEFAULT 0,
    last_held TEXT,
    length REAL,
    level INTEGER NOT NULL DEFAULT 0,
    quiet_from REAL NOT NULL DEFAULT 0,
    first REAL,
    last REAL,
    events INTEGER NOT NULL DEFAULT 0,
    stormed INTEGER NOT NULL DEFAULT 0,
    latest TEXT,
    pending TEXT,
    PRIMARY KEY (rule, key)
) WITHOUT ROWID;
INSERT INTO storm_keys (rule, key, opened, sent, held, last_held, first, last, events, latest)
    SELECT rule, key, opened, sent, held, last_held, CASE WHEN held > 0 THEN opened END, opened,
           CASE WHEN held > 0 THEN sent + held ELSE 0 END, last_held
    FROM storm_windows;
DROP TABLE storm_windows;
CREATE TABLE escalations (
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    first TEXT NOT NULL,
    since REAL NOT NULL,
    last REAL NOT NULL,
    window REAL NOT NULL,
    events INTEGER NOT NULL,
    pending TEXT NOT NULL,
    PRIMARY KEY (rule, key)
) WITHOUT ROWID;
"""
"""Version 7: storm control's keys, not only their open windows (a restart keeps escalation levels,
storms awaiting their recovery note and counts below a threshold), and the clocks of escalation
routes. A window a version 6 stored comes back as it did (a storm counted from its opening if it held
events back)."""
_SCHEMA_V8 = """
CREATE TABLE messages (
    destination TEXT NOT NULL,
    id TEXT NOT NULL,
    webhook TEXT NOT NULL,
    thread TEXT,
    body TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (destination, id)
) WITHOUT ROWID;
CREATE TABLE incidents (
    destination TEXT NOT NULL,
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    message TEXT NOT NULL,
    slot INTEGER NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (destination, rule, key)
) WITHOUT ROWID;
CREATE INDEX incidents_by_message ON incidents (destination, message);
CREATE INDEX incidents_by_update ON incidents (updated);
CREATE INDEX notifications_updates ON notifications (destination, rule, key) WHERE kind = 'update';
"""
"""Version 8: the messages that storms edit (``storm_updates: edit``): each message posted with the
deliveries it showed, and per destination and storm key the message and embed that are its."""
_SCHEMA_V9 = """
DROP INDEX notifications_updates;
CREATE INDEX notifications_by_key ON notifications (destination, rule, key);
CREATE INDEX messages_by_thread ON messages (destination, thread);
CREATE TABLE threads (
    destination TEXT NOT NULL,
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    thread TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (destination, rule, key)
) WITHOUT ROWID;
CREATE INDEX threads_by_thread ON threads (destination, thread);
CREATE INDEX threads_by_update ON threads (updated);
ALTER TABLE messages ADD COLUMN files TEXT;
"""
"""Version 9: a key's waiting notifications are found by their key, whatever their kind (one edit carries
what waits for every key of its message, and a post never overtakes an older edit of its key);
per destination and storm key, the forum post (thread) its notifications go into (``threads: per_incident``);
the ids of each message's files (an edit that adds one must list those it keeps)."""
_SCHEMA_V10 = """
CREATE TABLE fleet_shares (
    rule TEXT NOT NULL,
    key TEXT NOT NULL,
    opened INTEGER NOT NULL,
    closes INTEGER NOT NULL,
    title TEXT NOT NULL,
    base TEXT NOT NULL,
    counted INTEGER NOT NULL,
    uncounted INTEGER NOT NULL,
    refused INTEGER NOT NULL,
    sent INTEGER NOT NULL,
    took_part INTEGER NOT NULL,
    claim_at REAL,
    PRIMARY KEY (rule, key, opened)
) WITHOUT ROWID;
"""
"""Version 10: fleet mode's shares: this host's part in each fleet window of a storm key (its counts, the
line its digest would show, when to claim the digest), so that a restart neither loses nor repeats it."""
_MIGRATIONS: dict[int, str] = {
    1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3, 4: _SCHEMA_V4, 5: _SCHEMA_V5, 6: _SCHEMA_V6, 7: _SCHEMA_V7,
    8: _SCHEMA_V8, 9: _SCHEMA_V9, 10: _SCHEMA_V10,
}  # fmt: skip
"""``version → SQL`` that takes a database from ``version - 1`` to ``version``."""


# ── the delivery codec ─────────────────────────────────────────────────────


def _notification_fields(n: Notification) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": n.kind.value,
        "rule": n.rule,
        "severity": n.severity.label,
        "key": n.key,
        "title": n.title,
        "description": n.description,
        "line": n.line,
        "source": n.source,
        "host": n.host,
        "time": n.time,
        "path": n.path,
        "captures": dict(n.captures),
        "count": n.count,
    }
    if n.fields:  # left out when there are none: such a body reads the same in any version
        data["fields"] = [{"name": f.name, "value": f.value, "inline": f.inline} for f in n.fields]
    if n.origin:  # the same
        data["origin"] = dict(n.origin)
    if n.excerpt:  # the same
        data["excerpt"] = n.excerpt
    return data


def _notification_from(data: Mapping[str, Any]) -> Notification:
    return Notification(
        kind=Kind(data["kind"]),
        rule=data["rule"],
        severity=Severity.parse(data["severity"]),
        key=data["key"],
        title=data["title"],
        description=data["description"],
        line=data["line"],
        source=data["source"],
        host=data["host"],
        time=data["time"],
        path=data["path"],
        captures=data["captures"],
        count=data["count"],
        fields=tuple(AlertField(f["name"], f["value"], f["inline"]) for f in data.get("fields", ())),
        origin=data.get("origin", _NO_ORIGIN),
        excerpt=data.get("excerpt", ""),
    )


_dumps: Callable[[Any], str] = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
"""``json.dumps(data, ensure_ascii=False, separators=(",", ":"))``, without making an encoder per call."""
_string: Callable[[str], str] = json.encoder.encode_basestring
"""A str as ``_dumps`` writes it (``TypeError`` for anything else)."""
_LABELS = {severity: severity.label for severity in Severity}
_NO_ORIGIN: Mapping[str, str] = MappingProxyType({})


def _number(value: float) -> str:
    """A float or int as ``_dumps`` writes it."""
    if type(value) is float and value - value == 0:  # finite
        return float.__repr__(value)
    if type(value) is int:
        return int.__repr__(value)
    return _dumps(value)


def _strings(mapping: Mapping[str, str]) -> str:
    """A mapping of str to str as ``_dumps`` writes it (``TypeError`` for other keys or values)."""
    return "{" + ",".join([f"{_string(key)}:{_string(value)}" for key, value in mapping.items()]) + "}"


def _notification_members(n: Notification) -> str:
    """``_dumps(_notification_fields(n))`` without its braces: the same text, written out here
    because the spool encodes one per alert, and a dict per alert costs most of that."""
    try:
        text = (
            f'"kind":{_string(n.kind.value)},"rule":{_string(n.rule)},"severity":"{_LABELS[n.severity]}",'
            f'"key":{_string(n.key)},"title":{_string(n.title)},"description":{_string(n.description)},'
            f'"line":{_string(n.line)},"source":{_string(n.source)},"host":{_string(n.host)},'
            f'"time":{_number(n.time)},"path":{_string(n.path)},"captures":{_strings(n.captures)},'
            f'"count":{_number(n.count)}'
        )
    except (TypeError, KeyError):  # a value of another type than declared: the general encoder decides
        return _dumps(_notification_fields(n))[1:-1]
    if n.fields:
        text += ',"fields":' + _dumps([{"name": f.name, "value": f.value, "inline": f.inline} for f in n.fields])
    if n.origin:
        text += ',"origin":' + _strings(n.origin)
    if n.excerpt:
        text += ',"excerpt":' + _string(n.excerpt)
    return text


def encode_notification(notification: Notification) -> str:
    return "{" + _notification_members(notification) + "}"


def decode_notification(body: str) -> Notification:
    return _notification_from(json.loads(body))


@functools.lru_cache(maxsize=256)
def _delivery_head(destination: str, style: Style, mentions: Mentions) -> str:
    """The JSON of a delivery up to its notification's members: the same for all of a route's deliveries."""
    mentioned = {"roles": list(mentions.roles), "users": list(mentions.users), "everyone": mentions.everyone}
    return _dumps({"destination": destination, "style": style.value, "mentions": mentioned})[:-1] + ","


def encode_delivery(delivery: Delivery) -> str:
    head = _delivery_head(delivery.destination, delivery.style, delivery.mentions)
    return head + _notification_members(delivery.notification) + "}"


def decode_delivery(body: str) -> Delivery:
    data = json.loads(body)
    mentions = data["mentions"]
    return Delivery(
        destination=data["destination"],
        notification=_notification_from(data),
        style=Style(data["style"]),
        mentions=Mentions(tuple(mentions["roles"]), tuple(mentions["users"]), mentions["everyone"]),
    )


# ── what the spool hands out ───────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a source is, as the source understands it: a key (a file path) and a JSON-able value."""

    source: str
    key: str
    value: Mapping[str, Any] | None
    """``None`` forgets the key."""


DropReason = str
"""Why notifications were dropped: ``"full"`` (``max_bytes``) or ``"expired"`` (``max_age``)."""
Drops = Mapping[tuple[DropReason, Severity], int]
"""How many notifications were dropped, per reason and severity."""


@dataclass(frozen=True, slots=True)
class Spooled:
    id: int
    delivery: Delivery
    attempts: int
    created: float


@dataclass(frozen=True, slots=True)
class Incident:
    """The message a storm key's alerts are edited into (``storm_updates: edit``)."""

    message_id: str
    webhook: str
    thread_id: str | None
    slot: int
    """Which of the message's deliveries (embeds) is the key's."""
    deliveries: tuple[Delivery, ...]
    """What the message shows now, in order (lines and excerpts cut at ``SHOWN_CHARS``)."""
    files: tuple[str, ...] | None = None
    """The ids of the message's files (``None``: not known, so an edit cannot keep them)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    destination: str
    severity: Severity
    created: float
    failed: float
    attempts: int
    error: str
    delivery: Delivery


@dataclass(frozen=True, slots=True)
class SpoolStatus:
    pending: Mapping[tuple[str, Severity], int]
    """Notifications waiting, per destination and severity."""
    bytes: int
    oldest: Mapping[str, float]
    """Per destination, when its oldest waiting notification was stored."""
    dead_letters: Mapping[str, int]
    drops: Mapping[tuple[str, Severity], int]
    """Notifications dropped while the spool was full, not yet announced."""
    file_bytes: int


@dataclass(slots=True)
class _Commit:
    deliveries: Sequence[Delivery]
    checkpoints: Sequence[Checkpoint]
    storm: Sequence[KeyChange]
    room: int
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop
    silences: Sequence[SilenceChange] = ()
    absences: Sequence[AbsenceChange] = ()
    escalations: Sequence[EscalationChange] = ()
    fleet: Sequence[ShareChange] = ()


@dataclass(slots=True)
class _GroupCommit:
    lock: threading.Lock = field(default_factory=threading.Lock)
    waiting: list[_Commit] = field(default_factory=list)
    scheduled: bool = False


class SpoolFull(Exception):
    """The disk is full: nothing was written; try again when space returns."""


# ── the spool ──────────────────────────────────────────────────────────────


class Spool:
    """The SQLite store. Create with ``await Spool.open(state_dir)``; all methods are coroutines."""

    def __init__(self, path: Path, *, max_bytes: int, max_age: float | None, clock: Callable[[], float]) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool")
        self._db: sqlite3.Connection | None = None
        self._bytes = 0
        self._group = _GroupCommit()
        self._listeners: list[Callable[[set[str]], None]] = []
        self._data_version = 0
        self._silences_version: int | None = None
        self._silences_seen: list[Silence] | None = None
        self._dropped_for: set[str] = set()
        """Destinations with drops not yet announced: read without a query after every delivery."""
        self.dropped: Counter[tuple[str, str, str]] = Counter()
        """Notifications dropped since the start, per destination, severity and reason (committed drops only)."""
        self._dropping: Counter[tuple[str, str, str]] = Counter()
        """Drops of the transaction being written, counted in ``dropped`` once it commits."""
        self._last_status: SpoolStatus | None = None
        """The last ``refresh``'s, for ``collect``."""
        self._destinations: set[str] = set()
        """Every destination anything was stored or waited for since the start: reported at 0 when
        nothing waits."""

    @classmethod
    async def open(
        cls,
        state_dir: Path,
        *,
        max_bytes: int = 256 << 20,
        max_age: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> Spool:
        spool = cls(Path(state_dir) / FILE_NAME, max_bytes=max_bytes, max_age=max_age, clock=clock)
        await spool._run(spool._open)
        return spool

    async def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            await self._run(self._close)
        self._executor.shutdown(wait=True)

    def on_commit(self, listener: Callable[[set[str]], None]) -> None:
        """Call *listener* in the event loop with the destinations each commit added to."""
        self._listeners.append(listener)

    # ── writing ─────────────────────────────────────────────────────────────

    async def commit(
        self,
        deliveries: Sequence[Delivery],
        checkpoints: Sequence[Checkpoint] = (),
        storm: Sequence[KeyChange] = (),
        *,
        room: int = 0,
        silences: Sequence[SilenceChange] = (),
        absences: Sequence[AbsenceChange] = (),
        escalations: Sequence[EscalationChange] = (),
        fleet: Sequence[ShareChange] = (),
    ) -> None:
        """Store *deliveries*, *checkpoints* and *storm* windows in one transaction (shared with concurrent commits).

        *room*: bytes this commit may go beyond ``max_bytes`` without dropping anything, for the
        announcement of drops, which would otherwise make room for itself by dropping more.
        *silences*: what occurrences of silences held (``Silences.changes()``), and *absences*, the
        state of absence rules (``Absences.changes()``) and the clocks of escalation routes
        (``Escalations.changes()``), and fleet mode's shares (``FleetStorm.changes()``), stored in the
        same transaction.
        Raises ``SpoolFull`` when the disk is full; nothing of it was stored.
        """
        loop = asyncio.get_running_loop()
        request = _Commit(
            deliveries, checkpoints, storm, room, loop.create_future(), loop, silences, absences, escalations, fleet
        )
        with self._group.lock:
            self._group.waiting.append(request)
            schedule = not self._group.scheduled
            self._group.scheduled = True
        if schedule:
            self._executor.submit(self._write_group)
        await request.future
        destinations = {d.destination for d in deliveries}
        if destinations:
            self._destinations |= destinations
            for listener in self._listeners:
                listener(destinations)

    async def delivered(self, ids: Iterable[int]) -> None:
        await self._run(self._delete, list(ids))

    async def failed(self, ids: Iterable[int], error: str, next_attempt: float) -> None:
        await self._run(self._record_failure, list(ids), error, next_attempt)

    async def posted(
        self,
        ids: Iterable[int],
        deliveries: Sequence[Delivery],
        *,
        message: tuple[str, str, str | None],
        files: tuple[str, ...] | None = None,
        incidents: bool = True,
        threads: bool = False,
        replaces: str | None = None,
    ) -> None:
        """Delivered: *ids*, as one message (``(id, webhook, thread)``, with the ids of its *files*)
        showing *deliveries*. *incidents*: its alerts and updates become the incidents of their storm
        keys (``storm_updates: edit``); *threads*: its thread becomes the thread of their keys
        (``threads: per_incident``); *replaces*: a message gone in Discord that this one was posted
        in place of, forgotten in the same transaction."""
        posted = functools.partial(self._posted, files=files, incidents=incidents, threads=threads, replaces=replaces)
        await self._run(posted, list(ids), list(deliveries), message)

    async def thread(self, destination: str, rule: str, key: str) -> str | None:
        """The thread a storm key's notifications go into (``threads: per_incident``), if it has one."""
        return await self._run(self._thread, destination, rule, key)

    async def forget_thread(self, destination: str, thread: str) -> None:
        """The thread is gone (deleted in Discord): its keys open new ones, their messages in it are gone."""
        await self._run(self._forget_thread, destination, thread)

    async def incident(self, destination: str, rule: str, key: str) -> Incident | None:
        return await self._run(self._incident, destination, rule, key)

    async def edits(self, destination: str, message_id: str) -> list[tuple[Spooled, int]]:
        """What waits to be edited into the message *message_id*: the update, digest or resolved note
        of each storm key it shows, oldest first, with the key's slot (its embed)."""
        return await self._run(self._edits, destination, message_id)

    async def older_edit(self, destination: str, posts: Sequence[Spooled]) -> tuple[int, Spooled] | None:
        """The first of *posts* whose storm key has an update, digest or resolved note waiting from
        before it, with the oldest such: that edit goes first (a post of a key must not overtake an
        older edit of it, or the edit would change the new post); ``None``: none has."""
        keys = [(s.delivery.notification.rule, s.delivery.notification.key, s.id) for s in posts]
        return await self._run(self._older_edit, destination, keys)

    async def next_of_key(self, destination: str, rule: str, key: str) -> Spooled | None:
        """The oldest notification waiting for *destination* under a storm key."""
        return await self._run(self._next_of_key, destination, rule, key)

    async def edits_due(self, destination: str, edit_every: float) -> float | None:
        """When the earliest update that ``next`` holds back (its message changed less than
        *edit_every* ago) is due; ``None``: none is held back."""
        return await self._run(self._edits_due, destination, edit_every)

    async def edited(self, ids: Iterable[int], destination: str, incident: Incident) -> None:
        """Delivered: *ids*, as one edit that made *incident*'s message show its ``deliveries``. The
        keys resolved by it (a recovery among *ids*) have no incident any more."""
        await self._run(self._edited, list(ids), destination, incident)

    async def reject(self, ids: Iterable[int], error: str) -> None:
        """Move to the dead letters: the destination refused them for good."""
        await self._run(self._to_dead_letters, list(ids), error)

    def has_drops(self, destination: str) -> bool:
        """Whether notifications for *destination* were dropped and not yet announced."""
        return destination in self._dropped_for

    async def take_drops(self, destination: str) -> dict[tuple[DropReason, Severity], int]:
        """The drops not yet announced for *destination*; they count as announced from now on."""
        return await self._run(self._take_drops, destination)

    # ── reading ─────────────────────────────────────────────────────────────

    async def next(self, destination: str, limit: int = 1, *, edit_every: float = 0.0) -> list[Spooled]:
        """The oldest *limit* notifications waiting for *destination*, but for the updates of a message
        that changed less than *edit_every* ago (``edits_due`` says when they are due)."""
        return await self._run(self._next, destination, limit, edit_every)

    async def pending(self, destination: str | None = None) -> int:
        return await self._run(self._pending, destination)

    async def checkpoints(self, source: str) -> dict[str, Any]:
        return await self._run(self._checkpoints, source)

    async def silences(self) -> list[Silence]:
        """The stored silences (``tailhook silence add``) the daemon needs: all but those long over."""
        return await self._run(read_silences, self.db, self.clock())

    async def silences_changed(self) -> list[Silence] | None:
        """``silences()`` if another process changed the spool since the last call and they differ; else ``None``.

        Cheap while nothing changed (one pragma), so a daemon may ask every second. The first call answers.
        """
        return await self._run(self._silences_changed)

    async def silence_held(self) -> list[HeldState]:
        """What occurrences of silences had held when the daemon last stopped, notes not yet sent."""
        return await self._run(read_held, self.db)

    async def storm_keys(self) -> list[KeyState]:
        """The storm-control windows open when the daemon last stopped."""
        return await self._run(self._storm_keys)

    async def escalations(self) -> list[FiringState]:
        """The clocks of escalation routes, as last stored."""
        return await self._run(self._escalations)

    async def fleet_shares(self) -> list[ShareState]:
        """Fleet mode's shares (this host's part in fleet windows), as last stored."""
        return await self._run(self._shares)

    async def absences(self) -> list[AbsenceState]:
        """When each absence rule last matched, and whether it alerted, as last stored."""
        return await self._run(self._absences)

    async def flood_waiting(self, destination: str, more_than: float) -> bool:
        """Whether more than *more_than* non-critical alerts wait for *destination* (what a flood
        sums up). Cheap while fewer notifications of any kind wait than that (an index count)."""
        return await self._run(self._flood_waiting, destination, more_than)

    async def summarise(self, destination: str, *, host: str, flood_after_s: float) -> list[Notification]:
        """Sum the non-critical alerts waiting for *destination* up, one summary per rule (invariant 9);
        the summaries."""
        return await self._run(self._summarise, destination, host, flood_after_s)

    async def status(self) -> SpoolStatus:
        return await self._run(self._status)

    # ── the worker thread ───────────────────────────────────────────────────

    async def refresh(self) -> None:
        """Read what ``collect`` reports (``tailhook.metrics``)."""
        self._last_status = status = await self.status()
        self._destinations.update(destination for destination, _ in status.pending)

    def collect(self) -> Iterable[Metric]:
        """What the spool held at the last ``refresh``; the drops since the start."""
        status = self._last_status
        if status is None:
            return
        pending: Counter[str] = Counter(dict.fromkeys(self._destinations, 0))
        for (destination, _), count in status.pending.items():
            pending[destination] += count
        now = self.clock()
        waited = {name: max(0.0, now - status.oldest[name]) if name in status.oldest else 0.0 for name in pending}
        yield gauge("tailhook_spool_pending", "Notifications waiting in the spool.", pending, "destination")
        yield gauge("tailhook_spool_oldest_waiting_seconds", "How long the oldest notification waiting for the "
                    "destination has waited (0 when none waits).", waited, "destination")  # fmt: skip
        yield gauge("tailhook_spool_dead_letters", "Dead letters kept in the spool.", status.dead_letters,
                    "destination")  # fmt: skip
        yield gauge("tailhook_spool_bytes", "Bytes of the spool's files on disk.", status.file_bytes)
        yield counter("tailhook_spool_dropped_total", "Notifications dropped (reason full: spool.max_bytes was "
                      "reached; expired: waited longer than spool.max_age).", dict(self.dropped),
                      "destination", "severity", "reason")  # fmt: skip

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "the spool is not open"
        return self._db

    def _open(self) -> None:
        private_folder(self.path.parent)
        private_file(self.path)
        for path in (self.path.parent, *(Path(f"{self.path}{suffix}") for suffix in ("", "-wal", "-shm"))):
            mode = shared_mode(path)
            if mode is not None:
                log.warning(
                    "%s may be read by others (mode %04o), and it holds copies of log lines: "
                    "tailhook makes its state 0700 and its files 0600 (chmod %s %s)",
                    path, mode, "700" if path.is_dir() else "600", path,
                )  # fmt: skip
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as exc:
            self._move_aside(exc)
            self._db = self._connect()
        self._bytes = self.db.execute("SELECT coalesce(sum(size), 0) FROM notifications").fetchone()[0]
        self._dropped_for = {row[0] for row in self.db.execute("SELECT DISTINCT destination FROM drops")}
        self._expire()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL").fetchone()
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=5000")  # `tailhook spool` may write while the daemon runs
            # Keep the WAL small (checkpoint at 1 MiB, truncate back to 1 MiB): on a nearly full
            # disk a WAL grown to SQLite's default 4 MiB is what fills it.
            db.execute("PRAGMA wal_autocheckpoint=256")
            db.execute("PRAGMA journal_size_limit=1048576")
            db.execute("PRAGMA foreign_keys=ON")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
            self._migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} has schema version {version}, newer than this tailhook knows ({SCHEMA_VERSION})"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            try:
                db.executescript(f"BEGIN IMMEDIATE;\n{_MIGRATIONS[target]}\nPRAGMA user_version = {target};\nCOMMIT;")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            if version:
                log.info("spool %s: schema migrated from version %d to %d", self.path, target - 1, target)

    def _move_aside(self, exc: BaseException) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
        log.error(
            "spool %s is damaged (%s); moved aside to %s and started afresh. "
            "Alerts that were waiting in it are not sent; inspect the old file with sqlite3.",
            self.path,
            exc,
            aside,
        )

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _write_group(self) -> None:
        with self._group.lock:
            group, self._group.waiting = self._group.waiting, []
            self._group.scheduled = False
        try:
            try:
                self._write(group)
            except sqlite3.OperationalError as exc:
                if not _is_full(exc):
                    raise
                self._reclaim()  # a WAL checkpoint may free enough room for one more try
                self._write(group)
        except Exception as exc:  # any error: each commit raises it, rather than waiting for ever
            error: BaseException = (
                SpoolFull(str(exc)) if isinstance(exc, sqlite3.OperationalError) and _is_full(exc) else exc
            )
            for request in group:
                request.loop.call_soon_threadsafe(_settle, request.future, error)
            return
        for request in group:
            request.loop.call_soon_threadsafe(_settle, request.future, None)

    def _refresh(self) -> None:
        """Recount what the spool holds if another connection (``tailhook spool``) changed it."""
        version = self.db.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._data_version = version
            self._bytes = self.db.execute("SELECT coalesce(sum(size), 0) FROM notifications").fetchone()[0]

    def _write(self, group: list[_Commit]) -> None:
        self._refresh()
        if any(request.deliveries for request in group) and self._free_bytes() < MIN_FREE_BYTES:
            raise sqlite3.OperationalError(f"database or disk is full: less than {MIN_FREE_BYTES >> 20} MiB free")
        start_bytes = self._bytes
        try:
            with _transaction(self.db):
                for request in group:
                    self._insert(request.deliveries)
                    self._save_checkpoints(request.checkpoints)
                    self._save_keys(request.storm)
                    self._save_silences(request.silences)
                    self._save_absences(request.absences)
                    self._save_escalations(request.escalations)
                    self._save_shares(request.fleet)
                self._trim(self.max_bytes + max(request.room for request in group))
        except BaseException:
            self._bytes = start_bytes
            self._dropping.clear()
            raise
        self._dropped()

    def _free_bytes(self) -> int:
        stat = os.statvfs(self.path.parent)
        return stat.f_bavail * stat.f_frsize

    def _reclaim(self) -> None:
        """Fold the WAL into the database and shrink it, to give disk space back."""
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    async def reclaim(self) -> None:
        await self._run(self._reclaim)

    def _insert(self, deliveries: Sequence[Delivery]) -> None:
        now = self.clock()
        rows = []
        for delivery in deliveries:
            n = delivery.notification
            if n.kind in STORM_EDITS:  # only the newest state of a storm is sent: a digest or a resolved note too
                for (size,) in self.db.execute(
                    "DELETE FROM notifications WHERE destination = ? AND rule = ? AND key = ? AND kind = 'update' "
                    "RETURNING size",
                    (delivery.destination, n.rule, n.key),
                ):
                    self._bytes -= size
            body = encode_delivery(delivery)
            size = len(body.encode())
            self._bytes += size
            rows.append((delivery.destination, int(delivery.notification.severity), now, size, body))
        _insert_rows(self.db, "INSERT INTO notifications (destination, severity, created, size, body)", rows)

    def _save_checkpoints(self, checkpoints: Sequence[Checkpoint]) -> None:
        for point in checkpoints:
            if point.value is None:
                self.db.execute("DELETE FROM checkpoints WHERE source = ? AND key = ?", (point.source, point.key))
            else:
                self.db.execute(
                    "INSERT OR REPLACE INTO checkpoints (source, key, value) VALUES (?, ?, ?)",
                    (point.source, point.key, json.dumps(point.value, separators=(",", ":"))),
                )

    def _save_keys(self, changes: Sequence[KeyChange]) -> None:
        forgotten = [key for key, state in changes if state is None]
        if forgotten:
            self.db.executemany("DELETE FROM storm_keys WHERE rule = ? AND key = ?", forgotten)
        fresh = [_key_row(state, notes=True) for _, state in changes if state is not None and state.fresh]
        counted = [_key_row(state, notes=False) for _, state in changes if state is not None and not state.fresh]
        _insert_rows(self.db, f"INSERT OR REPLACE INTO storm_keys ({_KEY_COLUMNS}, last_held, latest)", fresh)
        # the counts only: the held line and the latest event stored before stay
        _insert_rows(self.db, f"INSERT INTO storm_keys ({_KEY_COLUMNS})", counted, then=_KEY_COUNTS_UPDATE)

    def _save_silences(self, changes: Sequence[SilenceChange]) -> None:
        if not changes:
            return
        noted = [key for key, state in changes if state is None]
        kept = [
            (state.silence, state.starts, state.reason, _dumps(dict(state.held)))
            for _, state in changes
            if state is not None
        ]
        if noted:
            self.db.executemany("DELETE FROM silence_held WHERE silence = ? AND starts = ?", noted)
        if kept:
            self.db.executemany(
                "INSERT OR REPLACE INTO silence_held (silence, starts, reason, held) VALUES (?, ?, ?, ?)", kept
            )

    def _silences_changed(self) -> list[Silence] | None:
        version = self.db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._silences_version:
            return None
        self._silences_version = version
        found = read_silences(self.db, self.clock())
        if found == self._silences_seen:
            return None
        self._silences_seen = found
        return found

    def _save_absences(self, changes: Sequence[AbsenceChange]) -> None:
        gone = [(rule,) for rule, state in changes if state is None]
        kept = [(rule, state.last, int(state.alerted)) for rule, state in changes if state is not None]
        if gone:
            self.db.executemany("DELETE FROM absences WHERE rule = ?", gone)
        if kept:
            self.db.executemany("INSERT OR REPLACE INTO absences (rule, last, alerted) VALUES (?, ?, ?)", kept)

    def _save_escalations(self, changes: Sequence[EscalationChange]) -> None:
        if not changes:
            return
        gone = [key for key, state in changes if state is None]
        kept = [
            (state.rule, state.key, encode_notification(state.first), state.since, state.last, state.window,
             state.events, _dumps(list(state.pending)))
            for _, state in changes
            if state is not None
        ]  # fmt: skip
        _store_changes(self.db, "DELETE FROM escalations WHERE rule = ? AND key = ?", gone, "INSERT OR REPLACE INTO "
                       "escalations (rule, key, first, since, last, window, events, pending)", kept)  # fmt: skip

    def _save_shares(self, changes: Sequence[ShareChange]) -> None:
        if not changes:
            return
        gone = [ident for ident, state in changes if state is None]
        kept = [
            (s.rule, s.key, s.opened, s.closes, s.title, encode_notification(s.base), s.counted, s.uncounted,
             s.refused, int(s.sent), int(s.took_part), s.claim_at)
            for _, s in changes
            if s is not None
        ]  # fmt: skip
        _store_changes(self.db, "DELETE FROM fleet_shares WHERE rule = ? AND key = ? AND opened = ?", gone,
                       "INSERT OR REPLACE INTO fleet_shares (rule, key, opened, closes, title, base, counted, "
                       "uncounted, refused, sent, took_part, claim_at)", kept)  # fmt: skip

    def _shares(self) -> list[ShareState]:
        rows = self.db.execute(
            "SELECT rule, key, opened, closes, title, base, counted, uncounted, refused, sent, took_part, claim_at "
            "FROM fleet_shares"
        )
        shares = []
        for rule, key, opened, closes, title, base, counted, uncounted, refused, sent, took_part, claim_at in rows:
            shares.append(ShareState(rule, key, opened, closes, title, decode_notification(base), counted, uncounted,
                                     refused, bool(sent), bool(took_part), claim_at))  # fmt: skip
        return shares

    def _escalations(self) -> list[FiringState]:
        rows = self.db.execute("SELECT rule, key, first, since, last, window, events, pending FROM escalations")
        return [
            FiringState(rule, key, decode_notification(first), since, last, window, events, tuple(json.loads(pending)))
            for rule, key, first, since, last, window, events, pending in rows.fetchall()
        ]

    def _absences(self) -> list[AbsenceState]:
        rows = self.db.execute("SELECT rule, last, alerted FROM absences").fetchall()
        return [AbsenceState(rule, last, bool(alerted)) for rule, last, alerted in rows]

    def _flood_waiting(self, destination: str, more_than: float) -> bool:
        below = int(Severity.CRITICAL)
        waiting = self.db.execute(
            "SELECT count(*) FROM notifications WHERE destination = ? AND severity < ?", (destination, below)
        ).fetchone()[0]
        if waiting <= more_than:
            return False
        alerts = self.db.execute(
            "SELECT count(*) FROM notifications WHERE destination = ? AND severity < ? AND kind = 'alert'",
            (destination, below),
        ).fetchone()[0]
        return bool(alerts > more_than)

    def _summarise(self, destination: str, host: str, flood_after_s: float) -> list[Notification]:
        """Invariant 9: one pass reads what the summaries need (columns SQLite derived from the bodies
        as it stored them), then each rule's alerts move in one statement each."""
        db, now = self.db, self.clock()
        rows = db.execute(_FLOOD_ALERTS, (destination, int(Severity.CRITICAL))).fetchall()
        by_rule: dict[str, list[tuple[int, str, float, int, float]]] = {}
        for row_id, rule, key, when, severity, created in rows:
            by_rule.setdefault(rule, []).append((row_id, key, when, severity, created))
        out = []
        self._refresh()
        start_bytes = self._bytes
        try:
            with _transaction(db):
                db.execute("DELETE FROM summarised WHERE summarised < ?", (now - SUMMARISED_KEEP_S,))
                db.execute("CREATE TEMP TABLE IF NOT EXISTS flood_ids (id INTEGER PRIMARY KEY)")
                for rule, alerts in by_rule.items():
                    keys = Counter(key for _, key, _, _, _ in alerts)
                    top = sorted(keys.items(), key=lambda item: (-item[1], item[0]))[:TOP_KEYS]
                    times = [when for _, _, when, _, _ in alerts]
                    (body,) = db.execute("SELECT body FROM notifications WHERE id = ?", (alerts[-1][0],)).fetchone()
                    latest = decode_delivery(body)
                    severity = Severity(max(severity for _, _, _, severity, _ in alerts))
                    flood = RuleFlood(
                        rule, len(alerts), len(keys), min(times), max(times), severity, top, latest.notification
                    )
                    note = summary(flood, host=host, flood_after_s=flood_after_s)
                    delivery = Delivery(destination, note, latest.style, latest.mentions)
                    self._summed_up(delivery, [row_id for row_id, *_ in alerts], alerts[0][4], now)
                    out.append(note)
        except BaseException:
            self._bytes = start_bytes
            raise
        return out

    def _summed_up(self, delivery: Delivery, ids: list[int], created: float, now: float) -> None:
        """Move the alerts *ids* to ``summarised`` and put *delivery*, their summary, in the place of
        the oldest (*created*)."""
        db = self.db
        db.execute("DELETE FROM flood_ids")
        db.executemany("INSERT INTO flood_ids (id) VALUES (?)", ((row_id,) for row_id in ids))
        self._bytes -= db.execute(
            "SELECT coalesce(sum(size), 0) FROM notifications WHERE id IN (SELECT id FROM flood_ids)"
        ).fetchone()[0]
        db.execute(
            "INSERT INTO summarised (id, destination, severity, created, summarised, summary, body) "
            "SELECT id, destination, severity, created, ?, ?, body FROM notifications "
            "WHERE id IN (SELECT id FROM flood_ids)",
            (now, delivery.notification.title),
        )
        db.execute("DELETE FROM notifications WHERE id IN (SELECT id FROM flood_ids)")
        body = encode_delivery(delivery)
        size = len(body.encode())
        self._bytes += size
        db.execute(
            "INSERT INTO notifications (destination, severity, created, size, body) VALUES (?, ?, ?, ?, ?)",
            (delivery.destination, int(delivery.notification.severity), created, size, body),
        )

    def _count_drop(self, destination: str, severity: int, reason: DropReason) -> None:
        self._dropped_for.add(destination)
        self.db.execute(
            "INSERT INTO drops (destination, severity, reason, count) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (destination, severity, reason) DO UPDATE SET count = count + 1",
            (destination, severity, reason),
        )
        self._dropping[destination, Severity(severity).label, reason] += 1

    def _dropped(self) -> None:
        """The transaction committed: its drops happened."""
        if self._dropping:
            self.dropped.update(self._dropping)
            self._dropping.clear()

    def _expire(self) -> None:
        """Drop what has waited longer than ``max_age``, counting each drop (reason ``expired``)."""
        if self.max_age is None:
            return
        cutoff = self.clock() - self.max_age
        query = "SELECT 1 FROM notifications WHERE created < ? LIMIT 1"
        if self.db.execute(query, (cutoff,)).fetchone() is None:
            return
        try:
            with _transaction(self.db):
                rows = self.db.execute(
                    "DELETE FROM notifications WHERE created < ? RETURNING destination, severity, size", (cutoff,)
                ).fetchall()
                for destination, severity, size in rows:
                    self._bytes -= size
                    self._count_drop(destination, severity, "expired")
        except BaseException:
            self._dropping.clear()
            raise
        self._dropped()
        log.warning("spool: %d notifications waited longer than spool.max_age and were dropped", len(rows))

    def _trim(self, limit: int) -> None:
        """Drop the lowest severities, oldest first, until the spool fits in *limit* bytes."""
        while self._bytes > limit:
            victims = self.db.execute(
                "SELECT id, destination, severity, size FROM notifications ORDER BY severity, id LIMIT 256"
            ).fetchall()
            if not victims:
                break
            dropped = []
            for row_id, destination, severity, size in victims:
                if self._bytes <= limit:
                    break
                dropped.append((row_id,))
                self._bytes -= size
                self._count_drop(destination, severity, "full")
            self.db.executemany("DELETE FROM notifications WHERE id = ?", dropped)

    def _delete(self, ids: list[int]) -> None:
        with _transaction(self.db):
            self._delete_rows(ids)

    def _delete_rows(self, ids: list[int]) -> None:
        for row_id in ids:
            size = self.db.execute("DELETE FROM notifications WHERE id = ? RETURNING size", (row_id,)).fetchone()
            if size is not None:
                self._bytes -= size[0]

    def _posted(
        self,
        ids: list[int],
        deliveries: list[Delivery],
        message: tuple[str, str, str | None],
        *,
        files: tuple[str, ...] | None,
        incidents: bool,
        threads: bool,
        replaces: str | None,
    ) -> None:
        message_id, webhook, thread = message
        now = self.clock()
        destination = deliveries[0].destination
        with _transaction(self.db):
            self._delete_rows(ids)
            if replaces is not None:
                self._forget_message_rows(destination, replaces)
            if threads and thread is not None:
                self.db.executemany(
                    "INSERT OR REPLACE INTO threads (destination, rule, key, thread, updated) VALUES (?, ?, ?, ?, ?)",
                    {(destination, d.notification.rule, d.notification.key, thread, now) for d in deliveries},
                )
            keys = [(slot, d) for slot, d in enumerate(deliveries) if d.notification.kind in (Kind.ALERT, Kind.UPDATE)]
            if not incidents or not keys:
                return
            self.db.execute(
                "INSERT OR REPLACE INTO messages (destination, id, webhook, thread, body, updated, files) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (destination, message_id, webhook, thread, _shown_body(deliveries), now, _files_column(files)),
            )
            for slot, d in keys:  # a key's latest post is its message
                self.db.execute(
                    "INSERT OR REPLACE INTO incidents (destination, rule, key, message, slot, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (destination, d.notification.rule, d.notification.key, message_id, slot, now),
                )

    def _incident(self, destination: str, rule: str, key: str) -> Incident | None:
        row = self.db.execute(
            "SELECT m.id, m.webhook, m.thread, i.slot, m.body, m.files FROM incidents i JOIN messages m "
            "ON m.destination = i.destination AND m.id = i.message "
            "WHERE i.destination = ? AND i.rule = ? AND i.key = ?",
            (destination, rule, key),
        ).fetchone()
        if row is None:
            return None
        message_id, webhook, thread, slot, body, files = row
        deliveries = tuple(decode_delivery(text) for text in json.loads(body))
        known = None if files is None else tuple(json.loads(files))
        return Incident(message_id, webhook, thread, slot, deliveries, known)

    def _edits(self, destination: str, message_id: str) -> list[tuple[Spooled, int]]:
        """Per key of the message: its waiting notifications from the oldest, as long as they edit
        (a post of the key starts another message: what comes after it is that message's), up to its
        first digest or resolved note (what comes after it belongs to the key's next storm)."""
        found = []
        keys = "SELECT rule, key, slot FROM incidents WHERE destination = ? AND message = ?"
        for rule, key, slot in self.db.execute(keys, (destination, message_id)).fetchall():
            rows = self.db.execute(
                "SELECT id, body, attempts, created, kind FROM notifications "
                "WHERE destination = ? AND rule = ? AND key = ? ORDER BY id LIMIT 4",
                (destination, rule, key),
            )
            for row_id, body, attempts, created, kind in rows:
                if kind not in STORM_EDITS:
                    break
                found.append((Spooled(row_id, decode_delivery(body), attempts, created), slot))
                if kind != Kind.UPDATE:
                    break
        return sorted(found, key=lambda item: item[0].id)

    def _older_edit(self, destination: str, posts: list[tuple[str, str, int]]) -> tuple[int, Spooled] | None:
        for index, (rule, key, before) in enumerate(posts):
            row = self.db.execute(
                f"SELECT id, body, attempts, created FROM notifications WHERE destination = ? AND rule = ? "  # noqa: S608
                f"AND key = ? AND id < ? AND {_EDITS} ORDER BY id LIMIT 1",
                (destination, rule, key, before),
            ).fetchone()
            if row is not None:
                row_id, body, attempts, created = row
                return index, Spooled(row_id, decode_delivery(body), attempts, created)
        return None

    def _next_of_key(self, destination: str, rule: str, key: str) -> Spooled | None:
        row = self.db.execute(
            "SELECT id, body, attempts, created FROM notifications WHERE destination = ? AND rule = ? AND key = ? "
            "ORDER BY id LIMIT 1",
            (destination, rule, key),
        ).fetchone()
        return None if row is None else Spooled(row[0], decode_delivery(row[1]), row[2], row[3])

    def _edits_due(self, destination: str, edit_every: float) -> float | None:
        (changed,) = self.db.execute(
            "SELECT min(m.updated) FROM notifications n JOIN incidents i ON i.destination = n.destination "
            "AND i.rule = n.rule AND i.key = n.key JOIN messages m ON m.destination = i.destination "
            "AND m.id = i.message WHERE n.destination = ? AND n.kind = 'update' AND m.updated > ?",
            (destination, self.clock() - edit_every),
        ).fetchone()
        return None if changed is None else float(changed) + edit_every

    def _edited(self, ids: list[int], destination: str, incident: Incident) -> None:
        now = self.clock()
        body = _shown_body(incident.deliveries)
        with _transaction(self.db):
            for row_id in ids:
                row = self.db.execute(
                    "DELETE FROM notifications WHERE id = ? RETURNING size, kind, rule, key", (row_id,)
                ).fetchone()
                if row is None:
                    continue
                size, kind, rule, key = row
                self._bytes -= size
                closing = "DELETE FROM incidents" if kind == Kind.RECOVERY else "UPDATE incidents SET updated = ?"
                self.db.execute(
                    f"{closing} WHERE destination = ? AND rule = ? AND key = ? AND message = ?",
                    (*(() if kind == Kind.RECOVERY else (now,)), destination, rule, key, incident.message_id),
                )
            self.db.execute(
                "UPDATE messages SET body = ?, updated = ?, files = ? WHERE destination = ? AND id = ?",
                (body, now, _files_column(incident.files), destination, incident.message_id),
            )
            if incident.thread_id is not None:  # a thread whose incident goes on is not quiet
                self.db.execute(
                    "UPDATE threads SET updated = ? WHERE destination = ? AND thread = ?",
                    (now, destination, incident.thread_id),
                )
            self._drop_unused_messages(destination, incident.message_id)

    def _thread(self, destination: str, rule: str, key: str) -> str | None:
        row = self.db.execute(
            "SELECT thread FROM threads WHERE destination = ? AND rule = ? AND key = ?", (destination, rule, key)
        ).fetchone()
        return None if row is None else str(row[0])

    def _forget_thread(self, destination: str, thread: str) -> None:
        with _transaction(self.db):
            self.db.execute("DELETE FROM threads WHERE destination = ? AND thread = ?", (destination, thread))
            self.db.execute(
                "DELETE FROM incidents WHERE destination = ? AND message IN "
                "(SELECT id FROM messages WHERE destination = ? AND thread = ?)",
                (destination, destination, thread),
            )
            self.db.execute("DELETE FROM messages WHERE destination = ? AND thread = ?", (destination, thread))

    def _forget_message_rows(self, destination: str, message_id: str) -> None:
        self.db.execute("DELETE FROM incidents WHERE destination = ? AND message = ?", (destination, message_id))
        self._drop_unused_messages(destination, message_id)

    def _drop_unused_messages(self, destination: str, message_id: str) -> None:
        self.db.execute(
            "DELETE FROM messages WHERE destination = ? AND id = ? AND NOT EXISTS "
            "(SELECT 1 FROM incidents WHERE destination = ? AND message = ?)",
            (destination, message_id, destination, message_id),
        )

    def _expire_incidents(self) -> None:
        """Incidents and threads quiet for ``INCIDENT_KEPT_S``: their key's next alert posts anew."""
        cutoff = self.clock() - INCIDENT_KEPT_S
        if self.db.execute("SELECT 1 FROM threads WHERE updated < ? LIMIT 1", (cutoff,)).fetchone() is not None:
            with _transaction(self.db):
                self.db.execute("DELETE FROM threads WHERE updated < ?", (cutoff,))
        if self.db.execute("SELECT 1 FROM incidents WHERE updated < ? LIMIT 1", (cutoff,)).fetchone() is None:
            return
        with _transaction(self.db):
            self.db.execute("DELETE FROM incidents WHERE updated < ?", (cutoff,))
            self.db.execute(
                "DELETE FROM messages WHERE NOT EXISTS (SELECT 1 FROM incidents i "
                "WHERE i.destination = messages.destination AND i.message = messages.id)"
            )

    def _record_failure(self, ids: list[int], error: str, next_attempt: float) -> None:
        with _transaction(self.db):
            self.db.executemany(
                "UPDATE notifications SET attempts = attempts + 1, last_error = ?, next_attempt = ? WHERE id = ?",
                [(error, next_attempt, row_id) for row_id in ids],
            )

    def _to_dead_letters(self, ids: list[int], error: str) -> None:
        now = self.clock()
        with _transaction(self.db):
            for row_id in ids:
                row = self.db.execute(
                    "DELETE FROM notifications WHERE id = ? "
                    "RETURNING destination, severity, created, attempts, size, body",
                    (row_id,),
                ).fetchone()
                if row is None:
                    continue
                destination, severity, created, attempts, size, body = row
                self._bytes -= size
                self.db.execute(
                    "INSERT INTO dead_letters (id, destination, severity, created, failed, attempts, error, body) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (row_id, destination, severity, created, now, attempts + 1, error, body),
                )

    def _take_drops(self, destination: str) -> dict[tuple[DropReason, Severity], int]:
        self._dropped_for.discard(destination)
        with _transaction(self.db):
            rows = self.db.execute(
                "DELETE FROM drops WHERE destination = ? RETURNING reason, severity, count", (destination,)
            ).fetchall()
        return {(reason, Severity(severity)): count for reason, severity, count in rows}

    def _next(self, destination: str, limit: int, edit_every: float) -> list[Spooled]:
        """The next *limit* notifications for *destination*, in the order of invariant 3."""
        self._expire()
        self._expire_incidents()
        columns = "SELECT id, body, attempts, created FROM notifications WHERE destination = ?"
        args: tuple[Any, ...] = (destination,)
        if edit_every > 0:
            columns += f" AND {_DUE}"
            args += (self.clock() - edit_every,)
        rows = self.db.execute(f"{columns} ORDER BY severity DESC, id LIMIT ?", (*args, limit)).fetchall()
        oldest = self.db.execute(f"{columns} ORDER BY id LIMIT 1", args).fetchone()
        if oldest is not None and oldest[3] <= self.clock() - OLDEST_FIRST_AFTER_S:
            rows = [oldest, *(row for row in rows if row[0] != oldest[0])][:limit]
        return [Spooled(row_id, decode_delivery(body), attempts, created) for row_id, body, attempts, created in rows]

    def _pending(self, destination: str | None) -> int:
        if destination is None:
            return int(self.db.execute("SELECT count(*) FROM notifications").fetchone()[0])
        query = "SELECT count(*) FROM notifications WHERE destination = ?"
        return int(self.db.execute(query, (destination,)).fetchone()[0])

    def _checkpoints(self, source: str) -> dict[str, Any]:
        rows = self.db.execute("SELECT key, value FROM checkpoints WHERE source = ?", (source,)).fetchall()
        return {key: json.loads(value) for key, value in rows}

    def _storm_keys(self) -> list[KeyState]:
        rows = self.db.execute(f"SELECT {_KEY_COLUMNS}, last_held, latest FROM storm_keys").fetchall()  # noqa: S608
        return [
            KeyState(
                rule, key, opened, sent, held, _notification_or_none(last_held), True, length, level, quiet_from,
                first, last, events, bool(stormed), _notification_or_none(latest),
                tuple(json.loads(pending)) if pending else (),
            )
            for (rule, key, opened, sent, held, length, level, quiet_from, first, last, events, stormed, pending,
                 last_held, latest) in rows
        ]  # fmt: skip

    def _status(self) -> SpoolStatus:
        self._refresh()
        with _transaction(self.db, "BEGIN"):
            return read_status(self.db, self.path)


STORED_SILENCE_KEPT_S = 86400.0
"""A stored silence over for longer than this is no longer read by the daemon (unless its note waits),
and ``tailhook silence add`` deletes those over for a week."""
_SILENCE_COLUMNS = "id, reason, rules, sources, hosts, severities, starts, ends, expired"


def read_silences(db: sqlite3.Connection, now: float) -> list[Silence]:
    """The stored silences, oldest first: all but those over for ``STORED_SILENCE_KEPT_S`` whose note is sent."""
    rows = db.execute(
        f"SELECT {_SILENCE_COLUMNS} FROM silences "  # noqa: S608 - static text
        "WHERE ((ends IS NULL OR ends > :since) AND (expired IS NULL OR expired > :since)) "
        "OR 'cli:' || id IN (SELECT silence FROM silence_held) ORDER BY id",
        {"since": now - STORED_SILENCE_KEPT_S},
    ).fetchall()
    return [silence_from_row(row) for row in rows]


def silence_from_row(row: Sequence[Any]) -> Silence:
    """A row of ``silences`` (``_SILENCE_COLUMNS``, in order) as a ``Silence``."""
    row_id, reason, rules, sources, hosts, severities, starts, ends, expired = row

    def names(column: str | None) -> frozenset[str] | None:
        return None if column is None else frozenset(json.loads(column))

    levels = None if severities is None else frozenset(Severity.parse(s) for s in json.loads(severities))
    return Silence(
        id=f"cli:{row_id}",
        reason=reason,
        rules=names(rules),
        sources=names(sources),
        hosts=names(hosts),
        severities=levels,
        starts=starts,
        ends=ends,
        expired=expired,
    )


def silence_columns(silence: Silence) -> dict[str, Any]:
    """*silence*'s values for a row of ``silences`` (all but ``id`` and ``created``)."""

    def names(values: Iterable[str] | None) -> str | None:
        return None if values is None else json.dumps(sorted(values))

    return {
        "reason": silence.reason,
        "rules": names(silence.rules),
        "sources": names(silence.sources),
        "hosts": names(silence.hosts),
        "severities": names(None if silence.severities is None else (s.label for s in silence.severities)),
        "starts": silence.starts,
        "ends": silence.ends,
        "expired": silence.expired,
    }


def read_held(db: sqlite3.Connection) -> list[HeldState]:
    """Every occurrence of a silence that held something and whose note is not yet stored."""
    rows = db.execute("SELECT silence, starts, reason, held FROM silence_held ORDER BY silence, starts")
    return [HeldState(silence, starts, reason, json.loads(held)) for silence, starts, reason, held in rows]


def read_status(db: sqlite3.Connection, path: Path) -> SpoolStatus:
    """What waits, per destination and severity; dead letters; drops not yet announced; sizes.

    Call inside a read transaction for one consistent snapshot.
    """
    pending = {
        (destination, Severity(severity)): count
        for destination, severity, count in db.execute(
            "SELECT destination, severity, count(*) FROM notifications GROUP BY destination, severity"
        )
    }
    size = db.execute("SELECT coalesce(sum(size), 0) FROM notifications").fetchone()[0]
    oldest = dict(db.execute("SELECT destination, min(created) FROM notifications GROUP BY destination"))
    dead = dict(db.execute("SELECT destination, count(*) FROM dead_letters GROUP BY destination"))
    drops = {
        (destination, Severity(severity)): count
        for destination, severity, count in db.execute(
            "SELECT destination, severity, sum(count) FROM drops GROUP BY destination, severity"
        )
    }
    files = (path, path.with_name(f"{path.name}-wal"))
    file_bytes = sum(file.stat().st_size for file in files if file.exists())
    return SpoolStatus(pending, int(size), oldest, dead, drops, file_bytes)


ROWS_PER_INSERT = 100
"""Rows one INSERT stores at most. SQLite lets go of the GIL for each statement it runs: one per
row with ``executemany`` makes the spool's thread wait for the GIL again after each, while the
event loop holds it to ingest the next batch."""


_KEY_COLUMNS = "rule, key, opened, sent, held, length, level, quiet_from, first, last, events, stormed, pending"
"""The columns of ``storm_keys`` but its notifications (``last_held`` and ``latest``), in ``_key_row``'s order."""
_KEY_COUNTS_UPDATE = " ON CONFLICT (rule, key) DO UPDATE SET " + ", ".join(
    f"{column} = excluded.{column}" for column in _KEY_COLUMNS.split(", ")[2:]
)


def _shown_body(deliveries: Iterable[Delivery]) -> str:
    """``messages.body``: what a message shows, each delivery's line and excerpt cut at ``SHOWN_CHARS``
    (so a 20 MB line, which went as a file, is not written again with every edit)."""
    shown = []
    for delivery in deliveries:
        n = delivery.notification
        if len(n.line) > SHOWN_CHARS or len(n.excerpt) > SHOWN_CHARS:
            cut = replace(n, line=n.line[:SHOWN_CHARS], excerpt=n.excerpt[:SHOWN_CHARS])
            delivery = replace(delivery, notification=cut)  # noqa: PLW2901
        shown.append(encode_delivery(delivery))
    return json.dumps(shown)


def _files_column(files: tuple[str, ...] | None) -> str | None:
    return None if files is None else json.dumps(list(files))


def _key_row(state: KeyState, *, notes: bool) -> tuple[Any, ...]:
    """*state* as a row of ``storm_keys``: ``_KEY_COLUMNS``, then, with *notes*, its held line and latest event."""
    pending = _dumps(list(state.pending)) if state.pending else None
    row = (
        state.rule, state.key, state.opened, state.sent, state.held, state.length, state.level, state.quiet_from,
        state.first, state.last, state.events, int(state.stormed), pending,
    )  # fmt: skip
    if not notes:
        return row
    return (*row, _encoded_or_none(state.last_held), _encoded_or_none(state.latest))


def _encoded_or_none(notification: Notification | None) -> str | None:
    return None if notification is None else encode_notification(notification)


def _notification_or_none(body: str | None) -> Notification | None:
    return None if body is None else decode_notification(body)


def _store_changes(
    db: sqlite3.Connection, delete: str, gone: Sequence[tuple[Any, ...]], insert: str, kept: Sequence[tuple[Any, ...]]
) -> None:
    """A component's changes: the rows of *gone* deleted (*delete*, one row's key), those of *kept* written
    (*insert*: ``INSERT OR REPLACE INTO table (columns)``)."""
    if gone:
        db.executemany(delete, gone)
    _insert_rows(db, insert, kept)


def _insert_rows(db: sqlite3.Connection, insert: str, rows: Sequence[tuple[Any, ...]], *, then: str = "") -> None:
    """*rows*, in order, as ``{insert} VALUES (?, …), (?, …)…{then}`` of ``ROWS_PER_INSERT`` rows at most.

    *insert* is ``INSERT [OR …] INTO table (columns)``.
    """
    if not rows:
        return
    one = "(" + ", ".join("?" * len(rows[0])) + ")"
    for start in range(0, len(rows), ROWS_PER_INSERT):
        part = rows[start : start + ROWS_PER_INSERT]
        db.execute(f"{insert} VALUES {', '.join([one] * len(part))}{then}", [value for row in part for value in row])


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Any:
    """``BEGIN IMMEDIATE`` (or *begin*) … ``COMMIT``, or ``ROLLBACK`` on any error."""
    if not db.in_transaction:
        db.execute(begin)
    try:
        yield
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    if db.in_transaction:
        db.execute("COMMIT")


def _is_full(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)

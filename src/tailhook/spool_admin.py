"""``tailhook spool``: inspect and repair the spool, also while the daemon runs.

The daemon keeps ``state_dir/spool.sqlite3`` open in WAL mode. These
functions work on the same file through a short-lived connection of their
own (see ``tailhook.spool`` for the schema and the invariants):

- The connection opens the file as it is (``mode=rw``): it never creates a
  spool, never migrates one, and never moves a damaged one aside. A missing
  file, a file that is not a database, and a schema other than
  ``SCHEMA_VERSION`` are ``SpoolAdminError``.
- It waits up to ``busy_timeout_s`` for the daemon's locks. Reads run in one
  read transaction, so a report is one consistent snapshot; writes run in
  ``BEGIN IMMEDIATE`` transactions and either happen whole or not at all.
- Retrying a dead letter inserts it as a NEW notification: a new id, larger
  than any id the spool has handed out (``AUTOINCREMENT``), so it goes to
  the END of its destination's queue, behind everything already waiting;
  ``created`` is the time of the retry, attempts and last error start
  afresh. The alert itself (title, line, the time it was logged) is kept
  unchanged in the body. Several retried together keep their order.
- Dropping deletes waiting notifications. One the daemon is sending at that
  moment may still arrive once.

Listing order is oldest first (by id). Ages are counted from ``created`` for
waiting notifications and from ``failed`` for dead letters, and
``older_than_s`` compares the same times.

Functions take the time as ``now``; the rendering functions at the end turn
results into text for people, with control characters from log lines escaped
so that they cannot drive the terminal.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailhook.events import Delivery, Severity
from tailhook.spool import (
    FILE_NAME,
    SCHEMA_VERSION,
    DeadLetter,
    SpoolStatus,
    decode_delivery,
    encode_delivery,
    read_status,
)

__all__ = [
    "SEVERITIES",
    "Selection",
    "SpoolAdminError",
    "Summarised",
    "Waiting",
    "connect",
    "count_dead_letters",
    "count_summarised",
    "count_waiting",
    "dead_letter",
    "dead_letter_json",
    "dead_letters",
    "drop",
    "drop_ids",
    "format_age",
    "format_bytes",
    "immediate",
    "plural",
    "purge",
    "render_dead_letter",
    "render_dead_letters",
    "render_status",
    "render_summarised",
    "render_waiting",
    "render_waiting_notification",
    "retry",
    "retry_all",
    "snapshot",
    "spool_path",
    "status",
    "status_json",
    "summarised",
    "summarised_json",
    "waiting",
    "waiting_json",
    "waiting_notification",
]

SEVERITIES = tuple(sorted(Severity, reverse=True))
"""Most urgent first, as tables show them."""


class SpoolAdminError(Exception):
    """What went wrong, in words for the operator; the command exits 1."""


@dataclass(frozen=True, slots=True)
class Waiting:
    """A notification waiting in the spool, with its delivery record."""

    id: int
    destination: str
    severity: Severity
    created: float
    attempts: int
    next_attempt: float
    last_error: str
    size: int
    delivery: Delivery


@dataclass(frozen=True, slots=True)
class Selection:
    """Which rows a command works on; a field left at ``None`` matches everything."""

    destination: str | None = None
    severity: Severity | None = None
    older_than_s: float | None = None
    """Only rows older than this many seconds (waiting: since ``created``; dead letters: since ``failed``)."""

    def __bool__(self) -> bool:
        return not (self.destination is None and self.severity is None and self.older_than_s is None)


# ── the connection ──────────────────────────────────────────────────────────


def spool_path(state_dir: Path) -> Path:
    return Path(state_dir) / FILE_NAME


@contextlib.contextmanager
def connect(state_dir: Path, *, busy_timeout_s: float = 5.0) -> Iterator[sqlite3.Connection]:
    """An open connection to the spool in *state_dir*; ``SpoolAdminError`` for anything SQLite refuses."""
    path = spool_path(state_dir)
    if not path.is_file():
        raise SpoolAdminError(f"no spool at {path}: tailhook has not run with this state_dir, or it is elsewhere")
    try:
        db = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=busy_timeout_s, isolation_level=None
        )
    except sqlite3.Error as exc:
        raise SpoolAdminError(f"cannot open the spool {path}: {exc}") from exc
    try:
        _check_schema(db, path)
        yield db
    except sqlite3.OperationalError as exc:
        hint = " (the daemon held its lock too long; try again)" if "locked" in str(exc) else ""
        raise SpoolAdminError(f"spool {path}: {exc}{hint}") from exc
    except sqlite3.Error as exc:
        raise SpoolAdminError(f"spool {path}: {exc}") from exc
    finally:
        db.close()


def _check_schema(db: sqlite3.Connection, path: Path) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == 0:
        raise SpoolAdminError(f"{path} is not a tailhook spool (it has no schema version)")
    if version > SCHEMA_VERSION:
        raise SpoolAdminError(f"{path} has schema version {version}, newer than this tailhook knows ({SCHEMA_VERSION})")
    if version < SCHEMA_VERSION:
        raise SpoolAdminError(
            f"{path} has schema version {version}; start `tailhook run` once to migrate it to {SCHEMA_VERSION}"
        )


@contextlib.contextmanager
def snapshot(db: sqlite3.Connection) -> Iterator[None]:
    """One read transaction: every query inside sees the same state of the spool."""
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.execute("COMMIT")


@contextlib.contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _params(selection: Selection, *, now: float, limit: int | None = None) -> dict[str, object]:
    """The named parameters of the ``WHERE`` clauses below: a ``NULL`` matches everything."""
    return {
        "destination": selection.destination,
        "severity": None if selection.severity is None else int(selection.severity),
        "before": None if selection.older_than_s is None else now - selection.older_than_s,
        "limit": -1 if limit is None else limit,  # SQLite: a negative LIMIT is none
    }


# The statements are static text with named parameters: nothing from the command line is pasted into SQL.
_LIST_WAITING = (
    "SELECT id, destination, severity, created, attempts, next_attempt, last_error, size, body FROM notifications "
    "WHERE (:destination IS NULL OR destination = :destination) AND (:severity IS NULL OR severity = :severity) "
    "AND (:before IS NULL OR created <= :before) ORDER BY id LIMIT :limit"
)
_COUNT_WAITING = (
    "SELECT count(*) FROM notifications "
    "WHERE (:destination IS NULL OR destination = :destination) AND (:severity IS NULL OR severity = :severity) "
    "AND (:before IS NULL OR created <= :before)"
)
_DROP_WAITING = (
    "DELETE FROM notifications "
    "WHERE (:destination IS NULL OR destination = :destination) AND (:severity IS NULL OR severity = :severity) "
    "AND (:before IS NULL OR created <= :before)"
)
_ONE_WAITING = (
    "SELECT id, destination, severity, created, attempts, next_attempt, last_error, size, body FROM notifications "
    "WHERE id = ?"
)
_LIST_DEAD = (
    "SELECT id, destination, severity, created, failed, attempts, error, body FROM dead_letters "
    "WHERE (:destination IS NULL OR destination = :destination) AND (:severity IS NULL OR severity = :severity) "
    "AND (:before IS NULL OR failed <= :before) ORDER BY id LIMIT :limit"
)
_COUNT_DEAD = (
    "SELECT count(*) FROM dead_letters "
    "WHERE (:destination IS NULL OR destination = :destination) AND (:severity IS NULL OR severity = :severity) "
    "AND (:before IS NULL OR failed <= :before)"
)
_PURGE_DEAD = (
    "DELETE FROM dead_letters "
    "WHERE (:destination IS NULL OR destination = :destination) AND (:severity IS NULL OR severity = :severity) "
    "AND (:before IS NULL OR failed <= :before)"
)
_SELECTED_DEAD_IDS = (
    "SELECT id FROM dead_letters "
    "WHERE (:destination IS NULL OR destination = :destination) AND (:severity IS NULL OR severity = :severity) "
    "AND (:before IS NULL OR failed <= :before) ORDER BY id"
)
_ONE_DEAD = "SELECT id, destination, severity, created, failed, attempts, error, body FROM dead_letters WHERE id = ?"


def _decode(body: str, what: str) -> Delivery:
    try:
        return decode_delivery(body)
    except (ValueError, KeyError, TypeError) as exc:
        raise SpoolAdminError(
            f"{what} has a body this tailhook cannot read ({exc!r}); `tailhook spool drop` or `purge` removes it"
        ) from exc


# ── reading ─────────────────────────────────────────────────────────────────


def status(db: sqlite3.Connection, path: Path) -> SpoolStatus:
    """What waits, per destination and severity; dead letters; drops not yet announced; sizes."""
    with snapshot(db):
        return read_status(db, path)


def _waiting(row: tuple[Any, ...]) -> Waiting:
    row_id, destination, severity, created, attempts, next_attempt, last_error, size, body = row
    delivery = _decode(body, f"notification {row_id}")
    return Waiting(row_id, destination, Severity(severity), created, attempts, next_attempt, last_error, size, delivery)


def _dead_letter(row: tuple[Any, ...]) -> DeadLetter:
    row_id, destination, severity, created, failed, attempts, error, body = row
    delivery = _decode(body, f"dead letter {row_id}")
    return DeadLetter(row_id, destination, Severity(severity), created, failed, attempts, error, delivery)


@dataclass(frozen=True, slots=True)
class Summarised:
    """An alert summed up in a flood: kept to be inspected, never sent."""

    id: int
    destination: str
    severity: Severity
    created: float
    summarised: float
    summary: str
    """The title of the summary that stands for it."""
    delivery: Delivery


_LIST_SUMMARISED = (
    "SELECT id, destination, severity, created, summarised, summary, body FROM summarised "
    "WHERE (:destination IS NULL OR destination = :destination) AND (:severity IS NULL OR severity = :severity) "
    "AND (:before IS NULL OR created <= :before) ORDER BY id LIMIT :limit"
)
_COUNT_SUMMARISED = (
    "SELECT count(*) FROM summarised "
    "WHERE (:destination IS NULL OR destination = :destination) AND (:severity IS NULL OR severity = :severity) "
    "AND (:before IS NULL OR created <= :before)"
)


def summarised(
    db: sqlite3.Connection, selection: Selection, *, now: float, limit: int | None = None
) -> list[Summarised]:
    """The alerts summed up in floods that *selection* picks, oldest first; at most *limit*."""
    out = []
    for row_id, destination, severity, created, when, summary, body in db.execute(
        _LIST_SUMMARISED, _params(selection, now=now, limit=limit)
    ):
        delivery = _decode(body, f"summed-up alert {row_id}")
        out.append(Summarised(row_id, destination, Severity(severity), created, when, summary, delivery))
    return out


def count_summarised(db: sqlite3.Connection, selection: Selection, *, now: float) -> int:
    return int(db.execute(_COUNT_SUMMARISED, _params(selection, now=now)).fetchone()[0])


def render_summarised(items: Sequence[Summarised], *, now: float) -> str:
    rows = [
        [
            str(item.id),
            _cut(item.destination, 24),
            item.severity.label,
            format_age(now - item.created),
            _cut(item.summary, 50),
            _cut(item.delivery.notification.title, 60),
        ]
        for item in items
    ]
    return _table(("ID", "DESTINATION", "SEVERITY", "AGE", "SUMMED UP IN", "TITLE"), rows, right=frozenset({0}))


def summarised_json(item: Summarised) -> dict[str, Any]:
    return {
        "id": item.id,
        "destination": item.destination,
        "severity": item.severity.label,
        "created": item.created,
        "summarised": item.summarised,
        "summary": item.summary,
        "delivery": json.loads(encode_delivery(item.delivery)),
    }


def waiting(db: sqlite3.Connection, selection: Selection, *, now: float, limit: int | None = None) -> list[Waiting]:
    """The waiting notifications *selection* picks, oldest first; at most *limit*."""
    return [_waiting(row) for row in db.execute(_LIST_WAITING, _params(selection, now=now, limit=limit))]


def dead_letters(
    db: sqlite3.Connection, selection: Selection, *, now: float, limit: int | None = None
) -> list[DeadLetter]:
    """The dead letters *selection* picks, oldest first; at most *limit*."""
    return [_dead_letter(row) for row in db.execute(_LIST_DEAD, _params(selection, now=now, limit=limit))]


def count_waiting(db: sqlite3.Connection, selection: Selection, *, now: float) -> int:
    return int(db.execute(_COUNT_WAITING, _params(selection, now=now)).fetchone()[0])


def count_dead_letters(db: sqlite3.Connection, selection: Selection, *, now: float) -> int:
    return int(db.execute(_COUNT_DEAD, _params(selection, now=now)).fetchone()[0])


def waiting_notification(db: sqlite3.Connection, notification_id: int) -> Waiting | None:
    row = db.execute(_ONE_WAITING, (notification_id,)).fetchone()
    return None if row is None else _waiting(row)


def dead_letter(db: sqlite3.Connection, letter_id: int) -> DeadLetter | None:
    row = db.execute(_ONE_DEAD, (letter_id,)).fetchone()
    return None if row is None else _dead_letter(row)


# ── repairing ───────────────────────────────────────────────────────────────


def retry(db: sqlite3.Connection, ids: Sequence[int], *, now: float) -> list[tuple[int, int]]:
    """Move the dead letters *ids* back to the end of their queues: ``(dead letter id, new id)`` pairs.

    All or nothing: if one of *ids* is not a dead letter, ``SpoolAdminError`` and nothing moves.
    """
    with immediate(db):
        missing = [i for i in ids if db.execute("SELECT 1 FROM dead_letters WHERE id = ?", (i,)).fetchone() is None]
        if missing:
            raise SpoolAdminError(f"no dead letter {_ids(missing)}; nothing was retried")
        return _requeue(db, sorted(set(ids)), now)


def retry_all(db: sqlite3.Connection, *, destination: str | None = None, now: float) -> list[tuple[int, int]]:
    """Move every dead letter (of *destination*) back to the end of its queue; as ``retry``."""
    with immediate(db):
        selected = db.execute(_SELECTED_DEAD_IDS, _params(Selection(destination=destination), now=now))
        ids = [row[0] for row in selected]
        return _requeue(db, ids, now)


def _requeue(db: sqlite3.Connection, ids: Sequence[int], now: float) -> list[tuple[int, int]]:
    moved = []
    for letter_id in ids:  # in id order, so letters retried together keep their order
        destination, severity, body = db.execute(
            "DELETE FROM dead_letters WHERE id = ? RETURNING destination, severity, body", (letter_id,)
        ).fetchone()
        (new_id,) = db.execute(
            "INSERT INTO notifications (destination, severity, created, size, body) VALUES (?, ?, ?, ?, ?) "
            "RETURNING id",
            (destination, severity, now, len(body.encode()), body),
        ).fetchone()
        moved.append((letter_id, new_id))
    return moved


def drop_ids(db: sqlite3.Connection, ids: Sequence[int]) -> int:
    """Delete the waiting notifications *ids*; all or nothing, as ``retry``."""
    with immediate(db):
        unique = sorted(set(ids))
        missing = [i for i in unique if db.execute("SELECT 1 FROM notifications WHERE id = ?", (i,)).fetchone() is None]
        if missing:
            raise SpoolAdminError(f"no waiting notification {_ids(missing)}; nothing was dropped")
        db.executemany("DELETE FROM notifications WHERE id = ?", [(i,) for i in unique])
        return len(unique)


def drop(db: sqlite3.Connection, selection: Selection, *, now: float) -> int:
    """Delete the waiting notifications *selection* picks; how many. An empty selection is refused."""
    if not selection:
        raise ValueError("drop needs a selection: refusing to empty the whole spool")
    with immediate(db):
        return db.execute(_DROP_WAITING, _params(selection, now=now)).rowcount


def purge(db: sqlite3.Connection, *, older_than_s: float | None, now: float) -> int:
    """Delete the dead letters that failed more than *older_than_s* ago (``None``: all of them); how many."""
    with immediate(db):
        return db.execute(_PURGE_DEAD, _params(Selection(older_than_s=older_than_s), now=now)).rowcount


def _ids(ids: Sequence[int]) -> str:
    return ", ".join(str(i) for i in ids)


# ── text for people, JSON for machines ──────────────────────────────────────


def format_age(seconds: float) -> str:
    """``45s``, ``12m05s``, ``3h05m``, ``2d04h``; a moment in the future (clock skew) reads ``0s``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def format_bytes(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def plural(count: int, noun: str) -> str:
    """``1 dead letter``, ``2 dead letters``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _printable(text: str, *, keep_newlines: bool = False) -> str:
    """*text* with control characters escaped (``\\x1b``), so log text cannot drive the terminal."""
    kept = "\n\t" if keep_newlines else ""
    return "".join(
        repr(char)[1:-1] if unicodedata.category(char) == "Cc" and char not in kept else char for char in text
    )


def _cut(text: str, width: int) -> str:
    """One line of at most *width* characters, cut with ``…``."""
    line = _printable(" ".join(text.split()))
    return line if len(line) <= width else line[: width - 1] + "…"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: frozenset[int] = frozenset()) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def _destinations(report: SpoolStatus) -> list[str]:
    names = {d for d, _ in report.pending} | set(report.dead_letters) | {d for d, _ in report.drops}
    return sorted(names)


def render_status(report: SpoolStatus, path: Path, *, now: float) -> str:
    waiting_total = sum(report.pending.values())
    summary = (
        f"spool {path}: {waiting_total} waiting ({format_bytes(report.bytes)}), "
        f"{plural(sum(report.dead_letters.values()), 'dead letter')}, "
        f"{sum(report.drops.values())} dropped and not yet announced; file {format_bytes(report.file_bytes)}"
    )
    names = _destinations(report)
    if not names:
        return summary
    headers = ["DESTINATION", *(s.label.upper() for s in SEVERITIES), "WAITING", "OLDEST", "DEAD", "DROPPED"]
    rows = []
    for name in names:
        counts = [report.pending.get((name, severity), 0) for severity in SEVERITIES]
        oldest = report.oldest.get(name)
        rows.append(
            [
                _cut(name, 40),
                *(str(c) for c in counts),
                str(sum(counts)),
                "-" if oldest is None else format_age(now - oldest),
                str(report.dead_letters.get(name, 0)),
                str(sum(c for (d, _), c in report.drops.items() if d == name)),
            ]
        )
    table = _table(headers, rows, right=frozenset(range(1, len(headers))))
    return f"{summary}\n\n{table}"


def status_json(report: SpoolStatus, path: Path, *, now: float) -> dict[str, Any]:
    destinations: dict[str, Any] = {}
    for name in _destinations(report):
        oldest = report.oldest.get(name)
        waiting_by = {s.label: c for s in SEVERITIES if (c := report.pending.get((name, s), 0))}
        drops_by = {s.label: c for s in SEVERITIES if (c := report.drops.get((name, s), 0))}
        destinations[name] = {
            "waiting": sum(waiting_by.values()),
            "waiting_by_severity": waiting_by,
            "oldest_created": oldest,
            "oldest_age_s": None if oldest is None else round(max(0.0, now - oldest), 3),
            "dead_letters": report.dead_letters.get(name, 0),
            "drops": sum(drops_by.values()),
            "drops_by_severity": drops_by,
        }
    return {
        "path": str(path),
        "schema_version": SCHEMA_VERSION,
        "waiting": sum(report.pending.values()),
        "bytes": report.bytes,
        "file_bytes": report.file_bytes,
        "dead_letters": sum(report.dead_letters.values()),
        "drops": sum(report.drops.values()),
        "destinations": destinations,
    }


_LIST_HEADERS = ("ID", "DESTINATION", "SEVERITY", "AGE", "ATTEMPTS", "ERROR", "TITLE")


def render_waiting(items: Sequence[Waiting], *, now: float) -> str:
    rows = [
        [
            str(item.id),
            _cut(item.destination, 24),
            item.severity.label,
            format_age(now - item.created),
            str(item.attempts),
            _cut(item.last_error, 40) or "-",
            _cut(item.delivery.notification.title, 60),
        ]
        for item in items
    ]
    return _table(_LIST_HEADERS, rows, right=frozenset({0, 4}))


def render_dead_letters(letters: Sequence[DeadLetter], *, now: float) -> str:
    """As ``render_waiting``; the age is how long ago the letter failed."""
    rows = [
        [
            str(letter.id),
            _cut(letter.destination, 24),
            letter.severity.label,
            format_age(now - letter.failed),
            str(letter.attempts),
            _cut(letter.error, 40),
            _cut(letter.delivery.notification.title, 60),
        ]
        for letter in letters
    ]
    return _table(_LIST_HEADERS, rows, right=frozenset({0, 4}))


def waiting_json(item: Waiting) -> dict[str, Any]:
    return {
        "id": item.id,
        "destination": item.destination,
        "severity": item.severity.label,
        "created": item.created,
        "attempts": item.attempts,
        "next_attempt": item.next_attempt,
        "last_error": item.last_error,
        "size": item.size,
        "delivery": json.loads(encode_delivery(item.delivery)),
    }


def dead_letter_json(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "destination": letter.destination,
        "severity": letter.severity.label,
        "created": letter.created,
        "failed": letter.failed,
        "attempts": letter.attempts,
        "error": letter.error,
        "delivery": json.loads(encode_delivery(letter.delivery)),
    }


def render_waiting_notification(item: Waiting, *, now: float) -> str:
    retry_at = (
        "now" if item.next_attempt <= now else f"{_utc(item.next_attempt)} (in {format_age(item.next_attempt - now)})"
    )
    head: list[str | tuple[str, str]] = [
        f"notification {item.id}, waiting",
        ("destination", item.destination),
        ("severity", item.severity.label),
        ("created", f"{_utc(item.created)} ({format_age(now - item.created)} ago)"),
        ("attempts", str(item.attempts)),
        ("next attempt", retry_at),
        ("last error", item.last_error or "-"),
        ("size", f"{item.size} bytes"),
    ]
    return _fields(head, item.delivery)


def render_dead_letter(letter: DeadLetter, *, now: float) -> str:
    head: list[str | tuple[str, str]] = [
        f"dead letter {letter.id}",
        ("destination", letter.destination),
        ("severity", letter.severity.label),
        ("created", f"{_utc(letter.created)} ({format_age(now - letter.created)} ago)"),
        ("failed", f"{_utc(letter.failed)} ({format_age(now - letter.failed)} ago)"),
        ("attempts", str(letter.attempts)),
        ("error", letter.error),
    ]
    return _fields(head, letter.delivery)


def _fields(head: Sequence[str | tuple[str, str]], delivery: Delivery) -> str:
    n = delivery.notification
    mentions = delivery.mentions
    pairs: list[str | tuple[str, str]] = [
        *head,
        ("kind", n.kind.value),
        ("rule", n.rule),
        ("key", n.key),
        ("title", n.title),
        ("description", n.description or "-"),
        ("source", n.source),
        ("path", n.path or "-"),
        ("host", n.host),
        ("time", _utc(n.time)),
        ("count", str(n.count)),
        ("style", delivery.style.value),
        (
            "mentions",
            f"roles: {', '.join(mentions.roles) or '-'}; users: {', '.join(mentions.users) or '-'}; "
            f"everyone: {'yes' if mentions.everyone else 'no'}",
        ),
        ("captures", "".join(f"\n{k}: {v}" for k, v in n.captures.items()) or "-"),
        ("fields", "".join(f"\n{f.name}: {f.value}" for f in n.fields) or "-"),
        ("line", "\n" + n.line if n.line else "-"),
    ]
    return "\n".join(_field(pair) for pair in pairs)


def _field(pair: str | tuple[str, str]) -> str:
    if isinstance(pair, str):
        return _printable(pair)
    name, value = pair
    text = _printable(value, keep_newlines=True).replace("\n", "\n    ")
    return f"  {name}:{text}" if text.startswith("\n") else f"  {name + ':':<13} {text}"

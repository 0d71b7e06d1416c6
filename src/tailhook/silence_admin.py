"""``tailhook silence``: add, list and expire silences, also while the daemon runs.

The commands work on the spool's file through ``spool_admin.connect`` (an
existing spool of the current schema, never created or migrated here), in
``BEGIN IMMEDIATE`` transactions. The daemon notices the change (``PRAGMA
data_version``) and takes the stored silences as they are now: an added one
holds from its start, an expired one ends, and its note of what it held is
sent by the daemon (see ``tailhook.silences`` and invariant 8 of
``tailhook.spool``).

- ``add`` stores a silence from now until ``--for``/``--until``; its id is
  ``cli:<n>``. Silences over for a week whose note is sent are deleted then.
- ``list`` shows the silences on now or to come: the config's (with ``-c``)
  and the stored ones, with what each has held so far (what the daemon last
  stored with its commits).
- ``expire`` ends a stored silence now. A silence of the config file ends as
  the config says: it is changed there.

Functions take the time as ``now``; what goes wrong is ``SpoolAdminError``
(exit 1), a usage error ``SilenceUsageError`` (exit 2).
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tailhook.config import WEEKDAYS, Config, SilenceConfig
from tailhook.events import Severity
from tailhook.silences import Silence, format_span
from tailhook.spool import read_held, read_silences, silence_columns, silence_from_row
from tailhook.spool_admin import SpoolAdminError, format_age, immediate, snapshot

__all__ = [
    "PRUNED_AFTER_S",
    "Listed",
    "SilenceUsageError",
    "add",
    "check_names",
    "expire",
    "listed_json",
    "listing",
    "parse_until",
    "render_added",
    "render_listing",
    "run_add",
    "run_expire",
    "run_list",
]

PRUNED_AFTER_S = 7 * 86400.0
"""``add`` deletes stored silences over for this long whose note is sent."""


class SilenceUsageError(Exception):
    """The command line asks for something that cannot be: a usage error (exit 2)."""


@dataclass(frozen=True, slots=True)
class Listed:
    """A silence as ``list`` shows it: on now (``window``) or to come (``upcoming``), and what it held."""

    silence: Silence
    origin: str
    """``config`` or ``cli``."""
    window: tuple[float, float] | None
    upcoming: tuple[float, float] | None
    held: int


# ── input ───────────────────────────────────────────────────────────────────

_CLOCK_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def parse_until(text: str, *, now: float) -> float:
    """Seconds since the epoch of ``--until``: ISO 8601 (without an offset: local time), or ``HH:MM`` next."""
    text = text.strip()
    clock = _CLOCK_TIME.fullmatch(text)
    if clock is not None:
        today = datetime.fromtimestamp(now)
        moment = today.replace(hour=int(clock.group(1)), minute=int(clock.group(2)), second=0, microsecond=0)
        if moment.timestamp() <= now:
            moment += timedelta(days=1)
        return moment.timestamp()
    try:
        until = datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise SilenceUsageError(
            f"--until {text!r} is not a time: write HH:MM (the next one) or ISO 8601, such as 2025-06-01T22:00+02:00"
        ) from None
    if until <= now:
        raise SilenceUsageError(f"--until {text!r} is not in the future")
    return until


def check_names(config: Config, *, rules: Sequence[str], sources: Sequence[str]) -> None:
    """A rule or source the config does not know is a usage error: such a silence would hold nothing."""
    known_rules = {rule.name for rule in config.rules}
    known_sources = {source.name for source in config.sources}
    for name in rules:
        if name not in known_rules:
            raise SilenceUsageError(f"--rule {name!r}: no rule of {config.path} is named so")
    for name in sources:
        if name not in known_sources:
            raise SilenceUsageError(f"--source {name!r}: no source of {config.path} is named so")


# ── writing ─────────────────────────────────────────────────────────────────


def add(db: sqlite3.Connection, silence: Silence, *, now: float) -> Silence:
    """Store *silence* (its id is ignored); the stored one, with its ``cli:<n>`` id."""
    columns = silence_columns(silence)
    with immediate(db):
        db.execute(
            "DELETE FROM silences WHERE (ends < :before OR expired < :before) "
            "AND 'cli:' || id NOT IN (SELECT silence FROM silence_held)",
            {"before": now - PRUNED_AFTER_S},
        )
        (row_id,) = db.execute(
            "INSERT INTO silences (created, reason, rules, sources, hosts, severities, starts, ends, expired) "
            "VALUES (:created, :reason, :rules, :sources, :hosts, :severities, :starts, :ends, :expired) RETURNING id",
            {"created": now, **columns},
        ).fetchone()
        return _stored(db, row_id)


def expire(db: sqlite3.Connection, silence_id: str, *, now: float, config: Config | None = None) -> Silence:
    """End the stored silence *silence_id* (``cli:<n>`` or ``<n>``) now; the silence as it is then."""
    if silence_id.startswith("config:"):
        where = _config_place(config, silence_id)
        raise SpoolAdminError(f"silence {silence_id} comes from the config file{where}; change or remove it there")
    number = silence_id.removeprefix("cli:")
    if not number.isdigit():
        raise SilenceUsageError(f"{silence_id!r} is not a silence id (cli:<n>, as `tailhook silence list` shows)")
    row_id = int(number)
    with immediate(db):
        changed = db.execute(
            "UPDATE silences SET expired = :now WHERE id = :id AND expired IS NULL AND (ends IS NULL OR ends > :now)",
            {"now": now, "id": row_id},
        ).rowcount
        silence = _stored(db, row_id) if _exists(db, row_id) else None
    if silence is None:
        raise SpoolAdminError(f"no silence cli:{row_id}")
    if not changed:
        over = min(t for t in (silence.ends, silence.expired) if t is not None)
        raise SpoolAdminError(f"silence cli:{row_id} is already over (since {_local(over)})")
    return silence


def _config_place(config: Config | None, silence_id: str) -> str:
    name = silence_id.removeprefix("config:")
    for silence in config.silences if config else ():
        if silence.name == name:
            return f" ({silence.file}:{silence.line})"
    return ""


def _exists(db: sqlite3.Connection, row_id: int) -> bool:
    return db.execute("SELECT 1 FROM silences WHERE id = ?", (row_id,)).fetchone() is not None


def _stored(db: sqlite3.Connection, row_id: int) -> Silence:
    row = db.execute(
        "SELECT id, reason, rules, sources, hosts, severities, starts, ends, expired FROM silences WHERE id = ?",
        (row_id,),
    ).fetchone()
    return silence_from_row(row)


# ── reading ─────────────────────────────────────────────────────────────────


def listing(db: sqlite3.Connection, configured: Sequence[SilenceConfig], *, now: float) -> list[Listed]:
    """The silences on now or to come: the config's first, then the stored ones, oldest first."""
    with snapshot(db):
        stored = read_silences(db, now)
        held: dict[str, int] = {}
        for state in read_held(db):
            held[state.silence] = held.get(state.silence, 0) + state.total
    out = []
    everything = [(Silence.from_config(c), "config") for c in configured] + [(s, "cli") for s in stored]
    for silence, origin in everything:
        window, upcoming = silence.window_at(now), silence.next_window(now)
        if window is not None or upcoming is not None:
            out.append(Listed(silence, origin, window, upcoming, held.get(silence.id, 0)))
    return out


# ── text for people, JSON for machines ──────────────────────────────────────


def _local(moment: float) -> str:
    """A moment in the local time of this host, with its offset: what an operator reads."""
    return datetime.fromtimestamp(moment).astimezone().strftime("%Y-%m-%d %H:%M %z")


def _state(item: Listed, *, now: float) -> str:
    if item.window is not None:
        end = item.window[1]
        return "on, until expired" if end == float("inf") else f"on, ends in {format_age(end - now)}"
    assert item.upcoming is not None
    return f"starts in {format_age(item.upcoming[0] - now)}"


def render_added(silence: Silence, *, now: float) -> str:
    assert silence.starts is not None
    until = "until expired" if silence.ends is None else f"until {_local(silence.ends)}"
    length = "" if silence.ends is None else f" ({format_span(silence.ends - now)})"
    return (
        f"silence {silence.id} added: {silence.describe()}; {until}{length}: {silence.reason}\n"
        f"end it early with: tailhook silence expire {silence.id}"
    )


def render_listing(items: Sequence[Listed], *, now: float) -> str:
    if not items:
        return "no silence is on or to come"
    headers = ("ID", "STATE", "HELD", "HOLDS", "WHEN", "REASON")
    rows = [
        (
            item.silence.id,
            _state(item, now=now),
            str(item.held),
            item.silence.describe(),
            _when(item.silence),
            item.silence.reason or "-",
        )
        for item in items
    ]
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
             for row in (headers, *rows)]  # fmt: skip
    return "\n".join(lines)


def _when(silence: Silence) -> str:
    if silence.schedule is not None:
        return silence.when()
    assert silence.starts is not None
    end = "expired" if silence.ends is None else _local(silence.ends)
    return f"{_local(silence.starts)} to {end}"


def listed_json(item: Listed) -> dict[str, Any]:
    s = item.silence
    schedule = s.schedule
    return {
        "id": s.id,
        "origin": item.origin,
        "reason": s.reason,
        "rules": None if s.rules is None else sorted(s.rules),
        "sources": None if s.sources is None else sorted(s.sources),
        "hosts": None if s.hosts is None else sorted(s.hosts),
        "severities": None if s.severities is None else _labels(s.severities),
        "starts": s.starts,
        "ends": s.ends,
        "expired": s.expired,
        "schedule": None
        if schedule is None
        else {
            "days": [WEEKDAYS[d] for d in sorted(schedule.days)],
            "from": f"{schedule.starts // 60:02d}:{schedule.starts % 60:02d}",
            "until": f"{schedule.ends // 60:02d}:{schedule.ends % 60:02d}",
            "timezone": schedule.timezone,
        },
        "active": item.window is not None,
        "window": None if item.window is None else _span_json(item.window),
        "next": None if item.upcoming is None else _span_json(item.upcoming),
        "held": item.held,
    }


def _labels(severities: frozenset[Severity]) -> list[str]:
    return [s.label for s in sorted(severities, reverse=True)]


def _span_json(span: tuple[float, float]) -> dict[str, float | None]:
    start, end = span
    return {"start": start, "end": None if end == float("inf") else end}


# ── the commands ────────────────────────────────────────────────────────────


def run_add(db: sqlite3.Connection, args: argparse.Namespace, config: Config | None, now: float) -> str:
    """``tailhook silence add``: what to print. *config* is ``None`` with ``--state-dir``."""
    if config is not None:
        check_names(config, rules=args.rule or (), sources=args.source or ())
    ends = now + args.duration if args.duration is not None else parse_until(args.until, now=now)
    silence = add(
        db,
        Silence(
            id="cli:new",
            reason=args.reason,
            rules=frozenset(args.rule) if args.rule else None,
            sources=frozenset(args.source) if args.source else None,
            hosts=frozenset(args.host) if args.host else None,
            severities=frozenset(args.severity) if args.severity else None,
            starts=now,
            ends=ends,
        ),
        now=now,
    )
    if args.json:
        return _json(listed_json(Listed(silence, "cli", silence.window_at(now), None, 0)))
    return render_added(silence, now=now)


def run_list(db: sqlite3.Connection, args: argparse.Namespace, config: Config | None, now: float) -> str:
    """``tailhook silence list``."""
    items = listing(db, config.silences if config else (), now=now)
    return _json([listed_json(item) for item in items]) if args.json else render_listing(items, now=now)


def run_expire(db: sqlite3.Connection, args: argparse.Namespace, config: Config | None, now: float) -> str:
    """``tailhook silence expire ID``."""
    silence = expire(db, args.id, now=now, config=config)
    assert silence.starts is not None
    return (
        f"silence {silence.id} expired after {format_span(now - silence.starts)}; "
        "the daemon sends its note of what it held"
    )


def _json(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)

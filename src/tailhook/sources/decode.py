r"""Framing: the raw lines of one file become records, the log events rules see.

The file source splits a file at newlines, decodes each line and drops a
trailing CR; every such raw line, with its byte offsets, goes through the
``Framer`` of its file. Pure and synchronous: no I/O, no threads, and time is
the ``now`` argument (seconds, on the clock the caller uses for every call).

Formats
-------

``plain``
    The text as it is, no fields. Without multiline this is one object per
    line and nothing held, so the file source may skip the framer.

``cri``
    Kubernetes container logs as the CRI runtimes write them::

        2026-11-23T10:00:00.123456789Z stdout F hello

    Timestamp, stream (``stdout``/``stderr``), tags (``F`` full or ``P``
    partial, then optional ``:``-separated tags), message (may be empty). The
    runtime splits a long line into ``P`` lines ended by one ``F`` line; they
    are joined per stream, since stdout and stderr partials interleave. Fields:
    ``stream`` and ``logtime`` (the timestamp text of the first line).

``json``
    One JSON object per line. The text is the value at ``message_key`` (a
    string as it is, anything else as compact JSON); every other top-level key
    is a field (strings as they are, anything else as compact JSON). With
    ``message_key="log"`` and a ``stream`` key (Docker's json-file format,
    ``{"log":"hello\n","stream":"stdout","time":"..."}``), one trailing
    ``\n`` (and a CR before it) is dropped, and entries whose ``log`` has no
    ``\n`` are partials of a longer line, joined per stream like CRI's.

A line not in the declared format passes as a plain record, counted in
``malformed``.

Multiline
---------

Applied to the records a format produces, separately per ``stream`` field
(so interleaved stdout and stderr traces do not mix). Patterns are tried at
the start of the text (``re.match``: a leading ``^`` is implied).

- ``start``: a matching record opens an event; other records join the open
  event, or stand alone when none is open.
- ``continuation``: a matching record joins the open event; any other record
  opens a new one.

Lines are joined with ``\n``. An event is given out when the next one opens,
when it has ``max_lines`` lines (the next line then opens a fresh event even
in ``start`` mode), ``timeout`` seconds after its last line (``due``; ``feed``
also gives out whatever is due), or at ``flush``. Its fields, ``logtime`` and
``start`` are those of its first line, ``end`` that of its last.

Typical settings::

    # Application logs whose entries begin with a timestamp (the common case):
    # a traceback or a Java stack trace continues the entry that logged it.
    start: '\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}'

    # A bare Python traceback (an uncaught exception on stderr). "Traceback"
    # continues the line before it if that came less than timeout earlier:
    # usually the message logged with the exception.
    continuation: '\s|$|Traceback|During handling|The above exception|[\w.]+(Error|Exception)(:|$)'

    # A bare Java stack trace: "Exception in thread ..." opens it; "at",
    # "... 2 more" and "Suppressed:" lines are indented.
    continuation: '\s|Caused by:'

Invariants
----------

- Every raw line fed is part of exactly one record; ``start``..``end`` of a
  record covers all its raw lines, including those whose text was dropped.
- ``held_from()`` is the start of the earliest raw line held inside the
  framer. The file source never checkpoints past it, so a crash loses nothing
  held: after a restart those lines are fed again. Lines past that offset that
  were already given out (another stream's records, or the tail of a record
  that straddles it) are given out again: at least once, never lost.
- Memory is bounded: a joined text keeps at most ``max_bytes`` characters
  (characters, not UTF-8 bytes: ``len`` is free, encoding every piece is not;
  for ASCII they are the same). What is over is cut, ends in ``CUT_MARKER``,
  is counted in ``cut``, and the rest of its lines are consumed but dropped.
  A partial line waits at most ``partial_timeout`` seconds for the rest of it
  (a CRI-O container may write a prompt with no newline and wait); then what
  came is given out, and the rest, if it ever comes, is a record of its own.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

__all__ = ["CUT_MARKER", "Format", "Framer", "FramerCounts", "MultilineSettings", "Record"]

CUT_MARKER = " …[line cut: longer than max_line_bytes]"

Format = Literal["plain", "cri", "json"]

_EMPTY: Mapping[str, str] = MappingProxyType({})
_STREAMS = frozenset({"stdout", "stderr"})
_TAGS = frozenset({"F", "P"})


@dataclass(frozen=True, slots=True)
class Record:
    """One log event as the rules see it: one raw line, or several joined."""

    text: str
    fields: Mapping[str, str]
    """Values beyond the text, for templates: ``stream``, ``logtime``, JSON keys."""
    start: int
    """Byte offset in the file where the record's first raw line starts."""
    end: int
    """Byte offset just past the newline of the record's last raw line."""


_new = object.__new__
_set_text = Record.__dict__["text"].__set__
_set_fields = Record.__dict__["fields"].__set__
_set_start = Record.__dict__["start"].__set__
_set_end = Record.__dict__["end"].__set__


def _record(text: str, fields: Mapping[str, str], start: int, end: int) -> Record:
    """``Record(text, fields, start, end)`` in half the time, for the one made per line.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``;
    setting the slots directly skips that lookup. Same object, same fields.
    """
    record = _new(Record)
    _set_text(record, text)
    _set_fields(record, fields)
    _set_start(record, start)
    _set_end(record, end)
    return record


@dataclass(frozen=True, slots=True)
class MultilineSettings:
    """How records are grouped into events; exactly one of ``start`` and ``continuation``."""

    start: re.Pattern[str] | None = None
    """A record matching this (at its start) opens an event."""
    continuation: re.Pattern[str] | None = None
    """A record matching this (at its start) continues the open event."""
    max_lines: int = 200
    timeout: float = 1.0
    """Seconds after its last line that an event is given out."""

    def __post_init__(self) -> None:
        if (self.start is None) == (self.continuation is None):
            raise ValueError("multiline needs exactly one of start and continuation")
        if self.max_lines < 1:
            raise ValueError(f"multiline max_lines must be at least 1, not {self.max_lines}")
        if not self.timeout >= 0:
            raise ValueError(f"multiline timeout must be 0 or more seconds, not {self.timeout}")


@dataclass(slots=True)
class _Joining:
    """A record being put together: the partials of a long line or the lines of an event."""

    separator: str
    fields: Mapping[str, str]
    start: int
    end: int = 0
    last: float = 0.0
    """When its last raw line was fed."""
    lines: int = 0
    size: int = 0
    """Characters in ``parts``."""
    parts: list[str] = field(default_factory=list)
    cut: bool = False

    def add(self, text: str, end: int, now: float, limit: int) -> None:
        """Take one more piece; past *limit* characters keep the head, then only count lines."""
        self.end = end
        self.last = now
        if self.lines:
            text = self.separator + text
        self.lines += 1
        if self.cut:
            return
        room = limit - self.size
        if len(text) > room:
            text = text[: max(room, 0)]
            self.cut = True
        self.parts.append(text)
        self.size += len(text)


@dataclass(slots=True)
class FramerCounts:
    """What framing met; a file source hands one object to every framer of a path, so the counts
    outlive the framer of a rotated file."""

    malformed: int = 0
    """Lines not in the declared format, passed on as plain records."""
    cut: int = 0
    """Texts cut at ``max_bytes`` (a line cut while joining partials and again in its event counts twice)."""


class Framer:
    """Turns the raw lines of one file into records; one per followed file."""

    def __init__(
        self,
        format: Format,
        *,
        message_key: str = "message",
        multiline: MultilineSettings | None = None,
        max_bytes: int = 65536,
        partial_timeout: float = 5.0,
        counts: FramerCounts | None = None,
    ) -> None:
        """*max_bytes* bounds a joined text, in characters; *partial_timeout* is in seconds; what it
        meets is counted in *counts* (default: its own)."""
        decoders: dict[str, Callable[[str, int, int, float], Record | None]] = {
            "plain": self._plain,
            "cri": self._cri,
            "json": self._json,
        }
        if format not in decoders:
            raise ValueError(f"unknown format {format!r}; expected plain, cri or json")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, not {max_bytes}")
        if not partial_timeout >= 0:
            raise ValueError(f"partial_timeout must be 0 or more seconds, not {partial_timeout}")
        self.format = format
        self.message_key = message_key
        self.multiline = multiline
        self.max_bytes = max_bytes
        self.partial_timeout = partial_timeout
        self.counts = FramerCounts() if counts is None else counts
        self._decode = decoders[format]
        self._simple = format == "plain" and multiline is None
        self._docker = message_key == "log"
        self._partials: dict[str, _Joining] = {}
        """Partial lines waiting for their end, by stream."""
        self._events: dict[str, _Joining] = {}
        """Open multiline events, by stream."""
        self._overflow: dict[str, float] = {}
        """Streams whose last event was given out at max_lines, and when: their next line continues it."""
        self._check_at = math.inf
        """No timeout passes before this: a lower bound of ``deadline()``, so ``feed`` checks cheaply."""

    # ── the interface ───────────────────────────────────────────────────────

    def feed(self, text: str, start: int, end: int, now: float) -> list[Record]:
        """One raw line in (it spans *start*..*end* in the file); the records it completes out.

        Whatever has become due is given out first, so a busy file still gives
        out the events of a quiet stream.
        """
        if self._simple:
            return [_record(text, _EMPTY, start, end)]
        out = self.due(now) if now >= self._check_at else []
        was_due = bool(out)
        record = self._decode(text, start, end, now)
        if record is not None:
            self._group(record, now, out)
            if was_due:
                out.sort(key=_start)  # what was due may start after what this line completes
        return out

    def due(self, now: float) -> list[Record]:
        """Records whose timeout has passed by *now*, in file order."""
        out: list[Record] = []
        for stream, joining in list(self._partials.items()):
            if now >= joining.last + self.partial_timeout:
                del self._partials[stream]
                self._group(self._finish(joining), joining.last, out)
        if self.multiline is not None:
            for stream, event in list(self._events.items()):
                if now >= event.last + self.multiline.timeout:
                    del self._events[stream]
                    out.append(self._finish(event))
            for stream, when in list(self._overflow.items()):
                if now >= when + self.multiline.timeout:
                    del self._overflow[stream]
        deadline = self.deadline()
        self._check_at = math.inf if deadline is None else deadline
        out.sort(key=_start)
        return out

    def deadline(self) -> float | None:
        """The earliest time ``due`` gives something out, or None while nothing waits."""
        times = [joining.last + self.partial_timeout for joining in self._partials.values()]
        if self.multiline is not None:
            times.extend(event.last + self.multiline.timeout for event in self._events.values())
        return min(times, default=None)

    def held_from(self) -> int | None:
        """The start offset of the earliest raw line held inside, or None: never checkpoint past it."""
        starts = [joining.start for joining in self._partials.values()]
        starts.extend(event.start for event in self._events.values())
        return min(starts, default=None)

    def flush(self) -> list[Record]:
        """Everything held, in file order: the file was closed, rotated away, or the daemon stops."""
        out: list[Record] = []
        for joining in sorted(self._partials.values(), key=lambda joining: joining.start):
            self._group(self._finish(joining), joining.last, out)
        self._partials.clear()
        out.extend(self._finish(event) for event in self._events.values())
        self._events.clear()
        self._overflow.clear()
        self._check_at = math.inf
        out.sort(key=_start)
        return out

    # ── formats ─────────────────────────────────────────────────────────────

    def _plain(self, text: str, start: int, end: int, now: float) -> Record:
        return _record(text, _EMPTY, start, end)

    @property
    def malformed(self) -> int:
        return self.counts.malformed

    @property
    def cut(self) -> int:
        return self.counts.cut

    def _malformed(self, text: str, start: int, end: int) -> Record:
        self.counts.malformed += 1
        return _record(text, _EMPTY, start, end)

    def _cri(self, text: str, start: int, end: int, now: float) -> Record | None:
        parts = text.split(" ", 3)
        if len(parts) < 3:
            return self._malformed(text, start, end)
        logtime, stream, tags = parts[0], parts[1], parts[2]
        if stream not in _STREAMS or len(logtime) < 20 or logtime[4] != "-" or logtime[10] != "T":
            return self._malformed(text, start, end)
        tag = tags if len(tags) == 1 else tags.partition(":")[0]
        if tag not in _TAGS:
            return self._malformed(text, start, end)
        message = parts[3] if len(parts) == 4 else ""
        fields = {"stream": stream, "logtime": logtime}
        if tag == "F" and stream not in self._partials:  # the common case, kept short
            return _record(message, fields, start, end)
        return self._piece(message, fields, start, end, now, complete=tag == "F")

    def _json(self, text: str, start: int, end: int, now: float) -> Record | None:
        try:
            entry = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            return self._malformed(text, start, end)
        if not isinstance(entry, dict) or self.message_key not in entry:
            return self._malformed(text, start, end)
        value = entry.pop(self.message_key)
        fields = {key: item if isinstance(item, str) else _compact(item) for key, item in entry.items()}
        if not isinstance(value, str):
            return _record(_compact(value), fields, start, end)
        if not self._docker or "stream" not in fields:
            return _record(value, fields, start, end)
        complete = value.endswith("\n")
        if complete:
            value = value[:-1].removesuffix("\r")
            if fields["stream"] not in self._partials:  # the common case, kept short
                return _record(value, fields, start, end)
        return self._piece(value, fields, start, end, now, complete=complete)

    def _piece(
        self, message: str, fields: Mapping[str, str], start: int, end: int, now: float, *, complete: bool
    ) -> Record | None:
        """One piece of a container's line: the whole line, or a partial joined per stream."""
        stream = fields["stream"]
        joining = self._partials.get(stream)
        if joining is None:
            if complete:
                return _record(message, fields, start, end)
            joining = self._partials[stream] = _Joining("", fields, start)
            self._check_at = min(self._check_at, now + self.partial_timeout)
        joining.add(message, end, now, self.max_bytes)
        if not complete:
            return None
        del self._partials[stream]
        return self._finish(joining)

    # ── multiline ───────────────────────────────────────────────────────────

    def _group(self, record: Record, now: float, out: list[Record]) -> None:
        """Put *record* into its stream's event; append to *out* what that gives out."""
        settings = self.multiline
        if settings is None:
            out.append(record)
            return
        stream = record.fields.get("stream", "")
        event = self._events.get(stream)
        if settings.start is not None:
            opens = settings.start.match(record.text) is not None
            overflowed = now < self._overflow.pop(stream, -math.inf) + settings.timeout
            if not opens and event is None and not overflowed:
                out.append(record)
                return
        else:
            assert settings.continuation is not None  # MultilineSettings made sure
            opens = settings.continuation.match(record.text) is None
        if event is not None and opens:
            out.append(self._finish(event))
            event = None
        if event is None:
            event = self._events[stream] = _Joining("\n", record.fields, record.start)
            self._check_at = min(self._check_at, now + settings.timeout)
        event.add(record.text, record.end, now, self.max_bytes)
        if event.lines >= settings.max_lines:
            del self._events[stream]
            self._overflow[stream] = now
            out.append(self._finish(event))

    def _finish(self, joining: _Joining) -> Record:
        text = "".join(joining.parts)
        if joining.cut:
            self.counts.cut += 1
            text += CUT_MARKER
        return _record(text, joining.fields, joining.start, joining.end)


def _start(record: Record) -> int:
    return record.start


def _compact(value: Any) -> str:
    """*value* as compact JSON text."""
    if type(value) is int:  # the commonest field that is not a string (and not a bool)
        return str(value)
    return _encode(value)


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

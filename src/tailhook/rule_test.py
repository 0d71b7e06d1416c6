"""``tailhook test``: rules tried on log files, offline, as the daemon would match them.

Per rule: lines matched, a few sample matches with captures, rendered title
and storm key; lines no rule took (``--unmatched``); lines/s and MB/s. With an
expectation file (the shape of ``tests/fixtures/expected.yaml``), every
difference between what the rules find and what the file says is reported,
and the command fails: teams test their rule files in their own CI this way.

Files are cut into lines as the file source cuts them (``LineCutter``: a
line past its source's ``max_line_bytes`` is cut and marked) and scanned as
the file source scans them: only lines some rule may match become text.
A file on disk is matched in worker processes, one per CPU, each taking a
span at a time (large ones first, smaller ones as the end nears, so that the
workers finish together) and reading it itself; the spans are merged in
order, so the report and its digest are the same with any number of them.
gzip files (rotated logs) are read as they are; ``-`` is standard input.
"""

from __future__ import annotations

import calendar
import contextlib
import dataclasses
import fcntl
import fnmatch
import functools
import glob
import gzip
import hashlib
import multiprocessing
import os
import re
import signal
import stat
import sys
import time
from collections import Counter
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.queues import SimpleQueue
from pathlib import Path
from typing import IO, Any, cast

import yaml

from tailhook import budget
from tailhook.config import DEFAULT_MAX_LINE_BYTES, Config, FileSourceConfig, RuleConfig, StormConfig
from tailhook.events import Event, Kind, Line, Notification
from tailhook.rules import Hit, RuleSet, decode_line
from tailhook.sources.decode import CUT_MARKER
from tailhook.sources.reader import LineCutter, RawLine, Run
from tailhook.storm import StormControl

__all__ = [
    "READ_BYTES",
    "Expectation",
    "LogFile",
    "Match",
    "Report",
    "StormReplay",
    "cache_folder",
    "jobs_available",
    "line_time",
    "load_expectation",
    "run",
]

READ_BYTES = 256 << 10
"""What one read of a file takes: a stretch of lines, matched in one go. Small enough to stay in
the CPU's cache while the engine, then Python, go over it, and for the memory it is read into to
be reused rather than mapped anew (each new page costs a fault) read after read."""
SPANS_PER_JOB = 2
"""Each span takes 1 / (workers × ``SPANS_PER_JOB``) of what is left of the file, ``MIN_SPAN_READS``
reads at least: spans shrink as the file's end nears, so that the workers finish together (one
handed a large span last would keep the others waiting), and are few (each is a task to hand out
and a result to merge, and while a worker's span is being merged the CPU it needs is taken)."""
MIN_SPAN_READS = 8
"""The smallest span, in ``READ_BYTES``: the last ones, some ten milliseconds of work each."""
MAX_SPAN_BYTES = 64 << 20
"""The most one span holds, so that a worker's result (its matches) stays bounded on any file."""
ANY_SOURCE = ""
"""The source of lines whose source is not known: every rule applies, whatever its ``sources:``."""


@dataclass(frozen=True, slots=True)
class LogFile:
    """A file to read (``-``: standard input), shown as *name*, whose lines come from *source*."""

    path: str
    name: str
    source: str = ANY_SOURCE
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    """Lines longer are cut there, as the file source of *source* cuts them."""


@dataclass(frozen=True, slots=True)
class Match:
    file: str
    line: int
    """1-based, within its file."""
    rule: str
    captures: dict[str, str]
    title: str
    key: str
    text: str

    def expected_form(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "rule": self.rule, "captures": self.captures, "title": self.title}


@dataclass(slots=True)
class RuleReport:
    name: str
    severity: str
    matched: int = 0
    samples: list[Match] = field(default_factory=list)


@dataclass(slots=True)
class Report:
    engine: str
    files: list[LogFile]
    rules: dict[str, RuleReport]
    lines: int = 0
    bytes: int = 0
    seconds: float = 0.0
    jobs: int = 1
    """Processes that matched."""
    cut_lines: int = 0
    matched_lines: int = 0
    over_budget: dict[str, int] = field(default_factory=dict)
    matches: list[Match] = field(default_factory=list)
    """Every match, when asked for (an expectation file compares them)."""
    storm: StormReplay | None = None
    """What storm control would have sent, when asked for."""
    digest: str = ""
    """sha256 of every match as ``"{n}\\t{rule}\\t{capture values}\\n"``, n counting lines across
    all files from 1, the values in the pattern's order joined by U+001F (a group that took no
    part: empty): the same digest from two matchers means the same matches."""

    def as_json(self) -> dict[str, Any]:
        seconds = max(self.seconds, 1e-9)
        return {
            "engine": self.engine,
            "files": [{"path": f.name, "source": f.source or None} for f in self.files],
            "lines": self.lines,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 6),
            "lines_per_second": round(self.lines / seconds),
            "megabytes_per_second": round(self.bytes / 1e6 / seconds, 3),
            "jobs": self.jobs,
            "matched_lines": self.matched_lines,
            "cut_lines": self.cut_lines,
            "over_budget": self.over_budget,
            "rules": [
                {
                    "name": r.name,
                    "severity": r.severity,
                    "matched": r.matched,
                    "samples": [_sample_json(m) for m in r.samples],
                }
                for r in self.rules.values()
            ],
            "digest": self.digest,
            **({"storm": self.storm.as_json()} if self.storm is not None else {}),
        }


def _sample_json(match: Match) -> dict[str, Any]:
    return {
        "file": match.file,
        "line": match.line,
        "text": match.text,
        "captures": match.captures,
        "title": match.title,
        "key": match.key,
    }


def run(
    rules: Sequence[RuleConfig],
    files: Sequence[LogFile],
    *,
    host: str,
    engine: str,
    line_budget_s: float,
    samples: int = 3,
    keep_matches: bool = False,
    unmatched: IO[str] | None = None,
    storm: StormReplay | None = None,
    jobs: int = 1,
    cache: Path | None = None,
) -> Report:
    """Match *files* against *rules*; with *unmatched*, write each line no rule took to it; with
    *storm*, pass every match through storm control on the replay's clock.

    *jobs* processes match at once (``jobs_available()``: one per CPU); keeping every match,
    unmatched lines or a storm replay need each match in this process, so they take one.
    *cache*: a folder where compiled rules are kept for the next run (``cache_folder()``).
    """
    sets = _RuleSets(rules, host=host, engine=engine, line_budget_s=line_budget_s, cache=cache)
    sets.prepare({f.source for f in files})
    inline = keep_matches or unmatched is not None or storm is not None
    matcher = _Matcher(sets, samples=samples, events=keep_matches or storm is not None, taken=unmatched is not None)
    report = Report(
        engine=sets.engine,
        files=list(files),
        rules={r.name: RuleReport(r.name, r.severity.label) for r in rules if _applies(r, files)},
    )
    report.storm = storm
    reading = _Reading(report, sets, samples=samples, keep=keep_matches, unmatched=unmatched, storm=storm)
    started = time.perf_counter()
    with _Workers(matcher, 1 if inline else jobs) as workers:
        for log_file in files:
            reading.file(log_file, workers)
        report.jobs = workers.processes
    if storm is not None:
        storm.finish()
    report.over_budget = {k: v for k, v in reading.over_budget.items() if v}
    report.seconds = time.perf_counter() - started
    report.digest = reading.digest.hexdigest()
    return report


def cache_folder() -> Path:
    """Where ``tailhook test`` keeps compiled rules: ``$XDG_CACHE_HOME/tailhook`` (``~/.cache/tailhook``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tailhook"


def jobs_available() -> int:
    """The CPUs this process may run on: how many processes ``run`` should match with."""
    return len(os.sched_getaffinity(0))


def _applies(rule: RuleConfig, files: Sequence[LogFile]) -> bool:
    """Whether *rule* (enabled) sees the lines of any of *files* (those of no known source meet every rule)."""
    if not rule.enabled:
        return False
    return any(f.source == ANY_SOURCE or rule.sources is None or f.source in rule.sources for f in files)


Stretch = Iterable[Run | RawLine]
"""Lines read one after the other, as ``LineCutter`` gives them out: what a worker matches at a time."""


@dataclass(slots=True)
class _Found:
    """What the rules found in one stretch of lines; line numbers count from the stretch's first (1)."""

    lines: int = 0
    matched_lines: int = 0
    cut_lines: int = 0
    numbers: list[int] = field(default_factory=list)
    """The line of each match, in order."""
    entries: list[str] = field(default_factory=list)
    """Each match as the digest has it between its line's number and the newline: tab, rule, tab,
    capture values joined by U+001F. Written here, where the match is, so the reading process only
    puts each line's number in front (it alone knows the lines of the stretches before)."""
    matched: dict[str, int] = field(default_factory=dict)
    """Matches per rule."""
    firsts: list[tuple[int, str, str]] = field(default_factory=list)
    """Each rule's first matches in the stretch (as many as there are samples): line, rule, text."""
    events: list[tuple[int, Event]] = field(default_factory=list)
    """Every match as an event, when asked for (in the reading process only: events do not pickle)."""
    taken: list[int] = field(default_factory=list)
    """The lines some rule matched, when asked for."""
    over_budget: Counter[str] = field(default_factory=Counter)
    sampled: set[str] = field(default_factory=set)
    """The rules with all their samples in ``firsts``."""
    _samples: Counter[str] = field(default_factory=Counter)

    def sample(self, number: int, rule: str, text: str, samples: int) -> None:
        """Keep this match of *rule* as a sample (the rule has fewer than *samples* here)."""
        if samples:
            self.firsts.append((number, rule, text))
        self._samples[rule] += 1
        if self._samples[rule] >= samples:
            self.sampled.add(rule)

    def digest_text(self, before: int) -> str:
        """The digest's lines for these matches, the stretch coming after *before* lines."""
        return "".join([f"{before + n}{entry}\n" for n, entry in zip(self.numbers, self.entries, strict=True)])

    def __getstate__(self) -> dict[str, Any]:
        """For the way back from a worker: the entries as one text, which pickles many times faster
        than as thousands of strings (a line has no newline, so neither has an entry)."""
        state = {name: getattr(self, name) for name in self.__slots__}
        state["entries"] = "\n".join(self.entries)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        self.entries = state["entries"].split("\n") if state["entries"] else []


class _Matcher:
    """Matches stretches of lines, alike in the reading process and in workers: only the
    lines some rule may match (the engine's ``chunk``) are cut out of a run and decoded."""

    def __init__(self, sets: _RuleSets, *, samples: int, events: bool, taken: bool) -> None:
        self.sets = sets
        self.samples = samples
        self.events = events
        self.taken = taken

    def stretch(self, pieces: Stretch, source: str, path: str) -> _Found:
        ruleset = self.sets.for_source(source)
        name = source or "test"
        spent = Counter(ruleset.over_budget)
        found = _Found()
        with ruleset.watching():  # one timer for the stretch's searches
            for piece in pieces:
                if isinstance(piece, Run):
                    self._run(found, ruleset, piece.data, (name, path))
                else:
                    found.lines += 1
                    found.cut_lines += piece.cut
                    text = decode_line(piece.raw) + (CUT_MARKER if piece.cut else "")
                    hits = ruleset.hits(text, source=name)
                    if hits:
                        self._hits(found, found.lines, (text, name, path), hits)
        found.over_budget = Counter(ruleset.over_budget) - spent
        return found

    def _run(self, found: _Found, ruleset: RuleSet, data: bytes, where: tuple[str, str]) -> None:
        """The lines of *data* (whole lines of source and path *where*) that the rules match.

        ``RuleSet.candidates`` and ``RuleSet.confirm`` in one loop, with no lists between them: the
        engine names the lines some rule may match; each is cut out, decoded (``decode_line``) and
        given to its rules' regexes as ``confirm`` does, each search counted for ``budget.searches``
        under the watch ``stretch`` keeps. Only the lines that match are numbered (one pass over
        the run in all). Once a search of the rule set has run out of its budget, ``confirm``
        decides instead, which gives strained rules their smaller budgets: from the line where
        that happens (searched again there), and for every run after it.
        """
        name, path = where
        selection = ruleset.for_source(name)
        rules = selection.rules
        ends = selection.scanner.chunk(data)
        rfind = data.rfind
        number, at = found.lines, 0  # lines before offset at
        order = sorted(ends)
        done = 0
        if budget.watched(ruleset.line_budget_s) and not ruleset.over_budget:
            with budget.searches() as tally:
                for end in order:
                    start = rfind(b"\n", 0, end) + 1
                    text = data[start:end].decode("utf-8", "replace").removesuffix("\r")  # decode_line
                    hits: list[Hit] = []
                    for index in ends[end]:
                        rule = rules[index]
                        tally.number += 1
                        try:
                            match = rule.pattern.search(text)  # rule.find, inlined
                            if match is not None and rule.exclude is not None:
                                match = None if rule.exclude.search(text) is not None else match
                        except budget.Stopped:
                            break
                        if match is not None:
                            hits.append((rule, match))
                    else:
                        done += 1
                        if hits:
                            number += _newlines(data, at, start)
                            at = start
                            self._hits(found, number + 1, (text, name, path), hits)
                        continue
                    break  # a search ran out of budget: this line and the rest go to confirm
        if done < len(order):
            rest = [(rfind(b"\n", 0, end) + 1, end, ends[end]) for end in order[done:]]
            for start, text, hits in ruleset.confirm(data, rest, source=name):
                number += _newlines(data, at, start)
                at = start
                self._hits(found, number + 1, (text, name, path), hits)
        found.lines = number + _newlines(data, at, len(data))

    def _hits(self, found: _Found, number: int, line: tuple[str, str, str], hits: list[Hit]) -> None:
        """The *hits* in line *number*, whose text, source and path are *line*."""
        found.matched_lines += 1
        if self.taken:
            found.taken.append(number)
        numbers, entries, matched, sampled = found.numbers, found.entries, found.matched, found.sampled
        for rule, match in hits:
            name = rule.name
            values = match.groups("") if rule.named_only else match.groupdict("").values()
            numbers.append(number)
            entries.append(f"\t{name}\t{_SEPARATOR.join(values)}")
            matched[name] = matched.get(name, 0) + 1
            if name not in sampled:
                found.sample(number, name, line[0], self.samples)
            if self.events:
                text, source, path = line
                event = rule.event(Line(text, source, 0.0, path), match, host=self.sets.host)
                found.events.append((number, event))


_SEPARATOR = "\x1f"


def _newlines(data: bytes, start: int, end: int) -> int:
    """``data.count(b"\\n", start, end)``, faster: ``count`` looks at every byte in turn, where
    ``replace`` jumps from one newline to the next (``memchr``), copies and all."""
    part = data[start:end]
    return len(part) - len(part.replace(b"\n", b""))


def _serve(tasks: SimpleQueue[_Task], results: Connection, matcher: _Matcher) -> None:
    """A worker process: span after span from the reading process's *tasks* matched, and what was
    found (or the exception that stopped it) sent back on the worker's own pipe, until the reading
    process ends it. *matcher* is the reading process's, as it was when the worker forked."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the reading process's to handle
    while True:
        number, span, source, path = tasks.get()
        try:
            found: _Found | Exception = matcher.stretch(span.pieces(), source, path)
        except Exception as exc:
            found = exc
        results.send((number, found))


_Task = tuple[int, "_Span", str, str]
"""A span to match, numbered in the order of the file, with its source and path."""


@dataclass(frozen=True, slots=True)
class _Span:
    """Whole lines of a file on disk, from offset *start* to *end*: read by the process that matches them."""

    path: str
    start: int
    end: int
    max_line_bytes: int

    def pieces(self) -> Iterator[Run | RawLine]:
        """The span's lines, cut as the file source cuts them (a span starts at a line's start),
        ``READ_BYTES`` read at a time as they are matched."""
        cutter = LineCutter(self.max_line_bytes, offset=self.start, runs=True)
        with open(self.path, "rb") as file:
            for data in _reads(file.fileno(), self.start, self.end):
                yield from cutter.split(data)
        last = cutter.flush()
        if last is not None:
            yield last


def _reads(fd: int, at: int, end: int | None = None) -> Iterator[bytes]:
    """The bytes of the file *fd* from offset *at* to *end* (``None``: to its end), ``READ_BYTES`` or
    so at a time: each read ends just past a newline when there is one in its last ``_PROBE_BYTES``.
    ``LineCutter`` gives such a read out as one ``Run`` of the very bytes read, where a line the
    read cut in two would be held, and the next read's run copied to put that line in front."""
    while end is None or at < end:
        size = READ_BYTES if end is None else min(READ_BYTES, end - at)
        if end is None or at + size < end:
            probe_at = at + max(size - _PROBE_BYTES, 0)
            newline = os.pread(fd, at + size - probe_at, probe_at).rfind(b"\n")
            if newline >= 0:
                size = probe_at + newline + 1 - at
        data = os.pread(fd, size, at)
        if not data:
            return
        at += len(data)
        yield data


_PROBE_BYTES = 4096
"""How far back from its end ``_reads`` looks for a newline to end a read at."""

_RESULT_PIPE_BYTES = 1 << 20
"""What the pipe a worker sends its results on holds (as much as Linux lets a process ask for): a
worker writes a span's result, most often whole, and goes on to the next span while the reading
process, which may be merging, takes it in; in a pipe of 64 KiB it would wait for that."""


class _Workers:
    """Spans of files matched in worker processes, their results given back in order.

    The workers fork from this process once its rules are built (a worker
    inherits them: nothing is compiled again) and only when a second stretch
    comes, so a small file never starts one. They take spans from one queue,
    the next free one the next span, and each sends back what it found on a
    pipe of its own. A few spans per worker are handed out ahead of the one
    being merged: enough to keep every worker busy, with memory bounded. This
    thread alone hands out and takes back (``multiprocessing.Pool`` has three
    threads for it, contending for this process's CPU and its GIL, one of them
    polling while a result is on its way). The engines' scan holds no lock
    between processes, so on two CPUs two workers scan and decide at once.
    """

    AHEAD_PER_JOB = 2

    def __init__(self, matcher: _Matcher, jobs: int) -> None:
        self.matcher = matcher
        self.jobs = jobs
        self._tasks: SimpleQueue[_Task] | None = None
        self._workers: dict[Connection, multiprocessing.process.BaseProcess] = {}
        self._started = False

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        for results, process in self._workers.items():
            process.terminate()
            process.join()
            results.close()
        self._workers.clear()
        if self._tasks is not None:
            self._tasks.close()
            self._tasks = None

    @property
    def processes(self) -> int:
        """How many processes matched: the workers, once started."""
        return self.jobs if self._workers else 1

    def matched(self, spans: Iterator[_Span], source: str, path: str) -> Iterator[_Found]:
        """Each span's lines matched, in order."""
        if not self._started:  # the first span of all, here: a small file never forks
            self._started = True
            first = next(spans, None)
            if first is None:
                return
            yield self.matcher.stretch(first.pieces(), source, path)
        back: dict[int, _Found] = {}
        """Results that came back before their turn."""
        sent = given = 0
        for span in spans:
            while sent - given > self.jobs * self.AHEAD_PER_JOB:
                given = yield from self._given(back, given)
            self._start().put((sent, span, source, path))
            sent += 1
        while given < sent:
            given = yield from self._given(back, given)

    def _given(self, back: dict[int, _Found], given: int) -> Generator[_Found, None, int]:
        """The results in turn from span *given* on, once that one has come back (those that come
        with it wait in *back*); the span to give next."""
        while given not in back:
            for ready in wait(list(self._workers)):
                try:
                    number, found = cast(Connection, ready).recv()
                except EOFError:
                    raise RuntimeError("a worker process of tailhook test ended unexpectedly") from None
                if isinstance(found, BaseException):
                    raise found  # the worker's, as it stopped matching
                back[number] = found
        while given in back:
            yield back.pop(given)
            given += 1
        return given

    def _start(self) -> SimpleQueue[_Task]:
        """The queue of spans to match, the workers forked first if they are not yet (they inherit the
        matcher and its rules: nothing is pickled or compiled again)."""
        if self._tasks is None:
            forking = multiprocessing.get_context("fork")
            self._tasks = forking.SimpleQueue()
            for _ in range(self.jobs):
                here, there = forking.Pipe(duplex=False)
                with contextlib.suppress(OSError, AttributeError):  # F_SETPIPE_SZ: Linux only
                    fcntl.fcntl(there.fileno(), fcntl.F_SETPIPE_SZ, _RESULT_PIPE_BYTES)
                process = forking.Process(target=_serve, args=(self._tasks, there, self.matcher), daemon=True)
                process.start()
                there.close()
                self._workers[here] = process
        return self._tasks


class _Reading:
    """One ``run``: what it counts, keeps and prints as stretches come back matched."""

    def __init__(
        self,
        report: Report,
        sets: _RuleSets,
        *,
        samples: int,
        keep: bool,
        unmatched: IO[str] | None,
        storm: StormReplay | None,
    ) -> None:
        self.report = report
        self.sets = sets
        self.samples = samples
        self.keep = keep
        self.unmatched = unmatched
        self.storm = storm
        self.digest = hashlib.sha256()
        self.over_budget: Counter[str] = Counter()

    def file(self, log_file: LogFile, workers: _Workers) -> None:
        """Match one file: a file on disk in spans, by the workers when there are some (each reads
        its own span: no bytes travel between processes); a stream (standard input, gzip) here."""
        before = self.report.lines  # lines of the files before this one: the digest numbers lines across files
        path = "" if log_file.path == "-" else log_file.path
        counted = 0
        with _open(log_file.path) as opened:
            if workers.jobs > 1 and opened.on_disk:
                spans = self._spans(opened.stream, log_file, workers.jobs)
                for found in workers.matched(spans, log_file.source, path):
                    self._merge(log_file, found, (before + counted, counted))
                    counted += found.lines
            else:
                for pieces in self._stretches(opened, log_file):
                    found = workers.matcher.stretch(pieces, log_file.source, path)
                    self._merge(log_file, found, (before + counted, counted))
                    if self.unmatched is not None:
                        _write_unmatched(self.unmatched, log_file.name, pieces, counted, set(found.taken))
                    counted += found.lines
        self.report.lines += counted

    def _spans(self, stream: IO[bytes], log_file: LogFile, jobs: int) -> Iterator[_Span]:
        """The file as it is now in spans of whole lines: ``READ_BYTES`` first (a file no larger is
        matched before any worker starts), then shrinking ones (``SPANS_PER_JOB``)."""
        size = os.fstat(stream.fileno()).st_size
        start = 0
        while start < size:
            share = (size - start) // (jobs * SPANS_PER_JOB)
            each = min(max(share, MIN_SPAN_READS * READ_BYTES), MAX_SPAN_BYTES) if start else READ_BYTES
            end = _line_end(stream, min(start + each, size), size)
            self.report.bytes += end - start
            yield _Span(log_file.path, start, end, log_file.max_line_bytes)
            start = end

    def _stretches(self, opened: _Opened, log_file: LogFile) -> Iterator[Stretch]:
        """The file's lines, ``READ_BYTES`` at a time, cut as the file source cuts them."""
        cutter = LineCutter(log_file.max_line_bytes, runs=True)
        stream = opened.stream
        reads = _reads(stream.fileno(), 0) if opened.on_disk else iter(functools.partial(stream.read, READ_BYTES), b"")
        for data in reads:
            self.report.bytes += len(data)
            pieces = cutter.split(data)
            if pieces:
                yield pieces
        last = cutter.flush()
        if last is not None:
            yield [last]

    def _merge(self, log_file: LogFile, found: _Found, bases: tuple[int, int]) -> None:
        """*found* of a stretch after *bases* lines: of all files, and of this file."""
        overall, within = bases
        report = self.report
        report.matched_lines += found.matched_lines
        report.cut_lines += found.cut_lines
        self.over_budget.update(found.over_budget)
        self.digest.update(found.digest_text(overall).encode())
        for name, count in found.matched.items():
            report.rules[name].matched += count
        for number, name, text in found.firsts:
            if len(report.rules[name].samples) < self.samples:
                report.rules[name].samples.append(self._sample(log_file, within + number, name, text))
        for number, event in found.events:
            if self.storm is not None:
                self.storm.admit(event, overall + number)
            if self.keep:
                report.matches.append(_match(log_file, within + number, event))

    def _sample(self, log_file: LogFile, number: int, name: str, text: str) -> Match:
        """A rule's match, found again here (a worker found it first) and rendered."""
        source = log_file.source or "test"
        rule = next(r for r in self.sets.for_source(log_file.source).for_source(source).rules if r.name == name)
        found = rule.find(text)
        assert found is not None, "a line matched once matches again"
        line = Line(text, source, 0.0, "" if log_file.path == "-" else log_file.path)
        return _match(log_file, number, rule.event(line, found, host=self.sets.host))


def _match(log_file: LogFile, number: int, event: Event) -> Match:
    return Match(log_file.name, number, event.rule, dict(event.captures), event.title, event.key, event.line.text)


def _line_end(stream: IO[bytes], at: int, size: int) -> int:
    """Just past the first newline from offset *at* on; *size* when there is none."""
    while at < size:
        stream.seek(at)
        window = stream.read(64 * 1024)
        if not window:
            break
        newline = window.find(b"\n")
        if newline >= 0:
            return at + newline + 1
        at += len(window)
    return size


def _write_unmatched(out: IO[str], name: str, pieces: Stretch, before: int, taken: set[int]) -> None:
    number = before
    for piece in pieces:
        if isinstance(piece, Run):
            lines = piece.data.split(b"\n")
            lines.pop()  # a run ends with a newline
            texts: list[str] | Iterator[str] = (decode_line(raw) for raw in lines)
        else:
            texts = [decode_line(piece.raw) + (CUT_MARKER if piece.cut else "")]
        for text in texts:
            number += 1
            if number - before not in taken:
                out.write(f"{name}:{number}: {text}\n")


class _RuleSets:
    """One rule set for lines of known sources, one for lines whose source is not known."""

    def __init__(
        self, rules: Sequence[RuleConfig], *, host: str, engine: str, line_budget_s: float, cache: Path | None
    ) -> None:
        self._configs = rules
        self.host = host
        self._options: dict[str, Any] = {
            "host": host,
            "engine": engine,
            "line_budget_s": line_budget_s,
            "cache": cache,
        }
        self._known: RuleSet | None = None
        self._any: RuleSet | None = None

    @property
    def engine(self) -> str:
        return self._either().engine

    def _either(self) -> RuleSet:
        return self._known or self.for_source(ANY_SOURCE)

    def prepare(self, sources: set[str]) -> None:
        """Build every scanner before the clock starts (and before workers fork)."""
        for source in sources:
            self.for_source(source)

    def for_source(self, source: str) -> RuleSet:
        if source == ANY_SOURCE:
            if self._any is None:
                lifted = [dataclasses.replace(r, sources=None) for r in self._configs]
                self._any = RuleSet(lifted, sources=["test"], **self._options)
            return self._any
        if self._known is None:
            self._known = RuleSet(self._configs, **self._options)
        self._known.for_source(source)
        return self._known


@dataclass(frozen=True, slots=True)
class _Opened:
    stream: IO[bytes]
    raw: IO[bytes] | None = None
    """The file under a decompressing stream, closed with it."""

    def __enter__(self) -> _Opened:
        return self

    @property
    def on_disk(self) -> bool:
        """A regular file read as it is (not standard input, a pipe or a gzip file): it can be read in spans."""
        if self.raw is not None or self.stream is sys.stdin.buffer:
            return False
        return stat.S_ISREG(os.fstat(self.stream.fileno()).st_mode)

    def __exit__(self, *exc: object) -> None:
        if self.stream is not sys.stdin.buffer:
            self.stream.close()
        if self.raw is not None:
            self.raw.close()


def _open(path: str) -> _Opened:
    """The file's bytes; a gzip file's uncompressed bytes (known by its magic, not its name)."""
    if path == "-":
        return _Opened(sys.stdin.buffer)
    raw = open(path, "rb")  # noqa: SIM115 - closed by _Opened
    if raw.peek(2)[:2] == b"\x1f\x8b":
        return _Opened(cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb")), raw)
    return _Opened(raw)


# ── storm control, replayed ─────────────────────────────────────────────────


class StormReplay:
    """Storm control as the daemon runs it, on a replayed clock: each line at the time it names
    (ISO 8601, syslog, or common log format; a line naming none at the time of the line before),
    or, with *rate*, line n at n / *rate* seconds."""

    def __init__(self, default: StormConfig, *, host: str, rate: float | None = None, shown: int = 20) -> None:
        self.now = 0.0
        self.control = StormControl(default, host=host, clock=lambda: self.now, max_keys=1_000_000)
        self.rate = rate
        self.shown = shown
        self.sent: Counter[tuple[str, Kind]] = Counter()
        self.covered: Counter[str] = Counter()
        """Events each rule's notifications stand for (an alert 1, a digest its count)."""
        self.first: list[tuple[float, Notification]] = []

    def admit(self, event: Event, line_number: int) -> None:
        when = line_number / self.rate if self.rate else line_time(event.line.text)
        self.now = max(self.now, when if when is not None else self.now)
        for notification in self.control.admit(event):
            self._sent(notification)

    def finish(self) -> None:
        for notification in self.control.due(float("inf")):
            self._sent(notification)

    def _sent(self, notification: Notification) -> None:
        self.sent[notification.rule, notification.kind] += 1
        self.covered[notification.rule] += notification.count
        if len(self.first) < self.shown:
            self.first.append((self.now, notification))

    def as_json(self) -> dict[str, Any]:
        rules = sorted({rule for rule, _ in self.sent})
        return {
            "alerts": sum(n for (_, kind), n in self.sent.items() if kind is Kind.ALERT),
            "digests": sum(n for (_, kind), n in self.sent.items() if kind is Kind.DIGEST),
            "rules": {
                rule: {
                    "alerts": self.sent[rule, Kind.ALERT],
                    "digests": self.sent[rule, Kind.DIGEST],
                    "events": self.covered[rule],
                }
                for rule in rules
            },
            "first": [
                {
                    "at": round(at, 3),
                    "kind": n.kind.value,
                    "rule": n.rule,
                    "key": n.key,
                    "title": n.title,
                    "count": n.count,
                }
                for at, n in self.first
            ],
        }


_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?")
_SYSLOG = re.compile(r"^([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)")
_COMMON_LOG = re.compile(r"\[(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d)")
_MONTHS = {name: number for number, name in enumerate(calendar.month_abbr) if name}


def line_time(text: str) -> float | None:
    """Seconds (UTC, zone ignored: only the spacing of lines matters) of the time a line starts
    with or holds near its start; ``None`` when it names none. A syslog time, which has no year,
    is taken in 2000."""
    head = text[:96]
    found = _ISO.search(head)
    if found:
        year, month, day, hour, minute, second, fraction = found.groups()
        whole = calendar.timegm((int(year), int(month), int(day), int(hour), int(minute), int(second)))
        return whole + (float(f"0.{fraction}") if fraction else 0.0)
    found = _SYSLOG.search(head)
    if found and found.group(1) in _MONTHS:
        month, day, hour, minute, second = found.groups()
        return calendar.timegm((2000, _MONTHS[month], int(day), int(hour), int(minute), int(second)))
    found = _COMMON_LOG.search(head)
    if found and found.group(2) in _MONTHS:
        day, month, year, hour, minute, second = found.groups()
        return calendar.timegm((int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second)))
    return None


# ── expectation files ───────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Expectation:
    """What rules must make of some log files: every match, in file order, then line, then rule."""

    path: Path
    files: list[LogFile]
    host: str
    matches: list[dict[str, Any]]


def load_expectation(path: Path) -> Expectation:
    """Read an expectation file; ``ValueError`` says what is wrong with it."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("matches", []), list):
        raise ValueError(f"{path}: expected a mapping with sources: and matches:")
    sources = document.get("sources") or {}
    if not isinstance(sources, dict) or not sources:
        raise ValueError(f"{path}: sources: must map each log file (relative to this file) to its source")
    files = [LogFile(str(path.parent / name), str(name), str(source)) for name, source in sources.items()]
    matches = [dict(m) if isinstance(m, dict) else {} for m in document.get("matches") or []]
    for number, match in enumerate(matches):
        if not isinstance(match.get("file"), str) or not isinstance(match.get("line"), int):
            raise ValueError(f"{path}: matches[{number}]: needs file (a name), line (a number) and rule")
        if not isinstance(match.get("rule"), str):
            raise ValueError(f"{path}: matches[{number}]: needs file (a name), line (a number) and rule")
        match.setdefault("captures", {})
    return Expectation(path, files, str(document.get("host", "test-host")), matches)


def differences(expected: Sequence[dict[str, Any]], found: Sequence[Match]) -> list[str]:
    """Each expected match not found, and each match found but not expected, as one line."""
    keys = ("file", "line", "rule")
    wanted = {tuple(m[k] for k in keys): m for m in expected}
    got = {tuple(getattr(m, k) for k in keys): m.expected_form() for m in found}
    problems = []
    for key in sorted(wanted.keys() | got.keys(), key=lambda k: (str(k[0]), int(k[1]), str(k[2]))):
        file, line, rule = key
        want, have = wanted.get(key), got.get(key)
        if have is None:
            problems.append(f"{file}:{line}: {rule}: expected, but the rule did not match")
        elif want is None:
            problems.append(f"{file}:{line}: {rule}: matched, but not expected (captures {have['captures']})")
        else:
            for name in ("captures", "title"):
                if name in want and want[name] != have[name]:
                    problems.append(f"{file}:{line}: {rule}: {name} {have[name]!r}, expected {want[name]!r}")
    return problems


# ── which source a file's lines come from ───────────────────────────────────


def source_of(path: str, config: Config | None) -> str:
    """The file source of *config* whose globs name *path*, else ``ANY_SOURCE``."""
    if config is None or path == "-":
        return ANY_SOURCE
    absolute = str(Path(path).resolve())
    for source in config.sources:
        if isinstance(source, FileSourceConfig):
            for pattern in source.paths:
                if fnmatch.fnmatch(absolute, str(Path(pattern).resolve())) or absolute in glob.glob(pattern):
                    return source.name
    return ANY_SOURCE


# ── the report, for people ──────────────────────────────────────────────────


def render(report: Report, *, samples: int) -> str:
    out = []
    seconds = max(report.seconds, 1e-9)
    names = ", ".join(f.name for f in report.files)
    out.append(
        f"{names}: {report.lines:,} lines, {report.bytes / 1e6:,.1f} MB in {report.seconds:.3f} s: "
        f"{report.lines / seconds:,.0f} lines/s, {report.bytes / 1e6 / seconds:,.1f} MB/s "
        f"({report.engine} engine, {report.jobs} {'process' if report.jobs == 1 else 'processes'})"
    )
    out.append(f"{report.matched_lines:,} lines matched a rule; {report.lines - report.matched_lines:,} matched none")
    if report.cut_lines:
        out.append(f"{report.cut_lines:,} lines longer than their source's max_line_bytes were cut")
    for name, count in sorted(report.over_budget.items()):
        out.append(f"rule {name}: {count:,} lines skipped: its regex ran out of time on them (backtracking)")
    width = max((len(r.name) for r in report.rules.values()), default=4)
    out.append("")
    out.append(f"{'rule':<{width}}  {'severity':<8}  {'matched':>9}")
    for rule in report.rules.values():
        out.append(f"{rule.name:<{width}}  {rule.severity:<8}  {rule.matched:>9,}")
    if samples:
        for rule in report.rules.values():
            if not rule.samples:
                continue
            out.append("")
            out.append(f"{rule.name}: {rule.matched:,} matches; the first {len(rule.samples)}:")
            for match in rule.samples:
                out.append(f"  {match.file}:{match.line}: {_clip(match.text)}")
                if match.captures:
                    out.append("    captures: " + ", ".join(f"{k}={v!r}" for k, v in match.captures.items()))
                out.append(f"    title: {match.title}")
                out.append(f"    key:   {match.key}")
        never = [r.name for r in report.rules.values() if not r.matched]
        if never:
            out.append("")
            out.append(f"never matched: {', '.join(never)}")
    if report.storm is not None:
        out.extend(_render_storm(report.storm))
    return "\n".join(out)


def _render_storm(storm: StormReplay) -> list[str]:
    summary = storm.as_json()
    out = ["", f"storm control would have sent {summary['alerts']:,} alerts and {summary['digests']:,} digests:"]
    for rule, sent in summary["rules"].items():
        out.append(f"  {rule}: {sent['alerts']:,} alerts, {sent['digests']:,} digests for {sent['events']:,} events")
    if summary["first"]:
        out.append(f"the first {len(summary['first'])}, at seconds from the first line's time:")
        start = summary["first"][0]["at"]
        for sent in summary["first"]:
            count = f" ({sent['count']} held)" if sent["kind"] == "digest" else ""
            out.append(f"  {sent['at'] - start:>9.1f}s  {sent['kind']:<6} {sent['rule']}: {sent['title']}{count}")
    return out


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"

"""``tailhook test``: rules tried on log files, offline, as the daemon would match them.

Per rule: lines matched, a few sample matches with captures, rendered title
and storm key; lines no rule took (``--unmatched``); lines/s and MB/s. With an
expectation file (the shape of ``tests/fixtures/expected.yaml``), every
difference between what the rules find and what the file says is reported,
and the command fails: teams test their rule files in their own CI this way.

Files are read in chunks of whole lines and scanned as the file source does
(``RuleSet.scan``): only lines some rule may match become text. gzip files
(rotated logs) are read as they are; ``-`` is standard input. A line is
matched whole up to ``CHUNK_BYTES``; past that it is cut, as the daemon cuts
lines past ``max_line_bytes``.
"""

from __future__ import annotations

import calendar
import dataclasses
import fnmatch
import glob
import gzip
import hashlib
import queue
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import yaml

from tailhook.config import Config, FileSourceConfig, RuleConfig, StormConfig
from tailhook.events import Event, Kind, Line, Notification
from tailhook.rules import Rule, RuleSet, decode_line
from tailhook.sources.decode import CUT_MARKER
from tailhook.storm import StormControl

__all__ = [
    "CHUNK_BYTES",
    "Expectation",
    "LogFile",
    "Match",
    "Report",
    "StormReplay",
    "line_time",
    "load_expectation",
    "run",
]

CHUNK_BYTES = 1 << 20
ANY_SOURCE = ""
"""The source of lines whose source is not known: every rule applies, whatever its ``sources:``."""


@dataclass(frozen=True, slots=True)
class LogFile:
    """A file to read (``-``: standard input), shown as *name*, whose lines come from *source*."""

    path: str
    name: str
    source: str = ANY_SOURCE


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
) -> Report:
    """Match *files* against *rules*; with *unmatched*, write each line no rule took to it; with
    *storm*, pass every match through storm control on the replay's clock."""
    sets = _RuleSets(rules, host=host, engine=engine, line_budget_s=line_budget_s)
    sets.prepare({f.source for f in files})
    report = Report(
        engine=sets.engine,
        files=list(files),
        rules={r.name: RuleReport(r.name, r.severity.label) for r in rules if _applies(r, files)},
    )
    report.storm = storm
    reading = _Reading(report, samples=samples, keep=keep_matches, unmatched=unmatched, storm=storm)
    started = time.perf_counter()
    for log_file in files:
        reading.file(log_file, sets.for_source(log_file.source))
    if storm is not None:
        storm.finish()
    report.over_budget = {k: v for k, v in sets.over_budget().items() if v}
    report.seconds = time.perf_counter() - started
    report.digest = reading.digest.hexdigest()
    return report


def _applies(rule: RuleConfig, files: Sequence[LogFile]) -> bool:
    """Whether *rule* (enabled) sees the lines of any of *files* (those of no known source meet every rule)."""
    if not rule.enabled:
        return False
    return any(f.source == ANY_SOURCE or rule.sources is None or f.source in rule.sources for f in files)


@dataclass
class _Reading:
    """One ``run``: what it counts, keeps and prints as it reads."""

    report: Report
    samples: int
    keep: bool
    unmatched: IO[str] | None
    storm: StormReplay | None
    digest: Any = field(default_factory=hashlib.sha256)

    def file(self, log_file: LogFile, ruleset: RuleSet) -> None:
        source = log_file.source or "test"
        before = self.report.lines  # lines of the files before this one: the digest numbers lines across files
        counted = 0
        with _open(log_file.path) as stream:
            for block, candidates in _scanned(stream, self.report, ruleset, source):
                taken: set[int] = set()
                number, at = counted, 0
                for start, text, hits in ruleset.confirm(block, candidates, source=source):
                    number += block.count(b"\n", at, start)
                    at = start
                    taken.add(number + 1)
                    self.report.matched_lines += 1
                    for rule, found in hits:
                        self._hit(log_file, (before + number + 1, number + 1), (rule, found), text, ruleset.host)
                if self.unmatched is not None:
                    _write_unmatched(self.unmatched, log_file.name, block, counted, taken)
                counted += block.count(b"\n") + (not block.endswith(b"\n"))
        self.report.lines += counted

    def _hit(
        self, log_file: LogFile, numbers: tuple[int, int], hit: tuple[Rule, re.Match[str]], text: str, host: str
    ) -> None:
        """One rule's match in the line *text*: *numbers* are the line's across all files and within its own."""
        overall, number = numbers
        rule, found = hit
        captures = found.groupdict("")
        self.digest.update(f"{overall}\t{rule.name}\t{_SEPARATOR.join(captures.values())}\n".encode())
        counts = self.report.rules[rule.name]
        counts.matched += 1
        wanted = len(counts.samples) < self.samples
        if not (wanted or self.keep or self.storm):
            return  # rendering is for samples, expectations and storm control only
        path = "" if log_file.path == "-" else log_file.path
        line = Line(text=text, source=log_file.source or "test", time=0.0, path=path)
        event = rule.event(line, found, host=host)
        if self.storm is not None:
            self.storm.admit(event, rule.storm, overall)
        match = Match(log_file.name, number, rule.name, captures, event.title, event.key, line.text)
        if wanted:
            counts.samples.append(match)
        if self.keep:
            self.report.matches.append(match)


_SEPARATOR = "\x1f"


def _scanned(stream: IO[bytes], report: Report, ruleset: RuleSet, source: str) -> Iterator[tuple[bytes, Any]]:
    """Blocks of whole lines with their candidate lines, read and scanned ahead in a thread.

    The engine's pass runs without the GIL (Hyperscan), so on two cores it
    overlaps with Python's ``re`` on the block before.
    """
    ahead: queue.Queue[tuple[bytes, Any] | BaseException | None] = queue.Queue(maxsize=4)

    def work() -> None:
        try:
            for block in _blocks(stream, report):
                ahead.put((block, ruleset.candidates(block, source=source)))
        except BaseException as exc:  # handed to the reader, which raises it
            ahead.put(exc)
        else:
            ahead.put(None)

    worker = threading.Thread(target=work, name="tailhook-test-scan", daemon=True)
    worker.start()
    while (item := ahead.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        yield item
    worker.join()


def _write_unmatched(out: IO[str], name: str, block: bytes, before: int, taken: set[int]) -> None:
    lines = block.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for offset, raw in enumerate(lines, before + 1):
        if offset not in taken:
            out.write(f"{name}:{offset}: {decode_line(raw)}\n")


class _RuleSets:
    """One rule set for lines of known sources, one for lines whose source is not known."""

    def __init__(self, rules: Sequence[RuleConfig], *, host: str, engine: str, line_budget_s: float) -> None:
        self._configs = rules
        self._options: dict[str, Any] = {"host": host, "engine": engine, "line_budget_s": line_budget_s}
        self._known: RuleSet | None = None
        self._any: RuleSet | None = None

    @property
    def engine(self) -> str:
        return self._either().engine

    def _either(self) -> RuleSet:
        return self._known or self.for_source(ANY_SOURCE)

    def prepare(self, sources: set[str]) -> None:
        """Build every scanner before the clock starts."""
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

    def over_budget(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for rules in (self._known, self._any):
            for name, count in (rules.over_budget if rules else {}).items():
                total[name] = total.get(name, 0) + count
        return total


@dataclass(frozen=True, slots=True)
class _Opened:
    stream: IO[bytes]
    raw: IO[bytes] | None = None
    """The file under a decompressing stream, closed with it."""

    def __enter__(self) -> IO[bytes]:
        return self.stream

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


def _blocks(stream: IO[bytes], report: Report) -> Iterator[bytes]:
    """Whole lines, about ``CHUNK_BYTES`` at a time; a line longer than that is cut, the rest skipped."""
    rest = b""
    skipping = False
    while True:
        data = stream.read(CHUNK_BYTES)
        if not data:
            break
        report.bytes += len(data)
        if skipping:
            newline = data.find(b"\n")
            if newline < 0:
                continue
            data, skipping = data[newline + 1 :], False
        buffer = rest + data if rest else data
        end = buffer.rfind(b"\n")
        if end < 0:
            if len(buffer) >= CHUNK_BYTES:
                report.cut_lines += 1
                yield buffer[:CHUNK_BYTES] + CUT_MARKER.encode() + b"\n"
                rest, skipping = b"", True
            else:
                rest = buffer
            continue
        rest = buffer[end + 1 :]
        yield buffer[: end + 1]
    if rest:
        yield rest


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

    def admit(self, event: Event, storm: StormConfig | None, line_number: int) -> None:
        when = line_number / self.rate if self.rate else line_time(event.line.text)
        self.now = max(self.now, when if when is not None else self.now)
        for notification in self.control.admit(event, storm):
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
        f"({report.engine} engine)"
    )
    out.append(f"{report.matched_lines:,} lines matched a rule; {report.lines - report.matched_lines:,} matched none")
    if report.cut_lines:
        out.append(f"{report.cut_lines:,} lines longer than {CHUNK_BYTES:,} bytes were cut")
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

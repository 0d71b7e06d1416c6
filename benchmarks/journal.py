"""Reading the journal: entries per second through the rules, with both readers, beside ``journalctl | grep``.

The journal: ``--entries`` entries (default 200,000) written by
``systemd-journal-remote`` into a temporary folder from the journal export
format on its standard input, as a host's journal would hold them. The
MESSAGEs are the lines of every loghub ``*_2k.log`` sample, read in place from
``../shared/corpus/loghub`` (never copied into the repository), CRLF made LF,
taken in turn and over again until there are enough:

- a line in syslog form, ``Mon DD HH:MM:SS HOST IDENT[PID]: text`` (most of
  the Linux, Mac and OpenSSH samples), as journald stores a syslog message:
  the text is the MESSAGE, and HOST, IDENT and PID are ``_HOSTNAME``,
  ``SYSLOG_IDENTIFIER`` and ``_PID``, the unit ``IDENT.service`` (sshd's
  ``ssh.service``); the kernel's lines have ``_TRANSPORT=kernel`` and neither
  unit nor pid;
- any other line whole, as the standard output of its sample's service
  (``SERVICES``: unit, identifier, host, pid).

``PRIORITY`` comes from the line's first level word (ERROR, WARN, INFO, …; the
Android sample's level letter), else info. Each entry also has the trusted
fields journald adds (``_UID``, ``_COMM``, ``_EXE``, ``_CMDLINE``,
``_SYSTEMD_CGROUP``, ``_SYSTEMD_INVOCATION_ID``, …): about 20 fields, as a real
entry has. The journal stores each distinct value once, as journald does, so
the repeated lines cost it little room.

The rules: the first ``--rules`` (default all) of
``benchmarks/rulesets/200.yaml``, the set ``benchmarks/rules.py`` runs; about
6% of the entries match one (the syslog lines' ``sshd[PID]:`` is a field
now, not part of the MESSAGE, so the ssh rules written for files match fewer
of them).

Timed one after the other in the same run, each the faster of ``ROUNDS`` runs:

- tailhook, with each reader (``systemd-python``, and ``journalctl`` as a
  subprocess): a ``JournaldSource`` over the folder from its beginning, in
  this process, from ``start()`` until every entry has been handed to emit,
  where each line goes through the rules as ``Pipeline.ingest`` sends a line
  that is not a ``Block`` (``RuleSet.match`` inside ``watching()``; storm
  control and the spool left out). The rules are compiled before, as the
  daemon compiles them at its start. And the reader alone, its emit only
  counting the lines: what reading costs without the rules.
- ``journalctl --directory=DIR -o json --all --no-pager | grep -E -c -f
  PATTERNS``, the rules as POSIX EREs (``posix_ere`` of ``benchmarks/rules.py``),
  both under LC_ALL=C: the peer issue 19 names. grep sees every field of an
  entry, as JSON.
- the same with ``-o cat``: the MESSAGEs alone, one a line, which is what
  tailhook matches.

The journal was just written, so everyone reads it from the page cache.

Checks, printed with the figures: ``journalctl -o cat`` prints one line per
entry (no MESSAGE holds a newline), as many as were written; with each reader,
tailhook read every entry and the entries it found matching some rule are as
many as the lines grep counted over ``-o cat``. Over ``-o json`` grep also sees
the other fields, JSON-escaped, so its count is shown but not compared.

The heading gives the load average at the start and at the end (on a shared
machine the figures move with it); the last line is the row for the README's
performance table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from benchmarks.rules import (
    RULESET,
    Rule,
    load_rule_list,
    pipeline_seconds,
    posix_ere,
    times,
    write_patterns,
    write_rule_file,
)
from benchmarks.tailing import LOGHUB, ROOT, ROUNDS
from tailhook.config import JournaldSourceConfig, journal_reader, load_config
from tailhook.events import Line
from tailhook.rules import RuleSet, rule_set
from tailhook.sources import Block
from tailhook.sources.journald import JournaldSource
from tailhook.spool import Checkpoint

JOURNAL_REMOTE = Path("/lib/systemd/systemd-journal-remote")
ENTRIES = 200_000
READERS: tuple[Literal["systemd-python", "journalctl"], ...] = ("systemd-python", "journalctl")
SOURCE = "journal"
TIMEOUT_S = 600.0
EXPORT_BATCH = 10_000
"""Entries written to systemd-journal-remote's standard input at a time."""
STEP_US = 1000
"""Entries are logged 1 ms apart, the last one a moment ago."""
BOOT_ID = "7d3c0f3e9b8a4c6e8f1a2b3c4d5e6f70"
MACHINE_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


# ── the journal ─────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Service:
    """Who logged a line: a sample's service (its lines not in syslog form, written to its standard
    output), or the sender a syslog line names."""

    unit: str
    identifier: str
    host: str
    pid: int


SERVICES = {
    "Android": Service("logcat-forward.service", "logcat", "android-gw-1", 1702),
    "Apache": Service("apache2.service", "apache2", "web-1", 2214),
    "BGL": Service("bgl-ras.service", "ras-monitor", "bgl-sn1", 3301),
    "HDFS": Service("hadoop-hdfs-datanode.service", "hdfs-datanode", "hdfs-dn-7", 4127),
    "HPC": Service("hpc-monitor.service", "hpc-monitor", "hpc-admin", 1893),
    "Hadoop": Service("hadoop-yarn-nodemanager.service", "yarn-nodemanager", "hadoop-nm-3", 5230),
    "HealthApp": Service("healthapp.service", "healthapp", "app-2", 6011),
    "Linux": Service("rsyslog.service", "rsyslogd", "combo", 812),
    "Mac": Service("syslogd.service", "syslogd", "calvisitor-10-105-160-95", 44),
    "OpenSSH": Service("ssh.service", "sshd", "LabSZ", 24200),
    "OpenStack": Service("nova-api.service", "nova-api", "controller-1", 25746),
    "Proxifier": Service("proxifier.service", "proxifier", "gw-1", 3702),
    "Spark": Service("spark-worker.service", "spark-worker", "spark-w-2", 7345),
    "Thunderbird": Service("tbird-ras.service", "ras-monitor", "tbird-admin1", 2915),
    "Windows": Service("cbs-forward.service", "cbs", "win-fwd-1", 1288),
    "Zookeeper": Service("zookeeper.service", "zookeeper", "zk-1", 9817),
}
DEFAULT_SERVICE = Service("app.service", "app", "host-1", 1000)
UNITS = {"sshd": "ssh.service", "crond": "cron.service", "syslogd": "rsyslog.service"}
"""Units of syslog identifiers whose unit is not ``IDENT.service``."""

SYSLOG = re.compile(
    rb"(?P<stamp>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>[^\s/]+) (?P<ident>[^\s\[:]+)"
    rb"(?:\[(?P<pid>\d+)\])?: ?(?P<text>.*)"
)
LEVEL = re.compile(
    rb"\b(?:(FATAL|CRITICAL|SEVERE)|(ERROR|[Ee]rror)|(WARN(?:ING)?|[Ww]arn(?:ing)?)|(NOTICE|notice)"
    rb"|(INFO|[Ii]nfo)|(DEBUG|[Dd]ebug|TRACE))\b"
)
"""Level words, in the order of their priority from 2 (crit) to 7 (debug)."""
ANDROID_LEVEL = re.compile(rb"\S+ \S+ +\d+ +\d+ ([VDIWEF]) ")
ANDROID_PRIORITIES = {b"V": 7, b"D": 7, b"I": 6, b"W": 4, b"E": 3, b"F": 2}
INFO = 6


@dataclass(frozen=True)
class Journal:
    directory: Path
    entries: int
    sample_lines: int
    samples: int
    files: int
    size_bytes: int
    write_s: float


def loghub_samples() -> list[Path]:
    return sorted(LOGHUB.glob("*_2k.log"))


def sample_lines(path: Path) -> list[bytes]:
    data = path.read_bytes().replace(b"\r\n", b"\n")
    return data.removesuffix(b"\n").split(b"\n")


def priority(sample: str, line: bytes) -> int:
    if sample == "Android" and (letter := ANDROID_LEVEL.match(line)):
        return ANDROID_PRIORITIES[letter[1]]
    level = LEVEL.search(line)
    if level is None:
        return INFO
    return 2 + next(i for i, word in enumerate(level.groups()) if word is not None)


def hex_id(*parts: str) -> str:
    return hashlib.md5("/".join(parts).encode(), usedforsecurity=False).hexdigest()


Fields = list[tuple[str, str]]
"""An entry's fields but its MESSAGE (the loghub lines are ASCII; the MESSAGE is kept as bytes)."""
ROOT_COMMANDS = frozenset({"sshd", "crond", "su", "sudo", "login"})


def entry_fields(sample: str, line: bytes) -> bytes:
    """One entry's fields in the export format, all but its cursor and timestamps: what journald
    would store for *line* of *sample*."""
    level = str(priority(sample, line))
    syslog = SYSLOG.fullmatch(line) if sample in ("Linux", "Mac", "OpenSSH") else None
    if syslog is None:
        fields, text = stdout_fields(SERVICES.get(sample, DEFAULT_SERVICE), level), line
    elif syslog["ident"] == b"kernel":
        fields, text = kernel_fields(syslog["host"].decode(), level), syslog["text"]
    else:
        fields, text = syslog_fields(syslog, level), syslog["text"]
    return b"".join(f"{name}={value}\n".encode() for name, value in fields) + b"MESSAGE=" + text + b"\n"


def kernel_fields(host: str, level: str) -> Fields:
    """A kernel message: no process, no unit."""
    return [("_TRANSPORT", "kernel"), ("PRIORITY", level), ("SYSLOG_FACILITY", "0"), ("SYSLOG_IDENTIFIER", "kernel"),
            ("_BOOT_ID", BOOT_ID), ("_MACHINE_ID", MACHINE_ID), ("_HOSTNAME", host)]  # fmt: skip


def syslog_fields(syslog: re.Match[bytes], level: str) -> Fields:
    """A message sent to the syslog socket: its header's host, identifier and pid as fields."""
    identifier = syslog["ident"].decode()
    comm = identifier.split("(", 1)[0]  # sshd(pam_unix): the process is sshd
    sender = Service(UNITS.get(comm, f"{comm}.service"), identifier, syslog["host"].decode(), int(syslog["pid"] or 1))
    transport = [("_TRANSPORT", "syslog"), ("SYSLOG_FACILITY", "4" if comm == "sshd" else "3"),
                 ("SYSLOG_PID", str(sender.pid)), ("SYSLOG_TIMESTAMP", syslog["stamp"].decode() + " ")]  # fmt: skip
    return transport + process_fields(sender, comm, level)


def stdout_fields(service: Service, level: str) -> Fields:
    """A line a service wrote to its standard output."""
    transport = [("_TRANSPORT", "stdout"), ("SYSLOG_FACILITY", "3"), ("_STREAM_ID", hex_id(service.unit, "stream"))]
    return transport + process_fields(service, service.identifier, level)


def process_fields(sender: Service, comm: str, level: str) -> Fields:
    """The fields journald adds about the process that logged (*comm*: its command), and the entry's own."""
    unit, host = sender.unit, sender.host
    owner = "0" if comm in ROOT_COMMANDS else "998"
    return [
        ("PRIORITY", level),
        ("SYSLOG_IDENTIFIER", sender.identifier),
        ("_PID", str(sender.pid)),
        ("_UID", owner),
        ("_GID", owner),
        ("_COMM", comm[:15]),
        ("_EXE", f"/usr/sbin/{comm}"),
        ("_CMDLINE", f"/usr/sbin/{comm} -D"),
        ("_CAP_EFFECTIVE", "1ffffffffff"),
        ("_SELINUX_CONTEXT", "unconfined"),
        ("_SYSTEMD_CGROUP", f"/system.slice/{unit}"),
        ("_SYSTEMD_UNIT", unit),
        ("_SYSTEMD_SLICE", "system.slice"),
        ("_SYSTEMD_INVOCATION_ID", hex_id(unit, host)),
        ("_BOOT_ID", BOOT_ID),
        ("_MACHINE_ID", MACHINE_ID),
        ("_HOSTNAME", host),
    ]


def export_stream(lines: Sequence[bytes], entries: int) -> Iterator[bytes]:
    """*entries* entries in the journal export format, *lines* (fields ready) in turn, in batches."""
    first_us = int(time.time() * 1_000_000) - entries * STEP_US
    for start in range(0, entries, EXPORT_BATCH):
        yield b"".join(
            f"__CURSOR=s=0;i={n}\n__REALTIME_TIMESTAMP={first_us + n * STEP_US}\n"
            f"__MONOTONIC_TIMESTAMP={1_000_000 + n * STEP_US}\n".encode()
            + lines[n % len(lines)]
            + b"\n"
            for n in range(start, min(entries, start + EXPORT_BATCH))
        )


def write_journal(directory: Path, samples: Sequence[Path], entries: int) -> Journal:
    """*entries* entries of the samples' lines, written by systemd-journal-remote into *directory*."""
    lines = [entry_fields(path.name.split("_")[0], line) for path in samples for line in sample_lines(path)]
    directory.mkdir()
    started = time.perf_counter()
    command = [str(JOURNAL_REMOTE), f"--output={directory / 'remote.journal'}", "-"]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as remote:
        assert remote.stdin is not None and remote.stderr is not None
        for chunk in export_stream(lines, entries):
            remote.stdin.write(chunk)
        remote.stdin.close()
        said = remote.stderr.read().decode(errors="replace")
    if remote.returncode != 0:
        raise RuntimeError(f"systemd-journal-remote failed with exit code {remote.returncode}: {said[-2000:]}")
    files = list(directory.glob("*.journal"))
    for path in files:  # no write-back competing with the runs that follow
        with path.open("rb") as journal:
            os.fsync(journal.fileno())
    return Journal(
        directory, entries, len(lines), len(samples), len(files), sum(p.stat().st_size for p in files),
        time.perf_counter() - started,
    )  # fmt: skip


# ── tailhook ────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class ReaderRun:
    seconds: float
    entries: int
    matched: int
    """Entries some rule matched."""
    matches: int

    def per_s(self) -> float:
        return self.entries / self.seconds


def write_config(folder: Path, journal: Journal, rules: Sequence[Rule]) -> Path:
    """A config with one journald source over the journal from its beginning, and the rules."""
    rule_file = write_rule_file(folder, rules)
    path = folder / "tailhook.yaml"
    text = f"""
        state_dir: state
        sources:
          - {{name: {SOURCE}, type: journald, directory: '{journal.directory}', start_at: beginning}}
        rules:
          paths: ['{rule_file}']
        """
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


async def read_through(config: JournaldSourceConfig, rules: RuleSet | None, entries: int) -> ReaderRun:
    """A ``JournaldSource`` from ``start()`` until *entries* entries were handed to emit; with *rules*,
    emit matches each line as ``Pipeline.ingest`` does."""
    source = JournaldSource(config)
    seen = matched = matches = 0
    done = asyncio.Event()

    async def emit(batch: Sequence[Line | Block], checkpoints: Sequence[Checkpoint]) -> None:
        nonlocal seen, matched, matches
        if rules is not None:
            with rules.watching():
                for line in batch:
                    assert isinstance(line, Line)  # a journald source never hands on blocks
                    events = rules.match(line)
                    if events:
                        matched += 1
                        matches += len(events)
        seen += len(batch)
        if seen >= entries:
            done.set()

    started = time.perf_counter()
    await source.start()
    reading = asyncio.create_task(source.run(emit))
    waiting = asyncio.create_task(done.wait())
    await asyncio.wait({reading, waiting}, timeout=TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    elapsed = time.perf_counter() - started
    for task in (reading, waiting):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if seen != entries:
        raise RuntimeError(f"the {config.reader} reader handed on {seen:,} of {entries:,} entries")
    return ReaderRun(elapsed, seen, matched, matches)


def fastest(config: JournaldSourceConfig, rules: RuleSet | None, entries: int) -> ReaderRun:
    return min((asyncio.run(read_through(config, rules, entries)) for _ in range(ROUNDS)), key=lambda r: r.seconds)


# ── the peers ───────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class PeerRun:
    seconds: float
    counted: int


def journalctl(journal: Journal, output: str) -> list[str]:
    return ["journalctl", f"--directory={journal.directory}", "-o", output, "--all", "--no-pager"]


def journalctl_grep(journal: Journal, output: str, patterns: Path) -> PeerRun:
    """The faster of ROUNDS runs of ``journalctl -o OUTPUT | grep -E -c -f PATTERNS`` (LC_ALL=C)."""
    grep = ["grep", "-E", "-c", "-f", str(patterns)]
    seconds, output_ = min(pipeline_seconds(journalctl(journal, output), grep) for _ in range(ROUNDS))
    return PeerRun(seconds, int(output_))


def printed_lines(journal: Journal) -> int:
    """How many lines ``journalctl -o cat`` prints: one per entry, when no MESSAGE holds a newline."""
    _, output = pipeline_seconds(journalctl(journal, "cat"), ["wc", "-l"])
    return int(output)


# ── the report ──────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Result:
    journal: Journal
    rules: int
    tailhook: dict[str, tuple[ReaderRun, ReaderRun] | str]
    """Per reader: with the rules and alone; or why it did not run."""
    json: PeerRun
    cat: PeerRun
    cat_lines: int
    load: tuple[float, float]
    """The load average over 1 minute at the start and at the end."""


def row(name: str, per_s: float, note: str) -> str:
    return f"  {name:44} {per_s:>12,.0f}   {note}"


def report(result: Result) -> None:
    journal, entries = result.journal, result.journal.entries
    print(
        f"journal through the rules: {entries:,} entries, the {journal.samples} loghub samples' "
        f"{journal.sample_lines:,} lines in turn, written by systemd-journal-remote in {journal.write_s:.1f} s "
        f"({journal.files} {'file' if journal.files == 1 else 'files'}, {journal.size_bytes / 1e6:.0f} MB); "
        f"rules: the first {result.rules} of {RULESET.relative_to(ROOT)}; load average "
        f"{result.load[0]:.2f} at the start, {result.load[1]:.2f} at the end ({os.cpu_count()} CPUs)"
    )
    lines_check = "one per entry" if result.cat_lines == entries else "NOT one per entry"
    print(f"  journalctl -o cat prints {result.cat_lines:,} lines: {lines_check}")
    print(f"  {'':44} {'entries/s':>12}")
    for reader, runs in result.tailhook.items():
        if isinstance(runs, str):
            print(f"  {'tailhook, ' + reader:44} {runs}")
            continue
        ruled, alone = runs
        share = ruled.matched / entries
        print(row(f"tailhook, {reader} reader → rules", ruled.per_s(),
                  f"{ruled.seconds:.2f} s; {ruled.matched:,} entries ({share:.1%}) match some rule, "
                  f"{ruled.matches:,} matches"))  # fmt: skip
        print(row(f"tailhook, {reader} reader alone", alone.per_s(), f"{alone.seconds:.2f} s, no rules"))
    for output, peer in (("json", result.json), ("cat", result.cat)):
        note = f"{peer.seconds:.2f} s, counted {peer.counted:,} lines"
        if output == "json":
            note += " (grep sees every field, JSON-escaped: not compared)"
        else:
            ran = [runs[0] for runs in result.tailhook.values() if not isinstance(runs, str)]
            if not ran:
                note += " (no tailhook run to compare)"
            elif all(run.matched == peer.counted for run in ran):
                note += ": MATCH, the entries tailhook matched"
            else:
                note += f": DIFFERENT from tailhook's {', '.join(f'{run.matched:,}' for run in ran)}"
        print(row(f"journalctl -o {output} | grep -E -c -f, LC_ALL=C", entries / peer.seconds, note))
    report_ratios(result)


def report_ratios(result: Result) -> None:
    entries = result.journal.entries
    json_s, cat_s = entries / result.json.seconds, entries / result.cat.seconds
    parts, figures = [], []
    for reader, runs in result.tailhook.items():
        if isinstance(runs, str):
            continue
        ours = runs[0].per_s()
        parts.append(f"with {reader}, {times(ours, json_s)} journalctl -o json | grep's speed ({times(ours, cat_s)} "
                     f"-o cat | grep's; reading alone {runs[1].per_s():,.0f} entries/s)")  # fmt: skip
        figures.append((reader, ours))
    if not parts:
        print("  tailhook = not measured: neither reader is installed")
        return
    print(f"  tailhook = {'; '.join(parts)}")
    ran = [runs[0] for runs in result.tailhook.values() if not isinstance(runs, str)]
    share = ran[0].matched / entries
    rates = "; ".join(f"{reader}: {per_s:,.0f} entries/s" for reader, per_s in figures)
    ratios = ", ".join(f"{times(per_s, json_s)} ({reader})" for reader, per_s in figures)
    print(
        f"  README: | journal → {result.rules} rules: {entries:,} entries of loghub lines ({share:.1%} match) in "
        f"files written by systemd-journal-remote, from the beginning | {rates} | `journalctl -o json \\| grep "
        f"-E -c -f`: {json_s:,.0f} entries/s; `-o cat \\| grep`: {cat_s:,.0f} | {ratios} journalctl -o json "
        "\\| grep's speed |"
    )


# ── the run ─────────────────────────────────────────────────────────────────


def measure(folder: Path, samples: Sequence[Path], entries: int, rule_count: int) -> Result:
    load = os.getloadavg()[0]
    journal = write_journal(folder / "journal", samples, entries)
    rules = load_rule_list()[:rule_count]
    patterns = write_patterns(folder, [posix_ere(rule["match"]) for rule in rules])
    config = load_config(write_config(folder, journal, rules))
    source = config.sources[0]
    assert isinstance(source, JournaldSourceConfig)
    cat_lines = printed_lines(journal)  # also brings the journal into the page cache, if it left
    json = journalctl_grep(journal, "json", patterns)
    cat = journalctl_grep(journal, "cat", patterns)
    matcher = rule_set(config, host="bench")  # compiled before the clock starts, as at the daemon's start
    tailhook: dict[str, tuple[ReaderRun, ReaderRun] | str] = {}
    for reader in READERS:
        if journal_reader(reader) is None:
            tailhook[reader] = "not installed here"
            continue
        with_reader = replace(source, reader=reader)
        tailhook[reader] = (fastest(with_reader, matcher, entries), fastest(with_reader, None, entries))
    return Result(journal, len(rules), tailhook, json, cat, cat_lines, (load, os.getloadavg()[0]))


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: Sequence[str] = ()) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.journal",
        description="Journal entries per second through the rules with both journald readers, beside "
        "journalctl | grep on the same journal.",
    )
    parser.add_argument("--entries", type=positive, default=ENTRIES, metavar="N",
                        help=f"entries in the journal (default {ENTRIES:,})")  # fmt: skip
    parser.add_argument("--rules", type=positive, default=200, metavar="N",
                        help=f"the first N rules of {RULESET.name} (default all 200)")  # fmt: skip
    args = parser.parse_args(argv)
    samples = loghub_samples()
    missing = [
        what
        for what, there in (
            (f"loghub samples (*_2k.log) in {LOGHUB}", samples),
            (f"{JOURNAL_REMOTE} (Debian package systemd-journal-remote)", JOURNAL_REMOTE.exists()),
            ("journalctl", shutil.which("journalctl")),
        )
        if not there
    ]
    if missing:
        print(f"journal through the rules: skipped: no {', no '.join(missing)}")
        return
    with tempfile.TemporaryDirectory(prefix="tailhook-bench-journal-") as name:
        report(measure(Path(name), samples, args.entries, args.rules))


if __name__ == "__main__":
    main(sys.argv[1:])

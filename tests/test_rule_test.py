"""``tailhook test``: rules over log files, offline, as users run it (and in-process for block edges)."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tailhook import rule_test
from tailhook.config import RuleConfig
from tests.daemon import PRINTED, run_cli

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "examples" / "sample-logs"
EXAMPLE = str(ROOT / "config.example.yaml")

RULES = """
rules:
  - name: ssh-failure
    sources: [auth]
    match: 'Failed password for (?:invalid user )?(?P<user>\\S+) from (?P<ip>[0-9a-fA-F.:]+)'
    title: 'SSH failure for {user}'
    key: '{ip}'
  - name: panic
    match: 'Kernel panic - not syncing: (?P<why>.+)'
    severity: critical
"""
LOG = """\
Nov 23 06:31:14 web-1 sshd[20201]: Failed password for invalid user oracle from 203.0.113.45 port 52114 ssh2
Nov 23 06:31:15 web-1 sshd[20201]: Accepted publickey for deploy from 198.51.100.4 port 50100 ssh2
Nov 23 06:31:17 web-1 kernel: Kernel panic - not syncing: Fatal exception
Nov 23 06:31:18 web-1 sshd[20202]: Failed password for root from 198.51.100.7 port 52200 ssh2
"""


@pytest.fixture(autouse=True)
def no_example_log_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAILHOOK_LOG_DIR", raising=False)
    monkeypatch.delenv("TAILHOOK_CONFIG", raising=False)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_the_shipped_rules_give_exactly_the_expected_matches() -> None:
    result = run_cli("test", "-c", EXAMPLE, "--expect", str(SAMPLES / "expected.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr
    expected = len(rule_test.load_expectation(SAMPLES / "expected.yaml").matches)
    assert f"all {expected} matches as expected" in result.stdout
    assert "ssh-password-failure" in result.stdout and "title: SSH password failure for oracle" in result.stdout


@pytest.mark.parametrize("engine", ["hyperscan", "re2", "re"])
def test_the_fixtures_give_exactly_their_expected_matches_on_every_engine(engine: str) -> None:
    expected = ROOT / "tests" / "fixtures" / "expected.yaml"
    result = run_cli("test", "-c", EXAMPLE, "--engine", engine, "--samples", "0", "--expect", str(expected))
    assert result.returncode == 0, result.stdout + result.stderr
    count = len(rule_test.load_expectation(expected).matches)
    assert f"all {count} matches as expected" in result.stdout
    assert f"({engine} engine, 1 process)" in result.stdout


def test_a_changed_fixture_fails_and_says_where(tmp_path: Path) -> None:
    copy = tmp_path / "samples"
    shutil.copytree(SAMPLES, copy)
    auth = copy / "auth.log"
    lines = auth.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[3] = lines[3].replace("203.0.113.45", "203.0.113.99")  # line 4: another address
    lines[16] = "Nov 23 06:40:00 web-1 CRON[1]: nothing to see\n"  # line 17: the sudo failure is gone
    auth.write_text("".join(lines), encoding="utf-8")

    result = run_cli("test", "-c", EXAMPLE, "--expect", str(copy / "expected.yaml"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "auth.log:4: ssh-password-failure: captures {'user': 'oracle', 'ip': '203.0.113.99'}" in result.stdout
    assert (
        "auth.log:4: ssh-password-failure: title 'SSH password failure for oracle from 203.0.113.99'" in result.stdout
    )
    assert "auth.log:17: sudo-auth-failure: expected, but the rule did not match" in result.stdout
    assert "3 differences" in result.stdout


def test_an_unexpected_match_fails(tmp_path: Path) -> None:
    rules = write(tmp_path, "rules.yaml", RULES)
    write(tmp_path, "auth.log", LOG)
    expect = write(
        tmp_path,
        "expected.yaml",
        """
        sources: {auth.log: auth}
        matches:
          - {file: auth.log, line: 1, rule: ssh-failure, captures: {user: oracle, ip: 203.0.113.45}}
          - {file: auth.log, line: 3, rule: panic, captures: {why: Fatal exception}}
        """,
    )
    result = run_cli("test", "--rules", str(rules), "--expect", str(expect), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["differences"] == [
        "auth.log:4: ssh-failure: matched, but not expected (captures {'user': 'root', 'ip': '198.51.100.7'})"
    ]


def test_json_report_counts_samples_and_speed(tmp_path: Path) -> None:
    rules = write(tmp_path, "rules.yaml", RULES)
    log = write(tmp_path, "some.log", LOG)
    result = run_cli("test", "--rules", str(rules), "--json", "--samples", "1", str(log))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["lines"], report["bytes"], report["matched_lines"]) == (4, len(LOG.encode()), 3)
    assert report["engine"] == "hyperscan"
    assert report["lines_per_second"] > 0 and report["megabytes_per_second"] > 0
    by_name = {r["name"]: r for r in report["rules"]}
    assert by_name["ssh-failure"]["matched"] == 2  # a file of no known source meets every rule
    assert by_name["ssh-failure"]["samples"] == [
        {
            "file": str(log),
            "line": 1,
            "text": LOG.splitlines()[0],
            "captures": {"user": "oracle", "ip": "203.0.113.45"},
            "title": "SSH failure for oracle",
            "key": "203.0.113.45",
        }
    ]
    assert by_name["panic"]["matched"] == 1


def test_lines_belong_to_the_source_whose_paths_name_the_file(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", RULES)
    (tmp_path / "logs").mkdir()
    write(tmp_path, "logs/auth.log", LOG)
    write(tmp_path, "logs/kern.log", LOG)
    config = write(
        tmp_path,
        "tailhook.yaml",
        """
        state_dir: state
        sources:
          - {name: auth, type: file, paths: [logs/auth.log]}
          - {name: kernel, type: file, paths: ["logs/kern*.log"]}
        rules: {paths: [rules.yaml]}
        """,
    )
    for name, counts in (("auth.log", {"ssh-failure": 2, "panic": 1}), ("kern.log", {"panic": 1})):
        result = run_cli("test", "-c", str(config), "--json", str(tmp_path / "logs" / name))
        report = json.loads(result.stdout)
        assert {r["name"]: r["matched"] for r in report["rules"]} == counts  # the rules that see the file
    # --source says it outright
    result = run_cli("test", "-c", str(config), "--json", "--source", "kernel", str(tmp_path / "logs" / "auth.log"))
    assert {r["name"]: r["matched"] for r in json.loads(result.stdout)["rules"]} == {"panic": 1}


def test_gzip_and_standard_input_read_the_same_lines(tmp_path: Path) -> None:
    rules = write(tmp_path, "rules.yaml", RULES)
    plain = write(tmp_path, "auth.log", LOG * 50)
    packed = tmp_path / "auth.log.2.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))

    reports = []
    for args in ([str(plain)], [str(packed)]):
        result = run_cli("test", "--rules", str(rules), "--json", *args)
        reports.append(json.loads(result.stdout))
    piped = subprocess.run(
        [sys.executable, "-m", "tailhook", "test", "--rules", str(rules), "--json", "-"],
        input=plain.read_bytes(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    PRINTED.append((piped.stdout + piped.stderr).decode)
    reports.append(json.loads(piped.stdout))
    assert [r["lines"] for r in reports] == [200, 200, 200]
    assert len({r["digest"] for r in reports}) == 1
    assert [sum(rule["matched"] for rule in r["rules"]) for r in reports] == [150, 150, 150]


def test_unmatched_lines_are_printed(tmp_path: Path) -> None:
    rules = write(tmp_path, "rules.yaml", RULES)
    log = write(tmp_path, "auth.log", LOG)
    result = run_cli("test", "--rules", str(rules), "--samples", "0", "--unmatched", str(log))
    assert result.returncode == 0
    unmatched = [
        line for line in result.stdout.splitlines() if line.startswith(f"{log}:") and line[len(str(log)) + 1].isdigit()
    ]
    assert unmatched == [f"{log}:2: {LOG.splitlines()[1]}"]


def test_broken_rules_exit_78_with_every_problem(tmp_path: Path) -> None:
    rules = write(
        tmp_path,
        "rules.yaml",
        """
        rules:
          - name: broken
            match: 'unclosed (group'
          - name: bad-template
            match: 'x'
            title: '{nothing}'
        """,
    )
    result = run_cli("test", "--rules", str(rules), str(rules))
    assert result.returncode == 78
    assert f"{rules}:4: rules[0] (broken).match: regex does not compile" in result.stderr
    assert f"{rules}:7: rules[1] (bad-template).title: {{nothing}} is neither" in result.stderr


def test_an_unreadable_log_file_is_an_error(tmp_path: Path) -> None:
    rules = write(tmp_path, "rules.yaml", RULES)
    result = run_cli("test", "--rules", str(rules), str(tmp_path / "missing.log"))
    assert result.returncode == 1
    assert "cannot read" in result.stderr and "missing.log" in result.stderr


@pytest.mark.parametrize("engine", ["hyperscan", "re2", "re"])
def test_line_numbers_and_matches_hold_across_blocks_and_cut_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """Small reads put block edges everywhere; an over-long line is cut, not held in memory whole."""
    monkeypatch.setattr(rule_test, "READ_BYTES", 512)
    lines = []
    for i in range(400):
        lines.append(f"{i} Failed password for user{i} from 10.0.{i % 250}.1 port 22" if i % 7 == 0 else f"{i} ok")
    lines[100] = "x" * 5000 + " Failed password for long from 10.9.9.9"  # longer than a block
    lines.append("Kernel panic - not syncing: no newline at the end")
    log = tmp_path / "big.log"
    log.write_bytes("\n".join(lines).encode())
    configs = [
        RuleConfig(name="ssh", file="r", line=1, match=r"Failed password for (?P<user>\S+) from (?P<ip>[\d.]+)"),
        RuleConfig(name="panic", file="r", line=2, match=r"Kernel panic - not syncing: (?P<why>.+)"),
    ]
    report = rule_test.run(
        configs,
        [rule_test.LogFile(str(log), "big.log", max_line_bytes=1024)],
        host="h",
        engine=engine,
        line_budget_s=1.0,
        keep_matches=True,
    )
    expected = []
    for number, text in enumerate(lines, 1):
        if number == 101:
            continue  # cut at max_line_bytes: the match lay past the cut
        for config in configs:
            found = re.search(config.match, text)
            if found:
                expected.append((number, config.name, found.groupdict()))
    assert [(m.line, m.rule, m.captures) for m in report.matches] == expected
    assert (report.lines, report.cut_lines) == (401, 1)


def test_storm_replays_the_lines_times(tmp_path: Path) -> None:
    """Storm control as the daemon would run it: per key, 3 alerts then one digest per window."""
    rules = write(
        tmp_path,
        "rules.yaml",
        """
        rules:
          - name: ssh-failure
            match: 'Failed password for (?P<user>\\S+) from (?P<ip>[\\d.]+)'
            key: '{ip}'
            storm: {window: 60s, max_per_window: 3}
        """,
    )
    lines = [
        f"2026-11-23T10:{i // 60:02d}:{i % 60:02d}Z sshd[1]: Failed password for root from 192.0.2.1"
        for i in range(100)
    ]
    lines += ["2026-11-23T10:00:30Z sshd[1]: Failed password for bob from 192.0.2.2"]  # another key, out of order
    log = tmp_path / "auth.log"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = run_cli("test", "--rules", str(rules), "--json", "--storm", str(log))
    storm = json.loads(result.stdout)["storm"]
    # 192.0.2.1: windows open at 0 s (3 alerts, 57 held) and at 60 s (3 alerts, 37 held); 192.0.2.2: 1 alert
    assert storm["rules"] == {"ssh-failure": {"alerts": 7, "digests": 2, "events": 101}}
    assert [(s["kind"], s["key"], s["count"]) for s in storm["first"]] == [
        ("alert", "192.0.2.1", 1), ("alert", "192.0.2.1", 1), ("alert", "192.0.2.1", 1),
        ("digest", "192.0.2.1", 57),
        ("alert", "192.0.2.1", 1), ("alert", "192.0.2.1", 1), ("alert", "192.0.2.1", 1),
        ("alert", "192.0.2.2", 1),
        ("digest", "192.0.2.1", 37),
    ]  # fmt: skip

    # At 1 line a second from the file's start, the same: the lines are a second apart anyway.
    by_rate = run_cli("test", "--rules", str(rules), "--json", "--rate", "1", str(log))
    assert json.loads(by_rate.stdout)["storm"]["rules"]["ssh-failure"]["digests"] == 2
    # At 1,000 lines a second everything falls in one window.
    fast = run_cli("test", "--rules", str(rules), "--json", "--rate", "1000", str(log))
    assert json.loads(fast.stdout)["storm"]["rules"] == {"ssh-failure": {"alerts": 4, "digests": 1, "events": 101}}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2026-11-23T10:00:01.5Z app: x", 1795428001.5),
        ("2026-11-23 10:00:01,250 INFO x", 1795428001.25),
        ("Nov 23 10:00:01 web-1 sshd[1]: x", 974973601.0),
        ('203.0.113.9 - - [23/Nov/2026:10:00:01 +0000] "GET / HTTP/1.1" 200', 1795428001.0),
        ("no time here", None),
    ],
)
def test_line_times(text: str, seconds: float | None) -> None:
    assert rule_test.line_time(text) == seconds


def test_an_expectation_entry_without_its_line_is_an_error(tmp_path: Path) -> None:
    rules = write(tmp_path, "rules.yaml", RULES)
    write(tmp_path, "auth.log", LOG)
    expect = write(
        tmp_path, "expected.yaml", "sources: {auth.log: auth}\nmatches:\n  - {file: auth.log, rule: panic}\n"
    )
    result = run_cli("test", "--rules", str(rules), "--expect", str(expect))
    assert result.returncode == 1
    assert "matches[0]: needs file (a name), line (a number) and rule" in result.stderr


def test_workers_report_exactly_what_one_process_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spans of a file matched by two worker processes and merged in order: the same line numbers,
    counts, samples, digest, cut lines and over-budget lines as one process reading it all."""
    monkeypatch.setattr(rule_test, "READ_BYTES", 4096)  # the workers fork after this: many spans
    lines = []
    for i in range(3000):
        if i % 11 == 0:
            lines.append(f"{i} Failed password for user{i % 7} from 10.0.{i % 250}.1 port 22")
        elif i % 13 == 0:
            lines.append(f"{i} Kernel panic - not syncing: reason {i}")
        else:
            lines.append(f"{i} ok " + "y" * (i % 90))
    lines[1500] = "z" * 9000 + " Failed password for cut from 10.9.9.9"  # longer than max_line_bytes and a span
    lines[2100] = "x" + "a" * 40 + "c"  # backtracks for seconds without a budget
    log = tmp_path / "big.log"
    log.write_bytes("\n".join(lines).encode())  # no newline at the very end
    configs = [
        RuleConfig(name="ssh", file="r", line=1, match=r"Failed password for (?P<user>\S+) from (?P<ip>[\d.]+)"),
        RuleConfig(name="panic", file="r", line=2, match=r"Kernel panic - not syncing: (?P<why>.+)"),
        RuleConfig(name="backtracks", file="r", line=3, match=r"(a+)+b|c"),
    ]

    def report(jobs: int) -> rule_test.Report:
        files = [rule_test.LogFile(str(log), "big.log", max_line_bytes=2048)]
        return rule_test.run(configs, files, host="h", engine="auto", line_budget_s=0.05, samples=4, jobs=jobs)

    alone, shared = report(1), report(2)
    assert (alone.jobs, shared.jobs) == (1, 2)
    assert shared.digest == alone.digest
    assert (shared.lines, shared.matched_lines, shared.cut_lines) == (alone.lines, alone.matched_lines, 1)
    assert alone.lines == 3000
    assert {n: r.matched for n, r in shared.rules.items()} == {n: r.matched for n, r in alone.rules.items()}
    assert alone.rules["ssh"].matched == len([i for i in range(3000) if i % 11 == 0 and i != 1500])
    assert [(m.line, m.captures, m.title) for m in shared.rules["ssh"].samples] == [
        (m.line, m.captures, m.title) for m in alone.rules["ssh"].samples
    ]
    assert [m.line for m in alone.rules["panic"].samples] == [14, 27, 40, 53]
    assert shared.over_budget == alone.over_budget == {"backtracks": 1}


def test_the_compiled_rules_are_kept_for_the_next_run(tmp_path: Path) -> None:
    """In $XDG_CACHE_HOME/tailhook (that loading them gives the same matches: test_engines.py)."""
    rules = write(tmp_path, "rules.yaml", RULES)
    log = write(tmp_path, "auth.log", LOG)
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    runs = [run_cli("test", "--rules", str(rules), "--engine", "hyperscan", "--json", str(log), env=env) for _ in "12"]
    assert len(list((tmp_path / "cache" / "tailhook").glob("hyperscan-*.db"))) == 1
    first, second = (json.loads(run.stdout) for run in runs)
    assert second["digest"] == first["digest"]
    assert second["matched_lines"] == first["matched_lines"] == 3


def test_a_rules_exclude_drops_its_matches_alike_in_one_process_and_in_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rule_test, "READ_BYTES", 4096)  # many spans: the workers fork
    lines = [
        f"{i} sshd[9]: Failed password for {'root' if i % 3 == 0 else 'alice'} from 10.0.0.{i % 250}"
        for i in range(3000)
    ]
    log = tmp_path / "auth.log"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    configs = [
        RuleConfig(name="ssh", file="r", line=1, match=r"Failed password for (?P<user>\S+) from", exclude=r"for root "),
    ]
    files = [rule_test.LogFile(str(log), "auth.log")]
    kept = rule_test.run(configs, files, host="h", engine="auto", line_budget_s=1.0, keep_matches=True)
    assert [m.line for m in kept.matches] == [i + 1 for i in range(3000) if i % 3]
    assert {m.captures["user"] for m in kept.matches} == {"alice"}
    alone, shared = (
        rule_test.run(configs, files, host="h", engine="auto", line_budget_s=1.0, jobs=jobs) for jobs in (1, 2)
    )
    assert shared.jobs == 2
    assert alone.rules["ssh"].matched == shared.rules["ssh"].matched == 2000
    assert alone.digest == shared.digest == kept.digest


def test_reads_end_with_whole_lines_and_spans_shrink_towards_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read ends past a newline (a run of whole lines, not copied into the next); the spans after
    the first get smaller, none under ``MIN_SPAN_READS`` reads but the last, and cover the file."""
    monkeypatch.setattr(rule_test, "READ_BYTES", 4096)
    data = b"".join(f"{i} {'x' * (i % 150)}\n".encode() for i in range(20000)) + b"no newline at the end"
    log = tmp_path / "big.log"
    log.write_bytes(data)
    with open(log, "rb") as file:
        reads = list(rule_test._reads(file.fileno(), 0))
    assert b"".join(reads) == data
    assert all(read.endswith(b"\n") for read in reads[:-1]) and len(reads) > len(data) // 4096
    log_file = rule_test.LogFile(str(log), "big.log")
    sets = rule_test._RuleSets([], host="h", engine="re", line_budget_s=1.0, cache=None)
    reading = rule_test._Reading(
        rule_test.Report(engine="re", files=[log_file], rules={}),
        sets,
        samples=0,
        keep=False,
        unmatched=None,
        storm=None,
    )
    with open(log, "rb") as file:
        spans = list(reading._spans(file, log_file, 2))
    assert [s.start for s in spans[1:]] == [s.end for s in spans[:-1]] and spans[-1].end == len(data)
    sizes = [s.end - s.start for s in spans[1:-1]]
    assert all(later <= size + 200 for size, later in itertools.pairwise(sizes)), "a line's length at most bigger"
    assert sizes[0] > 4 * sizes[-1] and min(sizes) >= rule_test.MIN_SPAN_READS * 4096


@pytest.mark.parametrize("failure", ["raises", "dies"])
def test_a_worker_that_fails_fails_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    """What stops a worker (a file gone under it, say) is raised in the reading process, which never
    waits for a worker that died."""
    monkeypatch.setattr(rule_test, "READ_BYTES", 4096)
    log = write(tmp_path, "auth.log", LOG * 500)
    original = rule_test._Span.pieces

    def pieces(span: rule_test._Span) -> Iterator[object]:
        if span.start > 0:  # in a worker: the first span is matched in the reading process
            if failure == "dies":
                os._exit(3)
            raise FileNotFoundError(2, "No such file or directory", span.path)
        return original(span)

    monkeypatch.setattr(rule_test._Span, "pieces", pieces)
    files = [rule_test.LogFile(str(log), "auth.log")]
    expected = FileNotFoundError if failure == "raises" else RuntimeError
    with pytest.raises(expected):
        rule_test.run(rule_configs_of(RULES), files, host="h", engine="auto", line_budget_s=1.0, jobs=2)


def rule_configs_of(text: str) -> list[RuleConfig]:
    return [
        RuleConfig(name=rule["name"], file="r", line=n, match=rule["match"])
        for n, rule in enumerate(yaml.safe_load(text)["rules"])
    ]

"""Rule matching at scale: ``tailhook test`` beside grep, a naive ``re`` loop and fail2ban, with 10, 50 and 200 rules.

The corpus: every loghub ``*_2k.log`` sample, read in place from
``../shared/corpus/loghub`` (never copied into the repository), concatenated
as bytes with their CRLF line ends made LF (tailhook's file source drops the
CR, grep and fail2ban would see it), and repeated into a temporary file of at
least 1,000,000 lines. The rules: ``benchmarks/rulesets/200.yaml``, and its
first 10 and first 50, written to temporary rule files.

With each rule count, one after the other in the same run, on the same file:

- ``tailhook test --rules RULES --json CORPUS``: lines/s by its own clock
  (matching only) and by the wall clock of the whole subprocess (Python's
  start-up and loading the rules included): as users run it, one process per
  CPU, and with ``--jobs 1``. The compiled rules are kept in a cache folder of
  the run's own, so the first run compiles them and the next ones load them,
  as a user's second run would. grep and fail2ban-regex use one CPU: the
  one-process figure is the like-for-like one.
- ``LC_ALL=C grep -E -c -f PATTERNS CORPUS``, each rule translated to POSIX
  ERE (``posix_ere``). It only counts the lines that match some rule: a floor
  for any matcher, which must also say which rules matched and what they
  captured.
- The naive loop: every line decoded, every rule's ``search``, every match
  kept with its captures. Timed on the first copy of the samples (32,000
  lines) and extrapolated; its matches over the whole corpus are the first
  copy's, repeated (the copies are identical), which is exact. They give the
  digest and the per-rule counts ``tailhook test`` must reproduce.
- ``fail2ban-regex`` with each rule as a failregex (``fail2ban_filter``):
  timed on the first copy only, by its own clock, and extrapolated; it reads
  about 2,000 lines/s with 200 rules.

grep and ``tailhook test`` run twice each and the faster run counts; the
corpus was just written and synced, so everyone reads it from the page cache.

Checks, printed with the figures: each rule's ERE matches exactly the sample
lines its Python regex matches (``grep -E -n`` per rule); grep counts the
lines the naive loop matched; fail2ban's hits per rule are the naive loop's;
``tailhook test``'s per-rule counts and its digest of every match are the
naive loop's (``DIGEST_FORMATS`` says how a match is written into it).

Then the daemon path: ``tailhook run`` with one file source reading the
corpus from its beginning into the 200 rules, storm control and the spool
(one destination that is down, so the alerts stay in the spool), from its
launch until ``/metrics`` counts every line: at its first start, which
compiles the rules, and again in a fresh state folder holding the first
run's ``cache`` (the compiled rules, as every start after the first finds
them); the target applies to the first start. Beside them ``tail -c +1 CORPUS | LC_ALL=C
grep -E -c -f PATTERNS``. grep counts (``-c``) instead of printing to
``/dev/null``: GNU grep stops at the first match when its output is
``/dev/null``, and would not read the corpus.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from benchmarks.tailing import DAEMON_ENV, LOGHUB, ROOT, ROUNDS, running
from tailhook.config import load_rules

RULESET = Path(__file__).resolve().parent / "rulesets" / "200.yaml"
RULE_COUNTS = (10, 50, 200)
MIN_LINES = 1_000_000
TARGET_GREP = 4.0
TARGET_NAIVE = 100.0
TARGET_DAEMON = 1.0
"""With 200 rules: tailhook's speed as a multiple of grep's, of the naive loop's, and of tail | grep's."""
C_LOCALE = {"LC_ALL": "C"}
METRICS_POLL_S = 0.1
DAEMON_TIMEOUT_S = 600.0

Rule = dict[str, Any]
"""One rule as 200.yaml writes it: name, match, severity, title, key."""
NaiveMatch = tuple[int, int, dict[str, str]]
"""Line number (1-based), index of the rule, captures ("" for a group that took no part)."""


# ── the corpus ──────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Corpus:
    path: Path
    sample: Path
    """The first copy of the samples alone: what the naive loop and fail2ban are timed on."""
    sample_lines: int
    copies: int
    size_bytes: int

    @property
    def lines(self) -> int:
        return self.sample_lines * self.copies

    @property
    def megabytes(self) -> float:
        return self.size_bytes / 1e6


def loghub_samples() -> list[Path]:
    return sorted(LOGHUB.glob("*_2k.log"))


def samples_bytes(files: Iterable[Path]) -> bytes:
    """The samples one after the other, CRLF made LF, each ending with a newline."""
    parts = []
    for path in files:
        data = path.read_bytes().replace(b"\r\n", b"\n")
        parts.append(data if data.endswith(b"\n") else data + b"\n")
    return b"".join(parts)


def write_corpus(folder: Path, samples: bytes) -> Corpus:
    sample_lines = samples.count(b"\n")
    copies = -(-MIN_LINES // sample_lines)
    (folder / "samples.log").write_bytes(samples)
    path = folder / "corpus.log"
    with path.open("wb") as out:
        for _ in range(copies):
            out.write(samples)
        out.flush()
        os.fsync(out.fileno())  # no write-back competing with the runs that follow
    return Corpus(path, folder / "samples.log", sample_lines, copies, path.stat().st_size)


# ── the rules ───────────────────────────────────────────────────────────────


def load_rule_list() -> list[Rule]:
    rules: list[Rule] = yaml.safe_load(RULESET.read_text(encoding="utf-8"))["rules"]
    return rules


def write_rule_file(folder: Path, rules: Sequence[Rule]) -> Path:
    """The first rules of 200.yaml as a rule file of their own, checked by tailhook's loader."""
    path = folder / f"rules-{len(rules)}.yaml"
    path.write_text(yaml.safe_dump({"rules": list(rules)}, sort_keys=False, allow_unicode=True), encoding="utf-8")
    load_rules([str(path)], [])  # ConfigError names every problem
    return path


def write_patterns(folder: Path, eres: Sequence[str]) -> Path:
    """The EREs one a line, for ``grep -E -f``."""
    path = folder / f"patterns-{len(eres)}.ere"
    path.write_text("".join(f"{ere}\n" for ere in eres), encoding="utf-8")
    return path


# ── Python regex → POSIX ERE ────────────────────────────────────────────────


_CLASSES = {"d": "0-9", "s": "[:space:]", "w": "[:alnum:]_"}
"""Python's \\d, \\s and \\w as the inside of a POSIX bracket expression (same meaning on ASCII text)."""
_ERE_SPECIAL = frozenset(".[\\()*+?{|^$")
"""Characters special outside brackets in an ERE, which stay escaped (``]`` and ``}`` are not special)."""
_INTERVAL = re.compile(r"\{(\d*)(,?)(\d*)\}")


def posix_ere(pattern: str) -> str:
    """*pattern*, a Python regex in the subset 200.yaml allows, as a POSIX ERE that matches the same lines.

    Named and non-capturing groups become plain groups; ``\\d \\s \\w`` and
    their negations become bracket expressions, inside brackets too; escaped
    punctuation that is not special in an ERE becomes itself. Anything else
    (lookaround, backreferences, inline flags, lazy or possessive quantifiers,
    ``\\b`` and other letter escapes) raises ``ValueError``.
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(_escape(pattern, i))
            i += 2
        elif char == "[":
            bracket, i = _bracket(pattern, i)
            out.append(bracket)
        elif char == "(":
            group, i = _group(pattern, i)
            out.append(group)
        elif char == "{":
            interval, i = _interval(pattern, i)
            out.append(interval)
        else:
            if char in "*+?":
                _not_lazy(pattern, i + 1)
            out.append(char)
            i += 1
    return "".join(out)


def _escape(pattern: str, i: int) -> str:
    if i + 1 >= len(pattern):
        raise ValueError("the pattern ends with a backslash")
    char = pattern[i + 1]
    if char.lower() in _CLASSES:
        inside = _CLASSES[char.lower()]
        return f"[{inside}]" if char.islower() else f"[^{inside}]"
    if char in _ERE_SPECIAL:
        return "\\" + char
    if char.isalnum():
        raise ValueError(f"\\{char} has no POSIX ERE equivalent")
    return char  # punctuation Python lets one escape is itself in an ERE


def _group(pattern: str, i: int) -> tuple[str, int]:
    if pattern.startswith("(?:", i):
        return "(", i + 3
    if pattern.startswith("(?P<", i):
        return "(", pattern.index(">", i) + 1
    if pattern.startswith("(?", i):
        raise ValueError(f"{pattern[i : i + 4]}… (lookaround, a flag or a backreference) has no POSIX ERE equivalent")
    return "(", i + 1


def _interval(pattern: str, i: int) -> tuple[str, int]:
    found = _INTERVAL.match(pattern, i)
    if found is None or not (found[1] or found[3]):
        raise ValueError("a { that does not start {m}, {m,} or {m,n} must be escaped")
    _not_lazy(pattern, found.end())
    return f"{{{found[1] or '0'}{found[2]}{found[3]}}}", found.end()


def _not_lazy(pattern: str, after: int) -> None:
    if pattern.startswith(("?", "+"), after):
        raise ValueError("lazy and possessive quantifiers have no POSIX ERE equivalent")


def _bracket(pattern: str, start: int) -> tuple[str, int]:
    """The bracket expression at *start*; and where it ends."""
    i = start + 1
    negated = pattern.startswith("^", i)
    i += negated
    items: list[str] = []
    chars: list[str] = []
    while True:
        if i >= len(pattern):
            raise ValueError("a [ is not closed")
        if pattern[i] == "]" and (items or chars):
            break
        atom, i = _bracket_atom(pattern, i)
        if pattern.startswith("-", i) and not pattern.startswith("-]", i):
            end, i = _bracket_atom(pattern, i + 1)
            if len(atom) != 1 or len(end) != 1 or {atom, end} & set("]^-[\\"):
                raise ValueError(f"the range {atom}-{end} is not plain characters")
            items.append(f"{atom}-{end}")
        elif len(atom) == 1:
            chars.append(atom)
        else:
            items.append(atom)
    return _bracket_ere(negated, items, chars), i + 1


def _bracket_atom(pattern: str, i: int) -> tuple[str, int]:
    if pattern[i] != "\\":
        return pattern[i], i + 1
    char = pattern[i + 1]
    if char in _CLASSES:
        return _CLASSES[char], i + 2
    if char.isalnum():
        raise ValueError(f"\\{char} inside [...] has no POSIX bracket equivalent")
    return char, i + 2


def _bracket_ere(negated: bool, items: Sequence[str], chars: Sequence[str]) -> str:
    """A POSIX bracket expression: ``]`` first, ``-`` first or last, ``[`` and ``^`` where they mean themselves."""
    chars = list(dict.fromkeys(chars))
    plain = "".join(c for c in chars if c not in "]^-[")
    body = "".join(items) + plain + ("[" if "[" in chars else "")
    if "]" in chars:
        body = "]" + body + ("-" if "-" in chars else "")
    elif "-" in chars:
        body = "-" + body
    if "^" in chars:
        if not body and not negated:
            return "\\^"
        body += "^"
    return f"[{'^' if negated else ''}{body}]"


# ── the peers ───────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Timing:
    seconds: float
    lines: int
    """How many lines the time is for: the whole corpus, or the first copy of the samples."""

    def lines_per_s(self) -> float:
        return self.lines / self.seconds


def pipeline_seconds(*commands: Sequence[str]) -> tuple[float, bytes]:
    """Wall time of a pipeline (each command's output into the next) under LC_ALL=C; the last one's output."""
    env = os.environ | C_LOCALE
    started = time.perf_counter()
    processes: list[subprocess.Popen[bytes]] = []
    upstream: IO[bytes] | None = None
    try:
        for command in commands:
            process = subprocess.Popen(command, stdin=upstream, stdout=subprocess.PIPE, env=env)
            if upstream is not None:
                upstream.close()  # the next process reads it now
            processes.append(process)
            upstream = process.stdout
        output = processes[-1].communicate()[0]
        for process in processes[:-1]:
            process.wait()
    finally:
        for process in processes:
            if process.stdout is not None:
                process.stdout.close()
    elapsed = time.perf_counter() - started
    if processes[-1].returncode not in (0, 1):  # grep: 1 is "no line matched"
        raise RuntimeError(f"{' '.join(commands[-1])} failed with exit code {processes[-1].returncode}")
    return elapsed, output


def grep_count(patterns: Path, corpus: Corpus, *, through_tail: bool = False) -> tuple[Timing, int]:
    """The faster of ROUNDS runs of ``grep -E -c -f`` over the corpus (read itself, or behind ``tail -c +1``)."""
    grep = ["grep", "-E", "-c", "-f", str(patterns)]
    runs = []
    for _ in range(ROUNDS):
        if through_tail:
            runs.append(pipeline_seconds(["tail", "-c", "+1", str(corpus.path)], grep))
        else:
            runs.append(pipeline_seconds([*grep, str(corpus.path)]))
    seconds, output = min(runs)
    return Timing(seconds, corpus.lines), int(output)


def grep_lines(ere: str, sample: Path) -> tuple[set[int], str]:
    """The numbers of the lines of *sample* that *ere* matches; and what grep said on stderr (a warning)."""
    command = ["grep", "-E", "-n", "-e", ere, str(sample)]
    done = subprocess.run(command, capture_output=True, env=os.environ | C_LOCALE, check=False)
    numbers = {int(line.split(b":", 1)[0]) for line in done.stdout.splitlines()}
    return numbers, done.stderr.decode(errors="replace").strip()


def naive_loop(lines: Sequence[bytes], patterns: Sequence[re.Pattern[str]]) -> list[NaiveMatch]:
    """Every line decoded, every pattern searched, every match kept with its captures."""
    found: list[NaiveMatch] = []
    for number, raw in enumerate(lines, 1):
        text = raw.decode("utf-8", errors="replace")
        for index, pattern in enumerate(patterns):
            match = pattern.search(text)
            if match is not None:
                found.append((number, index, match.groupdict("")))
    return found


def naive_runs(corpus: Corpus, rules: Sequence[Rule]) -> tuple[dict[int, Timing], list[NaiveMatch]]:
    """The naive loop over the first copy of the samples with each rule count; the matches of all the rules."""
    lines = corpus.sample.read_bytes().split(b"\n")[:-1]
    patterns = [re.compile(rule["match"]) for rule in rules]
    timings: dict[int, Timing] = {}
    matches: list[NaiveMatch] = []
    for count in RULE_COUNTS:
        started = time.perf_counter()
        matches = naive_loop(lines, patterns[:count])
        timings[count] = Timing(time.perf_counter() - started, len(lines))
    return timings, matches  # the last run has every rule


def fail2ban_filter(matches: Sequence[str]) -> str:
    """A fail2ban filter with each of *matches* as a failregex that matches what the Python regex matches.

    - ``<F-ID></F-ID>`` first: fail2ban wants a failure id, and an empty one
      changes nothing (one around the whole match would be read as an address,
      a ``/`` in it as a CIDR suffix); it also keeps a leading space from being
      stripped as indentation.
    - ``%`` doubled (the config reader interpolates), ``;`` as ``\\x3b`` (after
      a space it starts a comment), a trailing space as ``[ ]`` (it would be
      stripped).
    - ``datepattern = {NONE}``: no timestamp is looked for; each line is
      matched whole.
    """
    regexes = []
    for match in matches:
        regex = match.replace("%", "%%").replace(";", r"\x3b")
        if regex.endswith(" "):
            regex = regex[:-1] + "[ ]"
        regexes.append("<F-ID></F-ID>" + regex)
    failregex = "\n            ".join(regexes)
    return f"[Definition]\nfailregex = {failregex}\ndatepattern = {{NONE}}\n"


def last_line(text: str) -> str:
    """What a failed command said last: the error of a traceback."""
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "(nothing)")


@dataclass(frozen=True)
class Fail2banRun:
    timing: Timing
    matched_lines: int
    hits: list[int]
    """Per failregex, in order."""


def fail2ban_run(folder: Path, rules: Sequence[Rule], corpus: Corpus) -> Fail2banRun | str:
    """``fail2ban-regex`` over the first copy of the samples, by its own clock; or why it could not run."""
    path = folder / f"fail2ban-{len(rules)}.conf"
    path.write_text(fail2ban_filter([rule["match"] for rule in rules]), encoding="utf-8")
    command = ["fail2ban-regex", "-e", "utf-8", "--print-no-missed", str(corpus.sample), str(path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    except FileNotFoundError:
        return "not installed (Debian package fail2ban)"
    summary = re.search(r"Lines: (\d+) lines, \d+ ignored, (\d+) matched", done.stdout)
    took = re.search(r"\[processed in ([\d.]+) sec\]", done.stdout)
    if done.returncode != 0 or summary is None or took is None:
        return f"failed (exit code {done.returncode}): {last_line(done.stderr or done.stdout)}"
    hits = [0] * len(rules)
    for number, count in re.findall(r"^\|\s+(\d+)\) \[(\d+)\] ", done.stdout, re.MULTILINE):
        hits[int(number) - 1] = int(count)
    return Fail2banRun(Timing(float(took[1]), int(summary[1])), int(summary[2]), hits)


@dataclass(frozen=True)
class TailhookRun:
    own: Timing
    """By its own clock: matching only."""
    wall: Timing
    """The whole subprocess: start-up and loading the rules too."""
    report: dict[str, Any]


def tailhook_test(rule_file: Path, corpus: Corpus, *, jobs: int | None, cache: Path) -> TailhookRun | str:
    """The faster (by the wall clock) of ROUNDS runs of ``tailhook test`` with *jobs* processes (``None``:
    its default, one per CPU), keeping compiled rules in *cache*; or why it failed."""
    command = [sys.executable, "-m", "tailhook", "test", "--rules", str(rule_file), "--json", str(corpus.path)]
    command += [] if jobs is None else ["--jobs", str(jobs)]
    env = os.environ | DAEMON_ENV | {"XDG_CACHE_HOME": str(cache)}
    runs = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            return f"failed (exit code {done.returncode}): {last_line(done.stderr)}"
        report = json.loads(done.stdout)
        runs.append((wall, report["seconds"], report))
    wall, own, report = min(runs, key=lambda run: run[0])
    return TailhookRun(Timing(own, report["lines"]), Timing(wall, report["lines"]), report)


# ── what the naive loop says every matcher must find ────────────────────────


DIGEST_FORMATS: dict[str, Callable[[dict[str, str]], str]] = {
    "captures as sorted JSON": lambda captures: json.dumps(captures, sort_keys=True, ensure_ascii=False),
    "capture values joined by U+001F": lambda captures: "\x1f".join(captures.values()),
}
"""How a match's captures are written into the digest: the agreed form first, then the one ``tailhook test`` uses now.

Each match is ``f"{line number}\t{rule}\t{captures}\n"``, the line numbered from 1 across the corpus, the
matches in line order, then rule order; a group that took no part captures ``""``.
"""


@dataclass(frozen=True)
class Expected:
    digests: dict[str, str]
    """The sha256 of every match, per digest format."""
    counts: dict[str, int]
    """Matches per rule over the whole corpus."""
    matched_lines: int
    sample_sets: list[set[int]]
    """Per rule, the numbers of the sample lines it matches."""


def expected(matches: Sequence[NaiveMatch], rules: Sequence[Rule], corpus: Corpus) -> Expected:
    """The naive loop's matches with the first len(rules) rules, over the whole corpus (the copies repeat)."""
    names = [rule["name"] for rule in rules]
    mine = [m for m in matches if m[1] < len(rules)]
    per_rule = Counter(index for _, index, _ in mine)
    sets: list[set[int]] = [set() for _ in rules]
    for number, index, _ in mine:
        sets[index].add(number)
    return Expected(
        digests={name: digest(mine, names, corpus, form) for name, form in DIGEST_FORMATS.items()},
        counts={name: per_rule[i] * corpus.copies for i, name in enumerate(names)},
        matched_lines=len({number for number, _, _ in mine}) * corpus.copies,
        sample_sets=sets,
    )


def digest(
    matches: Sequence[NaiveMatch], names: Sequence[str], corpus: Corpus, form: Callable[[dict[str, str]], str]
) -> str:
    """The digest of *matches* in the first copy of the samples, repeated over every copy."""
    tails = [(number, f"\t{names[index]}\t{form(captures)}\n") for number, index, captures in matches]
    hashed = hashlib.sha256()
    for copy in range(corpus.copies):
        offset = copy * corpus.sample_lines
        hashed.update("".join(f"{offset + number}{tail}" for number, tail in tails).encode())
    return hashed.hexdigest()


def translation_disagreements(rules: Sequence[Rule], eres: Sequence[str], want: Expected, sample: Path) -> list[str]:
    """Rules whose ERE matches other sample lines than their Python regex."""
    problems = []
    for rule, ere, python in zip(rules, eres, want.sample_sets, strict=True):
        grep, warning = grep_lines(ere, sample)
        if grep != python or warning:
            only_grep, only_python = sorted(grep - python)[:3], sorted(python - grep)[:3]
            said = f"; grep said: {warning}" if warning else ""
            problems.append(
                f"{rule['name']}: grep {len(grep)} lines, Python {len(python)} "
                f"(only grep: {only_grep}, only Python: {only_python}){said}; ERE {ere}"
            )
    return problems


def tailhook_differences(run: TailhookRun, want: Expected, corpus: Corpus) -> list[str]:
    """How ``tailhook test``'s matches differ from the naive loop's: nothing when they are the same."""
    counts = {rule["name"]: rule["matched"] for rule in run.report["rules"]}
    wrong = [
        f"{name} {counts.get(name, 0):,} (naive {n:,})" for name, n in want.counts.items() if counts.get(name) != n
    ]
    problems = [f"per-rule counts differ: {', '.join(wrong[:5])}"] if wrong else []
    if run.report["digest"] not in want.digests.values():
        problems.append(f"the digest differs ({' or '.join(want.digests)})")
    if (run.report["lines"], run.report["bytes"]) != (corpus.lines, corpus.size_bytes):
        problems.append(f"it read {run.report['lines']:,} lines, {run.report['bytes']:,} bytes")
    return problems


def digest_format(run: TailhookRun, want: Expected) -> str:
    return next((name for name, value in want.digests.items() if value == run.report["digest"]), "none")


def fail2ban_differences(run: Fail2banRun, rules: Sequence[Rule], want: Expected) -> list[str]:
    """How fail2ban's hits differ from the naive loop's matches on the same lines: nothing when they are the same."""
    naive = [len(lines) for lines in want.sample_sets]
    wrong = [f"{r['name']} {h} (naive {n})" for r, h, n in zip(rules, run.hits, naive, strict=True) if h != n]
    problems = [f"hits per rule differ: {', '.join(wrong[:5])}"] if wrong else []
    lines = len(set().union(*want.sample_sets))
    if run.matched_lines != lines:
        problems.append(f"{run.matched_lines:,} lines matched (naive {lines:,})")
    return problems


# ── the daemon path ─────────────────────────────────────────────────────────


@dataclass(frozen=True)
class DaemonRun:
    timing: Timing
    startup_s: float
    """From the launch to the log line that names the /metrics port."""
    matches: dict[str, int]


def daemon_config(folder: Path, rule_file: Path, log: Path, *, source: str = "corpus", more: str = "") -> Path:
    """One file source (*source*) over *log* from its beginning, the rules, /metrics on a free port,
    and one destination that is down (a closed port on loopback, no start-up probe): the alerts stay
    in the spool, as the path measured ends there, instead of being printed by the console sink.
    *more*: further top-level YAML lines."""
    path = folder / "tailhook.yaml"
    text = f"""
        state_dir: state
        sources:
          - {{name: {source}, paths: ['{log}'], start_at: beginning}}
        rules:
          paths: ['{rule_file}']
        http: {{listen: '127.0.0.1:0'}}
        probe: {{mode: 'off'}}
        destinations:
          down: {{url: 'http://127.0.0.1:{closed_port()}/api/webhooks/123456789012345678/benchmark'}}
        """
    path.write_text(textwrap.dedent(text).lstrip() + more, encoding="utf-8")
    return path


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def metrics_text(port: int) -> str:
    """The daemon's /metrics, as text."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def metrics(port: int) -> tuple[int, dict[str, int]]:
    """Lines read and matches per rule, from /metrics."""
    text = metrics_text(port)
    lines = sum(int(float(n)) for n in re.findall(r'^tailhook_lines_total\{source="[^"]*"\} (\S+)$', text, re.M))
    matches = {
        rule: int(float(n)) for rule, n in re.findall(r'^tailhook_matches_total\{rule="([^"]*)"\} (\S+)$', text, re.M)
    }
    return lines, matches


def daemon_path(folder: Path, rule_file: Path, corpus: Corpus, *, cache: Path | None = None) -> DaemonRun:
    """``tailhook run`` from its launch until /metrics counts every line of the corpus; with *cache*,
    its state folder starts with that ``cache`` folder (the rules compiled by a run before)."""
    folder.mkdir()
    config = daemon_config(folder, rule_file, corpus.path)
    if cache is not None:
        shutil.copytree(cache, folder / "state" / "cache")
    started = time.perf_counter()
    with running(config) as daemon:
        daemon.wait_for_log("serving /healthz", timeout=60)
        startup_s = time.perf_counter() - started
        port = int(re.findall(r"\(port (\d+)\)", daemon.stderr)[-1])
        deadline = started + DAEMON_TIMEOUT_S
        while (read := metrics(port))[0] < corpus.lines:
            if time.perf_counter() > deadline or daemon.process.poll() is not None:
                raise RuntimeError(f"tailhook read {read[0]:,} of {corpus.lines:,} lines:\n{daemon.stderr[-3000:]}")
            time.sleep(METRICS_POLL_S)
        elapsed = time.perf_counter() - started
    return DaemonRun(Timing(elapsed, corpus.lines), startup_s, read[1])


# ── the report ──────────────────────────────────────────────────────────────


def times(ours: float, theirs: float) -> str:
    """*ours* as a multiple of *theirs*: 123x, 4.4x, 0.27x."""
    value = ours / theirs
    return f"{value:,.0f}x" if value >= 10 else f"{value:.1f}x" if value >= 1 else f"{value:.2f}x"


def row(name: str, timing: Timing, corpus: Corpus, note: str) -> str:
    megabytes_per_s = timing.lines_per_s() * corpus.megabytes / corpus.lines
    return f"  {name:34} {timing.lines_per_s():>12,.0f} {megabytes_per_s:8.1f}   {note}"


def sample_note(timing: Timing, corpus: Corpus) -> str:
    whole = timing.seconds * corpus.lines / timing.lines
    return f"on the first {timing.lines:,} lines (all {corpus.lines:,}: {whole:,.0f} s)"


@dataclass(frozen=True)
class CountResult:
    rules: Sequence[Rule]
    want: Expected
    tailhook: TailhookRun | str
    """As users run it: one process per CPU."""
    alone: TailhookRun | str
    """With ``--jobs 1``."""
    grep: Timing
    grep_matched: int
    naive: Timing
    fail2ban: Fail2banRun | str


def report_count(result: CountResult, corpus: Corpus) -> None:
    count, want = len(result.rules), result.want
    share = want.matched_lines / corpus.lines
    print(
        f"{count} rules: {want.matched_lines:,} lines ({share:.1%}) match some rule, "
        f"{sum(want.counts.values()):,} matches in all"
    )
    print(f"  {'':34} {'lines/s':>12} {'MB/s':>8}")
    for tailhook in (result.tailhook, result.alone):
        if isinstance(tailhook, TailhookRun):
            engine, jobs = tailhook.report.get("engine", "?"), tailhook.report.get("jobs", 1)
            name = f"tailhook test, {jobs} {'process' if jobs == 1 else 'processes'}"
            print(row(f"{name}, own clock", tailhook.own, corpus, f"matching only; engine: {engine}"))
            print(row(f"{name}, wall", tailhook.wall, corpus, "start-up and loading the (cached) rules included"))
        else:
            print(f"  {'tailhook test':34} {tailhook}")
    grep_check = "the lines the naive loop matched" if result.grep_matched == want.matched_lines else "DIFFERENT"
    print(row("grep -E -c -f, LC_ALL=C", result.grep, corpus, f"counted {result.grep_matched:,} lines: {grep_check}"))
    print(row("naive re loop", result.naive, corpus, sample_note(result.naive, corpus)))
    fail2ban = result.fail2ban
    if isinstance(fail2ban, Fail2banRun):
        print(row("fail2ban-regex", fail2ban.timing, corpus, "its own clock, " + sample_note(fail2ban.timing, corpus)))
    else:
        print(f"  {'fail2ban-regex':34} {fail2ban}")
    report_ratios(result, corpus)


def report_ratios(result: CountResult, corpus: Corpus) -> None:
    if not isinstance(result.tailhook, TailhookRun):
        print("  tailhook = not measured: tailhook test failed")
        return
    own, wall = result.tailhook.own.lines_per_s(), result.tailhook.wall.lines_per_s()
    grep, naive = result.grep.lines_per_s(), result.naive.lines_per_s()
    parts = [
        f"{times(own, grep)} grep's speed ({times(wall, grep)} by the wall clock)",
        f"{times(own, naive)} the naive loop's",
    ]
    if isinstance(result.alone, TailhookRun):
        parts.append(f"in one process {times(result.alone.own.lines_per_s(), grep)} grep's speed")
    if isinstance(result.fail2ban, Fail2banRun):
        parts.append(f"{times(own, result.fail2ban.timing.lines_per_s())} fail2ban-regex's")
    print(f"  tailhook = {', '.join(parts)}")
    differences = tailhook_differences(result.tailhook, result.want, corpus)
    if isinstance(result.alone, TailhookRun):
        differences += [f"in one process: {d}" for d in tailhook_differences(result.alone, result.want, corpus)]
    form = digest_format(result.tailhook, result.want)
    same = f"MATCH: per-rule counts and digest ({form})" if not differences else "DIFFERENT: " + "; ".join(differences)
    print(f"  matches: tailhook test against the naive loop: {same}")
    if isinstance(result.fail2ban, Fail2banRun):
        fail2ban = fail2ban_differences(result.fail2ban, result.rules, result.want)
        agree = "MATCH: the same hits per rule" if not fail2ban else "DIFFERENT: " + "; ".join(fail2ban)
        print(
            f"  matches: fail2ban-regex against the naive loop on its {result.fail2ban.timing.lines:,} lines: {agree}"
        )
    if len(result.rules) == max(RULE_COUNTS):
        report_targets(
            (f"at least {TARGET_GREP:g}x grep's speed", own / grep >= TARGET_GREP, times(own, grep)),
            (f"at least {TARGET_NAIVE:g}x the naive loop's", own / naive >= TARGET_NAIVE, times(own, naive)),
            ("exactly the naive loop's matches", not differences, "MATCH" if not differences else "DIFFERENT"),
        )


def report_targets(*targets: tuple[str, bool, str]) -> None:
    """Each target, whether it is met, and the figure."""
    print(
        "  targets: " + "; ".join(f"{what}: {'met' if met else 'NOT MET'} ({figure})" for what, met, figure in targets)
    )


def report_daemon(
    runs: tuple[DaemonRun, DaemonRun], tail_grep: Timing, want: Expected, corpus: Corpus, rules: int
) -> None:
    """The first start (compiling the rules) and a start with them compiled (every start after the first)."""
    first, again = runs
    print(f"daemon path: {corpus.lines:,} lines, {corpus.megabytes:.0f} MB, from a file → {rules} rules → spool")
    print(f"  {'':34} {'lines/s':>12} {'MB/s':>8}")
    for name, run in (("tailhook run, first start", first), ("tailhook run, rules compiled", again)):
        note = f"{run.timing.seconds:.1f} s from its launch ({run.startup_s:.1f} s of start-up)"
        print(row(name, run.timing, corpus, note))
    print(row("tail -c +1 | grep -E -c -f, LC_ALL=C", tail_grep, corpus, f"{tail_grep.seconds:.1f} s"))
    theirs = tail_grep.lines_per_s()
    same = all(run.matches == {name: n for name, n in want.counts.items() if n} for run in (first, again))
    print(
        f"  tailhook = {times(first.timing.lines_per_s(), theirs)} tail | grep's speed at its first start, "
        f"{times(again.timing.lines_per_s(), theirs)} with its rules compiled; matches per rule in /metrics: "
        f"{'MATCH' if same else 'DIFFERENT'} (the naive loop's)"
    )
    ours = first.timing.lines_per_s()
    report_targets(
        (f"at least {TARGET_DAEMON:.1f}x tail | grep's speed", ours / theirs >= TARGET_DAEMON, times(ours, theirs))
    )


# ── the run ─────────────────────────────────────────────────────────────────


def measure_count(
    folder: Path,
    corpus: Corpus,
    rules: Sequence[Rule],
    eres: Sequence[str],
    *,
    naive: Timing,
    matches: Sequence[NaiveMatch],
) -> CountResult:
    rule_file = write_rule_file(folder, rules)
    grep, grep_matched = grep_count(write_patterns(folder, eres), corpus)
    cache = folder / "cache"
    return CountResult(
        rules=rules,
        want=expected(matches, rules, corpus),
        tailhook=tailhook_test(rule_file, corpus, jobs=None, cache=cache),
        alone=tailhook_test(rule_file, corpus, jobs=1, cache=cache),
        grep=grep,
        grep_matched=grep_matched,
        naive=naive,
        fail2ban=fail2ban_run(folder, rules, corpus),
    )


def main() -> None:
    samples = loghub_samples()
    if not samples:
        print(f"rule matching at scale: skipped: no loghub samples (*_2k.log) in {LOGHUB}")
        return
    rules = load_rule_list()
    eres = [posix_ere(rule["match"]) for rule in rules]
    with tempfile.TemporaryDirectory(prefix="tailhook-bench-rules-") as name:
        folder = Path(name)
        corpus = write_corpus(folder, samples_bytes(samples))
        print(
            f"rule matching at scale: {corpus.lines:,} lines, {corpus.megabytes:.1f} MB: the {len(samples)} loghub "
            f"samples ({corpus.sample_lines:,} lines) {corpus.copies} times; rules: {RULESET.relative_to(ROOT)} "
            f"and its first {', '.join(map(str, RULE_COUNTS[:-1]))}"
        )
        naive, matches = naive_runs(corpus, rules)
        everything = expected(matches, rules, corpus)
        problems = translation_disagreements(rules, eres, everything, corpus.sample)
        print(
            f"  POSIX ERE translation: {len(rules) - len(problems)} of {len(rules)} rules match the same sample "
            "lines under grep -E as under Python re"
        )
        for problem in problems:
            print(f"    DIFFERENT: {problem}")
        for count in RULE_COUNTS:
            result = measure_count(folder, corpus, rules[:count], eres[:count], naive=naive[count], matches=matches)
            report_count(result, corpus)
        tail_grep, _ = grep_count(write_patterns(folder, eres), corpus, through_tail=True)
        rule_file = write_rule_file(folder, rules)
        first = daemon_path(folder / "daemon", rule_file, corpus)
        again = daemon_path(folder / "restart", rule_file, corpus, cache=folder / "daemon" / "state" / "cache")
        report_daemon((first, again), tail_grep, everything, corpus, len(rules))


if __name__ == "__main__":
    main()

"""Tailing: append-to-POST latency, reading throughput, idle cost with 1,000 watched files.

Each figure is measured beside a peer in the same run, on the same files:

- Latency: ``tailhook run`` (a subprocess, as users run it) follows a glob
  and sends every line that matches ``LOUD …`` to the Discord stand-in, which
  runs in a thread of this process; 300 lines, each with its own storm key,
  are appended to one file, one every 25 ms. A line's latency is from the
  moment its ``write`` returned to the moment the stand-in accepted its POST,
  both on this process's monotonic clock. Twice: with that file the only one
  the glob matches, and among 1,000 (the others stay silent); CPU time of
  both processes is taken over the appending. The stand-in's bucket is set
  to 1,000,000 requests per minute: Discord's 5 per 2 s would pace the
  requests and measure the bucket instead of tailhook. The peer, GNU
  ``tail -F -n0`` on the same files at the same time, its output read by a
  thread here, is the floor any inotify tailer can reach (it sends nothing).
- Throughput: ``FileSource`` over a 200 MB file of synthetic syslog and auth
  lines mixed with loghub samples (read in place when ``../shared/corpus/loghub``
  is there, never copied), from its beginning, in this process, as the daemon
  reads plain files: blocks of whole lines, each given the rules' engine pass
  in the reading thread. Once alone (an emit that does nothing), once into
  ``App.ingest`` as the daemon does:
  the shipped rules of ``rules.d/ssh.yaml`` and ``system.yaml`` (their
  ``sources:`` lifted, so all apply to the one source), storm control and the
  ingest commit into a real spool.
  Peers: ``grep -c -P`` with the same rules as one alternation, on the file
  and behind ``tail -c +1``. The file was just written and synced, so everyone
  reads it from the page cache; each is timed twice and the faster run counts.
- Idle: 1,000 small log files, watched by ``tailhook run`` (one glob, alerts to
  the console) and by ``tail -F -n0`` over the same files, side by side for
  25 s of silence: CPU time from ``/proc/<pid>/stat`` as a share of one core,
  and memory from ``/proc/<pid>/status`` (VmRSS, VmHWM). Also how long
  tailhook took to log ``started on`` with 1,000 files to open, and with one.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import re
import subprocess
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from tests.daemon import Daemon, wait_until
from tests.discord_standin import standin_in_thread

import tailhook
from tailhook.app import App
from tailhook.config import load_config
from tailhook.events import Line
from tailhook.rules import RuleSet
from tailhook.sources import Block
from tailhook.sources.file import FileSource
from tailhook.spool import Checkpoint, Spool

ROOT = Path(__file__).resolve().parent.parent
LOGHUB = ROOT.parent / "shared" / "corpus" / "loghub"
DAEMON_ENV = {
    "TAILHOOK_LOG_LEVEL": "info",
    # The subprocess runs the tailhook this process imported, whatever is installed.
    "PYTHONPATH": os.pathsep.join(
        filter(None, [str(Path(tailhook.__file__).parent.parent), os.environ.get("PYTHONPATH")])
    ),
}

LATENCY_LINES = 300
LATENCY_INTERVAL_S = 0.025
THROUGHPUT_BYTES = 200_000_000
ROUNDS = 2
IDLE_FILES = 1000
IDLE_SECONDS = 25.0
NAMED_GROUP = re.compile(r"\(\?P<\w+>")
NUMBERED = re.compile(rb"bench-(\d+)")


# ── peers and measuring tools ───────────────────────────────────────────────


class TailReader:
    """``tail -F -n0`` on *paths*; a thread here timestamps each line it prints."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.lines: list[tuple[float, bytes]] = []
        self.process = subprocess.Popen(
            ["tail", "-F", "-n0", *map(str, paths)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self._thread = threading.Thread(target=self._read, name="tail-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line))

    def numbered(self) -> dict[int, float]:
        """When each numbered line was printed (tail also prints ``==> file <==`` headers)."""
        return {number(text): at for at, text in self.lines if NUMBERED.search(text)}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._thread.join(5)  # the pipe ends with tail
        assert self.process.stdout is not None
        self.process.stdout.close()


@contextlib.contextmanager
def tail_reader(paths: Sequence[Path]) -> Iterator[TailReader]:
    tail = TailReader(paths)
    try:
        yield tail
    finally:
        tail.stop()


@contextlib.contextmanager
def running(config: Path) -> Iterator[Daemon]:
    """``tailhook run -c config``, stopped at the end, killed if the benchmark failed."""
    daemon = Daemon(config, env=DAEMON_ENV)
    try:
        yield daemon
    except BaseException:
        daemon.kill()
        raise
    daemon.stop()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of *pid* so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM (the peak RSS) of *pid*, in MB."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value at least *fraction* of *values* do not exceed."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


# ── 1. append → POST latency ────────────────────────────────────────────────


LATENCY_RULES = """
rules:
  - name: loud
    match: 'LOUD (?P<what>.*)'
    severity: critical
    key: '{what}'
    title: 'loud: {what}'
"""


@dataclass(frozen=True)
class Latency:
    watched: int
    tailhook_ms: list[float]
    tail_ms: list[float]
    tailhook_cpu: float
    """Share of one core while the lines were appended and sent, 0..1."""
    tail_cpu: float
    startup_s: float
    """How long ``tailhook run`` took to log ``started on``."""


def latency(folder: Path, *, watched: int) -> Latency:
    """Lines appended to the first of *watched* files, followed by tailhook and by tail."""
    logs = folder / "logs"
    logs.mkdir()
    paths = [logs / f"app-{n:04d}.log" for n in range(watched)]
    for path in paths:
        path.touch()
    (folder / "rules.yaml").write_text(LATENCY_RULES.lstrip(), encoding="utf-8")
    with standin_in_thread(bucket_limit=1_000_000, bucket_reset_after=60.0) as discord:
        config = folder / "tailhook.yaml"
        config.write_text(latency_config(discord.url()), encoding="utf-8")
        with tail_reader(paths) as tail:
            started = time.monotonic()
            with running(config) as daemon:
                daemon.wait_for_log("started on", timeout=60)
                startup_s = time.monotonic() - started
                pids = (daemon.process.pid, tail.process.pid)
                append_warm_up(paths[0], tail, lambda: len(discord.received))
                before, since = [cpu_seconds(pid) for pid in pids], time.monotonic()
                appended = append_paced(paths[0])
                received = discord.wait_for(LATENCY_LINES + 1, timeout=60)
                wait_until(lambda: len(tail.numbered()) >= LATENCY_LINES, 10, "tail's lines")
                elapsed = time.monotonic() - since
                ours, theirs = ((cpu_seconds(pid) - cpu) / elapsed for pid, cpu in zip(pids, before, strict=True))
    posted = {number(message.payload["embeds"][0]["title"].encode()): message.time for message in received}
    printed = tail.numbered()
    return Latency(
        watched=watched,
        tailhook_ms=[(posted[n] - at) * 1000 for n, at in appended.items()],
        tail_ms=[(printed[n] - at) * 1000 for n, at in appended.items()],
        tailhook_cpu=ours,
        tail_cpu=theirs,
        startup_s=startup_s,
    )


def latency_config(url: str) -> str:
    """One file source over every file in ``logs/``, storm control that holds nothing back, the stand-in."""
    return textwrap.dedent(
        f"""
        state_dir: state
        shutdown_timeout: 2s
        sources:
          - {{name: app, paths: ['logs/*.log']}}
        rules:
          paths: [rules.yaml]
        storm: {{window: 60s, max_per_window: 1000}}
        destinations:
          alerts: {{url: '{url}'}}
        """
    ).lstrip()


def append_warm_up(log: Path, tail: TailReader, posts: Callable[[], int]) -> None:
    """One line that both followers must have passed on before the measured lines start."""
    with log.open("ab") as out:
        out.write(b"Nov 23 10:00:00 web-1 app[4242]: LOUD warm-up\n")
    wait_until(lambda: posts() >= 1 and any(b"LOUD" in text for _, text in tail.lines), 10, "the warm-up line")


def append_paced(log: Path) -> dict[int, float]:
    """The numbered lines at a steady pace; when each ``write`` returned."""
    out = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        appended: dict[int, float] = {}
        started = time.monotonic()
        for n in range(LATENCY_LINES):
            os.write(out, f"Nov 23 10:00:01 web-1 app[4242]: LOUD bench-{n:04d} queue is full\n".encode())
            appended[n] = time.monotonic()
            time.sleep(max(0.0, started + (n + 1) * LATENCY_INTERVAL_S - time.monotonic()))
        return appended
    finally:
        os.close(out)


def number(text: bytes) -> int:
    found = NUMBERED.search(text)
    return int(found[1]) if found else -1  # the warm-up line


# ── 2. throughput into the rules ────────────────────────────────────────────


@dataclass(frozen=True)
class Throughput:
    megabytes: float
    lines: int
    rules: int
    matching: int
    alerts: int
    source_alone_s: float
    ingest_s: float
    grep_s: float
    tail_grep_s: float


SYNTHETIC = (
    "sshd[{pid}]: Accepted publickey for deploy from 10.0.{a}.{b} port {port} ssh2: ED25519 SHA256:q3Vf{pid}",
    "sshd[{pid}]: pam_unix(sshd:session): session opened for user deploy(uid=1000) by (uid=0)",
    "sshd[{pid}]: Received disconnect from 10.0.{a}.{b} port {port}:11: disconnected by user",
    "CRON[{pid}]: pam_unix(cron:session): session closed for user root",
    "CRON[{pid}]: (root) CMD (test -x /usr/sbin/anacron || ( cd / && run-parts --report /etc/cron.daily ))",
    "systemd[1]: Started session-{pid}.scope - Session {pid} of User deploy.",
    "systemd-logind[{a}]: New session {pid} of user deploy.",
    "kernel: [{port}.{pid}] IPv4: martian source 10.0.{a}.{b} from 10.0.0.1, on dev eth0",
    'nginx[{pid}]: 10.0.{a}.{b} - - "GET /api/v1/items/{port} HTTP/1.1" 200 {pid} "-" "curl/8.5.0"',
    "app[{pid}]: INFO request id={port}-{pid} user=u{a} took {b}ms status=200",
)
MATCHING = (
    "sshd[{pid}]: Failed password for invalid user admin from 203.0.113.{b} port {port} ssh2",
    "kernel: [{port}.{pid}] Out of memory: Killed process {pid} (java) total-vm:8123456kB",
    "systemd[1]: backup-{a}.service: Failed with result 'exit-code'.",
)


def log_lines(seed: int = 7) -> list[str]:
    """About 2 MB of lines: mostly synthetic syslog, a few that match a rule, and loghub samples."""
    rng = random.Random(seed)
    lines = []
    for i in range(20_000):
        templates = MATCHING if i % 2000 == 1999 else SYNTHETIC
        fields = {"pid": rng.randint(100, 99999), "a": rng.randint(0, 255), "b": rng.randint(1, 254),
                  "port": rng.randint(1024, 65535)}  # fmt: skip
        stamp = f"Nov {1 + i // 5000:2d} {i // 360 % 24:02d}:{i // 6 % 60:02d}:{i % 60:02d} web-{i % 3 + 1}"
        lines.append(f"{stamp} {rng.choice(templates).format(**fields)}")
    for name in ("Linux_2k.log", "Apache_2k.log", "HDFS_2k.log", "OpenStack_2k.log", "Zookeeper_2k.log"):
        if (LOGHUB / name).exists():
            lines += (LOGHUB / name).read_text(encoding="utf-8", errors="replace").splitlines()
    rng.shuffle(lines)
    return lines


def write_big_log(path: Path) -> int:
    """Write about THROUGHPUT_BYTES of lines to *path*; the number of lines."""
    block = "\n".join(log_lines()) + "\n"
    data = block.encode()
    copies = max(1, THROUGHPUT_BYTES // len(data))
    with path.open("wb") as out:
        for _ in range(copies):
            out.write(data)
        out.flush()
        os.fsync(out.fileno())  # no write-back competing with the runs that follow
    return copies * block.count("\n")


async def read_through(config_path: Path, lines: int, *, ingest: bool) -> tuple[float, int]:
    """Seconds for a ``FileSource`` to hand *lines* lines to emit; and the alerts the spool then holds."""
    config = load_config(config_path)
    app = App(config)
    config.state_dir.mkdir(exist_ok=True)
    spool = app.spool = await Spool.open(Path(tempfile.mkdtemp(dir=config.state_dir)))
    seen = 0
    done = asyncio.Event()

    async def emit(batch: Sequence[Line | Block], checkpoints: Sequence[Checkpoint]) -> None:
        nonlocal seen
        if ingest:
            await app.ingest(batch, checkpoints)
        seen += sum(item.lines if isinstance(item, Block) else 1 for item in batch)
        if seen >= lines:
            done.set()

    try:
        started = time.perf_counter()
        # as the daemon reads plain files: blocks of whole lines, scanned ahead in the reading thread
        source = FileSource(config.sources[0], checkpoints={}, blocks=True, prescan=app.prescan)
        await source.start()
        reading = asyncio.create_task(source.run(emit))
        await done.wait()
        elapsed = time.perf_counter() - started
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        return elapsed, await spool.pending()
    finally:
        await spool.close()


def shipped_rules(folder: Path, *names: str) -> Path:
    """The rules of ``rules.d/NAME`` in one file, without ``sources:``: they apply to any source."""
    rules = []
    for name in names:
        for rule in yaml.safe_load((ROOT / "rules.d" / name).read_text(encoding="utf-8"))["rules"]:
            rule.pop("sources", None)
            rules.append(rule)
    path = folder / f"rules-{'-'.join(n.removesuffix('.yaml') for n in names)}.yaml"
    path.write_text(yaml.safe_dump({"rules": rules}, sort_keys=False), encoding="utf-8")
    return path


def grep_pattern(config_path: Path) -> tuple[str, int]:
    """The configured rules (all apply to the ``auth`` source) as one PCRE alternation; and how many."""
    rules = RuleSet(load_config(config_path).rules, host="bench").rules
    # PCRE refuses one capture name twice in a pattern: plain groups do the same matching.
    return "|".join(f"(?:{NAMED_GROUP.sub('(', rule.pattern.pattern)})" for rule in rules), len(rules)


def timed_grep(pattern: str, path: Path, *, through_tail: bool) -> tuple[float, int]:
    """Seconds for ``grep -c -P`` over *path* (read itself, or behind ``tail -c +1``); its count."""
    started = time.perf_counter()
    if through_tail:
        tail = subprocess.Popen(["tail", "-c", "+1", str(path)], stdout=subprocess.PIPE)
        grep = subprocess.run(["grep", "-c", "-P", pattern], stdin=tail.stdout, capture_output=True, check=True)
        assert tail.stdout is not None
        tail.stdout.close()
        tail.wait()
    else:
        grep = subprocess.run(["grep", "-c", "-P", pattern, str(path)], capture_output=True, check=True)
    return time.perf_counter() - started, int(grep.stdout)


def throughput(folder: Path) -> Throughput:
    big = folder / "big.log"
    lines = write_big_log(big)
    config_path = folder / "throughput.yaml"
    config_path.write_text(
        textwrap.dedent(
            f"""
            state_dir: state
            sources:
              - {{name: auth, paths: ['{big}'], start_at: beginning}}
            rules:
              paths: ['{shipped_rules(folder, "ssh.yaml", "system.yaml")}']
            """
        ),
        encoding="utf-8",
    )
    pattern, rules = grep_pattern(config_path)
    # The faster of ROUNDS runs each: (seconds, count) tuples compare by their seconds.
    grep_s, matching = min(timed_grep(pattern, big, through_tail=False) for _ in range(ROUNDS))
    tail_grep_s, _ = min(timed_grep(pattern, big, through_tail=True) for _ in range(ROUNDS))
    alone_s, _ = min(asyncio.run(read_through(config_path, lines, ingest=False)) for _ in range(ROUNDS))
    ingest_s, alerts = min(asyncio.run(read_through(config_path, lines, ingest=True)) for _ in range(ROUNDS))
    return Throughput(
        megabytes=big.stat().st_size / 1e6, lines=lines, rules=rules, matching=matching, alerts=alerts,
        source_alone_s=alone_s, ingest_s=ingest_s, grep_s=grep_s, tail_grep_s=tail_grep_s,
    )  # fmt: skip


# ── 3. idle cost with 1,000 watched files ───────────────────────────────────


@dataclass(frozen=True)
class Idle:
    startup_s: float
    tailhook_cpu: float
    """Share of one core, 0..1."""
    tailhook_mb: tuple[float, float]
    tail_cpu: float
    tail_mb: tuple[float, float]


def idle(folder: Path) -> Idle:
    logs = folder / "logs"
    logs.mkdir()
    files = [logs / f"service-{n:04d}.log" for n in range(IDLE_FILES)]
    for n, path in enumerate(files):
        path.write_text(f"Nov 23 10:00:00 web-1 service-{n}[{n}]: started\n", encoding="utf-8")
    config = folder / "idle.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            state_dir: state
            sources:
              - {{name: services, paths: ['{logs}/*.log']}}
            rules:
              paths: ['{shipped_rules(folder, "system.yaml")}']
            """
        ),
        encoding="utf-8",
    )
    with tail_reader(files) as tail:
        time.sleep(1.0)  # tail opens and watches its files
        started = time.monotonic()
        with running(config) as daemon:
            daemon.wait_for_log("started on", timeout=120)
            startup_s = time.monotonic() - started
            time.sleep(2.0)  # the first turn over every file is done
            pids = (daemon.process.pid, tail.process.pid)
            before = [cpu_seconds(pid) for pid in pids]
            time.sleep(IDLE_SECONDS)
            ours, theirs = (cpu_seconds(pid) - cpu for pid, cpu in zip(pids, before, strict=True))
            ours_mb, theirs_mb = (memory_mb(pid) for pid in pids)
    return Idle(startup_s, ours / IDLE_SECONDS, ours_mb, theirs / IDLE_SECONDS, theirs_mb)


# ── the report ──────────────────────────────────────────────────────────────


def ratio(ours: float, theirs: float) -> str:
    times = ours / theirs
    return f"{times:.0f}x" if times >= 10 else f"{times:.1f}x"


def report_latency(results: Sequence[Latency]) -> None:
    print(
        f"append → POST latency: {LATENCY_LINES} lines into one file, one every {LATENCY_INTERVAL_S * 1000:.0f} ms "
        "(target: tailhook's p99 under 50 ms)"
    )
    print(f"  {'':40} {'p50':>9} {'p99':>9} {'max':>9}   CPU while appending")
    for result in results:
        watched = f"{result.watched:,} file{'s' if result.watched > 1 else ''} watched"
        rows = (
            (f"tailhook → stand-in, {watched}", result.tailhook_ms, result.tailhook_cpu),
            (f"tail -F -n0 → pipe, {watched}", result.tail_ms, result.tail_cpu),
        )
        for name, values, cpu in rows:
            p50, p99 = percentile(values, 0.50), percentile(values, 0.99)
            print(f"  {name:40} {p50:6.1f} ms {p99:6.1f} ms {max(values):6.1f} ms   {cpu * 100:5.1f}% of a core")
    for result in results:
        p50 = ratio(percentile(result.tailhook_ms, 0.50), percentile(result.tail_ms, 0.50))
        p99 = ratio(percentile(result.tailhook_ms, 0.99), percentile(result.tail_ms, 0.99))
        print(f"  ratio     {result.watched:,} watched: tailhook's p50 is {p50} tail's, its p99 {p99}")


def report_throughput(result: Throughput) -> None:
    print(
        f"tailing throughput: {result.megabytes:.0f} MB, {result.lines:,} lines, "
        f"{result.rules} rules ({result.matching:,} lines match)"
    )
    rows = (
        ("file source alone", result.source_alone_s),
        ("file source → rules → spool", result.ingest_s),
        ("grep -c -P", result.grep_s),
        ("tail -c +1 | grep -c -P", result.tail_grep_s),
    )
    for name, seconds in rows:
        print(f"  {name:30} {result.megabytes / seconds:7.1f} MB/s {result.lines / seconds:>12,.0f} lines/s")
    print(f"  alerts stored after storm control: {result.alerts:,}")
    print(
        f"  ratio     tailhook takes {ratio(result.ingest_s, result.grep_s)} grep's time, "
        f"{ratio(result.ingest_s, result.tail_grep_s)} tail | grep's; "
        f"the file source alone {ratio(result.source_alone_s, result.grep_s)} grep's"
    )


def report_idle(result: Idle, *, one_file_startup_s: float) -> None:
    print(
        f"idle, {IDLE_FILES:,} watched files, {IDLE_SECONDS:.0f} s: tailhook started in {result.startup_s:.2f} s "
        f"(with one file: {one_file_startup_s:.2f} s)"
    )
    # /proc counts CPU time in clock ticks: a process that used none is below one tick.
    tick_share = 1 / os.sysconf("SC_CLK_TCK") / IDLE_SECONDS
    rows = (("tailhook run", result.tailhook_cpu, result.tailhook_mb), ("tail -F -n0", result.tail_cpu, result.tail_mb))
    for name, cpu, (rss, peak) in rows:
        share = f"{cpu * 100:6.2f}%" if cpu else f"<{tick_share * 100:5.2f}%"
        print(f"  {name:14} CPU {share} of a core   RSS {rss:6.1f} MB (peak {peak:6.1f} MB)")
    cpu = (
        ratio(result.tailhook_cpu, result.tail_cpu)
        if result.tail_cpu
        else f"over {ratio(result.tailhook_cpu, tick_share)}"
    )
    print(f"  ratio     tailhook uses {cpu} tail's CPU, {ratio(result.tailhook_mb[0], result.tail_mb[0])} its RSS")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tailhook-bench-") as name:
        folder = Path(name)
        for part in ("latency-1", f"latency-{IDLE_FILES}", "throughput", "idle"):
            (folder / part).mkdir()
        latencies = [latency(folder / f"latency-{n}", watched=n) for n in (1, IDLE_FILES)]
        report_latency(latencies)
        report_throughput(throughput(folder / "throughput"))
        report_idle(idle(folder / "idle"), one_file_startup_s=latencies[0].startup_s)


if __name__ == "__main__":
    main()

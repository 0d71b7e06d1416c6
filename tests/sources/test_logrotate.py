"""The file source under the real ``logrotate``, and files changed while tailhook was stopped.

Rotation while running: a writer (a subprocess, as a real program is) appends
uniquely numbered lines, thousands a second, while ``logrotate -f`` rotates its
log again and again, each time with the test's own config and state file. The
oracle is the disk: every numbered line that is, afterwards, in any of the
log's files (``app.log``, ``app.log.1``, ``app.log.2.gz``…) must have reached
the rules, exactly once.

- With ``create`` the writer reopens its log when ``postrotate`` sends it
  SIGHUP, a random moment later, as daemons do; until then it writes into the
  renamed file. Every line it wrote is on disk: that is checked too, as the
  test's own premise.
- With ``copytruncate`` the writer keeps its ``O_APPEND`` descriptor, and
  logrotate itself loses what is written between its copy and its truncate.
  That loss is counted, printed and bounded, not blamed on tailhook.

Changes while stopped: a source is stopped, its files are changed as they are
while tailhook is down, and a new source starts with the checkpoints the spool
would hold: the last value emitted for each key, through JSON, with ``None``
forgetting the key.

The last test runs ``tailhook run`` and kills it with SIGKILL again and again
while logrotate rotates under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from tests.daemon import RULES, Daemon, wait_until
from tests.discord_standin import ThreadedStandIn, numbered_titles, standin_in_thread

from tailhook.config import FileSourceConfig
from tailhook.events import Line
from tailhook.sources.file import FileSource
from tailhook.spool import Checkpoint

pytestmark = pytest.mark.timeout(30)

LOGROTATE = shutil.which("logrotate", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))

PAD = "lorem ipsum dolor sit amet, consectetur adipiscing elit"
NUMBERED = re.compile(rf"seq=(\d+) {PAD}|LOUD n=(\d+) pad")
"""A writer's line, whole: a line torn by a wrong offset does not match."""
BATCH_LINES = 20
BATCH_PAUSE = 0.004
"""The writer's pace: 20 lines every 4 ms and a bit, about 4,000 lines a second."""

WRITER = r"""
import os, random, signal, sys, time

path, batch, pause, reopen_within, loud_every, seed, pad = sys.argv[1:]
batch, pause, reopen_within, loud_every = int(batch), float(pause), float(reopen_within), int(loud_every)
rng = random.Random(int(seed))
hup = stop = False

def on_hup(signum, frame):
    global hup
    hup = True

def on_term(signum, frame):
    global stop
    stop = True

def line(n):
    return f"LOUD n={n} pad\n" if loud_every and n % loud_every == 0 else f"seq={n} {pad}\n"

signal.signal(signal.SIGHUP, on_hup)
signal.signal(signal.SIGTERM, on_term)
flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
fd = os.open(path, flags, 0o644)
print("ready", flush=True)
n, reopen_at = 0, None
while not stop:
    if hup:
        hup = False
        reopen_at = time.monotonic() + rng.uniform(0, reopen_within)
    if reopen_at is not None and time.monotonic() >= reopen_at:
        os.close(fd)
        fd = os.open(path, flags, 0o644)
        reopen_at = None
        print("reopened", flush=True)
    data = memoryview("".join(line(n + i) for i in range(batch)).encode())
    while data:
        data = data[os.write(fd, data):]
    n += batch
    time.sleep(pause)
os.close(fd)
print(f"wrote {n}", flush=True)
"""
"""A program that logs: numbered lines in batches, its log reopened a moment after SIGHUP, its count
printed at SIGTERM. Line n is ``LOUD n=<n> pad`` (an alert) when n is a multiple of ``loud_every``."""


def number(text: str) -> int | None:
    found = NUMBERED.fullmatch(text)
    return None if found is None else int(found.group(1) or found.group(2))


def such_as(seqs: set[int], where: Mapping[int, str] | None = None) -> str:
    """How many, how many in each file, and the first few."""
    first = ", ".join(map(str, sorted(seqs)[:12]))
    if where is None:
        return f"{len(seqs)}, such as {first}"
    files = Counter(where.get(n, "?") for n in seqs)
    per_file = ", ".join(f"{name}: {files[name]}" for name in sorted(files, key=_by_number))
    return f"{len(seqs)} ({per_file}), such as {first}"


def _by_number(name: str) -> list[tuple[int, str]]:
    """``app.log.2.gz`` before ``app.log.10.gz``."""
    return [(int(part), "") if part.isdigit() else (-1, part) for part in name.split(".")]


# ── the writer and logrotate ────────────────────────────────────────────────


class Writer:
    """The writer subprocess; what it says on stdout is counted in a thread."""

    def __init__(self, path: Path, *, reopen_within: float, loud_every: int, seed: int) -> None:
        args = [path, BATCH_LINES, BATCH_PAUSE, reopen_within, loud_every, seed, PAD]
        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER, *map(str, args)],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.ready = threading.Event()
        self.reopens = 0
        self.written: int | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for said in self.process.stdout:
                word, _, count = said.strip().partition(" ")
                if word == "ready":
                    self.ready.set()
                elif word == "reopened":
                    self.reopens += 1
                elif word == "wrote":
                    self.written = int(count)

    def reopened(self, times: int) -> bool:
        return self.reopens >= times

    def stop(self) -> int:
        """SIGTERM; how many lines it wrote."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(10)
        self._reader.join(10)
        assert self.written is not None, f"the writer exited ({self.process.returncode}) without its count"
        return self.written


SpawnWriter = Callable[..., Writer]


@pytest.fixture
def spawn_writer() -> Iterator[SpawnWriter]:
    writers: list[Writer] = []

    def spawn(path: Path, *, reopen_within: float = 0.0, loud_every: int = 0, seed: int = 0) -> Writer:
        writer = Writer(path, reopen_within=reopen_within, loud_every=loud_every, seed=seed)
        writers.append(writer)
        wait_until(writer.ready.is_set, 10, "the writer to start")
        return writer

    yield spawn
    for writer in writers:
        if writer.process.poll() is None:
            writer.process.kill()
            writer.process.wait(10)
        writer._reader.join(10)


def logrotate_config(directory: Path, directives: str, *, signal_pid: int | None = None) -> Path:
    """A logrotate config for ``app.log`` in *directory*; ``postrotate`` sends SIGHUP to *signal_pid*.

    ``rotate 1000`` keeps every rotated file, so the test can read all of them afterwards.
    """
    body = directives + "rotate 1000\nmissingok\nnomail\n"
    if signal_pid is not None:
        body += f"postrotate\n    kill -HUP {signal_pid}\nendscript\n"
    path = directory / "logrotate.conf"
    path.write_text(f'"{directory / "app.log"}" {{\n{textwrap.indent(body, "    ")}}}\n', encoding="utf-8")
    return path


def logrotate(config: Path) -> None:
    """Force one rotation with the real logrotate and a state file of the test's own."""
    assert LOGROTATE, "logrotate is not installed; these tests need the real one (apt-get install logrotate)"
    state = config.with_suffix(".state")
    done = subprocess.run(
        [LOGROTATE, "-f", "-s", str(state), str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"logrotate exited {done.returncode}:\n{done.stdout}{done.stderr}"


def on_disk(directory: Path) -> dict[int, str]:
    """Every numbered line in any of the log's files, compressed ones too: its number → the file's name.

    Only complete lines count: the piece after the last newline is not a line yet.
    """
    found: dict[int, str] = {}
    for path in sorted(directory.glob("app.log*")):
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        for raw in data.split(b"\n")[:-1]:
            seq = number(raw.decode("utf-8", errors="replace"))
            if seq is not None:
                found[seq] = path.name
    return found


# ── a file source in this process ───────────────────────────────────────────


def source_config(*paths: Path | str, **kwargs: Any) -> FileSourceConfig:
    kwargs.setdefault("start_at", "beginning")
    kwargs.setdefault("rescan_interval", 0.5)
    return FileSourceConfig(name="app", paths=tuple(str(p) for p in paths), **kwargs)


@dataclass
class Run:
    """One life of a file source: what it emitted, and the checkpoints the spool holds after it."""

    source: FileSource
    saved: dict[str, Any]
    lines: list[Line] = field(default_factory=list)
    numbers: Counter[int] = field(default_factory=Counter)
    """How often each numbered line was emitted."""
    unnumbered: list[str] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def emit(self, lines: Sequence[Line], checkpoints: Sequence[Checkpoint]) -> None:
        self.lines.extend(lines)
        for line in lines:
            seq = number(line.text)
            if seq is None:
                self.unnumbered.append(line.text)
            else:
                self.numbers[seq] += 1
        for point in checkpoints:
            if point.value is None:
                self.saved.pop(point.key, None)
            else:
                self.saved[point.key] = json.loads(json.dumps(point.value))  # stored as JSON, as the spool does

    async def stop(self) -> dict[str, Any]:
        """Cancel the source, as the daemon's shutdown does; the checkpoints it leaves."""
        if self.task is not None:
            task, self.task = self.task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return dict(self.saved)


Tail = Callable[..., Awaitable[Run]]


@pytest.fixture
async def tail() -> AsyncIterator[Tail]:
    runs: list[Run] = []

    async def start(config: FileSourceConfig, saved: Mapping[str, Any] | None = None) -> Run:
        run = Run(FileSource(config, checkpoints=dict(saved or {})), saved=dict(saved or {}))
        runs.append(run)
        await run.source.start()
        run.task = asyncio.create_task(run.source.run(run.emit))
        return run

    yield start
    for run in runs:
        await run.stop()


async def until(condition: Callable[[], object], timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


def text_of(line: Line) -> Hashable:
    return line.text


def file_and_text(line: Line) -> Hashable:
    return (os.path.basename(line.path), line.text)


async def until_lines(
    run: Run, expected: Counter[Any], key: Callable[[Line], Hashable] = text_of, timeout: float = 5.0
) -> None:
    """Wait until every expected line was emitted, then check that nothing else was: none twice."""

    def got() -> Counter[Any]:
        return Counter(key(line) for line in run.lines)

    with contextlib.suppress(AssertionError):
        await until(lambda: not expected - got(), timeout, "the expected lines")
    missing, extra = expected - got(), got() - expected
    assert not missing and not extra, (
        f"{missing.total()} lines never read, such as {sorted(missing)[:8]}; "
        f"{extra.total()} read that should not have been (again), such as {sorted(extra)[:8]}"
    )


async def until_numbers(run: Run, wanted: set[int], *, timeout: float, stall: float) -> set[int]:
    """Wait until every number in *wanted* was emitted; what is still missing after *timeout* seconds,
    or after *stall* seconds in which the source emitted nothing at all."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    progress, count = loop.time(), len(run.lines)
    while missing := wanted.difference(run.numbers):
        now = loop.time()
        if len(run.lines) != count:
            progress, count = now, len(run.lines)
        if now > deadline or now - progress > stall:
            return missing
        await asyncio.sleep(0.05)
    return set()


def lines(prefix: str, count: int, start: int = 0) -> list[str]:
    return [f"{prefix} {i:04d}" for i in range(start, start + count)]


def write(path: Path, texts: Sequence[str]) -> None:
    """Append *texts* as lines, as a program that opens its log for each write does."""
    with path.open("a", encoding="utf-8") as out:
        out.writelines(text + "\n" for text in texts)


def in_file(path: Path, texts: Sequence[str]) -> Counter[Any]:
    """The lines expected from *path*, keyed as ``file_and_text`` keys emitted lines."""
    return Counter((path.name, text) for text in texts)


# ── logrotate while a writer appends ────────────────────────────────────────

ROTATIONS = 12
REOPEN_WITHIN = 0.1
"""A daemon reopens its log up to this long after SIGHUP; until then it writes into the renamed file."""

MODES = {
    "create": ("create\n", True),
    "create-compress-delaycompress": ("create\ncompress\ndelaycompress\n", True),
    "copytruncate-compress-delaycompress": ("copytruncate\ncompress\ndelaycompress\n", False),
}
"""logrotate directives, and whether the writer is told to reopen. ``compress`` without
``delaycompress`` would gzip a file that a writer (create) or tailhook (copytruncate) has not
finished with, which is why real configs pair them."""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", list(MODES))
async def test_every_line_on_disk_after_logrotate_reached_the_rules(
    tmp_path: Path, mode: str, tail: Tail, spawn_writer: SpawnWriter
) -> None:
    directives, reopens = MODES[mode]
    log = tmp_path / "app.log"
    log.touch()
    writer = spawn_writer(log, reopen_within=REOPEN_WITHIN if reopens else 0.0, seed=len(mode))
    config = logrotate_config(tmp_path, directives, signal_pid=writer.process.pid if reopens else None)
    run = await tail(source_config(log))
    rng = random.Random(mode)
    try:
        for rotation in range(1, ROTATIONS + 1):
            await asyncio.sleep(rng.uniform(0.2, 0.4))  # the pace of rotations: the workload, not a wait
            await asyncio.to_thread(logrotate, config)
            if reopens:
                # Before the next rotation compresses the renamed file, the writer has left it,
                # as a daemon's reopen comes long before the next rotation.
                await until(partial(writer.reopened, rotation), 10, f"the writer to reopen (rotation {rotation})")
    finally:
        written = await asyncio.to_thread(writer.stop)

    disk = on_disk(tmp_path)
    missing = await until_numbers(run, set(disk), timeout=30, stall=5)
    await run.stop()
    received = run.numbers
    duplicates = sum(count - 1 for count in received.values())
    lost_by_logrotate = set(range(written)) - set(disk)
    counters = getattr(run.source, "counters", "")
    print(
        f"\n{mode}: {written} lines written, {len(received)} received, {duplicates} duplicates, "
        f"{ROTATIONS} rotations, {len(lost_by_logrotate)} lost by logrotate itself; {counters}"
    )

    # The test's premises: logrotate rotated every time, and with create every line is on disk.
    assert len(list(tmp_path.glob("app.log.*"))) == ROTATIONS, sorted(p.name for p in tmp_path.iterdir())
    if reopens:
        assert not lost_by_logrotate, f"lines on no file on disk: {such_as(lost_by_logrotate)}"
    else:
        # Only what is written in the moment between logrotate's copy and its truncate: well under 1%
        # on a quiet machine, a few % on a loaded one. More, and this test would test little.
        assert len(lost_by_logrotate) <= written // 10, such_as(lost_by_logrotate)

    assert not missing, f"lines on disk that never reached the rules: {such_as(missing, disk)}"
    assert not run.unnumbered, f"torn or foreign lines: {len(run.unnumbered)}, such as {run.unnumbered[:5]}"
    # Each line sits at one place in one file, read by a source that never restarted.
    assert duplicates == 0, f"lines read twice: {such_as({n for n, c in received.items() if c > 1}, disk)}"


# ── files changed while tailhook was stopped ────────────────────────────────


async def read_then_stop(tail: Tail, log: Path, text: list[str]) -> dict[str, Any]:
    """Write *text* to *log*, follow it until every line is read, stop: the checkpoints a restart gets."""
    write(log, text)
    first = await tail(source_config(log))
    await until_lines(first, Counter(text))
    return await first.stop()


async def test_a_file_deleted_and_made_again_while_stopped_is_read_from_its_start(tmp_path: Path, tail: Tail) -> None:
    log = tmp_path / "app.log"
    saved = await read_then_stop(tail, log, lines("old", 50))

    log.unlink()
    write(log, lines("new", 5))  # shorter than what was read of the old one
    second = await tail(source_config(log), saved)
    write(log, ["end"])  # read after everything before it in the file
    await until_lines(second, Counter([*lines("new", 5), "end"]))


async def test_copytruncate_while_stopped_then_regrowth_past_the_old_offset_is_read_from_0(
    tmp_path: Path, tail: Tail
) -> None:
    log = tmp_path / "app.log"
    saved = await read_then_stop(tail, log, lines("before", 20))
    read = log.stat().st_size

    logrotate(logrotate_config(tmp_path, "copytruncate\n"))
    write(log, lines("after.", 40))  # as long a line as before: the old offset falls on a line's start
    assert log.stat().st_size > read
    second = await tail(source_config(log), saved)
    write(log, ["end"])
    await until_lines(second, Counter([*lines("after.", 40), "end"]))


async def test_copytruncate_while_stopped_reads_the_unread_tail_from_the_copy(tmp_path: Path, tail: Tail) -> None:
    log = tmp_path / "app.log"
    saved = await read_then_stop(tail, log, lines("before", 20))

    write(log, lines("unread", 10))  # written after tailhook stopped, before the rotation copied it away
    logrotate(logrotate_config(tmp_path, "copytruncate\n"))
    write(log, lines("after.", 5))
    second = await tail(source_config(log), saved)
    write(log, ["end"])
    await until_lines(second, Counter([*lines("unread", 10), *lines("after.", 5), "end"]))


async def test_rename_rotation_while_stopped_reads_the_old_files_tail_and_the_new_file(
    tmp_path: Path, tail: Tail
) -> None:
    log = tmp_path / "app.log"
    saved = await read_then_stop(tail, log, lines("before", 20))

    with log.open("a", encoding="utf-8") as program:  # a program that keeps its log open
        program.writelines(f"{text}\n" for text in lines("unread", 10))
        program.flush()
        logrotate(logrotate_config(tmp_path, "create\n"))
        program.writelines(f"{text}\n" for text in lines("late", 3))  # before it reopens
    write(log, lines("new", 5))
    second = await tail(source_config(log), saved)
    write(log, ["end"])
    await until_lines(second, Counter([*lines("unread", 10), *lines("late", 3), *lines("new", 5), "end"]))


async def test_200_files_with_the_same_first_line_are_each_read_once(tmp_path: Path, tail: Tail) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    header = "2026-03-01T00:00:00Z service starting, version 1.2.3 (the same first line in every file)"
    files = [logs / f"svc-{i:03d}.log" for i in range(200)]
    expected: Counter[Any] = Counter()
    for path in files:
        write(path, [header, *lines(path.stem, 3)])
        expected += in_file(path, [header, *lines(path.stem, 3)])
    config = source_config(logs / "*.log")
    first = await tail(config)
    await until_lines(first, expected, file_and_text, timeout=20)
    saved = await first.stop()

    expected = Counter()
    for path in files[::7]:  # appended while stopped
        write(path, lines(path.stem, 2, start=3))
        expected += in_file(path, lines(path.stem, 2, start=3))
    made = [logs / f"new-{i}.log" for i in range(5)]
    for path in made:  # made while stopped, with the same first line
        write(path, [header, *lines(path.stem, 1)])
        expected += in_file(path, [header, *lines(path.stem, 1)])
    second = await tail(config, saved)
    for path in files + made:
        write(path, ["end"])
        expected += in_file(path, ["end"])
    await until_lines(second, expected, file_and_text, timeout=20)


@pytest.mark.parametrize("size", ["same size", "bigger"])
async def test_a_file_made_in_a_deleted_files_place_while_stopped_is_read_from_its_start(
    tmp_path: Path, tail: Tail, size: str
) -> None:
    log = tmp_path / "app.log"
    old = lines("old", 30)
    saved = await read_then_stop(tail, log, old)
    before = log.stat()

    # Deleted and made again at once: ext4 and xfs hand out the freed inode again.
    new = ["NEW 0000", *old[1:]] if size == "same size" else lines("new", 40)
    log.unlink()
    write(log, new)
    assert (log.stat().st_size == before.st_size) if size == "same size" else (log.stat().st_size > before.st_size)
    print(f"\ninode reused: {log.stat().st_ino == before.st_ino}")
    second = await tail(source_config(log), saved)
    write(log, ["end"])
    await until_lines(second, Counter([*new, "end"]))


# ── tailhook run, killed while logrotate rotates ────────────────────────────

KILLS = 6
LOUD_EVERY = 20
"""One line in 20 is an alert: the reading is heavy, the alerts stay within Discord's pace."""
TITLE = re.compile(r"^loud: n=(\d+) pad$")


def alerted(discord: ThreadedStandIn) -> Counter[int]:
    return numbered_titles(discord, TITLE)


def daemon_config(directory: Path, url: str) -> Path:
    (directory / "rules.d").mkdir()
    (directory / "rules.d" / "rules.yaml").write_text(RULES.lstrip(), encoding="utf-8")
    path = directory / "tailhook.yaml"
    text = f"""
        state_dir: state
        shutdown_timeout: 2s
        sources:
          - {{name: app, paths: [app.log], start_at: beginning, rescan_interval: 500ms}}
        rules:
          paths: ["rules.d/*.yaml"]
        storm: {{window: 60s, max_per_window: 100, max_keys_per_window: 100000}}
        probe: {{mode: off}}
        destinations:
          alerts: {{url: '{url}'}}
    """
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def let_it_run(daemon: Daemon, seconds: float) -> None:
    """The random moment the daemon reads for before the next event: the workload, not a wait."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and daemon.process.poll() is None:
        time.sleep(0.005)


@pytest.mark.timeout(120)
def test_sigkill_while_logrotate_rotates_loses_no_alert(tmp_path: Path, spawn_writer: SpawnWriter) -> None:
    rng = random.Random(20260301)
    log = tmp_path / "app.log"
    log.touch()
    with standin_in_thread(bucket_limit=1000, bucket_reset_after=1.0) as discord:
        config = daemon_config(tmp_path, discord.url())
        writer = spawn_writer(log, reopen_within=0.05, loud_every=LOUD_EVERY, seed=3)
        rotation_config = logrotate_config(tmp_path, "create\n", signal_pid=writer.process.pid)
        rotations = 0

        def rotate() -> None:
            nonlocal rotations
            logrotate(rotation_config)
            rotations += 1
            wait_until(partial(writer.reopened, rotations), 10, f"the writer to reopen (rotation {rotations})")

        try:
            for round_ in range(KILLS):
                daemon = Daemon(config)
                try:
                    daemon.started()
                    let_it_run(daemon, rng.uniform(0.1, 0.5))
                    rotate()  # under the running daemon
                    let_it_run(daemon, rng.uniform(0.0, 0.4))
                finally:
                    daemon.kill()
                assert daemon.process.returncode == -9, daemon.stderr[-3000:]
                if round_ % 2 == 0:
                    rotate()  # while it is down
        finally:
            written = writer.stop()

        disk = on_disk(tmp_path)
        loud = set(range(0, written, LOUD_EVERY))
        assert not loud - set(disk), f"alert lines on no file on disk: {such_as(loud - set(disk))}"

        final = Daemon(config)
        try:
            final.started()
            deadline, progress = time.monotonic() + 60, [time.monotonic(), 0]

            def done_or_stalled() -> bool:
                """All alerts arrived; or none for 10 s, or a minute passed: it will not catch up."""
                got, now = alerted(discord), time.monotonic()
                if len(got) != progress[1]:
                    progress[:] = [now, len(got)]
                return loud <= got.keys() or now - progress[0] > 10 or now > deadline

            wait_until(done_or_stalled, timeout=70, what=f"all {len(loud)} alerts")
        finally:
            assert final.stop() == 0, final.stderr[-3000:]

    received = alerted(discord)
    missing = loud - received.keys()
    duplicates = sum(count - 1 for count in received.values())
    print(
        f"\n{written} lines written ({len(loud)} alerts), {KILLS} SIGKILLs, {rotations} rotations, "
        f"{len(received)} alerts received, {duplicates} duplicates"
    )
    assert not missing, f"alerts never delivered: {such_as(missing, disk)}"
    # A duplicate comes only from a kill between Discord's answer and the spool's delete: one message
    # (at most 10 embeds) is in flight per destination, so at most 10 per kill.
    assert duplicates <= 10 * KILLS
    assert "Traceback" not in final.stderr

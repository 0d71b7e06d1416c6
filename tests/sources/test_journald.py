"""The journald source over real journal files written by systemd-journal-remote, through both readers.

Every test runs twice, once through systemd-python and once through
``journalctl --output=json --follow`` (the ``reader`` fixture). The journals are
written as journald would store them: ``write_journal`` pipes entries in the
journal export format to ``systemd-journal-remote``, which appends them to a
journal file in the test's folder (another file name: another file, as after a
rotation). A test waits for what it expects with a timeout, and checks that
nothing else came by waiting for an entry written after the ones that must not
arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import shutil
import struct
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tailhook.config import JournaldSourceConfig, journal_reader, load_rules
from tailhook.events import Line
from tailhook.rules import RuleSet
from tailhook.sources import journald
from tailhook.sources.decode import CUT_MARKER
from tailhook.sources.journald import JournaldSource
from tailhook.spool import Checkpoint

JOURNAL_REMOTE = shutil.which("systemd-journal-remote") or "/lib/systemd/systemd-journal-remote"

pytestmark = [
    pytest.mark.timeout(30),
    pytest.mark.skipif(not Path(JOURNAL_REMOTE).exists(), reason="systemd-journal-remote is not installed"),
    pytest.mark.skipif(shutil.which("journalctl") is None, reason="journalctl is not installed"),
]

THIS_BOOT = Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")
OTHER_BOOT = "0123456789abcdef0123456789abcdef"
WAIT_S = 10.0
"""How long a test waits for what it expects before it fails."""


@pytest.fixture(params=["systemd-python", "journalctl"])
def reader(request: pytest.FixtureRequest) -> str:
    """Every test runs against both readers."""
    if journal_reader(request.param) is None:
        pytest.skip(f"{request.param} is not installed here")
    return str(request.param)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The journal folder a test's source reads (``directory:``)."""
    path = tmp_path / "journal"
    path.mkdir()
    return path


ReaderFactory = Callable[[JournaldSourceConfig, str], journald.JournalReader]


@pytest.fixture
def slow_to_start(tmp_path: Path, reader: str) -> ReaderFactory:
    """The reader, on a busy host: journalctl takes 0.3 s to start (the binding opens the journal in
    ``start()``, and stays as it is)."""
    if reader != "journalctl":
        return journald.make_reader
    from tailhook.sources.journal_cli import JournalctlReader  # noqa: PLC0415

    slow = tmp_path / "slow-journalctl"
    slow.write_text(f'#!/bin/sh\nsleep 0.3\nexec {shutil.which("journalctl")} "$@"\n')
    slow.chmod(0o755)
    return lambda config, kind: JournalctlReader(config, command=str(slow))


def source_config(folder: Path, reader: str, **settings: Any) -> JournaldSourceConfig:
    settings.setdefault("start_at", "beginning")
    return JournaldSourceConfig(name="journal", directory=str(folder), reader=reader, **settings)  # type: ignore[arg-type]


# ── writing journals ────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Logged:
    """One entry to write. ``unit`` ``None``: none (a kernel line); the identifier is the unit's name
    unless ``fields`` says otherwise; ``priority`` ``None``: no PRIORITY field."""

    message: str | bytes
    unit: str | None = "ssh.service"
    priority: int | None = 3
    boot: str = OTHER_BOOT
    ago_s: float = 0.0
    """Logged this long before now (``__REALTIME_TIMESTAMP``)."""
    fields: Mapping[str, str | bytes] = field(default_factory=dict)

    def export(self, monotonic_us: int) -> bytes:
        values: dict[str, str | bytes] = {
            "__REALTIME_TIMESTAMP": str(int((time.time() - self.ago_s) * 1_000_000)),
            "__MONOTONIC_TIMESTAMP": str(monotonic_us),
            "_BOOT_ID": self.boot,
            "_HOSTNAME": "test-host",
            "MESSAGE": self.message,
        }
        if self.priority is not None:
            values["PRIORITY"] = str(self.priority)
        if self.unit is not None:
            values |= {
                "_SYSTEMD_UNIT": self.unit,
                "SYSLOG_IDENTIFIER": self.unit.removesuffix(".service"),
                "_PID": "4242",
            }
        values |= self.fields
        return b"".join(export_field(name, value) for name, value in values.items()) + b"\n"


def export_field(name: str, value: str | bytes) -> bytes:
    """One field in the journal export format: ``NAME=value``, or, for bytes (and text with a newline),
    the binary form: the name, a newline, the size as a little-endian 64-bit number, the bytes, a newline."""
    if isinstance(value, str) and "\n" not in value:
        return f"{name}={value}\n".encode()
    data = value.encode() if isinstance(value, str) else value
    return name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"


_MONOTONIC: defaultdict[str, Iterator[int]] = defaultdict(lambda: itertools.count(1_000_000, 1000))
"""Per boot, a monotonic clock that only moves on, in microseconds (a new boot starts low again)."""


def write_journal(folder: Path, entries: Sequence[Logged], *, file: str = "remote.journal") -> None:
    """Append *entries* to the journal file *file* in *folder* (made if it is not there), as journald
    would store them."""
    export = b"".join(entry.export(next(_MONOTONIC[entry.boot])) for entry in entries)
    subprocess.run([JOURNAL_REMOTE, f"--output={folder / file}", "-"], input=export, check=True, capture_output=True)


def logged(*messages: str, **settings: Any) -> list[Logged]:
    return [Logged(message, **settings) for message in messages]


def last_cursor(folder: Path) -> str:
    """The cursor of the last entry in *folder*, as journalctl says it."""
    out = subprocess.run(
        ["journalctl", f"--directory={folder}", "--output=json", "--output-fields=__CURSOR", "--lines=1", "--no-pager"],
        check=True,
        capture_output=True,
    ).stdout
    return str(json.loads(out)["__CURSOR"])


def archive(path: Path) -> Path:
    """Archive a journal file as journald does at a rotation: mark it archived in its header and
    rename it ``NAME@SEQNUM_ID-HEAD_SEQNUM-HEAD_REALTIME.journal``."""
    with path.open("r+b") as file:
        header = file.read(208)
        assert header[:8] == b"LPKSHHRH"
        file.seek(16)
        file.write(b"\x02")  # state: STATE_ARCHIVED
    seqnum_id = header[72:88].hex()
    (head_seqnum,) = struct.unpack_from("<Q", header, 168)
    (head_realtime,) = struct.unpack_from("<Q", header, 184)
    archived = path.with_name(f"{path.stem}@{seqnum_id}-{head_seqnum:016x}-{head_realtime:016x}.journal")
    path.rename(archived)
    return archived


# ── running a source ────────────────────────────────────────────────────────


class Collected:
    """What sources handed on (one source, or one after another across restarts), and a way to wait for it."""

    def __init__(self) -> None:
        self.lines: list[Line] = []
        self.checkpoints: list[Checkpoint] = []
        self.task: asyncio.Task[None] | None = None
        """The running source's task: a wait fails at once if it ends."""
        self._changed = asyncio.Event()

    async def emit(self, batch: Sequence[Any], checkpoints: Sequence[Checkpoint]) -> None:
        self.lines.extend(batch)
        self.checkpoints.extend(checkpoints)
        self._changed.set()

    @property
    def texts(self) -> list[str]:
        return [line.text for line in self.lines]

    @property
    def cursor(self) -> str | None:
        """The cursor of the last checkpoint handed on."""
        return self.checkpoints[-1].value["cursor"] if self.checkpoints and self.checkpoints[-1].value else None

    def stored(self) -> dict[str, Any]:
        """The checkpoints as the spool stores them and hands them to the next start: the last value per key."""
        return {checkpoint.key: checkpoint.value for checkpoint in self.checkpoints}

    async def until(self, done: Callable[[], bool], *, timeout: float = WAIT_S) -> None:
        """Wait until *done* says so; fail when the source stops meanwhile or after *timeout*."""
        try:
            async with asyncio.timeout(timeout):
                while not done():
                    self._changed.clear()
                    waiting = asyncio.ensure_future(self._changed.wait())
                    others = {self.task} if self.task is not None else set()
                    await asyncio.wait({waiting, *others}, return_when=asyncio.FIRST_COMPLETED)
                    waiting.cancel()
                    if self.task is not None and self.task.done():
                        self.task.result()  # its exception, if it failed
                        pytest.fail(f"the source stopped; it handed on {self.texts[-10:]}")
        except TimeoutError:
            pytest.fail(f"waited {timeout:g}s in vain; the source handed on {self.texts[-10:]}")

    async def until_text(self, text: str, *, timeout: float = WAIT_S) -> None:
        await self.until(lambda: text in self.texts, timeout=timeout)


@contextlib.asynccontextmanager
async def run_source(
    config: JournaldSourceConfig,
    collected: Collected,
    *,
    checkpoints: Mapping[str, Any] | None = None,
    clock: Callable[[], float] = time.time,
    reader: ReaderFactory = journald.make_reader,
) -> AsyncIterator[JournaldSource]:
    """A started source, running and handing on to *collected*; cancelled at the end, as the daemon stops it."""
    source = JournaldSource(config, checkpoints=checkpoints, clock=clock, reader=reader)
    await source.start()
    task = collected.task = asyncio.create_task(source.run(collected.emit))
    try:
        yield source
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        collected.task = None


async def eventually(condition: Callable[[], bool], *, timeout: float = WAIT_S) -> None:
    """Wait until *condition* holds (something no emit signals, such as a log record)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# ── filters ─────────────────────────────────────────────────────────────────

FILTERED = [
    Logged("ssh of the boot before", boot=OTHER_BOOT, priority=3),
    Logged("ssh failed", boot=THIS_BOOT, priority=3, fields={"_COMM": "sshd"}),
    Logged("ssh accepted", boot=THIS_BOOT, priority=6, fields={"_COMM": "sshd"}),
    Logged("nginx crashed", unit="nginx.service", boot=THIS_BOOT, priority=2, fields={"_COMM": "nginx"}),
    Logged("cron warned", unit="cron.service", boot=THIS_BOOT, priority=4, fields={"_COMM": "cron"}),
    Logged("oops from the kernel", unit=None, boot=THIS_BOOT, priority=2, fields={"_TRANSPORT": "kernel"}),
    Logged("said to be the kernel", unit=None, boot=THIS_BOOT, priority=5, fields={"SYSLOG_IDENTIFIER": "kernel"}),
    Logged("debug of the boot before", unit="cron.service", boot=OTHER_BOOT, priority=7),
]
LAST = Logged(
    "the end",
    boot=THIS_BOOT,
    priority=0,
    fields={"_COMM": "sshd", "_TRANSPORT": "kernel"},
)
"""Written after the others and passing every filter below: once it arrived, every entry before it has."""


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        pytest.param({"units": ("ssh.service",)}, ["ssh of the boot before", "ssh failed", "ssh accepted"], id="units"),
        pytest.param(
            {"units": ("nginx.service", "ssh.service")},
            ["ssh of the boot before", "ssh failed", "ssh accepted", "nginx crashed"],
            id="units-any",
        ),
        pytest.param(
            {"identifiers": ("nginx", "ssh")},
            ["ssh of the boot before", "ssh failed", "ssh accepted", "nginx crashed"],
            id="identifiers",
        ),
        pytest.param(
            {"identifiers": ("kernel",)}, ["oops from the kernel", "said to be the kernel"], id="identifiers-kernel"
        ),
        pytest.param(
            {"priority": 3},
            ["ssh of the boot before", "ssh failed", "nginx crashed", "oops from the kernel"],
            id="priority",
        ),
        pytest.param(
            {"units": ("ssh.service", "cron.service"), "priority": 4},
            ["ssh of the boot before", "ssh failed", "cron warned"],
            id="units-and-priority",
        ),
        pytest.param(
            {"identifiers": ("kernel", "cron"), "priority": 4},
            ["cron warned", "oops from the kernel"],
            id="identifiers-and-priority",
        ),
        pytest.param(
            {"matches": (("_COMM", ("sshd", "nginx")), ("PRIORITY", ("0", "2", "3", "6")))},
            ["ssh failed", "ssh accepted", "nginx crashed"],
            id="matches",
        ),
        pytest.param(
            {"matches": (("_COMM", ("sshd", "cron")),), "units": ("ssh.service",)},
            ["ssh failed", "ssh accepted"],
            id="matches-and-units",
        ),
        pytest.param(
            {"this_boot": True},
            [
                "ssh failed",
                "ssh accepted",
                "nginx crashed",
                "cron warned",
                "oops from the kernel",
                "said to be the kernel",
            ],
            id="this-boot",
        ),
        pytest.param(
            {"this_boot": True, "units": ("ssh.service",)}, ["ssh failed", "ssh accepted"], id="this-boot-and-units"
        ),
    ],
)
async def test_filters_pass_only_their_entries(
    folder: Path, reader: str, settings: dict[str, Any], expected: list[str]
) -> None:
    write_journal(folder, [*FILTERED, LAST])
    collected = Collected()
    async with run_source(source_config(folder, reader, **settings), collected):
        await collected.until_text("the end")
    assert collected.texts == [*expected, "the end"]


async def test_lines_carry_the_entry_fields(folder: Path, reader: str) -> None:
    write_journal(
        folder,
        [
            Logged("Failed password for root", fields={"_PID": "4000", "_COMM": "sshd"}, priority=3),
            Logged("oops", unit=None, priority=2, fields={"_TRANSPORT": "kernel", "_HOSTNAME": "node-7"}),
            Logged("no priority", unit="cron.service", priority=None),
        ],
    )
    collected = Collected()
    async with run_source(source_config(folder, reader, fields=("_COMM",)), collected):
        await collected.until(lambda: len(collected.lines) == 3)
    ssh, kernel, cron = collected.lines
    assert (ssh.source, ssh.path) == ("journal", "")
    assert abs(ssh.time - time.time()) < 60
    assert dict(ssh.fields) == {
        "unit": "ssh.service",
        "identifier": "ssh",
        "pid": "4000",
        "priority": "err",
        "hostname": "test-host",
        "_COMM": "sshd",
    }
    assert dict(kernel.fields) == {
        "unit": "",
        "identifier": "kernel",
        "pid": "",
        "priority": "crit",
        "hostname": "node-7",
        "_COMM": "",
    }
    assert (cron.fields["identifier"], cron.fields["priority"]) == ("cron", "")


# ── following ───────────────────────────────────────────────────────────────


async def test_entries_appended_while_following_arrive_in_order(folder: Path, reader: str) -> None:
    write_journal(folder, logged("before the start"))
    collected = Collected()
    async with run_source(source_config(folder, reader, units=("ssh.service",)), collected):
        await collected.until_text("before the start")
        for number in range(3):
            write_journal(folder, [*logged(f"appended {number}"), *logged("filtered out", unit="cron.service")])
            await collected.until_text(f"appended {number}")
        write_journal(folder, logged(*(f"burst {n}" for n in range(50))))
        await collected.until_text("burst 49")
    assert collected.texts == [
        "before the start",
        *(f"appended {n}" for n in range(3)),
        *(f"burst {n}" for n in range(50)),
    ]
    assert collected.cursor == last_cursor(folder)  # the last entry's


async def test_rotation_while_following_loses_nothing(folder: Path, reader: str) -> None:
    """journald archives its file (renamed with an @, marked archived) and opens a new one; another
    file appears beside them."""
    write_journal(folder, logged("first file 1", "first file 2"))
    collected = Collected()
    async with run_source(source_config(folder, reader), collected):
        await collected.until_text("first file 2")
        write_journal(folder, logged("first file 3"))  # written just before the rotation
        archived = archive(folder / "remote.journal")
        write_journal(folder, logged("second file 1", "second file 2"))
        await collected.until_text("second file 2")
        write_journal(folder, logged("another file 1"), file="another.journal")
        await collected.until_text("another file 1")
        write_journal(folder, logged("second file 3"))
        await collected.until_text("second file 3")
    assert archived.exists() and (folder / "remote.journal").exists()
    assert collected.texts == [
        "first file 1",
        "first file 2",
        "first file 3",
        "second file 1",
        "second file 2",
        "another file 1",
        "second file 3",
    ]


async def test_vacuum_while_following_loses_nothing(folder: Path, reader: str) -> None:
    """Old files are deleted (journalctl --vacuum-*) while the source reads the newer ones."""
    write_journal(folder, logged("old 1", "old 2"), file="old.journal")
    write_journal(folder, logged("older file gone 1"), file="middle.journal")
    collected = Collected()
    async with run_source(source_config(folder, reader), collected):
        await collected.until_text("older file gone 1")
        write_journal(folder, logged("new 1"), file="new.journal")
        await collected.until_text("new 1")
        (folder / "old.journal").unlink()
        write_journal(folder, logged("new 2"), file="new.journal")
        await collected.until_text("new 2")
        (folder / "middle.journal").unlink()
        write_journal(folder, logged("new 3", "new 4"), file="new.journal")
        await collected.until_text("new 4")
    assert collected.texts == ["old 1", "old 2", "older file gone 1", "new 1", "new 2", "new 3", "new 4"]


# ── restarts ────────────────────────────────────────────────────────────────


async def test_a_restart_from_the_checkpoint_loses_nothing_and_doubles_nothing(folder: Path, reader: str) -> None:
    write_journal(folder, logged(*(f"entry {n}" for n in range(5))))
    collected = Collected()
    config = source_config(folder, reader)
    async with run_source(config, collected):
        await collected.until_text("entry 4")
    assert collected.cursor == last_cursor(folder)
    write_journal(folder, logged(*(f"entry {n}" for n in range(5, 8))))  # while it is stopped
    async with run_source(config, collected, checkpoints=collected.stored()):
        await collected.until_text("entry 7")
        write_journal(folder, logged("entry 8", "entry 9"))
        await collected.until_text("entry 9")
    assert collected.texts == [f"entry {n}" for n in range(10)]


async def test_a_restart_after_the_cursor_entry_was_vacuumed_reads_the_next_entry(folder: Path, reader: str) -> None:
    write_journal(folder, logged("read 1", "read 2"), file="old.journal")
    collected = Collected()
    config = source_config(folder, reader)
    async with run_source(config, collected):
        await collected.until_text("read 2")
    write_journal(folder, logged("after 1", "after 2"), file="new.journal")  # rotated while stopped
    (folder / "old.journal").unlink()  # and the file holding the cursor's entry vacuumed
    async with run_source(config, collected, checkpoints=collected.stored()):
        await collected.until_text("after 2")
        write_journal(folder, logged("after 3"), file="new.journal")
        await collected.until_text("after 3")
    assert collected.texts == ["read 1", "read 2", "after 1", "after 2", "after 3"]


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("this is not a cursor", id="garbage"),
        pytest.param(f"s=not-an-id;i=1;t={int(time.time() * 1_000_000):x}", id="recent-but-broken"),
    ],
)
async def test_an_invalid_cursor_starts_at_the_tail_with_a_warning(
    folder: Path, reader: str, slow_to_start: ReaderFactory, caplog: pytest.LogCaptureFixture, cursor: str
) -> None:
    """A cursor that says when it was logged and is recent is not caught by max_catchup's count."""
    write_journal(folder, logged("old 1", "old 2"))
    collected = Collected()
    config = source_config(folder, reader)
    checkpoints = {"cursor": {"cursor": cursor}}
    with caplog.at_level(logging.WARNING, logger="tailhook.sources.journald"):
        async with run_source(config, collected, checkpoints=checkpoints, reader=slow_to_start):
            write_journal(folder, logged("new 1", "new 2"))  # once it started: the tail is before them
            await collected.until_text("new 2")
    assert collected.texts == ["new 1", "new 2"]
    assert "the stored cursor is not valid here" in caplog.text


async def test_max_catchup_skips_and_counts_what_is_older(
    folder: Path, reader: str, caplog: pytest.LogCaptureFixture
) -> None:
    write_journal(folder, logged("three hours ago", ago_s=3 * 3600))
    collected = Collected()
    config = source_config(folder, reader, max_catchup=3600.0)
    async with run_source(config, collected):
        await collected.until_text("three hours ago")
    # Stopped for hours meanwhile:
    write_journal(
        folder,
        [
            *logged("two hours ago", ago_s=2 * 3600),
            *logged("61 minutes ago", ago_s=61 * 60),
            *logged("59 minutes ago", ago_s=59 * 60),
            *logged("now"),
        ],
    )
    with caplog.at_level(logging.WARNING, logger="tailhook.sources.journald"):
        async with run_source(config, collected, checkpoints=collected.stored()) as source:
            await collected.until_text("now")
    assert collected.texts == ["three hours ago", "59 minutes ago", "now"]
    assert source.skipped == 2
    assert "skipped 2 journal entries older than max_catchup" in caplog.text


async def test_max_catchup_after_the_cursor_entry_was_vacuumed_reads_the_recent_entries(
    folder: Path, reader: str
) -> None:
    write_journal(folder, logged("three hours ago", ago_s=3 * 3600), file="old.journal")
    collected = Collected()
    config = source_config(folder, reader, max_catchup=3600.0)
    async with run_source(config, collected):
        await collected.until_text("three hours ago")
    write_journal(folder, [*logged("50 minutes ago", ago_s=50 * 60), *logged("now")], file="new.journal")
    (folder / "old.journal").unlink()
    async with run_source(config, collected, checkpoints=collected.stored()) as source:
        await collected.until_text("now")
    assert collected.texts == ["three hours ago", "50 minutes ago", "now"]
    assert source.skipped == 0


async def test_entries_of_a_new_boot_after_the_cursor_are_all_read(folder: Path, reader: str) -> None:
    """journalctl --after-cursor can skip the first entry of a new boot (systemd #38912), and on systemd
    250–257 --follow alone reads the current boot only."""
    boots = [uuid.uuid4().hex for _ in range(3)]
    write_journal(folder, logged("boot 1 entry 1", "boot 1 entry 2", boot=boots[0]))
    collected = Collected()
    config = source_config(folder, reader)
    async with run_source(config, collected):
        await collected.until_text("boot 1 entry 2")
    write_journal(folder, logged("boot 2 entry 1", "boot 2 entry 2", boot=boots[1]))  # rebooted while stopped
    async with run_source(config, collected, checkpoints=collected.stored()):
        await collected.until_text("boot 2 entry 2")
    # The rest of boot 2 (after the stop) and a third boot: the cursor's boot is no longer the last one.
    write_journal(folder, [*logged("boot 2 entry 3", boot=boots[1]), *logged("boot 3 entry 1", boot=boots[2])])
    async with run_source(config, collected, checkpoints=collected.stored()):
        await collected.until_text("boot 3 entry 1")
        write_journal(folder, logged("boot 3 entry 2", boot=boots[2]))
        await collected.until_text("boot 3 entry 2")
    assert collected.texts == [
        "boot 1 entry 1",
        "boot 1 entry 2",
        "boot 2 entry 1",
        "boot 2 entry 2",
        "boot 2 entry 3",
        "boot 3 entry 1",
        "boot 3 entry 2",
    ]


class Clock:
    """The real time, plus however far a test moves it on."""

    def __init__(self) -> None:
        self.ahead_s = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead_s


async def test_a_sparse_filter_moves_the_checkpoint_on_so_a_restart_reads_nothing_again(
    folder: Path, reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journald, "ADVANCE_AFTER_S", 1.0)
    monkeypatch.setattr(journald, "SETTLE_S", 1.0)
    clock = Clock()
    sparse = source_config(folder, reader, units=("ssh.service",))
    write_journal(folder, logged("noise before", unit="noise.service"))
    collected = Collected()
    async with run_source(sparse, collected, clock=clock):
        write_journal(folder, logged(*(f"noise {n}" for n in range(10_000)), unit="noise.service"))
        last = last_cursor(folder)
        clock.ahead_s = 2.0  # quiet for longer than ADVANCE_AFTER_S, the last entry older than SETTLE_S
        await collected.until(lambda: collected.cursor == last)
    assert collected.lines == []
    stored = collected.stored()
    write_journal(folder, logged("signal 1"))  # while it is stopped

    # From where the checkpoint moved to, a source that also takes the noise reads none of it again:
    wider = Collected()
    async with run_source(
        source_config(folder, reader, units=("ssh.service", "noise.service")), wider, checkpoints=stored
    ):
        await wider.until_text("signal 1")
    assert wider.texts == ["signal 1"]

    # and the same source, restarted, hands on what matched meanwhile, and goes on.
    again = Collected()
    async with run_source(sparse, again, checkpoints=stored):
        await again.until_text("signal 1")
        write_journal(folder, [*logged("more noise", unit="noise.service"), *logged("signal 2")])
        await again.until_text("signal 2")
    assert again.texts == ["signal 1", "signal 2"]


async def test_a_sparse_filter_moves_the_checkpoint_on_a_journal_that_never_goes_quiet(
    folder: Path, reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a busy journal an entry younger than SETTLE_S is always there: the checkpoint moves to the
    last one older than that, not never."""
    monkeypatch.setattr(journald, "ADVANCE_AFTER_S", 1.0)
    clock = Clock()
    collected = Collected()
    async with run_source(source_config(folder, reader, units=("ssh.service",)), collected, clock=clock):
        write_journal(folder, logged(*(f"noise {n}" for n in range(100)), unit="noise.service", ago_s=60))
        settled = last_cursor(folder)
        write_journal(folder, logged("always a fresh one", unit="noise.service", ago_s=-3600))
        clock.ahead_s = 2.0  # quiet for longer than ADVANCE_AFTER_S
        await collected.until(lambda: collected.cursor == settled)
    assert collected.lines == []


# ── what entries hold ───────────────────────────────────────────────────────


async def test_a_100_kb_field_is_cut_at_max_line_bytes(folder: Path, reader: str) -> None:
    big = "".join(f"{n:09d} " for n in range(10_000))  # 100,000 characters, each place different
    write_journal(folder, [Logged(big, fields={"DETAIL": "é" * 100_000}), Logged("after it")])
    collected = Collected()
    config = source_config(folder, reader, max_line_bytes=65536, fields=("DETAIL",))
    async with run_source(config, collected) as source:
        await collected.until_text("after it")
    cut, after = collected.lines
    assert cut.text == big[:65536] + CUT_MARKER
    assert cut.fields["DETAIL"] == "é" * 65536 + CUT_MARKER
    assert source.cut == 2
    assert after.text == "after it"


async def test_binary_and_non_utf8_values_are_decoded_with_replacement(folder: Path, reader: str) -> None:
    message = b"caf\xe9 \xff\xfe half of \xe2\x82 then ok \xe2\x82\xac"
    write_journal(
        folder,
        [
            Logged(message, fields={"BLOB": b"\x00\x01 control \x7f", "MULTI": "two\nlines"}),
            Logged("plain"),
        ],
    )
    collected = Collected()
    async with run_source(source_config(folder, reader, fields=("BLOB", "MULTI")), collected):
        await collected.until_text("plain")
    binary = collected.lines[0]
    assert binary.text == "caf\ufffd \ufffd\ufffd half of \ufffd then ok €"
    assert binary.text == message.decode("utf-8", errors="replace")
    assert binary.fields["BLOB"] == "\x00\x01 control \x7f"
    assert binary.fields["MULTI"] == "two\nlines"


RULES = """\
rules:
  - name: disk
    match: 'disk check (?P<n>\\d+)'
    severity: from_priority
  - name: disk-floored
    match: 'disk check (?P<n>\\d+)'
    severity: from_priority
    severity_floor: warning
"""


async def test_severity_from_priority_through_the_rules(folder: Path, tmp_path: Path, reader: str) -> None:
    write_journal(
        folder,
        [
            *(Logged(f"disk check {level}", priority=level) for level in range(8)),
            Logged("disk check 8", priority=None),
        ],
    )
    (tmp_path / "rules.yaml").write_text(RULES)
    config = source_config(folder, reader)
    rules = RuleSet(load_rules([str(tmp_path / "rules.yaml")], [config]), host="h")
    collected = Collected()
    async with run_source(config, collected):
        await collected.until_text("disk check 8")
    events = [event for line in collected.lines for event in rules.match(line)]
    by_rule = {name: [e.severity.label for e in events if e.rule == name] for name in ("disk", "disk-floored")}
    # PRIORITY:                 0 emerg     1 alert     2 crit      3 err    4 warning  5 notice 6 info  7 debug  none
    assert by_rule["disk"] == ["critical", "critical", "critical", "error", "warning", "info", "info", "debug", "debug"]
    assert by_rule["disk-floored"] == [
        *["critical", "critical", "critical", "error", "warning"],
        *["warning", "warning", "warning", "warning"],  # the floor
    ]


# ── damage ──────────────────────────────────────────────────────────────────


def damaged_copy(folder: Path, name: str) -> None:
    """A journal file whose header is whole and whose objects (entries, data, entry arrays) are garbage."""
    scratch = folder.parent / "scratch"
    scratch.mkdir(exist_ok=True)
    write_journal(scratch, logged(*(f"damaged {n}" for n in range(20))), file=name)
    data = bytearray((scratch / name).read_bytes())
    data_hash_table_offset, data_hash_table_size = struct.unpack_from("<QQ", data, 104)
    (tail_object_offset,) = struct.unpack_from("<Q", data, 136)
    objects = data_hash_table_offset + data_hash_table_size
    data[objects + 64 : tail_object_offset + 64] = b"\xa5" * (tail_object_offset - objects)
    (folder / name).write_bytes(data)


async def test_a_corrupted_journal_file_does_not_stop_the_source(folder: Path, reader: str) -> None:
    (folder / "garbage.journal").write_bytes(b"LPKSHHRH" + bytes(range(256)) * 64)
    write_journal(folder, logged("good 1", "good 2"))
    collected = Collected()
    async with run_source(source_config(folder, reader), collected):
        await collected.until_text("good 2")
        damaged_copy(folder, "damaged.journal")  # appears while following
        (folder / "noise.journal").write_bytes(bytes(range(256)) * 16)
        write_journal(folder, logged("good 3"))
        await collected.until_text("good 3")
        write_journal(folder, logged("good 4"), file="other.journal")
        await collected.until_text("good 4")
    good = [text for text in collected.texts if text.startswith("good")]
    assert good == ["good 1", "good 2", "good 3", "good 4"]


class FailsOnce:
    """A real reader whose read fails once, as on EBADMSG, when the entries it read hold ``MESSAGE=fail here``
    (the entries of that read are not handed over: the source must read them again)."""

    def __init__(self, inner: journald.JournalReader, failed: list[bool]) -> None:
        self.inner, self.kind, self.failed = inner, inner.kind, failed

    async def open(self, start: journald.Start) -> int:
        return await self.inner.open(start)

    async def read(self) -> list[journald.Entry]:
        entries = await self.inner.read()
        if not self.failed and any(journald.text_of(e.fields.get("MESSAGE")) == "fail here" for e in entries):
            self.failed.append(True)
            raise journald.ReaderError("Bad message")
        return entries

    async def last(self) -> journald.Entry | None:
        return await self.inner.last()

    async def close(self) -> None:
        await self.inner.close()


async def test_a_reader_error_opens_the_journal_again_from_the_last_checkpoint(
    folder: Path, reader: str, caplog: pytest.LogCaptureFixture
) -> None:
    write_journal(folder, logged("before 1", "before 2"))
    failed: list[bool] = []
    collected = Collected()
    config = source_config(folder, reader)
    with caplog.at_level(logging.WARNING, logger="tailhook.sources.journald"):
        async with run_source(
            config, collected, reader=lambda *a: FailsOnce(journald.make_reader(*a), failed)
        ) as source:
            await collected.until_text("before 2")
            write_journal(folder, logged("fail here", "after"))
            await collected.until_text("after")
            write_journal(folder, logged("later"))
            await collected.until_text("later")
    assert failed == [True]
    assert collected.texts == ["before 1", "before 2", "fail here", "after", "later"]
    assert source.reopened == 1
    assert "reading the journal failed (Bad message); opening it again from the last checkpoint" in caplog.text


# ── starting and stopping ───────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("before", "settings"),
    [
        pytest.param(logged("old 1", "old 2"), {}, id="journal"),
        pytest.param(logged("old 1", "old 2", unit="cron.service"), {"units": ("ssh.service",)}, id="none-passing"),
        pytest.param([], {}, id="no-journal-yet"),
    ],
)
async def test_start_at_end_reads_every_entry_appended_after_the_start(
    folder: Path, reader: str, slow_to_start: ReaderFactory, before: list[Logged], settings: dict[str, Any]
) -> None:
    """What is appended once ``start()`` returned (the daemon says it is ready) is read; nothing before.
    On systemd 252 the binding must step back from the tail, or its first read hands on the last entry
    (or, when entries came meanwhile, the newest, skipping the others)."""
    if before:
        write_journal(folder, before)
    collected = Collected()
    config = source_config(folder, reader, start_at="end", **settings)
    async with run_source(config, collected, reader=slow_to_start):
        write_journal(folder, logged("new 1", "new 2"))
        await collected.until_text("new 2")
        write_journal(folder, logged("new 3"))
        await collected.until_text("new 3")
    assert collected.texts == ["new 1", "new 2", "new 3"]


async def test_a_missing_journal_folder_is_reported_and_tried_again(
    tmp_path: Path, reader: str, caplog: pytest.LogCaptureFixture
) -> None:
    later = tmp_path / "later"
    collected = Collected()
    async with run_source(source_config(later, reader), collected):
        await eventually(lambda: str(later) in caplog.text and "No such file or directory" in caplog.text)
        later.mkdir()
        write_journal(later, logged("the journal is there now"))
        await collected.until_text("the journal is there now")  # opened again after a second, from the start
    assert collected.texts == ["the journal is there now"]


async def test_stopping_while_a_read_waits_is_safe(folder: Path, reader: str) -> None:
    """The binding's handle is closed by its own thread after the read: closing it under a read crashed
    the process; journalctl is stopped and waited for."""
    write_journal(folder, logged("one entry"))
    config = source_config(folder, reader, start_at="end")
    for _ in range(6):
        async with run_source(config, Collected()):
            await asyncio.sleep(0.01)  # let the read start waiting on the journal, then stop mid-wait

"""The file source on real files: following, globs, rotation, truncation, hostile lines."""

from __future__ import annotations

import asyncio
import gzip
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.metrics import reported, total

from tailhook.config import FileSourceConfig, MultilineConfig
from tailhook.events import Line
from tailhook.sources.file import CUT_MARKER, FileSource
from tailhook.spool import Checkpoint

pytestmark = pytest.mark.timeout(30)


@dataclass
class Following:
    source: FileSource
    lines: list[Line] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [line.text for line in self.lines]

    async def until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)

    async def until_count(self, count: int) -> None:
        await self.until(lambda: len(self.lines) >= count)


Follow = Callable[..., Awaitable[Following]]


@pytest.fixture
async def follow(tmp_path: Path) -> AsyncIterator[Follow]:
    tasks: list[asyncio.Task[None]] = []

    async def start(*patterns: str, **kwargs: object) -> Following:
        kwargs.setdefault("rescan_interval", 0.2)
        paths = tuple(str(tmp_path / p) for p in patterns)
        config = FileSourceConfig(name="app", paths=paths, **kwargs)  # type: ignore[arg-type]
        following = Following(FileSource(config))

        async def emit(batch: Sequence[Line], checkpoints: Sequence[Checkpoint]) -> None:
            following.lines.extend(batch)
            following.checkpoints.extend(checkpoints)

        await following.source.start()
        tasks.append(asyncio.create_task(following.source.run(emit)))
        return following

    yield start
    for task in tasks:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def append(path: Path, data: str | bytes) -> None:
    with path.open("ab") as out:
        out.write(data.encode() if isinstance(data, str) else data)


async def test_new_lines_are_read_and_existing_ones_skipped_at_end(tmp_path: Path, follow: Follow) -> None:
    log = tmp_path / "app.log"
    log.write_text("old line\nhalf a li")
    following = await follow("*.log")
    append(log, "ne\nnew one\n")
    append(log, "new two\npartial")
    await following.until_count(2)

    assert following.texts == ["new one", "new two"]  # the half line present at start is not a line of its own
    assert following.lines[0].path == str(log) and following.lines[0].source == "app"
    append(log, " end\n")
    await following.until_count(3)
    assert following.texts[2] == "partial end"


async def test_start_at_beginning_and_files_that_appear_later(tmp_path: Path, follow: Follow) -> None:
    (tmp_path / "a.log").write_text("a1\na2\n")
    following = await follow("*.log", start_at="beginning")
    await following.until_count(2)
    (tmp_path / "b.log").write_text("b1\n")  # appears after start: read from its beginning
    (tmp_path / "c.txt").write_text("not matched by the glob\n")
    await following.until_count(3)
    assert following.texts == ["a1", "a2", "b1"]


async def test_exclude_and_recursive_globs(tmp_path: Path, follow: Follow) -> None:
    (tmp_path / "pods" / "web").mkdir(parents=True)
    following = await follow("pods/**/*.log", exclude=("*.1.log",), start_at="beginning")
    (tmp_path / "pods" / "web" / "app.1.log").write_text("rotated\n")
    (tmp_path / "pods" / "web" / "app.log").write_text("live\n")
    await following.until_count(1)
    (tmp_path / "pods" / "db").mkdir()
    (tmp_path / "pods" / "db" / "db.log").write_text("later\n")  # found after the excluded file was seen
    await following.until_count(2)
    assert following.texts == ["live", "later"]


async def test_rename_rotation_reads_the_old_file_to_its_end(tmp_path: Path, follow: Follow) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    following = await follow("app.log")
    append(log, "before 1\n")
    await following.until_count(1)
    with log.open("a") as old:
        os.rename(log, tmp_path / "app.log.1")
        old.write("late write to the old file\n")  # a writer that has not reopened yet
    log.write_text("after 1\n")
    await following.until_count(3)
    assert following.texts == ["before 1", "late write to the old file", "after 1"]
    assert total(following.source, "tailhook_file_rotations_total") == 1


async def test_copytruncate_starts_over(tmp_path: Path, follow: Follow) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    following = await follow("app.log")
    append(log, "one\ntwo\nthree\n")
    await following.until_count(3)
    with log.open("r+") as f:
        f.truncate(0)
    append(log, "four\n")
    await following.until_count(4)
    assert following.texts == ["one", "two", "three", "four"]
    assert total(following.source, "tailhook_file_truncations_total") == 1


async def test_hostile_lines(tmp_path: Path, follow: Follow) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    following = await follow("app.log", max_line_bytes=1024)
    append(log, b"crlf line\r\n" + b"bad \xff\xfe utf-8\n" + b"nul\x00byte\n")
    append(log, b"x" * 5000 + b"\n")
    append(log, b"y" * 3_000_000)  # a huge line with no newline yet
    await following.until_count(5)
    append(log, b"yyy\nafter\n")
    await following.until_count(6)

    texts = following.texts
    assert texts[:3] == ["crlf line", "bad \ufffd\ufffd utf-8", "nul\x00byte"]
    assert texts[3] == "x" * 1024 + CUT_MARKER
    assert texts[4] == "y" * 1024 + CUT_MARKER
    assert texts[5] == "after"
    assert total(following.source, "tailhook_file_lines_cut_total") == 2
    assert len(texts) == 6


async def test_a_folder_made_after_start_is_noticed_at_once(tmp_path: Path, follow: Follow) -> None:
    following = await follow("nginx/*.log", rescan_interval=3600)  # only filesystem events can find it in time
    (tmp_path / "nginx").mkdir()
    (tmp_path / "nginx" / "error.log").write_text("first\n")
    await following.until_count(1)
    assert following.texts == ["first"]


async def test_a_file_made_right_after_start_is_noticed_at_once(tmp_path: Path, follow: Follow) -> None:
    following = await follow("*.log", rescan_interval=3600)
    (tmp_path / "new.log").write_text("hello\n")
    await following.until_count(1)
    assert following.texts == ["hello"]


async def test_lines_in_files_deeper_than_the_globs_base_are_read_at_once(tmp_path: Path, follow: Follow) -> None:
    """As a DaemonSet follows /var/log/pods/*/*/*.log: the base (pods/) is watched, the files lie two
    folders down, where a change wakes nothing unless their folders are watched too."""
    there = tmp_path / "pods" / "shop_web-1_uid" / "app"
    there.mkdir(parents=True)
    (there / "0.log").write_text("")
    following = await follow("pods/*/*/*.log", rescan_interval=3600)  # only filesystem events can find it in time
    append(there / "0.log", "first\n")
    await following.until_count(1)
    later = tmp_path / "pods" / "shop_web-2_uid" / "app"  # a pod started later, then logging
    later.mkdir(parents=True)
    (later / "0.log").write_text("hello\n")
    await following.until_count(2)
    append(later / "0.log", "again\n")
    await following.until_count(3)
    assert following.texts == ["first", "hello", "again"]


async def test_a_rotated_file_is_read_on_until_it_stays_quiet(tmp_path: Path, follow: Follow) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    following = await follow("app.log", rotate_wait=0.5)
    with log.open("a", buffering=1) as writer:  # a daemon that reopens its log only later
        writer.write("before\n")
        await following.until_count(1)
        os.rename(log, tmp_path / "app.log.1")
        log.write_text("new file\n")
        await following.until_count(2)
        writer.write("still writing to the old file\n")
        await following.until_count(3)
    assert following.texts == ["before", "new file", "still writing to the old file"]
    rotated_key = f"{log} (rotated {os.stat(tmp_path / 'app.log.1').st_ino})"
    await following.until(lambda: any(c.key == rotated_key and c.value is None for c in following.checkpoints))
    assert total(following.source, "tailhook_file_rotations_total") == 1


async def test_a_deleted_file_is_read_to_its_end_then_let_go(tmp_path: Path, follow: Follow) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    following = await follow("app.log", rotate_wait=0.2)
    with log.open("a", buffering=1) as writer:
        writer.write("one\n")
        await following.until_count(1)
        log.unlink()
        writer.write("two, after the unlink\n")
        await following.until_count(2)
    await following.until(lambda: not following.source._files)
    assert following.texts == ["one", "two, after the unlink"]


async def test_copytruncate_takes_the_unread_rest_from_the_copy(tmp_path: Path, follow: Follow) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    following = await follow("app.log")
    append(log, "read before\n")
    await following.until_count(1)
    # Lines written, then copied and truncated before the source had a chance to read them:
    append(log, "unread 1\nunread 2\n")
    (tmp_path / "app.log.1").write_bytes(log.read_bytes())
    os.truncate(log, 0)
    append(log, "after\n")
    await following.until_count(4)
    assert following.texts == ["read before", "unread 1", "unread 2", "after"]
    assert total(following.source, "tailhook_file_copies_recovered_total") == 1


async def test_nul_padding_after_a_truncation_is_skipped(tmp_path: Path, follow: Follow) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    following = await follow("app.log")
    with log.open("r+b", buffering=0) as writer:  # no O_APPEND: it writes at its own offset
        writer.write(b"first line\n")
        await following.until_count(1)
        os.truncate(log, 0)
        await following.until(lambda: total(following.source, "tailhook_file_truncations_total") == 1)
        writer.write(b"after the truncation\n")  # lands at byte 11; bytes 0..10 read as NULs
    await following.until_count(2)
    assert following.texts == ["first line", "after the truncation"]


async def test_compressed_files_are_never_read(tmp_path: Path, follow: Follow) -> None:
    (tmp_path / "old.log.gz").write_bytes(gzip.compress(b"gzipped\n"))
    (tmp_path / "disguised.log").write_bytes(gzip.compress(b"gzip without the suffix\n"))
    (tmp_path / "plain.log").write_text("plain\n")
    following = await follow("*", start_at="beginning")
    await following.until_count(1)
    (tmp_path / "new.log.gz").write_bytes(gzip.compress(b"another\n"))
    append(tmp_path / "plain.log", "marker\n")
    await following.until_count(2)
    assert following.texts == ["plain", "marker"]


async def test_symlinks_are_followed_and_their_targets_watched(tmp_path: Path, follow: Follow) -> None:
    pods = tmp_path / "pods" / "web" / "nginx"
    pods.mkdir(parents=True)
    target = pods / "0.log"
    target.write_text("")
    (tmp_path / "containers").mkdir()
    (tmp_path / "containers" / "web_nginx.log").symlink_to(target)
    # Both paths lead to one file: it is followed once. Only events can find the lines in time.
    following = await follow("containers/*.log", "pods/**/*.log", rescan_interval=3600)
    append(target, "through the link\n")
    await following.until_count(1)
    append(target, "again\n")
    await following.until_count(2)
    assert following.texts == ["through the link", "again"]
    assert len(following.source._by_id) == 1


async def test_poll_mode_reads_without_filesystem_events(tmp_path: Path, follow: Follow) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    following = await follow("app.log", poll=True, poll_interval=0.05, rescan_interval=3600)
    assert following.source._watcher is None
    append(log, "polled\n")
    await following.until_count(1)
    assert following.texts == ["polled"]


async def test_cri_partial_lines_interleaved_on_stdout_and_stderr(tmp_path: Path, follow: Follow) -> None:
    log = tmp_path / "0.log"
    log.write_text("")
    following = await follow("0.log", format="cri")
    append(
        log,
        "2026-11-23T10:00:00.000000001Z stdout P first half of out, \n"
        "2026-11-23T10:00:00.000000002Z stderr P first half of err, \n"
        "2026-11-23T10:00:00.000000003Z stdout F second half of out\n"
        "2026-11-23T10:00:00.000000004Z stderr F second half of err\n"
        "2026-11-23T10:00:00.000000005Z stdout F whole\n",
    )
    await following.until_count(3)
    assert [(line.text, line.fields["stream"]) for line in following.lines] == [
        ("first half of out, second half of out", "stdout"),
        ("first half of err, second half of err", "stderr"),
        ("whole", "stdout"),
    ]
    assert following.checkpoints[-1].value is not None
    assert following.checkpoints[-1].value["offset"] == log.stat().st_size


async def test_a_cri_partial_line_holds_the_checkpoint_back(tmp_path: Path, follow: Follow) -> None:
    log = tmp_path / "0.log"
    log.write_text("")
    following = await follow("0.log", format="cri")
    append(log, "2026-11-23T10:00:00Z stdout F done\n")
    await following.until_count(1)
    held_from = log.stat().st_size
    append(log, "2026-11-23T10:00:01Z stdout P waiting for the rest, \n2026-11-23T10:00:02Z stderr F other\n")
    await following.until_count(2)
    assert following.checkpoints[-1].value is not None
    assert following.checkpoints[-1].value["offset"] == held_from  # a restart reads the partial line again


async def test_a_traceback_is_one_event_in_multiline_mode(tmp_path: Path, follow: Follow) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    multiline = MultilineConfig(start=r"\d{4}-\d\d-\d\d ", timeout=0.2)
    following = await follow("app.log", multiline=multiline)
    traceback = [
        "2026-11-23 10:00:00 ERROR request failed",
        "Traceback (most recent call last):",
        '  File "/srv/app/views.py", line 12, in handler',
        "    return compute(x)",
        "ZeroDivisionError: division by zero",
    ]
    append(log, "\n".join(traceback) + "\n2026-11-23 10:00:01 INFO next request\n")
    await following.until_count(1)
    assert following.texts == ["\n".join(traceback)]
    await following.until_count(2)  # the last event has no successor: its timeout gives it out
    assert following.texts[1] == "2026-11-23 10:00:01 INFO next request"


async def test_json_lines_give_their_message_and_fields(tmp_path: Path, follow: Follow) -> None:
    log = tmp_path / "app.json"
    log.write_text("")
    following = await follow("app.json", format="json", message_key="msg")
    append(log, '{"level": "error", "msg": "disk full", "attempt": 3}\nnot json at all\n')
    await following.until_count(2)
    first, second = following.lines
    assert (first.text, dict(first.fields)) == ("disk full", {"level": "error", "attempt": "3"})
    assert (second.text, dict(second.fields)) == ("not json at all", {})


async def test_one_busy_file_does_not_starve_the_others(tmp_path: Path, follow: Follow) -> None:
    busy, quiet = tmp_path / "busy.log", tmp_path / "quiet.log"
    busy.write_bytes(b"".join(b"busy line %d %s\n" % (n, b"x" * 80) for n in range(400_000)))  # ~38 MB
    quiet.write_text("")
    following = await follow("*.log", start_at="beginning")
    await following.until_count(1)
    append(quiet, "quiet line\n")
    await following.until(lambda: "quiet line" in following.texts, timeout=20)
    position = following.texts.index("quiet line")
    print(f"the quiet line came after {position} of the busy file's 400,000 lines")
    assert position < 300_000, f"the quiet file waited for {position} lines of the busy one"
    await following.until(lambda: len(following.lines) == 400_001, timeout=60)


async def test_an_empty_file_and_one_without_a_newline_resume_after_a_restart(tmp_path: Path, follow: Follow) -> None:
    empty, unfinished = tmp_path / "empty.log", tmp_path / "unfinished.log"
    empty.write_text("")
    unfinished.write_text("no newline yet")
    first = await follow("*.log", start_at="beginning")
    await first.until(lambda: len({c.key for c in first.checkpoints}) == 2)
    saved = {c.key: c.value for c in first.checkpoints}
    assert first.lines == []
    assert saved[str(unfinished)] is not None and saved[str(unfinished)]["offset"] == 0

    append(empty, "now with a line\n")
    append(unfinished, ", now finished\n")
    config = FileSourceConfig(name="app", paths=(str(tmp_path / "*.log"),), rescan_interval=0.2)
    second = Following(FileSource(config, checkpoints=saved))

    async def emit(batch: Sequence[Line], checkpoints: Sequence[Checkpoint]) -> None:
        second.lines.extend(batch)

    await second.source.start()
    task = asyncio.create_task(second.source.run(emit))
    try:
        await second.until_count(2)
    finally:
        task.cancel()
    assert sorted(second.texts) == ["no newline yet, now finished", "now with a line"]


@dataclass(frozen=True)
class Marked:
    """A stand-in for the daemon's prescan: the lines that start with ALERT may match."""

    matching_bytes: int


def mark_alerts(data: bytes, source: str) -> Marked:
    return Marked(sum(len(line) + 1 for line in data.split(b"\n")[:-1] if line.startswith(b"ALERT")))


async def test_a_turn_reads_far_through_quiet_lines_and_stops_early_in_lines_that_may_match(tmp_path: Path) -> None:
    """One turn is one ingest commit: its size is bounded by the lines that may become events
    (``_TURN_BYTES``), not by the lines read, which only ``_TURN_READ_BYTES`` bounds."""
    from tailhook.sources import Block  # noqa: PLC0415
    from tailhook.sources.file import _TURN_BYTES, _TURN_READ_BYTES  # noqa: PLC0415

    log = tmp_path / "app.log"
    quiet = b"".join(b"quiet line %07d\n" % n for n in range(300_000))  # 5.4 MB
    loud = b"".join(b"ALERT line %07d\n" % n for n in range(60_000))  # 1.1 MB
    log.write_bytes(quiet + loud)
    config = FileSourceConfig(name="app", paths=(str(log),), start_at="beginning")
    source = FileSource(config, blocks=True, prescan=mark_alerts)
    turns: list[tuple[int, int]] = []  # per turn: bytes, and bytes of ALERT lines
    done = asyncio.Event()

    async def emit(batch: Sequence[Line | Block], checkpoints: Sequence[Checkpoint]) -> None:
        data = b"".join(item.data for item in batch if isinstance(item, Block))
        assert len(data) == sum(len(item.data) for item in batch)  # plain lines: all in blocks
        turns.append((len(data), mark_alerts(data, "app").matching_bytes))
        if checkpoints and checkpoints[-1].value is not None and checkpoints[-1].value["offset"] == log.stat().st_size:
            done.set()

    await source.start()
    task = asyncio.create_task(source.run(emit))
    try:
        async with asyncio.timeout(20):
            await done.wait()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    assert sum(size for size, _ in turns) == len(quiet) + len(loud)
    assert all(size <= _TURN_READ_BYTES for size, _ in turns)
    assert turns[0] == (_TURN_READ_BYTES - _TURN_READ_BYTES % 18, 0)  # quiet: a whole turn's worth in one batch
    assert all(alerts <= _TURN_BYTES for _, alerts in turns)
    assert len(turns) < (len(quiet) + len(loud)) // _TURN_BYTES  # far fewer commits than 256 KiB turns
    assert max(alerts for _, alerts in turns) > _TURN_BYTES * 3 // 4  # loud turns fill their budget


async def test_each_path_reports_what_reading_it_met_and_stops_when_it_is_gone(tmp_path: Path, follow: Follow) -> None:
    log, other = tmp_path / "0.log", tmp_path / "1.log"
    log.write_text("")
    other.write_text("")
    following = await follow("*.log", format="cri", rotate_wait=0.1)
    append(log, "2026-11-30T10:00:00.000000001Z stdout F one\nnot a cri line\n")
    append(other, "2026-11-30T10:00:00.000000001Z stdout F two\n")
    await following.until_count(3)
    os.rename(log, tmp_path / "0.log.1")  # rotated; the new file's malformed lines count under the same path
    log.write_text("also not cri\n")
    await following.until_count(4)
    source, path, other_path = following.source, str(log), str(other)

    def reported_for(name: str) -> dict[str, float]:
        return {dict(labels)["path"]: value for labels, value in reported(source).get(name, {}).items()}

    await following.until(lambda: reported_for("tailhook_file_rotations_total").get(path) == 1)
    assert reported_for("tailhook_file_malformed_total") == {path: 2, other_path: 0}
    assert reported_for("tailhook_file_read_lines_total") == {path: 3, other_path: 1}
    assert reported_for("tailhook_file_read_bytes_total")[other_path] == other.stat().st_size
    assert reported_for("tailhook_file_checkpoint_lag_bytes") == {path: 0, other_path: 0}
    # the rotated file is read until quiet for rotate_wait, then let go; its counts stay with its path
    await following.until(lambda: reported(source)["tailhook_following"] == {(("kind", "file"), ("source", "app")): 2})
    assert reported_for("tailhook_file_malformed_total") == {path: 2, other_path: 0}

    other.unlink()  # gone for good: its series ends
    await following.until(lambda: other_path not in reported_for("tailhook_file_read_lines_total"))
    assert reported(source)["tailhook_following"] == {(("kind", "file"), ("source", "app")): 1}


async def test_the_checkpoint_lag_is_what_the_file_holds_past_the_last_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("")
    source = FileSource(FileSourceConfig(name="app", paths=(str(log),), rescan_interval=0.2))
    stored = asyncio.Event()
    first = asyncio.Event()

    async def emit(batch: Sequence[Line], checkpoints: Sequence[Checkpoint]) -> None:
        if batch:
            first.set()
            await stored.wait()  # a slow spool: the source reads on only after its commit

    await source.start()
    task = asyncio.create_task(source.run(emit))
    try:
        append(log, "first\n")
        async with asyncio.timeout(5):
            await first.wait()
        append(log, "waiting behind the commit\n")
        lag = reported(source)["tailhook_file_checkpoint_lag_bytes"]
        assert lag == {(("path", str(log)), ("source", "app")): len("waiting behind the commit\n")}
    finally:
        stored.set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

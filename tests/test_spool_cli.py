"""``tailhook spool``: the real CLI as a subprocess against real spool files, also with a daemon running."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tailhook.events import Delivery, Kind, Mentions, Notification, Severity
from tailhook.spool import FILE_NAME, SCHEMA_VERSION, Spool
from tests.conftest import FakeClock
from tests.daemon import Daemon, run_cli, wait_until, write_config
from tests.discord_standin import TOKEN, ThreadedStandIn, standin_in_thread

pytestmark = pytest.mark.timeout(60)

HOUR = 3600.0


def delivery(
    title: str,
    severity: Severity = Severity.ERROR,
    destination: str = "alerts",
    *,
    line: str = "the log line",
) -> Delivery:
    n = Notification(
        kind=Kind.ALERT, rule="ssh", severity=severity, key="1.2.3.4", title=title, description="seen on web-1",
        line=line, source="auth", host="web-1", time=1_790_000_000.0, path="/var/log/auth.log",
        captures={"ip": "1.2.3.4"},
    )  # fmt: skip
    return Delivery(destination, n, mentions=Mentions(roles=("123456789012345678",)))


def spool_cli(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("spool", *args, "--state-dir", str(state_dir))


def rows(state_dir: Path, query: str, *params: object) -> list[tuple[Any, ...]]:
    """What the spool file holds, read apart from the CLI under test."""
    with contextlib.closing(sqlite3.connect(state_dir / FILE_NAME)) as db:
        return db.execute(query, params).fetchall()


def titles(state_dir: Path, table: str = "notifications") -> list[str]:
    return [json.loads(body)["title"] for (body,) in rows(state_dir, f"SELECT body FROM {table} ORDER BY id")]  # noqa: S608


@pytest.fixture
def clock() -> FakeClock:
    """Real epoch seconds, two hours ago: the spool stamps ``created`` and ``failed`` with it."""
    return FakeClock(start=time.time() - 2 * HOUR)


@pytest.fixture
async def spool(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Spool]:
    """A spool left open, as the daemon keeps it, while the CLI works on the same file.

    Contents (ids 1..6): two hours old: 1 ``old error`` (alerts, error), 2 ``old info`` (alerts,
    info), 3 ``old audit`` (audit, warning); now: 4 ``new error`` (alerts), 5 ``refused``
    (alerts, critical) and 6 ``refused audit`` (audit), both dead letters with Discord's 400.
    """
    spool = await Spool.open(tmp_path, clock=clock)
    await spool.commit(
        [delivery("old error"), delivery("old info", Severity.INFO), delivery("old audit", Severity.WARNING, "audit")]
    )
    clock.now = time.time()
    await spool.commit(
        [delivery("new error"), delivery("refused", Severity.CRITICAL), delivery("refused audit", destination="audit")]
    )
    await spool.failed([1], "Discord answered 503", next_attempt=clock.now + 30)
    await spool.reject([5, 6], 'Discord answered 400: {"code": 50035, "message": "Invalid Form Body"}')
    yield spool
    await spool.close()


# ── status ──────────────────────────────────────────────────────────────────


async def test_status_json_counts_per_destination_and_severity(tmp_path: Path, spool: Spool) -> None:
    result = spool_cli(tmp_path, "status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    assert report["waiting"] == 4
    assert report["dead_letters"] == 2
    assert report["bytes"] == sum(size for (size,) in rows(tmp_path, "SELECT size FROM notifications")) > 0
    assert report["file_bytes"] >= (tmp_path / FILE_NAME).stat().st_size > 0
    alerts, audit = report["destinations"]["alerts"], report["destinations"]["audit"]
    assert alerts["waiting_by_severity"] == {"error": 2, "info": 1}
    assert audit["waiting_by_severity"] == {"warning": 1}
    assert (alerts["dead_letters"], audit["dead_letters"]) == (1, 1)
    assert 2 * HOUR - 5 <= alerts["oldest_age_s"] <= 2 * HOUR + 60
    assert (alerts["drops"], alerts["drops_by_severity"]) == (0, {})


async def test_status_table_and_drops_not_yet_announced(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path, max_bytes=6000)  # three of these fit (about 1,850 bytes each)
    try:
        for i in range(6):
            await spool.commit([delivery(f"n{i}", Severity.DEBUG if i % 2 else Severity.CRITICAL, line="x" * 1500)])
    finally:
        await spool.close()

    table = spool_cli(tmp_path, "status")
    assert table.returncode == 0, table.stderr
    summary, _, header, alerts = table.stdout.splitlines()
    assert summary.startswith(f"spool {tmp_path / FILE_NAME}: 3 waiting (5.4 KiB), 0 dead letters, 3 dropped")
    assert header.split() == [
        "DESTINATION", "CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "WAITING", "OLDEST", "DEAD", "DROPPED",
    ]  # fmt: skip
    name, critical, error, warning, info, debug, waiting, oldest, dead, dropped = alerts.split()
    assert (name, critical, error, warning, info, debug, waiting, dead, dropped) == (
        "alerts", "3", "0", "0", "0", "0", "3", "0", "3",
    )  # fmt: skip
    assert oldest.endswith("s")  # seconds old

    report = json.loads(spool_cli(tmp_path, "status", "--json").stdout)
    assert report["destinations"]["alerts"] == {
        "waiting": 3,
        "waiting_by_severity": {"critical": 3},
        "oldest_created": pytest.approx(time.time(), abs=60),
        "oldest_age_s": pytest.approx(0, abs=60),
        "dead_letters": 0,
        "drops": 3,
        "drops_by_severity": {"debug": 3},
    }
    size = rows(tmp_path, "SELECT sum(size) FROM notifications")[0][0]
    assert (report["waiting"], report["bytes"], report["drops"]) == (3, size, 3)


# ── list and show ───────────────────────────────────────────────────────────


def listed(stdout: str) -> list[list[str]]:
    """The table's rows (header and footer left out), as ``[id, destination, severity, age, attempts]``."""
    return [line.split()[:5] for line in stdout.splitlines()[1:] if line.strip()[:1].isdigit()]


async def test_list_is_oldest_first_with_filters_and_a_limit(tmp_path: Path, spool: Spool) -> None:
    everything = spool_cli(tmp_path, "list")
    assert everything.returncode == 0, everything.stderr
    assert [row[:3] for row in listed(everything.stdout)] == [
        ["1", "alerts", "error"], ["2", "alerts", "info"], ["3", "audit", "warning"], ["4", "alerts", "error"],
    ]  # fmt: skip
    first = everything.stdout.splitlines()[1]
    assert "2h00m" in first and "Discord answered 503" in first and "old error" in first
    assert listed(everything.stdout)[0][4] == "1"  # attempts

    only = spool_cli(tmp_path, "list", "--destination", "alerts", "--severity", "error")
    assert [row[0] for row in listed(only.stdout)] == ["1", "4"]

    limited = spool_cli(tmp_path, "list", "--limit", "2")
    assert [row[0] for row in listed(limited.stdout)] == ["1", "2"]
    assert "2 of 4 shown" in limited.stdout

    none = spool_cli(tmp_path, "list", "--destination", "nowhere")
    assert none.returncode == 0 and "nothing waiting" in none.stdout


async def test_list_dead_letters_and_json(tmp_path: Path, spool: Spool) -> None:
    dead = spool_cli(tmp_path, "list", "--dead")
    assert dead.returncode == 0, dead.stderr
    assert [row[:3] for row in listed(dead.stdout)] == [["5", "alerts", "critical"], ["6", "audit", "error"]]
    assert "Discord answered 400" in dead.stdout and "refused audit" in dead.stdout

    as_json = json.loads(spool_cli(tmp_path, "list", "--dead", "--json", "--destination", "audit").stdout)
    assert [(d["id"], d["attempts"], d["delivery"]["title"]) for d in as_json] == [(6, 1, "refused audit")]
    assert as_json[0]["error"] == 'Discord answered 400: {"code": 50035, "message": "Invalid Form Body"}'


async def test_log_text_cannot_drive_the_terminal(tmp_path: Path, spool: Spool) -> None:
    await spool.commit([delivery("\x1b]0;owned\x07 title\nsecond line", line="red \x1b[31m!\x1b[0m")])
    listing, shown = spool_cli(tmp_path, "list"), spool_cli(tmp_path, "show", "7")
    for output in (listing.stdout, shown.stdout):
        assert "\x1b" not in output and "\x07" not in output
    assert "\\x1b]0;owned\\x07 title second line" in listing.stdout  # escaped, and on one line
    assert "red \\x1b[31m!\\x1b[0m" in shown.stdout


async def test_show_prints_everything_about_one(tmp_path: Path, spool: Spool) -> None:
    shown = spool_cli(tmp_path, "show", "1")
    assert shown.returncode == 0, shown.stderr
    ((size,),) = rows(tmp_path, "SELECT size FROM notifications WHERE id = 1")
    fields = dict(line.strip().split(":", 1) for line in shown.stdout.splitlines()[1:] if ": " in line)
    assert {k: v.strip() for k, v in fields.items()} | {"created": "", "next attempt": ""} == {
        "destination": "alerts", "severity": "error", "created": "", "attempts": "1", "next attempt": "",
        "last error": "Discord answered 503", "size": f"{size} bytes",
        "kind": "alert", "rule": "ssh", "key": "1.2.3.4", "title": "old error", "description": "seen on web-1",
        "source": "auth", "path": "/var/log/auth.log", "host": "web-1", "time": "2026-09-21T14:13:20Z", "count": "1",
        "style": "full", "mentions": "roles: 123456789012345678; users: -; everyone: no", "ip": "1.2.3.4",
        "fields": "-",
    }  # fmt: skip
    assert "(2h00m ago)" in fields["created"] and "(in " in fields["next attempt"]
    assert "  line:\n    the log line" in shown.stdout

    dead = spool_cli(tmp_path, "show", "5", "--dead")
    assert dead.returncode == 0, dead.stderr
    assert "dead letter 5" in dead.stdout and "failed:" in dead.stdout
    assert 'error:        Discord answered 400: {"code": 50035, "message": "Invalid Form Body"}' in dead.stdout

    as_json = json.loads(spool_cli(tmp_path, "show", "5", "--dead", "--json").stdout)
    assert (as_json["destination"], as_json["severity"], as_json["attempts"]) == ("alerts", "critical", 1)
    assert as_json["delivery"]["mentions"] == {"roles": ["123456789012345678"], "users": [], "everyone": False}


async def test_show_says_where_an_id_is_not(tmp_path: Path, spool: Spool) -> None:
    waiting_as_dead = spool_cli(tmp_path, "show", "5")
    assert waiting_as_dead.returncode == 1
    assert "no waiting notification 5 (it is a dead letter: add --dead)" in waiting_as_dead.stderr
    gone = spool_cli(tmp_path, "show", "99", "--dead")
    assert gone.returncode == 1 and "no dead letter 99" in gone.stderr
    assert "Traceback" not in waiting_as_dead.stderr + gone.stderr


# ── repairs ─────────────────────────────────────────────────────────────────


async def test_retry_puts_dead_letters_at_the_end_of_their_queue(tmp_path: Path, spool: Spool) -> None:
    result = spool_cli(tmp_path, "retry", "6", "5")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [  # in the order they died, whatever the order asked in
        "dead letter 5 is waiting again as notification 7",
        "dead letter 6 is waiting again as notification 8",
        "retried 2 dead letters",
    ]

    queue = await spool.next("alerts", 10)  # as the daemon sees it, through its open connection
    assert [(s.id, s.delivery.notification.title, s.attempts) for s in queue] == [
        (1, "old error", 1),
        (7, "refused", 0),
        (4, "new error", 0),
        (2, "old info", 0),
    ]  # the oldest, waiting for hours, leads; then the most severe first
    assert queue[1].delivery == delivery("refused", Severity.CRITICAL)
    assert [s.id for s in await spool.next("audit", 10)] == [3, 8]
    fresh = "SELECT severity, last_error, next_attempt, size = length(CAST(body AS BLOB)) FROM notifications WHERE id=?"
    assert rows(tmp_path, fresh, 7) == [(50, "", 0, 1)]  # attempts, error and size as for a new notification
    assert (await spool.status()).dead_letters == {}


async def test_retry_all_of_one_destination_and_refusals(tmp_path: Path, spool: Spool) -> None:
    missing = spool_cli(tmp_path, "retry", "6", "99")
    assert missing.returncode == 1 and "no dead letter 99; nothing was retried" in missing.stderr
    assert titles(tmp_path, "dead_letters") == ["refused", "refused audit"]  # all or nothing

    for usage in (["retry"], ["retry", "5", "--all"], ["retry", "5", "--destination", "audit"]):
        assert spool_cli(tmp_path, *usage).returncode == 2

    audit = spool_cli(tmp_path, "retry", "--all", "--destination", "audit")
    assert audit.returncode == 0, audit.stderr
    assert "retried 1 dead letter" in audit.stdout
    assert [s.delivery.notification.title for s in await spool.next("audit", 10)] == ["old audit", "refused audit"]
    assert titles(tmp_path, "dead_letters") == ["refused"]

    everything = spool_cli(tmp_path, "retry", "--all")
    assert everything.returncode == 0 and "retried 1 dead letter" in everything.stdout
    assert titles(tmp_path, "dead_letters") == []


async def test_drop_needs_a_selector_and_drops_what_it_picks(tmp_path: Path, spool: Spool) -> None:
    refused = spool_cli(tmp_path, "drop")
    assert refused.returncode == 2 and "say what to drop" in refused.stderr
    assert spool_cli(tmp_path, "drop", "1", "--destination", "alerts").returncode == 2
    assert spool_cli(tmp_path, "drop", "--older-than", "soon").returncode == 2
    missing = spool_cli(tmp_path, "drop", "1", "5")  # 5 is a dead letter, not waiting
    assert missing.returncode == 1 and "no waiting notification 5" in missing.stderr
    assert await spool.pending() == 4

    old = spool_cli(tmp_path, "drop", "--destination", "alerts", "--older-than", "1h")
    assert (old.returncode, old.stdout) == (0, "dropped 2 notifications\n")
    assert titles(tmp_path) == ["old audit", "new error"]

    by_severity = spool_cli(tmp_path, "drop", "--severity", "P1")  # error
    assert by_severity.stdout == "dropped 1 notification\n"
    by_id = spool_cli(tmp_path, "drop", "3")
    assert by_id.stdout == "dropped 1 notification\n"
    assert await spool.pending() == 0
    assert titles(tmp_path, "dead_letters") == ["refused", "refused audit"]  # drop leaves dead letters alone


async def test_purge_deletes_dead_letters(tmp_path: Path, spool: Spool, clock: FakeClock) -> None:
    clock.now = time.time() - 3 * HOUR
    await spool.commit([delivery("ancient")])
    clock.now = time.time() - 1.5 * HOUR  # stored three hours ago, failed an hour and a half ago
    await spool.reject([7], "Discord answered 400: too old")

    refused = spool_cli(tmp_path, "purge", "--dead")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert titles(tmp_path, "dead_letters") == ["refused", "refused audit", "ancient"]

    none = spool_cli(tmp_path, "purge", "--older-than", "2h")  # counted from the failure
    assert (none.returncode, none.stdout) == (0, "purged 0 dead letters\n")
    old = spool_cli(tmp_path, "purge", "--dead", "--older-than", "1h")
    assert (old.returncode, old.stdout) == (0, "purged 1 dead letter\n")
    assert titles(tmp_path, "dead_letters") == ["refused", "refused audit"]

    everything = spool_cli(tmp_path, "purge", "--yes")
    assert everything.stdout == "purged 2 dead letters\n"
    assert titles(tmp_path, "dead_letters") == []
    assert await spool.pending() == 4  # purge leaves waiting notifications alone


# ── where the spool is, and what goes wrong ─────────────────────────────────


def test_a_missing_spool_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    result = spool_cli(tmp_path / "nowhere", "status")
    assert result.returncode == 1
    assert f"no spool at {tmp_path / 'nowhere' / FILE_NAME}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "nowhere").exists()  # nothing created


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a database" * 100, "file is not a database"),
        (None, f"newer than this tailhook knows ({SCHEMA_VERSION})"),
    ],
)
def test_a_spool_it_cannot_read_is_left_alone(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / FILE_NAME
    if content is None:
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA user_version = 99")
    else:
        path.write_bytes(content)
    before = path.read_bytes()

    result = spool_cli(tmp_path, "list")
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert path.read_bytes() == before  # not moved aside, not migrated: that is the daemon's job
    assert [p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name] == []


async def test_the_config_says_where_the_spool_is_and_its_secrets_stay_out(tmp_path: Path) -> None:
    config = write_config(tmp_path, url=f"http://127.0.0.1:9/api/webhooks/112233/{TOKEN}")
    spool = await Spool.open(tmp_path / "state")
    await spool.commit([delivery("from the config's state_dir")])
    await spool.close()

    for args in (["status"], ["status", "--json"], ["list"], ["show", "1", "--json"]):
        result = run_cli("spool", *args, "-c", str(config))
        assert result.returncode == 0, result.stderr
        assert TOKEN not in result.stdout + result.stderr and "webhooks" not in result.stdout + result.stderr
    assert "from the config's state_dir" in run_cli("spool", "list", "-c", str(config)).stdout
    assert run_cli("spool", "status", env={"TAILHOOK_CONFIG": str(config)}).returncode == 0


def test_usage_and_config_errors_exit_as_other_commands_do(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra="storm: {window: 60}\n")  # given twice: invalid
    broken = run_cli("spool", "status", "-c", str(config))
    assert broken.returncode == 78 and "problem" in broken.stderr

    good = write_config(tmp_path)
    for usage in (
        ["spool"],
        ["spool", "status", "-c", str(good), "--state-dir", str(tmp_path)],
        ["spool", "list", "--severity", "loud", "--state-dir", str(tmp_path)],
        ["spool", "show", "first", "--state-dir", str(tmp_path)],
        ["spool", "list", "--limit", "-1", "--state-dir", str(tmp_path)],
    ):
        result = run_cli(*usage)
        assert result.returncode == 2, usage
        assert "usage:" in result.stderr and "Traceback" not in result.stderr


# ── beside a running daemon ─────────────────────────────────────────────────


@pytest.fixture
def discord() -> Iterator[ThreadedStandIn]:
    with standin_in_thread() as standin:
        yield standin


def test_repairs_while_the_daemon_runs(tmp_path: Path, discord: ThreadedStandIn) -> None:
    config = write_config(tmp_path, url=discord.url(), extra="probe: {mode: off}\n")
    daemon = Daemon(config)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("spool", *args, "-c", str(config))

    try:
        daemon.started()

        # A 400 makes a dead letter; show it with Discord's error body, then retry it.
        discord.fail_next(400, body={"code": 50035, "message": "Invalid Form Body", "errors": {"embeds": {}}})
        daemon.append("LOUD first")
        daemon.wait_for_log("refused the alert")
        dead = cli("list", "--dead")
        assert dead.returncode == 0, dead.stderr
        ((letter_id, *_),) = listed(dead.stdout)
        shown = cli("show", letter_id, "--dead")
        assert "loud: first" in shown.stdout and "50035" in shown.stdout and "Invalid Form Body" in shown.stdout
        retried = cli("retry", letter_id)
        assert retried.returncode == 0 and "retried 1 dead letter" in retried.stdout

        # The daemon looks for work when an alert is stored; the retried one goes out first, as it is older.
        daemon.append("LOUD second")
        assert [e["title"] for e in discord.wait_for_embeds(2)] == ["loud: first", "loud: second"]

        # A dead webhook leaves alerts waiting; look at them and drop them under the daemon's feet.
        discord.delete_webhook(discord.url().split("/")[-2])
        daemon.append("LOUD third")
        daemon.wait_for_log("is dead")
        wait_until(lambda: json.loads(cli("status", "--json").stdout)["waiting"] == 1, what="one alert waiting")
        assert "loud: third" in cli("list").stdout
        dropped = cli("drop", "--destination", "alerts")
        assert (dropped.returncode, dropped.stdout) == (0, "dropped 1 notification\n")
        assert json.loads(cli("status", "--json").stdout)["waiting"] == 0
    finally:
        code = daemon.stop()
    assert code == 0, daemon.stderr
    assert "Traceback" not in daemon.stderr
    assert TOKEN not in daemon.stderr


async def test_list_summarised_shows_the_alerts_a_flood_summed_up(tmp_path: Path, clock: FakeClock) -> None:
    spool = await Spool.open(tmp_path, clock=clock)
    try:
        await spool.commit([delivery(f"flood {n}", Severity.WARNING) for n in range(30)])
        (summary,) = await spool.summarise("alerts", host="web-1", flood_after_s=30)
        listed = spool_cli(tmp_path, "list", "--summarised")
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert lines[0].split() == ["ID", "DESTINATION", "SEVERITY", "AGE", "SUMMED", "UP", "IN", "TITLE"]
        assert len(lines) == 31 and "ssh: 30 alerts summed up, from 1 key" in lines[1] and "flood 0" in lines[1]
        as_json = json.loads(spool_cli(tmp_path, "list", "--summarised", "--json", "--limit", "0").stdout)
        assert [item["delivery"]["title"] for item in as_json] == [f"flood {n}" for n in range(30)]
        assert {item["summary"] for item in as_json} == {summary.title}
        assert spool_cli(tmp_path, "list", "--summarised", "--dead").returncode == 2  # one or the other
    finally:
        await spool.close()

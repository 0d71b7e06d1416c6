"""End to end: ``tailhook run`` as a subprocess, a real log file, the Discord stand-in over real HTTP."""

from __future__ import annotations

import itertools
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import Daemon, run_cli, wait_until, write_config
from tests.discord_standin import TOKEN, ThreadedStandIn, standin_in_thread

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def discord() -> Iterator[ThreadedStandIn]:
    with standin_in_thread() as standin:
        yield standin


def start(tmp_path: Path, url: str | None, *args: str, extra: str = "") -> Daemon:
    daemon = Daemon(write_config(tmp_path, url=url, extra=extra), *args)
    try:
        return daemon.started()
    except BaseException:
        daemon.kill()
        raise


def assert_no_token(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text
        assert TOKEN[:20] not in text  # not even a part of it


def test_alerts_reach_discord_as_exact_payloads(tmp_path: Path, discord: ThreadedStandIn) -> None:
    daemon = start(tmp_path, discord.url())
    long_line = "LOUD " + "x" * 10_000
    daemon.append(
        "Nov 23 10:00:00 web-1 sshd[812]: Failed password for invalid user oracle from 203.0.113.45 port 52114 ssh2",
        "Nov 23 10:00:01 web-1 sshd[812]: Accepted password for alice from 203.0.113.46 port 52115 ssh2",
        long_line,
    )
    embeds = {embed["color"]: embed for embed in discord.wait_for_embeds(2)}  # in one message: critical first
    assert daemon.stop() == 0

    for message in discord.received:  # one message or two, as the batching found them due
        assert message.query == {"wait": "true"}
        assert message.payload["allowed_mentions"] == {"parse": []}
        assert "content" not in message.payload
    embed = embeds[0xFF8800]  # error
    assert embed["title"] == "SSH password failure for oracle from 203.0.113.45"
    assert "Failed password for invalid user oracle" in embed["description"]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert "oracle" in fields["user"] and "203.0.113.45" in fields["ip"]
    assert "ssh-failure" in embed["footer"]["text"]

    embed = embeds[0xFF0000]  # critical
    assert len(embed["title"]) <= 256 and embed["title"].endswith("…")
    assert len(embed["description"]) <= 4096
    block, note = embed["description"].rsplit("\n", 1)
    assert block.endswith("…\n```")  # cut inside the code block, fence still closed
    assert note.startswith("The whole line is attached: `anything-loud-")  # the whole line went as a file
    (file,) = [file for message in discord.received for file in message.files]
    assert note.endswith(f"`{file.filename}`.") and file.data.decode() == long_line + "\n"
    assert len(discord.embeds) == 2  # the accepted line matched no rule
    assert_no_token(daemon.stdout, daemon.stderr)


def test_log_text_pings_no_one(tmp_path: Path, discord: ThreadedStandIn) -> None:
    daemon = start(tmp_path, discord.url())
    pings = "@everyone @here <@&123456789012345678> <@123456789012345678> <@!123456789012345678>"
    daemon.append(f"LOUD {pings}")
    (message,) = discord.wait_for(1)
    assert daemon.stop() == 0

    assert message.payload["allowed_mentions"] == {"parse": []}
    assert "content" not in message.payload  # embeds never ping; content is where pings live
    text = str(message.payload["embeds"])
    assert "everyone" in text and "123456789012345678" in text  # the text arrived, harmlessly


def test_no_destination_prints_alerts_to_stdout(tmp_path: Path) -> None:
    daemon = start(tmp_path, None)
    daemon.append("sshd[1]: Failed password for root from 198.51.100.7 port 22 ssh2")
    wait_until(lambda: "SSH password failure for root from 198.51.100.7" in daemon.stdout, what="the console alert")
    assert daemon.stop() == 0
    assert "ERROR [ssh-failure] → console" in daemon.stdout


def test_dry_run_never_posts(tmp_path: Path, discord: ThreadedStandIn) -> None:
    daemon = start(tmp_path, discord.url(), "--dry-run")
    daemon.append("LOUD dry")
    wait_until(lambda: "loud: dry" in daemon.stdout, what="the console alert")
    assert daemon.stop() == 0
    assert discord.requests == []  # not even the probe
    assert "CRITICAL [anything-loud] → alerts" in daemon.stdout


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("failure", ["unreachable", "dropped", "500", "400", "404", "401"])
def test_the_token_never_appears_in_output(tmp_path: Path, discord: ThreadedStandIn, failure: str) -> None:
    url = discord.url()
    if failure == "unreachable":
        url = url.replace(f":{discord.port}/", f":{closed_port()}/")
    daemon = start(tmp_path, url, extra="probe: {mode: off}\n")
    if failure == "dropped":
        discord.drop_next(1)
    elif failure == "401":
        discord.set_status(401)
    elif failure.isdigit():
        discord.fail_next(int(failure))
    daemon.append("LOUD one")

    expected = {
        "unreachable": "request failed: ClientConnectorError",
        "dropped": "request failed",
        "500": "Discord answered 500",
        "400": "refused the alert",
        "404": "is dead: Discord answered 404",
        "401": "is dead: Discord answered 401",
    }[failure]
    daemon.wait_for_log(expected)
    if failure in ("dropped", "500"):
        discord.wait_for(1)  # retried, then delivered
    assert daemon.stop() == 0
    assert_no_token(daemon.stdout, daemon.stderr)
    assert "Traceback" not in daemon.stderr


def test_a_dead_webhook_at_start_exits_78_naming_the_destination(tmp_path: Path, discord: ThreadedStandIn) -> None:
    discord.delete_webhook(discord.url().split("/")[-2])
    config = write_config(tmp_path, url=discord.url())
    result = run_cli("run", "-c", str(config))

    assert result.returncode == 78
    assert "destination alerts" in result.stderr and "404" in result.stderr
    assert "Traceback" not in result.stderr
    assert_no_token(result.stdout, result.stderr)


def test_check_probe(tmp_path: Path, discord: ThreadedStandIn) -> None:
    good = run_cli("check", "--probe", "-c", str(write_config(tmp_path, url=discord.url())))
    assert good.returncode == 0, good.stderr
    assert "destination alerts: ok" in good.stdout
    assert [(method, status) for method, _, status in discord.requests] == [("GET", 200)]

    wrong_token = discord.url(token="not-the-" + TOKEN[8:])
    bad = run_cli("check", "--probe", "-c", str(write_config(tmp_path, url=wrong_token)))
    assert bad.returncode == 78
    assert "destination alerts: DEAD: Discord answered 401" in bad.stdout

    unreachable = discord.url().replace(f":{discord.port}/", f":{closed_port()}/")
    down = run_cli("check", "--probe", "-c", str(write_config(tmp_path, url=unreachable)))
    assert down.returncode == 1
    assert "destination alerts: unreachable" in down.stdout
    assert_no_token(good.stdout, good.stderr, bad.stdout, bad.stderr, down.stdout, down.stderr)


def test_check_reports_three_mistakes_and_run_exits_78_without_traceback(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra="storm: {window: 60}\nrouts: []\n")
    (tmp_path / "rules.d" / "broken.yaml").write_text("rules:\n  - name: bad\n    match: '(unclosed'\n")

    checked = run_cli("check", "-c", str(config))
    assert checked.returncode == 78
    problems = [line.strip() for line in checked.stderr.splitlines()[1:]]
    assert len(problems) == 4, checked.stderr
    assert re.fullmatch(rf"{re.escape(str(config))}:\d+: storm: given twice; .*", problems[0])
    assert any(re.fullmatch(rf"{re.escape(str(config))}:\d+: storm.window: a duration .*", p) for p in problems)
    assert any(re.fullmatch(rf"{re.escape(str(config))}:\d+: routs: unknown key", p) for p in problems)
    assert f"{tmp_path}/rules.d/broken.yaml:3: rules[0] (bad).match: regex does not compile" in problems[3]

    ran = run_cli("run", "-c", str(config))
    assert ran.returncode == 78
    assert ran.stderr == checked.stderr
    assert "Traceback" not in ran.stderr


def test_the_example_config_checks_out() -> None:
    example = Path(__file__).resolve().parent.parent / "config.example.yaml"
    result = run_cli("check", "-c", str(example))
    assert result.returncode == 0, result.stderr
    assert "OK: 9 sources" in result.stdout


def test_version_and_usage() -> None:
    version = run_cli("--version")
    assert version.returncode == 0 and re.fullmatch(r"tailhook \S+\n", version.stdout)
    assert run_cli("frobnicate").returncode == 2
    assert run_cli("run", "-c", "/nonexistent/tailhook.yaml").returncode == 78


def test_probe_message_mode_posts_one_silent_note(tmp_path: Path, discord: ThreadedStandIn) -> None:
    daemon = start(tmp_path, discord.url(), extra="probe: {mode: message}\n")
    assert daemon.stop() == 0
    (note,) = discord.received
    assert note.payload["flags"] == 4096  # SUPPRESS_NOTIFICATIONS: nobody's phone buzzes
    assert note.payload["allowed_mentions"] == {"parse": []}
    assert note.payload["content"].startswith("tailhook ") and "1 sources, 3 rules" in note.payload["content"]


def test_probe_warn_mode_runs_on_with_a_dead_webhook(tmp_path: Path, discord: ThreadedStandIn) -> None:
    discord.delete_webhook(discord.url().split("/")[-2])
    daemon = start(tmp_path, discord.url(), extra="probe: {mode: get, on_failure: warn}\n")
    daemon.append("LOUD still running")
    daemon.wait_for_log("destination alerts is dead")
    assert daemon.stop() == 0
    assert "WARNING tailhook.app: destination alerts: Discord answered 404" in daemon.stderr
    assert_no_token(daemon.stdout, daemon.stderr)


def test_tells_systemd_when_ready_and_when_stopping(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(tmp_path / "notify.sock"))
        listener.settimeout(15)
        daemon = Daemon(write_config(tmp_path), env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
        try:
            assert listener.recv(256) == b"READY=1"
            assert "started on" in daemon.stderr  # ready only once the sources are open
            assert listener.recv(256) == b"STATUS=following 1 file; 0 alerts waiting"
            daemon.process.terminate()
            assert listener.recv(256) == b"STOPPING=1"
        finally:
            assert daemon.stop() == 0


def test_pings_the_watchdog_at_half_its_timeout_with_the_status(tmp_path: Path) -> None:
    """WatchdogSec=2s in a unit: systemd sets WATCHDOG_USEC=2000000 and wants a ping within 2 s."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(tmp_path / "notify.sock"))
        listener.settimeout(15)
        env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "2000000"}
        daemon = Daemon(write_config(tmp_path), env=env)
        try:
            assert listener.recv(256) == b"READY=1"
            messages, times = [], []
            while len(times) < 4:
                messages.append(listener.recv(256).decode())
                times.append(time.monotonic())
        finally:
            assert daemon.stop() == 0
    assert messages[0] == "STATUS=following 1 file; 0 alerts waiting\nWATCHDOG=1"
    assert messages[1:] == ["WATCHDOG=1"] * 3
    gaps = sorted(b - a for a, b in itertools.pairwise(times))
    assert 0.5 < gaps[1] < 1.9, gaps  # about 1 s apart (the median of three): half the timeout, well within it

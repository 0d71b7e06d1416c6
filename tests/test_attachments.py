"""The whole excerpt as a file, through the daemon and the Discord stand-in: a 60 kB traceback (one
multiline event) arrives whole as a ``.log`` attachment, a 20 MB line as a file cut to 10 MiB, with
no 400 and no 413."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tailhook.sinks.discord_files import CUT_MARKER, MAX_FILE_BYTES
from tests.daemon import Daemon, metrics, wait_until, write_config
from tests.discord_standin import standin_in_thread

pytestmark = pytest.mark.timeout(120)

SOURCE = "- {name: app, paths: [app.log], start_at: beginning}"
CUT = 'tailhook_discord_files_cut_total{destination="alerts"}'


def config(directory: Path, url: str, source: str) -> Path:
    path = write_config(directory, url=url, extra="http: {listen: '127.0.0.1:0'}\n")
    text = path.read_text(encoding="utf-8")
    assert SOURCE in text
    path.write_text(text.replace(SOURCE, source), encoding="utf-8")
    return path


def test_a_sixty_kilobyte_traceback_arrives_whole_as_an_attachment(tmp_path: Path) -> None:
    frames = [f'  File "/srv/app/views_{n}.py", line {n}, in render_{n}\n    return template_{n}.render(context)'
              for n in range(640)]  # fmt: skip
    traceback = ["LOUD worker crashed: Traceback (most recent call last):", *frames, "KeyError: 'user'"]
    event = "\n".join(traceback)
    assert 60_000 < len(event.encode()) < 64 * 1024
    source = (
        "- {name: app, paths: [app.log], start_at: beginning, max_line_bytes: 128KiB,"
        " multiline: {continuation: '^(  |KeyError)', max_lines: 2000, timeout: 500ms}}"
    )
    with standin_in_thread() as discord:
        daemon = Daemon(config(tmp_path, discord.url(), source)).started()
        try:
            daemon.append(*traceback, "LOUD the next event, which ends the traceback's")
            discord.wait_for(2, timeout=30)
        finally:
            assert daemon.stop() == 0
        crash = next(post for post in discord.received if "worker crashed" in str(post.payload["embeds"]))
        statuses = {status for method, _, status in discord.requests if method == "POST"}
    (file,) = crash.files
    assert file.filename.startswith("anything-loud-") and file.filename.endswith(".log")
    assert file.data.decode() == event + "\n"  # every frame, the last line included
    (embed,) = crash.payload["embeds"]
    assert "KeyError" not in embed["description"] and f"`{file.filename}`" in embed["description"]
    assert statuses == {200}


def test_a_twenty_megabyte_line_arrives_as_a_file_cut_to_ten_mebibytes(tmp_path: Path) -> None:
    line = "DUMP payload " + "0123456789abcdef" * (20_000_000 // 16)
    source = "- {name: app, paths: [app.log], start_at: beginning, max_line_bytes: 32MiB}"
    with standin_in_thread() as discord:
        path = config(tmp_path, discord.url(), source)
        # a rule that captures nothing: the test is about the file, not about 20 MB titles and keys
        (tmp_path / "rules.d" / "dump.yaml").write_text(
            "rules:\n  - {name: dump, match: '^DUMP ', severity: critical, title: payload dump}\n", encoding="utf-8"
        )
        daemon = Daemon(path).started()
        try:
            daemon.append(line)
            discord.wait_for(1, timeout=60)
            wait_until(lambda: metrics(daemon).get(CUT) == 1, timeout=10, what="the cut counted")
        finally:
            assert daemon.stop() == 0
        (post,) = discord.received
        statuses = [status for method, _, status in discord.requests if method == "POST"]
    (file,) = post.files
    assert MAX_FILE_BYTES - 100 < len(file.data) <= MAX_FILE_BYTES
    assert file.data.startswith(line[:1000].encode()) and file.data.endswith(CUT_MARKER.encode())
    assert statuses == [200]  # no 400, no 413


def ssh(user: str) -> str:
    return f"Nov 23 10:00:00 web-1 sshd[812]: Failed password for {user} from 203.0.113.7 port 22 ssh2"


@pytest.mark.parametrize("updates", ["edit", "post"])
def test_a_storms_digest_attaches_the_lines_it_held_back(tmp_path: Path, updates: str) -> None:
    users = [f"user{n}" for n in range(6)]
    with standin_in_thread() as discord:
        path = write_config(
            tmp_path,
            url=discord.url(),
            storm="{window: 2s, max_per_window: 1}",
            destination=f"storm_updates: {updates}",
        )
        daemon = Daemon(path).started()
        try:
            daemon.append(*(ssh(user) for user in users))
            wait_until(lambda: any(f.filename.endswith("-held.log") for r in [*discord.received, *discord.edits]
                                   for f in r.files), timeout=30, what="the held lines as a file")  # fmt: skip
        finally:
            assert daemon.stop() == 0
        (request,) = [r for r in [*discord.received, *discord.edits] if r.files]
        messages = list(discord.messages.values())
    (held,) = request.files
    assert held.filename.startswith("ssh-failure-") and held.filename.endswith("-held.log")
    assert held.data.decode() == "".join(ssh(user) + "\n" for user in users[1:])  # the five held, in order
    digest = next(e for m in messages for e in m.embeds if "+5 more" in e["title"])
    assert str(digest["description"]).endswith(f"The lines held back are attached: `{held.filename}`.")
    if updates == "edit":  # the digest edited into the first alert's message, which now has the file
        (message,) = messages
        assert [a.filename for a in message.attachments] == [held.filename]
    else:
        assert len(messages) == 2 and not discord.edits


def test_a_twenty_megabyte_capture_is_cut_in_the_key_and_title_and_the_line_goes_whole_as_a_file(
    tmp_path: Path,
) -> None:
    line = "LOUD " + "0123456789abcdef" * (20_000_000 // 16)  # `LOUD (?P<what>.*)`: key '{what}', title 'loud: {what}'
    source = "- {name: app, paths: [app.log], start_at: beginning, max_line_bytes: 32MiB}"
    with standin_in_thread() as discord:
        daemon = Daemon(config(tmp_path, discord.url(), source)).started()
        try:
            daemon.append(line)
            (post,) = discord.wait_for(1, timeout=60)
        finally:
            assert daemon.stop() == 0
    (embed,) = post.payload["embeds"]
    assert len(embed["title"]) <= 256 and embed["title"].startswith("loud: 0123456789abcdef")
    (file,) = post.files
    assert len(file.data) > MAX_FILE_BYTES - 100 and file.data.startswith(line[:1000].encode())
    with sqlite3.connect(tmp_path / "state" / "spool.sqlite3") as db:
        (key,) = db.execute("SELECT key FROM storm_keys WHERE rule = 'anything-loud'").fetchone()
    assert len(key) <= 1024 and key.endswith("…")  # the storm key is cut, not 20 MB

"""The heartbeat, through the daemon: pings while healthy, the fail URL while a destination is stuck
or the spool cannot write, and the URL's secret never in a log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tailhook.config import ConfigError, load_config
from tests.conftest import small_tmpfs
from tests.daemon import Daemon, wait_until, write_config
from tests.discord_standin import standin_in_thread

SECRET = "5f0e8a2c-secret-check-uuid"


class PingServer:
    """A healthchecks.io-like endpoint on 127.0.0.1: records each request's method, path and body."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []
        self.status = 200
        pings = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                pings.requests.append((self.command, self.path, body))
                self.send_response(pings.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/ping/{SECRET}"

    def paths(self) -> list[str]:
        return [path.rsplit(SECRET, 1)[-1] or "/" for _, path, _ in self.requests]


@pytest.fixture
def pings() -> Iterator[PingServer]:
    server = PingServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


def test_the_fail_url_is_the_url_with_fail_unless_given(tmp_path: Path) -> None:
    (tmp_path / "app.log").touch()
    head = "state_dir: state\nsources: [{name: app, paths: [app.log]}]\n"
    (tmp_path / "a.yaml").write_text(head + "heartbeat: {url: 'https://hc-ping.com/abc/', every: 1m}\n")
    beat = load_config(tmp_path / "a.yaml").heartbeat
    assert beat is not None and beat.every == 60 and beat.method == "post"
    assert (beat.url.reveal(), beat.fail_url.reveal()) == ("https://hc-ping.com/abc/", "https://hc-ping.com/abc/fail")
    assert "abc" not in repr(beat)  # the secret part of a URL is shown as ***
    kuma = "{url: 'https://kuma/api/push/T?status=up', fail_url: 'https://kuma/api/push/T?status=down', method: get}"
    (tmp_path / "b.yaml").write_text(head + f"heartbeat: {kuma}\n")
    beat = load_config(tmp_path / "b.yaml").heartbeat
    assert beat is not None and beat.fail_url.reveal().endswith("?status=down") and beat.method == "get"
    (tmp_path / "c.yaml").write_text(head + "heartbeat: {url: 'ftp://x/y', every: never}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "c.yaml")
    assert [p.key for p in caught.value.problems] == ["heartbeat.url", "heartbeat.every"]


def test_pings_while_healthy_and_reports_a_stuck_destination(tmp_path: Path, pings: PingServer) -> None:
    with standin_in_thread() as discord:
        beat = f"heartbeat: {{url: '{pings.url}', every: 0.2s, stuck_after: 1s}}\nprobe: {{mode: off}}\n"
        config = write_config(tmp_path, url=discord.url(), extra=beat)
        daemon = Daemon(config).started()
        try:
            wait_until(lambda: len(pings.requests) >= 2, timeout=10, what="two pings")
            method, _, body = pings.requests[-1]
            assert (method, pings.paths()[-1], body) == ("POST", "/", "following 1 file; 0 alerts waiting")

            discord.set_status(503)  # Discord down: the alert waits, and waits
            daemon.append("LOUD the disk is on fire")
            wait_until(lambda: "/fail" in pings.paths(), timeout=20, what="a failure reported")
            _, _, body = pings.requests[pings.paths().index("/fail")]
            assert body.startswith("destination alerts: an alert has waited ")
            assert body.endswith("more than heartbeat.stuck_after (1 s)")

            discord.set_status(None)  # back: the alert goes, the pings are healthy again
            discord.wait_for_embeds(1, timeout=30)
            failures = len(pings.requests)
            wait_until(lambda: pings.paths()[failures:].count("/") >= 2, timeout=20, what="healthy pings again")
        finally:
            assert daemon.stop() == 0
    assert "heartbeat: healthy again" in daemon.stderr
    assert SECRET not in daemon.stderr and SECRET not in daemon.stdout


@pytest.mark.timeout(120)
def test_a_spool_that_cannot_write_is_reported(tmp_path: Path, pings: PingServer) -> None:
    with small_tmpfs(tmp_path / "small-disk", "4m") as disk, standin_in_thread() as discord:
        discord.set_status(503)  # nothing leaves the spool
        beat = f"heartbeat: {{url: '{pings.url}', every: 0.2s}}\nprobe: {{mode: off}}\nstate_dir: {disk}\n"
        config = write_config(tmp_path, url=discord.url(), extra=beat)
        config.write_text(config.read_text().replace("state_dir: state\n", ""))
        daemon = Daemon(config).started()
        try:
            (disk / "filler").write_bytes(b"\0" * 3 * 1024 * 1024)  # leaves less than tailhook keeps free
            daemon.append(*(f"LOUD big {n} {'y' * 300}" for n in range(200)))
            daemon.wait_for_log("the disk of the spool is full", timeout=60)
            wait_until(lambda: "/fail" in pings.paths(), timeout=20, what="a failure reported")
            _, _, body = pings.requests[pings.paths().index("/fail")]
            assert body == "the disk of the spool is full: reading is paused"
        finally:
            assert daemon.stop() == 0

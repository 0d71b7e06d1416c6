"""The status endpoints: a real server on 127.0.0.1 asked by a real client."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tailhook.http import HttpServer
from tailhook.metrics import Metric, Registry, counter, gauge

pytestmark = pytest.mark.timeout(30)


# ── the server ──────────────────────────────────────────────────────────────


@dataclass
class Daemon:
    """What the app would hand the server: its state, read at each request."""

    not_live: str | None = None
    not_ready: str | None = None
    degraded: str | None = None
    metrics: list[Metric] = field(default_factory=list)
    broken: Exception | None = None
    registry: Registry = field(default_factory=Registry)

    def __post_init__(self) -> None:
        self.registry.register(self)

    def collect(self) -> Iterable[Metric]:
        if self.broken is not None:
            raise self.broken
        return self.metrics

    def server(self, listen: str = "127.0.0.1:0") -> HttpServer:
        return HttpServer(
            listen,
            live=lambda: self.not_live,
            ready=lambda: self.not_ready,
            exposition=self.registry.exposition,
            degraded=lambda: self.degraded,
        )


@pytest.fixture
def daemon() -> Daemon:
    return Daemon()


@pytest.fixture
async def server(daemon: Daemon) -> AsyncIterator[HttpServer]:
    server = daemon.server()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def url(server: HttpServer, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


async def get(session: aiohttp.ClientSession, server: HttpServer, path: str) -> tuple[int, str, str]:
    async with session.get(url(server, path)) as response:
        return response.status, response.headers["Content-Type"], await response.text()


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def test_port_0_binds_a_real_port(server: HttpServer) -> None:
    assert 0 < server.port < 65536
    assert not port_is_free(server.port)


def test_the_port_is_unknown_before_start(daemon: Daemon) -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = daemon.server().port


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_probes_answer_ok_or_the_reason(
    path: str, daemon: Daemon, server: HttpServer, session: aiohttp.ClientSession
) -> None:
    assert await get(session, server, path) == (200, "text/plain; charset=utf-8", "ok\n")

    if path == "/healthz":
        daemon.not_live = "the event loop is stuck"
    else:
        daemon.not_ready = "destination alerts is dead"
    status, content_type, body = await get(session, server, path)
    assert (status, content_type) == (503, "text/plain; charset=utf-8")
    assert body == ("the event loop is stuck\n" if path == "/healthz" else "destination alerts is dead\n")

    daemon.not_live = daemon.not_ready = None
    assert (await get(session, server, path))[0] == 200


async def test_liveness_and_readiness_are_asked_apart(
    daemon: Daemon, server: HttpServer, session: aiohttp.ClientSession
) -> None:
    daemon.not_ready = "still probing destinations"

    assert (await get(session, server, "/healthz"))[0] == 200
    assert (await get(session, server, "/readyz"))[0] == 503


async def test_a_degraded_daemon_is_ready_and_says_why(
    daemon: Daemon, server: HttpServer, session: aiohttp.ClientSession
) -> None:
    daemon.degraded = "the fleet's Redis does not answer; pacing alone"
    status, _, text = await get(session, server, "/readyz")
    assert (status, text) == (200, "ok, degraded: the fleet's Redis does not answer; pacing alone\n")
    daemon.not_ready = "stopping"  # not ready outweighs degraded
    assert (await get(session, server, "/readyz"))[:3:2] == (503, "stopping\n")


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples by (name, labels), as prometheus_client's parser reads them (it raises on bad text)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_answer_the_text_format(
    daemon: Daemon, server: HttpServer, session: aiohttp.ClientSession
) -> None:
    daemon.metrics = [
        counter("tailhook_delivered_total", "Delivered.", {'a"b': 12}, "destination"),
        gauge("tailhook_up", "1 while running.", 1),
    ]

    status, content_type, body = await get(session, server, "/metrics")

    assert (status, content_type) == (200, "text/plain; version=0.0.4; charset=utf-8")
    assert "# TYPE tailhook_delivered_total counter\n" in body
    assert parse(body) == {
        ("tailhook_delivered_total", (("destination", 'a"b'),)): 12,
        ("tailhook_up", ()): 1,
    }


async def test_metrics_answer_openmetrics_when_asked(
    daemon: Daemon, server: HttpServer, session: aiohttp.ClientSession
) -> None:
    daemon.metrics = [counter("tailhook_delivered_total", "Delivered.", 3)]
    headers = {"Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"}

    async with session.get(url(server, "/metrics"), headers=headers) as response:
        body = await response.text()
        assert response.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith("# EOF\n")
    assert "# TYPE tailhook_delivered counter\ntailhook_delivered_total 3.0\n" in body


async def test_metrics_are_collected_at_each_request(
    daemon: Daemon, server: HttpServer, session: aiohttp.ClientSession
) -> None:
    for n in (1, 2):
        daemon.metrics = [gauge("tailhook_up", "h", n)]
        assert (await get(session, server, "/metrics"))[2].endswith(f"tailhook_up {n:.1f}\n")


async def test_a_failing_collect_answers_500_and_the_server_goes_on(
    daemon: Daemon, server: HttpServer, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    daemon.broken = RuntimeError("spool is locked")

    with caplog.at_level(logging.WARNING, logger="tailhook.http"):
        status, content_type, body = await get(session, server, "/metrics")

    assert (status, content_type) == (500, "text/plain; charset=utf-8")
    assert body == "collecting the metrics failed: RuntimeError: spool is locked\n"
    (record,) = [r for r in caplog.records if r.name == "tailhook.http"]
    assert record.levelno == logging.WARNING
    assert "RuntimeError: spool is locked" in record.getMessage()

    daemon.broken = None
    daemon.metrics = [gauge("tailhook_up", "h", 1)]
    assert (await get(session, server, "/metrics"))[0] == 200
    assert (await get(session, server, "/healthz"))[0] == 200


async def test_requests_are_not_logged(
    server: HttpServer, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await get(session, server, "/healthz?token=secret")

    assert not [r for r in caplog.records if "secret" in r.getMessage()]


async def test_head_works_where_get_does(server: HttpServer, session: aiohttp.ClientSession) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        async with session.head(url(server, path)) as response:
            assert response.status == 200
            assert await response.read() == b""


async def test_unknown_paths_are_404_and_other_methods_405(server: HttpServer, session: aiohttp.ClientSession) -> None:
    assert (await get(session, server, "/"))[0] == 404
    assert (await get(session, server, "/metrics/extra"))[0] == 404
    async with session.post(url(server, "/healthz")) as response:
        assert response.status == 405


async def test_a_port_in_use_raises_oserror_naming_the_address(daemon: Daemon, server: HttpServer) -> None:
    listen = f"127.0.0.1:{server.port}"
    second = daemon.server(listen)

    with pytest.raises(OSError, match=rf"cannot listen on {re.escape(listen)}: ") as caught:
        await second.start()

    assert caught.value.errno is not None


async def test_a_port_held_by_another_socket_raises_oserror(daemon: Daemon) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        server = daemon.server(f"127.0.0.1:{holder.getsockname()[1]}")
        with pytest.raises(OSError, match="cannot listen on"):
            await server.start()
        await server.stop()  # harmless after a failed start


async def test_stop_frees_the_port(daemon: Daemon, session: aiohttp.ClientSession) -> None:
    first = daemon.server()
    await first.start()
    port = first.port
    assert (await get(session, first, "/healthz"))[0] == 200

    await first.stop()
    await first.stop()  # twice is harmless

    second = daemon.server(f"127.0.0.1:{port}")
    await second.start()
    try:
        assert second.port == port
        assert (await get(session, second, "/healthz"))[0] == 200
    finally:
        await second.stop()


async def test_ipv6_in_brackets(daemon: Daemon, session: aiohttp.ClientSession) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    server = daemon.server("[::1]:0")
    try:
        await server.start()
    except OSError as exc:
        pytest.skip(f"::1 cannot be bound here: {exc}")
    try:
        async with session.get(f"http://[::1]:{server.port}/healthz") as response:
            assert response.status == 200
    finally:
        await server.stop()


async def test_all_ipv4_interfaces(daemon: Daemon, session: aiohttp.ClientSession) -> None:
    server = daemon.server("0.0.0.0:0")
    await server.start()
    try:
        assert (await get(session, server, "/healthz"))[0] == 200
    finally:
        await server.stop()


@pytest.mark.parametrize("listen", ["9420", "localhost:", "localhost:http", "127.0.0.1:65536"])
def test_listen_must_be_host_and_port(daemon: Daemon, listen: str) -> None:
    with pytest.raises(ValueError, match="not host:port"):
        daemon.server(listen)

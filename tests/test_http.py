"""The status endpoints: render's exact text, and a real server on 127.0.0.1 asked by a real client."""

from __future__ import annotations

import logging
import math
import re
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import aiohttp
import pytest

from tailhook.http import CONTENT_TYPE, HttpServer, Metric, Sample, render

pytestmark = pytest.mark.timeout(30)


# ── a strict reader of the exposition format, to check render against ──────

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_VALUE = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|Inf)|NaN"
_SAMPLE = re.compile(rf"({_NAME})(?:\{{((?:{_LABEL})(?:,{_LABEL})*)?\}})? ({_VALUE})")
_COMMENT = re.compile(rf"# (?:HELP ({_NAME}) (?:[^\\\n]|\\[\\n])*|TYPE ({_NAME}) (counter|gauge))")
_LABEL_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples of *text* by (name, labels); fails the test on any line out of format.

    Every metric needs HELP then TYPE before its samples, and a metric's lines come together.
    """
    assert text.endswith("\n")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    helped: list[str] = []
    typed: list[str] = []
    for line in text[:-1].split("\n"):
        if comment := _COMMENT.fullmatch(line):
            help_name, type_name, _ = comment.groups()
            if help_name:
                assert help_name not in helped, line
                helped.append(help_name)
            else:
                assert helped[-1:] == [type_name] and type_name not in typed, line
                typed.append(type_name)
            continue
        sample = _SAMPLE.fullmatch(line)
        assert sample, f"not a sample line: {line!r}"
        name, labels, value = sample.groups()
        assert typed[-1:] == [name], f"sample without its TYPE just before: {line!r}"
        pairs = tuple((k, _unescape(v)) for k, v in _LABEL_PAIR.findall(labels or ""))
        assert (name, pairs) not in samples, f"sample given twice: {line!r}"
        samples[name, pairs] = float(value)
    return samples


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


# ── render ──────────────────────────────────────────────────────────────────


def test_a_counter_with_labels_and_a_gauge_without() -> None:
    text = render(
        [
            Metric(
                "tailhook_delivered_total",
                "counter",
                "Notifications delivered, per destination.",
                [Sample(3, {"destination": "alerts", "host": "web-1"}), Sample(0, {"destination": "ops"})],
            ),
            Metric("tailhook_spool_bytes", "gauge", "Bytes in the spool.", [Sample(4096)]),
        ]
    )

    assert text == (
        "# HELP tailhook_delivered_total Notifications delivered, per destination.\n"
        "# TYPE tailhook_delivered_total counter\n"
        'tailhook_delivered_total{destination="alerts",host="web-1"} 3\n'
        'tailhook_delivered_total{destination="ops"} 0\n'
        "# HELP tailhook_spool_bytes Bytes in the spool.\n"
        "# TYPE tailhook_spool_bytes gauge\n"
        "tailhook_spool_bytes 4096\n"
    )
    assert parse(text) == {
        ("tailhook_delivered_total", (("destination", "alerts"), ("host", "web-1"))): 3,
        ("tailhook_delivered_total", (("destination", "ops"),)): 0,
        ("tailhook_spool_bytes", ()): 4096,
    }


def test_label_values_escape_backslash_quote_and_newline() -> None:
    value = 'C:\\logs\\"app"\nline two'
    text = render([Metric("m", "gauge", "h", [Sample(1, {"path": value})])])

    assert text.splitlines()[2] == r'm{path="C:\\logs\\\"app\"\nline two"} 1'
    assert parse(text) == {("m", (("path", value),)): 1}


def test_help_escapes_backslash_and_newline_but_not_quotes() -> None:
    text = render([Metric("m", "counter", 'a \\ b\n"c"', [])])

    assert text.splitlines()[0] == r'# HELP m a \\ b\n"c"'
    parse(text)


def test_labels_keep_the_order_given() -> None:
    text = render([Metric("m", "gauge", "h", [Sample(1, {"z": "1", "a": "2", "m": "3"})])])

    assert text.splitlines()[2] == 'm{z="1",a="2",m="3"} 1'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3, "3"),
        (-7, "-7"),
        (True, "1"),
        (3.0, "3"),
        (0.25, "0.25"),
        (1 / 3, "0.3333333333333333"),
        (1e20, "1e+20"),
        (1_790_000_000.125, "1790000000.125"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_values_print_as_prometheus_reads_them(value: float, text: str) -> None:
    rendered = render([Metric("m", "gauge", "h", [Sample(value)])])

    assert rendered.splitlines()[2] == f"m {text}"
    (parsed,) = parse(rendered).values()
    assert parsed == value or (math.isnan(parsed) and math.isnan(value))


def test_a_metric_without_samples_still_says_what_it_is() -> None:
    assert render([Metric("tailhook_dead_destinations", "gauge", "Destinations declared dead.", ())]) == (
        "# HELP tailhook_dead_destinations Destinations declared dead.\n# TYPE tailhook_dead_destinations gauge\n"
    )
    assert render([]) == ""


@pytest.mark.parametrize("name", ["", "9lives", "tailhook-sent", "tailhook sent", "tailhook_é"])
def test_a_bad_metric_name_is_a_programming_error(name: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus metric name"):
        render([Metric(name, "counter", "h", [])])


@pytest.mark.parametrize("name", ["", "9", "dest-ination", "a:b", "dést"])
def test_a_bad_label_name_is_a_programming_error(name: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus label name"):
        render([Metric("m", "counter", "h", [Sample(1, {name: "x"})])])


def test_colons_are_allowed_in_metric_names_and_a_kind_must_be_known() -> None:
    assert render([Metric("tailhook:rate_5m", "gauge", "h", [])]).startswith("# HELP tailhook:rate_5m h\n")
    with pytest.raises(ValueError, match="neither"):
        Metric("m", "histogram", "h", [])  # type: ignore[arg-type]


def test_a_metric_given_twice_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="given twice"):
        render([Metric("m", "gauge", "h", [Sample(1)]), Metric("m", "gauge", "h", [Sample(2)])])


# ── the server ──────────────────────────────────────────────────────────────


@dataclass
class Daemon:
    """What the app would hand the server: its state, read at each request."""

    not_live: str | None = None
    not_ready: str | None = None
    metrics: Sequence[Metric] = ()
    broken: Exception | None = None

    async def collect(self) -> Sequence[Metric]:
        if self.broken is not None:
            raise self.broken
        return self.metrics

    def server(self, listen: str = "127.0.0.1:0") -> HttpServer:
        return HttpServer(listen, live=lambda: self.not_live, ready=lambda: self.not_ready, collect=self.collect)


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


async def test_metrics_answer_the_exposition_format(
    daemon: Daemon, server: HttpServer, session: aiohttp.ClientSession
) -> None:
    daemon.metrics = [
        Metric("tailhook_delivered_total", "counter", "Delivered.", [Sample(12, {"destination": 'a"b'})]),
        Metric("tailhook_up", "gauge", "1 while running.", [Sample(1)]),
    ]

    status, content_type, body = await get(session, server, "/metrics")

    assert (status, content_type) == (200, CONTENT_TYPE)
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    assert body == render(daemon.metrics)
    assert parse(body) == {
        ("tailhook_delivered_total", (("destination", 'a"b'),)): 12,
        ("tailhook_up", ()): 1,
    }


async def test_metrics_are_collected_at_each_request(
    daemon: Daemon, server: HttpServer, session: aiohttp.ClientSession
) -> None:
    for n in (1, 2):
        daemon.metrics = [Metric("tailhook_up", "gauge", "h", [Sample(n)])]
        assert (await get(session, server, "/metrics"))[2].endswith(f"tailhook_up {n}\n")


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
    daemon.metrics = [Metric("tailhook_up", "gauge", "h", [Sample(1)])]
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

"""Tests of the forward proxy for tests, over real sockets on 127.0.0.1.

aiohttp is the client, as in tailhook, and the Discord stand-in is behind the
proxy. The `trust_env` tests pin down what aiohttp itself does with the proxy
variables, since tailhook relies on it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from tests.discord_standin import TOKEN, WEBHOOK_ID, DiscordStandIn, standin_in_thread
from tests.http_proxy import REALM, ForwardProxy, ProxiedRequest, masked_path, proxy_in_thread

pytestmark = pytest.mark.timeout(30)

USER, PASSWORD = "tailhook", "pr0xy-pa55"
MASKED = f"/api/webhooks/{WEBHOOK_ID}/***"


@pytest.fixture(autouse=True)
def clean_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable leaks in from outside: each test sets those it is about."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[DiscordStandIn]:
    async with DiscordStandIn(bucket_limit=10_000) as server:
        yield server


@pytest_asyncio.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    async with ForwardProxy() as server:
        yield server


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (for a moment, at least)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def dead_port() -> int:
    return free_port()


def through(standin: DiscordStandIn, path: str = MASKED, status: int = 200, method: str = "POST") -> ProxiedRequest:
    """What the proxy records for a request to the stand-in."""
    return ProxiedRequest(method, f"127.0.0.1:{standin.port}", path, status)


@pytest_asyncio.fixture
async def echo_port() -> AsyncIterator[int]:
    """A plain TCP server that sends back what it reads and closes after the client's EOF."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def raw_connect(
    proxy: ForwardProxy, target: str, headers: str = ""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Send CONNECT on a new connection to the proxy; return it and the answer's head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{headers}\r\n".encode())
    return reader, writer, await reader.readuntil(b"\r\n\r\n")


async def raw_exchange(proxy: ForwardProxy, request: bytes) -> bytes:
    """Send raw bytes to the proxy; return everything it answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(request)
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answer


# ---------------------------------------------------------------------------
# Forwarding with aiohttp's proxy=


@pytest.mark.asyncio
async def test_a_post_with_proxy_reaches_the_standin_and_is_recorded_without_its_token(
    standin: DiscordStandIn, proxy: ForwardProxy, http: aiohttp.ClientSession
) -> None:
    payload = {"content": "disk full on web-1"}

    async with http.post(standin.url(), params={"wait": "true"}, json=payload, proxy=proxy.url) as response:
        status, body = response.status, await response.json()

    assert status == 200
    assert body["content"] == "disk full on web-1"
    [received] = standin.received
    assert received.payload == payload
    assert received.query == {"wait": "true"}
    assert received.headers["Host"] == f"127.0.0.1:{standin.port}"
    assert received.headers["Content-Type"] == "application/json"
    assert proxy.requests == [through(standin)]
    assert TOKEN not in repr(proxy.requests)
    assert proxy.url == f"http://127.0.0.1:{proxy.port}"


@pytest.mark.asyncio
async def test_one_client_connection_carries_request_after_request(
    standin: DiscordStandIn, proxy: ForwardProxy, http: aiohttp.ClientSession
) -> None:
    standin.fail_next(429, headers={"Retry-After": "7"})
    answers = []
    for method, params in [("POST", {}), ("POST", {"wait": "true"}), ("GET", {}), ("POST", {"wait": "true"})]:
        json_body = {"content": "hi"} if method == "POST" else None
        async with http.request(method, standin.url(), params=params, json=json_body, proxy=proxy.url) as response:
            answers.append((response.status, response.headers.get("Retry-After"), await response.read()))

    assert [(status, retry_after) for status, retry_after, _ in answers] == [
        (429, "7"),
        (200, None),
        (200, None),
        (200, None),
    ]
    assert json.loads(answers[0][2]) == {"message": "You are being rate limited.", "retry_after": 1.0, "global": False}
    assert [status for *_, status in proxy.requests] == [429, 200, 200, 200]
    assert [method for method, *_ in proxy.requests] == ["POST", "POST", "GET", "POST"]
    assert proxy.connections == 1


@pytest.mark.asyncio
async def test_a_204_answer_without_a_body_keeps_the_connection(
    standin: DiscordStandIn, proxy: ForwardProxy, http: aiohttp.ClientSession
) -> None:
    for text in ("a", "b", "c"):
        async with http.post(standin.url(), json={"content": text}, proxy=proxy.url) as response:
            assert response.status == 204
            assert await response.read() == b""

    assert [r.payload["content"] for r in standin.received] == ["a", "b", "c"]
    assert proxy.requests == [through(standin, status=204)] * 3
    assert proxy.connections == 1


@pytest.mark.asyncio
async def test_a_chunked_body_is_forwarded_as_chunks(
    standin: DiscordStandIn, proxy: ForwardProxy, http: aiohttp.ClientSession
) -> None:
    async def pieces() -> AsyncIterator[bytes]:
        for piece in (b'{"content": ', b'"sent in ', b'chunks"}'):
            yield piece

    headers = {"Content-Type": "application/json"}
    async with http.post(standin.url(), data=pieces(), headers=headers, proxy=proxy.url) as response:
        status = response.status

    assert status == 204
    [received] = standin.received
    assert received.payload == {"content": "sent in chunks"}
    assert received.headers["Transfer-Encoding"] == "chunked"
    assert proxy.requests == [through(standin, status=204)]


@pytest.mark.asyncio
async def test_an_answer_that_ends_with_its_connection_ends_the_clients(
    proxy: ForwardProxy, http: aiohttp.ClientSession
) -> None:
    async def no_length(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nthe whole body")
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(no_length, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        bodies = []
        for _ in range(2):
            async with http.get(f"http://127.0.0.1:{port}/page?secret=1", proxy=proxy.url) as response:
                bodies.append(await response.text())

    assert bodies == ["the whole body"] * 2
    assert proxy.requests == [ProxiedRequest("GET", f"127.0.0.1:{port}", "/page", 200)] * 2
    assert proxy.connections == 2


@pytest.mark.asyncio
async def test_an_unreachable_target_is_answered_502(
    proxy: ForwardProxy, http: aiohttp.ClientSession, dead_port: int
) -> None:
    url = f"http://127.0.0.1:{dead_port}/api/webhooks/{WEBHOOK_ID}/{TOKEN}"

    async with http.post(url, json={"content": "hi"}, proxy=proxy.url) as response:
        status = response.status

    assert status == 502
    assert proxy.requests == [ProxiedRequest("POST", f"127.0.0.1:{dead_port}", MASKED, 502)]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("request_bytes", "status_line"),
    [
        (b"GET /api/webhooks/1/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"POST https://127.0.0.1:1/ HTTP/1.1\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"not http at all\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"GET http://127.0.0.1:1/ HTTP/1.1\r\nX: " + b"x" * 70_000 + b"\r\n\r\n", b"HTTP/1.1 431 "),
    ],
    ids=["origin-form", "https-absolute-form", "garbage", "head-too-long"],
)
async def test_a_request_a_proxy_cannot_serve_is_refused_and_the_connection_closed(
    proxy: ForwardProxy, request_bytes: bytes, status_line: bytes
) -> None:
    answer = await raw_exchange(proxy, request_bytes)

    assert answer.startswith(status_line)
    assert b"Connection: close" in answer
    assert proxy.requests == []


# ---------------------------------------------------------------------------
# Proxy-Authorization


def proxy_url_with(proxy: ForwardProxy, user: str, password: str) -> str:
    return f"http://{user}:{password}@127.0.0.1:{proxy.port}"


@pytest.mark.asyncio
async def test_without_credentials_the_answer_is_407_and_with_them_the_request_goes_through(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    authorization = {"Proxy-Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}
    async with ForwardProxy(credentials=(USER, PASSWORD)) as proxy:
        attempts: list[dict[str, Any]] = [
            {"proxy": proxy.url},
            {"proxy": proxy_url_with(proxy, USER, "wrong")},
            {"proxy": proxy_url_with(proxy, USER, PASSWORD)},
            {"proxy": proxy.url, "headers": authorization},
            # aiohttp 3.14 sends proxy_headers with a CONNECT only, not with an http:// request.
            {"proxy": proxy.url, "proxy_headers": authorization},
        ]
        answers = []
        for attempt in attempts:
            async with http.post(standin.url(), json={"content": "hi"}, **attempt) as response:
                answers.append((response.status, response.headers.get("Proxy-Authenticate")))

    challenge = f'Basic realm="{REALM}"'
    assert answers == [(407, challenge), (407, challenge), (204, None), (204, None), (407, challenge)]
    assert proxy.requests == [through(standin, status=status) for status, _ in answers]
    assert len(standin.received) == 2
    assert all("Proxy-Authorization" not in r.headers for r in standin.received)


@pytest.mark.asyncio
async def test_a_connection_answered_407_can_retry_with_credentials(standin: DiscordStandIn) -> None:
    path = f"/api/webhooks/{WEBHOOK_ID}/{TOKEN}"
    body = b'{"content": "retried"}'
    request = (
        f"POST http://127.0.0.1:{standin.port}{path} HTTP/1.1\r\nHost: 127.0.0.1:{standin.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    )
    credentials = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    async with ForwardProxy(credentials=(USER, PASSWORD)) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(request.encode() + b"\r\n" + body)
        refused = await reader.readuntil(b"\r\n\r\n")
        writer.write(f"{request}Proxy-Authorization: Basic {credentials}\r\nConnection: close\r\n\r\n".encode() + body)
        accepted = await reader.read()
        writer.close()
        await writer.wait_closed()

    assert refused.startswith(b"HTTP/1.1 407 Proxy Authentication Required\r\n")
    assert accepted.startswith(b"HTTP/1.1 204 ")
    assert [r.payload for r in standin.received] == [{"content": "retried"}]
    assert proxy.connections == 1


# ---------------------------------------------------------------------------
# CONNECT


@pytest.mark.asyncio
async def test_connect_answers_200_and_pipes_bytes_both_ways(proxy: ForwardProxy, echo_port: int) -> None:
    target = f"127.0.0.1:{echo_port}"

    reader, writer, head = await raw_connect(proxy, target)
    writer.write(b"ping\n")
    first = await reader.readexactly(5)
    writer.write(b"pong\n" * 1000)
    writer.write_eof()  # the echo server closes after its EOF: so does the tunnel
    rest = await reader.read()
    writer.close()
    await writer.wait_closed()

    assert head.startswith(b"HTTP/1.1 200 ")
    assert first == b"ping\n"
    assert rest == b"pong\n" * 1000
    assert proxy.requests == [ProxiedRequest("CONNECT", target, "", 200)]


@pytest.mark.asyncio
async def test_connect_needs_the_credentials_too(echo_port: int) -> None:
    target = f"127.0.0.1:{echo_port}"
    credentials = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    async with ForwardProxy(credentials=(USER, PASSWORD)) as proxy:
        _, refused_writer, refused = await raw_connect(proxy, target)
        refused_writer.close()
        reader, writer, accepted = await raw_connect(proxy, target, f"Proxy-Authorization: Basic {credentials}\r\n")
        writer.write(b"through")
        echoed = await reader.readexactly(7)
        writer.close()
        await writer.wait_closed()
        await refused_writer.wait_closed()

    assert refused.startswith(b"HTTP/1.1 407 ")
    assert f'Proxy-Authenticate: Basic realm="{REALM}"'.encode() in refused
    assert accepted.startswith(b"HTTP/1.1 200 ")
    assert echoed == b"through"
    assert [(method, status) for method, _, _, status in proxy.requests] == [("CONNECT", 407), ("CONNECT", 200)]


@pytest.mark.asyncio
async def test_connect_to_an_unreachable_target_is_502(proxy: ForwardProxy, dead_port: int) -> None:
    reader, writer, head = await raw_connect(proxy, f"127.0.0.1:{dead_port}")
    rest = await reader.read()
    writer.close()
    await writer.wait_closed()

    assert head.startswith(b"HTTP/1.1 502 ")
    assert rest == b""
    assert proxy.requests == [ProxiedRequest("CONNECT", f"127.0.0.1:{dead_port}", "", 502)]


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made by openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=20,
    )  # fmt: skip
    return cert, key


@pytest_asyncio.fixture
async def https_server(certificate: tuple[Path, Path]) -> AsyncIterator[tuple[int, ssl.SSLContext]]:
    """An https server on 127.0.0.1 that answers a POST with its path and query;
    yields its port and a client context that trusts it."""
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "query": dict(request.query)})

    app = web.Application()
    app.router.add_post("/api/webhooks/{webhook_id}/{token}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context).start()
    try:
        yield runner.addresses[0][1], ssl.create_default_context(cafile=str(cert))
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["no-credentials", "credentials-in-url", "proxy-headers"])
async def test_aiohttp_reaches_an_https_server_through_a_connect_tunnel(
    https_server: tuple[int, ssl.SSLContext], http: aiohttp.ClientSession, how: str
) -> None:
    port, client_context = https_server
    url = f"https://127.0.0.1:{port}/api/webhooks/{WEBHOOK_ID}/{TOKEN}"
    credentials = None if how == "no-credentials" else (USER, PASSWORD)

    async with ForwardProxy(credentials=credentials) as proxy:
        proxy_url = proxy_url_with(proxy, USER, PASSWORD) if how == "credentials-in-url" else proxy.url
        proxy_headers = {"Proxy-Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}
        options: dict[str, Any] = {"proxy_headers": proxy_headers} if how == "proxy-headers" else {}
        async with http.post(
            url, params={"wait": "true"}, json={}, proxy=proxy_url, ssl=client_context, **options
        ) as response:
            status, body = response.status, await response.json()

    assert status == 200
    assert body == {"path": f"/api/webhooks/{WEBHOOK_ID}/{TOKEN}", "query": {"wait": "true"}}
    # All the proxy could see of an https request: where it went.
    assert proxy.requests == [ProxiedRequest("CONNECT", f"127.0.0.1:{port}", "", 200)]


@pytest.mark.asyncio
async def test_a_connect_refused_407_is_an_error_for_aiohttp(
    https_server: tuple[int, ssl.SSLContext], http: aiohttp.ClientSession
) -> None:
    port, client_context = https_server
    url = f"https://127.0.0.1:{port}/api/webhooks/{WEBHOOK_ID}/{TOKEN}"

    async with ForwardProxy(credentials=(USER, PASSWORD)) as proxy:
        # Credentials in headers= travel inside the tunnel, where the proxy cannot see them.
        headers = {"Proxy-Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}
        with pytest.raises(aiohttp.ClientHttpProxyError) as refused:
            await http.post(url, json={}, proxy=proxy.url, ssl=client_context, headers=headers)

    assert refused.value.status == 407
    assert proxy.requests == [ProxiedRequest("CONNECT", f"127.0.0.1:{port}", "", 407)]
    assert TOKEN not in str(refused.value)


# ---------------------------------------------------------------------------
# What aiohttp's trust_env does with the proxy variables, for an http:// URL on 127.0.0.1


TRUST_ENV_CASES = [
    pytest.param({"HTTP_PROXY": "{proxy}"}, True, id="HTTP_PROXY"),
    pytest.param({"http_proxy": "{proxy}"}, True, id="http_proxy"),
    pytest.param({"HTTP_PROXY": "{proxy}", "NO_PROXY": "127.0.0.1"}, False, id="NO_PROXY-host"),
    pytest.param({"HTTP_PROXY": "{proxy}", "no_proxy": "127.0.0.1"}, False, id="no_proxy-host"),
    pytest.param({"HTTP_PROXY": "{proxy}", "NO_PROXY": "example.com, 127.0.0.1"}, False, id="NO_PROXY-list"),
    pytest.param({"HTTP_PROXY": "{proxy}", "NO_PROXY": "*"}, False, id="NO_PROXY-star"),
    pytest.param({"HTTP_PROXY": "{proxy}", "NO_PROXY": "0.0.1"}, False, id="NO_PROXY-suffix-matches"),
    pytest.param({"HTTP_PROXY": "{proxy}", "NO_PROXY": "127.0.0.1:{port}"}, True, id="NO_PROXY-with-port-ignored"),
    pytest.param({"HTTP_PROXY": "{proxy}", "NO_PROXY": "localhost"}, True, id="NO_PROXY-localhost-ignored"),
    pytest.param({"HTTP_PROXY": "{proxy}", "NO_PROXY": "127.0.0.0/8"}, True, id="NO_PROXY-cidr-ignored"),
    pytest.param({"HTTPS_PROXY": "{proxy}"}, False, id="HTTPS_PROXY-not-for-http"),
    pytest.param({"ALL_PROXY": "{proxy}"}, False, id="ALL_PROXY-ignored"),
    pytest.param({"HTTP_PROXY": "{dead}", "http_proxy": "{proxy}"}, True, id="lowercase-wins"),
    pytest.param(
        {"HTTP_PROXY": "{proxy}", "NO_PROXY": "127.0.0.1", "no_proxy": ""}, True, id="empty-lowercase-cancels"
    ),
    pytest.param({"HTTP_PROXY": "{proxy}", "REQUEST_METHOD": "GET"}, False, id="HTTP_PROXY-ignored-under-CGI"),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("environment", "proxied"), TRUST_ENV_CASES)
async def test_trust_env_reads_the_proxy_variables(
    standin: DiscordStandIn,
    proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
    environment: dict[str, str],
    proxied: bool,
) -> None:
    for name, value in environment.items():
        filled = value.format(proxy=proxy.url, dead=f"http://127.0.0.1:{free_port()}", port=standin.port)
        monkeypatch.setenv(name, filled)

    async with (
        aiohttp.ClientSession(trust_env=True) as session,
        session.post(standin.url(), json={"content": "hi"}) as response,
    ):
        status = response.status

    assert status == 204
    assert len(standin.received) == 1
    assert proxy.requests == ([through(standin, status=204)] if proxied else [])


@pytest.mark.asyncio
async def test_without_trust_env_the_variables_are_ignored(
    standin: DiscordStandIn, proxy: ForwardProxy, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)

    async with http.post(standin.url(), json={"content": "hi"}) as response:
        assert response.status == 204

    assert proxy.requests == []


@pytest.mark.asyncio
async def test_an_explicit_proxy_is_used_even_for_a_host_in_no_proxy(
    standin: DiscordStandIn, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")

    async with (
        aiohttp.ClientSession(trust_env=True) as session,
        session.post(standin.url(), json={"content": "hi"}, proxy=proxy.url) as response,
    ):
        assert response.status == 204

    assert proxy.requests == [through(standin, status=204)]


@pytest.mark.asyncio
async def test_credentials_in_http_proxy_are_sent_as_proxy_authorization(
    standin: DiscordStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ForwardProxy(credentials=(USER, PASSWORD)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://{USER}:{PASSWORD}@127.0.0.1:{proxy.port}")
        async with (
            aiohttp.ClientSession(trust_env=True) as session,
            session.post(standin.url(), json={"content": "hi"}) as response,
        ):
            assert response.status == 204

    assert proxy.requests == [through(standin, status=204)]


# ---------------------------------------------------------------------------
# In a thread, for a daemon run as a subprocess


def test_threaded_proxy_serves_another_process() -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys, aiohttp

        async def main() -> None:
            async with aiohttp.ClientSession(trust_env=True) as session:
                for text in ("one", "two"):
                    async with session.post(sys.argv[1], json={"content": text}) as response:
                        assert response.status == 204, response.status

        asyncio.run(main())
        """
    )
    with standin_in_thread() as standin, proxy_in_thread() as proxy:
        environment = {**os.environ, "HTTP_PROXY": proxy.url}
        done = subprocess.run(
            [sys.executable, "-c", script, standin.url()],
            env=environment,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        received = standin.wait_for(2, timeout=5)
        requests = proxy.wait_for(2, timeout=5)
        connections = proxy.connections

    assert done.returncode == 0, done.stderr
    assert [r.payload["content"] for r in received] == ["one", "two"]
    assert requests == [ProxiedRequest("POST", f"127.0.0.1:{standin.port}", MASKED, 204)] * 2
    assert connections == 1
    assert TOKEN not in done.stdout + done.stderr


def test_threaded_proxy_serves_urllib_and_reports_a_shortfall() -> None:
    with standin_in_thread() as standin, proxy_in_thread(credentials=(USER, PASSWORD)) as proxy:
        proxied = f"http://{USER}:{PASSWORD}@127.0.0.1:{proxy.port}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxied}))
        request = urllib.request.Request(  # noqa: S310 (the stand-in's http URL)
            standin.url(), data=b'{"content": "hi"}', headers={"Content-Type": "application/json"}
        )
        with opener.open(request, timeout=10) as response:
            status = response.status
        with pytest.raises(AssertionError, match=r"expected 2 proxied request\(s\)"):
            proxy.wait_for(2, timeout=0.2)
        requests = proxy.requests

    assert status == 204
    assert requests == [ProxiedRequest("POST", f"127.0.0.1:{standin.port}", MASKED, 204)]


# ---------------------------------------------------------------------------
# Secrecy


@pytest.mark.parametrize(
    ("path", "masked"),
    [
        (f"/api/webhooks/{WEBHOOK_ID}/{TOKEN}", MASKED),
        (f"/api/v10/webhooks/{WEBHOOK_ID}/{TOKEN}?wait=true&thread_id=1", f"/api/v10/webhooks/{WEBHOOK_ID}/***"),
        (f"/api/webhooks/{WEBHOOK_ID}/{TOKEN}/messages/1", f"/api/webhooks/{WEBHOOK_ID}/***/messages/1"),
        (f"/other?token={TOKEN}", "/other"),
        ("/", "/"),
    ],
)
def test_masked_path_drops_the_query_and_the_token(path: str, masked: str) -> None:
    assert masked_path(path) == masked


@pytest.mark.asyncio
async def test_the_token_appears_in_no_output(
    standin: DiscordStandIn,
    http: aiohttp.ClientSession,
    dead_port: int,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    dead = f"http://127.0.0.1:{dead_port}/api/webhooks/{WEBHOOK_ID}/{TOKEN}"

    async with ForwardProxy(credentials=(USER, PASSWORD)) as proxy:
        with_credentials = proxy_url_with(proxy, USER, PASSWORD)
        for url, proxy_url in [(standin.url(), proxy.url), (standin.url(), with_credentials), (dead, with_credentials)]:
            async with http.post(url, json={"content": "hi"}, proxy=proxy_url):
                pass
        await raw_exchange(proxy, f"POST {standin.url()} HTTP/1.1\r\nBad header\r\n\r\n".encode())
        await raw_exchange(proxy, f"GET /api/webhooks/{WEBHOOK_ID}/{TOKEN} HTTP/1.1\r\n\r\n".encode())

    captured = capsys.readouterr()
    assert [status for *_, status in proxy.requests] == [407, 204, 502]
    assert TOKEN not in repr(proxy.requests) + caplog.text + captured.out + captured.err

"""A forward HTTP proxy on 127.0.0.1 for tests: real sockets, every request counted.

tailhook reaches Discord through a proxy when `HTTPS_PROXY`/`HTTP_PROXY` say
so (aiohttp's `trust_env=True`) or a destination names one (aiohttp's
`proxy=`). Tests put `ForwardProxy` between tailhook and the Discord stand-in
and look at what went through it; end-to-end tests that run the daemon as a
subprocess run it in a thread of its own (`proxy_in_thread`). What it does:

- An absolute-form request (`POST http://host:port/path?query HTTP/1.1`, what
  a client sends for an http:// URL through a proxy) is sent on to host:port
  in origin-form (`POST /path?query HTTP/1.1`), on a new connection that is
  closed after the answer. The client's headers go with it, except the
  hop-by-hop ones (`Connection` and the headers it names, `Keep-Alive`,
  `Proxy-Authorization`, `Proxy-Connection`, `TE`, `Trailer`, `Upgrade`); the
  body goes as it came, by `Content-Length` or chunked. The answer comes back
  the same way, interim 1xx answers included. The client's connection stays
  open for its next request unless the client asked to close it (or spoke
  HTTP/1.0), or the answer's body ended with the target's connection.
- `CONNECT host:port` (what a client sends for an https:// URL) is answered
  200, then bytes are piped both ways; a half-close is passed on, and the
  tunnel ends when both directions have ended.
- With `credentials=(user, password)`, a request without the matching
  `Proxy-Authorization: Basic ...` is answered 407 with `Proxy-Authenticate`,
  and the connection stays usable for a retry.
- A target that cannot be reached is answered 502, a request that cannot be
  parsed 400, a head over `HEAD_LIMIT` bytes 431; each closes the connection.

`requests` holds a `ProxiedRequest` (method, target `host:port`, path, status)
for every request that parsed, recorded before its answer is sent to the client. The path
has no query string, and a token after `/webhooks/<id>/` is replaced by
`***`: the proxy never stores, logs or prints a webhook token.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

from tests.in_thread import AsyncServer, LoopClient, serve_in_thread

__all__ = [
    "HEAD_LIMIT",
    "ForwardProxy",
    "ProxiedRequest",
    "ThreadedProxy",
    "masked_path",
    "proxy_in_thread",
]

HEAD_LIMIT = 65_536
"""Bytes a request or answer head (start line and headers) may take."""

REALM = "tailhook test proxy"

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    }
)
_WEBHOOK_TOKEN = re.compile(r"(/webhooks/[^/]+/)[^/]+")
_CHUNKED = -1
"""A body framing: chunked transfer coding."""
_UNTIL_CLOSE = -2
"""A body framing (answers only): the body ends when the connection does."""
_COPY_SIZE = 65_536


class ProxiedRequest(NamedTuple):
    """One request the proxy answered."""

    method: str
    target: str
    """`host:port` it was for."""
    path: str
    """Without the query string, a webhook token replaced by `***`; "" for CONNECT."""
    status: int
    """What the client was answered: the target's status when forwarded."""


def masked_path(path: str) -> str:
    """`path` without its query string and with any webhook token as `***`."""
    return _WEBHOOK_TOKEN.sub(r"\1***", path.partition("?")[0])


class _BadRequest(Exception):
    """A request the proxy cannot parse; answered 400. Its message never
    quotes the request, so it cannot carry a token."""


@dataclass
class _Head:
    """A request or answer head: its start line and its headers, in order."""

    start: str
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name), None)

    def tokens(self, name: str) -> set[str]:
        """The comma-separated values of every `name` header, lowercased."""
        return {
            token.strip().lower()
            for key, value in self.headers
            if key.lower() == name
            for token in value.split(",")
            if token.strip()
        }

    def end_to_end(self) -> list[tuple[str, str]]:
        """The headers a proxy passes on: not hop-by-hop, not named by `Connection`."""
        dropped = _HOP_BY_HOP | self.tokens("connection")
        return [(key, value) for key, value in self.headers if key.lower() not in dropped]


async def _read_head(reader: asyncio.StreamReader) -> _Head | None:
    """The next head on `reader`, or None at a clean end of the stream.

    Raises asyncio.IncompleteReadError if the stream ends inside a head,
    asyncio.LimitOverrunError if the head is over HEAD_LIMIT, _BadRequest if
    it does not parse.
    """
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            return None
        raise
    start, *lines = raw[:-4].decode("latin-1").split("\r\n")
    headers = []
    for line in lines:
        key, colon, value = line.partition(":")
        if not colon or not key or key != key.strip():
            raise _BadRequest("a header line without a name")
        headers.append((key, value.strip()))
    return _Head(start, headers)


def _framing(head: _Head, *, answer: bool) -> int:
    """How the body after `head` ends: its length, _CHUNKED or _UNTIL_CLOSE."""
    if "chunked" in head.tokens("transfer-encoding"):
        return _CHUNKED
    length = head.get("content-length")
    if length is None:
        return _UNTIL_CLOSE if answer else 0
    if not length.isdigit():
        raise _BadRequest("a Content-Length that is not a number")
    return int(length)


def _has_no_body(method: str, status: int) -> bool:
    """Answers that never have a body, whatever their headers say (RFC 9112 §6.3)."""
    return method == "HEAD" or status < 200 or status in (204, 304)


async def _copy_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter | None, framing: int) -> None:
    """Copy one body framed by `framing` from `reader` to `writer`, byte for
    byte (chunks stay chunks); with no writer, read it and drop it."""

    def write(data: bytes) -> None:
        if writer is not None:
            writer.write(data)

    async def drain() -> None:
        if writer is not None:
            await writer.drain()

    if framing == _CHUNKED:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            write(size_line)
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadRequest("a chunk size that is not a number") from None
            if size == 0:
                break
            write(await reader.readexactly(size + 2))
            await drain()
        while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
            write(trailer)
        write(b"\r\n")
    elif framing == _UNTIL_CLOSE:
        while data := await reader.read(_COPY_SIZE):
            write(data)
            await drain()
    else:
        left = framing
        while left:
            data = await reader.readexactly(min(left, _COPY_SIZE))
            write(data)
            left -= len(data)
            await drain()
    await drain()


def _head_bytes(start: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [start, *(f"{key}: {value}" for key, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _answer_bytes(status: int, reason: str, headers: list[tuple[str, str]] | None = None) -> bytes:
    """A bodiless answer made by the proxy itself."""
    return _head_bytes(f"HTTP/1.1 {status} {reason}", [*(headers or []), ("Content-Length", "0")])


async def _read_answer_head(reader: asyncio.StreamReader) -> tuple[_Head, int] | None:
    """The target's next answer head and its status, or None if there is none
    to be had (closed, cut short, too long or unreadable)."""
    try:
        head = await _read_head(reader)
        if head is None:
            return None
        version, status, _ = (head.start + " ").split(" ", 2)
        if not version.startswith("HTTP/1.") or not status.isdigit():
            return None
        return head, int(status)
    except (_BadRequest, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None


@dataclass(frozen=True)
class _Request:
    """A request as the proxy sees it."""

    head: _Head
    method: str
    authority: str
    """`host:port` of its target."""
    address: tuple[str, int]
    """Its target's host and port, to connect to."""
    origin: str
    """Its target in origin-form (path and query); "" for CONNECT."""
    keeps_alive: bool
    """Whether the client means to send another request on the connection."""

    @classmethod
    def parse(cls, head: _Head) -> _Request:
        """Read the request line of `head`; _BadRequest if it is not one a proxy serves."""
        method, _, rest = head.start.partition(" ")
        target, _, version = rest.partition(" ")
        if not method or not target or version not in ("HTTP/1.1", "HTTP/1.0"):
            raise _BadRequest("a request line that is not METHOD target HTTP/1.x")
        keeps_alive = version == "HTTP/1.1" and "close" not in head.tokens("connection")
        if method == "CONNECT":
            host, port = _split_authority(target)
            return cls(head, method, target, (host, port), "", keeps_alive)
        try:
            url = urlsplit(target)
            port = url.port or 80
        except ValueError:
            raise _BadRequest("a target that is not a URL") from None
        if url.scheme != "http" or not url.hostname:
            raise _BadRequest("a target that is not an absolute http:// URL")
        authority = f"[{url.hostname}]:{port}" if ":" in url.hostname else f"{url.hostname}:{port}"
        origin = (url.path or "/") + (f"?{url.query}" if url.query else "")
        return cls(head, method, authority, (url.hostname, port), origin, keeps_alive)


def _split_authority(authority: str) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`) → (host, port); _BadRequest if it is not one."""
    host, colon, port = authority.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65_536:
        raise _BadRequest("a CONNECT target that is not host:port")
    return host.removeprefix("[").removesuffix("]"), int(port)


# ---------------------------------------------------------------------------
# The server.


class ForwardProxy(AsyncServer):
    """A forward HTTP proxy on 127.0.0.1, for one test (see the module doc)."""

    def __init__(self, *, credentials: tuple[str, str] | None = None) -> None:
        """With `credentials` (user, password), every request must carry them
        as `Proxy-Authorization: Basic ...`."""
        self.requests: list[ProxiedRequest] = []
        self.connections = 0
        """Client connections accepted so far: fewer than requests when kept alive."""
        self._credentials = None if credentials is None else ":".join(credentials).encode()
        self._listeners: list[Callable[[], None]] = []
        self._changed = asyncio.Condition()
        self._serving: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._port: int | None = None

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Listen on an ephemeral port of 127.0.0.1."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=HEAD_LIMIT)
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening, then end every connection still open (tunnels too)."""
        if self._server is None:
            return
        self._server.close()
        for task in self._serving:
            task.cancel()
        await asyncio.gather(*self._serving, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the proxy is not started")
        return self._port

    @property
    def url(self) -> str:
        """What a client is given as its proxy, e.g. `http://127.0.0.1:PORT`."""
        return f"http://127.0.0.1:{self.port}"

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[ProxiedRequest]:
        """Wait until `count` requests were answered; AssertionError after
        `timeout` seconds, saying which were."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(self.requests) >= count)
        except TimeoutError:
            raise AssertionError(f"expected {count} proxied request(s) within {timeout}s: {self.requests}") from None
        return list(self.requests)

    # -- connections --------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client connection: its requests, one after another."""
        task = asyncio.current_task()
        assert task is not None
        self._serving.add(task)
        self.connections += 1
        try:
            while await self._serve_one(reader, writer):
                pass
        except _BadRequest:
            await self._refuse(writer, 400, "Bad Request")
        except asyncio.LimitOverrunError:
            await self._refuse(writer, 431, "Request Header Fields Too Large")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away, or sent half a request
        finally:
            self._serving.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer the next request; return whether the connection stays open."""
        head = await _read_head(reader)
        if head is None:
            return False
        request = _Request.parse(head)
        if not self._authorized(head):
            await _copy_body(reader, None, _framing(head, answer=False))
            await self._record(request, 407)
            challenge = [("Proxy-Authenticate", f'Basic realm="{REALM}"')]
            writer.write(_answer_bytes(407, "Proxy Authentication Required", challenge))
            await writer.drain()
            return request.keeps_alive
        if request.method == "CONNECT":
            await self._tunnel(request, reader, writer)
            return False
        return await self._forward(request, reader, writer) and request.keeps_alive

    def _authorized(self, head: _Head) -> bool:
        if self._credentials is None:
            return True
        scheme, _, encoded = (head.get("proxy-authorization") or "").partition(" ")
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            return False
        return scheme.lower() == "basic" and hmac.compare_digest(given, self._credentials)

    async def _forward(self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Send one request on to its target and its answer back; return
        whether the client's connection can carry another request."""
        try:
            target_reader, target_writer = await asyncio.open_connection(*request.address, limit=HEAD_LIMIT)
        except OSError:
            await self._record(request, 502)
            await self._refuse(writer, 502, "Bad Gateway")
            return False
        try:
            headers = request.head.end_to_end()
            if request.head.get("host") is None:
                headers.insert(0, ("Host", request.authority))
            start = f"{request.method} {request.origin} HTTP/1.1"
            target_writer.write(_head_bytes(start, [*headers, ("Connection", "close")]))
            await _copy_body(reader, target_writer, _framing(request.head, answer=False))
            return await self._relay_answer(request, target_reader, writer)
        finally:
            target_writer.close()
            with contextlib.suppress(ConnectionError):
                await target_writer.wait_closed()

    async def _relay_answer(
        self, request: _Request, target: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Relay the target's answer (after any 1xx ones); return whether the
        client's connection can carry another request."""
        while (answer := await _read_answer_head(target)) is not None and answer[1] < 200:
            writer.write(_head_bytes(answer[0].start, answer[0].headers))
        if answer is None:
            await self._record(request, 502)
            await self._refuse(writer, 502, "Bad Gateway")
            return False
        head, status = answer
        try:
            framing = 0 if _has_no_body(request.method, status) else _framing(head, answer=True)
        except _BadRequest:
            framing = _UNTIL_CLOSE
        await self._record(request, status)
        headers = head.end_to_end()
        if framing == _UNTIL_CLOSE:
            headers.append(("Connection", "close"))
        writer.write(_head_bytes(head.start, headers))
        try:
            await _copy_body(target, writer, framing)
        except (_BadRequest, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return False  # the target broke off its answer: so does the proxy
        return framing != _UNTIL_CLOSE

    async def _tunnel(self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer CONNECT and pipe bytes both ways until both directions end."""
        try:
            target_reader, target_writer = await asyncio.open_connection(*request.address)
        except OSError:
            await self._record(request, 502)
            await self._refuse(writer, 502, "Bad Gateway")
            return
        await self._record(request, 200)
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        try:
            await writer.drain()
            await asyncio.gather(_pipe(reader, target_writer), _pipe(target_reader, writer))
        finally:
            target_writer.close()
            with contextlib.suppress(ConnectionError):
                await target_writer.wait_closed()

    async def _refuse(self, writer: asyncio.StreamWriter, status: int, reason: str) -> None:
        """Answer with `status` and no body, then let the connection close."""
        with contextlib.suppress(ConnectionError):
            writer.write(_answer_bytes(status, reason, [("Connection", "close")]))
            await writer.drain()

    async def _record(self, request: _Request, status: int) -> None:
        self.requests.append(ProxiedRequest(request.method, request.authority, masked_path(request.origin), status))
        async with self._changed:
            self._changed.notify_all()
        for listener in self._listeners:
            listener()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy bytes until `source` ends, then half-close `sink`. If either side
    breaks, close `sink`, which ends the other direction too."""
    try:
        while data := await source.read(_COPY_SIZE):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except ConnectionError:
        sink.close()


# ---------------------------------------------------------------------------
# In a thread, for synchronous tests.

_T = TypeVar("_T")


class ThreadedProxy(LoopClient):
    """A `ForwardProxy` running on its own event loop in another thread.

    `requests` and `connections` are snapshots, copied in the proxy's thread.
    """

    def __init__(self, proxy: ForwardProxy, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._proxy = proxy
        self._changed = threading.Condition()
        self._requests: list[ProxiedRequest] = []
        proxy._listeners.append(self._on_change)

    @property
    def port(self) -> int:
        return self._proxy.port

    @property
    def url(self) -> str:
        return self._proxy.url

    @property
    def requests(self) -> list[ProxiedRequest]:
        with self._changed:
            return list(self._requests)

    @property
    def connections(self) -> int:
        return self._run(self._connections())

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ProxiedRequest]:
        """Block until `count` requests were answered; AssertionError after
        `timeout` seconds, saying which were."""
        with self._changed:
            if self._changed.wait_for(lambda: len(self._requests) >= count, timeout):
                return list(self._requests)
            raise AssertionError(f"expected {count} proxied request(s) within {timeout}s: {self._requests}")

    async def _connections(self) -> int:
        return self._proxy.connections

    def _on_change(self) -> None:
        """Called in the proxy's thread after each request."""
        with self._changed:
            self._requests = list(self._proxy.requests)
            self._changed.notify_all()


def proxy_in_thread(**kwargs: Any) -> contextlib.AbstractContextManager[ThreadedProxy]:
    """Run a `ForwardProxy(**kwargs)` in a thread with its own event loop."""
    proxy = ForwardProxy(**kwargs)
    return serve_in_thread(proxy, lambda loop: ThreadedProxy(proxy, loop), "http-proxy")

"""The status endpoints: /healthz, /readyz and /metrics on ``http.listen``.

- ``GET /healthz`` and ``GET /readyz`` ask ``live()`` and ``ready()``:
  ``None`` answers 200 ``ok``; a reason answers 503 with that reason. A ready
  daemon that works less well than it should (``degraded()``: fleet mode
  without its Redis) answers 200 ``ok, degraded: <why>``.
- ``GET /metrics`` answers ``await exposition(accept)``: the Prometheus text
  format 0.0.4, or OpenMetrics when the request's ``Accept`` asks for it
  (prometheus_client renders both). When it raises, the answer is a 500 that
  names the exception, a warning is logged, and the server goes on serving.
- HEAD works wherever GET does; other paths are 404, other methods 405.
  Requests are never logged (no access log).

This module knows nothing of the daemon: the app hands it those three callables.
The metrics themselves are ``tailhook.metrics``'.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from tailhook._errors import describe
from tailhook.metrics import Exposition

__all__ = ["HttpServer"]

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 2.0
"""How long ``stop`` lets a request in progress finish."""


def _split_listen(listen: str) -> tuple[str | None, int]:
    """``host:port`` → (host, port); ``[::1]`` loses its brackets, an empty host means every interface."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"{listen!r} is not host:port, such as 127.0.0.1:9420")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host or None, int(port)


class HttpServer:
    def __init__(
        self,
        listen: str,
        *,
        live: Callable[[], str | None],
        ready: Callable[[], str | None],
        exposition: Exposition,
        degraded: Callable[[], str | None] = lambda: None,
    ) -> None:
        """*listen* is ``host:port`` (port 0: any free port, see ``port``); *live* and *ready*
        return ``None`` when all is well, else the reason why not; *degraded* says what works less
        well than it should while the daemon is ready all the same (/readyz stays 200, saying so)."""
        self.listen = listen
        self._host, self._wanted_port = _split_listen(listen)
        self._live = live
        self._ready = ready
        self._exposition = exposition
        self._degraded = degraded
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    async def start(self) -> None:
        """Bind and serve; ``OSError`` naming the address when it cannot be bound."""
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._wanted_port).start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(exc.errno, f"cannot listen on {self.listen}: {exc.strerror or exc}") from exc
        self._runner = runner
        self._port = runner.addresses[0][1]
        log.info("serving /healthz, /readyz and /metrics on %s (port %d)", self.listen, self._port)

    async def stop(self) -> None:
        """Stop accepting, let requests in progress finish (at most ``SHUTDOWN_TIMEOUT_S``), free the port."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def port(self) -> int:
        """The port bound by ``start``: the one asked for, or the one chosen for port 0."""
        if self._port is None:
            raise RuntimeError("the HTTP server is not started")
        return self._port

    async def _healthz(self, request: web.Request) -> web.Response:
        return _status(self._live())

    async def _readyz(self, request: web.Request) -> web.Response:
        reason = self._ready()
        if reason is None and (note := self._degraded()) is not None:
            return web.Response(text=f"ok, degraded: {note}\n")
        return _status(reason)

    async def _metrics(self, request: web.Request) -> web.Response:
        try:
            body, content_type = await self._exposition(request.headers.get("Accept", ""))
        except Exception as exc:
            log.warning("/metrics: collecting the metrics failed: %s", describe(exc))
            return web.Response(status=500, text=f"collecting the metrics failed: {describe(exc)}\n")
        return web.Response(body=body, headers={"Content-Type": content_type})


def _status(reason: str | None) -> web.Response:
    if reason is None:
        return web.Response(text="ok\n")
    return web.Response(status=503, text=reason + "\n")

"""A test server on an event loop of its own, in a thread, driven from the test's thread.

End-to-end tests run tailhook as a subprocess and block while they wait for it;
the servers it talks to (the Discord stand-in, the HTTP proxy) keep answering
on their own loop meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["CONTROL_TIMEOUT", "AsyncServer", "LoopClient", "serve_in_thread"]

CONTROL_TIMEOUT = 10.0
"""Seconds a call into the server's loop, or its start and stop, may take."""

_T = TypeVar("_T")
_C = TypeVar("_C", bound="LoopClient")


_S = TypeVar("_S", bound="AsyncServer")


class AsyncServer:
    """``async with`` for a server with ``start`` and ``stop``, used on the test's own loop."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self: _S) -> _S:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class LoopClient:
    """The test's side of a server running on *loop* in another thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def _run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run *coroutine* on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=CONTROL_TIMEOUT)


@contextlib.contextmanager
def serve_in_thread(server: AsyncServer, client: Callable[[asyncio.AbstractEventLoop], _C], name: str) -> Iterator[_C]:
    """Start *server* on a new loop in a thread named *name*; yield ``client(loop)``; stop it all after."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=name, daemon=True)
    thread.start()
    try:
        threaded = client(loop)
        threaded._run(server.start())
        try:
            yield threaded
        finally:
            threaded._run(server.stop())
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=CONTROL_TIMEOUT)
        loop.close()

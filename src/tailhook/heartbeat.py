"""The heartbeat: a dead-man's switch for tailhook itself.

A watcher that dies silently is the worst failure of an alerting tool, so with
``heartbeat: {url}`` tailhook pings that URL every ``every`` seconds while it
is healthy, in the push style of healthchecks.io and Uptime Kuma: the service
alerts when the pings stop. While tailhook is not healthy (its spool cannot
write, a destination has had an alert waiting longer than ``stuck_after``, or
is dead) it pings ``fail_url`` instead, with what is wrong. With ``method:
post`` (the default) each ping carries one line saying how tailhook is. A ping
that fails is logged and tried again at the next beat; the URLs are secrets
and show only their scheme and host in logs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

import aiohttp

from tailhook.config import HeartbeatConfig
from tailhook.metrics import Metric, counter, gauge

__all__ = ["Heartbeat"]

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
"""At most this long for one ping."""


class Heartbeat:
    """Pings *config*'s URLs: *check* says what is wrong (``None``: healthy), *status* how tailhook is."""

    def __init__(
        self,
        config: HeartbeatConfig,
        session: aiohttp.ClientSession,
        *,
        check: Callable[[], Awaitable[str | None]],
        status: Callable[[], Awaitable[str]],
    ) -> None:
        self.config = config
        self.session = session
        self.check = check
        self.status = status
        self.pings_total = 0
        self.failures_reported = 0
        self.errors_total = 0
        self._failing: str | None = None

    async def run(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.config.every)

    async def beat(self) -> None:
        """One ping: to ``url`` if healthy, else to ``fail_url`` with what is wrong."""
        problem = await self.check()
        if problem != self._failing:
            if problem is None:
                log.info("heartbeat: healthy again")
            else:
                log.warning("heartbeat: reporting a failure to %s: %s", self.config.fail_url, problem)
            self._failing = problem
        url = self.config.url if problem is None else self.config.fail_url
        body = problem if problem is not None else await self.status()
        try:
            async with asyncio.timeout(TIMEOUT_S):
                if self.config.method == "get":
                    request = self.session.get(url.reveal())
                else:
                    request = self.session.post(
                        url.reveal(), data=body.encode(), headers={"Content-Type": "text/plain"}
                    )
                async with request as answer:
                    answer.raise_for_status()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.errors_total += 1
            reason = f"HTTP {exc.status}" if isinstance(exc, aiohttp.ClientResponseError) else type(exc).__name__
            log.warning("heartbeat: %s did not take the ping (%s); trying again in %gs", url, reason, self.config.every)
            return
        if problem is None:
            self.pings_total += 1
        else:
            self.failures_reported += 1

    def collect(self) -> Iterable[Metric]:
        yield counter("tailhook_heartbeat_pings_total", "Heartbeat pings taken while healthy.", self.pings_total)
        yield counter(
            "tailhook_heartbeat_failures_reported_total",
            "Pings to the heartbeat's fail_url (tailhook was not healthy).",
            self.failures_reported,
        )
        yield counter("tailhook_heartbeat_errors_total", "Heartbeat pings that did not get through.", self.errors_total)
        yield gauge("tailhook_healthy", "1 while the heartbeat finds tailhook healthy.", float(self._failing is None))

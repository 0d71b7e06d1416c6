"""Fleet mode: the tailhooks of one fleet share each Discord webhook's pacing through Redis.

Discord's rate limit belongs to the webhook, not to the caller: 50 sidecars that
each pace themselves to the webhook's 5 requests per 2 s send 50 times what it
takes, and an address that keeps collecting 429s is banned by Discord's edge for
an hour. With ``fleet: {redis, name}`` every daemon posting to one webhook draws
from one budget kept in Redis:

- **A shared bucket per webhook and route** (posts, edits), kept as Discord's
  headers tell it: each request takes one of the requests ``left`` in the
  bucket's window (an atomic script); each answer's ``X-RateLimit-Remaining``
  lowers that count when Discord's is lower, and its ``-Reset-After`` ends the
  window (the key expires then). A window not seen yet starts at the limit and
  period the daemon knows. With none left, the script answers how long until
  the window ends, and the daemon waits that long before asking again.
- **A shared pause**: a 429 that one daemon meets pauses every daemon of the
  fleet on that webhook and route for its ``retry_after`` (a key with that
  expiry); a global 429 pauses the webhook's every route.
- **Identity**: a webhook is known in Redis by a hash of its id (and the
  fleet's name), never by its token. Keys start with ``tailhook:<name>:``.

Redis is never in the path of durability: it holds only state that may be
lost. Each call has a short timeout; when Redis is unreachable or slow the
daemon paces itself alone (its own buckets still hold it to Discord's limits),
says so once, shows it in ``/metrics`` (``tailhook_fleet_up`` 0) and asks again
after a capped, growing pause. Nothing waits for Redis to come back.

It reports its own metrics (``collect``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from tailhook.config import FleetConfig
from tailhook.metrics import Metric, counter, gauge

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["Fleet", "FleetUnavailable", "webhook_key"]

T = TypeVar("T")

log = logging.getLogger(__name__)

RETRY_MIN_S = 1.0
RETRY_MAX_S = 60.0
"""After Redis failed, it is asked again after 1 s, then twice as long each time, up to a minute."""

# KEYS[1]: the bucket (a hash: `left`, requests left in Discord's window; it expires when the window
# resets); KEYS[2]: the route's pause; KEYS[3]: the webhook's pause (a global 429).
# ARGV[1]: the bucket's limit; ARGV[2]: its period in milliseconds (for a window not seen yet).
# Answers 0 (go) or the milliseconds to wait before asking again.
_TAKE = """
local paused = math.max(redis.call('PTTL', KEYS[2]), redis.call('PTTL', KEYS[3]))
if paused > 0 then return paused end
local left = redis.call('HGET', KEYS[1], 'left')
if not left then
  redis.call('HSET', KEYS[1], 'left', tonumber(ARGV[1]) - 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 0
end
if tonumber(left) > 0 then
  redis.call('HINCRBY', KEYS[1], 'left', -1)
  return 0
end
return math.max(redis.call('PTTL', KEYS[1]), 1)
"""

# KEYS[1]: the bucket; ARGV[1]: `X-RateLimit-Remaining`; ARGV[2]: `X-RateLimit-Reset-After` in ms.
# Discord's count wins when it is lower (requests of others in flight are already taken from ours),
# and its reset ends the fleet's window.
_LEARN = """
local left = redis.call('HGET', KEYS[1], 'left')
if (not left) or tonumber(ARGV[1]) < tonumber(left) then redis.call('HSET', KEYS[1], 'left', ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 0
"""


class FleetUnavailable(Exception):
    """The ``redis`` package (the ``fleet`` extra) is not installed."""


def webhook_key(fleet: str, webhook_id: str) -> str:
    """How a webhook is known in Redis: a hash of the fleet's name and its id (never its token)."""
    return hashlib.sha256(f"{fleet}\0{webhook_id}".encode()).hexdigest()[:24]


class Fleet:
    """One daemon's link to its fleet's Redis (see the module doc)."""

    def __init__(self, config: FleetConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        try:
            import redis.asyncio as aioredis  # noqa: PLC0415 - an optional extra, imported when used
        except ImportError:
            raise FleetUnavailable(
                "fleet mode needs the redis package: pip install 'tailhook[fleet]' (or pip install redis)"
            ) from None
        self.config = config
        self.prefix = f"tailhook:{config.name}:"
        self._clock = clock
        tls = {} if config.ca_file is None else {"ssl_ca_certs": str(config.ca_file)}
        self._client: redis.asyncio.Redis = aioredis.from_url(
            config.redis,
            password=config.password,
            socket_timeout=config.timeout,
            socket_connect_timeout=config.timeout,
            retry_on_timeout=False,
            health_check_interval=0,
            **tls,
        )
        self._take: Any = self._client.register_script(_TAKE)
        self._learn: Any = self._client.register_script(_LEARN)
        self.up = True
        """Whether the last call to Redis worked (``False``: this daemon paces itself alone)."""
        self._retry_at = 0.0
        self._retry_s = RETRY_MIN_S
        self.errors = 0
        self.waits = 0
        """Times the fleet's budget held a request of this daemon back."""
        self.pauses = 0
        """429s this daemon shared with the fleet."""

    async def call(self, request: Callable[[redis.asyncio.Redis], Awaitable[T]]) -> T | None:
        """*request* on the fleet's Redis; ``None`` when Redis is not asked now (it failed and its next
        try is not due) or the request fails or times out: the caller goes on alone."""
        if not self._reachable():
            return None
        try:
            result = await request(self._client)
        except Exception as exc:  # whatever Redis or the network does, the daemon goes on alone
            self._failed(exc)
            return None
        self._worked()
        return result

    async def take(self, webhook_id: str, route: str, limit: int, period_s: float) -> float:
        """Take one request of the fleet's budget for *webhook_id*'s *route* (Discord announced
        *limit* requests per *period_s*); the seconds to wait before asking again, 0 to go now.
        Without Redis: 0 (the daemon's own pacing holds)."""
        hook = webhook_key(self.config.name, webhook_id)
        keys = [f"{self.prefix}bucket:{hook}:{route}", f"{self.prefix}pause:{hook}:{route}",
                f"{self.prefix}pause:{hook}:all"]  # fmt: skip
        args = [max(1, limit), max(1, math.ceil(period_s * 1000))]
        wait_ms = await self.call(lambda client: self._take(keys=keys, args=args, client=client))
        if not wait_ms:
            return 0.0
        self.waits += 1
        return int(wait_ms) / 1000

    async def learn(self, webhook_id: str, route: str, remaining: int, reset_after_s: float) -> None:
        """What an answer's ``X-RateLimit-*`` headers said of the bucket: *remaining* requests until
        it resets in *reset_after_s*: the fleet's count and window follow Discord's."""
        keys = [f"{self.prefix}bucket:{webhook_key(self.config.name, webhook_id)}:{route}"]
        args = [max(0, remaining), max(1, math.ceil(reset_after_s * 1000))]
        await self.call(lambda client: self._learn(keys=keys, args=args, client=client))

    async def pause(self, webhook_id: str, route: str | None, seconds: float) -> None:
        """A 429 said to wait *seconds* on *webhook_id*'s *route* (``None``: every route, a global
        429): every daemon of the fleet waits as long."""
        if seconds <= 0:
            return
        hook = webhook_key(self.config.name, webhook_id)
        key = f"{self.prefix}pause:{hook}:{route or 'all'}"
        if await self.call(lambda client: client.set(key, "1", px=max(1, math.ceil(seconds * 1000)))) is not None:
            self.pauses += 1

    async def rejoin(self) -> None:
        """While Redis does not answer, ask it again when the next try is due (a ``PING``), so that an
        idle daemon shares again as soon as Redis is back, not only at its next alert."""
        if not self.up:
            await self.call(lambda client: client.ping())

    async def close(self) -> None:
        await self._client.aclose()

    def collect(self) -> Iterable[Metric]:
        yield gauge("tailhook_fleet_up", "1 while this tailhook shares pacing with its fleet through Redis.",
                    {self.config.name: float(self.up)}, "fleet")  # fmt: skip
        yield counter("tailhook_fleet_errors_total", "Calls to the fleet's Redis that failed or timed out.",
                      {self.config.name: self.errors}, "fleet")  # fmt: skip
        yield counter("tailhook_fleet_waits_total", "Requests the fleet's shared budget held back.",
                      {self.config.name: self.waits}, "fleet")  # fmt: skip
        yield counter("tailhook_fleet_pauses_total", "429s this tailhook shared with its fleet.",
                      {self.config.name: self.pauses}, "fleet")  # fmt: skip

    def _reachable(self) -> bool:
        """Whether to ask Redis now: it worked last time, or its next try is due."""
        return self.up or self._clock() >= self._retry_at

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        if self.up:
            log.warning(
                "fleet %s: Redis at %s does not answer (%s); pacing alone until it does",
                self.config.name,
                self.config.redacted(),
                type(exc).__name__,
            )
        else:
            self._retry_s = min(RETRY_MAX_S, self._retry_s * 2)
        self.up = False
        self._retry_at = self._clock() + self._retry_s

    def _worked(self) -> None:
        if not self.up:
            log.warning("fleet %s: Redis at %s answers again; pacing with the fleet", self.config.name,
                        self.config.redacted())  # fmt: skip
        self.up = True
        self._retry_s = RETRY_MIN_S

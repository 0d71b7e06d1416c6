"""The Discord sink: execute-webhook requests, paced by Discord's own headers.

- Every request is ``POST <webhook>?wait=true`` so a 2xx means Discord stored
  the message; ``allowed_mentions`` is always sent (see ``discord_payload``).
- Pacing: each response's ``X-RateLimit-Remaining`` and ``-Reset-After`` tell
  when the bucket refills; when it is empty the sink waits before sending.
  A 429 is waited out for its ``retry_after`` (a float, seconds) and retried;
  a global 429 pauses every webhook sharing the same ``GlobalPause``; a 429
  without Discord's JSON (a Cloudflare block) is handed back as a long retry.
- 400 is final (``REJECTED``, with Discord's error body); 401, 403 and 404
  mean the webhook is gone or its token wrong (``DEAD``): the dispatcher stops
  using it. 5xx, timeouts and connection errors are ``RETRY``.
- The URL holds a secret token: it is only ever used for the request itself.
  Messages and exceptions that leave this module name the destination, never
  the URL (aiohttp puts URLs in its errors, so they are scrubbed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp

from tailhook.config import DestinationConfig, WebhookUrl
from tailhook.events import Delivery, Mentions
from tailhook.sinks import Outcome, Result
from tailhook.sinks.discord_payload import embed_for, payload_for

__all__ = ["DiscordSink", "GlobalPause", "ProbeResult", "probe_webhook", "scrub"]

log = logging.getLogger(__name__)

DEAD_STATUSES = frozenset({401, 403, 404})
CLOUDFLARE_BACKOFF_S = 300.0
"""How long to stay away after a 429 that did not come from Discord's API."""
MAX_429_RETRIES = 5
SUPPRESS_NOTIFICATIONS = 1 << 12
"""Message flag: shown in the channel, but no push or desktop notification."""
REQUEST_TIMEOUT_S = 15.0
_ERROR_BODY_CHARS = 2000

Sleep = Callable[[float], Awaitable[None]]


class GlobalPause:
    """Shared by every webhook: a global 429 stops them all until ``until``."""

    def __init__(self) -> None:
        self.until = 0.0


@dataclass(slots=True)
class _Bucket:
    """What Discord last said about this webhook's rate-limit bucket."""

    remaining: int | None = None
    resets_at: float = 0.0
    name: str = ""


class DiscordSink:
    def __init__(
        self,
        config: DestinationConfig,
        *,
        session: aiohttp.ClientSession,
        global_pause: GlobalPause | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = config.name
        self.config = config
        self._session = session
        self._global = global_pause or GlobalPause()
        self._clock = clock
        self._sleep = sleep
        self._bucket = _Bucket()
        self.requests = 0
        self.rate_limited = 0

    def __repr__(self) -> str:
        return f"DiscordSink({self.name!r}, {self.config.url!r})"

    async def send(self, deliveries: Sequence[Delivery]) -> Result:
        payload = self._payload(deliveries)
        for _ in range(MAX_429_RETRIES):
            await self._pace()
            try:
                status, headers, body = await self._post(payload)
            except (aiohttp.ClientError, TimeoutError) as exc:
                return Result(Outcome.RETRY, f"request failed: {scrub(describe(exc), self.config.url)}")
            self._learn(headers)
            if status != 429:
                return self._result(status, body)
            self.rate_limited += 1
            wait = self._rate_limited(headers, body)
            if wait is None:
                return Result(Outcome.RETRY, "429 without Discord's JSON (blocked upstream)", CLOUDFLARE_BACKOFF_S)
            log.info("destination %s: rate limited by Discord; waiting %.3fs", self.name, wait)
        return Result(Outcome.RETRY, f"still rate limited after {MAX_429_RETRIES} tries")

    async def close(self) -> None:
        return None

    # ── request ─────────────────────────────────────────────────────────────

    def _payload(self, deliveries: Sequence[Delivery]) -> dict[str, object]:
        embeds = [embed_for(d.notification, style=d.style) for d in deliveries]
        mentions = _merge_mentions(d.mentions for d in deliveries)
        return payload_for(
            embeds,
            mentions=mentions,
            username=self.config.username,
            avatar_url=self.config.avatar_url,
        )

    async def _post(self, payload: Mapping[str, object]) -> tuple[int, Mapping[str, str], str]:
        params = {"wait": "true"}
        if self.config.thread_id:
            params["thread_id"] = self.config.thread_id
        self.requests += 1
        async with self._session.post(
            self.config.url.reveal(),
            params=params,
            json=payload,
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        ) as response:
            body = await response.text(errors="replace")
            return response.status, response.headers, body

    # ── answers ─────────────────────────────────────────────────────────────

    def _result(self, status: int, body: str) -> Result:
        if 200 <= status < 300:
            return Result(Outcome.SENT)
        detail = f"Discord answered {status}: {_error_text(body)}"
        if status in DEAD_STATUSES:
            return Result(Outcome.DEAD, detail)
        if 400 <= status < 500:
            return Result(Outcome.REJECTED, detail)
        return Result(Outcome.RETRY, detail)

    async def _pace(self) -> None:
        """Wait for a global pause or an empty bucket to end."""
        while True:
            now = self._clock()
            wait = self._global.until - now
            if self._bucket.remaining == 0:
                wait = max(wait, self._bucket.resets_at - now)
            if wait <= 0:
                return
            await self._sleep(wait)
            if self._bucket.remaining == 0 and self._clock() >= self._bucket.resets_at:
                self._bucket.remaining = None

    def _learn(self, headers: Mapping[str, str]) -> None:
        remaining = headers.get("X-RateLimit-Remaining")
        reset_after = headers.get("X-RateLimit-Reset-After")
        if remaining is None or reset_after is None:
            return
        try:
            self._bucket.remaining = int(remaining)
            self._bucket.resets_at = self._clock() + float(reset_after)
        except ValueError:
            return
        self._bucket.name = headers.get("X-RateLimit-Bucket", self._bucket.name)

    def _rate_limited(self, headers: Mapping[str, str], body: str) -> float | None:
        """Seconds to wait after a 429, or ``None`` when it was not Discord's."""
        try:
            answer = json.loads(body)
            retry_after = float(answer["retry_after"])
        except (ValueError, KeyError, TypeError):
            return None
        until = self._clock() + retry_after
        if answer.get("global") or headers.get("X-RateLimit-Global", "").lower() == "true":
            log.warning(
                "destination %s: Discord paused all webhooks for %.3fs (global rate limit)", self.name, retry_after
            )
            self._global.until = max(self._global.until, until)
        else:
            self._bucket.remaining = 0
            self._bucket.resets_at = max(self._bucket.resets_at, until)
        return retry_after


def _merge_mentions(all_mentions: Iterable[Mentions]) -> Mentions:
    roles: dict[str, None] = {}
    users: dict[str, None] = {}
    everyone = False
    for m in all_mentions:
        roles.update(dict.fromkeys(m.roles))
        users.update(dict.fromkeys(m.users))
        everyone = everyone or m.everyone
    return Mentions(roles=tuple(roles), users=tuple(users), everyone=everyone)


def _error_text(body: str) -> str:
    """Discord's error body, compacted for a log line and the dead letters."""
    try:
        answer = json.loads(body)
    except ValueError:
        text = " ".join(body.split())
        return text[:200] + ("…" if len(text) > 200 else "")
    return json.dumps(answer, separators=(",", ":"))[:_ERROR_BODY_CHARS]


def describe(exc: BaseException) -> str:
    """An exception as ``Type: message``, for a log line."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def scrub(text: str, url: WebhookUrl) -> str:
    """*text* with the webhook's token replaced, wherever aiohttp put it."""
    return text.replace(url.token, "***")


# ── the startup probe ───────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class ProbeResult:
    destination: str
    ok: bool
    dead: bool
    """Discord says the webhook does not exist or the token is wrong."""
    detail: str


async def probe_webhook(
    config: DestinationConfig, *, session: aiohttp.ClientSession, message: str | None = None
) -> ProbeResult:
    """Check a webhook with Discord.

    Without *message*, Discord's GET, which validates the token and posts
    nothing; with it, a silent post of *message* (notifications suppressed).
    """
    url = config.url.reveal()
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    try:
        if message is None:
            request = session.get(url, timeout=timeout)
        else:
            payload: dict[str, object] = {"content": message[:2000], "allowed_mentions": {"parse": []}}
            payload["flags"] = SUPPRESS_NOTIFICATIONS
            if config.username:
                payload["username"] = config.username
            params = {"wait": "true"} | ({"thread_id": config.thread_id} if config.thread_id else {})
            request = session.post(url, params=params, json=payload, timeout=timeout)
        async with request as response:
            body = await response.text(errors="replace")
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        detail = f"Discord unreachable: {scrub(describe(exc), config.url)}"
        return ProbeResult(config.name, ok=False, dead=False, detail=detail)
    if 200 <= status < 300:
        return ProbeResult(config.name, ok=True, dead=False, detail="webhook exists")
    detail = scrub(f"Discord answered {status}: {_error_text(body)}", config.url)
    return ProbeResult(config.name, ok=False, dead=status in DEAD_STATUSES, detail=detail)

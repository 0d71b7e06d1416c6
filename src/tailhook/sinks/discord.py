"""The Discord sink: execute-webhook requests and edits, paced by Discord's own headers.

- Every post is ``POST <webhook>?wait=true`` so a 2xx means Discord stored
  the message; ``allowed_mentions`` is always sent (see ``discord_payload``).
  The 2xx carries the message object: its ``id``, and for a forum post that
  opened a thread its ``channel_id``, the new thread's id. ``send`` answers
  them as ``Result.posted`` (``Posted``: message id, the webhook's id, the
  thread), which is all an edit needs; a 2xx without a message object is
  still ``SENT``, with ``posted=None``.
- An edit is ``PATCH <webhook>/messages/<id>`` (``?thread_id=`` for a
  message in a thread), through the webhook that posted the message: only it
  may edit it. Its body is the embeds a post of the same deliveries would
  have, ``allowed_mentions: {"parse": []}`` always and no content: an edit
  notifies no one, and pings belong to posts.
- Batching: :meth:`DiscordSink.batch` says how many of the deliveries due
  fit one message (at most 10 embeds and 6000 counted characters).
- Several webhooks of one channel: each has its own rate-limit bucket, and
  each request goes to the live webhook that can take it soonest (the most
  requests left in its bucket), so two webhooks carry twice the traffic
  without a 429. A webhook that dies is left out and the others carry on.
- Pacing: each response's ``X-RateLimit-Remaining`` and ``-Reset-After`` tell
  when the bucket refills; when every bucket is empty the sink waits. Posts
  and edits have buckets of their own at Discord (the edit route's limit is
  not documented), so each webhook keeps one ``Bucket`` for each, learnt
  from the answers of that route. A 429 is waited out for its
  ``retry_after`` (a float, seconds) and retried; a global 429 pauses every
  webhook sharing the same ``GlobalPause``, posts and edits alike; a 429
  without Discord's JSON (a Cloudflare block) is handed back as a long retry.
- 400 is final (``REJECTED``, with Discord's error body); 401, 403 and 404
  mean the webhook is gone or its token wrong: it gets no more requests
  (Discord bans addresses that keep sending invalid ones) and is re-checked
  with Discord's GET, which posts nothing, at most once per
  ``recheck_s``. When no webhook of the destination is left, the answer is
  ``DEAD``. 5xx, timeouts and connection errors are ``RETRY``.
- An edit's answers are read the same way, except for what means that the
  message cannot be edited, which is ``MISSING`` (the caller posts anew): a
  404 ``Unknown Message`` (10008: deleted) or any other 404 but ``Unknown
  Webhook`` (its thread is gone), which leaves the webhook live; a message
  whose webhook is dead, or no longer one of the destination's. 10015
  ``Unknown Webhook``, 401 and 403 bury the webhook as a post's do, and the
  edit is ``MISSING`` while another webhook is live, else ``DEAD``.
- The URL holds a secret token: it is only ever used for the request itself.
  Messages and exceptions that leave this module name the destination and the
  webhook's number, never the URL (aiohttp puts URLs in its errors, so they
  are scrubbed, and so is a proxy's password).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import aiohttp

from tailhook._errors import describe
from tailhook.config import DestinationConfig, WebhookUrl
from tailhook.events import Delivery, Kind, Mentions
from tailhook.metrics import Metric, counter, gauge
from tailhook.sinks import Outcome, Posted, Result
from tailhook.sinks.discord_files import MAX_FILE_BYTES, MAX_FILES, File, message_of, rendered
from tailhook.sinks.discord_payload import LIMITS, edit_payload_for, embed_size, is_snowflake, payload_for

if TYPE_CHECKING:
    from tailhook.fleet import Fleet

__all__ = [
    "DEAD_RECHECK_S",
    "Counts",
    "DiscordSink",
    "GlobalPause",
    "ProbeResult",
    "probe_webhook",
    "scrub",
    "scrub_credentials",
]

log = logging.getLogger(__name__)

DEAD_STATUSES = frozenset({401, 403, 404})
UNKNOWN_WEBHOOK = 10015
"""Discord's JSON code in a 404: the webhook was deleted."""
UNKNOWN_CHANNEL = 10003
"""Discord's code for a channel or thread that is gone (a deleted forum post)."""
CLOUDFLARE_BACKOFF_S = 300.0
"""How long to stay away after a 429 that did not come from Discord's API."""
DEAD_RECHECK_S = 300.0
"""How often a dead webhook is asked again (a GET, which posts nothing) whether it is back."""
MAX_TRIES = 5
"""Requests for one message before the dispatcher takes over: 429s waited out, dead webhooks failed over."""
SUPPRESS_NOTIFICATIONS = 1 << 12
"""Message flag: shown in the channel, but no push or desktop notification."""
REQUEST_TIMEOUT_S = 15.0
FILE_TYPE = "text/plain; charset=utf-8"
"""What a ``.log`` file is sent as: text, which Discord previews inline."""
_ERROR_BODY_CHARS = 2000
_FRESH = 1 << 30
"""How many requests a bucket not heard of yet is taken to have left: a fresh bucket is full."""
ASSUMED_BUCKET = (5, 2.0)
"""A webhook's bucket until Discord's headers tell: 5 requests per 2 s, what webhooks get today."""

Sleep = Callable[[float], Awaitable[None]]


@dataclass(slots=True)
class Counts:
    """What one destination's requests met since the start; the sinks a reload puts in its place
    count on in the same object, so /metrics' counters never go back."""

    requests: int = 0
    """Every request: posts and edits."""
    rate_limited: int = 0
    edits: int = 0
    """Edit requests (``PATCH``), counted in ``requests`` too."""
    files: int = 0
    """Files sent with posts (a log line longer than its embed shows)."""
    files_cut: int = 0
    """Files cut to the 10 MiB a webhook may upload."""


class GlobalPause:
    """Shared by every webhook: a global 429 stops them all until ``until``."""

    def __init__(self) -> None:
        self.until = 0.0


Route = Literal["post", "edit"]
"""A route with a rate-limit bucket of its own at Discord, per webhook."""


@dataclass(slots=True)
class Bucket:
    """One rate-limit bucket of a webhook (its posts', or its edits'), as Discord's headers last said."""

    remaining: int | None = None
    """Requests left in it; ``None`` when unknown (before the first answer, after a reset)."""
    resets_at: float = 0.0
    limit: int = ASSUMED_BUCKET[0]
    period_s: float = ASSUMED_BUCKET[1]
    """``limit`` requests per ``period_s``, as Discord's headers said (the longest
    ``X-RateLimit-Reset-After`` seen with a full bucket less one), else what webhooks are known to get."""

    def ready_at(self, now: float) -> float:
        if self.remaining == 0 and now < self.resets_at:
            return self.resets_at
        return now

    def learn(self, headers: Mapping[str, str], now: float) -> None:
        """Take in an answer's ``X-RateLimit-*`` headers, if it has them."""
        remaining = headers.get("X-RateLimit-Remaining")
        reset_after = headers.get("X-RateLimit-Reset-After")
        if remaining is None or reset_after is None:
            return
        try:
            self.remaining = int(remaining)
            self.resets_at = now + float(reset_after)
            limit = int(headers.get("X-RateLimit-Limit", ""))
        except ValueError:
            return
        if limit > 0:
            self.limit = limit
            if self.remaining == limit - 1:  # the first request of a fresh bucket: its whole period ahead
                self.period_s = max(float(reset_after), 0.001)

    def hold(self, until: float) -> None:
        """Empty until *until* (a 429 said so)."""
        self.remaining = 0
        self.resets_at = max(self.resets_at, until)


@dataclass(slots=True)
class Webhook:
    """One webhook URL of a destination, with what Discord last said about it."""

    url: WebhookUrl
    label: str
    """How messages name it: the destination, and its number when it has several."""
    posts: Bucket = field(default_factory=Bucket)
    edits: Bucket = field(default_factory=Bucket)
    dead: str | None = None
    """Why Discord refused it (401/403/404), while it does."""
    recheck_at: float = 0.0

    def bucket(self, route: Route) -> Bucket:
        return self.posts if route == "post" else self.edits


class DiscordSink:
    def __init__(
        self,
        config: DestinationConfig,
        *,
        session: aiohttp.ClientSession,
        global_pause: GlobalPause | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        recheck_s: float = DEAD_RECHECK_S,
        counts: Counts | None = None,
        fleet: Fleet | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        self._session = session
        self._global = global_pause or GlobalPause()
        self._clock = clock
        self._sleep = sleep
        self._recheck_s = recheck_s
        self.webhooks = [Webhook(url, label) for url, label in zip(config.urls, _labels(config), strict=True)]
        self.counts = counts or Counts()
        self.fleet: Fleet | None = fleet
        """Fleet mode: each request also takes its share of the fleet's budget for its webhook."""

    def __repr__(self) -> str:
        return f"DiscordSink({self.name!r}, {[w.url for w in self.webhooks]!r})"

    def batch(self, deliveries: Sequence[Delivery]) -> int:
        """How many of *deliveries*, from the first, fit in one message (at least 1).

        Only deliveries that may ping the same people share a message: mentions
        live in its content, which has limits of its own; and the files of one
        message (see ``discord_files``) take at most 10 MiB together.
        """
        total = files = 0
        for count, delivery in enumerate(deliveries[: LIMITS.embeds]):
            if delivery.mentions != deliveries[0].mentions:
                return max(1, count)
            embed, file = rendered(delivery)
            total += embed_size(embed)
            files += len(file.data) if file is not None else 0
            if total > LIMITS.total or files > MAX_FILE_BYTES:
                return max(1, count)
        return max(1, min(len(deliveries), LIMITS.embeds))

    async def send(self, deliveries: Sequence[Delivery], *, thread_id: str | None = None) -> Result:
        try:
            payload, files = self._payload(deliveries, opening=thread_id is None)
        except ValueError as exc:  # no request could carry it: final, as Discord's 400 would be
            return Result(Outcome.REJECTED, f"cannot make a Discord message of it: {exc}")
        for _ in range(MAX_TRIES):
            webhook = await self._choose()
            if webhook is None:
                return Result(Outcome.DEAD, self._why_dead())
            try:
                status, headers, body = await self._post(webhook, payload, files, thread_id)
            except (aiohttp.ClientError, TimeoutError) as exc:
                return Result(Outcome.RETRY, f"request failed: {self._scrub(describe(exc))}")
            webhook.posts.learn(headers, self._clock())
            await self._fleet_learn(webhook, "post", headers)
            if status in DEAD_STATUSES and not _thread_gone(thread_id, status, body):
                self._bury(webhook, f"Discord answered {status}: {_error_text(body)}")
                continue
            if status != 429:
                return self._sent(webhook, status, body, thread_id=thread_id, opened_thread="thread_name" in payload)
            if (limited := await self._on_429(webhook, "post", headers, body)) is not None:
                return limited
        return Result(Outcome.RETRY, f"no message sent after {MAX_TRIES} tries (rate limited)")

    async def edit(self, posted: Posted, deliveries: Sequence[Delivery], fresh: Collection[int] = ()) -> Result:
        """Make the message *posted* show *deliveries*, through the webhook that posted it (see the module doc)."""
        # A digest brings its held lines; an alert's line went with its post. When the message's files
        # are not known, none is added: an edit must list those it keeps, or they are gone.
        send = {slot for slot in fresh if deliveries[slot].notification.kind is Kind.DIGEST}
        on_it = MAX_FILES if posted.files is None else len(posted.files)
        embeds, files = message_of(deliveries, send=send, kept=on_it, edit=True)
        try:
            payload = edit_payload_for(embeds)
        except ValueError as exc:
            return Result(Outcome.REJECTED, f"cannot make a Discord message of it: {exc}")
        if files:  # the message's files, kept, and the new ones
            kept: list[dict[str, object]] = [{"id": file_id} for file_id in posted.files or ()]
            payload["attachments"] = kept + [{"id": n, "filename": f.name} for n, f in enumerate(files)]
        if not _is_id(posted.message_id) or not (posted.thread_id is None or _is_id(posted.thread_id)):
            return Result(Outcome.MISSING, "cannot edit the message: not a Discord message or thread id")
        webhook = self._poster(posted)
        if webhook is None:
            return self._cannot_edit(f"the webhook that posted it ({posted.webhook}) is no longer one of its own")
        if webhook.dead is not None:
            return self._cannot_edit(f"the webhook that posted it is dead: {webhook.dead}")
        return await self._edit(webhook, posted, payload, files)

    async def _edit(
        self, webhook: Webhook, posted: Posted, payload: Mapping[str, object], files: Sequence[File]
    ) -> Result:
        for _ in range(MAX_TRIES):
            if not await self._turn(webhook, "edit"):
                return self._cannot_edit(f"its webhook died: {webhook.dead}")
            try:
                status, headers, body = await self._patch(webhook, posted, payload, files)
            except (aiohttp.ClientError, TimeoutError) as exc:
                return Result(Outcome.RETRY, f"request failed: {self._scrub(describe(exc))}")
            webhook.edits.learn(headers, self._clock())
            await self._fleet_learn(webhook, "edit", headers)
            if status == 429:
                if (limited := await self._on_429(webhook, "edit", headers, body)) is not None:
                    return limited
                continue
            return self._edited(webhook, posted, status, body)
        return Result(Outcome.RETRY, f"message not edited after {MAX_TRIES} tries (rate limited)")

    async def revive(self) -> bool:
        """Ask Discord again about each dead webhook that is due; whether any webhook is live."""
        now = self._clock()
        for webhook in self.webhooks:
            if webhook.dead is None or now < webhook.recheck_at:
                continue
            result = await self._check(webhook)
            if result.ok:
                webhook.dead = None
                webhook.posts.remaining = webhook.edits.remaining = None
                log.warning("destination %s: the webhook answers again; sending to it again", webhook.label)
            else:
                webhook.recheck_at = self._clock() + self._recheck_s
                log.info("destination %s: still refused (%s); next check in %.0fs", webhook.label, result.detail,
                         self._recheck_s)  # fmt: skip
        return any(webhook.dead is None for webhook in self.webhooks)

    def recheck_in(self) -> float:
        """Seconds until :meth:`revive` next has a dead webhook to ask about; ``inf`` if none is dead."""
        due = [webhook.recheck_at for webhook in self.webhooks if webhook.dead is not None]
        return max(0.0, min(due) - self._clock()) if due else math.inf

    def throughput(self) -> float:
        """Alerts per second: each live webhook's bucket, times the 10 embeds a message carries."""
        per_s = sum(w.posts.limit / w.posts.period_s for w in self.webhooks if w.dead is None)
        return per_s * LIMITS.embeds

    def recheck_soon(self) -> None:
        now = self._clock()
        for webhook in self.webhooks:
            if webhook.dead is not None:
                webhook.recheck_at = min(webhook.recheck_at, now)

    def collect(self) -> Iterable[Metric]:
        yield counter("tailhook_discord_requests_total", "Requests sent to Discord.",
                      {self.name: self.counts.requests}, "destination")  # fmt: skip
        yield counter("tailhook_discord_rate_limited_total", "429 answers from Discord.",
                      {self.name: self.counts.rate_limited}, "destination")  # fmt: skip
        yield counter("tailhook_discord_edits_total", "Edit requests sent to Discord (counted in requests too).",
                      {self.name: self.counts.edits}, "destination")  # fmt: skip
        yield counter("tailhook_discord_files_total", "Files sent with posts: log lines longer than an embed shows.",
                      {self.name: self.counts.files}, "destination")  # fmt: skip
        yield counter("tailhook_discord_files_cut_total", "Files cut to the 10 MiB a webhook may upload.",
                      {self.name: self.counts.files_cut}, "destination")  # fmt: skip
        dead = {(self.name, str(number)): float(w.dead is not None) for number, w in enumerate(self.webhooks, 1)}
        yield gauge("tailhook_webhook_dead", "1 while Discord says the webhook is gone or its token wrong.", dead,
                    "destination", "webhook")  # fmt: skip

    async def close(self) -> None:
        return None

    # ── request ─────────────────────────────────────────────────────────────

    def _payload(self, deliveries: Sequence[Delivery], *, opening: bool = True) -> tuple[dict[str, object], list[File]]:
        """The body of a post of *deliveries*, and its files; *opening*: it opens a forum post (if the
        destination is a forum), else it goes into a thread the caller names."""
        embeds, files = message_of(deliveries)
        mentions = _merge_mentions(d.mentions for d in deliveries)
        silent = self.config.suppress_notifications
        forum = opening and self.config.thread_name is not None
        severity = max(d.notification.severity for d in deliveries)
        payload = payload_for(
            embeds,
            mentions=mentions,
            username=self.config.username,
            avatar_url=self.config.avatar_url,
            thread_name=self._thread_name(deliveries[0]) if forum else None,
            applied_tags=self.config.applied_tags.get(severity, ()) if forum else (),
            suppress_notifications=bool(silent) and all(d.notification.severity in silent for d in deliveries),
        )
        if files:
            payload["attachments"] = [{"id": n, "filename": f.name} for n, f in enumerate(files)]
        return payload, files

    def _thread_name(self, delivery: Delivery) -> str:
        n = delivery.notification
        values = {"title": n.title, "rule": n.rule, "severity": n.severity.label, "host": n.host, "source": n.source}
        return (self.config.thread_name or "").format_map(values)  # the config checked it formats

    async def _post(
        self, webhook: Webhook, payload: Mapping[str, object], files: Sequence[File], thread_id: str | None
    ) -> tuple[int, Mapping[str, str], str]:
        params = {"wait": "true"}
        if thread_id := thread_id or self.config.thread_id:
            params["thread_id"] = thread_id
        self.counts.requests += 1
        form = self._form(payload, files)
        async with self._session.post(
            webhook.url.reveal(),
            params=params,
            json=None if form else payload,
            data=form,
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            proxy=self.config.proxy,  # credentials stay in the URL: aiohttp sends them as Proxy-Authorization
        ) as response:
            body = await response.text(errors="replace")
            return response.status, response.headers, body

    async def _patch(
        self, webhook: Webhook, posted: Posted, payload: Mapping[str, object], files: Sequence[File]
    ) -> tuple[int, Mapping[str, str], str]:
        params = {"thread_id": posted.thread_id} if posted.thread_id else {}
        self.counts.requests += 1
        self.counts.edits += 1
        form = self._form(payload, files)
        async with self._session.patch(
            f"{webhook.url.reveal()}/messages/{posted.message_id}",
            params=params,
            json=None if form else payload,
            data=form,
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            proxy=self.config.proxy,
        ) as response:
            body = await response.text(errors="replace")
            return response.status, response.headers, body

    async def _check(self, webhook: Webhook) -> ProbeResult:
        return await _probe(self.config, webhook.url, webhook.label, session=self._session)

    def _scrub(self, text: str) -> str:
        for webhook in self.webhooks:
            text = scrub(text, webhook.url)
        return scrub_credentials(text, self.config.proxy)

    # ── choosing a webhook ──────────────────────────────────────────────────

    async def _choose(self) -> Webhook | None:
        """The live webhook that can take a request soonest, once it can; ``None`` when all are dead."""
        while True:
            live = [webhook for webhook in self.webhooks if webhook.dead is None]
            if not live:
                return None
            now = self._clock()
            best = min(live, key=lambda w: (w.posts.ready_at(now), -_left(w.posts)))
            wait = self._wait(best.posts, now)
            if wait <= 0:
                wait = await self._fleet_wait(best, "post")
                if wait <= 0:
                    return best
            await self._sleep(wait)

    async def _turn(self, webhook: Webhook, route: Route) -> bool:
        """Wait until *webhook*'s bucket of *route* (and the global pause) lets a request through;
        ``False`` if the webhook died meanwhile."""
        while webhook.dead is None:
            wait = self._wait(webhook.bucket(route), self._clock())
            if wait <= 0:
                wait = await self._fleet_wait(webhook, route)
                if wait <= 0:
                    return True
            await self._sleep(wait)
        return False

    async def _fleet_learn(self, webhook: Webhook, route: Route, headers: Mapping[str, str]) -> None:
        """In fleet mode: tell the fleet what an answer's ``X-RateLimit-*`` headers said of the bucket."""
        if self.fleet is None:
            return
        try:
            remaining = int(headers["X-RateLimit-Remaining"])
            reset_after = float(headers["X-RateLimit-Reset-After"])
        except (KeyError, ValueError):
            return
        await self.fleet.learn(webhook.url.id, route, remaining, reset_after)

    async def _fleet_wait(self, webhook: Webhook, route: Route) -> float:
        """In fleet mode: take a request of the fleet's budget for *webhook*'s *route*; the seconds to
        wait first (0: go now; always 0 without a fleet, or while its Redis does not answer)."""
        if self.fleet is None:
            return 0.0
        bucket = webhook.bucket(route)
        return await self.fleet.take(webhook.url.id, route, bucket.limit, bucket.period_s)

    def _wait(self, bucket: Bucket, now: float) -> float:
        """Seconds until *bucket* and the global pause let a request through (0 or less: now)."""
        wait = max(self._global.until, bucket.ready_at(now)) - now
        if wait <= 0 and bucket.remaining == 0:
            bucket.remaining = None  # its bucket has reset; the answer tells the new count
        return wait

    def _bury(self, webhook: Webhook, detail: str) -> None:
        webhook.dead = detail
        webhook.recheck_at = self._clock() + self._recheck_s
        others = sum(w.dead is None for w in self.webhooks)
        if others:
            log.error(
                "destination %s is dead: %s. No more requests go to it; %s carr%s on. "
                "Discord is asked again about it every %gs, without posting.",
                webhook.label,
                detail,
                f"{others} other webhook{'s' if others != 1 else ''}",
                "y" if others != 1 else "ies",
                self._recheck_s,
            )

    def _why_dead(self) -> str:
        reasons = dict.fromkeys(w.dead for w in self.webhooks if w.dead)
        return "; ".join(r for r in reasons if r)

    def _poster(self, posted: Posted) -> Webhook | None:
        """The webhook that posted *posted* (a live one, if the destination has its URL twice)."""
        mine = [w for w in self.webhooks if w.url.id == posted.webhook]
        return next((w for w in mine if w.dead is None), mine[0] if mine else None)

    def _form(self, payload: Mapping[str, object], files: Sequence[File]) -> aiohttp.FormData | None:
        """A request with *files* is multipart: the JSON body in ``payload_json``, each file in
        ``files[n]`` (the body's ``attachments`` lists them); ``None`` without files (plain JSON)."""
        if not files:
            return None
        form = aiohttp.FormData()
        form.add_field("payload_json", json.dumps(payload), content_type="application/json")
        for number, file in enumerate(files):
            # a stream, not bytes: aiohttp warns about a bytes body over 1 MiB
            form.add_field(f"files[{number}]", io.BytesIO(file.data), filename=file.name, content_type=FILE_TYPE)
        self.counts.files += len(files)
        self.counts.files_cut += sum(file.cut for file in files)
        return form

    def _cannot_edit(self, detail: str) -> Result:
        """A message whose webhook is gone cannot be edited: post anew (``MISSING``), unless no webhook
        is left to post with (``DEAD``)."""
        if any(w.dead is None for w in self.webhooks):
            return Result(Outcome.MISSING, f"cannot edit the message: {detail}")
        return Result(Outcome.DEAD, self._why_dead() or f"cannot edit the message: {detail}")

    # ── answers ─────────────────────────────────────────────────────────────

    def _result(self, status: int, body: str) -> Result:
        """What a post's or an edit's answer other than 2xx, 429 and a dead webhook's means."""
        detail = f"Discord answered {status}: {_error_text(body)}"
        if 400 <= status < 500:
            return Result(Outcome.REJECTED, detail)
        return Result(Outcome.RETRY, detail)

    def _sent(
        self, webhook: Webhook, status: int, body: str, *, thread_id: str | None = None, opened_thread: bool
    ) -> Result:
        """What a post's answer (not a 429, nor a dead webhook's) means."""
        if _thread_gone(thread_id, status, body):  # the webhook is fine
            return Result(Outcome.MISSING, f"thread {thread_id} is gone: Discord answered 404: {_error_text(body)}")
        if 200 <= status < 300:
            posted = self._posted(webhook, body, thread_id=thread_id, opened_thread=opened_thread)
            return Result(Outcome.SENT, posted=posted)
        return self._result(status, body)

    def _posted(self, webhook: Webhook, body: str, *, thread_id: str | None, opened_thread: bool) -> Posted | None:
        """The message a post's 2xx names (Discord's message object), or ``None`` when it names none.

        Its thread is the one it was sent into (*thread_id*, or the destination's ``thread_id``);
        else, for a forum post that opened a thread (*opened_thread*), the message's ``channel_id``:
        the new thread's id.
        """
        try:
            message = json.loads(body)
            message_id, channel_id = message["id"], message.get("channel_id")
        except (ValueError, KeyError, TypeError, AttributeError):
            message_id = channel_id = message = None
        thread_id = thread_id or self.config.thread_id or (channel_id if opened_thread else None)
        if not _is_id(message_id) or not (thread_id is None or _is_id(thread_id)):
            log.debug("destination %s: Discord's answer to a post is no message object; the message "
                      "cannot be edited later", webhook.label)  # fmt: skip
            return None
        return Posted(message_id=message_id, webhook=webhook.url.id, thread_id=thread_id, files=_file_ids(message))

    def _edited(self, webhook: Webhook, posted: Posted, status: int, body: str) -> Result:
        """What an edit's answer (not a 429) means."""
        if 200 <= status < 300:
            try:
                files = _file_ids(json.loads(body))
            except ValueError:
                files = None
            return Result(Outcome.SENT, posted=None if files is None else replace(posted, files=files))
        detail = f"Discord answered {status}: {_error_text(body)}"
        if status == 404 and _error_code(body) != UNKNOWN_WEBHOOK:
            # Unknown Message (10008): deleted. Or its thread is gone (Unknown Channel). The webhook is fine.
            return Result(Outcome.MISSING, f"message {posted.message_id} cannot be edited: {detail}")
        if status in DEAD_STATUSES:
            self._bury(webhook, detail)
            return self._cannot_edit(f"its webhook is dead: {detail}")
        return self._result(status, body)

    async def _on_429(self, webhook: Webhook, route: Route, headers: Mapping[str, str], body: str) -> Result | None:
        """Count a 429 and hold back what it holds back (in fleet mode: the whole fleet); the answer
        to give when it cannot be waited out here (it was not Discord's), else ``None``: wait and
        try again."""
        self.counts.rate_limited += 1
        wait = self._rate_limited(webhook, route, headers, body)
        if wait is None:
            return Result(Outcome.RETRY, "429 without Discord's JSON (blocked upstream)", CLOUDFLARE_BACKOFF_S)
        if self.fleet is not None:
            everything = self._global.until >= self._clock() + wait - 0.001  # a global 429: every route
            await self.fleet.pause(webhook.url.id, None if everything else route, wait)
        what = " (edits)" if route == "edit" else ""
        log.info("destination %s: rate limited by Discord%s; waiting %.3fs", webhook.label, what, wait)
        return None

    def _rate_limited(self, webhook: Webhook, route: Route, headers: Mapping[str, str], body: str) -> float | None:
        """Seconds to wait after a 429 on *route*, or ``None`` when it was not Discord's."""
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
            # Scope "shared" is a limit of the resource, here the channel that every webhook of the
            # destination posts to: it holds them all back, on this route. Otherwise only the webhook
            # that met it (the bucket hash names the route, and each webhook has its own count in it).
            shared = headers.get("X-RateLimit-Scope", "").lower() == "shared"
            for other in self.webhooks if shared else [webhook]:
                other.bucket(route).hold(until)
        return retry_after


_USERINFO = re.compile(r"(?<=://)[^/?#@\s]+@")


def scrub_credentials(text: str, proxy: str | None = None) -> str:
    """*text* without the credentials of any URL in it (a proxy's, however aiohttp quoted them)."""
    text = _USERINFO.sub("***@", text)
    password = urlsplit(proxy).password if proxy else None
    return text.replace(password, "***") if password else text


def _merge_mentions(all_mentions: Iterable[Mentions]) -> Mentions:
    roles: dict[str, None] = {}
    users: dict[str, None] = {}
    everyone = False
    for m in all_mentions:
        roles.update(dict.fromkeys(m.roles))
        users.update(dict.fromkeys(m.users))
        everyone = everyone or m.everyone
    return Mentions(roles=tuple(roles), users=tuple(users), everyone=everyone)


def _left(bucket: Bucket) -> int:
    """Requests left in *bucket*, a bucket not heard of yet taken as full."""
    return _FRESH if bucket.remaining is None else bucket.remaining


def _is_id(value: object) -> bool:
    return isinstance(value, str) and is_snowflake(value)


def _file_ids(message: object) -> tuple[str, ...] | None:
    """The ids of a message object's files (``attachments``); ``None`` when it says none."""
    files = message.get("attachments") if isinstance(message, dict) else None
    if not isinstance(files, list):
        return None
    ids = tuple(str(file.get("id")) for file in files if isinstance(file, dict))
    return ids if all(_is_id(file_id) for file_id in ids) else None


def _thread_gone(thread_id: str | None, status: int, body: str) -> bool:
    """Whether the answer to a post into the thread *thread_id* says the thread is gone (Unknown
    Channel, 10003: deleted), not the webhook."""
    return thread_id is not None and status == 404 and _error_code(body) == UNKNOWN_CHANNEL


def _error_code(body: str) -> int | None:
    """The ``code`` of Discord's JSON error body, if it is one."""
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) else None


def _error_text(body: str) -> str:
    """Discord's error body, compacted for a log line and the dead letters."""
    try:
        answer = json.loads(body)
    except ValueError:
        text = " ".join(body.split())
        return text[:200] + ("…" if len(text) > 200 else "")
    return json.dumps(answer, separators=(",", ":"))[:_ERROR_BODY_CHARS]


def scrub(text: str, url: WebhookUrl) -> str:
    """*text* with the webhook's token replaced, wherever aiohttp put it."""
    return text.replace(url.token, "***")


# ── the startup probe ───────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class ProbeResult:
    destination: str
    """The destination's name, with the webhook's number when it has several."""
    ok: bool
    dead: bool
    """Discord says the webhook does not exist or the token is wrong."""
    detail: str


async def probe_webhook(
    config: DestinationConfig, *, session: aiohttp.ClientSession, message: str | None = None
) -> list[ProbeResult]:
    """Check each webhook of a destination with Discord.

    Without *message*, Discord's GET, which validates the token and posts
    nothing; with it, a silent post of *message* (notifications suppressed)
    through the first webhook, and a GET for the others.
    """
    checks = [
        _probe(config, url, label, session=session, message=message if i == 0 else None)
        for i, (url, label) in enumerate(zip(config.urls, _labels(config), strict=True))
    ]
    return list(await asyncio.gather(*checks))


def _labels(config: DestinationConfig) -> list[str]:
    """How messages name each webhook: the destination, and the webhook's number when it has several."""
    count = len(config.urls)
    return [config.name if count == 1 else f"{config.name} (webhook {i} of {count})" for i in range(1, count + 1)]


async def _probe(
    config: DestinationConfig,
    url: WebhookUrl,
    label: str,
    *,
    session: aiohttp.ClientSession,
    message: str | None = None,
) -> ProbeResult:
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    proxy = config.proxy
    try:
        if message is None:
            request = session.get(url.reveal(), timeout=timeout, proxy=proxy)
        else:
            payload: dict[str, object] = {"content": message[:2000], "allowed_mentions": {"parse": []}}
            payload["flags"] = SUPPRESS_NOTIFICATIONS
            if config.username:
                payload["username"] = config.username
            if config.thread_name:
                payload["thread_name"] = "tailhook started"
            params = {"wait": "true"} | ({"thread_id": config.thread_id} if config.thread_id else {})
            request = session.post(url.reveal(), params=params, json=payload, timeout=timeout, proxy=proxy)
        async with request as response:
            body = await response.text(errors="replace")
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        detail = f"Discord unreachable: {scrub_credentials(scrub(describe(exc), url), config.proxy)}"
        return ProbeResult(label, ok=False, dead=False, detail=detail)
    if 200 <= status < 300:
        return ProbeResult(label, ok=True, dead=False, detail="webhook exists")
    detail = scrub(f"Discord answered {status}: {_error_text(body)}", url)
    return ProbeResult(label, ok=False, dead=status in DEAD_STATUSES, detail=detail)

"""A stand-in for Discord's webhook API: a real HTTP server on 127.0.0.1.

Sink tests talk to it in-process (`DiscordStandIn`); end-to-end tests that run
the daemon as a subprocess run it in a thread of its own
(`standin_in_thread`). Either way the code under test speaks real HTTP to
`http://127.0.0.1:{port}/api/webhooks/{id}/{token}` and gets the answers
Discord would give. What it imitates, after shared/DESIGN.md §4, Discord's
OpenAPI description (shared/discord/openapi.json), its webhook, threads and
uploading-files docs and its rate-limit docs:

- `POST /api[/v10]/webhooks/{id}/{token}` (`execute_webhook`): `?wait=true`
  answers 200 with a message object, otherwise 204 with no body;
  `?thread_id=` posts into a thread (the message's `channel_id`). The body
  is JSON, or multipart with files (tests/discord_body.py).
- `PATCH`, `GET` and `DELETE` on `.../messages/{message_id}`
  (`update_webhook_message`, `get_webhook_message`, `delete_webhook_message`),
  with `?thread_id=` for a message in a thread: edit, read or delete a
  message this webhook posted. An edit changes what it names and keeps the
  rest; its `attachments` list the files to keep and to add. A message that
  does not exist, was deleted (`delete_message`), belongs to another webhook,
  or is in another thread than `?thread_id=` says (none: the webhook's
  channel) answers 404 `Unknown Message` (10008).
- Forum (and media) channels, after Discord's execute-webhook and threads
  docs and its JSON error codes: a webhook named in `forum_webhooks` belongs
  to one. Its message needs `?thread_id=` (post into that thread) or a
  `thread_name` in the body (open a post: a new thread whose id is also the
  message's id, with the body's `applied_tags`); neither answers 400
  (220001), both 400 (220002). With `forum_requires_tag`, a new post without
  `applied_tags` answers 400 (40067). Any other webhook answers a
  `thread_name` with 400 (220003). These are checked after the body is found
  valid; a `thread_name` over 100 characters and more than 5 `applied_tags`
  are among the body's limits. An empty `thread_name` counts as none: the
  OpenAPI schema allows length 0, and what Discord does with it is not
  documented. A `?thread_id=` the stand-in has not seen is taken as a thread
  people opened: it is accepted and recorded (`threads`).
- `GET` on the webhook's path (`get_webhook_by_token`) answers the webhook
  object, with `FORUM_CHANNEL_ID` as the channel of a forum webhook.
- An unknown or deleted webhook answers 404 `Unknown Webhook` (10015), a wrong
  token 401 `Invalid Webhook Token` (50027); other methods 405, other paths
  404, both with Discord's generic `{"message": "404: Not Found", "code": 0}`.
- Bodies (tests/discord_rules.py): every limit of `LIMITS` is checked and all
  problems are answered at once as 400 `Invalid Form Body` (50035) with
  Discord's nested `errors` tree; a message with no content, embed or file
  answers 400 `Cannot send an empty message` (50006), and so does an edit
  that would leave one; JSON that does not parse 400 (50109); a file over
  `max_file_bytes` 413 `Request entity too large` (40005).
- Rate limits: one bucket per webhook id and route (posts, edits, reads,
  deletes), `bucket_limit` requests per `bucket_reset_after` seconds, the
  window starting at the first request after a reset. Every answer past the
  bucket carries `X-RateLimit-Limit`, `-Remaining`, `-Reset` (epoch seconds),
  `-Reset-After` (seconds) and `-Bucket`. As on Discord, the bucket hash names
  the route, not the webhook: it is the same for every webhook, whose buckets
  are still counted apart. Over the limit → 429 `{"message", "retry_after",
  "global": false}` with `Retry-After` (whole seconds, rounded up) and
  `X-RateLimit-Scope: user`.

What it accepted, tests read as `received` (posts), `edits`, `messages` (each
message as it stands now, by id) and `threads` (tests/discord_messages.py).

Faults are injected per POST (or, with `on="edit"`, per PATCH) from a queue,
in the order they were asked for (`fail_next`, `drop_next`, `global_429`,
`cloudflare_429`), then from `set_status`, which answers posts and edits
alike. An injected fault is answered before the bucket and does not use it
up: a test that asks for "the next POST fails" gets exactly that. A global
429 carries only `Retry-After`, `X-RateLimit-Global` and `X-RateLimit-Scope`,
and Cloudflare's only `Retry-After`, as in Discord's docs. `hold_answer_next`
stores the next posts as Discord would but holds their answers until
`release_answers`: a client killed meanwhile never learns they were stored.

The stand-in never logs: the access log is off, so the token in the URL
appears nowhere in a test's output.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import itertools
import math
import re
import ssl
import subprocess
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar

from aiohttp import web

from tests.discord_body import MAX_FILE_BYTES, Body, read_body
from tests.discord_messages import (
    CHANNEL_ID,
    WEBHOOK_NAME,
    Attachment,
    Message,
    Received,
    Thread,
    attachments_after,
    edited,
    is_empty,
    message_object,
)
from tests.discord_rules import (
    EMPTY_MESSAGE,
    INVALID_TOKEN,
    LIMITS,
    UNKNOWN_CHANNEL,
    UNKNOWN_MESSAGE,
    UNKNOWN_WEBHOOK,
    FormErrors,
    Limits,
    form_refusal,
    is_snowflake,
    parse_query,
    parse_thread_id,
    thread_refusal,
    validate_edit,
    validate_message,
)
from tests.in_thread import AsyncServer, LoopClient, serve_in_thread

__all__ = [
    "CHANNEL_ID",
    "DROPPED",
    "FORUM_CHANNEL_ID",
    "GUILD_ID",
    "LIMITS",
    "MAX_FILE_BYTES",
    "OTHER_TOKEN",
    "TOKEN",
    "TOKENS",
    "WEBHOOK_ID",
    "WEBHOOK_NAME",
    "Attachment",
    "DiscordStandIn",
    "Limits",
    "Message",
    "Received",
    "Thread",
    "ThreadedStandIn",
    "standin_in_thread",
    "tls_certificate",
    "validate_message",
]

WEBHOOK_ID = "112233445566778899"
TOKEN = "tok3n-" + "S3CR3T" * 10 + "-xyz"
OTHER_TOKEN = "0ther-" + "H1DD3N" * 10 + "-abc"
TOKENS = (TOKEN, OTHER_TOKEN)
"""Every token tests give webhooks: none may ever appear in what tailhook prints."""
FORUM_CHANNEL_ID = "223344556677889911"
GUILD_ID = "334455667788990011"

DROPPED = 0
"""The status recorded in `requests` for a connection closed without an answer."""

RATE_LIMITED_MESSAGE = "You are being rate limited."

_DEFAULT_FAULT_BODIES: Mapping[int, Mapping[str, Any]] = {
    401: INVALID_TOKEN,
    403: {"message": "Missing Permissions", "code": 50013},
    404: UNKNOWN_WEBHOOK,
    429: {"message": RATE_LIMITED_MESSAGE, "retry_after": 1.0, "global": False},
}
_DEFAULT_FAULT_HEADERS: Mapping[int, Mapping[str, str]] = {
    429: {"Retry-After": "1", "X-RateLimit-Scope": "user"},
}

Route = Literal["execute", "edit", "get_message", "delete_message"]
"""A route with a rate-limit bucket of its own."""
FaultRoute = Literal["execute", "edit"]
"""A route that faults can be injected into."""

# Discord's bucket hash does not include the top-level resource (the webhook),
# so every webhook's execute route shares one. The message routes have buckets
# of their own; their limits are not documented (Discord's headers say them),
# so the stand-in gives them the same defaults as posts.
_ROUTES: Mapping[Route, str] = {
    "execute": "POST /webhooks/{webhook_id}/{token}",
    "edit": "PATCH /webhooks/{webhook_id}/{token}/messages/{message_id}",
    "get_message": "GET /webhooks/{webhook_id}/{token}/messages/{message_id}",
    "delete_message": "DELETE /webhooks/{webhook_id}/{token}/messages/{message_id}",
}
_BUCKET_HASHES: Mapping[Route, str] = {
    route: hashlib.sha256(path.encode()).hexdigest()[:32] for route, path in _ROUTES.items()
}
_MAX_REQUEST_BYTES = 64 * 1024 * 1024
"""aiohttp's own limit on what it reads whole (1 MiB by default): a JSON body,
a form field. Raised well past Discord's 10 MiB so that the stand-in answers
as Discord would, not aiohttp; files are read in chunks, past any limit."""
_DISCORD_EPOCH_MS = 1_420_070_400_000
_CLOUDFLARE_PAGE = """<!DOCTYPE html>
<html><head><title>Access denied | discord.com used Cloudflare to restrict \
access</title></head>
<body><h1>Error 1015</h1><h2>You are being rate limited</h2>
<p>The owner of this website (discord.com) has banned you temporarily from
accessing this website.</p></body></html>
"""
_WEBHOOK_PATH = re.compile(r"^/api(?:/v10)?/webhooks/([^/]+)/")

_Refusal = tuple[int, Mapping[str, Any]]
"""An answer that refuses a request: (status, Discord's body)."""


# ---------------------------------------------------------------------------
# Rate limits.


@dataclass
class _Bucket:
    """A fixed window of `limit` requests that starts at the first request."""

    limit: int
    reset_after: float
    bucket_hash: str
    used: int = 0
    resets_at: float = 0.0  # time.monotonic()

    def take(self, now: float) -> bool:
        """Use up one request; False when the window has none left."""
        if now >= self.resets_at:
            self.used, self.resets_at = 0, now + self.reset_after
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def seconds_left(self, now: float) -> float:
        """Until the window resets, rounded up to the millisecond."""
        left = self.resets_at - now if now < self.resets_at else self.reset_after
        return math.ceil(left * 1000) / 1000

    def headers(self, now: float) -> dict[str, str]:
        remaining = self.limit - self.used if now < self.resets_at else self.limit
        left = self.seconds_left(now)
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{time.time() + left:.3f}",
            "X-RateLimit-Reset-After": f"{left:.3f}",
            "X-RateLimit-Bucket": self.bucket_hash,
        }


def _rate_limited(retry_after: float, headers: Mapping[str, str], *, is_global: bool) -> web.Response:
    body = {"message": RATE_LIMITED_MESSAGE, "retry_after": retry_after, "global": is_global}
    return _json(429, body, {**headers, "Retry-After": str(math.ceil(retry_after))})


def _json(status: int, body: Mapping[str, Any], headers: Mapping[str, str]) -> web.Response:
    return web.json_response(dict(body), status=status, headers=dict(headers))


def _now() -> str:
    return datetime.now(UTC).isoformat()


# ---------------------------------------------------------------------------
# The server.

_Answer = Callable[[web.Request, str], web.Response]


class DiscordStandIn(AsyncServer):
    """Discord's webhook API on 127.0.0.1, for one test (see the module doc)."""

    def __init__(
        self,
        *,
        bucket_limit: int = 5,
        bucket_reset_after: float = 2.0,
        webhooks: Mapping[str, str] | None = None,
        forum_webhooks: Collection[str] = (),
        forum_requires_tag: bool = False,
        max_file_bytes: int = MAX_FILE_BYTES,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`webhooks` maps each existing webhook id to its token; by default
        `{WEBHOOK_ID: TOKEN}`. The ids in `forum_webhooks` (each one of
        `webhooks`) are webhooks of a forum channel, the others of a text
        channel; with `forum_requires_tag`, that forum requires a tag on each
        new post. `bucket_reset_after` is in seconds. A file over
        `max_file_bytes` (bytes; Discord's 10 MiB by default) is answered
        413. With `tls`, it speaks https (see `tls_certificate`)."""
        if bucket_limit < 1 or bucket_reset_after <= 0:
            raise ValueError("bucket_limit must be >= 1 and bucket_reset_after > 0")
        self.bucket_limit = bucket_limit
        self.bucket_reset_after = bucket_reset_after
        self.webhooks = dict(webhooks) if webhooks is not None else {WEBHOOK_ID: TOKEN}
        self.forum_webhooks = frozenset(forum_webhooks)
        if not self.forum_webhooks <= self.webhooks.keys():
            raise ValueError("every id of forum_webhooks must be one of webhooks")
        self.forum_requires_tag = forum_requires_tag
        self.max_file_bytes = max_file_bytes
        self.received: list[Received] = []
        """Every post accepted, in order."""
        self.edits: list[Received] = []
        """Every edit accepted, in order; `message_id` says which message."""
        self.messages: dict[str, Message] = {}
        """Every message not deleted, as it stands now, by id, in the order posted."""
        self.threads: dict[str, Thread] = {}
        """Every thread a message was posted into, by id."""
        self.requests: list[tuple[str, str, int]] = []
        self._deleted: set[str] = set()
        self._deleted_threads: set[str] = set()
        self._holding = 0
        self._released: asyncio.Event | None = None
        self._faults: dict[str, deque[_Answer]] = {"execute": deque(), "edit": deque()}
        self._status: int | None = None
        self._buckets: dict[tuple[Route, str], _Bucket] = {}
        self._sequence = itertools.count()
        self._changed = asyncio.Condition()
        self._listeners: list[Callable[[], None]] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._tls = tls

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Listen on an ephemeral port of 127.0.0.1."""
        app = web.Application(middlewares=[self._record], client_max_size=_MAX_REQUEST_BYTES)
        for prefix in ("/api", "/api/v10"):
            webhook = app.router.add_resource(prefix + "/webhooks/{webhook_id}/{token}")
            webhook.add_route("POST", self._execute_webhook)
            webhook.add_route("GET", self._get_webhook)
            message = app.router.add_resource(prefix + "/webhooks/{webhook_id}/{token}/messages/{message_id}")
            message.add_route("PATCH", self._edit_message)
            message.add_route("GET", self._get_message)
            message.add_route("DELETE", self._delete_message)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._tls).start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._released is not None:
            self._released.set()  # answer what was held, so the server can stop
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the stand-in is not started")
        return self._port

    def url(self, webhook_id: str = WEBHOOK_ID, token: str = TOKEN) -> str:
        scheme = "https" if self._tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/api/webhooks/{webhook_id}/{token}"

    # -- what tests ask for -------------------------------------------------

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        body: Mapping[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
        on: FaultRoute = "execute",
    ) -> None:
        """Answer the next `count` POSTs (or, `on="edit"`, PATCHes of a
        message) with `status`, without looking at them.

        The body defaults to Discord's for that status (`{"message": "500:
        Internal Server Error", "code": 0}`, 404 Unknown Webhook, ...); a str
        body is sent as text/html. `headers` are added to the rate-limit ones.
        """
        answer = self._fault_answer(status, body, headers or {}, on)
        self._faults[on].extend([answer] * count)

    def hold_answer_next(self, count: int = 1) -> None:
        """Store the next `count` POSTs as Discord would, but answer them only once
        `release_answers()` is called: a client killed meanwhile never learns they were stored."""
        self._holding += count

    def release_answers(self) -> None:
        if self._released is not None:
            self._released.set()

    def drop_next(self, count: int = 1, *, on: FaultRoute = "execute") -> None:
        """Close the connection of the next `count` POSTs (or PATCHes) without answering."""
        self._faults[on].extend([self._drop] * count)

    def set_status(self, status: int | None) -> None:
        """Answer every POST and PATCH with `status` (Discord's body) until set to None."""
        self._status = status

    def global_429(self, retry_after: float, *, on: FaultRoute = "execute") -> None:
        """Answer the next POST (or PATCH) with a global rate limit of `retry_after` seconds."""

        def answer(request: web.Request, webhook_id: str) -> web.Response:
            scope = {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}
            return _rate_limited(retry_after, scope, is_global=True)

        self._faults[on].append(answer)

    def cloudflare_429(self, *, retry_after: int = 1, on: FaultRoute = "execute") -> None:
        """Answer the next POST (or PATCH) as Cloudflare does when it bans an IP:
        429, an HTML page, `Retry-After` (whole seconds) and no X-RateLimit headers."""

        def answer(request: web.Request, webhook_id: str) -> web.Response:
            headers = {"Retry-After": str(retry_after), "Server": "cloudflare"}
            return web.Response(status=429, text=_CLOUDFLARE_PAGE, content_type="text/html", headers=headers)

        self._faults[on].append(answer)

    def delete_webhook(self, webhook_id: str) -> None:
        """From now on, answer this webhook with 404 Unknown Webhook."""
        self._deleted.add(webhook_id)

    def delete_message(self, message_id: str) -> None:
        """Delete a message, as a moderator would: from now on it is 404 Unknown Message."""
        if message_id not in self.messages:
            raise KeyError(f"the stand-in has no message {message_id}")
        del self.messages[message_id]

    def delete_thread(self, thread_id: str) -> None:
        """Delete a thread (a forum post) and its messages, as a moderator would: from now on a post
        into it or an edit in it is 404 Unknown Channel."""
        if thread_id not in self.threads:
            raise KeyError(f"the stand-in has no thread {thread_id}")
        del self.threads[thread_id]
        self._deleted_threads.add(thread_id)
        for message in self.messages_in(thread_id):
            del self.messages[message.id]

    def messages_in(self, channel_id: str) -> list[Message]:
        """The messages of a channel or thread as they stand now, in the order posted."""
        return [message for message in self.messages.values() if message.channel_id == channel_id]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until `count` messages were accepted; AssertionError after
        `timeout` seconds, saying what did arrive."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(self.received) >= count)
        except TimeoutError:
            raise AssertionError(self.describe_shortfall(count, timeout)) from None
        return list(self.received)

    async def wait_for_edits(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until `count` edits were accepted; AssertionError after `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(self.edits) >= count)
        except TimeoutError:
            raise AssertionError(self.describe_shortfall(count, timeout, what="edit")) from None
        return list(self.edits)

    def describe_shortfall(self, count: int, timeout: float, *, what: Literal["message", "edit"] = "message") -> str:
        """What arrived, for a failed wait: never the token."""
        arrived = [_summary(r.payload) for r in (self.received if what == "message" else self.edits)]
        return (
            f"expected {count} {what}(s) within {timeout}s, {len(arrived)} accepted: "
            f"{arrived}; every request (method, webhook id, status): {self.requests}"
        )

    # -- request handling ---------------------------------------------------

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Middleware: answer routing errors like Discord and log every request."""
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            body = {"message": f"{exc.status}: {exc.reason}", "code": 0}
            response = _json(exc.status, body, {})
        status = DROPPED if isinstance(response, _NoAnswer) else response.status
        on_webhook = _WEBHOOK_PATH.match(request.path)
        self.requests.append((request.method, on_webhook[1] if on_webhook else "", status))
        await self._notify()
        return response

    def _admit(self, request: web.Request, route: Route, webhook_id: str) -> tuple[web.Response | None, dict[str, str]]:
        """An injected fault or a 429 for this request, or None and the
        bucket's headers for the answer once it used up a request."""
        fault = self._next_fault(route)
        if fault is not None:
            return fault(request, webhook_id), {}
        now = time.monotonic()
        bucket = self._bucket(route, webhook_id)
        if not bucket.take(now):
            headers = {**bucket.headers(now), "X-RateLimit-Scope": "user"}
            return _rate_limited(bucket.seconds_left(now), headers, is_global=False), {}
        return None, bucket.headers(now)

    def _bucket(self, route: Route, webhook_id: str) -> _Bucket:
        fresh = _Bucket(self.bucket_limit, self.bucket_reset_after, _BUCKET_HASHES[route])
        return self._buckets.setdefault((route, webhook_id), fresh)

    # -- posts --------------------------------------------------------------

    async def _execute_webhook(self, request: web.Request) -> web.Response:
        webhook_id = request.match_info["webhook_id"]
        body = await read_body(request, max_file_bytes=self.max_file_bytes)
        refused, headers = self._admit(request, "execute", webhook_id)
        if refused is not None:
            return refused
        refusal = self._post_refusal(request, webhook_id, body)
        if refusal is not None:
            return _json(*refusal, headers)
        wait, thread_id, _ = parse_query(request.query)
        message = self._post(request, webhook_id, body, thread_id)
        if self._holding:
            self._holding -= 1
            if self._released is None:
                self._released = asyncio.Event()
            await self._notify()  # stored: a test waiting for it goes on while the answer waits
            await self._released.wait()
        if not wait:
            return web.Response(status=204, headers=headers)
        return _json(200, message_object(message), headers)

    def _post_refusal(self, request: web.Request, webhook_id: str, body: Body) -> _Refusal | None:
        """Discord's answer when it refuses this post, in the order it checks."""
        refusal = self._refusal(webhook_id, request.match_info["token"])
        if refusal is not None:
            return refusal
        _, thread_id, query_errors = parse_query(request.query)
        if query_errors:
            return 400, form_refusal(query_errors)
        if body.refusal is not None:
            return body.refusal
        problem = validate_message(body.payload, files=body.files)
        if problem is None:  # so the payload is a JSON object
            payload = body.message
            problem = thread_refusal(
                forum=webhook_id in self.forum_webhooks,
                thread_id=thread_id,
                thread_name=payload.get("thread_name") or None,
                tagged=bool(payload.get("applied_tags")),
                tag_required=self.forum_requires_tag,
            )
        if problem is None and thread_id in self._deleted_threads:
            return 404, UNKNOWN_CHANNEL
        return None if problem is None else (400, problem)

    def _post(self, request: web.Request, webhook_id: str, body: Body, thread_id: str | None) -> Message:
        """Store an accepted post; return the message it made."""
        payload = body.message
        thread_name = payload.get("thread_name") or None
        message_id = self._snowflake()
        # A thread created with a message shares the message's id.
        channel_id = thread_id or (message_id if thread_name else CHANNEL_ID)
        position = None
        if channel_id != CHANNEL_ID:
            position = self._count_into_thread(webhook_id, channel_id, thread_name, payload.get("applied_tags"))
        attachments = attachments_after(payload.get("attachments") or [], body.uploads, (), self._snowflake)
        message = Message(
            id=message_id,
            webhook_id=webhook_id,
            channel_id=channel_id,
            content=payload.get("content") or "",
            embeds=tuple(payload.get("embeds") or ()),
            attachments=attachments,
            timestamp=_now(),
            username=payload.get("username") or None,
            flags=payload.get("flags") or 0,
            tts=bool(payload.get("tts")),
            position=position,
            allowed_mentions=payload.get("allowed_mentions"),
        )
        self.messages[message_id] = message
        self.received.append(self._received(request, payload, message, thread_name, attachments))
        return message

    def _count_into_thread(
        self, webhook_id: str, thread_id: str, thread_name: str | None, tags: list[Any] | None
    ) -> int:
        """Count a message into its thread, opening the thread if need be;
        return the message's position in it."""
        thread = self.threads.get(thread_id)
        if thread is None:
            applied = tuple(str(tag) for tag in tags or ()) if thread_name else ()
            thread = Thread(thread_id, webhook_id, thread_name, applied)
        self.threads[thread_id] = dataclasses.replace(thread, messages_sent=thread.messages_sent + 1)
        return thread.messages_sent

    # -- edits, reads, deletes ----------------------------------------------

    async def _edit_message(self, request: web.Request) -> web.Response:
        webhook_id = request.match_info["webhook_id"]
        body = await read_body(request, max_file_bytes=self.max_file_bytes)
        refused, headers = self._admit(request, "edit", webhook_id)
        if refused is not None:
            return refused
        found = self._lookup(request, webhook_id)
        if not isinstance(found, Message):
            return _json(*found, headers)
        refusal = body.refusal or self._edit_refusal(found, body)
        if refusal is not None:
            return _json(*refusal, headers)
        message = self._edited(found, body)
        if is_empty(message):
            return _json(400, EMPTY_MESSAGE, headers)
        self.messages[message.id] = message
        old = {attachment.id for attachment in found.attachments}
        new_files = tuple(attachment for attachment in message.attachments if attachment.id not in old)
        self.edits.append(self._received(request, body.message, message, None, new_files))
        return _json(200, message_object(message), headers)

    def _edit_refusal(self, message: Message, body: Body) -> _Refusal | None:
        kept = [attachment.id for attachment in message.attachments]
        problem = validate_edit(body.payload, files=body.files, kept=kept)
        return None if problem is None else (400, problem)

    def _edited(self, message: Message, body: Body) -> Message:
        payload = body.message
        attachments = message.attachments
        if "attachments" in payload:
            entries = payload["attachments"] or []
            attachments = attachments_after(entries, body.uploads, message.attachments, self._snowflake)
        return edited(message, payload, attachments, _now())

    async def _get_message(self, request: web.Request) -> web.Response:
        webhook_id = request.match_info["webhook_id"]
        refused, headers = self._admit(request, "get_message", webhook_id)
        if refused is not None:
            return refused
        found = self._lookup(request, webhook_id)
        if not isinstance(found, Message):
            return _json(*found, headers)
        return _json(200, message_object(found), headers)

    async def _delete_message(self, request: web.Request) -> web.Response:
        webhook_id = request.match_info["webhook_id"]
        refused, headers = self._admit(request, "delete_message", webhook_id)
        if refused is not None:
            return refused
        found = self._lookup(request, webhook_id)
        if not isinstance(found, Message):
            return _json(*found, headers)
        del self.messages[found.id]
        return web.Response(status=204, headers=headers)

    def _lookup(self, request: web.Request, webhook_id: str) -> Message | _Refusal:
        """The message a request on `.../messages/{message_id}` names, or
        Discord's answer when there is none for it to see."""
        refusal = self._refusal(webhook_id, request.match_info["token"])
        if refusal is not None:
            return refusal
        message_id = request.match_info["message_id"]
        errors = FormErrors()
        thread_id = parse_thread_id(request.query, errors)
        if not is_snowflake(message_id):
            errors.add(("message_id",), "NUMBER_TYPE_COERCE", f'Value "{message_id}" is not snowflake.')
        if errors:
            return 400, form_refusal(errors)
        if thread_id in self._deleted_threads:
            return 404, UNKNOWN_CHANNEL
        message = self.messages.get(message_id)
        if message is None or message.webhook_id != webhook_id or message.channel_id != (thread_id or CHANNEL_ID):
            return 404, UNKNOWN_MESSAGE
        return message

    # -- webhooks -----------------------------------------------------------

    async def _get_webhook(self, request: web.Request) -> web.Response:
        webhook_id, token = request.match_info["webhook_id"], request.match_info["token"]
        refusal = self._refusal(webhook_id, token)
        if refusal is not None:
            return _json(*refusal, {})
        webhook = {
            "application_id": None,
            "avatar": None,
            "channel_id": FORUM_CHANNEL_ID if webhook_id in self.forum_webhooks else CHANNEL_ID,
            "guild_id": GUILD_ID,
            "id": webhook_id,
            "name": WEBHOOK_NAME,
            "type": 1,
            "token": token,
            "url": f"https://discord.com/api/webhooks/{webhook_id}/{token}",
        }
        return _json(200, webhook, {})

    def _refusal(self, webhook_id: str, token: str) -> _Refusal | None:
        if webhook_id not in self.webhooks or webhook_id in self._deleted:
            return 404, UNKNOWN_WEBHOOK
        if token != self.webhooks[webhook_id]:
            return 401, INVALID_TOKEN
        return None

    def _received(
        self,
        request: web.Request,
        payload: dict[str, Any],
        message: Message,
        thread_name: str | None,
        files: tuple[Attachment, ...],
    ) -> Received:
        return Received(
            webhook_id=message.webhook_id,
            payload=payload,
            query=dict(request.query),
            headers=dict(request.headers),
            time=time.monotonic(),
            channel_id=message.channel_id,
            thread_name=thread_name,
            message_id=message.id,
            files=files,
        )

    def _snowflake(self) -> str:
        milliseconds = int(time.time() * 1000) - _DISCORD_EPOCH_MS
        return str(milliseconds << 22 | next(self._sequence) % (1 << 22))

    # -- faults -------------------------------------------------------------

    def _next_fault(self, route: Route) -> _Answer | None:
        if route not in self._faults:  # reads and deletes take no faults
            return None
        if self._faults[route]:
            return self._faults[route].popleft()
        if self._status is not None:
            return self._fault_answer(self._status, None, {}, route)
        return None

    def _fault_answer(
        self, status: int, body: Mapping[str, Any] | str | None, headers: Mapping[str, str], route: Route
    ) -> _Answer:
        # HTTPStatus() refuses an unknown status here, in the test that asked for it.
        default = {"message": f"{status}: {HTTPStatus(status).phrase}", "code": 0}

        def answer(request: web.Request, webhook_id: str) -> web.Response:
            all_headers = {
                **self._peek_headers(route, webhook_id),
                **_DEFAULT_FAULT_HEADERS.get(status, {}),
                **headers,
            }
            if status == 204:
                return web.Response(status=204, headers=all_headers)
            if isinstance(body, str):
                return web.Response(status=status, text=body, content_type="text/html", headers=all_headers)
            return _json(status, body or _DEFAULT_FAULT_BODIES.get(status, default), all_headers)

        return answer

    def _peek_headers(self, route: Route, webhook_id: str) -> dict[str, str]:
        """The bucket's headers as they stand, without using a request up."""
        bucket = self._buckets.get((route, webhook_id))
        if bucket is None:
            bucket = _Bucket(self.bucket_limit, self.bucket_reset_after, _BUCKET_HASHES[route])
        return bucket.headers(time.monotonic())

    def _drop(self, request: web.Request, webhook_id: str) -> web.Response:
        if request.transport is not None:
            request.transport.abort()
        return _NoAnswer()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
        for listener in self._listeners:
            listener()


class _NoAnswer(web.Response):
    """What a dropped request "answers": never sent, the connection is gone."""


def _summary(payload: Mapping[str, Any]) -> str:
    """A short description of a message for assertion output."""
    embeds = payload.get("embeds") or [{}]
    first = embeds[0] if isinstance(embeds[0], dict) else {}
    text = payload.get("content") or first.get("title") or first.get("description") or ""
    return f"{str(text)[:60]!r} ({len(payload.get('embeds') or [])} embed(s))"


# ---------------------------------------------------------------------------
# In a thread, for synchronous tests.

_P = ParamSpec("_P")
_T = TypeVar("_T")


class ThreadedStandIn(LoopClient):
    """A `DiscordStandIn` running on its own event loop in another thread.

    Every method may be called from the test's thread. The fault methods
    return once the stand-in has taken them in, so the next request sees them.
    `received`, `edits` and `requests` are snapshots, copied in the
    stand-in's thread after each request; `messages` and `threads` are
    copied there when asked for.
    """

    def __init__(self, standin: DiscordStandIn, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._standin = standin
        self._changed = threading.Condition()
        self._received: list[Received] = []
        self._edits: list[Received] = []
        self._requests: list[tuple[str, str, int]] = []
        standin._listeners.append(self._on_change)

    @property
    def port(self) -> int:
        return self._standin.port

    def url(self, webhook_id: str = WEBHOOK_ID, token: str = TOKEN) -> str:
        return self._standin.url(webhook_id, token)

    @property
    def received(self) -> list[Received]:
        with self._changed:
            return list(self._received)

    @property
    def edits(self) -> list[Received]:
        with self._changed:
            return list(self._edits)

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        with self._changed:
            return list(self._requests)

    @property
    def messages(self) -> dict[str, Message]:
        """Every message not deleted, as it stands now, by id."""
        return self._call(dict, self._standin.messages)

    @property
    def threads(self) -> dict[str, Thread]:
        return self._call(dict, self._standin.threads)

    def messages_in(self, channel_id: str) -> list[Message]:
        return self._call(self._standin.messages_in, channel_id)

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        body: Mapping[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
        on: FaultRoute = "execute",
    ) -> None:
        self._call(self._standin.fail_next, status, count, body=body, headers=headers, on=on)

    def hold_answer_next(self, count: int = 1) -> None:
        self._call(self._standin.hold_answer_next, count)

    def release_answers(self) -> None:
        self._call(self._standin.release_answers)

    def drop_next(self, count: int = 1, *, on: FaultRoute = "execute") -> None:
        self._call(self._standin.drop_next, count, on=on)

    def set_status(self, status: int | None) -> None:
        self._call(self._standin.set_status, status)

    def global_429(self, retry_after: float, *, on: FaultRoute = "execute") -> None:
        self._call(self._standin.global_429, retry_after, on=on)

    def cloudflare_429(self, *, retry_after: int = 1, on: FaultRoute = "execute") -> None:
        self._call(self._standin.cloudflare_429, retry_after=retry_after, on=on)

    def delete_webhook(self, webhook_id: str) -> None:
        self._call(self._standin.delete_webhook, webhook_id)

    def delete_message(self, message_id: str) -> None:
        self._call(self._standin.delete_message, message_id)

    def delete_thread(self, thread_id: str) -> None:
        self._call(self._standin.delete_thread, thread_id)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until `count` messages were accepted; AssertionError after
        `timeout` seconds, saying what did arrive."""
        with self._changed:
            if self._changed.wait_for(lambda: len(self._received) >= count, timeout):
                return list(self._received)
        raise AssertionError(self._call(self._standin.describe_shortfall, count, timeout))

    def wait_for_edits(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until `count` edits were accepted; AssertionError after `timeout` seconds."""
        with self._changed:
            if self._changed.wait_for(lambda: len(self._edits) >= count, timeout):
                return list(self._edits)
        raise AssertionError(self._call(self._standin.describe_shortfall, count, timeout, what="edit"))

    @property
    def embeds(self) -> list[dict[str, Any]]:
        """Every embed accepted so far, in the order they arrived, across messages."""
        return [embed for message in self.received for embed in message.payload.get("embeds", [])]

    def wait_for_embeds(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until `count` embeds were accepted, however they were batched
        into messages; AssertionError after `timeout` seconds."""

        def enough() -> bool:
            return sum(len(m.payload.get("embeds", [])) for m in self._received) >= count

        with self._changed:
            if self._changed.wait_for(enough, timeout):
                return [embed for message in self._received for embed in message.payload.get("embeds", [])]
        raise AssertionError(
            f"expected {count} embed(s) within {timeout}s, {len(self.embeds)} accepted: "
            f"{[embed.get('title') for embed in self.embeds][:20]}; requests: {self.requests[-20:]}"
        )

    def _on_change(self) -> None:
        """Called in the stand-in's thread after each request."""
        with self._changed:
            self._received = list(self._standin.received)
            self._edits = list(self._standin.edits)
            self._requests = list(self._standin.requests)
            self._changed.notify_all()

    def _call(self, function: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run `function` in the stand-in's thread and return its result."""

        async def call() -> _T:
            return function(*args, **kwargs)

        return self._run(call())


def tls_certificate(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A self-signed certificate for 127.0.0.1, made by `openssl`: the server's
    context, and the certificate's file for a client to trust (`SSL_CERT_FILE`)."""
    cert, key = directory / "standin.crt", directory / "standin.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, cert


def standin_in_thread(**kwargs: Any) -> contextlib.AbstractContextManager[ThreadedStandIn]:
    """Run a `DiscordStandIn(**kwargs)` in a thread with its own event loop."""
    standin = DiscordStandIn(**kwargs)
    return serve_in_thread(standin, lambda loop: ThreadedStandIn(standin, loop), "discord-standin")


def numbered_titles(standin: ThreadedStandIn, pattern: re.Pattern[str]) -> collections.Counter[int]:
    """How often each number (*pattern*'s first group, searched in embed titles) arrived."""
    found: collections.Counter[int] = collections.Counter()
    for message in standin.received:
        for embed in message.payload.get("embeds", []):
            match = pattern.search(embed.get("title", ""))
            if match:
                found[int(match.group(1))] += 1
    return found

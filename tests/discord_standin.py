"""A stand-in for Discord's webhook API: a real HTTP server on 127.0.0.1.

Sink tests talk to it in-process (`DiscordStandIn`); end-to-end tests that run
the daemon as a subprocess run it in a thread of its own
(`standin_in_thread`). Either way the code under test speaks real HTTP to
`http://127.0.0.1:{port}/api/webhooks/{id}/{token}` and gets the answers
Discord would give. What it imitates, after shared/DESIGN.md §4, Discord's
OpenAPI description (shared/discord/openapi.json) and its rate-limit docs:

- `POST /api[/v10]/webhooks/{id}/{token}` (`execute_webhook`): `?wait=true`
  answers 200 with a message object, otherwise 204 with no body;
  `?thread_id=` posts into a thread (the message's `channel_id`).
- Forum (and media) channels, after Discord's execute-webhook and threads
  docs and its JSON error codes: a webhook named in `forum_webhooks` belongs
  to one. Its message needs `?thread_id=` (post into that thread) or a
  `thread_name` in the body (create a post: a new thread whose id is also the
  message's id); neither answers 400 (220001), both 400 (220002). Any other
  webhook answers a `thread_name` with 400 (220003). These are checked after
  the body is found valid; a `thread_name` over 100 characters is one of the
  body's limits. An empty one counts as none: the OpenAPI schema allows
  length 0, and what Discord does with it is not documented.
- `GET` on the same path (`get_webhook_by_token`) answers the webhook object,
  with `FORUM_CHANNEL_ID` as the channel of a forum webhook.
- An unknown or deleted webhook answers 404 `Unknown Webhook` (10015), a wrong
  token 401 `Invalid Webhook Token` (50027); other methods 405, other paths
  404, both with Discord's generic `{"message": "404: Not Found", "code": 0}`.
- The body must be JSON (`Content-Type: application/json`); a body that does
  not parse answers 400 (50109); a body of another content type is ignored, as
  Discord does, so it becomes an empty message. Every limit of `LIMITS` is
  checked and all problems are answered at once as 400 `Invalid Form Body`
  (50035) with Discord's nested `errors` tree; a message with neither content
  nor embeds answers 400 `Cannot send an empty message` (50006).
- Rate limits: one bucket per webhook id, `bucket_limit` requests per
  `bucket_reset_after` seconds, the window starting at the first request after
  a reset. Every answer past the bucket carries `X-RateLimit-Limit`,
  `-Remaining`, `-Reset` (epoch seconds), `-Reset-After` (seconds) and
  `-Bucket`. As on Discord, the bucket hash names the route, not the webhook:
  it is the same for every webhook, whose buckets are still counted apart.
  Over the limit → 429 `{"message", "retry_after", "global": false}` with
  `Retry-After` (whole seconds, rounded up) and `X-RateLimit-Scope: user`.

Faults are injected per POST from a queue, in the order they were asked for
(`fail_next`, `drop_next`, `global_429`, `cloudflare_429`), then from
`set_status`. An injected fault is answered before the bucket and does not use
it up: a test that asks for "the next POST fails" gets exactly that. A global
429 carries only `Retry-After`, `X-RateLimit-Global` and `X-RateLimit-Scope`,
and Cloudflare's only `Retry-After`, as in Discord's docs.

The stand-in never logs: the access log is off, so the token in the URL
appears nowhere in a test's output.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import itertools
import json
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
from typing import Any, ParamSpec, TypeVar

from aiohttp import web

from tests.in_thread import AsyncServer, LoopClient, serve_in_thread

__all__ = [
    "CHANNEL_ID",
    "DROPPED",
    "FORUM_CHANNEL_ID",
    "GUILD_ID",
    "LIMITS",
    "OTHER_TOKEN",
    "TOKEN",
    "TOKENS",
    "WEBHOOK_ID",
    "WEBHOOK_NAME",
    "DiscordStandIn",
    "Limits",
    "Received",
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
CHANNEL_ID = "223344556677889900"
FORUM_CHANNEL_ID = "223344556677889911"
GUILD_ID = "334455667788990011"
WEBHOOK_NAME = "tailhook stand-in"

DROPPED = 0
"""The status recorded in `requests` for a connection closed without an answer."""


@dataclass(frozen=True)
class Limits:
    """Discord's limits on an execute-webhook body, in characters or items.

    Written out here, not imported from tailhook: the stand-in plays Discord, and
    a wrong limit in tailhook must meet the real one here, not a copy of itself.
    """

    content: int = 2000
    embeds: int = 10
    title: int = 256
    description: int = 4096
    fields: int = 25
    field_name: int = 256
    field_value: int = 1024
    footer_text: int = 2048
    author_name: int = 256
    embed_total: int = 6000
    """title + description + field names and values + footer text + author
    name, summed over every embed of the message."""
    username_min: int = 1
    username_max: int = 80
    color_max: int = 0xFFFFFF
    url: int = 2048
    mention_ids: int = 100
    """`allowed_mentions.users` and `.roles`, each."""
    thread_name: int = 100


LIMITS = Limits()

UNKNOWN_WEBHOOK: Mapping[str, Any] = {"message": "Unknown Webhook", "code": 10015}
INVALID_TOKEN: Mapping[str, Any] = {"message": "Invalid Webhook Token", "code": 50027}
INVALID_JSON: Mapping[str, Any] = {
    "message": "The request body contains invalid JSON.",
    "code": 50109,
}
EMPTY_MESSAGE: Mapping[str, Any] = {
    "message": "Cannot send an empty message",
    "code": 50006,
}
FORUM_NEEDS_THREAD: Mapping[str, Any] = {
    "message": "Webhooks posted to forum channels must have a thread_name or thread_id",
    "code": 220001,
}
FORUM_THREAD_NAME_AND_ID: Mapping[str, Any] = {
    "message": "Webhooks posted to forum channels cannot have both a thread_name and thread_id",
    "code": 220002,
}
THREAD_NAME_OUTSIDE_FORUM: Mapping[str, Any] = {
    "message": "Webhooks can only create threads in forum channels",
    "code": 220003,
}
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

# Discord's bucket hash does not include the top-level resource (the webhook),
# so every webhook's execute route shares one.
_BUCKET_HASH = hashlib.sha256(b"POST /webhooks/{webhook_id}/{token}").hexdigest()[:32]
_DISCORD_EPOCH_MS = 1_420_070_400_000
_SNOWFLAKE = re.compile(r"^(0|[1-9][0-9]*)$")
_MENTION_TYPES = ("users", "roles", "everyone")
_CLOUDFLARE_PAGE = """<!DOCTYPE html>
<html><head><title>Access denied | discord.com used Cloudflare to restrict \
access</title></head>
<body><h1>Error 1015</h1><h2>You are being rate limited</h2>
<p>The owner of this website (discord.com) has banned you temporarily from
accessing this website.</p></body></html>
"""
_WEBHOOK_PATH = re.compile(r"^/api(?:/v10)?/webhooks/([^/]+)/")


@dataclass
class Received:
    """One message the stand-in accepted (answered 2xx)."""

    webhook_id: str
    payload: dict[str, Any]
    query: dict[str, str]
    headers: dict[str, str]
    time: float
    """`time.monotonic()` when it arrived."""
    channel_id: str = CHANNEL_ID
    """Where it landed: the webhook's channel, the `?thread_id=` thread, or
    the thread its `thread_name` created (a new snowflake)."""
    thread_name: str | None = None
    """The name of the thread it created in a forum channel; None when it
    created none."""


# ---------------------------------------------------------------------------
# Validation: what Discord answers 400 to.


_Path = tuple[str | int, ...]


class _FormErrors:
    """Discord's nested error tree, e.g. `{"embeds": {"0": {"title": {"_errors":
    [{"code": ..., "message": ...}]}}}}`; list indexes become string keys."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}

    def add(self, path: _Path, code: str, message: str) -> None:
        node = self.tree
        for key in path:
            node = node.setdefault(str(key), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def under(self, key: str) -> bool:
        return key in self.tree

    def __bool__(self) -> bool:
        return bool(self.tree)


def _too_long(limit: int) -> str:
    return f"Must be {limit} or fewer in length."


def _check_string(value: object, path: _Path, errors: _FormErrors, *, limit: int, required: bool = False) -> int:
    """Check one string field; return the characters it adds to the embed total."""
    if value is None or value == "":
        if required:
            errors.add(path, "BASE_TYPE_REQUIRED", "This field is required")
        return 0
    if not isinstance(value, str):
        errors.add(path, "BASE_TYPE_STRING", f'Could not interpret "{value}" as string.')
        return 0
    if len(value) > limit:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", _too_long(limit))
    return len(value)


def _check_object(value: object, path: _Path, errors: _FormErrors, *, nullable: bool = True) -> dict[str, Any]:
    """Return value if it is a JSON object; otherwise record why and return {}."""
    if value is None and nullable:
        return {}
    if not isinstance(value, dict):
        errors.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return {}
    return value


def _check_list(value: object, path: _Path, errors: _FormErrors, *, limit: int | None = None) -> list[Any]:
    """Return value if it is a list within limit; otherwise record why and return []."""
    if value is None:
        return []
    if not isinstance(value, list):
        errors.add(path, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
        return []
    if limit is not None and len(value) > limit:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", _too_long(limit))
        return []
    return value


def _check_color(value: object, path: _Path, errors: _FormErrors) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        errors.add(path, "NUMBER_TYPE_COERCE", f'Value "{value}" is not int.')
    elif value < 0:
        errors.add(path, "NUMBER_TYPE_MIN", "int value should be greater than or equal to 0.")
    elif value > LIMITS.color_max:
        errors.add(
            path,
            "NUMBER_TYPE_MAX",
            f"int value should be less than or equal to {LIMITS.color_max}.",
        )


def _check_timestamp(value: object, path: _Path, errors: _FormErrors) -> None:
    if value is None:
        return
    try:
        datetime.fromisoformat(str(value))
    except ValueError:
        errors.add(path, "DATE_TIME_TYPE_PARSE", f"Could not parse {value}. Should be ISO8601.")


def _check_field(value: object, path: _Path, errors: _FormErrors) -> int:
    """Check one embed field; return the characters it adds to the 6000 total."""
    if not isinstance(value, dict):
        errors.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return 0
    embed_field: dict[str, Any] = value
    name_path, value_path = (*path, "name"), (*path, "value")
    return _check_string(
        embed_field.get("name"), name_path, errors, limit=LIMITS.field_name, required=True
    ) + _check_string(embed_field.get("value"), value_path, errors, limit=LIMITS.field_value, required=True)


def _check_embed(value: object, path: _Path, errors: _FormErrors) -> int:
    """Check one embed; return the characters it adds to the 6000 total."""
    embed = _check_object(value, path, errors, nullable=False)
    size = _check_string(embed.get("title"), (*path, "title"), errors, limit=LIMITS.title)
    size += _check_string(embed.get("description"), (*path, "description"), errors, limit=LIMITS.description)
    _check_string(embed.get("url"), (*path, "url"), errors, limit=LIMITS.url)
    _check_color(embed.get("color"), (*path, "color"), errors)
    _check_timestamp(embed.get("timestamp"), (*path, "timestamp"), errors)
    fields_path = (*path, "fields")
    for index, embed_field in enumerate(_check_list(embed.get("fields"), fields_path, errors, limit=LIMITS.fields)):
        size += _check_field(embed_field, (*fields_path, index), errors)
    footer = _check_object(embed.get("footer"), (*path, "footer"), errors)
    size += _check_string(footer.get("text"), (*path, "footer", "text"), errors, limit=LIMITS.footer_text)
    author = _check_object(embed.get("author"), (*path, "author"), errors)
    size += _check_string(author.get("name"), (*path, "author", "name"), errors, limit=LIMITS.author_name)
    return size


def _check_embeds(value: object, errors: _FormErrors) -> None:
    embeds = _check_list(value, ("embeds",), errors, limit=LIMITS.embeds)
    total = sum(_check_embed(embed, ("embeds", i), errors) for i, embed in enumerate(embeds))
    if total > LIMITS.embed_total and not errors.under("embeds"):
        errors.add(
            ("embeds",),
            "MAX_EMBED_SIZE_EXCEEDED",
            f"Embed size exceeds maximum size of {LIMITS.embed_total}",
        )


def _check_username(value: object, errors: _FormErrors) -> None:
    path = ("username",)
    if value is None:
        return
    if not isinstance(value, str):
        errors.add(path, "BASE_TYPE_STRING", f'Could not interpret "{value}" as string.')
        return
    low, high = LIMITS.username_min, LIMITS.username_max
    if not low <= len(value) <= high:
        errors.add(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")
        return
    for word in ("discord", "clyde"):
        if word in value.lower():
            errors.add(path, "USERNAME_INVALID_CONTAINS", f'Username cannot contain "{word}"')
    if value.lower() in ("everyone", "here"):
        errors.add(path, "USERNAME_INVALID", f'Username cannot be "{value.lower()}"')


def _check_mention_ids(value: object, path: _Path, errors: _FormErrors) -> list[Any]:
    ids = _check_list(value, path, errors, limit=LIMITS.mention_ids)
    for index, snowflake in enumerate(ids):
        if not _SNOWFLAKE.match(str(snowflake)) or isinstance(snowflake, bool):
            errors.add((*path, index), "NUMBER_TYPE_COERCE", f'Value "{snowflake}" is not snowflake.')
    return ids


def _check_allowed_mentions(value: object, errors: _FormErrors) -> None:
    path = ("allowed_mentions",)
    mentions = _check_object(value, path, errors)
    parse = _check_list(mentions.get("parse"), (*path, "parse"), errors)
    for index, kind in enumerate(parse):
        if kind not in _MENTION_TYPES:
            errors.add(
                (*path, "parse", index),
                "BASE_TYPE_CHOICES",
                "Value must be one of {'everyone', 'roles', 'users'}.",
            )
    for kind in ("users", "roles"):
        ids = _check_mention_ids(mentions.get(kind), (*path, kind), errors)
        if ids and kind in parse and not errors.under("allowed_mentions"):
            errors.add(
                path,
                "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
            )


def _is_empty(payload: Mapping[str, Any]) -> bool:
    return not (payload.get("content") or payload.get("embeds") or payload.get("components"))


def validate_message(payload: object) -> dict[str, Any] | None:
    """Discord's 400 body for an execute-webhook JSON body, or None if it is valid."""
    errors = _FormErrors()
    if not isinstance(payload, dict):
        errors.add((), "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return {"code": 50035, "errors": errors.tree, "message": "Invalid Form Body"}
    _check_string(payload.get("content"), ("content",), errors, limit=LIMITS.content)
    _check_username(payload.get("username"), errors)
    _check_string(payload.get("avatar_url"), ("avatar_url",), errors, limit=LIMITS.url)
    _check_embeds(payload.get("embeds"), errors)
    _check_allowed_mentions(payload.get("allowed_mentions"), errors)
    _check_string(payload.get("thread_name"), ("thread_name",), errors, limit=LIMITS.thread_name)
    if errors:
        return {"code": 50035, "errors": errors.tree, "message": "Invalid Form Body"}
    if _is_empty(payload):
        return dict(EMPTY_MESSAGE)
    return None


def _parse_query(query: Mapping[str, str]) -> tuple[bool, str | None, _FormErrors]:
    """Read `wait` and `thread_id`; return them and any problem with them."""
    errors = _FormErrors()
    wait_text = query.get("wait", "false").lower()
    if wait_text not in ("true", "false", "1", "0"):
        errors.add(("wait",), "BOOLEAN_TYPE_CONVERT", f'Value "{wait_text}" is not a boolean.')
    thread_id = query.get("thread_id")
    if thread_id is not None and not _SNOWFLAKE.match(thread_id):
        errors.add(("thread_id",), "NUMBER_TYPE_COERCE", f'Value "{thread_id}" is not snowflake.')
    return wait_text in ("true", "1"), thread_id, errors


def _thread_refusal(*, forum: bool, thread_id: str | None, thread_name: str | None) -> dict[str, Any] | None:
    """Discord's 400 body when a webhook's channel (a forum or not) and the
    thread a message asks for disagree, or None if they agree."""
    if thread_name and not forum:
        return dict(THREAD_NAME_OUTSIDE_FORUM)
    if forum and thread_name and thread_id:
        return dict(FORUM_THREAD_NAME_AND_ID)
    if forum and not (thread_name or thread_id):
        return dict(FORUM_NEEDS_THREAD)
    return None


# ---------------------------------------------------------------------------
# Rate limits.


@dataclass
class _Bucket:
    """A fixed window of `limit` requests that starts at the first request."""

    limit: int
    reset_after: float
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
            "X-RateLimit-Bucket": _BUCKET_HASH,
        }


def _rate_limited(retry_after: float, headers: Mapping[str, str], *, is_global: bool) -> web.Response:
    body = {"message": RATE_LIMITED_MESSAGE, "retry_after": retry_after, "global": is_global}
    return _json(429, body, {**headers, "Retry-After": str(math.ceil(retry_after))})


def _json(status: int, body: Mapping[str, Any], headers: Mapping[str, str]) -> web.Response:
    return web.json_response(dict(body), status=status, headers=dict(headers))


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
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`webhooks` maps each existing webhook id to its token; by default
        `{WEBHOOK_ID: TOKEN}`. The ids in `forum_webhooks` (each one of
        `webhooks`) are webhooks of a forum channel, the others of a text
        channel. `bucket_reset_after` is in seconds. With `tls`, it speaks
        https (see `tls_certificate`)."""
        if bucket_limit < 1 or bucket_reset_after <= 0:
            raise ValueError("bucket_limit must be >= 1 and bucket_reset_after > 0")
        self.bucket_limit = bucket_limit
        self.bucket_reset_after = bucket_reset_after
        self.webhooks = dict(webhooks) if webhooks is not None else {WEBHOOK_ID: TOKEN}
        self.forum_webhooks = frozenset(forum_webhooks)
        if not self.forum_webhooks <= self.webhooks.keys():
            raise ValueError("every id of forum_webhooks must be one of webhooks")
        self.received: list[Received] = []
        self.requests: list[tuple[str, str, int]] = []
        self._deleted: set[str] = set()
        self._faults: deque[_Answer] = deque()
        self._status: int | None = None
        self._buckets: dict[str, _Bucket] = {}
        self._sequence = itertools.count()
        self._changed = asyncio.Condition()
        self._listeners: list[Callable[[], None]] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._tls = tls

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        """Listen on an ephemeral port of 127.0.0.1."""
        app = web.Application(middlewares=[self._record])
        for prefix in ("/api", "/api/v10"):
            resource = app.router.add_resource(prefix + "/webhooks/{webhook_id}/{token}")
            resource.add_route("POST", self._execute_webhook)
            resource.add_route("GET", self._get_webhook)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._tls).start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
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
    ) -> None:
        """Answer the next `count` POSTs with `status`, without looking at them.

        The body defaults to Discord's for that status (`{"message": "500:
        Internal Server Error", "code": 0}`, 404 Unknown Webhook, ...); a str
        body is sent as text/html. `headers` are added to the rate-limit ones.
        """
        answer = self._fault_answer(status, body, headers or {})
        self._faults.extend([answer] * count)

    def drop_next(self, count: int = 1) -> None:
        """Close the connection of the next `count` POSTs without answering."""
        self._faults.extend([self._drop] * count)

    def set_status(self, status: int | None) -> None:
        """Answer every POST with `status` (Discord's body) until set to None."""
        self._status = status

    def global_429(self, retry_after: float) -> None:
        """Answer the next POST with a global rate limit of `retry_after` seconds."""

        def answer(request: web.Request, webhook_id: str) -> web.Response:
            scope = {"X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"}
            return _rate_limited(retry_after, scope, is_global=True)

        self._faults.append(answer)

    def cloudflare_429(self, *, retry_after: int = 1) -> None:
        """Answer the next POST as Cloudflare does when it bans an IP: 429, an
        HTML page, `Retry-After` (whole seconds) and no X-RateLimit headers."""

        def answer(request: web.Request, webhook_id: str) -> web.Response:
            headers = {"Retry-After": str(retry_after), "Server": "cloudflare"}
            return web.Response(status=429, text=_CLOUDFLARE_PAGE, content_type="text/html", headers=headers)

        self._faults.append(answer)

    def delete_webhook(self, webhook_id: str) -> None:
        """From now on, answer this webhook with 404 Unknown Webhook."""
        self._deleted.add(webhook_id)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until `count` messages were accepted; AssertionError after
        `timeout` seconds, saying what did arrive."""
        try:
            async with asyncio.timeout(timeout), self._changed:
                await self._changed.wait_for(lambda: len(self.received) >= count)
        except TimeoutError:
            raise AssertionError(self.describe_shortfall(count, timeout)) from None
        return list(self.received)

    def describe_shortfall(self, count: int, timeout: float) -> str:
        """What arrived, for a failed wait: never the token."""
        arrived = [_summary(message.payload) for message in self.received]
        return (
            f"expected {count} message(s) within {timeout}s, {len(arrived)} accepted: "
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

    async def _execute_webhook(self, request: web.Request) -> web.Response:
        webhook_id = request.match_info["webhook_id"]
        raw = await request.read()
        fault = self._next_fault()
        if fault is not None:
            return fault(request, webhook_id)
        now = time.monotonic()
        bucket = self._buckets.setdefault(webhook_id, _Bucket(self.bucket_limit, self.bucket_reset_after))
        if not bucket.take(now):
            headers = {**bucket.headers(now), "X-RateLimit-Scope": "user"}
            return _rate_limited(bucket.seconds_left(now), headers, is_global=False)
        return self._deliver(request, webhook_id, raw, bucket.headers(now))

    def _deliver(self, request: web.Request, webhook_id: str, raw: bytes, headers: Mapping[str, str]) -> web.Response:
        """The request got past faults and the bucket: answer it as Discord would."""
        refusal = self._refusal(webhook_id, request.match_info["token"])
        if refusal is not None:
            return _json(*refusal, headers)
        wait, thread_id, query_errors = _parse_query(request.query)
        if query_errors:
            body = {"code": 50035, "errors": query_errors.tree, "message": "Invalid Form Body"}
            return _json(400, body, headers)
        try:
            payload = _decode_body(request.content_type, raw)
        except ValueError:
            return _json(400, INVALID_JSON, headers)
        problem = self._message_refusal(webhook_id, thread_id, payload)
        if problem is not None:
            return _json(400, problem, headers)
        assert isinstance(payload, dict)  # _message_refusal refuses anything else
        thread_name = payload.get("thread_name") or None
        message_id = self._snowflake()
        # A thread created with a message shares the message's id.
        channel_id = thread_id or (message_id if thread_name else CHANNEL_ID)
        self._accept(request, webhook_id, payload, channel_id, thread_name)
        if not wait:
            return web.Response(status=204, headers=dict(headers))
        return _json(200, self._message(webhook_id, payload, message_id, channel_id), headers)

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

    def _refusal(self, webhook_id: str, token: str) -> tuple[int, Mapping[str, Any]] | None:
        if webhook_id not in self.webhooks or webhook_id in self._deleted:
            return 404, UNKNOWN_WEBHOOK
        if token != self.webhooks[webhook_id]:
            return 401, INVALID_TOKEN
        return None

    def _message_refusal(self, webhook_id: str, thread_id: str | None, payload: object) -> dict[str, Any] | None:
        """Discord's 400 body for this message to this webhook, or None if it is accepted."""
        problem = validate_message(payload)
        if problem is not None or not isinstance(payload, dict):
            return problem
        forum = webhook_id in self.forum_webhooks
        return _thread_refusal(forum=forum, thread_id=thread_id, thread_name=payload.get("thread_name") or None)

    def _accept(
        self, request: web.Request, webhook_id: str, payload: dict[str, Any], channel_id: str, thread_name: str | None
    ) -> None:
        self.received.append(
            Received(
                webhook_id=webhook_id,
                payload=payload,
                query=dict(request.query),
                headers=dict(request.headers),
                time=time.monotonic(),
                channel_id=channel_id,
                thread_name=thread_name,
            )
        )

    def _message(self, webhook_id: str, payload: Mapping[str, Any], message_id: str, channel_id: str) -> dict[str, Any]:
        """The message object Discord answers to `?wait=true`."""
        return {
            "type": 0,
            "channel_id": channel_id,
            "content": payload.get("content") or "",
            "attachments": [],
            "embeds": [{"type": "rich", **embed} for embed in payload.get("embeds") or []],
            "timestamp": datetime.now(UTC).isoformat(),
            "edited_timestamp": None,
            "flags": payload.get("flags") or 0,
            "components": [],
            "id": message_id,
            "author": {
                "bot": True,
                "id": webhook_id,
                "username": payload.get("username") or WEBHOOK_NAME,
                "avatar": None,
                "discriminator": "0000",
                "public_flags": 0,
                "flags": 0,
                "global_name": None,
                "primary_guild": None,
            },
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
            "mention_everyone": False,
            "tts": bool(payload.get("tts")),
            "webhook_id": webhook_id,
        }

    def _snowflake(self) -> str:
        milliseconds = int(time.time() * 1000) - _DISCORD_EPOCH_MS
        return str(milliseconds << 22 | next(self._sequence) % (1 << 22))

    # -- faults -------------------------------------------------------------

    def _next_fault(self) -> _Answer | None:
        if self._faults:
            return self._faults.popleft()
        if self._status is not None:
            return self._fault_answer(self._status, None, {})
        return None

    def _fault_answer(self, status: int, body: Mapping[str, Any] | str | None, headers: Mapping[str, str]) -> _Answer:
        # HTTPStatus() refuses an unknown status here, in the test that asked for it.
        default = {"message": f"{status}: {HTTPStatus(status).phrase}", "code": 0}

        def answer(request: web.Request, webhook_id: str) -> web.Response:
            all_headers = {
                **self._peek_headers(webhook_id),
                **_DEFAULT_FAULT_HEADERS.get(status, {}),
                **headers,
            }
            if status == 204:
                return web.Response(status=204, headers=all_headers)
            if isinstance(body, str):
                return web.Response(status=status, text=body, content_type="text/html", headers=all_headers)
            return _json(status, body or _DEFAULT_FAULT_BODIES.get(status, default), all_headers)

        return answer

    def _peek_headers(self, webhook_id: str) -> dict[str, str]:
        """The bucket's headers as they stand, without using a request up."""
        bucket = self._buckets.get(webhook_id, _Bucket(self.bucket_limit, self.bucket_reset_after))
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


def _decode_body(content_type: str, raw: bytes) -> object:
    """The JSON body, or {} for a content type Discord does not read.

    Raises ValueError (UnicodeDecodeError, JSONDecodeError) if it does not parse.
    """
    if content_type != "application/json":
        return {}
    return json.loads(raw.decode("utf-8"))


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
    `received` and `requests` are snapshots, copied in the stand-in's thread.
    """

    def __init__(self, standin: DiscordStandIn, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self._standin = standin
        self._changed = threading.Condition()
        self._received: list[Received] = []
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
    def requests(self) -> list[tuple[str, str, int]]:
        with self._changed:
            return list(self._requests)

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        body: Mapping[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._call(self._standin.fail_next, status, count, body=body, headers=headers)

    def drop_next(self, count: int = 1) -> None:
        self._call(self._standin.drop_next, count)

    def set_status(self, status: int | None) -> None:
        self._call(self._standin.set_status, status)

    def global_429(self, retry_after: float) -> None:
        self._call(self._standin.global_429, retry_after)

    def cloudflare_429(self, *, retry_after: int = 1) -> None:
        self._call(self._standin.cloudflare_429, retry_after=retry_after)

    def delete_webhook(self, webhook_id: str) -> None:
        self._call(self._standin.delete_webhook, webhook_id)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until `count` messages were accepted; AssertionError after
        `timeout` seconds, saying what did arrive."""
        with self._changed:
            if self._changed.wait_for(lambda: len(self._received) >= count, timeout):
                return list(self._received)
        raise AssertionError(self._call(self._standin.describe_shortfall, count, timeout))

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

"""Tests of the Discord stand-in itself, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.discord_standin import (
    CHANNEL_ID,
    DROPPED,
    FORUM_CHANNEL_ID,
    GUILD_ID,
    LIMITS,
    TOKEN,
    WEBHOOK_ID,
    WEBHOOK_NAME,
    DiscordStandIn,
    Thread,
    standin_in_thread,
)

pytestmark = pytest.mark.timeout(30)

SHARED = Path(__file__).resolve().parents[2] / "shared"
OPENAPI = SHARED / "discord" / "openapi.json"
OTHER_ID, OTHER_TOKEN = "998877665544332211", "other-" + "T0KEN" * 12
FORUM_ID, FORUM_TOKEN = "887766554433221100", "forum-" + "T0KEN" * 12
THREAD_ID = "445566778899001122"
THREAD = {"thread_id": THREAD_ID}


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON, or the text when the answer is not JSON


@pytest_asyncio.fixture
async def standin() -> AsyncIterator[DiscordStandIn]:
    """A stand-in whose bucket never empties, for tests about other things."""
    async with DiscordStandIn(bucket_limit=10_000) as server:
        yield server


@pytest_asyncio.fixture
async def forum() -> AsyncIterator[DiscordStandIn]:
    """A stand-in with a text-channel webhook (WEBHOOK_ID) and a forum one (FORUM_ID)."""
    webhooks = {WEBHOOK_ID: TOKEN, FORUM_ID: FORUM_TOKEN}
    async with DiscordStandIn(bucket_limit=10_000, webhooks=webhooks, forum_webhooks=[FORUM_ID]) as server:
        yield server


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    http: aiohttp.ClientSession, url: str, payload: object, *, params: Mapping[str, str] | None = None
) -> Answer:
    """POST `payload` as JSON, by default with ?wait=true."""
    query = {"wait": "true"} if params is None else params
    async with http.post(url, params=query, json=payload) as response:
        return await _answer(response)


async def _answer(response: aiohttp.ClientResponse) -> Answer:
    text = await response.text()
    body = json.loads(text) if response.content_type == "application/json" else text
    return Answer(response.status, response.headers, body)


def form_error(path: tuple[str, ...], code: str, message: str) -> dict[str, Any]:
    """Discord's 400 body for one problem at `path`."""
    node: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path):
        node = {key: node}
    return {"code": 50035, "errors": node, "message": "Invalid Form Body"}


def too_long(path: tuple[str, ...], limit: int) -> dict[str, Any]:
    return form_error(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


File = tuple[str, str, bytes, str]
"""A file part to send: part name (`files[n]`), filename, bytes, content type."""


async def send(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    payload: object,
    files: Sequence[File] = (),
    *,
    params: Mapping[str, str] | None = None,
) -> Answer:
    """Send `payload` as `payload_json` of a multipart body with `files`, by
    default with ?wait=true."""
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("payload_json", json.dumps(payload), content_type="application/json")
    for name, filename, data, content_type in files:
        # A stream, not bytes: aiohttp warns about a large body given as bytes.
        form.add_field(name, io.BytesIO(data), filename=filename, content_type=content_type)
    query = {"wait": "true"} if params is None else params
    async with http.request(method, url, params=query, data=form) as response:
        return await _answer(response)


async def edit(
    http: aiohttp.ClientSession,
    url: str,
    message_id: str,
    payload: object,
    files: Sequence[File] = (),
    *,
    params: Mapping[str, str] | None = None,
) -> Answer:
    """PATCH the message: as JSON, or as multipart when there are files."""
    if files:
        return await send(http, "PATCH", f"{url}/messages/{message_id}", payload, files, params=params or {})
    async with http.patch(f"{url}/messages/{message_id}", params=params or {}, json=payload) as response:
        return await _answer(response)


async def on_message(
    http: aiohttp.ClientSession, method: str, url: str, message_id: str, *, params: Mapping[str, str] | None = None
) -> Answer:
    """GET or DELETE the message."""
    async with http.request(method, f"{url}/messages/{message_id}", params=params or {}) as response:
        return await _answer(response)


# ---------------------------------------------------------------------------
# Accepted messages


@pytest.mark.asyncio
async def test_valid_message_with_wait_is_answered_200_with_the_message_and_recorded(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    payload = {
        "content": "disk full on web-1",
        "username": "tailhook",
        "embeds": [{"title": "Disk full", "color": 0xFF0000, "fields": [{"name": "host", "value": "web-1"}]}],
        "allowed_mentions": {"parse": []},
    }
    before = time.monotonic()
    answer = await post(http, standin.url(), payload)

    assert answer.status == 200
    assert re.fullmatch(r"[1-9][0-9]{15,19}", answer.body["id"])
    assert answer.body["channel_id"] == CHANNEL_ID
    assert answer.body["webhook_id"] == WEBHOOK_ID
    assert answer.body["content"] == "disk full on web-1"
    assert answer.body["author"]["username"] == "tailhook"
    assert answer.body["embeds"] == [{"type": "rich", **payload["embeds"][0]}]  # type: ignore[index]
    [received] = standin.received
    assert received.webhook_id == WEBHOOK_ID
    assert received.payload == payload
    assert received.query == {"wait": "true"}
    assert received.headers["Content-Type"].startswith("application/json")
    assert before <= received.time <= time.monotonic()
    assert (received.channel_id, received.thread_name) == (CHANNEL_ID, None)
    assert standin.requests == [("POST", WEBHOOK_ID, 200)]


@pytest.mark.asyncio
async def test_message_ids_are_distinct_snowflakes(standin: DiscordStandIn, http: aiohttp.ClientSession) -> None:
    first = await post(http, standin.url(), {"content": "one"})
    second = await post(http, standin.url(), {"content": "two"})

    assert first.body["id"] != second.body["id"]


@pytest.mark.asyncio
@pytest.mark.parametrize("params", [{}, {"wait": "false"}])
async def test_without_wait_the_answer_is_204_with_no_body(
    standin: DiscordStandIn, http: aiohttp.ClientSession, params: dict[str, str]
) -> None:
    answer = await post(http, standin.url(), {"content": "hi"}, params=params)

    assert answer.status == 204
    assert answer.body == ""
    assert "X-RateLimit-Remaining" in answer.headers
    assert [r.payload for r in standin.received] == [{"content": "hi"}]


@pytest.mark.asyncio
async def test_the_v10_route_and_thread_id_are_served(standin: DiscordStandIn, http: aiohttp.ClientSession) -> None:
    url = standin.url().replace("/api/webhooks/", "/api/v10/webhooks/")

    answer = await post(http, url, {"content": "hi"}, params={"wait": "true", "thread_id": THREAD_ID})

    assert answer.status == 200
    assert answer.body["channel_id"] == THREAD_ID
    assert standin.received[0].query == {"wait": "true", "thread_id": THREAD_ID}
    assert (standin.received[0].channel_id, standin.received[0].thread_name) == (THREAD_ID, None)


@pytest.mark.asyncio
async def test_a_thread_id_that_is_not_a_snowflake_is_refused(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    answer = await post(http, standin.url(), {"content": "hi"}, params={"thread_id": "general"})

    assert answer.status == 400
    assert answer.body == form_error(("thread_id",), "NUMBER_TYPE_COERCE", 'Value "general" is not snowflake.')


# ---------------------------------------------------------------------------
# Forum channels: a post is a thread, created with `thread_name` or named by `thread_id`


@pytest.mark.asyncio
async def test_a_forum_webhook_creates_a_thread_named_by_thread_name(
    forum: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    url = forum.url(FORUM_ID, FORUM_TOKEN)

    first = await post(http, url, {"content": "disk full", "thread_name": "web-1: disk full"})
    second = await post(http, url, {"content": "oom", "thread_name": "web-2: oom"}, params={})

    assert first.status == 200
    assert second.status == 204
    thread = first.body["channel_id"]
    assert re.fullmatch(r"[1-9][0-9]{15,19}", thread)
    assert thread not in (CHANNEL_ID, FORUM_CHANNEL_ID)
    assert first.body["id"] == thread  # Discord: the post's first message shares the thread's id
    assert first.body["webhook_id"] == FORUM_ID
    [one, two] = forum.received
    assert (one.webhook_id, one.channel_id, one.thread_name) == (FORUM_ID, thread, "web-1: disk full")
    assert one.payload == {"content": "disk full", "thread_name": "web-1: disk full"}
    assert two.thread_name == "web-2: oom"
    assert re.fullmatch(r"[1-9][0-9]{15,19}", two.channel_id)
    assert two.channel_id != thread


@pytest.mark.asyncio
async def test_a_forum_webhook_posts_into_a_thread_named_by_thread_id(
    forum: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    answer = await post(http, forum.url(FORUM_ID, FORUM_TOKEN), {"content": "again"}, params={"thread_id": THREAD_ID})

    assert answer.status == 204
    [received] = forum.received
    assert (received.channel_id, received.thread_name) == (THREAD_ID, None)


@pytest.mark.asyncio
@pytest.mark.parametrize("payload", [{"content": "hi"}, {"content": "hi", "thread_name": ""}])
async def test_a_forum_webhook_refuses_a_message_without_a_thread(
    forum: DiscordStandIn, http: aiohttp.ClientSession, payload: dict[str, Any]
) -> None:
    answer = await post(http, forum.url(FORUM_ID, FORUM_TOKEN), payload)

    assert answer.status == 400
    assert answer.body == {
        "message": "Webhooks posted to forum channels must have a thread_name or thread_id",
        "code": 220001,
    }
    assert forum.received == []
    assert forum.requests == [("POST", FORUM_ID, 400)]


@pytest.mark.asyncio
async def test_a_forum_webhook_refuses_thread_name_and_thread_id_together(
    forum: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    payload = {"content": "hi", "thread_name": "new post"}

    answer = await post(http, forum.url(FORUM_ID, FORUM_TOKEN), payload, params={"thread_id": THREAD_ID})

    assert answer.status == 400
    assert answer.body == {
        "message": "Webhooks posted to forum channels cannot have both a thread_name and thread_id",
        "code": 220002,
    }
    assert forum.received == []


@pytest.mark.asyncio
@pytest.mark.parametrize("params", [{}, {"thread_id": THREAD_ID}])
async def test_a_text_channel_webhook_refuses_thread_name(
    forum: DiscordStandIn, http: aiohttp.ClientSession, params: dict[str, str]
) -> None:
    answer = await post(http, forum.url(), {"content": "hi", "thread_name": "new post"}, params=params)
    empty_name = await post(http, forum.url(), {"content": "hi", "thread_name": ""})

    assert answer.status == 400
    assert answer.body == {"message": "Webhooks can only create threads in forum channels", "code": 220003}
    assert empty_name.status == 200  # an empty name asks for no thread
    assert [(r.channel_id, r.thread_name) for r in forum.received] == [(CHANNEL_ID, None)]


@pytest.mark.asyncio
async def test_thread_name_is_a_string_of_at_most_100(forum: DiscordStandIn, http: aiohttp.ClientSession) -> None:
    url = forum.url(FORUM_ID, FORUM_TOKEN)

    at_limit = await post(http, url, {"content": "hi", "thread_name": "t" * LIMITS.thread_name})
    over = await post(http, url, {"content": "hi", "thread_name": "t" * (LIMITS.thread_name + 1)})
    not_a_string = await post(http, url, {"content": "hi", "thread_name": 5})
    over_elsewhere = await post(http, forum.url(), {"content": "hi", "thread_name": "t" * 101})

    assert at_limit.status == 200, at_limit.body
    assert over.status == 400
    assert over.body == too_long(("thread_name",), 100)
    assert not_a_string.body == form_error(("thread_name",), "BASE_TYPE_STRING", 'Could not interpret "5" as string.')
    # The body's limits come first, on any webhook.
    assert over_elsewhere.body == too_long(("thread_name",), 100)
    assert [r.thread_name for r in forum.received] == ["t" * 100]


@pytest.mark.asyncio
async def test_a_forum_webhook_still_refuses_an_empty_message_first(
    forum: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    answer = await post(http, forum.url(FORUM_ID, FORUM_TOKEN), {"thread_name": "no content"})

    assert answer.status == 400
    assert answer.body == {"message": "Cannot send an empty message", "code": 50006}


@pytest.mark.asyncio
async def test_get_answers_the_forum_channel_of_a_forum_webhook(
    forum: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    async with http.get(forum.url(FORUM_ID, FORUM_TOKEN)) as response:
        got = await _answer(response)

    assert got.status == 200
    assert (got.body["id"], got.body["channel_id"]) == (FORUM_ID, FORUM_CHANNEL_ID)


def test_forum_webhooks_must_be_known_webhooks() -> None:
    with pytest.raises(ValueError, match="forum_webhooks"):
        DiscordStandIn(forum_webhooks=[OTHER_ID])


@pytest.mark.asyncio
async def test_a_forum_post_opens_a_thread_that_later_posts_and_edits_land_in(
    forum: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    url = forum.url(FORUM_ID, FORUM_TOKEN)
    opening = {"content": "disk full", "thread_name": "web-1: disk full", "applied_tags": ["1111111111", 2222222222]}

    opened = await post(http, url, opening)
    thread = opened.body["channel_id"]
    later = await post(http, url, {"content": "again"}, params={"wait": "true", "thread_id": thread})
    edited = await edit(http, url, opened.body["id"], {"content": "disk full × 2"}, params={"thread_id": thread})

    assert (opened.status, later.status, edited.status) == (200, 200, 200)
    assert (opened.body["id"], opened.body["position"]) == (thread, 0)
    assert (later.body["channel_id"], later.body["position"]) == (thread, 1)
    assert (edited.body["channel_id"], edited.body["position"]) == (thread, 0)
    assert forum.threads == {thread: Thread(thread, FORUM_ID, "web-1: disk full", ("1111111111", "2222222222"), 2)}
    assert [(m.content, m.position) for m in forum.messages_in(thread)] == [("disk full × 2", 0), ("again", 1)]
    assert [r.channel_id for r in forum.received] == [thread, thread]
    assert [(e.channel_id, e.message_id) for e in forum.edits] == [(thread, thread)]


@pytest.mark.asyncio
async def test_a_thread_id_the_stand_in_did_not_see_opened_is_recorded_without_a_name(
    forum: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    await post(http, forum.url(FORUM_ID, FORUM_TOKEN), {"content": "a", "applied_tags": ["1"]}, params=THREAD)
    await post(http, forum.url(), {"content": "b"}, params=THREAD)

    # applied_tags only tag a post being opened.
    assert forum.threads == {THREAD_ID: Thread(THREAD_ID, FORUM_ID, None, (), 2)}
    assert [m.content for m in forum.messages_in(THREAD_ID)] == ["a", "b"]


@pytest.mark.asyncio
async def test_applied_tags_are_at_most_5_snowflakes(forum: DiscordStandIn, http: aiohttp.ClientSession) -> None:
    url = forum.url(FORUM_ID, FORUM_TOKEN)

    def opening(tags: list[object]) -> dict[str, Any]:
        return {"content": "hi", "thread_name": "post", "applied_tags": tags}

    at_limit = await post(http, url, opening([str(10**17 + i) for i in range(LIMITS.applied_tags)]))
    over = await post(http, url, opening([str(10**17 + i) for i in range(LIMITS.applied_tags + 1)]))
    named = await post(http, url, opening(["urgent"]))

    assert at_limit.status == 200, at_limit.body
    assert over.body == too_long(("applied_tags",), 5)
    assert named.body == form_error(("applied_tags", "0"), "NUMBER_TYPE_COERCE", 'Value "urgent" is not snowflake.')
    assert len(forum.threads[at_limit.body["channel_id"]].applied_tags) == 5


@pytest.mark.asyncio
async def test_a_forum_that_requires_a_tag_refuses_a_new_post_without_one(http: aiohttp.ClientSession) -> None:
    webhooks = {FORUM_ID: FORUM_TOKEN}
    async with DiscordStandIn(webhooks=webhooks, forum_webhooks=[FORUM_ID], forum_requires_tag=True) as forum:
        url = forum.url(FORUM_ID, FORUM_TOKEN)
        untagged = await post(http, url, {"content": "hi", "thread_name": "post"})
        empty = await post(http, url, {"content": "hi", "thread_name": "post", "applied_tags": []})
        tagged = await post(http, url, {"content": "hi", "thread_name": "post", "applied_tags": ["1111111111"]})
        into_thread = await post(http, url, {"content": "hi"}, params={"wait": "true", "thread_id": THREAD_ID})
        both = await post(http, url, {"content": "hi", "thread_name": "post"}, params=THREAD)

    required = {"message": "A tag is required to create a forum post in this channel", "code": 40067}
    assert (untagged.status, untagged.body) == (400, required)
    assert empty.body == required
    assert (tagged.status, into_thread.status) == (200, 200)  # a tag is asked only of a new post
    assert both.body["code"] == 220002
    assert len(forum.received) == 2


# ---------------------------------------------------------------------------
# Edits, reads and deletes of a message


@pytest.mark.asyncio
async def test_an_edit_changes_the_message_and_is_recorded(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    posted = await post(http, standin.url(), {"content": "disk full", "embeds": [{"title": "Disk full"}]})
    message_id = posted.body["id"]
    change = {"embeds": [{"title": "Disk full × 3", "color": 0xFF0000}], "allowed_mentions": {"parse": []}}

    answer = await edit(http, standin.url(), message_id, change)

    assert answer.status == 200
    assert (answer.body["id"], answer.body["channel_id"]) == (message_id, CHANNEL_ID)
    assert answer.body["content"] == "disk full"  # not named by the edit: kept
    assert answer.body["embeds"] == [{"type": "rich", "title": "Disk full × 3", "color": 0xFF0000}]
    assert answer.body["edited_timestamp"] is not None
    assert answer.body["timestamp"] == posted.body["timestamp"]
    assert "X-RateLimit-Remaining" in answer.headers
    [received] = standin.edits
    assert (received.webhook_id, received.message_id, received.payload) == (WEBHOOK_ID, message_id, change)
    message = standin.messages[message_id]
    assert (message.content, message.embeds, message.edits) == ("disk full", tuple(change["embeds"]), 1)
    assert message.allowed_mentions == {"parse": []}
    assert len(standin.received) == 1  # an edit is no new message
    assert standin.requests == [("POST", WEBHOOK_ID, 200), ("PATCH", WEBHOOK_ID, 200)]


@pytest.mark.asyncio
async def test_an_edit_replaces_what_it_names_clears_what_it_nulls_and_cannot_empty_the_message(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    message_id = (await post(http, standin.url(), {"content": "a", "embeds": [{"title": "t"}]})).body["id"]

    cleared = await edit(http, standin.url(), message_id, {"content": None})
    emptied = await edit(http, standin.url(), message_id, {"embeds": []})

    assert cleared.status == 200
    assert (cleared.body["content"], len(cleared.body["embeds"])) == ("", 1)
    assert emptied.status == 400
    assert emptied.body == {"message": "Cannot send an empty message", "code": 50006}
    assert standin.messages[message_id].embeds == ({"title": "t"},)
    assert len(standin.edits) == 1


@pytest.mark.asyncio
async def test_an_edit_is_validated_like_a_post(standin: DiscordStandIn, http: aiohttp.ClientSession) -> None:
    message_id = (await post(http, standin.url(), {"content": "a"})).body["id"]
    bad = {"content": "c" * 2001, "embeds": [{"title": "t" * 257}], "allowed_mentions": {"parse": ["here"]}}

    refused = await edit(http, standin.url(), message_id, bad)
    # Fields an edit does not take (the schema's IncomingWebhookUpdateRequestPartial) are not read.
    ignored = await edit(http, standin.url(), message_id, {"content": "b", "username": "discord", "thread_name": 5})
    not_json = await edit(http, standin.url(), message_id, ["content"])

    assert refused.status == 400
    assert refused.body == {
        "code": 50035,
        "errors": {
            "content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]},
            "embeds": {
                "0": {
                    "title": {
                        "_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 256 or fewer in length."}]
                    }
                }
            },
            "allowed_mentions": {
                "parse": {
                    "0": {
                        "_errors": [
                            {
                                "code": "BASE_TYPE_CHOICES",
                                "message": "Value must be one of {'everyone', 'roles', 'users'}.",
                            }
                        ]
                    }
                }
            },
        },
        "message": "Invalid Form Body",
    }
    assert ignored.status == 200, ignored.body
    assert ignored.body["author"]["username"] == WEBHOOK_NAME
    assert not_json.body == {
        "code": 50035,
        "errors": {
            "_errors": [{"code": "DICT_TYPE_CONVERT", "message": "Only dictionaries may be used in a DictType"}]
        },
        "message": "Invalid Form Body",
    }
    assert standin.messages[message_id].content == "b"


@pytest.mark.asyncio
async def test_an_edit_without_allowed_mentions_is_recorded_as_sent(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    posted = await post(http, standin.url(), {"content": "<@&1234>", "allowed_mentions": {"roles": ["1234"]}})
    message_id = posted.body["id"]

    await edit(http, standin.url(), message_id, {"content": "<@&1234> resolved"})
    after_bare_edit = standin.messages[message_id].allowed_mentions
    await edit(http, standin.url(), message_id, {"content": "<@&1234> resolved", "allowed_mentions": {"parse": []}})

    assert ["allowed_mentions" in e.payload for e in standin.edits] == [False, True]
    # Without allowed_mentions Discord parses an edit with its default rules, not the post's: None says so.
    assert after_bare_edit is None
    assert standin.messages[message_id].allowed_mentions == {"parse": []}


@pytest.mark.asyncio
async def test_an_edit_of_a_deleted_unknown_or_other_webhooks_message_is_unknown_message(
    http: aiohttp.ClientSession,
) -> None:
    webhooks = {WEBHOOK_ID: TOKEN, OTHER_ID: OTHER_TOKEN}
    async with DiscordStandIn(bucket_limit=100, webhooks=webhooks) as standin:
        deleted = (await post(http, standin.url(), {"content": "a"})).body["id"]
        others = (await post(http, standin.url(OTHER_ID, OTHER_TOKEN), {"content": "b"})).body["id"]
        standin.delete_message(deleted)

        answers = [
            await edit(http, standin.url(), deleted, {"content": "x"}),
            await edit(http, standin.url(), "123456789012345678", {"content": "x"}),
            await edit(http, standin.url(), others, {"content": "x"}),
        ]
        with pytest.raises(KeyError):
            standin.delete_message(deleted)

    assert [(a.status, a.body) for a in answers] == [(404, {"message": "Unknown Message", "code": 10008})] * 3
    assert standin.edits == []
    assert list(standin.messages) == [others]


@pytest.mark.asyncio
async def test_a_message_is_found_only_in_the_thread_thread_id_names(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    in_thread = (await post(http, standin.url(), {"content": "a"}, params={"wait": "true", **THREAD})).body["id"]
    in_channel = (await post(http, standin.url(), {"content": "b"})).body["id"]
    other_thread = {"thread_id": "445566778899001133"}

    answers = {
        "thread message, no thread_id": await edit(http, standin.url(), in_thread, {"content": "x"}),
        "thread message, other thread": await edit(
            http, standin.url(), in_thread, {"content": "x"}, params=other_thread
        ),
        "channel message, a thread_id": await edit(http, standin.url(), in_channel, {"content": "x"}, params=THREAD),
        "thread message, its thread": await edit(http, standin.url(), in_thread, {"content": "x"}, params=THREAD),
        "bad thread_id": await edit(http, standin.url(), in_thread, {"content": "x"}, params={"thread_id": "t"}),
    }

    assert {name: answer.status for name, answer in answers.items()} == {
        "thread message, no thread_id": 404,
        "thread message, other thread": 404,
        "channel message, a thread_id": 404,
        "thread message, its thread": 200,
        "bad thread_id": 400,
    }
    assert answers["thread message, no thread_id"].body["code"] == 10008
    assert answers["bad thread_id"].body == form_error(
        ("thread_id",), "NUMBER_TYPE_COERCE", 'Value "t" is not snowflake.'
    )


@pytest.mark.asyncio
async def test_an_edit_to_an_unknown_webhook_or_with_a_wrong_token_is_refused_like_a_post(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    message_id = (await post(http, standin.url(), {"content": "a"})).body["id"]

    unknown = await edit(http, standin.url(OTHER_ID), message_id, {"content": "x"})
    wrong_token = await edit(http, standin.url(token=OTHER_TOKEN), message_id, {"content": "x"})
    standin.delete_webhook(WEBHOOK_ID)
    deleted = await edit(http, standin.url(), message_id, {"content": "x"})

    assert (unknown.status, unknown.body) == (404, {"message": "Unknown Webhook", "code": 10015})
    assert (wrong_token.status, wrong_token.body) == (401, {"message": "Invalid Webhook Token", "code": 50027})
    assert (deleted.status, deleted.body["code"]) == (404, 10015)


@pytest.mark.asyncio
async def test_get_and_delete_a_message(standin: DiscordStandIn, http: aiohttp.ClientSession) -> None:
    message_id = (await post(http, standin.url(), {"content": "a"})).body["id"]
    await edit(http, standin.url(), message_id, {"content": "b"})

    got = await on_message(http, "GET", standin.url(), message_id)
    deleted = await on_message(http, "DELETE", standin.url(), message_id)
    got_again = await on_message(http, "GET", standin.url(), message_id)
    deleted_again = await on_message(http, "DELETE", standin.url(), message_id)
    edited = await edit(http, standin.url(), message_id, {"content": "c"})

    assert (got.status, got.body["id"], got.body["content"]) == (200, message_id, "b")
    assert (deleted.status, deleted.body) == (204, "")
    assert "X-RateLimit-Bucket" in deleted.headers
    unknown = {"message": "Unknown Message", "code": 10008}
    assert [(a.status, a.body) for a in (got_again, deleted_again, edited)] == [(404, unknown)] * 3
    assert standin.messages == {}
    assert [method for method, _, _ in standin.requests] == ["POST", "PATCH", "GET", "DELETE", "GET", "DELETE", "PATCH"]


# ---------------------------------------------------------------------------
# Files: multipart bodies with `payload_json` and `files[n]`

MIB = 1024 * 1024


@pytest.mark.asyncio
async def test_files_listed_in_attachments_are_attached_and_recorded(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    payload = {
        "embeds": [{"title": "Traceback"}],
        "attachments": [
            {"id": 0, "filename": "app-1201.log", "description": "the whole traceback"},
            {"id": "1", "filename": "held.log"},
        ],
        "allowed_mentions": {"parse": []},
    }
    files = [
        ("files[0]", "app-1201.log", b"Traceback (most recent call last):\n" * 100, "text/plain"),
        ("files[1]", "upload.bin", b"\x00\xff" * 10, "application/octet-stream"),
    ]

    answer = await send(http, "POST", standin.url(), payload, files)

    assert answer.status == 200, answer.body
    first, second = answer.body["attachments"]
    assert re.fullmatch(r"[1-9][0-9]{15,19}", first["id"])
    assert first["id"] != second["id"]
    assert first == {
        "id": first["id"],
        "filename": "app-1201.log",
        "size": 3500,
        "url": f"https://cdn.discordapp.com/attachments/{CHANNEL_ID}/{first['id']}/app-1201.log",
        "proxy_url": f"https://media.discordapp.net/attachments/{CHANNEL_ID}/{first['id']}/app-1201.log",
        "content_type": "text/plain",
        "description": "the whole traceback",
    }
    assert (second["filename"], second["size"]) == ("held.log", 20)  # the entry's filename wins
    [received] = standin.received
    assert received.payload == payload
    assert received.headers["Content-Type"].startswith("multipart/form-data")
    assert [(f.filename, f.data, f.content_type) for f in received.files] == [
        ("app-1201.log", files[0][2], "text/plain"),
        ("held.log", files[1][2], "application/octet-stream"),
    ]
    assert standin.messages[answer.body["id"]].attachments == received.files


@pytest.mark.asyncio
async def test_a_file_alone_is_a_message_and_plain_fields_stand_for_payload_json(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    alone = await send(
        http, "POST", standin.url(), {"attachments": [{"id": 0}]}, [("files[0]", "a.txt", b"a", "text/plain")]
    )
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("content", "Hello, World!")
    async with http.post(standin.url(), params={"wait": "true"}, data=form) as response:
        fields = await _answer(response)

    assert alone.status == 200, alone.body
    assert alone.body["content"] == ""
    assert (fields.status, fields.body["content"]) == (200, "Hello, World!")


@pytest.mark.asyncio
async def test_every_file_needs_an_attachments_entry_and_every_entry_a_file(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    one_file = [("files[0]", "a.log", b"a", "text/plain")]
    two_files = [*one_file, ("files[1]", "b.log", b"b", "text/plain")]

    no_data = await send(http, "POST", standin.url(), {"content": "x", "attachments": [{"id": 0}, {"id": 1}]}, one_file)
    unlisted = await send(http, "POST", standin.url(), {"content": "x", "attachments": [{"id": 0}]}, two_files)
    no_attachments = await send(http, "POST", standin.url(), {"content": "x"}, one_file)
    bad_entries = await send(http, "POST", standin.url(), {"content": "x", "attachments": [{"filename": "a.log"}, "a"]})

    # Discord's answer for an entry without its file.
    assert no_data.body == form_error(("attachments", "1"), "ATTACHMENT_NOT_FOUND", "Attachment data not found")
    # The stand-in's own, stricter than Discord, which would attach the file anyway.
    for answer, part in ((unlisted, "files[1]"), (no_attachments, "files[0]")):
        assert answer.body == form_error((part,), "ATTACHMENT_NOT_LISTED", f"{part} is not listed in attachments.")
    assert bad_entries.body["errors"] == {
        "attachments": {
            "0": {"id": {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}},
            "1": {"_errors": [{"code": "DICT_TYPE_CONVERT", "message": "Only dictionaries may be used in a DictType"}]},
        }
    }
    assert standin.received == []


@pytest.mark.asyncio
async def test_a_file_over_10_mib_is_413_from_the_stand_in_not_from_aiohttp(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    payload = {"content": "log", "attachments": [{"id": 0, "filename": "big.log"}]}

    def upload(size: int) -> list[File]:
        return [("files[0]", "big.log", b"x" * size, "text/plain")]

    at_limit = await send(http, "POST", standin.url(), payload, upload(10 * MIB))
    over = await send(http, "POST", standin.url(), payload, upload(10 * MIB + 1))
    far_over = await send(http, "POST", standin.url(), payload, upload(30 * MIB))

    assert at_limit.status == 200
    assert at_limit.body["attachments"][0]["size"] == 10 * MIB
    too_large = {"message": "Request entity too large", "code": 40005}
    assert (over.status, over.body) == (413, too_large)
    assert (far_over.status, far_over.body) == (413, too_large)
    assert "X-RateLimit-Remaining" in over.headers
    assert [len(r.files[0].data) for r in standin.received] == [10 * MIB]


@pytest.mark.asyncio
async def test_the_file_limit_is_a_parameter(http: aiohttp.ClientSession) -> None:
    async with DiscordStandIn(max_file_bytes=1000) as standin:
        payload = {"attachments": [{"id": 0}]}
        at_limit = await send(http, "POST", standin.url(), payload, [("files[0]", "a", b"a" * 1000, "text/plain")])
        over = await send(http, "POST", standin.url(), payload, [("files[0]", "a", b"a" * 1001, "text/plain")])

    assert (at_limit.status, over.status) == (200, 413)


@pytest.mark.asyncio
async def test_payload_json_is_read_like_a_json_body(standin: DiscordStandIn, http: aiohttp.ClientSession) -> None:
    one_file = [("files[0]", "a.log", b"a", "text/plain")]
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("payload_json", '{"content": "unterminated', content_type="application/json")

    too_long_content = await send(
        http, "POST", standin.url(), {"content": "c" * 2001, "attachments": [{"id": 0}]}, one_file
    )
    async with http.post(standin.url(), data=form) as response:
        not_json = await _answer(response)
    forum_post = await send(http, "POST", standin.url(), {"content": "x", "thread_name": "post"})

    assert too_long_content.body == too_long(("content",), 2000)
    assert (not_json.status, not_json.body) == (
        400,
        {"message": "The request body contains invalid JSON.", "code": 50109},
    )
    assert forum_post.body["code"] == 220003


@pytest.mark.asyncio
async def test_an_edit_keeps_adds_and_drops_files_as_its_attachments_say(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    posted = await send(
        http,
        "POST",
        standin.url(),
        {"content": "x", "attachments": [{"id": 0}]},
        [("files[0]", "a.log", b"a", "text/plain")],
    )
    message_id, first = posted.body["id"], posted.body["attachments"][0]["id"]
    keep_and_add = {"attachments": [{"id": first}, {"id": 0, "filename": "b.log", "description": "held lines"}]}

    added = await edit(http, standin.url(), message_id, keep_and_add, [("files[0]", "upload", b"bb", "text/plain")])
    untouched = await edit(http, standin.url(), message_id, {"content": "y"})
    unknown = await edit(http, standin.url(), message_id, {"attachments": [{"id": "123456789012345678"}]})
    dropped = await edit(http, standin.url(), message_id, {"attachments": []})

    assert [(a["id"], a["filename"], a["size"]) for a in added.body["attachments"]] == [
        (first, "a.log", 1),
        (added.body["attachments"][1]["id"], "b.log", 2),
    ]
    assert added.body["attachments"][1]["description"] == "held lines"
    assert [(f.filename, f.data) for f in standin.edits[0].files] == [("b.log", b"bb")]  # only what it uploaded
    assert [a["filename"] for a in untouched.body["attachments"]] == ["a.log", "b.log"]
    assert unknown.body == form_error(("attachments", "0"), "ATTACHMENT_NOT_FOUND", "Attachment data not found")
    assert (dropped.status, dropped.body["attachments"]) == (200, [])
    assert standin.messages[message_id].attachments == ()


# ---------------------------------------------------------------------------
# Limits: at the limit accepted, one over refused with Discord's nested errors

LIMIT_CASES = [
    pytest.param(lambda n: {"content": "c" * n}, ("content",), LIMITS.content, id="content"),
    pytest.param(lambda n: {"embeds": [{"title": "t"}] * n}, ("embeds",), LIMITS.embeds, id="embeds"),
    pytest.param(lambda n: {"embeds": [{"title": "t" * n}]}, ("embeds", "0", "title"), LIMITS.title, id="title"),
    pytest.param(
        lambda n: {"embeds": [{"description": "d" * n}]},
        ("embeds", "0", "description"),
        LIMITS.description,
        id="description",
    ),
    pytest.param(
        lambda n: {"embeds": [{"fields": [{"name": "n", "value": "v"}] * n}]},
        ("embeds", "0", "fields"),
        LIMITS.fields,
        id="fields",
    ),
    pytest.param(
        lambda n: {"embeds": [{"fields": [{"name": "n" * n, "value": "v"}]}]},
        ("embeds", "0", "fields", "0", "name"),
        LIMITS.field_name,
        id="field-name",
    ),
    pytest.param(
        lambda n: {"embeds": [{"fields": [{"name": "n", "value": "v" * n}]}]},
        ("embeds", "0", "fields", "0", "value"),
        LIMITS.field_value,
        id="field-value",
    ),
    pytest.param(
        lambda n: {"embeds": [{"footer": {"text": "f" * n}}]},
        ("embeds", "0", "footer", "text"),
        LIMITS.footer_text,
        id="footer-text",
    ),
    pytest.param(
        lambda n: {"embeds": [{"author": {"name": "a" * n}}]},
        ("embeds", "0", "author", "name"),
        LIMITS.author_name,
        id="author-name",
    ),
    pytest.param(
        lambda n: {"content": "hi", "allowed_mentions": {"users": [str(10**17 + i) for i in range(n)]}},
        ("allowed_mentions", "users"),
        LIMITS.mention_ids,
        id="mentioned-users",
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("make", "path", "limit"), LIMIT_CASES)
async def test_each_limit_is_accepted_at_the_limit_and_refused_one_over(
    standin: DiscordStandIn,
    http: aiohttp.ClientSession,
    make: Callable[[int], dict[str, Any]],
    path: tuple[str, ...],
    limit: int,
) -> None:
    at_limit = await post(http, standin.url(), make(limit))
    over = await post(http, standin.url(), make(limit + 1))

    assert at_limit.status == 200, at_limit.body
    assert over.status == 400
    assert over.body == too_long(path, limit)
    assert [r.payload for r in standin.received] == [make(limit)]


@pytest.mark.asyncio
async def test_every_part_of_an_embed_counts_toward_6000(standin: DiscordStandIn, http: aiohttp.ClientSession) -> None:
    def embed(value_length: int) -> dict[str, Any]:
        # 256 + 4096 + 1000 + 256 + 100 + 292 = 6000, each part within its own limit
        return {
            "title": "t" * 256,
            "description": "d" * 4096,
            "footer": {"text": "f" * 1000},
            "author": {"name": "a" * 256},
            "fields": [{"name": "n" * 100, "value": "v" * value_length}],
            "url": "https://example.invalid/" + "u" * 500,  # not counted
        }

    at_limit = await post(http, standin.url(), {"embeds": [embed(292)]})
    over = await post(http, standin.url(), {"embeds": [embed(293)]})

    assert at_limit.status == 200, at_limit.body
    assert over.status == 400
    assert over.body == form_error(("embeds",), "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")


@pytest.mark.asyncio
async def test_the_6000_total_is_summed_across_embeds(standin: DiscordStandIn, http: aiohttp.ClientSession) -> None:
    at_limit = await post(http, standin.url(), {"embeds": [{"description": "d" * 3000}] * 2})
    over = await post(http, standin.url(), {"embeds": [{"description": "d" * 3000}, {"description": "d" * 3001}]})

    assert at_limit.status == 200, at_limit.body
    assert over.status == 400
    assert over.body["errors"] == {
        "embeds": {
            "_errors": [{"code": "MAX_EMBED_SIZE_EXCEEDED", "message": "Embed size exceeds maximum size of 6000"}]
        }
    }


@pytest.mark.asyncio
async def test_all_problems_are_reported_at_once(standin: DiscordStandIn, http: aiohttp.ClientSession) -> None:
    payload = {"content": "c" * 2001, "username": "discord alerts", "embeds": [{"title": "t" * 257}]}

    answer = await post(http, standin.url(), payload)

    assert answer.status == 400
    assert answer.body == {
        "code": 50035,
        "errors": {
            "content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]},
            "username": {
                "_errors": [{"code": "USERNAME_INVALID_CONTAINS", "message": 'Username cannot contain "discord"'}]
            },
            "embeds": {
                "0": {
                    "title": {
                        "_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 256 or fewer in length."}]
                    }
                }
            },
        },
        "message": "Invalid Form Body",
    }
    assert standin.received == []


@pytest.mark.asyncio
async def test_a_field_needs_a_name_and_a_value(standin: DiscordStandIn, http: aiohttp.ClientSession) -> None:
    payload = {"embeds": [{"fields": [{"name": "", "value": "v"}, {"name": "n"}]}]}

    answer = await post(http, standin.url(), payload)

    required = {"_errors": [{"code": "BASE_TYPE_REQUIRED", "message": "This field is required"}]}
    assert answer.status == 400
    assert answer.body["errors"] == {"embeds": {"0": {"fields": {"0": {"name": required}, "1": {"value": required}}}}}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("color", "code", "message"),
    [
        (LIMITS.color_max + 1, "NUMBER_TYPE_MAX", "int value should be less than or equal to 16777215."),
        (-1, "NUMBER_TYPE_MIN", "int value should be greater than or equal to 0."),
        ("#ff0000", "NUMBER_TYPE_COERCE", 'Value "#ff0000" is not int.'),
    ],
)
async def test_color_is_an_integer_from_0_to_ffffff(
    standin: DiscordStandIn, http: aiohttp.ClientSession, color: object, code: str, message: str
) -> None:
    good = await post(http, standin.url(), {"embeds": [{"title": "t", "color": LIMITS.color_max}]})
    bad = await post(http, standin.url(), {"embeds": [{"title": "t", "color": color}]})

    assert good.status == 200
    assert bad.status == 400
    assert bad.body == form_error(("embeds", "0", "color"), code, message)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "payload",
    [{}, {"content": ""}, {"content": None, "embeds": []}, {"username": "tailhook", "allowed_mentions": {"parse": []}}],
)
async def test_a_message_without_content_or_embeds_is_empty(
    standin: DiscordStandIn, http: aiohttp.ClientSession, payload: dict[str, Any]
) -> None:
    answer = await post(http, standin.url(), payload)

    assert answer.status == 400
    assert answer.body == {"message": "Cannot send an empty message", "code": 50006}
    assert standin.received == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("username", "code", "message"),
    [
        ("", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 80 in length."),
        ("u" * 81, "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 80 in length."),
        ("My Discord Alerts", "USERNAME_INVALID_CONTAINS", 'Username cannot contain "discord"'),
        ("Clyde", "USERNAME_INVALID_CONTAINS", 'Username cannot contain "clyde"'),
        ("everyone", "USERNAME_INVALID", 'Username cannot be "everyone"'),
    ],
)
async def test_bad_usernames_are_refused(
    standin: DiscordStandIn, http: aiohttp.ClientSession, username: str, code: str, message: str
) -> None:
    good = await post(http, standin.url(), {"content": "hi", "username": "u" * LIMITS.username_max})
    bad = await post(http, standin.url(), {"content": "hi", "username": username})

    assert good.status == 200
    assert bad.status == 400
    assert bad.body == form_error(("username",), code, message)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("mentions", "expected"),
    [
        ({"parse": []}, None),
        ({"parse": ["users"], "users": []}, None),
        ({"parse": ["roles"], "users": ["123456789012345678"]}, None),
        (
            {"parse": ["users"], "users": ["123456789012345678"]},
            form_error(
                ("allowed_mentions",),
                "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                'parse:["users"] and users: [ids...] are mutually exclusive.',
            ),
        ),
        (
            {"parse": ["here"]},
            form_error(
                ("allowed_mentions", "parse", "0"),
                "BASE_TYPE_CHOICES",
                "Value must be one of {'everyone', 'roles', 'users'}.",
            ),
        ),
        (
            {"roles": ["@admins"]},
            form_error(("allowed_mentions", "roles", "0"), "NUMBER_TYPE_COERCE", 'Value "@admins" is not snowflake.'),
        ),
    ],
)
async def test_allowed_mentions_are_checked(
    standin: DiscordStandIn, http: aiohttp.ClientSession, mentions: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    answer = await post(http, standin.url(), {"content": "<@123456789012345678>", "allowed_mentions": mentions})

    if expected is None:
        assert answer.status == 200, answer.body
    else:
        assert answer.status == 400
        assert answer.body == expected


@pytest.mark.asyncio
async def test_a_body_that_is_not_json_is_refused(standin: DiscordStandIn, http: aiohttp.ClientSession) -> None:
    headers = {"Content-Type": "application/json"}
    async with http.post(standin.url(), data=b'{"content": "unterminated', headers=headers) as response:
        answer = await _answer(response)

    assert answer.status == 400
    assert answer.body == {"message": "The request body contains invalid JSON.", "code": 50109}


@pytest.mark.asyncio
async def test_a_json_body_sent_as_another_content_type_is_not_read(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    headers = {"Content-Type": "text/plain"}
    async with http.post(standin.url(), data=b'{"content": "hi"}', headers=headers) as response:
        answer = await _answer(response)

    assert answer.status == 400
    assert answer.body == {"message": "Cannot send an empty message", "code": 50006}


# ---------------------------------------------------------------------------
# Rate limits


@pytest.mark.asyncio
async def test_the_bucket_counts_down_then_429_then_refills_after_retry_after(http: aiohttp.ClientSession) -> None:
    async with DiscordStandIn(bucket_limit=3, bucket_reset_after=1.0) as standin:
        answers, clock = [], []
        for i in range(3):
            answers.append(await post(http, standin.url(), {"content": f"m{i}"}))
            clock.append(time.time())
        limited = await post(http, standin.url(), {"content": "m3"})
        assert limited.status == 429
        await asyncio.sleep(limited.body["retry_after"])
        after = await post(http, standin.url(), {"content": "m4"})

    assert [a.status for a in answers] == [200, 200, 200]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    for answer, now in zip(answers, clock, strict=True):
        assert answer.headers["X-RateLimit-Limit"] == "3"
        assert re.fullmatch(r"\d+\.\d{3}", answer.headers["X-RateLimit-Reset-After"])
        reset_after = float(answer.headers["X-RateLimit-Reset-After"])
        assert 0 < reset_after <= 1.0
        assert float(answer.headers["X-RateLimit-Reset"]) == pytest.approx(now + reset_after, abs=0.5)
        assert answer.headers["X-RateLimit-Bucket"] == answers[0].headers["X-RateLimit-Bucket"] != ""

    assert limited.body["message"] == "You are being rate limited."
    assert limited.body["global"] is False
    retry_after = limited.body["retry_after"]
    assert isinstance(retry_after, float)
    assert 0 < retry_after <= 1.0
    assert limited.headers["Retry-After"] == str(math.ceil(retry_after))
    assert limited.headers["X-RateLimit-Scope"] == "user"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Global" not in limited.headers

    assert after.status == 200
    assert after.headers["X-RateLimit-Remaining"] == "2"
    assert [r.payload["content"] for r in standin.received] == ["m0", "m1", "m2", "m4"]
    assert [status for _, _, status in standin.requests] == [200, 200, 200, 429, 200]


@pytest.mark.asyncio
async def test_each_webhook_has_its_own_bucket(http: aiohttp.ClientSession) -> None:
    webhooks = {WEBHOOK_ID: TOKEN, OTHER_ID: OTHER_TOKEN}
    async with DiscordStandIn(bucket_limit=1, bucket_reset_after=30.0, webhooks=webhooks) as standin:
        first = await post(http, standin.url(), {"content": "a"})
        limited = await post(http, standin.url(), {"content": "a"})
        other = await post(http, standin.url(OTHER_ID, OTHER_TOKEN), {"content": "b"})

    assert (first.status, limited.status, other.status) == (200, 429, 200)
    assert limited.body["retry_after"] > 25
    # As on Discord, the bucket hash names the route, not the webhook.
    assert other.headers["X-RateLimit-Bucket"] == first.headers["X-RateLimit-Bucket"]


@pytest.mark.asyncio
async def test_global_429(standin: DiscordStandIn, http: aiohttp.ClientSession) -> None:
    standin.global_429(0.25)

    limited = await post(http, standin.url(), {"content": "a"})
    after = await post(http, standin.url(), {"content": "b"})

    assert limited.status == 429
    assert limited.body == {"message": "You are being rate limited.", "retry_after": 0.25, "global": True}
    assert limited.headers["X-RateLimit-Global"] == "true"
    assert limited.headers["X-RateLimit-Scope"] == "global"
    assert limited.headers["Retry-After"] == "1"
    assert after.status == 200
    assert after.headers["X-RateLimit-Remaining"] == str(10_000 - 1)  # the 429 did not use the bucket
    assert [r.payload["content"] for r in standin.received] == ["b"]


@pytest.mark.asyncio
async def test_cloudflare_429_is_html_without_rate_limit_headers(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    standin.cloudflare_429()

    limited = await post(http, standin.url(), {"content": "a"})
    after = await post(http, standin.url(), {"content": "b"})

    assert limited.status == 429
    assert limited.headers["Content-Type"].startswith("text/html")
    assert "1015" in limited.body
    with pytest.raises(json.JSONDecodeError):
        json.loads(limited.body)
    assert limited.headers["Retry-After"] == "1"
    assert not [name for name in limited.headers if name.lower().startswith("x-ratelimit")]
    assert after.status == 200


@pytest.mark.asyncio
async def test_edits_have_a_bucket_of_their_own_with_the_same_limits_and_headers(http: aiohttp.ClientSession) -> None:
    async with DiscordStandIn(bucket_limit=2, bucket_reset_after=30.0) as standin:
        posts = [await post(http, standin.url(), {"content": f"m{i}"}) for i in range(3)]
        message_id = posts[0].body["id"]
        edits = [await edit(http, standin.url(), message_id, {"content": f"e{i}"}) for i in range(3)]

    assert [a.status for a in posts] == [200, 200, 429]
    assert [a.status for a in edits] == [200, 200, 429]  # the posts did not use the edits' bucket up
    assert [a.headers["X-RateLimit-Remaining"] for a in edits[:2]] == ["1", "0"]
    assert edits[0].headers["X-RateLimit-Limit"] == "2"
    assert edits[0].headers["X-RateLimit-Bucket"] != posts[0].headers["X-RateLimit-Bucket"]
    limited = edits[2]
    assert limited.body["message"] == "You are being rate limited."
    assert limited.body["global"] is False
    assert limited.body["retry_after"] > 25
    assert limited.headers["Retry-After"] == str(math.ceil(limited.body["retry_after"]))
    assert limited.headers["X-RateLimit-Scope"] == "user"
    assert standin.messages[message_id].content == "e1"


# ---------------------------------------------------------------------------
# Injected failures


@pytest.mark.asyncio
async def test_fail_next_answers_discords_5xx_bodies_then_recovers(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    standin.fail_next(500)
    standin.fail_next(503, count=2)

    answers = [await post(http, standin.url(), {"content": f"m{i}"}) for i in range(4)]

    assert [a.status for a in answers] == [500, 503, 503, 200]
    assert answers[0].body == {"message": "500: Internal Server Error", "code": 0}
    assert answers[1].body == {"message": "503: Service Unavailable", "code": 0}
    assert "X-RateLimit-Limit" in answers[0].headers
    assert [r.payload["content"] for r in standin.received] == ["m3"]
    assert standin.requests == [("POST", WEBHOOK_ID, s) for s in (500, 503, 503, 200)]


@pytest.mark.asyncio
async def test_fail_next_takes_a_body_and_headers(standin: DiscordStandIn, http: aiohttp.ClientSession) -> None:
    standin.fail_next(502, body="<html>502 Bad Gateway</html>", headers={"Server": "cloudflare"})

    answer = await post(http, standin.url(), {"content": "a"})

    assert answer.status == 502
    assert answer.body == "<html>502 Bad Gateway</html>"
    assert answer.headers["Server"] == "cloudflare"


@pytest.mark.asyncio
async def test_set_status_answers_every_post_until_cleared(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    standin.set_status(503)
    failing = [await post(http, standin.url(), {"content": "a"}) for _ in range(3)]
    standin.set_status(None)
    after = await post(http, standin.url(), {"content": "b"})

    assert [a.status for a in failing] == [503, 503, 503]
    assert after.status == 200
    assert [r.payload["content"] for r in standin.received] == ["b"]


@pytest.mark.asyncio
async def test_drop_next_closes_the_connection_without_an_answer(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    standin.drop_next()

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(http, standin.url(), {"content": "a"})
    after = await post(http, standin.url(), {"content": "b"})

    assert after.status == 200
    assert [r.payload["content"] for r in standin.received] == ["b"]
    assert standin.requests == [("POST", WEBHOOK_ID, DROPPED), ("POST", WEBHOOK_ID, 200)]


@pytest.mark.asyncio
async def test_faults_can_be_injected_into_edits(standin: DiscordStandIn, http: aiohttp.ClientSession) -> None:
    message_id = (await post(http, standin.url(), {"content": "a"})).body["id"]
    standin.fail_next(500, on="edit")
    standin.global_429(0.25, on="edit")

    failed = await edit(http, standin.url(), message_id, {"content": "b"})
    posted = await post(http, standin.url(), {"content": "c"})  # posts have faults of their own
    limited = await edit(http, standin.url(), message_id, {"content": "b"})
    standin.drop_next(on="edit")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await edit(http, standin.url(), message_id, {"content": "b"})
    standin.set_status(503)  # an outage: posts and edits alike
    down = [
        await edit(http, standin.url(), message_id, {"content": "b"}),
        await post(http, standin.url(), {"content": "d"}),
    ]
    standin.set_status(None)
    after = await edit(http, standin.url(), message_id, {"content": "b"})

    assert (failed.status, failed.body) == (500, {"message": "500: Internal Server Error", "code": 0})
    assert "X-RateLimit-Limit" in failed.headers
    assert (posted.status, limited.status, limited.body["global"]) == (200, 429, True)
    assert [a.status for a in down] == [503, 503]
    assert after.status == 200
    assert [e.payload["content"] for e in standin.edits] == ["b"]


# ---------------------------------------------------------------------------
# Dead webhooks, GET, other requests


@pytest.mark.asyncio
async def test_wrong_token_is_401_and_unknown_webhook_is_404(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    wrong_token = await post(http, standin.url(token=OTHER_TOKEN), {"content": "a"})
    unknown = await post(http, standin.url(OTHER_ID), {"content": "a"})

    assert wrong_token.status == 401
    assert wrong_token.body == {"message": "Invalid Webhook Token", "code": 50027}
    assert unknown.status == 404
    assert unknown.body == {"message": "Unknown Webhook", "code": 10015}
    assert standin.received == []
    assert standin.requests == [("POST", WEBHOOK_ID, 401), ("POST", OTHER_ID, 404)]


@pytest.mark.asyncio
async def test_a_deleted_webhook_is_404_for_post_and_get(standin: DiscordStandIn, http: aiohttp.ClientSession) -> None:
    assert (await post(http, standin.url(), {"content": "a"})).status == 200
    standin.delete_webhook(WEBHOOK_ID)

    posted = await post(http, standin.url(), {"content": "b"})
    async with http.get(standin.url()) as response:
        got = await _answer(response)

    assert (posted.status, got.status) == (404, 404)
    assert posted.body == got.body == {"message": "Unknown Webhook", "code": 10015}
    assert len(standin.received) == 1


@pytest.mark.asyncio
async def test_get_answers_the_webhook_object(standin: DiscordStandIn, http: aiohttp.ClientSession) -> None:
    async with http.get(standin.url()) as response:
        got = await _answer(response)
    async with http.get(standin.url(token=OTHER_TOKEN)) as response:
        wrong = await _answer(response)

    assert got.status == 200
    assert got.body["id"] == WEBHOOK_ID
    assert got.body["type"] == 1
    assert got.body["token"] == TOKEN
    assert got.body["channel_id"] == CHANNEL_ID
    assert got.body["guild_id"] == GUILD_ID
    assert got.body["application_id"] is None
    assert isinstance(got.body["name"], str)
    assert wrong.status == 401
    assert standin.requests == [("GET", WEBHOOK_ID, 200), ("GET", WEBHOOK_ID, 401)]
    assert standin.received == []


@pytest.mark.asyncio
async def test_other_methods_and_paths_are_answered_like_discord_and_recorded(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    async with http.patch(standin.url(), json={"content": "a"}) as response:
        patched = await _answer(response)
    async with http.post(f"http://127.0.0.1:{standin.port}/api/channels/1/messages", json={}) as response:
        elsewhere = await _answer(response)

    assert patched.status == 405
    assert patched.body == {"message": "405: Method Not Allowed", "code": 0}
    assert elsewhere.status == 404
    assert elsewhere.body == {"message": "404: Not Found", "code": 0}
    assert standin.requests == [("PATCH", WEBHOOK_ID, 405), ("POST", "", 404)]


# ---------------------------------------------------------------------------
# Waiting, and secrecy


@pytest.mark.asyncio
async def test_wait_for_returns_once_enough_messages_arrived(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    waiting = asyncio.create_task(standin.wait_for(2, timeout=10))

    await post(http, standin.url(), {"content": "a"})
    await asyncio.sleep(0)  # let the waiter look at one message
    assert not waiting.done()
    await post(http, standin.url(), {"content": "b"})

    received = await waiting
    assert [r.payload["content"] for r in received] == ["a", "b"]


@pytest.mark.asyncio
async def test_wait_for_says_what_arrived_when_it_times_out(
    standin: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    await post(http, standin.url(), {"content": "only this one"})
    await post(http, standin.url(), {"content": ""})

    with pytest.raises(AssertionError) as failure:
        await standin.wait_for(2, timeout=0.2)

    assert "expected 2 message(s)" in str(failure.value)
    assert "only this one" in str(failure.value)
    assert "400" in str(failure.value)
    assert TOKEN not in str(failure.value)


@pytest.mark.asyncio
async def test_the_token_appears_in_no_output(
    standin: DiscordStandIn,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    standin.drop_next()
    standin.fail_next(500)

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(http, standin.url(), {"content": "a"})
    for payload in ({"content": "b"}, {"content": "c"}, {"content": "c" * 2001}):
        await post(http, standin.url(), payload)
    async with http.get(standin.url(token="wrong-" + TOKEN)):
        pass

    captured = capsys.readouterr()
    assert [status for _, _, status in standin.requests] == [DROPPED, 500, 200, 400, 401]
    assert TOKEN not in caplog.text + captured.out + captured.err


# ---------------------------------------------------------------------------
# In a thread, from synchronous code (as end-to-end tests use it)


def sync_post(url: str, payload: object) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(  # noqa: S310 (the stand-in's http URL)
        url + "?wait=true", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (the stand-in's http URL)
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_threaded_stand_in_serves_a_synchronous_test() -> None:
    with standin_in_thread(bucket_limit=100) as standin:
        assert standin.url() == f"http://127.0.0.1:{standin.port}/api/webhooks/{WEBHOOK_ID}/{TOKEN}"
        status, _, body = sync_post(standin.url(), {"content": "hello"})
        [received] = standin.wait_for(1, timeout=5)

        standin.fail_next(500)
        failed, _, _ = sync_post(standin.url(), {"content": "fails"})
        standin.set_status(503)
        unavailable, _, _ = sync_post(standin.url(), {"content": "fails"})
        standin.set_status(None)
        standin.global_429(0.5)
        global_limited, global_headers, _ = sync_post(standin.url(), {"content": "limited"})
        standin.cloudflare_429()
        banned, banned_headers, _ = sync_post(standin.url(), {"content": "banned"})
        standin.drop_next()
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            sync_post(standin.url(), {"content": "dropped"})
        standin.delete_webhook(WEBHOOK_ID)
        deleted, _, _ = sync_post(standin.url(), {"content": "gone"})

        requests = standin.requests
        port = standin.port

    assert status == 200
    assert json.loads(body)["content"] == "hello"
    assert received.payload == {"content": "hello"}
    assert (failed, unavailable, global_limited, banned, deleted) == (500, 503, 429, 429, 404)
    assert global_headers["X-RateLimit-Global"] == "true"
    assert banned_headers["Content-Type"].startswith("text/html")
    assert [status for _, _, status in requests] == [200, 500, 503, 429, 429, DROPPED, 404]
    with pytest.raises(urllib.error.URLError):  # stopped: nothing listens any more
        sync_post(f"http://127.0.0.1:{port}/api/webhooks/{WEBHOOK_ID}/{TOKEN}", {"content": "late"})


def test_threaded_stand_in_takes_forum_webhooks() -> None:
    webhooks = {WEBHOOK_ID: TOKEN, FORUM_ID: FORUM_TOKEN}
    with standin_in_thread(webhooks=webhooks, forum_webhooks=[FORUM_ID]) as standin:
        created, _, body = sync_post(standin.url(FORUM_ID, FORUM_TOKEN), {"content": "hi", "thread_name": "post"})
        refused, _, _ = sync_post(standin.url(FORUM_ID, FORUM_TOKEN), {"content": "no thread"})
        [received] = standin.wait_for(1, timeout=5)

    assert (created, refused) == (200, 400)
    assert (received.channel_id, received.thread_name) == (json.loads(body)["channel_id"], "post")


def test_threaded_wait_for_blocks_until_another_thread_posts() -> None:
    with standin_in_thread() as standin:
        results: list[int] = []
        poster = threading.Thread(target=lambda: results.append(sync_post(standin.url(), {"content": "hi"})[0]))
        poster.start()
        received = standin.wait_for(1, timeout=10)
        poster.join(timeout=10)

    assert [r.payload for r in received] == [{"content": "hi"}]
    assert results == [200]


def test_threaded_wait_for_raises_with_what_arrived() -> None:
    with standin_in_thread() as standin:
        sync_post(standin.url(), {"content": "just one"})
        with pytest.raises(AssertionError, match=r"expected 3 message\(s\).*just one"):
            standin.wait_for(3, timeout=0.2)
        received = standin.received

    assert len(received) == 1


def sync_request(method: str, url: str, payload: object) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 (the stand-in's http URL)
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method=method
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (the stand-in's http URL)
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_threaded_stand_in_edits_deletes_and_waits_for_edits() -> None:
    webhooks = {WEBHOOK_ID: TOKEN, FORUM_ID: FORUM_TOKEN}
    with standin_in_thread(webhooks=webhooks, forum_webhooks=[FORUM_ID], forum_requires_tag=True) as standin:
        _, _, body = sync_post(
            standin.url(FORUM_ID, FORUM_TOKEN), {"content": "a", "thread_name": "t", "applied_tags": [1]}
        )
        thread = json.loads(body)["channel_id"]
        message_url = f"{standin.url(FORUM_ID, FORUM_TOKEN)}/messages/{thread}?thread_id={thread}"
        editing = threading.Thread(target=lambda: sync_request("PATCH", message_url, {"content": "b"}))
        editing.start()
        [received] = standin.wait_for_edits(1, timeout=10)
        editing.join(timeout=10)
        with pytest.raises(AssertionError, match=r"expected 2 edit\(s\)"):
            standin.wait_for_edits(2, timeout=0.2)
        messages, threads, in_thread = standin.messages, standin.threads, standin.messages_in(thread)
        standin.fail_next(502, on="edit")
        failed, _ = sync_request("PATCH", message_url, {"content": "c"})
        standin.delete_message(thread)
        deleted, _ = sync_request("PATCH", message_url, {"content": "c"})
        after_delete = standin.messages

    assert (received.message_id, received.payload) == (thread, {"content": "b"})
    assert messages[thread].content == "b"
    assert threads[thread].applied_tags == ("1",)
    assert [m.id for m in in_thread] == [thread]
    assert (failed, deleted) == (502, 404)
    assert after_delete == {}


# ---------------------------------------------------------------------------
# Agreement with Discord's OpenAPI description


def _schemas() -> dict[str, Any]:
    if not OPENAPI.exists():
        pytest.skip(f"Discord's OpenAPI description is not at {OPENAPI}")
    schemas: dict[str, Any] = json.loads(OPENAPI.read_text())["components"]["schemas"]
    return schemas


def test_limits_agree_with_openapi() -> None:
    schemas = _schemas()

    def spec(schema: str, prop: str, keyword: str) -> Any:
        return schemas[schema]["properties"][prop][keyword]

    request = "IncomingWebhookRequestPartial"
    expected = {
        "content": spec(request, "content", "maxLength"),
        "embeds": spec(request, "embeds", "maxItems"),
        "username_min": spec(request, "username", "minLength"),
        "username_max": spec(request, "username", "maxLength"),
        "url": spec(request, "avatar_url", "maxLength"),
        "title": spec("RichEmbed", "title", "maxLength"),
        "description": spec("RichEmbed", "description", "maxLength"),
        "fields": spec("RichEmbed", "fields", "maxItems"),
        "color_max": spec("RichEmbed", "color", "maximum"),
        "field_name": spec("RichEmbedField", "name", "maxLength"),
        "field_value": spec("RichEmbedField", "value", "maxLength"),
        "footer_text": spec("RichEmbedFooter", "text", "maxLength"),
        "author_name": spec("RichEmbedAuthor", "name", "maxLength"),
        "mention_ids": spec("MessageAllowedMentionsRequest", "users", "maxItems"),
        "thread_name": spec(request, "thread_name", "maxLength"),
        "applied_tags": spec(request, "applied_tags", "maxItems"),
        "attachments": spec(request, "attachments", "maxItems"),
        "attachment_filename": spec("MessageAttachmentRequest", "filename", "maxLength"),
        "attachment_description": spec("MessageAttachmentRequest", "description", "maxLength"),
    }

    assert {name: getattr(LIMITS, name) for name in expected} == expected
    assert expected["content"] == 2000
    assert (expected["title"], expected["description"], expected["embeds"]) == (256, 4096, 10)
    assert (expected["fields"], expected["field_name"], expected["field_value"]) == (25, 256, 1024)
    assert (expected["footer_text"], expected["author_name"]) == (2048, 256)
    assert (expected["username_min"], expected["username_max"]) == (1, 80)
    assert expected["thread_name"] == 100
    assert (expected["applied_tags"], expected["attachments"]) == (5, 10)
    assert schemas["MessageAttachmentRequest"]["required"] == ["id"]
    edit_request = "IncomingWebhookUpdateRequestPartial"
    assert spec(edit_request, "content", "maxLength") == LIMITS.content
    assert spec(edit_request, "embeds", "maxItems") == LIMITS.embeds
    assert spec(edit_request, "attachments", "maxItems") == LIMITS.attachments
    assert spec(request, "thread_name", "minLength") == 0  # so an empty thread_name is no form error
    assert spec("RichEmbed", "url", "maxLength") == LIMITS.url
    assert spec("RichEmbed", "color", "minimum") == 0
    assert spec("MessageAllowedMentionsRequest", "roles", "maxItems") == LIMITS.mention_ids
    assert set(spec(request, "embeds", "type")) == {"array", "null"}
    mention_types = {choice["const"] for choice in schemas["AllowedMentionTypes"]["oneOf"]}
    assert mention_types == {"users", "roles", "everyone"}
    # Not in the spec (see shared/discord/README.md): the 6000 total is DESIGN.md §4's.
    assert LIMITS.embed_total == 6000


@pytest.mark.asyncio
async def test_answers_carry_the_fields_openapi_requires(standin: DiscordStandIn, http: aiohttp.ClientSession) -> None:
    schemas = _schemas()

    message = await post(http, standin.url(), {"content": "hi", "embeds": [{"title": "t"}]})
    standin.global_429(1.5)
    limited = await post(http, standin.url(), {"content": "hi"})
    async with http.get(standin.url()) as response:
        webhook = await _answer(response)

    assert set(schemas["MessageResponse"]["required"]) <= set(message.body)
    assert set(schemas["UserResponse"]["required"]) <= set(message.body["author"])
    assert set(schemas["MessageEmbedResponse"]["required"]) <= set(message.body["embeds"][0])
    assert set(schemas["RatelimitedResponse"]["allOf"][1]["required"]) <= set(limited.body)
    assert set(schemas["GuildIncomingWebhookResponse"]["required"]) <= set(webhook.body)
    assert webhook.body["type"] in schemas["GuildIncomingWebhookResponse"]["properties"]["type"]["enum"]


@pytest.mark.asyncio
async def test_edit_thread_and_attachment_answers_carry_the_fields_openapi_requires(
    forum: DiscordStandIn, http: aiohttp.ClientSession
) -> None:
    schemas = _schemas()
    url = forum.url(FORUM_ID, FORUM_TOKEN)
    payload = {"content": "hi", "thread_name": "post", "attachments": [{"id": 0}]}

    opened = await send(http, "POST", url, payload, [("files[0]", "a.log", b"a", "text/plain")])
    edited = await edit(http, url, opened.body["id"], {"content": "ho"}, params={"thread_id": opened.body["id"]})

    for answer in (opened, edited):
        assert set(schemas["MessageResponse"]["required"]) <= set(answer.body)
        assert set(schemas["MessageAttachmentResponse"]["required"]) <= set(answer.body["attachments"][0])
        assert set(answer.body["attachments"][0]) <= set(schemas["MessageAttachmentResponse"]["properties"])
    assert "position" in schemas["MessageResponse"]["properties"]
    edit_request = schemas["IncomingWebhookUpdateRequestPartial"]["properties"]
    assert {"username", "avatar_url", "thread_name", "applied_tags", "tts"}.isdisjoint(edit_request)

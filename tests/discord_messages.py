"""What the Discord stand-in keeps of what it accepted, and the objects it answers with.

- `Received`: one accepted request (a post or an edit) as it arrived, for
  tests that look at what tailhook sent.
- `Message`: a message as it stands now, after every edit; `Attachment`: one
  of its files. Both are frozen: an edit makes a new `Message`, so a copy of
  the stand-in's `messages` is a consistent snapshot.
- `Thread`: a thread messages were posted into, by `thread_name` (a forum
  post the stand-in opened) or by `?thread_id=`.

The message object (`message_object`) follows Discord's `MessageResponse`:
`attachments` list id, filename, size, url and proxy_url (fake CDN URLs),
content_type and description; `position` is present for a message in a
thread (0 for a forum post's first message, then one more per message).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.discord_body import Upload

__all__ = [
    "CHANNEL_ID",
    "WEBHOOK_NAME",
    "Attachment",
    "Message",
    "Received",
    "Thread",
    "attachments_after",
    "edited",
    "is_empty",
    "message_object",
]

CHANNEL_ID = "223344556677889900"
WEBHOOK_NAME = "tailhook stand-in"
_CDN = "https://cdn.discordapp.com/attachments"
_MEDIA_PROXY = "https://media.discordapp.net/attachments"


@dataclass(frozen=True)
class Attachment:
    """A file of a message."""

    id: str
    filename: str
    data: bytes = field(repr=False)
    content_type: str
    description: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def as_json(self, channel_id: str) -> dict[str, Any]:
        """Discord's attachment object (`MessageAttachmentResponse`)."""
        path = f"{channel_id}/{self.id}/{self.filename}"
        answer: dict[str, Any] = {
            "id": self.id,
            "filename": self.filename,
            "size": self.size,
            "url": f"{_CDN}/{path}",
            "proxy_url": f"{_MEDIA_PROXY}/{path}",
            "content_type": self.content_type,
        }
        if self.description is not None:
            answer["description"] = self.description
        return answer

    def __repr__(self) -> str:
        return f"Attachment({self.id!r}, {self.filename!r}, {self.size} bytes, {self.content_type!r})"


@dataclass
class Received:
    """One request the stand-in accepted (answered 2xx): a post or an edit."""

    webhook_id: str
    payload: dict[str, Any]
    """The JSON body, or a multipart request's `payload_json`, as sent."""
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
    message_id: str = ""
    """The message it created, or (for an edit) the one it edited."""
    files: tuple[Attachment, ...] = ()
    """The files it uploaded, as they were attached."""


@dataclass(frozen=True)
class Message:
    """A message as it stands now."""

    id: str
    webhook_id: str
    channel_id: str
    content: str
    embeds: tuple[dict[str, Any], ...]
    attachments: tuple[Attachment, ...]
    timestamp: str
    username: str | None = None
    flags: int = 0
    tts: bool = False
    position: int | None = None
    """Its position in its thread; None outside threads."""
    edited_timestamp: str | None = None
    edits: int = 0
    allowed_mentions: Mapping[str, Any] | None = None
    """As the last post or edit sent it; None when it sent none, so that
    Discord parsed the content with the default rules."""


@dataclass(frozen=True)
class Thread:
    """A thread that messages were posted into."""

    id: str
    webhook_id: str
    """The webhook that opened it, or first posted into it by `?thread_id=`."""
    name: str | None
    """The `thread_name` that opened it; None for a thread the stand-in did
    not see opened (made by people, or by an earlier run)."""
    applied_tags: tuple[str, ...] = ()
    messages_sent: int = 0
    """Messages ever posted into it (a deleted one still counts), so the
    next one's position."""


def attachments_after(
    entries: Sequence[Mapping[str, Any]],
    uploads: Sequence[Upload],
    kept: Sequence[Attachment],
    new_id: Callable[[], str],
) -> tuple[Attachment, ...]:
    """The attachments a message has after a post or edit whose (valid) body
    lists `entries`: each names a file of this request by its index or one of
    `kept` by its id; an entry's `filename` and `description` win."""
    new = {upload.index: upload for upload in uploads}
    old = {attachment.id: attachment for attachment in kept}
    result = []
    for entry in entries:
        key = str(entry["id"])
        if key in new:
            upload = new[key]
            attachment = Attachment(new_id(), upload.filename, upload.data, upload.content_type)
        else:
            attachment = old[key]
        changes = {name: entry[name] for name in ("filename", "description") if entry.get(name)}
        result.append(dataclasses.replace(attachment, **changes))
    return tuple(result)


def edited(message: Message, payload: Mapping[str, Any], attachments: tuple[Attachment, ...], now: str) -> Message:
    """`message` after an edit with a (valid) `payload`: what the edit names
    changes (null clears it), what it does not name stays; `attachments` are
    the ones it keeps or adds when it names `attachments`."""
    changes: dict[str, Any] = {
        "edited_timestamp": now,
        "edits": message.edits + 1,
        "allowed_mentions": payload.get("allowed_mentions"),
    }
    if "content" in payload:
        changes["content"] = payload["content"] or ""
    if "embeds" in payload:
        changes["embeds"] = tuple(payload["embeds"] or ())
    if "flags" in payload:
        changes["flags"] = payload["flags"] or 0
    if "attachments" in payload:
        changes["attachments"] = attachments
    return dataclasses.replace(message, **changes)


def is_empty(message: Message) -> bool:
    return not (message.content or message.embeds or message.attachments)


def message_object(message: Message) -> dict[str, Any]:
    """The message object Discord answers to `?wait=true`, an edit, or a GET."""
    answer: dict[str, Any] = {
        "type": 0,
        "channel_id": message.channel_id,
        "content": message.content,
        "attachments": [attachment.as_json(message.channel_id) for attachment in message.attachments],
        "embeds": [{"type": "rich", **embed} for embed in message.embeds],
        "timestamp": message.timestamp,
        "edited_timestamp": message.edited_timestamp,
        "flags": message.flags,
        "components": [],
        "id": message.id,
        "author": {
            "bot": True,
            "id": message.webhook_id,
            "username": message.username or WEBHOOK_NAME,
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
        "tts": message.tts,
        "webhook_id": message.webhook_id,
    }
    if message.position is not None:
        answer["position"] = message.position
    return answer

"""What Discord refuses in a webhook request, and the bodies it refuses it with.

The stand-in (tests/discord_standin.py) answers with these; they are written
out here, not imported from tailhook: the stand-in plays Discord, and a wrong
limit in tailhook must meet the real one here, not a copy of itself. Sources:
Discord's OpenAPI description (shared/discord/openapi.json, the schemas
`IncomingWebhookRequestPartial`, `IncomingWebhookUpdateRequestPartial`,
`MessageAttachmentRequest`), its docs (execute and edit webhook message,
uploading files, JSON error codes) and shared/DESIGN.md §4.

A body with problems is answered 400 `Invalid Form Body` (50035) with every
problem at once in Discord's nested `errors` tree. One check is the stand-in's
own, stricter than Discord: a file part (`files[n]`) that the body's
`attachments` does not list is refused (`ATTACHMENT_NOT_LISTED`), where
Discord attaches it anyway; tailhook is to list every file it sends.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "EMPTY_MESSAGE",
    "FORUM_NEEDS_TAG",
    "FORUM_NEEDS_THREAD",
    "FORUM_THREAD_NAME_AND_ID",
    "INVALID_JSON",
    "INVALID_TOKEN",
    "LIMITS",
    "REQUEST_TOO_LARGE",
    "THREAD_NAME_OUTSIDE_FORUM",
    "UNKNOWN_CHANNEL",
    "UNKNOWN_MESSAGE",
    "UNKNOWN_WEBHOOK",
    "FormErrors",
    "Limits",
    "form_refusal",
    "is_snowflake",
    "parse_query",
    "parse_thread_id",
    "thread_refusal",
    "validate_edit",
    "validate_message",
]


@dataclass(frozen=True)
class Limits:
    """Discord's limits on a webhook message body, in characters or items."""

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
    applied_tags: int = 5
    attachments: int = 10
    attachment_filename: int = 1024
    attachment_description: int = 1024


LIMITS = Limits()

UNKNOWN_WEBHOOK: Mapping[str, Any] = {"message": "Unknown Webhook", "code": 10015}
UNKNOWN_MESSAGE: Mapping[str, Any] = {"message": "Unknown Message", "code": 10008}
UNKNOWN_CHANNEL: Mapping[str, Any] = {"message": "Unknown Channel", "code": 10003}
INVALID_TOKEN: Mapping[str, Any] = {"message": "Invalid Webhook Token", "code": 50027}
INVALID_JSON: Mapping[str, Any] = {
    "message": "The request body contains invalid JSON.",
    "code": 50109,
}
EMPTY_MESSAGE: Mapping[str, Any] = {
    "message": "Cannot send an empty message",
    "code": 50006,
}
REQUEST_TOO_LARGE: Mapping[str, Any] = {"message": "Request entity too large", "code": 40005}
"""Answered with HTTP 413, for a file over the webhook's upload limit."""
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
FORUM_NEEDS_TAG: Mapping[str, Any] = {
    "message": "A tag is required to create a forum post in this channel",
    "code": 40067,
}

_SNOWFLAKE = re.compile(r"^(0|[1-9][0-9]*)$")
_MENTION_TYPES = ("users", "roles", "everyone")

_Path = tuple[str | int, ...]


class FormErrors:
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


def form_refusal(errors: FormErrors) -> dict[str, Any]:
    """Discord's 400 body for the problems in `errors`."""
    return {"code": 50035, "errors": errors.tree, "message": "Invalid Form Body"}


def is_snowflake(value: object) -> bool:
    """A snowflake as Discord reads one: an integer or a string of digits."""
    return not isinstance(value, bool) and isinstance(value, int | str) and bool(_SNOWFLAKE.match(str(value)))


# ---------------------------------------------------------------------------
# One value at a time.


def _too_long(limit: int) -> str:
    return f"Must be {limit} or fewer in length."


def _check_string(value: object, path: _Path, errors: FormErrors, *, limit: int, required: bool = False) -> int:
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


def _check_object(value: object, path: _Path, errors: FormErrors, *, nullable: bool = True) -> dict[str, Any]:
    """Return value if it is a JSON object; otherwise record why and return {}."""
    if value is None and nullable:
        return {}
    if not isinstance(value, dict):
        errors.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return {}
    return value


def _check_list(value: object, path: _Path, errors: FormErrors, *, limit: int | None = None) -> list[Any]:
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


def _check_snowflakes(value: object, path: _Path, errors: FormErrors, *, limit: int) -> list[Any]:
    ids = _check_list(value, path, errors, limit=limit)
    for index, snowflake in enumerate(ids):
        if not is_snowflake(snowflake):
            errors.add((*path, index), "NUMBER_TYPE_COERCE", f'Value "{snowflake}" is not snowflake.')
    return ids


def _check_color(value: object, path: _Path, errors: FormErrors) -> None:
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


def _check_timestamp(value: object, path: _Path, errors: FormErrors) -> None:
    if value is None:
        return
    try:
        datetime.fromisoformat(str(value))
    except ValueError:
        errors.add(path, "DATE_TIME_TYPE_PARSE", f"Could not parse {value}. Should be ISO8601.")


# ---------------------------------------------------------------------------
# Embeds, the username, mentions.


def _check_field(value: object, path: _Path, errors: FormErrors) -> int:
    """Check one embed field; return the characters it adds to the 6000 total."""
    if not isinstance(value, dict):
        errors.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return 0
    embed_field: dict[str, Any] = value
    name_path, value_path = (*path, "name"), (*path, "value")
    return _check_string(
        embed_field.get("name"), name_path, errors, limit=LIMITS.field_name, required=True
    ) + _check_string(embed_field.get("value"), value_path, errors, limit=LIMITS.field_value, required=True)


def _check_embed(value: object, path: _Path, errors: FormErrors) -> int:
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


def _check_embeds(value: object, errors: FormErrors) -> None:
    embeds = _check_list(value, ("embeds",), errors, limit=LIMITS.embeds)
    total = sum(_check_embed(embed, ("embeds", i), errors) for i, embed in enumerate(embeds))
    if total > LIMITS.embed_total and not errors.under("embeds"):
        errors.add(
            ("embeds",),
            "MAX_EMBED_SIZE_EXCEEDED",
            f"Embed size exceeds maximum size of {LIMITS.embed_total}",
        )


def _check_username(value: object, errors: FormErrors) -> None:
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


def _check_allowed_mentions(value: object, errors: FormErrors) -> None:
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
        ids = _check_snowflakes(mentions.get(kind), (*path, kind), errors, limit=LIMITS.mention_ids)
        if ids and kind in parse and not errors.under("allowed_mentions"):
            errors.add(
                path,
                "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
            )


# ---------------------------------------------------------------------------
# Attachments: the body's `attachments` against the request's file parts.


def _check_attachment(value: object, path: _Path, errors: FormErrors, *, known: Collection[str]) -> str | None:
    """Check one entry of `attachments`; return its id if it names a file
    this request or the message has, else None."""
    if not isinstance(value, dict):
        errors.add(path, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return None
    entry: dict[str, Any] = value
    filename = entry.get("filename")
    _check_string(filename, (*path, "filename"), errors, limit=LIMITS.attachment_filename)
    description = entry.get("description")
    _check_string(description, (*path, "description"), errors, limit=LIMITS.attachment_description)
    snowflake = entry.get("id")
    if snowflake is None:
        errors.add((*path, "id"), "BASE_TYPE_REQUIRED", "This field is required")
    elif not is_snowflake(snowflake):
        errors.add((*path, "id"), "NUMBER_TYPE_COERCE", f'Value "{snowflake}" is not snowflake.')
    elif str(snowflake) not in known:
        # As Discord answers it (an entry without its files[n] part).
        errors.add(path, "ATTACHMENT_NOT_FOUND", "Attachment data not found")
    else:
        return str(snowflake)
    return None


def _check_attachments(value: object, errors: FormErrors, *, files: Mapping[str, str], kept: Collection[str]) -> None:
    """`files` maps each file part's index `n` to its part name (`files[n]`);
    `kept` holds the ids of the attachments an edited message already has."""
    entries = _check_list(value, ("attachments",), errors, limit=LIMITS.attachments)
    known = {*files, *kept}
    listed = {_check_attachment(entry, ("attachments", i), errors, known=known) for i, entry in enumerate(entries)}
    for index, part_name in files.items():
        if index not in listed and not errors.under("attachments"):
            # The stand-in's own check (see the module doc): Discord would attach it.
            errors.add((part_name,), "ATTACHMENT_NOT_LISTED", f"{part_name} is not listed in attachments.")


# ---------------------------------------------------------------------------
# Whole bodies.


def _is_empty(payload: Mapping[str, Any], *, has_files: bool) -> bool:
    return not (has_files or payload.get("content") or payload.get("embeds") or payload.get("components"))


def _check_common(
    payload: Mapping[str, Any], errors: FormErrors, *, files: Mapping[str, str], kept: Collection[str]
) -> None:
    """What a post and an edit share: content, embeds, mentions, attachments."""
    _check_string(payload.get("content"), ("content",), errors, limit=LIMITS.content)
    _check_embeds(payload.get("embeds"), errors)
    _check_allowed_mentions(payload.get("allowed_mentions"), errors)
    _check_attachments(payload.get("attachments"), errors, files=files, kept=kept)


def validate_message(payload: object, *, files: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """Discord's 400 body for an execute-webhook body, or None if it is valid.

    `files` maps the index `n` of each `files[n]` part of a multipart request to
    the part's name; a message with a file needs no content or embed.
    """
    errors = FormErrors()
    if not isinstance(payload, dict):
        errors.add((), "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return form_refusal(errors)
    files = files or {}
    _check_common(payload, errors, files=files, kept=())
    _check_username(payload.get("username"), errors)
    _check_string(payload.get("avatar_url"), ("avatar_url",), errors, limit=LIMITS.url)
    _check_string(payload.get("thread_name"), ("thread_name",), errors, limit=LIMITS.thread_name)
    _check_snowflakes(payload.get("applied_tags"), ("applied_tags",), errors, limit=LIMITS.applied_tags)
    if errors:
        return form_refusal(errors)
    if _is_empty(payload, has_files=bool(files)):
        return dict(EMPTY_MESSAGE)
    return None


def validate_edit(
    payload: object, *, files: Mapping[str, str] | None = None, kept: Collection[str] = ()
) -> dict[str, Any] | None:
    """Discord's 400 body for an edit-webhook-message body, or None if it is valid.

    Only the fields an edit takes are read (`IncomingWebhookUpdateRequestPartial`);
    others, such as `username` or `thread_name`, are ignored. `kept` holds the ids
    of the message's attachments, which `attachments` may name to keep them.
    Whether the edited message would be empty is the caller's to check.
    """
    errors = FormErrors()
    if not isinstance(payload, dict):
        errors.add((), "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return form_refusal(errors)
    _check_common(payload, errors, files=files or {}, kept=kept)
    return form_refusal(errors) if errors else None


def parse_query(query: Mapping[str, str]) -> tuple[bool, str | None, FormErrors]:
    """Read a post's `wait` and `thread_id`; return them and any problem with them."""
    errors = FormErrors()
    wait_text = query.get("wait", "false").lower()
    if wait_text not in ("true", "false", "1", "0"):
        errors.add(("wait",), "BOOLEAN_TYPE_CONVERT", f'Value "{wait_text}" is not a boolean.')
    return wait_text in ("true", "1"), parse_thread_id(query, errors), errors


def parse_thread_id(query: Mapping[str, str], errors: FormErrors) -> str | None:
    """Read `thread_id`, recording in `errors` a value that is no snowflake."""
    thread_id = query.get("thread_id")
    if thread_id is not None and not _SNOWFLAKE.match(thread_id):
        errors.add(("thread_id",), "NUMBER_TYPE_COERCE", f'Value "{thread_id}" is not snowflake.')
    return thread_id


def thread_refusal(
    *, forum: bool, thread_id: str | None, thread_name: str | None, tagged: bool, tag_required: bool
) -> dict[str, Any] | None:
    """Discord's 400 body when a webhook's channel (a forum or not) and the
    thread a message asks for disagree, or None if they agree. A forum that
    requires a tag refuses a new post (a `thread_name`) without `applied_tags`."""
    if thread_name and not forum:
        return dict(THREAD_NAME_OUTSIDE_FORUM)
    if forum and thread_name and thread_id:
        return dict(FORUM_THREAD_NAME_AND_ID)
    if forum and not (thread_name or thread_id):
        return dict(FORUM_NEEDS_THREAD)
    if forum and thread_name and tag_required and not tagged:
        return dict(FORUM_NEEDS_TAG)
    return None

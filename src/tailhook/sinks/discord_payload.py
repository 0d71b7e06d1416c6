"""Discord execute-webhook payloads for notifications, inside Discord's limits.

Discord answers a payload that breaks any limit with 400, and a 400 is never
retried: the notification would end in the dead letters. So every embed built
here fits by construction, and :func:`payload_for` (a post) and
:func:`edit_payload_for` (an edit of a posted message) refuse (``ValueError``)
a batch that would not. The limits (DESIGN.md §4, and the schema
``IncomingWebhookRequestPartial`` in Discord's OpenAPI description) are in
:data:`LIMITS`:

- content 2000; at most 10 embeds per message;
- per embed: title 256, description 4096, 25 fields, field name 256, field
  value 1024 (and never empty), footer 2048, author name 256;
- title + description + field names and values + footer + author name, summed
  over every embed of one message, at most 6000;
- username 1-80, without "discord" or "clyde" in it (any case), and neither
  "everyone" nor "here";
- thread_name at most 100; avatar_url at most 2048; at most 100 role ids and
  100 user ids in ``allowed_mentions``.

Discord's API counts characters as Unicode code points, which is what ``len``
counts. Text that is cut ends with the visible :data:`TRUNCATION_MARKER`, and
the marker counts within the limit. When an embed is over a limit, the longest
parts are cut first, all to one common length (so a 10,000-character log line
is cut before a 15-character IP address is); the log line keeps its code block
closed.

Log text must never ping anyone nor pass itself off as something else:

- ``allowed_mentions`` is always sent; without configured mentions it is
  ``{"parse": []}`` and there is no ``content`` at all. ``content`` only ever
  holds the pings an operator configured, never log text.
- An edit pings no one: its ``allowed_mentions`` is always ``{"parse": []}``
  (an edit without it has its mentions parsed again with Discord's defaults),
  and it sends no ``content``, so the post's pings stay as they were.
- Log text outside a code block goes through :func:`neutralise`; the log line
  itself sits in a code block whose backtick runs are broken up so that it
  cannot close the fence.

Everything here is pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from tailhook.events import (
    AUDIT_COLOUR,
    RECOVERY_COLOUR,
    Kind,
    Mentions,
    Notification,
    Style,
)

__all__ = [
    "LIMITS",
    "RULE_FIELDS_MAX",
    "TRUNCATION_MARKER",
    "edit_payload_for",
    "embed_for",
    "embed_size",
    "fits",
    "is_snowflake",
    "neutralise",
    "payload_for",
    "render_embed",
]


@dataclass(frozen=True, slots=True)
class _Limits:
    """Discord's limits: lengths in code points, counts in items."""

    content: int = 2000
    embeds: int = 10
    title: int = 256
    description: int = 4096
    fields: int = 25
    field_name: int = 256
    field_value: int = 1024
    footer: int = 2048
    author: int = 256
    total: int = 6000
    username: int = 80
    thread_name: int = 100
    avatar_url: int = 2048
    mention_ids: int = 100


LIMITS = _Limits()
TRUNCATION_MARKER = "\u2026"  # "…", one code point

_ZWSP = "\u200b"  # zero-width space: breaks syntax, invisible when rendered
_EMPTY_VALUE = "\u2014"  # "—", shown for an empty field value
_DOT = " \u00b7 "  # " · "
_SUPPRESS_NOTIFICATIONS = 1 << 12  # message flag: no push or desktop notification
_INLINE_MAX = 40  # a field value up to this long, on one line, sits inline
_DIGEST_PART_MAX = 100  # rule and key as quoted in a digest's first line
_COMPACT_PART_MAX = 256  # rule, host and source in a compact line
_FIXED_FIELDS = 2  # "source" and "host" follow the captures
RULE_FIELDS_MAX = LIMITS.fields - _FIXED_FIELDS - 1
"""How many ``fields:`` a rule may have: with "source" and "host", one field is left for
the captures (or for the note that says which are not shown)."""
_NO_MENTIONS = Mentions()
_RESERVED_NAMES = ("discord", "clyde")  # webhook names may not contain these
_FORBIDDEN_NAMES = ("everyone", "here")  # nor be one of these

# Text Discord's Markdown would act on, outside code. "- ", "+ " and "1. "
# make a list only at the start of a line ("-# " subtext is broken by "#").
_MARKDOWN = str.maketrans({char: "\\" + char for char in "\\*_~|>#[]()`"})
_LINE_BULLET = re.compile(r"^([ \t]*)([-+])(?=[ \t])", re.MULTILINE)
_LINE_NUMBER = re.compile(r"^([ \t]*\d+)\.(?=[ \t])", re.MULTILINE)
# "<" that opens a mention or other tag: <@1>, <@!1>, <@&1>, <#1>, </cmd:1>,
# <:emoji:1>, <a:emoji:1>, <t:1700000000:R>, <id:home>.
_TAG_OPEN = re.compile(r"<(?=[@#:/]|[A-Za-z]+:)")
_MASS_MENTION = re.compile(r"@(?=everyone|here)", re.IGNORECASE)
# A URL: RFC 3986 characters only (so never a backtick, "<", ">" or space),
# and, as Discord links it, not ending in punctuation.
_URL = re.compile(r"https?://[\w\-.~:/?#\[\]@!$&'()*+,;=%]*[\w\-~/?#\[@!$&(*+=%]", re.IGNORECASE | re.ASCII)
_BACKTICK_RUN = re.compile(r"`(?=`)")
_SNOWFLAKE = re.compile(r"0|[1-9][0-9]*")


# --- public API -------------------------------------------------------------


def embed_for(
    n: Notification, *, style: Style = Style.FULL, attached: str | None = None, budget: int = LIMITS.total
) -> dict[str, object]:
    """Render *n* as one Discord embed that is within every embed limit.

    ``Style.FULL`` gives title, description with the log line in a code block,
    one field per capture plus "source" and "host", then the rule's own
    fields (``Notification.fields``), footer and timestamp; with *attached*
    (a file's name), a last line of the description says that the whole log
    line is in that file; with *budget*, its counted characters are at most that
    (the share of each embed of a message that must fit 6000 together).
    ``Style.COMPACT`` gives the one-line audit mirror: a description only.
    """
    return render_embed(n, style=style, attached=attached, budget=budget)[0]


def render_embed(
    n: Notification, *, style: Style = Style.FULL, attached: str | None = None, budget: int = LIMITS.total
) -> tuple[dict[str, object], bool]:
    """:func:`embed_for`'s embed, and whether it had to cut the log line to fit."""
    cut = False
    if style is Style.COMPACT:
        embed: dict[str, object] = {
            "color": AUDIT_COLOUR,
            "description": _compact_line(n),
        }
    else:
        draft = _draft(n)
        if attached:
            draft = replace(draft, note=f"{_what(n)} attached: `{_code_text(attached)}`.")
        fitted = _fit_total(_fit_description(draft), budget)
        cut = fitted.line != draft.line
        embed = _render(fitted, colour=_colour(n))
    timestamp = _timestamp(n.time)
    if timestamp is not None:
        embed["timestamp"] = timestamp
    return embed, cut


def _what(n: Notification) -> str:
    """What a file holds, in words: the lines a digest held back, or the alert's line (or event)."""
    if n.kind is Kind.DIGEST:
        return "The lines held back are"
    return "The whole event is" if "\n" in n.line.strip() else "The whole line is"


def _code_text(text: str) -> str:
    return text.replace("`", "'")


def payload_for(
    embeds: Sequence[Mapping[str, object]],
    *,
    mentions: Mentions = _NO_MENTIONS,
    username: str | None = None,
    avatar_url: str | None = None,
    thread_name: str | None = None,
    applied_tags: Sequence[str] = (),
    suppress_notifications: bool = False,
) -> dict[str, object]:
    """Build the JSON body of one execute-webhook request.

    ``allowed_mentions`` is always present. With *mentions* empty it is
    ``{"parse": []}`` and the payload has no ``content``; otherwise
    ``content`` holds exactly the configured pings (``<@&role>``,
    ``<@user>``, ``@everyone``) and ``allowed_mentions`` allows exactly those.

    *username* is cut to 80 characters, and a "discord" or "clyde" in it (any
    case), which Discord refuses, has its second letter replaced by "1"
    ("Discord" becomes "D1scord"). An empty name, or one Discord refuses
    outright ("everyone", "here"), is left out: the webhook's own name shows.
    *thread_name* is cut to 100 characters and made one line; empty, it is
    left out, and so are *applied_tags* (the forum post's tags: they belong
    to the post that a thread name opens).

    Batching is the caller's job (see :func:`fits`): raises ``ValueError`` for
    no embeds, more than 10, more than 6000 counted characters across them, a
    mention id that is not a snowflake, more than 100 role or user ids, pings
    longer than 2000 characters, or an *avatar_url* over 2048 characters.
    """
    _check_batch(embeds)
    payload: dict[str, object] = {
        "embeds": [dict(embed) for embed in embeds],
        "allowed_mentions": _allowed_mentions(mentions),
    }
    content = _pings(mentions)
    if content:
        payload["content"] = content
    name = _username(username or "")
    if name:
        payload["username"] = name
    if avatar_url:
        payload["avatar_url"] = _avatar_url(avatar_url)
    thread = _cut(_one_line(thread_name or "").strip(), LIMITS.thread_name)
    if thread:
        payload["thread_name"] = thread
        if applied_tags:
            payload["applied_tags"] = list(applied_tags)
    if suppress_notifications:
        payload["flags"] = _SUPPRESS_NOTIFICATIONS
    return payload


def edit_payload_for(embeds: Sequence[Mapping[str, object]]) -> dict[str, object]:
    """Build the JSON body of one edit of a posted message (``PATCH .../messages/{id}``).

    The edited message shows *embeds* in place of its own. ``allowed_mentions``
    is always ``{"parse": []}``: an edit that leaves it out has the message's
    mentions parsed again with Discord's defaults. There is no ``content``: a
    post's content holds only its pings (see :func:`payload_for`), an edit
    notifies no one, and what it leaves out stays as it was. No
    ``username``, ``avatar_url``, ``thread_name`` or ``flags`` either: the
    edit route ignores them.

    Raises ``ValueError`` for a batch no message could carry, as
    :func:`payload_for` does.
    """
    _check_batch(embeds)
    return {"embeds": [dict(embed) for embed in embeds], "allowed_mentions": {"parse": []}}


def is_snowflake(text: str) -> bool:
    """Whether *text* is a Discord id (a snowflake: digits, no leading zero)."""
    return _SNOWFLAKE.fullmatch(text) is not None


def fits(embeds: Sequence[Mapping[str, object]]) -> bool:
    """Whether *embeds* can go in one message: at most 10, at most 6000 counted.

    For the caller's batching; it does not check the per-embed limits, which
    :func:`embed_for` already keeps.
    """
    return len(embeds) <= LIMITS.embeds and sum(embed_size(embed) for embed in embeds) <= LIMITS.total


def embed_size(embed: Mapping[str, object]) -> int:
    """The characters of *embed* that Discord counts toward the 6000 total.

    Those are title, description, every field's name and value, footer text
    and author name, in code points.
    """
    size = _length(embed.get("title")) + _length(embed.get("description"))
    footer = embed.get("footer")
    if isinstance(footer, Mapping):
        size += _length(footer.get("text"))
    author = embed.get("author")
    if isinstance(author, Mapping):
        size += _length(author.get("name"))
    fields = embed.get("fields")
    if isinstance(fields, Sequence):
        for field in fields:
            if isinstance(field, Mapping):
                size += _length(field.get("name")) + _length(field.get("value"))
    return size


def neutralise(text: str) -> str:
    """Make log text show as itself in Discord Markdown, outside code blocks.

    - ``@everyone`` and ``@here`` get a zero-width space after the "@";
    - "<" that opens a mention or tag (``<@1>``, ``<@!1>``, ``<@&1>``,
      ``<#1>``, ``</cmd:1>``, ``<:e:1>``, ``<t:1:R>``) gets one too;
    - Markdown characters ``\\ * _ ~ | > # [ ] ( )`` and backticks get a
      backslash, and so do "- ", "+ " and "1. " at the start of a line, so
      no bold, links, headers, subtext, quotes, lists or spoilers can be faked;
    - URLs are wrapped as ``<url>``: still a link, but neither escaped (which
      would corrupt it) nor previewed.

    Rendered, the text reads as it was logged.
    """
    pieces: list[str] = []
    start = 0
    for url in _URL.finditer(text):
        pieces.append(_neutralise_prose(text[start : url.start()]))
        pieces.append(f"<{_MASS_MENTION.sub('@' + _ZWSP, url.group())}>")
        start = url.end()
    pieces.append(_neutralise_prose(text[start:]))
    return "".join(pieces)


# --- text helpers -----------------------------------------------------------


def _neutralise_prose(text: str) -> str:
    text = _TAG_OPEN.sub("<" + _ZWSP, text)
    text = text.translate(_MARKDOWN)
    text = _LINE_BULLET.sub(r"\1\\\2", text)
    text = _LINE_NUMBER.sub(r"\1\\.", text)
    return _MASS_MENTION.sub("@" + _ZWSP, text)


def _cut(text: str, limit: int) -> str:
    """*text* if it fits in *limit*, else its start plus the marker, in *limit*.

    A cut never leaves a lone backslash before the marker, which would
    escape it.
    """
    if len(text) <= limit:
        return text
    kept = text[: max(limit - len(TRUNCATION_MARKER), 0)]
    trailing = len(kept) - len(kept.rstrip("\\"))
    if trailing % 2:
        kept = kept[:-1]
    return kept + TRUNCATION_MARKER


def _shrink(parts: Sequence[str], budget: int) -> list[str]:
    """Cut the longest *parts* first, to one common length, so all fit *budget*."""
    cap = _common_cap([len(part) for part in parts], budget)
    return [_cut(part, cap) for part in parts]


def _common_cap(lengths: Sequence[int], budget: int) -> int:
    """The largest cap with ``sum(min(length, cap)) <= budget``.

    Never below the marker's length: every cut part still shows the marker.
    The callers' budgets leave room for that (at most 54 parts in 5700).
    """
    remaining = budget
    ordered = sorted(lengths)
    for index, length in enumerate(ordered):
        share = remaining // (len(ordered) - index)
        if length > share:
            return max(share, len(TRUNCATION_MARKER))
        remaining -= length
    return max(ordered, default=0)


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


def _fence_safe(line: str) -> str:
    """*line* with a zero-width space between backticks: no run can close a fence."""
    return _BACKTICK_RUN.sub("`" + _ZWSP, line)


def _code_span(text: str) -> str:
    """*text* as inline code that its own backticks cannot close."""
    text = _one_line(text).strip()
    if not text:
        return _EMPTY_VALUE
    if "`" not in text:
        return f"`{text}`"
    return f"`` {_fence_safe(text)} ``"


def _length(value: object) -> int:
    return len(value) if isinstance(value, str) else 0


def _timestamp(epoch_seconds: float) -> str | None:
    """ISO 8601 in UTC with microseconds, or None for a time Python cannot show."""
    try:
        moment = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="microseconds")


# --- the full embed ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Draft:
    """The counted text of a full embed, rendered but not yet assembled.

    ``line`` is the fence-safe log line without its fence; ``intro`` is the
    digest's first line, short by construction and never cut. Each field is
    ``(name, value, inline)``, inline ``None`` for "if the value is short".
    """

    title: str
    intro: str
    text: str
    line: str
    fields: tuple[tuple[str, str, bool | None], ...]
    footer: str
    note: str = ""
    """A last line, short and never cut: where the whole log line went (a file)."""


def _colour(n: Notification) -> int:
    if n.kind is Kind.NOTE:  # tailhook's own word (the end of a silence), not an alert's severity
        return AUDIT_COLOUR
    return RECOVERY_COLOUR if n.kind is Kind.RECOVERY else n.severity.colour


def _draft(n: Notification) -> _Draft:
    """Each part of the embed, neutralised and within its own limit."""
    line = n.line.rstrip()
    return _Draft(
        title=_cut(neutralise(_one_line(n.title).strip()), LIMITS.title),
        intro=_digest_intro(n) if n.kind is Kind.DIGEST else "",
        text=neutralise(n.description.strip()),
        line=_fence_safe(line) if line.strip() else "",
        fields=_fields(n),
        footer=_cut(_footer(n), LIMITS.footer),
    )


def _footer(n: Notification) -> str:
    """``tailhook · rule · severity``; a note, which belongs to no rule: ``tailhook · note``. Then
    where the alert came from, as far as known: ``cluster prod · node n-1 · pod shop/web-7 · container app``."""
    head = f"tailhook{_DOT}{n.rule}{_DOT}{n.severity.label}" if n.rule else f"tailhook{_DOT}{n.kind}"
    origin = n.origin
    if not origin:
        return head
    parts = [f"{name} {origin[name]}" for name in ("cluster", "node") if origin.get(name)]
    if origin.get("pod"):
        pod = origin["pod"] if not origin.get("namespace") else f"{origin['namespace']}/{origin['pod']}"
        parts.append(f"pod {pod}")
    elif origin.get("namespace"):
        parts.append(f"namespace {origin['namespace']}")
    if origin.get("container"):
        parts.append(f"container {origin['container']}")
    return _DOT.join([head, *parts])


def _digest_intro(n: Notification) -> str:
    rule = _code_span(_cut(n.rule, _DIGEST_PART_MAX))
    key = _code_span(_cut(n.key, _DIGEST_PART_MAX))
    return f"**{n.count}** more {rule} {_events(n.count)} for key {key}"


def _events(count: int) -> str:
    return "event" if count == 1 else "events"


def _fields(n: Notification) -> tuple[tuple[str, str, bool | None], ...]:
    """One field per capture, then "source" and "host", then the rule's own: at most 25 in all.

    The rule's fields come first for room (at most ``RULE_FIELDS_MAX`` of them):
    when the captures do not fit in the rest, the last capture field says which
    are left out.
    """
    extra = n.fields[:RULE_FIELDS_MAX]
    captures = list(n.captures.items())
    room = LIMITS.fields - _FIXED_FIELDS - len(extra)
    shown = captures if len(captures) <= room else captures[: room - 1]
    fields: list[tuple[str, str, bool | None]] = [
        (_field_name(name), _field_value(value), None) for name, value in shown
    ]
    hidden = [name for name, _ in captures[len(shown) :]]
    if hidden:
        listed = f"{len(hidden)} not shown: {', '.join(hidden)}"
        fields.append(("more captures", _field_value(listed), None))
    source = n.source + (_DOT + n.path if n.path else "")
    if source or n.kind is not Kind.NOTE:  # a note of tailhook's own comes from no source
        fields.append(("source", _field_value(source), None))
    fields.append(("host", _field_value(n.host), None))
    fields.extend((_rule_field_name(name), _field_value(value), inline) for name, value, inline in extra)
    return tuple(fields)


def _field_name(name: str) -> str:
    """A capture's name: written by ops in a rule, so shown as is."""
    return _cut(name.strip() or _EMPTY_VALUE, LIMITS.field_name)


def _rule_field_name(name: str) -> str:
    """A rule field's rendered name: its template may hold log text, so it is neutralised."""
    text = _one_line(name).strip()
    return _cut(neutralise(text) if text else _EMPTY_VALUE, LIMITS.field_name)


def _field_value(value: str) -> str:
    text = neutralise(value) if value.strip() else _EMPTY_VALUE
    return _cut(text, LIMITS.field_value)


def _description(draft: _Draft) -> str:
    block = f"```\n{draft.line}\n```" if draft.line else ""
    return "\n".join(part for part in (draft.intro, draft.text, block, draft.note) if part)


def _draft_size(draft: _Draft) -> int:
    fields = sum(len(name) + len(value) for name, value, _ in draft.fields)
    return len(draft.title) + len(_description(draft)) + fields + len(draft.footer)


def _fit_description(draft: _Draft) -> _Draft:
    """Cut text and log line, longest first, to a description of at most 4096."""
    if len(_description(draft)) <= LIMITS.description:
        return draft
    overhead = len(_description(draft)) - len(draft.text) - len(draft.line)
    text, line = _shrink([draft.text, draft.line], LIMITS.description - overhead)
    return replace(draft, text=text, line=line)


def _fit_total(draft: _Draft, budget: int = LIMITS.total) -> _Draft:
    """Cut every counted part, longest first, to an embed of at most *budget* (6000: a message's)."""
    if _draft_size(draft) <= budget:
        return draft
    names = [name for name, _, _ in draft.fields]
    values = [value for _, value, _ in draft.fields]
    inline = [inline for _, _, inline in draft.fields]
    parts = [draft.title, draft.text, draft.line, draft.footer, *names, *values]
    fixed = _draft_size(draft) - sum(len(part) for part in parts)
    title, text, line, footer, *rest = _shrink(parts, budget - fixed)
    count = len(draft.fields)
    fields = tuple(zip(rest[:count], rest[count:], inline, strict=True))
    return replace(draft, title=title, text=text, line=line, fields=fields, footer=footer)


def _render(draft: _Draft, *, colour: int) -> dict[str, object]:
    embed: dict[str, object] = {"color": colour}
    if draft.title:
        embed["title"] = draft.title
    description = _description(draft)
    if description:
        embed["description"] = description
    embed["fields"] = [
        {"name": name, "value": value, "inline": _is_short(value) if inline is None else inline}
        for name, value, inline in draft.fields
    ]
    embed["footer"] = {"text": draft.footer}
    return embed


def _is_short(value: str) -> bool:
    return len(value) <= _INLINE_MAX and "\n" not in value


# --- the compact embed ------------------------------------------------------


def _compact_line(n: Notification) -> str:
    """The audit mirror's line, at most 4096: severity, rule, title, count, where.

    For example: `warning` **ssh-bruteforce** SSH failures for root — host1/auth
    """
    head = f"`{n.severity.label}` **{_compact_part(n.rule or 'tailhook')}**"
    where = "/".join(_compact_part(part) for part in (n.host, n.source) if part.strip())
    tail = f" ({n.count} {_events(n.count)})" if n.kind in (Kind.DIGEST, Kind.SUMMARY) else ""
    tail += f" \u2014 {where}" if where else ""
    title = neutralise(_one_line(n.title).strip())
    room = LIMITS.description - len(head) - len(tail) - 1
    return " ".join(part for part in (head, _cut(title, room)) if part) + tail


def _compact_part(text: str) -> str:
    return _cut(neutralise(_one_line(text).strip()), _COMPACT_PART_MAX)


# --- the message ------------------------------------------------------------


def _check_batch(embeds: Sequence[Mapping[str, object]]) -> None:
    if not embeds:
        raise ValueError("a Discord message needs at least one embed")
    if len(embeds) > LIMITS.embeds:
        raise ValueError(
            f"{len(embeds)} embeds in one message; Discord takes at most {LIMITS.embeds}: batch them with fits()"
        )
    total = sum(embed_size(embed) for embed in embeds)
    if total > LIMITS.total:
        raise ValueError(
            f"{total} counted characters across the embeds; Discord takes at "
            f"most {LIMITS.total} per message: batch them with fits()"
        )


def _allowed_mentions(mentions: Mentions) -> dict[str, object]:
    if not mentions:
        return {"parse": []}
    return {
        "parse": ["everyone"] if mentions.everyone else [],
        "roles": _snowflakes(mentions.roles, "role"),
        "users": _snowflakes(mentions.users, "user"),
    }


def _snowflakes(ids: Sequence[str], what: str) -> list[str]:
    unique = list(dict.fromkeys(ids))
    for snowflake in unique:
        if not is_snowflake(snowflake):
            raise ValueError(f"{what} id {snowflake!r} is not a Discord snowflake")
    if len(unique) > LIMITS.mention_ids:
        raise ValueError(f"{len(unique)} {what} ids to mention; Discord takes at most {LIMITS.mention_ids}")
    return unique


def _pings(mentions: Mentions) -> str:
    """The configured pings, and nothing else, as message content."""
    pings = [f"<@&{role}>" for role in dict.fromkeys(mentions.roles)]
    pings += [f"<@{user}>" for user in dict.fromkeys(mentions.users)]
    if mentions.everyone:
        pings.append("@everyone")
    content = " ".join(pings)
    if len(content) > LIMITS.content:
        raise ValueError(
            f"the configured mentions take {len(content)} characters; message content takes at most {LIMITS.content}"
        )
    return content


def _username(name: str) -> str:
    """*name* as Discord accepts it for a webhook: see :func:`payload_for`."""
    for reserved in _RESERVED_NAMES:
        name = re.sub(
            reserved,
            lambda found: found.group()[0] + "1" + found.group()[2:],
            name,
            flags=re.IGNORECASE,
        )
    name = _cut(_one_line(name).strip(), LIMITS.username).strip()
    return "" if name.lower() in _FORBIDDEN_NAMES else name


def _avatar_url(url: str) -> str:
    if len(url) > LIMITS.avatar_url:
        raise ValueError(f"avatar_url is {len(url)} characters; Discord takes at most {LIMITS.avatar_url}")
    return url

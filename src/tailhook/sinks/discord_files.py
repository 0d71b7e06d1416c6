"""Files on Discord messages: what an embed cannot show goes with it as a ``.log`` attachment.

- An alert's embed shows at most 4,096 characters of its log line (less when
  the rest of the embed needs the room), and a multiline event (a traceback)
  rarely fits. When :func:`rendered` finds that the embed had to cut the
  line, the embed's last line names a file, and the whole line goes with the
  message as ``<rule>-<time>.log`` (UTC).
- A digest's ``excerpt`` (the lines its storm held back) goes as
  ``<rule>-<time>-held.log``, and its embed says so.

``.log`` files get an inline preview in Discord. Since January 2025 a
webhook may upload at most 10 MiB per file (413, code 40005, above it), and
cannot learn a server's higher limit: a longer text is cut to
:data:`MAX_FILE_BYTES`, on a character boundary, and ends with
:data:`CUT_MARKER`; ``File.cut`` says so, for the sink to count.

A post carries the files of its deliveries. An edit carries only the files of
the deliveries it brings (a digest edited into a storm's message) and keeps
the message's others; what it shows again (an alert posted earlier) still
names its file, which the message kept.

Everything here is pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from tailhook.events import Delivery, Kind, Notification, Style
from tailhook.sinks.discord_payload import LIMITS, embed_for, embed_size, render_embed

__all__ = ["CUT_MARKER", "MAX_FILES", "MAX_FILE_BYTES", "File", "file_name", "file_of", "message_of", "rendered"]

MAX_FILE_BYTES = 10 * 1024 * 1024
"""What a webhook may upload per file (10 MiB); the files of one request take at most that together."""
MAX_FILES = 10
"""Files on one message, at most (its ``attachments``)."""
CUT_MARKER = "\n…[cut here: a webhook may upload at most 10 MiB per file to Discord]\n"


@dataclass(frozen=True, slots=True)
class File:
    """One attachment: its name in Discord, and its bytes (UTF-8 text)."""

    name: str
    data: bytes
    cut: bool = False
    """The text was longer than :data:`MAX_FILE_BYTES`: only its start is here."""


def rendered(
    delivery: Delivery, *, edit: bool = False, attach: bool = True, budget: int = LIMITS.total, suffix: str = ""
) -> tuple[dict[str, object], File | None]:
    """The embed of *delivery*, and the file that carries what the embed cannot: a digest's lines
    held back, or a log line the embed had to cut (``None`` when there is none, for the compact
    style, a one-line mirror, and without *attach*: the embed then names no file). In an *edit*,
    only an alert's embed names a file for its line (the one its post sent); the others' lines are
    shown as far as they fit. *budget*: the embed's share of its message's 6000; *suffix* tells
    apart the files of one message that would share a name."""
    n = delivery.notification
    if delivery.style is Style.COMPACT or not attach:
        return embed_for(n, style=delivery.style, budget=budget), None
    if n.kind is Kind.DIGEST:
        if not n.excerpt:
            return embed_for(n, budget=budget), None
        name = file_name(n, "held" + suffix)
        return embed_for(n, attached=name, budget=budget), file_of(name, n.excerpt)
    embed, cut = render_embed(n, budget=budget)
    if not cut or (edit and n.kind is not Kind.ALERT):
        return embed, None
    name = file_name(n, suffix.lstrip("-"))
    return embed_for(n, attached=name, budget=budget), file_of(name, n.line)


def message_of(
    deliveries: Sequence[Delivery], *, send: Collection[int] | None = None, kept: int = 0, edit: bool = False
) -> tuple[list[dict[str, object]], list[File]]:
    """The embeds of a message showing *deliveries*, and the files that go with the request: those of
    the places in *send* (every place, when ``None``), as many as fit beside the *kept* files already
    on the message (``MAX_FILES`` in all, ``MAX_FILE_BYTES`` together). A delivery whose file cannot
    go has an embed that names none; one whose file need not go (it went before) still names it.
    Embeds that together pass 6000 (an edit's updates can outgrow the message they edit) are cut to
    an equal share each. Files that would share a name get a suffix."""
    budget = LIMITS.total
    while True:
        embeds: list[dict[str, object]] = []
        files: list[File] = []
        names: Counter[str] = Counter()
        for slot, delivery in enumerate(deliveries):
            embed, file = rendered(delivery, edit=edit, budget=budget)
            if file is not None and (send is None or slot in send):
                names[file.name] += 1
                if names[file.name] > 1:
                    suffix = f"-{names[file.name]}"
                    embed, file = rendered(delivery, edit=edit, budget=budget, suffix=suffix)
                size = sum(len(f.data) for f in files)
                if file is not None and kept + len(files) < MAX_FILES and size + len(file.data) <= MAX_FILE_BYTES:
                    files.append(file)
                else:
                    embed, _ = rendered(delivery, edit=edit, attach=False, budget=budget)
            embeds.append(embed)
        if budget < LIMITS.total or sum(embed_size(embed) for embed in embeds) <= LIMITS.total:
            return embeds, files
        budget = LIMITS.total // max(1, len(deliveries))


def file_name(n: Notification, what: str = "") -> str:
    """``<rule>-<time>[-what].log``: a rule's name is already safe in a file name (letters, digits, ``-_.``)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(n.time))
    return f"{n.rule or Kind.NOTE}-{stamp}{'-' + what if what else ''}.log"


def file_of(name: str, text: str) -> File:
    """*text* as the file *name*, cut to :data:`MAX_FILE_BYTES` if need be."""
    data = text.rstrip("\n").encode("utf-8", "replace") + b"\n"
    if len(data) <= MAX_FILE_BYTES:
        return File(name, data)
    marker = CUT_MARKER.encode()
    kept = data[: MAX_FILE_BYTES - len(marker)].decode("utf-8", "ignore").encode()  # no half character
    return File(name, kept + marker, cut=True)

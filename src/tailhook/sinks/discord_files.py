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
from dataclasses import dataclass

from tailhook.events import Delivery, Kind, Notification, Style
from tailhook.sinks.discord_payload import embed_for, render_embed

__all__ = ["CUT_MARKER", "MAX_FILE_BYTES", "File", "file_name", "file_of", "rendered"]

MAX_FILE_BYTES = 10 * 1024 * 1024
"""What a webhook may upload per file (10 MiB)."""
CUT_MARKER = "\n…[cut here: a webhook may upload at most 10 MiB per file to Discord]\n"


@dataclass(frozen=True, slots=True)
class File:
    """One attachment: its name in Discord, and its bytes (UTF-8 text)."""

    name: str
    data: bytes
    cut: bool = False
    """The text was longer than :data:`MAX_FILE_BYTES`: only its start is here."""


def rendered(delivery: Delivery, *, edit: bool = False) -> tuple[dict[str, object], File | None]:
    """The embed of *delivery*, and the file that carries what the embed cannot: a digest's lines
    held back, or a log line the embed had to cut (``None`` when there is none, and for the compact
    style, a one-line mirror). In an *edit*, only an alert's embed names a file for its line (the
    one its post sent); the others' lines are shown as far as they fit."""
    n = delivery.notification
    if delivery.style is Style.COMPACT:
        return embed_for(n, style=delivery.style), None
    if n.kind is Kind.DIGEST:
        if not n.excerpt:
            return embed_for(n), None
        name = file_name(n, "held")
        return embed_for(n, attached=name), file_of(name, n.excerpt)
    embed, cut = render_embed(n)
    if not cut or (edit and n.kind is not Kind.ALERT):
        return embed, None
    name = file_name(n)
    return embed_for(n, attached=name), file_of(name, n.line)


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

"""Files on Discord messages: what an embed cannot show goes with it as a ``.log`` attachment.

An alert's embed shows at most 4,096 characters of its log line (less when
the rest of the embed needs the room), and a multiline event (a traceback)
rarely fits. When :func:`rendered` finds that the embed had to cut the line,
the embed says where the whole of it is (its last line names the file) and
the whole line goes with the message as ``<rule>-<time>.log`` (UTC, so two
alerts of one rule in one second share a name only in different messages;
Discord keeps both). ``.log`` files get an inline preview in Discord.

Since January 2025 a webhook may upload at most 10 MiB per file (413, code
40005, above it), and cannot learn a server's higher limit: a longer line is
cut to :data:`MAX_FILE_BYTES`, on a character boundary, and ends with
:data:`CUT_MARKER`; ``File.cut`` says so, for the sink to count.

Only posts carry files. An edit leaves a message's files as they are (it
sends no ``attachments``), so an alert's file stays on its message while a
storm edits the message's embeds.

Everything here is pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tailhook.events import Delivery, Kind, Notification, Style
from tailhook.sinks.discord_payload import render_embed

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


def rendered(delivery: Delivery) -> tuple[dict[str, object], File | None]:
    """The embed of *delivery* for a post, and the file that carries its whole log line when the
    embed cannot (``None`` when it shows all of it, and for the compact style, a one-line mirror)."""
    n = delivery.notification
    embed, cut = render_embed(n, style=delivery.style)
    if not cut or delivery.style is Style.COMPACT:
        return embed, None
    name = file_name(n)
    embed, _ = render_embed(n, style=delivery.style, attached=name)
    return embed, file_of(name, n.line)


def file_name(n: Notification) -> str:
    """``<rule>-<time>.log``: a rule's name is already safe in a file name (letters, digits, ``-_.``)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(n.time))
    return f"{n.rule or Kind.NOTE}-{stamp}.log"


def file_of(name: str, text: str) -> File:
    """*text* as the file *name*, cut to :data:`MAX_FILE_BYTES` if need be."""
    data = text.rstrip("\n").encode("utf-8", "replace") + b"\n"
    if len(data) <= MAX_FILE_BYTES:
        return File(name, data)
    marker = CUT_MARKER.encode()
    kept = data[: MAX_FILE_BYTES - len(marker)].decode("utf-8", "ignore").encode()  # no half character
    return File(name, kept + marker, cut=True)

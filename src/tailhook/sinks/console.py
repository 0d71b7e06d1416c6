"""The console sink: each notification printed as it would be sent.

Used when no destination is configured, and for every destination in
``--dry-run``, so a test run never posts to a real channel. It keeps no
messages: a post answers ``posted=None``, and an edit (which the caller may
still ask for) prints the deliveries again, marked ``updated:``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Collection, Iterable, Sequence
from typing import TextIO

from tailhook.events import Delivery, Kind, Notification
from tailhook.metrics import Metric
from tailhook.sinks import Outcome, Posted, Result

__all__ = ["UPDATED", "ConsoleSink", "format_notification"]

_MAX_LINE_CHARS = 1000
UPDATED = "updated: "
"""What an edit's notifications are printed after."""


class ConsoleSink:
    def __init__(self, name: str = "console", *, stream: TextIO | None = None) -> None:
        self.name = name
        self._stream = stream

    def batch(self, deliveries: Sequence[Delivery]) -> int:
        return max(1, len(deliveries))

    async def send(self, deliveries: Sequence[Delivery], *, thread_id: str | None = None) -> Result:
        self._print(deliveries)
        return Result(Outcome.SENT)

    async def edit(self, posted: Posted, deliveries: Sequence[Delivery], fresh: Collection[int] = ()) -> Result:
        """Print *deliveries* as an update (``updated: `` before each): a console has no message to change."""
        self._print(deliveries, prefix=UPDATED)
        return Result(Outcome.SENT)

    async def revive(self) -> bool:
        return True

    def recheck_in(self) -> float:
        return math.inf

    def throughput(self) -> float:
        return math.inf

    def recheck_soon(self) -> None:
        return None

    def collect(self) -> Iterable[Metric]:
        return ()

    async def close(self) -> None:
        return None

    def _print(self, deliveries: Sequence[Delivery], *, prefix: str = "") -> None:
        stream = self._stream or sys.stdout
        for delivery in deliveries:
            stream.write(prefix + format_notification(delivery.notification, destination=delivery.destination))
        stream.flush()


def format_notification(n: Notification, *, destination: str) -> str:
    """A readable block: a header line, the title, captures, the rule's fields, and the log line."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(n.time))
    tag = "" if n.kind is Kind.ALERT else f" {n.kind.value}"
    about = n.rule or n.key  # a note belongs to no rule: it names what it is about (a silence's id)
    lines = [f"── {stamp} {n.severity.label.upper()}{tag} [{about}] → {destination}", f"   {n.title}"]
    if n.description:
        description = n.description.replace("\n", "\n   ") if n.kind is Kind.NOTE else n.description
        lines.append(f"   {description}")
    captures = "  ".join(f"{k}={v}" for k, v in n.captures.items() if v)
    if captures:
        lines.append(f"   {captures}")
    lines.extend(f"   {name}: {value}" for name, value, _ in n.fields)
    where = f"{n.source}:{n.path}" if n.path else n.source
    text = n.line if len(n.line) <= _MAX_LINE_CHARS else n.line[:_MAX_LINE_CHARS] + f"… [{len(n.line)} chars]"
    if where or text or n.kind is not Kind.NOTE:  # a note of tailhook's own has no source and no line
        lines.append(f"   {where} | {text}")
    return "\n".join(lines) + "\n"

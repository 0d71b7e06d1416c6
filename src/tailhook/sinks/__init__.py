"""Sinks: where deliveries end up. Each sink is one module; ``app`` picks them.

A sink never raises for a delivery that failed: it answers with a ``Result``
that tells the dispatcher what to do next.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from tailhook.events import Delivery
from tailhook.metrics import Metric

__all__ = ["Outcome", "Posted", "Result", "Sink"]


class Outcome(enum.Enum):
    SENT = "sent"
    """Stored by the receiver: the deliveries may be forgotten."""
    RETRY = "retry"
    """A passing failure (5xx, network, rate limit): try again later."""
    REJECTED = "rejected"
    """The receiver refuses these deliveries for good (Discord's 400): never retry them."""
    DEAD = "dead"
    """The destination itself is gone or refuses us (401/403/404): stop sending to it."""
    MISSING = "missing"
    """An edit's message is gone (Discord's 10008, or the webhook that posted it is dead), or the
    thread a post was sent into is (Discord's 10003): post anew, as the first of its kind."""


@dataclass(frozen=True, slots=True)
class Posted:
    """The message a post made, and what it takes to edit it later: edits go through the webhook
    that posted it, into the thread it is in."""

    message_id: str
    webhook: str
    """The id of the webhook that posted it (never its token)."""
    thread_id: str | None = None
    """The thread it is in: the destination's ``thread_id``, the one it was sent into, or the
    thread a forum post opened."""
    files: tuple[str, ...] | None = None
    """The ids of its files, as the receiver answered (``None``: not known)."""


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    detail: str = ""
    """What went wrong, safe to log: never a URL or a token."""
    retry_after: float | None = None
    """Seconds the receiver asked us to wait, when it said."""
    posted: Posted | None = None
    """``SENT`` by a post: the message it made (``None`` from a receiver that keeps none)."""


class Sink(Protocol):
    """Sends deliveries for one destination."""

    name: str

    def batch(self, deliveries: Sequence[Delivery]) -> int:
        """How many of *deliveries*, from the first, one request can carry (at least 1)."""
        ...

    async def send(self, deliveries: Sequence[Delivery], *, thread_id: str | None = None) -> Result:
        """Send *deliveries* (all for this sink's destination) as one request; into the thread
        *thread_id* when given (``threads: per_incident``: ``MISSING`` when it is gone)."""
        ...

    async def edit(self, posted: Posted, deliveries: Sequence[Delivery], fresh: Collection[int] = ()) -> Result:
        """Make the message *posted* say *deliveries* (as ``send`` would make a message of them, but
        pinging no one: an edit notifies no one anyway, and ``allowed_mentions`` keeps its text from
        pinging); those at the places *fresh* are new to it, and bring their files. ``SENT`` answers
        the message's files as they are now (``Result.posted``), when the receiver says. ``MISSING``
        when the message or its webhook is gone: post anew."""
        ...

    async def revive(self) -> bool:
        """Ask the receiver again about what refused us (``DEAD``), where it is time to; whether any
        part of the destination takes requests."""
        ...

    def recheck_in(self) -> float:
        """Seconds until :meth:`revive` has something to ask about; ``math.inf`` while nothing is dead."""
        ...

    def recheck_soon(self) -> None:
        """Make what is dead due for a re-check now (a reload asked for it)."""
        ...

    def throughput(self) -> float:
        """Notifications per second the receiver takes now, at most (its rate limits times what one
        request carries); ``math.inf`` when it has no limit. The dispatcher sizes floods by it."""
        ...

    def collect(self) -> Iterable[Metric]:
        """Its metrics (``tailhook.metrics``), labelled with its ``destination`` name; none for the console."""
        ...

    async def close(self) -> None:
        """Release connections; called once at shutdown, for the sinks in use then."""
        ...

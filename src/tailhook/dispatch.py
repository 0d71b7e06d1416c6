"""The dispatcher: deliveries waiting per destination → that destination's sink.

Each destination has its own queue and its own task, so a slow or dead
webhook never holds up another. Per destination, deliveries go out oldest
first, one request at a time; what a sink answers decides what happens next:

- ``SENT``: forget the delivery.
- ``RETRY``: wait (the receiver's ``retry_after``, else capped, jittered
  exponential backoff) and send the same delivery again; a long outage alone
  never drops anything.
- ``REJECTED``: Discord will never take it (400): log it with the error body
  and go on with the next, so one bad payload never blocks the queue.
- ``DEAD``: the webhook is gone or its token wrong: say so loudly, once, and
  stop sending to it; its deliveries stay queued.

The queues are bounded: when a destination falls behind, ``put`` waits, and so
the sources stop reading instead of piling alerts up in memory.

Time is a parameter: ``clock``, ``sleep`` and ``random`` are injected, so
backoff is tested without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from tailhook.events import Delivery
from tailhook.sinks import Outcome, Result, Sink

__all__ = ["Backoff", "DestinationState", "Dispatcher"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with full jitter in [delay/2, delay]."""

    base_s: float = 1.0
    cap_s: float = 300.0

    def delay(self, attempt: int, random: Callable[[], float] = _random.random) -> float:
        """Seconds to wait before try number *attempt* + 1 (``attempt`` starts at 0)."""
        ceiling = min(self.cap_s, self.base_s * 2 ** min(attempt, 32))
        return float(ceiling * (0.5 + random() / 2))


@dataclass(slots=True)
class DestinationState:
    """What one destination's queue holds and how its sink has fared."""

    queue: deque[Delivery] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0
    retries: int = 0
    rejected: int = 0
    dead: str | None = None
    """Why the sink was declared dead, once it was."""
    last_error: str = ""


class Dispatcher:
    def __init__(
        self,
        sinks: Mapping[str, Sink],
        *,
        max_pending: int = 10_000,
        backoff: Backoff = Backoff(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.sinks = dict(sinks)
        self.max_pending = max_pending
        self.backoff = backoff
        self._sleep = sleep
        self._clock = clock
        self._random = random
        self.states = {name: DestinationState() for name in self.sinks}
        self._room = asyncio.Condition()

    def pending(self, destination: str | None = None) -> int:
        states = [self.states[destination]] if destination else self.states.values()
        return sum(len(s.queue) for s in states)

    async def put(self, deliveries: Sequence[Delivery]) -> None:
        """Queue *deliveries*; wait while their destination's queue is full."""
        for delivery in deliveries:
            state = self.states.get(delivery.destination)
            if state is None:
                log.error("no destination named %s; delivery dropped", delivery.destination)
                continue
            async with self._room:
                await self._room.wait_for(lambda s=state: len(s.queue) < self.max_pending)  # type: ignore[misc]
            state.queue.append(delivery)
            state.ready.set()

    async def run(self) -> None:
        """Deliver until cancelled, one task per destination."""
        async with asyncio.TaskGroup() as group:
            for name in self.sinks:
                group.create_task(self._deliver(name), name=f"deliver-{name}")

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every live queue is empty, at most *timeout_s*; ``True`` if it is."""
        deadline = self._clock() + timeout_s
        while any(s.queue and s.dead is None for s in self.states.values()):
            if self._clock() >= deadline:
                return False
            try:
                async with asyncio.timeout(max(0.0, deadline - self._clock())), self._room:
                    await self._room.wait()
            except TimeoutError:
                return False
        return True

    async def _deliver(self, name: str) -> None:
        state, sink = self.states[name], self.sinks[name]
        while state.dead is None:
            if not state.queue:
                state.ready.clear()
                await state.ready.wait()
                continue
            delivery = state.queue[0]
            result = await self._send_until_settled(name, sink, state, delivery)
            if result.outcome is Outcome.DEAD:
                return
            state.queue.popleft()
            async with self._room:
                self._room.notify_all()

    async def _send_until_settled(self, name: str, sink: Sink, state: DestinationState, delivery: Delivery) -> Result:
        attempt = 0
        while True:
            result = await sink.send([delivery])
            if result.outcome is Outcome.SENT:
                state.sent += 1
                return result
            state.last_error = result.detail
            if result.outcome is Outcome.REJECTED:
                state.rejected += 1
                log.error(
                    "destination %s refused the alert %r of rule %s for good: %s",
                    name,
                    delivery.notification.title[:200],
                    delivery.notification.rule,
                    result.detail,
                )
                return result
            if result.outcome is Outcome.DEAD:
                state.dead = result.detail
                async with self._room:
                    self._room.notify_all()  # a drain no longer waits for this queue
                log.error(
                    "destination %s is dead: %s. No more requests go to it; %d alerts wait for it. "
                    "Fix its URL and restart tailhook.",
                    name,
                    result.detail,
                    len(state.queue),
                )
                return result
            state.retries += 1
            delay = result.retry_after or self.backoff.delay(attempt, self._random)
            attempt += 1
            log.warning("destination %s: %s; try %d again in %.1fs", name, result.detail, attempt + 1, delay)
            await self._sleep(delay)

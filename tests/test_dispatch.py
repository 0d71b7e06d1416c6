"""The dispatcher against a scripted sink: retries, rejects, dead destinations, backpressure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tailhook.dispatch import Backoff, Dispatcher
from tailhook.events import Delivery, Kind, Notification, Severity
from tailhook.sinks import Outcome, Result
from tests.conftest import FakeClock


class ScriptedSink:
    """Answers each send with the next scripted result (SENT once the script runs out)."""

    def __init__(self, name: str, script: Sequence[Result] = ()) -> None:
        self.name = name
        self.script = list(script)
        self.sent: list[str] = []
        self.attempts: list[str] = []

    async def send(self, deliveries: Sequence[Delivery]) -> Result:
        (delivery,) = deliveries
        self.attempts.append(delivery.notification.title)
        result = self.script.pop(0) if self.script else Result(Outcome.SENT)
        if result.outcome is Outcome.SENT:
            self.sent.append(delivery.notification.title)
        return result

    async def close(self) -> None:
        return None


def delivery(title: str, destination: str = "alerts") -> Delivery:
    n = Notification(
        kind=Kind.ALERT, rule="r", severity=Severity.ERROR, key="k", title=title,
        description="", line="l", source="s", host="h", time=0.0,
    )  # fmt: skip
    return Delivery(destination, n)


async def run_until(dispatcher: Dispatcher, condition: object, timeout: float = 5.0) -> None:
    task = asyncio.create_task(dispatcher.run())
    try:
        async with asyncio.timeout(timeout):
            while not condition():  # type: ignore[operator]
                await asyncio.sleep(0)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_backoff_is_capped_and_jittered() -> None:
    backoff = Backoff(base_s=1, cap_s=60)
    assert [backoff.delay(n, random=lambda: 1.0) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.delay(3, random=lambda: 0.0) == 4.0
    assert backoff.delay(10_000, random=lambda: 1.0) == 60


async def test_retries_with_backoff_then_delivers_in_order(clock: FakeClock) -> None:
    failure = Result(Outcome.RETRY, "Discord answered 503")
    sink = ScriptedSink("alerts", [failure, failure, Result(Outcome.RETRY, "429", retry_after=2.5)])
    dispatcher = Dispatcher({"alerts": sink}, sleep=clock.sleep, clock=clock, random=lambda: 1.0)
    await dispatcher.put([delivery("one"), delivery("two")])

    await run_until(dispatcher, lambda: len(sink.sent) == 2)

    assert sink.sent == ["one", "two"]
    assert sink.attempts == ["one"] * 4 + ["two"]
    assert clock.slept == [1.0, 2.0, 2.5]  # backoff, backoff, then what the receiver asked for
    assert dispatcher.states["alerts"].retries == 3


async def test_a_rejected_delivery_does_not_block_the_queue(clock: FakeClock) -> None:
    sink = ScriptedSink("alerts", [Result(Outcome.REJECTED, "Discord answered 400")])
    dispatcher = Dispatcher({"alerts": sink}, sleep=clock.sleep, clock=clock)
    await dispatcher.put([delivery("bad"), delivery("good")])

    await run_until(dispatcher, lambda: sink.sent == ["good"])
    assert dispatcher.states["alerts"].rejected == 1
    assert dispatcher.pending() == 0


async def test_a_dead_destination_stops_but_keeps_its_deliveries_and_others_go_on(clock: FakeClock) -> None:
    dead = ScriptedSink("dead", [Result(Outcome.DEAD, "Discord answered 404")])
    alive = ScriptedSink("alive")
    dispatcher = Dispatcher({"dead": dead, "alive": alive}, sleep=clock.sleep, clock=clock)
    await dispatcher.put([delivery(f"d{i}", "dead") for i in range(3)] + [delivery("a", "alive")])

    await run_until(dispatcher, lambda: dispatcher.states["dead"].dead is not None and alive.sent == ["a"])
    assert dead.attempts == ["d0"]  # nothing more is sent to a dead webhook
    assert dispatcher.pending("dead") == 3
    assert await dispatcher.drain(0.1)  # dead queues do not hold up a drain


async def test_put_waits_while_a_queue_is_full() -> None:
    sink = ScriptedSink("alerts")
    dispatcher = Dispatcher({"alerts": sink}, max_pending=2)
    await dispatcher.put([delivery("1"), delivery("2")])
    blocked = asyncio.create_task(dispatcher.put([delivery("3")]))
    await asyncio.sleep(0.01)
    assert not blocked.done() and dispatcher.pending() == 2

    await run_until(dispatcher, lambda: blocked.done() and len(sink.sent) == 3)
    assert sink.sent == ["1", "2", "3"]

"""The dispatcher between a real spool and a scripted sink: retries, rejects, dead destinations, drops."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import pytest

from tailhook.dispatch import Backoff, Dispatcher, drops_notification
from tailhook.events import Delivery, Severity
from tailhook.sinks import Outcome, Result
from tailhook.spool import Spool
from tests.conftest import FakeClock
from tests.conftest import make_delivery as delivery


class ScriptedSink:
    """Answers each send with the next scripted result (SENT once the script runs out).

    It carries *per_request* notifications per request; ``refuse`` is a title
    it answers 400 for, alone or in company; ``revive`` is what its re-check says.
    """

    def __init__(self, name: str, script: Sequence[Result] = (), *, per_request: int = 1, refuse: str = "") -> None:
        self.name = name
        self.script = list(script)
        self.per_request = per_request
        self.refuse = refuse
        self.sent: list[str] = []
        self.attempts: list[str] = []
        self.requests: list[list[str]] = []
        self.alive_again = False
        self.dead = False
        self.rechecks = 0
        self.recheck_after = 0.0
        """What ``recheck_in`` says while dead, until ``recheck_soon``."""
        self.gate: asyncio.Event | None = None
        """When set: each send waits for it (a request in flight)."""
        self.per_second = math.inf
        """What ``throughput`` says: notifications per second it takes."""

    def batch(self, deliveries: Sequence[Delivery]) -> int:
        return min(self.per_request, len(deliveries))

    async def send(self, deliveries: Sequence[Delivery], *, thread_id: str | None = None) -> Result:
        assert 1 <= len(deliveries) <= self.per_request
        titles = [d.notification.title for d in deliveries]
        if self.gate is not None:
            await self.gate.wait()
        self.requests.append(titles)
        self.attempts.extend(titles)
        if self.refuse in titles:
            return Result(Outcome.REJECTED, "Discord answered 400")
        result = self.script.pop(0) if self.script else Result(Outcome.SENT)
        self.dead = result.outcome is Outcome.DEAD
        if result.outcome is Outcome.SENT:
            self.sent.extend(titles)
        return result

    async def revive(self) -> bool:
        self.rechecks += 1
        self.dead = not self.alive_again
        return self.alive_again

    def recheck_in(self) -> float:
        return self.recheck_after if self.dead else math.inf

    def throughput(self) -> float:
        return self.per_second

    def recheck_soon(self) -> None:
        self.recheck_after = 0.0

    async def close(self) -> None:
        return None


async def run_until(
    dispatcher: Dispatcher, condition: Callable[[], object], timeout: float = 5.0, *, settle: bool = True
) -> None:
    """Run the dispatcher until *condition* holds and (with *settle*) what it sent has left the spool."""
    task = asyncio.create_task(dispatcher.run())
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.001)
        if settle:
            assert await dispatcher.drain(timeout)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_backoff_is_capped_and_jittered() -> None:
    backoff = Backoff(base_s=1, cap_s=60)
    assert [backoff.delay(n, random=lambda: 1.0) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.delay(3, random=lambda: 0.0) == 4.0
    assert backoff.delay(10_000, random=lambda: 1.0) == 60


async def test_retries_with_backoff_then_delivers_in_order(spool: Spool, clock: FakeClock) -> None:
    failure = Result(Outcome.RETRY, "Discord answered 503")
    sink = ScriptedSink("alerts", [failure, failure, Result(Outcome.RETRY, "429", retry_after=2.5)])
    dispatcher = Dispatcher({"alerts": sink}, spool, host="h", sleep=clock.sleep, clock=clock, random=lambda: 1.0)
    await spool.commit([delivery("one"), delivery("two")])

    await run_until(dispatcher, lambda: len(sink.sent) == 2)

    assert sink.sent == ["one", "two"]
    assert sink.attempts == ["one"] * 4 + ["two"]
    assert clock.slept == [1.0, 2.0, 2.5]  # backoff, backoff, then what the receiver asked for
    assert dispatcher.states["alerts"].retries == 3
    assert await spool.pending() == 0


async def test_a_failure_is_recorded_in_the_spool(spool: Spool, clock: FakeClock) -> None:
    blocked = asyncio.Event()

    async def sleep(seconds: float) -> None:
        blocked.set()
        await asyncio.Event().wait()  # stay in the backoff until cancelled

    sink = ScriptedSink("alerts", [Result(Outcome.RETRY, "Discord answered 502")])
    dispatcher = Dispatcher({"alerts": sink}, spool, host="h", sleep=sleep, clock=clock)
    await spool.commit([delivery("one")])
    await run_until(dispatcher, blocked.is_set, settle=False)

    (waiting,) = await spool.next("alerts")
    assert waiting.attempts == 1


async def test_a_rejected_delivery_goes_to_the_dead_letters_and_does_not_block(spool: Spool, clock: FakeClock) -> None:
    sink = ScriptedSink("alerts", [Result(Outcome.REJECTED, "Discord answered 400")])
    dispatcher = Dispatcher({"alerts": sink}, spool, host="h", sleep=clock.sleep, clock=clock)
    await spool.commit([delivery("bad"), delivery("good")])

    await run_until(dispatcher, lambda: sink.sent == ["good"])
    assert dispatcher.states["alerts"].rejected == 1
    assert (await spool.status()).dead_letters == {"alerts": 1}


async def test_a_dead_destination_stops_but_keeps_its_deliveries_and_others_go_on(
    spool: Spool, clock: FakeClock
) -> None:
    dead = ScriptedSink("dead", [Result(Outcome.DEAD, "Discord answered 404")])
    alive = ScriptedSink("alive")
    dispatcher = Dispatcher({"dead": dead, "alive": alive}, spool, host="h", sleep=clock.sleep, clock=clock)
    await spool.commit([delivery(f"d{i}", destination="dead") for i in range(3)] + [delivery("a", destination="alive")])

    task = asyncio.create_task(dispatcher.run())
    try:
        assert await dispatcher.drain(5)  # the live one is emptied; the dead one does not hold it up
    finally:
        task.cancel()
    assert dispatcher.states["dead"].dead == "Discord answered 404"
    assert alive.sent == ["a"]
    assert dead.attempts == ["d0"]  # nothing more is sent to a dead webhook
    assert await spool.pending("dead") == 3


async def test_new_notifications_wake_the_dispatcher(spool: Spool) -> None:
    sink = ScriptedSink("alerts")
    dispatcher = Dispatcher({"alerts": sink}, spool, host="h")
    task = asyncio.create_task(dispatcher.run())
    try:
        for i in range(5):
            await spool.commit([delivery(f"n{i}")])
            async with asyncio.timeout(5):
                while len(sink.sent) <= i:
                    await asyncio.sleep(0.001)
    finally:
        task.cancel()
    assert sink.sent == [f"n{i}" for i in range(5)]


async def test_drops_are_announced_once_delivery_works(tmp_path: Path) -> None:
    spool = await Spool.open(tmp_path, max_bytes=20_000)
    try:
        for i in range(20):
            severity = Severity.INFO if i % 2 else Severity.CRITICAL
            await spool.commit([delivery(f"n{i}", severity=severity, size=1500)])
        sink = ScriptedSink("alerts")
        dispatcher = Dispatcher({"alerts": sink}, spool, host="web-1")
        await run_until(dispatcher, lambda: any("dropped" in title for title in sink.sent))
    finally:
        await spool.close()
    (announcement,) = [title for title in sink.sent if "dropped" in title]
    dropped_info = 10 - sum(1 for t in sink.sent if t in {f"n{i}" for i in range(1, 20, 2)})
    assert announcement == f"{dropped_info} info notifications dropped while the spool was full"
    assert all(f"n{i}" in sink.sent for i in range(0, 20, 2))  # every critical delivered


def test_one_announcement_says_what_was_dropped_and_why() -> None:
    drops = {
        ("full", Severity.INFO): 312,
        ("full", Severity.DEBUG): 4,
        ("expired", Severity.WARNING): 1,
    }
    n = drops_notification(drops, host="web-1", time=5.0)
    assert n.title == (
        "1 warning notification dropped after waiting longer than spool.max_age; "
        "312 info, 4 debug notifications dropped while the spool was full"
    )
    assert "spool.max_bytes" in n.description and "spool.max_age" in n.description
    assert n.severity is Severity.WARNING and n.host == "web-1"


async def test_due_notifications_go_out_as_many_per_request_as_the_sink_carries(spool: Spool) -> None:
    sink = ScriptedSink("alerts", per_request=10)
    dispatcher = Dispatcher({"alerts": sink}, spool, host="h")
    await spool.commit([delivery(f"n{i}") for i in range(25)])

    await run_until(dispatcher, lambda: len(sink.sent) == 25)
    assert [len(request) for request in sink.requests] == [10, 10, 5]
    assert sink.sent == [f"n{i}" for i in range(25)]  # in order
    assert dispatcher.states["alerts"].sent == 25 and dispatcher.states["alerts"].requests == 3


async def test_a_refused_message_is_split_so_only_the_bad_alert_is_a_dead_letter(spool: Spool) -> None:
    sink = ScriptedSink("alerts", per_request=10, refuse="n3")
    dispatcher = Dispatcher({"alerts": sink}, spool, host="h")
    await spool.commit([delivery(f"n{i}") for i in range(15)])

    await run_until(dispatcher, lambda: len(sink.sent) == 14)
    assert sink.sent == [f"n{i}" for i in range(15) if i != 3]
    assert sink.requests[0] == [f"n{i}" for i in range(10)]  # refused as a whole
    assert sink.requests[1:11] == [[f"n{i}"] for i in range(10)]  # then one by one
    assert sink.requests[11] == [f"n{i}" for i in range(10, 15)]  # and back to batches
    assert (await spool.status()).dead_letters == {"alerts": 1}
    assert dispatcher.states["alerts"].rejected == 1


async def test_a_dead_destination_comes_back_when_its_recheck_says_so(spool: Spool, clock: FakeClock) -> None:
    sink = ScriptedSink("alerts", [Result(Outcome.DEAD, "Discord answered 404")], per_request=10)
    dispatcher = Dispatcher({"alerts": sink}, spool, host="h", sleep=clock.sleep, clock=clock)
    await spool.commit([delivery(f"n{i}") for i in range(3)])
    task = asyncio.create_task(dispatcher.run())
    try:
        async with asyncio.timeout(5):
            while sink.rechecks < 1:  # asked again, and still dead
                await asyncio.sleep(0.001)
        assert dispatcher.states["alerts"].dead == "Discord answered 404" and sink.sent == []
        sink.alive_again = True
        async with asyncio.timeout(5):
            while len(sink.sent) < 3:
                await asyncio.sleep(0.001)
    finally:
        task.cancel()
    assert dispatcher.states["alerts"].dead is None
    assert sink.sent == ["n0", "n1", "n2"]


async def test_a_reload_with_a_new_sink_revives_a_dead_destination_at_once(spool: Spool) -> None:
    dead = ScriptedSink("alerts", [Result(Outcome.DEAD, "Discord answered 401")])
    dispatcher = Dispatcher({"alerts": dead}, spool, host="h")
    await spool.commit([delivery("n0"), delivery("n1")])
    task = asyncio.create_task(dispatcher.run())
    try:
        async with asyncio.timeout(5):
            while dispatcher.states["alerts"].dead is None:
                await asyncio.sleep(0.001)
        fixed = ScriptedSink("alerts")
        dispatcher.replace("alerts", fixed)
        async with asyncio.timeout(5):
            while len(fixed.sent) < 2:
                await asyncio.sleep(0.001)
        dispatcher.remove("alerts")
        assert "alerts" not in dispatcher.states and "alerts" not in dispatcher.sinks
    finally:
        task.cancel()
    assert fixed.sent == ["n0", "n1"] and dead.sent == []


async def test_a_reload_asks_a_dead_destination_again_at_once(spool: Spool) -> None:
    sink = ScriptedSink("alerts", [Result(Outcome.DEAD, "Discord answered 404")])
    sink.recheck_after = 3600.0  # the next re-check would be an hour away
    dispatcher = Dispatcher({"alerts": sink}, spool, host="h")
    await spool.commit([delivery("n0")])
    task = asyncio.create_task(dispatcher.run())
    try:
        async with asyncio.timeout(5):
            while dispatcher.states["alerts"].dead is None:
                await asyncio.sleep(0.001)
        sink.alive_again = True
        dispatcher.recheck("alerts")
        async with asyncio.timeout(5):
            while sink.sent != ["n0"]:
                await asyncio.sleep(0.001)
    finally:
        task.cancel()
    assert sink.rechecks == 1 and dispatcher.states["alerts"].dead is None


@contextlib.asynccontextmanager
async def removed_mid_request(spool: Spool) -> AsyncIterator[tuple[Dispatcher, ScriptedSink]]:
    """A dispatcher whose destination "alerts" was removed while its request for "n0" was in flight.

    Inside: the sink has not answered yet (``sink.gate``); after: every notification left the spool.
    """
    sink = ScriptedSink("alerts")
    sink.gate = asyncio.Event()
    dispatcher = Dispatcher({"alerts": sink}, spool, host="h")
    await spool.commit([delivery("n0")])
    task = asyncio.create_task(dispatcher.run())
    try:
        async with asyncio.timeout(5):
            while not dispatcher.states["alerts"].sending:
                await asyncio.sleep(0.001)
        dispatcher.remove("alerts")
        yield dispatcher, sink
        sink.gate.set()  # Discord answers after the removal
        async with asyncio.timeout(5):
            while await spool.pending("alerts"):
                await asyncio.sleep(0.001)
    finally:
        task.cancel()


async def test_removing_a_destination_mid_request_settles_the_request_first(spool: Spool) -> None:
    async with removed_mid_request(spool) as (_, sink):
        pass
    assert sink.sent == ["n0"]  # delivered once and deleted from the spool: never sent again


async def test_a_destination_added_back_while_its_old_request_settles_waits_for_it(spool: Spool) -> None:
    new = ScriptedSink("alerts")
    async with removed_mid_request(spool) as (dispatcher, old):
        dispatcher.replace("alerts", new)  # back, by a second reload, before Discord answered
        await spool.commit([delivery("n1")])
    assert old.sent == ["n0"] and new.sent == ["n1"]  # n0 once, not again through the new sink

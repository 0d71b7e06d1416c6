"""Fleet-wide storm keys against a real redis-server: hosts with storm control of their own, one fake
clock, one Redis. At most max_per_window first alerts across the fleet, one digest with the exact count
from every host, a rule that keeps its keys local, and Redis lost mid-storm."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from tailhook.config import FleetConfig, StormConfig
from tailhook.events import Delivery, Event, Kind, Line, Notification, Severity
from tailhook.fleet import Fleet
from tailhook.fleet_storm import GRACE_S, PATIENCE_S, FleetStorm, ShareId, ShareState, hosts_in_words, instance_id
from tailhook.storm import KeyState, StormControl, StormKey
from tests.conftest import FakeClock
from tests.metrics import reported
from tests.redis_server import RedisServer, redis_server

pytestmark = pytest.mark.timeout(60)

WINDOW = StormConfig(window=10, max_per_window=3, update_every=2)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as running:
        yield running


def event(
    text: str, *, severity: Severity = Severity.ERROR, storm: StormConfig | None = None, key: str = "upstream"
) -> Event:
    return Event(rule="e500", severity=severity, storm=storm, key=key, title="E500 upstream timeout",
                 description="", captures={}, line=Line(text=text, source="app", time=5.0))  # fmt: skip


class Host:
    """One daemon's storm control and its fleet stage, committing as the daemon does, into a "spool" of
    its own (the storm's keys and the fleet's shares), from which ``restart()`` starts afresh."""

    def __init__(self, name: str, server: RedisServer, clock: FakeClock, *, instance: str = "") -> None:
        self.name, self.server, self.clock = name, server, clock
        self.instance = instance or f"{name}-state"
        self.keys: dict[StormKey, KeyState] = {}
        self.shares: dict[ShareId, ShareState] = {}
        self.sent: list[Notification] = []
        self._start()

    def _start(self) -> None:
        self.storm = StormControl(WINDOW, host=self.name, clock=self.clock)
        self.storm.restore(self.keys.values(), lambda _: None)
        self.storm.closures = []
        self.fleet = Fleet(FleetConfig(self.server.url, "shop", timeout=0.3), clock=self.clock)
        self.fleet_storm = FleetStorm(self.fleet, host=self.name, instance=self.instance, clock=self.clock)
        self.fleet_storm.restore(self.shares.values())

    async def restart(self) -> None:
        """A stop (its last tick stored) and a start from what was stored."""
        await self.tick()
        await self.fleet.close()
        self._start()

    async def see(self, *events: Event) -> None:
        await self._commit([n for e in events for n in self.storm.admit(e)])

    async def tick(self, *more: Notification) -> None:
        """What time brings: the storm's due notes, *more* (an escalation's, an absence's), the fleet's
        digests due."""
        await self._commit(lambda: [*self.storm.due(), *more], ticked=True)

    async def _commit(
        self, made: Sequence[Notification] | Callable[[], Sequence[Notification]], *, ticked: bool = False
    ) -> None:
        async with self.fleet_storm.lock:  # what time brings is made under it, as the daemon does
            deliveries = [Delivery("alerts", n) for n in (made() if callable(made) else made)]
            decided = await self.fleet_storm.due() if ticked else []
            changes = self.storm.changes()
            kept = await self.fleet_storm.filter(deliveries, changes, self.storm, admitted=not ticked)
            self.sent += [d.notification for d in kept] + decided
            for key, state in changes:
                stored = self.keys.pop(key, None)
                if state is not None:  # a change of counts alone keeps the lines stored before
                    keep = stored is not None and not state.fresh
                    self.keys[key] = replace(state, last_held=stored.last_held) if keep and stored else state
            for ident, share in self.fleet_storm.changes():
                self.shares.pop(ident, None)
                if share is not None:
                    self.shares[ident] = share

    def kinds(self, kind: Kind) -> list[Notification]:
        return [n for n in self.sent if n.kind is kind]


@pytest.fixture
async def hosts(server: RedisServer, clock: FakeClock) -> AsyncIterator[list[Host]]:
    """Five hosts of one fleet."""
    made = [Host(f"pod-{i}", server, clock) for i in range(5)]
    yield made
    for host in made:
        await host.fleet.close()


async def settle(hosts: list[Host], clock: FakeClock, seconds: float) -> None:
    """Time passes by steps of a tenth of a second, every host ticking at each."""
    for _ in range(round(seconds * 10)):
        clock.advance(0.1)
        for host in hosts:
            await host.tick()


async def test_the_same_error_on_every_host_is_max_per_window_alerts_and_one_exact_digest(
    hosts: list[Host], clock: FakeClock
) -> None:
    for i in range(10):  # 10 each, one after the other across the hosts, within one window
        for host in hosts:
            await host.see(event(f"{host.name} line {i}"))
        clock.advance(0.1)
    alerts = [n for host in hosts for n in host.kinds(Kind.ALERT)]
    assert len(alerts) == 3 and {n.host for n in alerts} == {"pod-0", "pod-1", "pod-2"}
    assert all(not host.kinds(Kind.DIGEST) for host in hosts)
    await settle(hosts, clock, 10 + 2 * GRACE_S)
    digests = [(host.name, n) for host in hosts for n in host.kinds(Kind.DIGEST)]
    assert len(digests) == 1
    name, digest = digests[0]
    assert name == "pod-0"  # the host of the first alert: its digest edits that message
    assert digest.count == 47  # 50 events, 3 sent
    assert digest.title == "E500 upstream timeout (+47 more)"
    assert digest.description.startswith("47 more events were held back on 5 hosts (pod-0, pod-1 … pod-4)")
    assert digest.line == "pod-0 line 9"  # the latest line held on the host that sent the digest
    refused = sum(reported(host.fleet_storm)["tailhook_fleet_storm_refused_total"][(("fleet", "shop"),)]
                  for host in hosts)  # fmt: skip
    assert refused == 12  # each host's own storm control let 3 through: 15, of which the fleet sent 3

    # the next window is a new storm: its first alerts go out again
    await hosts[4].see(event("pod-4 again"))
    assert [n.line for n in hosts[4].kinds(Kind.ALERT)] == ["pod-4 again"]


async def test_a_more_severe_alert_goes_out_whatever_the_fleet_sent(hosts: list[Host]) -> None:
    await hosts[0].see(*(event(f"a {i}") for i in range(3)))
    await hosts[1].see(event("b 0"), *(event(f"b {i}", severity=Severity.CRITICAL) for i in (1, 2)))
    assert [n.line for n in hosts[1].kinds(Kind.ALERT)] == ["b 1"]  # the upgrade; not its equal after it


async def test_an_alert_that_time_brings_is_not_claimed(hosts: list[Host]) -> None:
    await hosts[0].see(*(event(f"a {i}") for i in range(3)))
    await hosts[1].see(event("b 0"))
    assert not hosts[1].kinds(Kind.ALERT)  # the fleet's window sent its 3
    escalated = replace(hosts[0].kinds(Kind.ALERT)[0], title="Still firing after 5 min: E500 upstream timeout")
    await hosts[1].tick(escalated)  # an escalation route's note is an alert of the key: not the storm's
    assert hosts[1].kinds(Kind.ALERT) == [escalated]


async def test_a_restart_after_the_window_closed_neither_loses_nor_repeats_a_count(
    hosts: list[Host], clock: FakeClock
) -> None:
    for i in range(6):
        for host in hosts[:3]:
            await host.see(event(f"{host.name} line {i}"))
            clock.advance(0.1)  # held lines spread over more than a second: stored as they come
    clock.advance(10)
    for host in hosts[:3]:
        await host.restart()  # stopping closes the window (its local digest stands ready), then starts again
    assert all(not host.kinds(Kind.DIGEST) for host in hosts)
    await settle(hosts, clock, 3 * GRACE_S)
    digests = [n for host in hosts for n in host.kinds(Kind.DIGEST)]
    assert [(n.host, n.count) for n in digests] == [("pod-0", 15)]  # 18 events, 3 sent


async def test_a_restart_mid_window_neither_loses_nor_repeats_a_count(hosts: list[Host], clock: FakeClock) -> None:
    for i in range(6):
        for host in hosts[:3]:
            await host.see(event(f"{host.name} line {i}"))
            clock.advance(0.1)
    await hosts[1].restart()
    await hosts[2].restart()
    for host in hosts[:3]:
        await host.see(event(f"{host.name} after"))
    await settle(hosts, clock, 10 + 3 * GRACE_S)
    digests = [n for host in hosts for n in host.kinds(Kind.DIGEST)]
    assert [(n.host, n.count) for n in digests] == [("pod-0", 18)]  # 21 events, 3 sent
    assert sum(len(host.kinds(Kind.ALERT)) for host in hosts) == 3


async def test_a_digest_whose_answer_was_lost_is_claimed_again(
    hosts: list[Host], clock: FakeClock, server: RedisServer
) -> None:
    for i in range(4):
        for host in hosts[:2]:
            await host.see(event(f"{host.name} line {i}"))
    await settle(hosts, clock, 10)
    (window,) = [key for key, _ in server.stored() if re.fullmatch(rb"tailhook:shop:storm:\{\w+\}:\d+", key)]
    with server.client() as client:
        client.hset(window, "digest", hosts[0].instance)  # pod-0's claim went through; its answer never came
    await settle(hosts, clock, 3 * GRACE_S)
    assert [(n.host, n.count) for host in hosts for n in host.kinds(Kind.DIGEST)] == [("pod-0", 5)]  # 8, 3 sent


async def test_two_commits_of_one_host_at_once_count_each_event_once(hosts: list[Host], clock: FakeClock) -> None:
    await hosts[0].see(*(event(f"a {i}") for i in range(3)))  # pod-0 opens the fleet's window
    clock.advance(2)
    one = hosts[1]
    one.storm.updates_every = 1.0  # (for destinations that edit: a fleet key's updates are not sent)
    # two sources of pod-1 commit at once: the second's lines come while the first's claim is in flight
    await asyncio.gather(one.see(*(event(f"b1 {i}") for i in range(5))), one.see(*(event(f"b2 {i}") for i in range(5))))
    await settle(hosts, clock, 10 + 3 * GRACE_S)
    digests = [(n.host, n.key, n.count) for host in hosts for n in host.kinds(Kind.DIGEST)]
    assert digests == [("pod-0", "upstream", 10)]  # 13 events of the key, 3 sent
    assert not one.kinds(Kind.UPDATE)  # the second commit saw the window as the first left it: the fleet's


async def test_an_escalated_window_opens_the_fleets_window_as_long(hosts: list[Host], clock: FakeClock) -> None:
    escalating = StormConfig(window=10, max_per_window=1, max_window=40)
    host = hosts[0]
    await host.see(*(event(f"first {i}", storm=escalating) for i in range(3)))  # held 2: the next window is 20 s
    await settle([host], clock, 10.5)
    await host.see(event("second", storm=escalating))
    window = host.storm.window_of(("e500", "upstream"))
    assert window is not None and window[0] == 20.0  # the fleet's window as long as the escalated one
    await hosts[1].see(event("joins", storm=escalating))
    other = hosts[1].storm.window_of(("e500", "upstream"))
    assert other is not None and other[0] == 20.0  # a host joining it follows its length
    await hosts[1].restart()
    restored = hosts[1].storm.window_of(("e500", "upstream"))
    assert restored is not None and restored[0] == 20.0  # and keeps it across a restart


async def test_two_daemons_that_share_a_host_name_by_mistake_send_one_digest(
    server: RedisServer, clock: FakeClock
) -> None:
    twins = [Host("web", server, clock, instance=f"state-{i}") for i in range(2)]
    try:
        for i in range(4):
            for host in twins:
                await host.see(event(f"web line {i}"))
        await settle(twins, clock, 10 + 3 * GRACE_S)
        assert [(n.host, n.count) for host in twins for n in host.kinds(Kind.DIGEST)] == [("web", 5)]  # 8, 3 sent
    finally:
        for host in twins:
            await host.fleet.close()


def test_a_daemons_instance_is_kept_in_its_state(tmp_path: Path) -> None:
    first = instance_id(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{32}", first) and instance_id(tmp_path) == first
    assert (tmp_path / "fleet-instance").stat().st_mode & 0o777 == 0o600
    assert instance_id(tmp_path / "elsewhere") != first  # another state: another daemon
    (tmp_path / "fleet-instance").write_text("garbage")
    assert instance_id(tmp_path) not in (first, "garbage")


async def test_a_windows_digest_made_before_the_next_windows_alert_but_committed_after(
    hosts: list[Host], clock: FakeClock
) -> None:
    host = hosts[0]
    await host.see(*(event(f"w1 {i}") for i in range(10)))  # 3 alerts, 7 held
    clock.advance(10.05)
    closing = host.storm.due()  # time closes window 1 (its digest made) ...
    await host.see(event("w2 0"))  # ... and a line of window 2 is committed first
    await host._commit(closing, ticked=True)
    await host.see(*(event(f"w2 {i}") for i in range(1, 5)))  # window 2: 3 alerts, 2 held
    await settle(hosts, clock, 10 + 3 * GRACE_S)
    assert [n.count for n in host.kinds(Kind.DIGEST)] == [7, 2]  # each window its own count


async def test_a_window_without_a_share_is_not_taken_for_the_one_before(
    hosts: list[Host], clock: FakeClock, server: RedisServer
) -> None:
    short = StormConfig(window=4, max_per_window=1)
    host = hosts[0]
    await host.see(*(event(f"w1 {i}", storm=short) for i in range(3)))  # 1 alert, 2 held
    clock.advance(4.05)
    await host.tick()  # window 1 closes: its digest waits for the fleet's
    server.kill()
    await host.see(event("w2 0", storm=short), event("w2 1", storm=short))  # no claim: alone, 1 held
    await settle(hosts, clock, 4 + PATIENCE_S)
    alerts, digests = len(host.kinds(Kind.ALERT)), [n.count for n in host.kinds(Kind.DIGEST)]
    assert alerts + sum(digests) == 5 and sorted(digests) == [1, 2]  # every event sent or counted once


async def test_digest_false_sends_no_fleet_digest(hosts: list[Host], clock: FakeClock) -> None:
    quiet = StormConfig(window=10, max_per_window=1, digest=False)
    for host in hosts[:2]:
        await host.see(*(event(f"{host.name} {i}", storm=quiet) for i in range(3)))
    await settle(hosts, clock, 10 + 3 * GRACE_S)
    assert [len(host.kinds(Kind.ALERT)) for host in hosts[:2]] == [1, 0]
    assert not [n for host in hosts for n in host.kinds(Kind.DIGEST)]
    assert all(not host.shares for host in hosts)  # nothing left waiting


async def test_a_rule_with_fleet_false_storms_on_each_host_alone(
    hosts: list[Host], clock: FakeClock, server: RedisServer
) -> None:
    local = StormConfig(window=10, max_per_window=3, fleet=False)
    for host in hosts:
        await host.see(*(event(f"{host.name} {i}", storm=local) for i in range(5)))
    await settle(hosts, clock, 10 + 2 * GRACE_S)
    for host in hosts:
        assert len(host.kinds(Kind.ALERT)) == 3
        assert [n.count for n in host.kinds(Kind.DIGEST)] == [2]
    assert not [key for key, _ in server.stored() if b":storm:" in key]


async def test_with_redis_gone_mid_storm_each_host_sums_up_what_it_held(
    hosts: list[Host], clock: FakeClock, server: RedisServer
) -> None:
    for i in range(6):
        for host in hosts:
            await host.see(event(f"{host.name} line {i}"))
    server.kill()
    for host in hosts:  # after Redis went: held by each host's storm control, counted by none
        await host.see(event(f"{host.name} late"))
    await settle(hosts, clock, 10 + PATIENCE_S - 0.5)
    assert all(not host.kinds(Kind.DIGEST) for host in hosts)  # Redis may come back (or only its answer)
    await settle(hosts, clock, 1)
    alerts = sum(len(host.kinds(Kind.ALERT)) for host in hosts)
    digests = [n for host in hosts for n in host.kinds(Kind.DIGEST)]
    assert alerts == 3
    assert len(digests) == 5  # each host its own
    assert alerts + sum(n.count for n in digests) == 35  # nothing lost: every event sent or counted
    assert all(f"held back on {n.host} in this" in n.description for n in digests)
    assert all(not host.fleet.up for host in hosts)


async def test_redis_holds_no_rule_key_or_log_text(hosts: list[Host], server: RedisServer) -> None:
    for host in hosts:
        await host.see(*(event(f"{host.name} secret-line-{i}") for i in range(5)))
    stored = b"".join(key + value for key, value in server.stored())
    assert b":storm:" in stored
    for secret in (b"upstream", b"e500", b"E500", b"secret-line"):
        assert secret not in stored


def test_hosts_in_words_names_them_in_natural_order() -> None:
    assert hosts_in_words({"pod-10": 1, "pod-2": 1, "pod-1": 3}) == "3 hosts (pod-1, pod-2, pod-10)"
    names = {f"pod-{i}": 1 for i in range(20)}
    assert hosts_in_words(names) == "20 hosts (pod-0, pod-1 … pod-19)"
    assert hosts_in_words({"web": 4}) == "1 host (web)"

"""Fleet-wide storm keys against a real redis-server: hosts with storm control of their own, one fake
clock, one Redis. At most max_per_window first alerts across the fleet, one digest with the exact count
from every host, a rule that keeps its keys local, and Redis lost mid-storm."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from tailhook.config import FleetConfig, StormConfig
from tailhook.events import Delivery, Event, Kind, Line, Notification, Severity
from tailhook.fleet import Fleet
from tailhook.fleet_storm import GRACE_S, FleetStorm, hosts_in_words
from tailhook.storm import StormControl
from tests.conftest import FakeClock
from tests.metrics import reported
from tests.redis_server import RedisServer, redis_server

pytestmark = pytest.mark.timeout(60)

WINDOW = StormConfig(window=10, max_per_window=3, update_every=2)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as running:
        yield running


def event(text: str, *, severity: Severity = Severity.ERROR, storm: StormConfig | None = None) -> Event:
    return Event(rule="e500", severity=severity, storm=storm, key="upstream", title="E500 upstream timeout",
                 description="", captures={}, line=Line(text=text, source="app", time=5.0))  # fmt: skip


class Host:
    """One daemon's storm control and its fleet stage, committing as the daemon does."""

    def __init__(self, name: str, server: RedisServer, clock: FakeClock) -> None:
        self.name = name
        self.storm = StormControl(WINDOW, host=name, clock=clock)
        self.fleet = Fleet(FleetConfig(server.url, "shop", timeout=0.3), clock=clock)
        self.fleet_storm = FleetStorm(self.fleet, host=name, clock=clock)
        self.sent: list[Notification] = []

    async def see(self, *events: Event) -> None:
        await self._commit([n for e in events for n in self.storm.admit(e)])

    async def tick(self, *more: Notification) -> None:
        """What time brings: the storm's due notes, *more* (an escalation's, an absence's)."""
        await self._commit([*self.storm.due(), *more], admitted=False)
        self.sent += await self.fleet_storm.due()

    async def _commit(self, notifications: Sequence[Notification], *, admitted: bool = True) -> None:
        deliveries = [Delivery("alerts", n) for n in notifications]
        kept = await self.fleet_storm.filter(deliveries, self.storm.changes(), self.storm, admitted=admitted)
        self.sent += [d.notification for d in kept]

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
    await settle(hosts, clock, 10 + 3 * GRACE_S)
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

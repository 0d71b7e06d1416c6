"""What storm control keeps beyond a key's window survives a restart: through the real spool, on a fake clock.

Each test runs storm control, stores its changes in a spool as the daemon's commits do, then starts
a second storm control from what the spool gives back, as the next start of the daemon does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tailhook.config import StormConfig
from tailhook.events import Event, Kind, Line, Severity
from tailhook.spool import Spool
from tailhook.storm import StormControl
from tests.conftest import FakeClock


def event(key: str = "k", *, storm: StormConfig, text: str = "boom") -> Event:
    return Event(
        rule="r", severity=Severity.ERROR, storm=storm, key=key, title=f"boom on {key}", description="",
        captures={}, line=Line(text=text, source="s", time=5.0),
    )  # fmt: skip


@pytest.fixture
async def spool(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Spool]:
    spool = await Spool.open(tmp_path, clock=clock)
    yield spool
    await spool.close()


async def store(spool: Spool, storm: StormControl) -> None:
    await spool.commit([], [], storm.changes())


async def restarted(spool: Spool, storm: StormControl, clock: FakeClock) -> StormControl:
    """A new storm control with what the spool kept of *storm*'s (stored first)."""
    await store(spool, storm)
    again = StormControl(storm.default, host="h", clock=clock)
    again.restore(await spool.storm_keys(), lambda rule: None)
    return again


async def test_an_escalated_key_keeps_its_level_across_a_restart(spool: Spool, clock: FakeClock) -> None:
    config = StormConfig(window=60, max_per_window=1, max_window=240)
    storm = StormControl(config, host="h", clock=clock)
    for _ in range(3):
        storm.admit(event(storm=config))
    clock.advance(60)
    (digest,) = storm.due()
    assert digest.kind is Kind.DIGEST
    clock.advance(10)
    storm = await restarted(spool, storm, clock)  # level 1 now: the next window lasts 120 s
    assert [n.kind for n in storm.admit(event(storm=config))] == [Kind.ALERT]
    storm.admit(event(storm=config))
    clock.advance(119)
    assert storm.due() == []
    clock.advance(1)
    assert [n.count for n in storm.due()] == [1]


async def test_a_storm_awaiting_its_recovery_note_sends_it_after_a_restart(spool: Spool, clock: FakeClock) -> None:
    config = StormConfig(window=60, max_per_window=1, recovery_after=300)
    storm = StormControl(config, host="h", clock=clock)
    for i in range(4):
        storm.admit(event(storm=config, text=f"line {i}"))
    clock.advance(60)
    storm.due()  # the digest
    clock.advance(100)
    storm = await restarted(spool, storm, clock)
    clock.advance(139)
    assert storm.due() == []
    clock.advance(1)  # 300 s after the last event
    (note,) = storm.due()
    assert note.kind is Kind.RECOVERY and note.count == 4 and note.line == "line 3"
    await store(spool, storm)
    assert await spool.storm_keys() == []  # over: forgotten, in the spool too


async def test_events_below_a_threshold_count_across_a_restart(spool: Spool, clock: FakeClock) -> None:
    config = StormConfig(window=60, max_per_window=3, min_count=5)
    storm = StormControl(config, host="h", clock=clock)
    for _ in range(3):
        assert storm.admit(event(storm=config)) == []
        clock.advance(10)
    storm = await restarted(spool, storm, clock)
    assert storm.admit(event(storm=config)) == []
    (alert,) = storm.admit(event(storm=config))
    assert alert.title == "boom on k (5 in 1 min)"


async def test_a_window_stored_in_a_restart_keeps_its_counts_and_line(spool: Spool, clock: FakeClock) -> None:
    config = StormConfig(window=60, max_per_window=1)
    storm = StormControl(config, host="h", clock=clock)
    for i in range(3):
        storm.admit(event(storm=config, text=f"line {i}"))
    storm = await restarted(spool, storm, clock)
    storm.admit(event(storm=config, text="after"))
    clock.advance(60)
    (digest,) = storm.due()
    assert (digest.count, digest.line) == (3, "after")

"""Storm control, driven by a fake clock."""

from __future__ import annotations

from tailhook.config import StormConfig
from tailhook.events import AlertField, Event, Kind, Line, Severity
from tailhook.storm import HELD_STORED_EVERY_S, StormControl
from tests.conftest import FakeClock


def event(key: str = "k", text: str = "boom", rule: str = "r", fields: tuple[AlertField, ...] = ()) -> Event:
    return Event(
        rule=rule,
        severity=Severity.ERROR,
        key=key,
        title=f"boom on {key}",
        description="",
        captures={},
        line=Line(text=text, source="s", time=5.0),
        fields=fields,
    )


def test_first_events_go_out_at_once_then_are_held_and_digested(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=60, max_per_window=2, digest=True), host="h", clock=clock)

    sent = [n for i in range(5) for n in storm.admit(event(text=f"line {i}"))]
    assert [(n.kind, n.line) for n in sent] == [(Kind.ALERT, "line 0"), (Kind.ALERT, "line 1")]
    assert storm.held_total == 3

    clock.advance(59.9)
    assert storm.due() == []
    clock.advance(0.1)
    (digest,) = storm.due()
    assert digest.kind is Kind.DIGEST
    assert digest.count == 3
    assert digest.line == "line 4"
    assert digest.title == "boom on k (+3 more)"
    assert "3 more events were held back" in digest.description
    assert len(storm) == 0  # the closed window is forgotten

    (fresh,) = storm.admit(event(text="line 5"))
    assert fresh.kind is Kind.ALERT


def test_keys_and_rules_have_separate_windows(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=10, max_per_window=1), host="h", clock=clock)
    out = [n for k in ("a", "b", "a") for n in storm.admit(event(key=k))]
    out += storm.admit(event(key="a", rule="other"))
    assert [(n.rule, n.key) for n in out] == [("r", "a"), ("r", "b"), ("other", "a")]


def test_per_rule_storm_overrides_and_no_digest(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=60, max_per_window=10), host="h", clock=clock)
    strict = StormConfig(window=5, max_per_window=1, digest=False)
    out = [n for _ in range(3) for n in storm.admit(event(), strict)]
    assert len(out) == 1
    assert storm.next_deadline() == clock.now + 5
    clock.advance(5)
    assert storm.due() == []


def test_digests_come_out_when_the_next_event_arrives_late(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=10, max_per_window=1), host="h", clock=clock)
    storm.admit(event())
    storm.admit(event())
    clock.advance(30)
    kinds = [n.kind for n in storm.admit(event())]
    assert kinds == [Kind.DIGEST, Kind.ALERT]


def test_the_number_of_tracked_keys_is_bounded(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=60, max_per_window=1), host="h", clock=clock, max_keys=100)
    for i in range(1000):
        storm.admit(event(key=str(i)))
        storm.admit(event(key=str(i)))
    assert len(storm) == 100


def test_changed_windows_are_handed_out_once_and_restored_elsewhere(clock: FakeClock) -> None:
    config = StormConfig(window=60, max_per_window=1)
    storm = StormControl(config, host="h", clock=clock)
    storm.admit(event(key="a"))
    storm.admit(event(key="a", text="held line"))
    storm.admit(event(key="b"))
    changes = dict(storm.changes())
    assert set(changes) == {("r", "a"), ("r", "b")}
    assert storm.changes() == []  # nothing changed since
    state = changes[("r", "a")]
    assert state is not None and (state.opened, state.sent, state.held) == (1000.0, 1, 1)
    assert state.last_held is not None and state.last_held.line == "held line"

    storm.unsaved(list(changes.items()))  # the commit failed: they come out again
    assert {key for key, _ in storm.changes()} == {("r", "a"), ("r", "b")}

    # Another process (the next start) takes the windows back and goes on counting.
    again = StormControl(config, host="h", clock=clock)
    again.restore([s for s in changes.values() if s is not None], lambda rule: None)
    assert again.admit(event(key="a")) == []  # still within the window: held, not alerted again
    clock.advance(60)
    digests = {n.key: n for n in again.due()}
    assert set(digests) == {"a"} and digests["a"].count == 2
    assert dict(again.changes()) == {("r", "a"): None, ("r", "b"): None}  # closed windows are forgotten


def test_in_a_flood_the_held_line_is_stored_once_a_second_and_the_counts_with_every_change(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=60, max_per_window=1), host="h", clock=clock)
    storm.admit(event(text="first"))
    storm.admit(event(text="held 1"))
    ((_, state),) = storm.changes()
    assert state is not None and state.held_fresh and state.last_held is not None
    assert state.last_held.line == "held 1"

    clock.advance(HELD_STORED_EVERY_S / 2)
    storm.admit(event(text="held 2"))
    ((_, state),) = storm.changes()
    assert state is not None and not state.held_fresh and state.last_held is None  # the stored line stays
    assert (state.sent, state.held) == (1, 2)

    storm.unsaved([(("r", "k"), state)])  # a failed commit of the counts alone does not force the line
    ((_, state),) = storm.changes()
    assert state is not None and not state.held_fresh and state.held == 2

    clock.advance(HELD_STORED_EVERY_S / 2)
    storm.admit(event(text="held 3"))
    ((_, state),) = storm.changes()
    assert state is not None and state.held_fresh and state.last_held is not None
    assert (state.last_held.line, state.held) == ("held 3", 3)

    storm.unsaved([(("r", "k"), state)])  # its line could not be stored: it comes out again, line and all
    ((_, state),) = storm.changes()
    assert state is not None and state.held_fresh and state.last_held is not None

    clock.advance(60)
    (digest,) = storm.due()
    assert (digest.line, digest.count) == ("held 3", 3)  # without a restart, the last line held


def test_restored_windows_follow_the_rules_current_settings(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=3600, max_per_window=1), host="h", clock=clock)
    storm.admit(event())
    storm.admit(event())
    states = [s for _, s in storm.changes() if s is not None]
    shorter = StormConfig(window=10, max_per_window=1)
    again = StormControl(StormConfig(window=3600, max_per_window=1), host="h", clock=clock)
    again.restore(states, {"r": shorter}.get)
    clock.advance(11)
    (digest,) = again.due()
    assert digest.count == 1


def test_a_digest_carries_the_fields_of_the_last_event_held(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=60, max_per_window=1), host="h", clock=clock)

    def runbook(i: int) -> tuple[AlertField, ...]:
        return (AlertField("runbook", f"https://wiki.example.com/{i}"),)

    (first,) = [n for i in range(3) for n in storm.admit(event(text=f"line {i}", fields=runbook(i)))]
    assert first.fields == runbook(0)
    clock.advance(60)
    (digest,) = storm.due()
    assert (digest.kind, digest.line, digest.fields) == (Kind.DIGEST, "line 2", runbook(2))


def test_windows_close_in_deadline_order_whatever_their_lengths(clock: FakeClock) -> None:
    """Due windows are found by their close times, not by looking at all of them; a window
    closed early (at the key cap) and opened again closes at its new time, once."""
    storm = StormControl(StormConfig(window=60, max_per_window=1), host="h", clock=clock, max_keys=3)
    short = StormConfig(window=5, max_per_window=1)
    for key in ("a", "b"):
        storm.admit(event(key=key))
        storm.admit(event(key=key))  # held: each window owes a digest
    storm.admit(event(key="s"), short)
    storm.admit(event(key="s"), short)
    assert storm.next_deadline() == clock.now + 5
    clock.advance(5)
    assert [(n.kind, n.key) for n in storm.due()] == [(Kind.DIGEST, "s")]
    assert storm.next_deadline() == clock.now + 55

    clock.advance(1)
    storm.admit(event(key="c"))
    storm.admit(event(key="d"))  # at the cap of 3: "a", the oldest, closes early with its digest
    assert [(n.kind, n.key) for n in storm.admit(event(key="a"))] == [(Kind.DIGEST, "b"), (Kind.ALERT, "a")]
    clock.advance(54)  # "a"'s first window would have closed now; its new one has not
    assert storm.due() == []
    assert storm.next_deadline() == clock.now + 6


def test_keys_coming_and_going_keep_the_deadline_heap_bounded(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=60, max_per_window=1), host="h", clock=clock, max_keys=10)
    for i in range(20_000):
        storm.admit(event(key=str(i)))  # each new key closes the oldest window early
    assert len(storm) == 10
    assert len(storm._closing) <= 2 * 10 + 1024  # memory stays bounded, not one entry per key ever seen
    clock.advance(60)
    assert storm.due() == [] and len(storm) == 0  # nothing held, so no digests; every window closed

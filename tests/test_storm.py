"""Storm control, driven by a fake clock."""

from __future__ import annotations

from tailhook.config import StormConfig
from tailhook.events import Event, Kind, Line, Severity
from tailhook.storm import StormControl
from tests.conftest import FakeClock


def event(key: str = "k", text: str = "boom", rule: str = "r") -> Event:
    return Event(
        rule=rule,
        severity=Severity.ERROR,
        key=key,
        title=f"boom on {key}",
        description="",
        captures={},
        line=Line(text=text, source="s", time=5.0),
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

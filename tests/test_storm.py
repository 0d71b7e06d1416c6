"""Storm control, driven by a fake clock."""

from __future__ import annotations

import time

import pytest

from tailhook import storm as storm_module
from tailhook.config import StormConfig
from tailhook.events import AlertField, Event, Kind, Line, Severity
from tailhook.storm import HELD_LINE_CHARS, HELD_STORED_EVERY_S, OVERFLOW_KEY, StormControl
from tests.conftest import FakeClock


def event(
    key: str = "k",
    text: str = "boom",
    rule: str = "r",
    fields: tuple[AlertField, ...] = (),
    *,
    storm: StormConfig | None = None,
    severity: Severity = Severity.ERROR,
) -> Event:
    return Event(
        rule=rule,
        severity=severity,
        storm=storm,
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
    out = [n for _ in range(3) for n in storm.admit(event(storm=strict))]
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


def test_past_the_key_cap_new_keys_share_their_rules_overflow_key(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=60, max_per_window=1), host="h", clock=clock, max_keys=100)
    sent = [n for i in range(1000) for _ in range(2) for n in storm.admit(event(key=str(i), text=f"line {i}"))]
    assert len(storm) == 101  # the 100 keys, and rule r's overflow key
    assert [n.key for n in sent] == [str(i) for i in range(101)]  # the overflow window's first alert too
    assert storm.overflow_total == 1800
    clock.advance(60)
    digests = {n.key: n for n in storm.due()}
    assert len(digests) == 101 and all(digests[str(i)].count == 1 for i in range(100))
    overflow = digests[OVERFLOW_KEY]
    assert (overflow.count, overflow.line) == (1799, "line 999")  # every event under a new key but the first
    assert overflow.description.startswith("1,799 more events under new keys were held back in this 1 min window")
    assert "(100 in all)" in overflow.description
    assert len(storm) == 0


def test_past_its_keys_per_window_a_rules_new_keys_share_its_overflow_key_until_windows_close(
    clock: FakeClock,
) -> None:
    config = StormConfig(window=60, max_per_window=1, max_keys_per_window=3)
    storm = StormControl(config, host="h", clock=clock)
    sent = [n for i in range(10) for n in storm.admit(event(key=str(i), text=f"line {i}"))]
    sent += storm.admit(event(key="0", text="again"))  # a key with its own window: held there
    sent += storm.admit(event(key="x", rule="other"))  # another rule: a cap of its own
    assert [(n.rule, n.key) for n in sent] == [("r", "0"), ("r", "1"), ("r", "2"), ("r", "3"), ("other", "x")]
    assert storm.overflow_total == 7  # keys 3 to 9; the overflow window's first alert is key 3's

    restarted = StormControl(config, host="h", clock=clock)  # restored windows count against the cap
    restarted.restore([state for _, state in storm.changes() if state is not None], lambda rule: None)
    assert restarted.admit(event(key="late")) == [] and restarted.overflow_total == 1

    clock.advance(60)
    digests = {n.key: n for n in storm.due()}
    assert set(digests) == {"0", OVERFLOW_KEY}  # key 0 held one; keys 1, 2 and x none
    overflow = digests[OVERFLOW_KEY]
    assert (overflow.count, overflow.line) == (6, "line 9")
    assert "at most 3 keys of a rule at once (100,000 in all)" in overflow.description
    assert [n.key for n in storm.admit(event(key="new"))] == ["new"]  # the windows closed: room again


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
    assert state is not None and state.fresh and state.last_held is not None
    assert state.last_held.line == "held 1"

    clock.advance(HELD_STORED_EVERY_S / 2)
    storm.admit(event(text="held 2"))
    ((_, state),) = storm.changes()
    assert state is not None and not state.fresh and state.last_held is None  # the stored line stays
    assert (state.sent, state.held) == (1, 2)

    storm.unsaved([(("r", "k"), state)])  # a failed commit of the counts alone does not force the line
    ((_, state),) = storm.changes()
    assert state is not None and not state.fresh and state.held == 2

    clock.advance(HELD_STORED_EVERY_S / 2)
    storm.admit(event(text="held 3"))
    ((_, state),) = storm.changes()
    assert state is not None and state.fresh and state.last_held is not None
    assert (state.last_held.line, state.held) == ("held 3", 3)

    storm.unsaved([(("r", "k"), state)])  # its line could not be stored: it comes out again, line and all
    ((_, state),) = storm.changes()
    assert state is not None and state.fresh and state.last_held is not None

    clock.advance(60)
    (digest,) = storm.due()
    assert (digest.line, digest.count) == ("held 3", 3)  # without a restart, the last line held


def test_a_window_whose_lines_were_all_held_within_a_second_still_stores_a_held_line(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=60, max_per_window=1), host="h", clock=clock)
    storm.admit(event(text="first"))
    assert [state.last_held for _, state in storm.changes() if state is not None] == [None]  # nothing held yet
    clock.advance(HELD_STORED_EVERY_S / 4)
    storm.admit(event(text="held 1"))
    storm.admit(event(text="held 2"))
    ((_, state),) = storm.changes()
    assert state is not None and state.fresh and state.last_held is not None  # its first held line goes at once

    restarted = StormControl(StormConfig(window=60, max_per_window=1), host="h", clock=clock)
    restarted.restore([state], lambda _: None)
    clock.advance(60)
    (digest,) = restarted.due()
    assert (digest.kind, digest.count, digest.line) == (Kind.DIGEST, 2, "held 2")


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
    """Due windows are found by their close times, not by looking at all of them; a key whose
    window closed and opened again closes at its new time, once."""
    storm = StormControl(StormConfig(window=60, max_per_window=1), host="h", clock=clock)
    short = StormConfig(window=5, max_per_window=1)
    for key in ("a", "b"):
        storm.admit(event(key=key))
        storm.admit(event(key=key))  # held: each window owes a digest
    storm.admit(event(key="s", storm=short))
    storm.admit(event(key="s", storm=short))
    assert storm.next_deadline() == clock.now + 5
    clock.advance(5)
    assert [(n.kind, n.key) for n in storm.due()] == [(Kind.DIGEST, "s")]
    assert storm.next_deadline() == clock.now + 55

    clock.advance(1)
    assert [n.kind for n in storm.admit(event(key="s", storm=short))] == [Kind.ALERT]  # a new window: 6 to 11
    clock.advance(5)
    assert storm.due() == []  # nothing held in it: no digest
    clock.advance(49)
    assert [(n.kind, n.key) for n in storm.due()] == [(Kind.DIGEST, "a"), (Kind.DIGEST, "b")]
    assert storm.next_deadline() is None and len(storm) == 0


def test_keys_coming_and_going_keep_the_deadline_heap_bounded(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=5, max_per_window=1), host="h", clock=clock)
    for i in range(20_000):
        storm.admit(event(key=str(i % 50)))  # windows open, close and open again
        clock.advance(0.5)
    assert len(storm._deadlines) <= 2 * len(storm) + 1024  # not one entry per window ever opened
    clock.advance(60)
    storm.due()
    assert len(storm) == 0 and storm.next_deadline() is None


def test_a_more_severe_event_goes_out_at_once_whatever_its_window_has_sent(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=60, max_per_window=1), host="h", clock=clock)
    levels = [Severity.WARNING, Severity.WARNING, Severity.ERROR, Severity.ERROR, Severity.CRITICAL, Severity.WARNING]
    sent = [
        (n.severity, n.line) for i, level in enumerate(levels) for n in storm.admit(event(text=f"{i}", severity=level))
    ]
    assert sent == [(Severity.WARNING, "0"), (Severity.ERROR, "2"), (Severity.CRITICAL, "4")]
    assert storm.upgrades_total == 2
    clock.advance(60)
    (digest,) = storm.due()
    assert (digest.count, digest.line) == (3, "5")


def test_a_threshold_alerts_once_enough_events_came_within_the_window_and_says_so(clock: FakeClock) -> None:
    three = StormConfig(window=60, max_per_window=1, min_count=3)
    storm = StormControl(StormConfig(), host="h", clock=clock)
    for _ in range(2):
        assert storm.admit(event(storm=three)) == []
        clock.advance(10)
    (alert,) = storm.admit(event(storm=three))  # the third within 60 s
    assert (alert.kind, alert.title) == (Kind.ALERT, "boom on k (3 in 1 min)")
    assert storm.admit(event(storm=three)) == []  # held: one alert per window
    clock.advance(60)
    (digest,) = storm.due()
    assert digest.count == 1

    # Events too far apart never reach it, and are forgotten as they drop out of the window.
    for _ in range(5):
        clock.advance(40)
        assert storm.admit(event(key="slow", storm=three)) == []
    clock.advance(60)
    assert storm.due() == [] and len(storm) == 0


def test_a_key_storming_window_after_window_escalates_then_decays(clock: FakeClock) -> None:
    escalating = StormConfig(window=10, max_per_window=1, max_window=40)
    storm = StormControl(escalating, host="h", clock=clock)
    lengths = []
    for _ in range(4):  # each window: an alert and a held event, then it closes
        opened = clock.now
        storm.admit(event())
        storm.admit(event())
        deadline = storm.next_deadline()
        assert deadline is not None
        lengths.append(deadline - opened)
        clock.now = deadline
        (digest,) = storm.due()
        assert f"in this {_words(lengths[-1])} window" in digest.description
    assert lengths == [10, 20, 40, 40]  # doubling up to max_window

    # Quiet: each quiet stretch of the window's length halves it again.
    clock.advance(40)
    storm.due()
    clock.advance(20)
    storm.due()
    storm.admit(event())
    assert storm.next_deadline() == clock.now + 10
    clock.advance(10)
    assert storm.due() == []  # nothing held: no digest, and no escalation
    clock.advance(10)
    storm.due()
    assert len(storm) == 0


def test_critical_windows_do_not_escalate(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=10, max_per_window=1, max_window=40), host="h", clock=clock)
    for _ in range(3):
        storm.admit(event(severity=Severity.CRITICAL))
        storm.admit(event(severity=Severity.CRITICAL))
        assert storm.next_deadline() == clock.now + 10
        clock.advance(10)
        storm.due()


def test_a_storm_that_went_quiet_sends_one_resolved_note(clock: FakeClock) -> None:
    noted = StormConfig(window=60, max_per_window=1, recovery_after=300)
    storm = StormControl(noted, host="h", clock=clock)
    start = clock.now
    for i in range(5):  # 5 events over 80 s: two windows, the first holding 2
        storm.admit(event(text=f"line {i}"))
        clock.advance(20)
    last = clock.now - 20
    storm.admit(event(key="calm"))  # never held anything: no note
    clock.now = last + 299
    assert [n.kind for n in storm.due()] == [Kind.DIGEST]  # the second window's digest only
    clock.now = last + 300
    (note,) = storm.due()
    assert (note.kind, note.key, note.count, note.line) == (Kind.RECOVERY, "k", 5, "line 4")
    assert note.title == "Resolved: boom on k"
    assert note.description == (
        f"Quiet for 5 min. The storm lasted 1.33 min, from {_hms(start)} to {_hms(last)} UTC: 5 events in all."
    )
    assert storm.recoveries_total == 1
    clock.advance(3600)
    assert storm.due() == [] and len(storm) == 0


def test_a_storm_that_comes_back_before_it_is_quiet_long_enough_sends_no_note_yet(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=10, max_per_window=1, recovery_after=60), host="h", clock=clock)
    for _ in range(2):
        storm.admit(event())
    clock.advance(50)
    assert [n.kind for n in storm.due()] == [Kind.DIGEST]
    storm.admit(event())  # 50 s quiet only: the storm goes on
    clock.advance(60)
    assert [n.kind for n in storm.due()] == [Kind.RECOVERY]


def test_open_windows_follow_their_rules_new_settings_after_a_reload(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(), host="h", clock=clock)
    long = StormConfig(window=600, max_per_window=1)
    storm.admit(event(rule="changed", storm=long))
    storm.admit(event(rule="changed", storm=long))
    storm.admit(event(rule="removed", storm=long))
    storm.admit(event(rule="removed", storm=long))
    storm.adopt({"changed": StormConfig(window=60, max_per_window=1)}.get)
    clock.advance(60)
    assert [(n.rule, n.count) for n in storm.due()] == [("changed", 1)]  # closes by its new window
    clock.advance(540)
    assert [(n.rule, n.count) for n in storm.due()] == [("removed", 1)]  # a removed rule's window keeps its own


def _words(seconds: float) -> str:
    return f"{seconds / 60:.3g} min" if seconds >= 60 else f"{seconds:.3g} s"


def _hms(when: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(when))


def test_a_storm_under_way_goes_out_as_updates_at_most_every_updates_every(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=60, max_per_window=1), host="h", clock=clock)
    storm.updates_every = 5.0
    start = clock.now

    (first,) = [n for i in range(10) for n in storm.admit(event(text=f"line {i}"))]
    assert first.kind is Kind.ALERT and storm.next_deadline() == start + 5
    clock.advance(5)
    (update,) = storm.due()
    assert (update.kind, update.key, update.count, update.line) == (Kind.UPDATE, "k", 10, "line 9")
    assert update.description.startswith("× 10 since ")
    clock.advance(3)
    assert storm.due() == []  # nothing held since: no update due
    assert storm.admit(event(text="line 10")) == []
    clock.advance(4.9)
    assert storm.due() == []
    clock.advance(0.1)  # 5 s after the event that made it due
    assert [(n.kind, n.count, n.line) for n in storm.due()] == [(Kind.UPDATE, 11, "line 10")]
    assert storm.admit(event(text="line 11")) == []
    clock.now = start + 61  # the window closed before the next update was due: its digest only
    assert [(n.kind, n.count) for n in storm.due()] == [(Kind.DIGEST, 11)]


def test_without_updates_every_a_storm_sends_no_updates(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=60, max_per_window=1), host="h", clock=clock)
    for i in range(10):
        storm.admit(event(text=f"line {i}"))
    clock.advance(61)
    assert [n.kind for n in storm.due()] == [Kind.DIGEST]


def _storm_of(storm: StormControl, clock: FakeClock, texts: list[str], key: str = "k") -> None:
    """One alert, then *texts* held back under *key*."""
    storm.admit(event(key=key, text="first"))
    for text in texts:
        assert storm.admit(event(key=key, text=text)) == []


def test_a_digest_carries_the_lines_it_held_back_in_order(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=60, max_per_window=1), host="h", clock=clock)
    _storm_of(storm, clock, [f"held {i}" for i in range(5)])
    clock.advance(60)
    (digest,) = storm.due()
    assert (digest.kind, digest.count) == (Kind.DIGEST, 5)
    assert digest.excerpt == "held 0\nheld 1\nheld 2\nheld 3\nheld 4"
    assert storm._kept_chars == 0  # handed out: freed


def test_past_attach_held_the_lines_held_are_counted_and_the_excerpt_says_so(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=60, max_per_window=1, attach_held=3), host="h", clock=clock)
    _storm_of(storm, clock, [f"held {i}" for i in range(10)])
    clock.advance(60)
    (digest,) = storm.due()
    assert digest.count == 10
    assert digest.excerpt.split("\n") == [
        "held 0",
        "held 1",
        "held 2",
        "… and 7 more lines held back, not kept (attach_held: 3)",
    ]


def test_attach_held_0_keeps_no_lines(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=60, max_per_window=1, attach_held=0), host="h", clock=clock)
    _storm_of(storm, clock, ["held 0", "held 1"])
    assert storm._kept_chars == 0
    clock.advance(60)
    (digest,) = storm.due()
    assert (digest.count, digest.excerpt) == (2, "")


def test_a_window_keeps_lines_up_to_its_character_cap_then_counts_them(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storm_module, "HELD_CHARS_PER_WINDOW", 20)
    storm = StormControl(StormConfig(window=60, max_per_window=1), host="h", clock=clock)
    # 9 + 9 fit, 6 more would not; "x" would, but a window that stopped keeping keeps no more:
    # what it attaches is the first lines held, with no gap among them.
    _storm_of(storm, clock, ["123456789", "abcdefghi", "longer", "x"])
    clock.advance(60)
    (digest,) = storm.due()
    assert digest.excerpt.split("\n") == [
        "123456789",
        "abcdefghi",
        "… and 2 more lines held back, not kept (at most 20 characters per window)",
    ]
    assert storm._kept_chars == 0


def test_the_characters_kept_across_windows_are_capped_and_given_back_when_a_window_closes(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storm_module, "HELD_CHARS_TOTAL", 10)
    storm = StormControl(StormConfig(window=60, max_per_window=1), host="h", clock=clock)
    _storm_of(storm, clock, ["aaaaaa", "bbbbbb"], key="a")  # 6 kept; 12 would be past the total
    assert storm._kept_chars == 6
    _storm_of(storm, clock, ["cccc", "dddd"], key="b")  # 4 fit beside a's 6; then the total is reached
    assert storm._kept_chars == 10
    clock.advance(60)
    digests = {n.key: n.excerpt for n in storm.due()}
    assert digests == {
        "a": "aaaaaa\n… and 1 more line held back, not kept (at most 10 characters across all open windows)",
        "b": "cccc\n… and 1 more line held back, not kept (at most 10 characters across all open windows)",
    }
    assert storm._kept_chars == 0

    # Closed, the windows gave their characters back: the next windows keep lines again, in turn.
    for key in ("a", "b"):
        _storm_of(storm, clock, ["0123456789"], key=key)
        assert storm._kept_chars == 10
        clock.advance(60)
        (digest,) = storm.due()
        assert (digest.key, digest.excerpt) == (key, "0123456789")
        assert storm._kept_chars == 0


def test_a_very_long_held_line_is_kept_cut(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=60, max_per_window=1), host="h", clock=clock)
    _storm_of(storm, clock, ["x" * (HELD_LINE_CHARS + 1000), "after"])
    clock.advance(60)
    (digest,) = storm.due()
    assert digest.excerpt == "x" * HELD_LINE_CHARS + " …[cut]\nafter"
    assert digest.line == "after"


def test_updates_of_a_storm_under_way_carry_no_lines_and_its_digest_all_of_them(clock: FakeClock) -> None:
    storm = StormControl(StormConfig(window=60, max_per_window=1), host="h", clock=clock)
    storm.updates_every = 5.0
    _storm_of(storm, clock, [f"held {i}" for i in range(3)])
    clock.advance(5)
    (update,) = storm.due()
    assert (update.kind, update.count, update.excerpt) == (Kind.UPDATE, 4, "")
    assert storm.admit(event(text="held 3")) == []
    clock.advance(55)
    (digest,) = storm.due()
    assert (digest.kind, digest.excerpt) == (Kind.DIGEST, "held 0\nheld 1\nheld 2\nheld 3")


def test_after_a_restart_a_digest_carries_only_the_lines_held_since(clock: FakeClock) -> None:
    config = StormConfig(window=60, max_per_window=1)
    storm = StormControl(config, host="h", clock=clock)
    _storm_of(storm, clock, ["before 0", "before 1"])
    again = StormControl(config, host="h", clock=clock)
    again.restore([s for _, s in storm.changes() if s is not None], lambda rule: None)
    assert again.admit(event(text="after")) == []
    clock.advance(60)
    (digest,) = again.due()
    assert digest.count == 3
    assert digest.excerpt.split("\n") == [
        "… 2 lines held back before a restart, not kept (held lines live in memory only)",
        "after",
    ]

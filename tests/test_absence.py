"""Absence rules (expect: {every}) on a fake clock: the alert, the resolved note, a restart, a reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailhook.absence import ABSENT_KEY, Absences
from tailhook.config import ConfigError, RuleConfig, load_config
from tailhook.events import Kind, Line, Severity
from tailhook.pipeline import Pipeline
from tailhook.rules import rule_set
from tests.conftest import FakeClock, WriteFile
from tests.metrics import total


def rule(name: str = "backup", every: float | None = 600, *, enabled: bool = True) -> RuleConfig:
    return RuleConfig(name, "rules.yaml", 1, "backup done", Severity.ERROR, enabled=enabled, expect_every=every)


def test_a_rule_silent_for_its_interval_alerts_once_and_resolves_when_it_matches(clock: FakeClock) -> None:
    absences = Absences([rule(), rule("other", None)], host="h", clock=clock)
    assert absences.names == {"backup"}
    assert absences.next_deadline() == clock.now + 600
    clock.advance(599)
    assert absences.due() == []
    clock.advance(1)
    (alert,) = absences.due()
    assert (alert.kind, alert.rule, alert.key, alert.severity) == (Kind.ALERT, "backup", ABSENT_KEY, Severity.ERROR)
    assert alert.title == "backup: no line for 10 min"
    clock.advance(3600)
    assert absences.due() == [] and absences.next_deadline() is None  # once, until it matches again
    (note,) = absences.seen("backup")
    assert (note.kind, note.title) == (Kind.RECOVERY, "Resolved: backup matches again")
    assert note.description == "A line matched after 1.17 h without one (expected every 10 min)."
    assert absences.seen("backup") == []  # a match in time: nothing to say
    assert absences.next_deadline() == clock.now + 600
    assert absences.alerts_total == 1


def test_a_restart_neither_forgets_the_deadline_nor_fires_it_again_and_downtime_counts(clock: FakeClock) -> None:
    first = Absences([rule(), rule("heartbeat", 60)], host="h", clock=clock)
    clock.advance(60)
    assert [a.rule for a in first.due()] == ["heartbeat"]
    stored = {name: state for name, state in first.changes() if state is not None}
    assert set(stored) == {"backup", "heartbeat"} and stored["heartbeat"].alerted

    clock.advance(540)  # stopped for 9 minutes
    again = Absences([rule(), rule("heartbeat", 60)], host="h", clock=clock)
    again.restore(stored.values())
    assert again.changes() == []  # nothing new to store: the stored clocks go on
    assert [a.rule for a in again.due()] == ["backup"]  # its 10 minutes ran while tailhook was stopped
    assert again.due() == []  # heartbeat alerted before the restart: not again


def test_a_reload_keeps_a_kept_rules_clock_starts_a_new_one_and_forgets_a_removed_one(clock: FakeClock) -> None:
    absences = Absences([rule(), rule("gone", 60)], host="h", clock=clock)
    absences.changes()
    clock.advance(300)
    absences.replace_rules([rule(every=400), rule("new", 60), rule("off", 60, enabled=False)])
    assert dict(absences.changes()).keys() == {"gone", "new"}
    assert absences.next_deadline() == clock.now + 60  # the new one, from now
    clock.advance(60)
    assert [a.rule for a in absences.due()] == ["new"]
    clock.advance(40)
    assert [a.rule for a in absences.due()] == ["backup"]  # its clock kept, its interval the new one


CONFIG = """
    state_dir: state
    sources:
      - {name: jobs, paths: ["jobs.log"]}
    rules:
      paths: ["rules.yaml"]
"""


def test_the_pipeline_alerts_on_absence_and_a_matching_line_resolves_it(write: WriteFile, clock: FakeClock) -> None:
    write("rules.yaml", """
        rules:
          - name: backup
            match: 'backup (?P<name>\\S+) done'
            severity: error
            expect: {every: 1h}
    """)  # fmt: skip
    config = load_config(write("tailhook.yaml", CONFIG))
    (backup,) = config.rules
    assert backup.expect_every == 3600
    pipeline = Pipeline.build(config, rule_set(config, host="h"), clock=clock)
    assert [d.notification.kind for d in pipeline.ingest([Line("backup db done", "jobs", 0.0)])] == [Kind.ALERT]
    clock.advance(3600)
    (absent,) = pipeline.tick()
    assert (absent.destination, absent.notification.title) == ("console", "backup: no line for 1 h")
    clock.advance(61)  # the storm window of the first line has closed
    kinds = [d.notification.kind for d in pipeline.ingest([Line("backup db done", "jobs", 0.0)])]
    assert kinds == [Kind.ALERT, Kind.RECOVERY]
    assert total(pipeline, "tailhook_absence_alerts_total") == 1


def test_expect_needs_its_interval(write: WriteFile) -> None:
    write("rules.yaml", """
        rules:
          - name: backup
            match: 'backup done'
            expect: {}
    """)  # fmt: skip
    path = write("tailhook.yaml", CONFIG)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{Path(path).parent / 'rules.yaml'}:4: rules[0] (backup).expect.every: is required"
    ]

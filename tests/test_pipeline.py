"""The pipeline (rules → storm control → routes) on a fake clock: no event loop, no spool, no sleeping."""

from __future__ import annotations

from pathlib import Path

from tailhook.config import SilenceConfig, load_config
from tailhook.events import Kind, Line
from tailhook.pipeline import Pipeline, router_of
from tailhook.rules import rule_set
from tailhook.sources import Block
from tests.conftest import FakeClock
from tests.metrics import reported, total

CONFIG = """
state_dir: state
sources:
  - {{name: auth, paths: ['{tmp}/auth.log']}}
rules:
  paths: ['{tmp}/rules.yaml']
storm: {{window: 60s, max_per_window: 2}}
destinations:  # a message per digest: what storm control lets out, without updates for edits
  ops: {{url: 'https://discord.com/api/webhooks/123456789012345678/token', storm_updates: post}}
  oncall: {{url: 'https://discord.com/api/webhooks/223456789012345678/token', storm_updates: post}}
routes:
  - {{severities: [critical], to: [oncall], continue: true}}
  - {{to: [ops]}}
"""

RULES = """
rules:
  - name: ssh-failure
    match: 'Failed password for (?P<user>\\S+) from (?P<ip>\\S+)'
    key: '{ip}'
    severity: warning
  - name: kernel-panic
    match: 'Kernel panic'
    severity: critical
    storm: {window: 10m, max_per_window: 1}
"""


def pipeline_in(tmp_path: Path, clock: FakeClock, rules: str = RULES) -> Pipeline:
    (tmp_path / "rules.yaml").write_text(rules)
    path = tmp_path / "tailhook.yaml"
    path.write_text(CONFIG.format(tmp=tmp_path))
    config = load_config(str(path))
    return Pipeline.build(config, rule_set(config, host="h"), clock=clock)


def ssh(ip: str) -> Line:
    return Line(f"sshd[1]: Failed password for root from {ip} port 22", "auth", 0.0)


def test_one_event_gives_one_alert_and_no_empty_digest(tmp_path: Path, clock: FakeClock) -> None:
    pipeline = pipeline_in(tmp_path, clock)
    (delivery,) = pipeline.ingest([ssh("192.0.2.1")])
    assert (delivery.destination, delivery.notification.kind, delivery.notification.key) == (
        "ops",
        Kind.ALERT,
        "192.0.2.1",
    )
    assert pipeline.next_deadline() == clock.now + 60
    clock.advance(60)
    assert pipeline.tick() == []
    assert pipeline.next_deadline() is None


def test_many_events_in_one_tick_give_the_first_alerts_and_an_exact_digest(tmp_path: Path, clock: FakeClock) -> None:
    pipeline = pipeline_in(tmp_path, clock)
    deliveries = pipeline.ingest([ssh("192.0.2.1")] * 1000)
    assert [d.notification.kind for d in deliveries] == [Kind.ALERT, Kind.ALERT]
    clock.advance(59.9)
    assert pipeline.tick() == []  # the window's last moment: still open
    clock.advance(0.1)
    (digest,) = pipeline.tick()
    assert (digest.notification.kind, digest.notification.count) == (Kind.DIGEST, 998)


def test_a_block_of_lines_makes_what_its_lines_make_one_by_one(tmp_path: Path, clock: FakeClock) -> None:
    texts = [ssh(f"192.0.2.{i % 3}").text for i in range(10)] + ["nothing here", "Kernel panic - not syncing"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one_by_one, whole = pipeline_in(tmp_path / "a", clock), pipeline_in(tmp_path / "b", clock)
    lines = one_by_one.ingest([Line(text, "auth", 0.0) for text in texts])
    data = "".join(text + "\n" for text in texts).encode()
    blocked = whole.ingest([Block(data, len(texts), "auth", "", 0.0, None)])
    assert [(d.destination, d.notification.key, d.notification.line) for d in blocked] == [
        (d.destination, d.notification.key, d.notification.line) for d in lines
    ]
    assert [d.destination for d in blocked if d.notification.rule == "kernel-panic"] == ["oncall", "ops"]
    for pipeline in (one_by_one, whole):
        metrics = reported(pipeline)
        assert metrics["tailhook_lines_total"] == {(("source", "auth"),): 12}
        assert metrics["tailhook_matches_total"] == {(("rule", "kernel-panic"),): 1, (("rule", "ssh-failure"),): 10}
        # 10 events on 3 keys, 2 alerts each
        assert metrics["tailhook_storm_held_total"] == {(("rule", "ssh-failure"),): 4}
        assert metrics["tailhook_alerts_total"] == {
            (("rule", "kernel-panic"), ("severity", "critical")): 1,
            (("rule", "ssh-failure"), ("severity", "warning")): 6,
        }


def test_a_reload_keeps_the_storms_of_unchanged_rules_and_a_removed_rules_digest(
    tmp_path: Path, clock: FakeClock
) -> None:
    pipeline = pipeline_in(tmp_path, clock)
    pipeline.ingest([ssh("192.0.2.1")] * 5 + [Line("Kernel panic - not syncing", "auth", 0.0)] * 3)
    (tmp_path / "rules.yaml").write_text(RULES.split("  - name: kernel-panic", maxsplit=1)[0])  # kernel-panic removed
    config = load_config(str(tmp_path / "tailhook.yaml"))
    rules = rule_set(config, host="h")
    pipeline = pipeline.reloaded(config, rules, router_of(config))
    assert pipeline.ingest([ssh("192.0.2.1")]) == []  # the same window: held, not alerted again
    assert pipeline.ingest([Line("Kernel panic - not syncing", "auth", 0.0)]) == []  # no such rule now
    clock.advance(60)
    (ssh_digest,) = pipeline.tick()
    assert (ssh_digest.notification.rule, ssh_digest.notification.count) == ("ssh-failure", 4)
    clock.advance(540)
    panic = [d.notification for d in pipeline.tick()]
    assert [(n.rule, n.kind, n.count) for n in panic] == [("kernel-panic", Kind.DIGEST, 2)] * 2  # oncall and ops
    assert total(pipeline, "tailhook_lines_total") == 10  # counts go on


def test_changes_and_restore_carry_open_windows_to_the_next_start(tmp_path: Path, clock: FakeClock) -> None:
    first = pipeline_in(tmp_path, clock)
    first.ingest([ssh("192.0.2.1")] * 4)
    stored = [state for _, state in first.changes().storm if state is not None]
    assert not first.changes()  # handed out once

    clock.advance(30)  # a restart half-way through the window
    again = pipeline_in(tmp_path, clock)
    again.restore(stored)
    assert again.ingest([ssh("192.0.2.1")]) == []  # no repeat of the first alerts
    clock.advance(30)
    (digest,) = again.tick()
    assert digest.notification.count == 3


def test_a_silence_holds_what_storm_control_lets_through_and_its_note_goes_out_when_it_ends(
    tmp_path: Path, clock: FakeClock
) -> None:
    starts, ends = clock.now, clock.now + 3600
    pipeline = pipeline_in(tmp_path, clock)
    pipeline.silences.replace_configured(
        [
            SilenceConfig(
                "deploy",
                "tailhook.yaml",
                1,
                reason="deploy",
                rules=frozenset({"ssh-failure"}),
                starts=starts,
                ends=ends,
            )
        ]
    )
    held = pipeline.ingest([ssh("192.0.2.1")] * 5 + [ssh("192.0.2.2")])
    assert held == []  # 3 alerts held by the silence (2 + 1), the other 3 events by storm control
    panic = pipeline.ingest([Line("Kernel panic - not syncing", "auth", 0.0)])
    assert [d.destination for d in panic] == ["oncall", "ops"]  # another rule: not silenced
    changes = pipeline.changes()
    assert changes.silences  # the held counts go into the commit with what was sent
    clock.advance(60)
    assert [d.notification.kind for d in pipeline.tick()] == []  # the ssh digest is held too (3 more)
    clock.advance(540)
    assert pipeline.tick() == []  # the panic's window closes: one event, no digest
    assert pipeline.next_deadline() == ends
    clock.now = ends
    (note,) = pipeline.tick()
    assert note.destination == "ops" and note.notification.kind is Kind.NOTE
    assert note.notification.title == "6 alerts held during 'deploy', 1 h"
    assert total(pipeline, "tailhook_silenced_total") == 6

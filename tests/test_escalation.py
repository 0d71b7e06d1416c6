"""Escalation routes (after:) through the pipeline on a fake clock."""

from __future__ import annotations

from pathlib import Path

from tailhook.config import load_config
from tailhook.events import Delivery, Kind, Line
from tailhook.pipeline import Pipeline
from tailhook.rules import rule_set
from tailhook.spool import Spool
from tests.conftest import FakeClock
from tests.metrics import total

CONFIG = """
state_dir: state
sources:
  - {{name: app, paths: ['{tmp}/app.log']}}
rules:
  paths: ['{tmp}/rules.yaml']
storm: {{window: 60s, max_per_window: 1}}
destinations:
  team: {{url: 'https://discord.com/api/webhooks/123456789012345678/token'}}
  oncall: {{url: 'https://discord.com/api/webhooks/223456789012345678/token'}}
routes:
  - {{to: [team]}}
  - {{severities: [critical], to: [oncall], after: 10m, mention: {{roles: ['123456789012345678']}}}}
"""

RULES = """
rules:
  - name: db-down
    match: 'database (?P<db>\\S+) unreachable'
    key: '{db}'
    title: 'database {db} unreachable'
    severity: critical
  - name: slow
    match: 'slow query'
    severity: warning
"""


def pipeline_in(tmp_path: Path, clock: FakeClock, text: str = CONFIG) -> Pipeline:
    (tmp_path / "rules.yaml").write_text(RULES)
    path = tmp_path / "tailhook.yaml"
    path.write_text(text.format(tmp=tmp_path))
    config = load_config(str(path))
    assert config.routes[1].after is not None
    return Pipeline.build(config, rule_set(config, host="h"), clock=clock)


def down(db: str = "orders") -> Line:
    return Line(f"database {db} unreachable", "app", 0.0)


def test_a_key_still_firing_after_the_delay_escalates_once(tmp_path: Path, clock: FakeClock) -> None:
    pipeline = pipeline_in(tmp_path, clock)
    assert [d.destination for d in pipeline.ingest([down()])] == ["team"]  # not to oncall at once
    sent = []
    for _ in range(40):  # an event every 30 s for 20 minutes
        clock.advance(30)
        sent += pipeline.ingest([down()]) + pipeline.tick()
    escalated = [d for d in sent if d.destination == "oncall"]
    assert len(escalated) == 1
    (delivery,) = escalated
    assert delivery.notification.title == "Still firing after 10 min: database orders unreachable"
    assert delivery.notification.count == 21  # the first alert and 20 more events in those 10 minutes
    assert delivery.mentions.roles == ("123456789012345678",)
    assert total(pipeline, "tailhook_escalations_total") == 1


def test_a_key_that_went_quiet_before_the_delay_never_escalates(tmp_path: Path, clock: FakeClock) -> None:
    pipeline = pipeline_in(tmp_path, clock)
    pipeline.ingest([down()])
    clock.advance(5 * 60)
    pipeline.ingest([down()])  # the last event: quiet from here
    sent = []
    for _ in range(20):
        clock.advance(60)
        sent += pipeline.tick()
    assert [d.destination for d in sent if d.destination == "oncall"] == []
    assert pipeline.escalations.watched == 0  # forgotten


def test_a_new_storm_after_a_quiet_window_escalates_again_and_others_are_not_taken(
    tmp_path: Path, clock: FakeClock
) -> None:
    pipeline = pipeline_in(tmp_path, clock)
    escalated = 0
    for storm in range(2):
        for _ in range(25):
            sent = pipeline.ingest([down(), Line("slow query", "app", 0.0)]) + pipeline.tick()
            escalated += sum(d.destination == "oncall" for d in sent)
            assert all(d.notification.rule == "db-down" for d in sent if d.destination == "oncall")
            clock.advance(30)
        assert escalated == storm + 1
        clock.advance(120)  # quiet for two windows: the storm is over
        assert all(d.notification.kind is not Kind.ALERT for d in pipeline.tick())


async def stored(spool: Spool, pipeline: Pipeline, deliveries: list[Delivery]) -> list[Delivery]:
    """*deliveries* committed with what changed, as the daemon's ingest commit does."""
    changes = pipeline.changes()
    await spool.commit(
        deliveries, [], changes.storm, silences=changes.silences, absences=changes.absences,
        escalations=changes.escalations,
    )  # fmt: skip
    return deliveries


async def restarted(spool: Spool, tmp_path: Path, clock: FakeClock, text: str = CONFIG) -> Pipeline:
    pipeline = pipeline_in(tmp_path, clock, text)
    pipeline.restore(await spool.storm_keys(), escalations=await spool.escalations())
    return pipeline


async def test_a_restart_keeps_the_escalation_clock_of_a_key_still_firing(tmp_path: Path, clock: FakeClock) -> None:
    spool = await Spool.open(tmp_path / "state", clock=clock)
    try:
        pipeline = pipeline_in(tmp_path, clock)
        sent = await stored(spool, pipeline, pipeline.ingest([down()]))
        for _ in range(10):  # 5 minutes, then a restart
            clock.advance(30)
            sent += await stored(spool, pipeline, pipeline.ingest([down()]) + pipeline.tick())
        pipeline = await restarted(spool, tmp_path, clock)
        for _ in range(20):
            clock.advance(30)
            sent += await stored(spool, pipeline, pipeline.ingest([down()]) + pipeline.tick())
        escalated = [d.notification for d in sent if d.destination == "oncall"]
        assert [(n.title, n.count) for n in escalated] == [
            ("Still firing after 10 min: database orders unreachable", 21)  # counted across the restart
        ]
    finally:
        await spool.close()


async def test_a_restart_without_the_route_forgets_its_clocks(tmp_path: Path, clock: FakeClock) -> None:
    spool = await Spool.open(tmp_path / "state", clock=clock)
    try:
        pipeline = pipeline_in(tmp_path, clock)
        await stored(spool, pipeline, pipeline.ingest([down()]))
        assert len(await spool.escalations()) == 1
        pipeline = await restarted(spool, tmp_path, clock, CONFIG.replace("after: 10m", "after: 20m"))
        await stored(spool, pipeline, [])
        assert await spool.escalations() == []
        clock.advance(1200)
        assert [d for d in pipeline.tick() if d.destination == "oncall"] == []
    finally:
        await spool.close()

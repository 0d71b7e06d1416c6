"""The console sink: what it prints for a notification."""

from __future__ import annotations

import io

from tailhook.events import AlertField, Delivery, Kind, Notification, Severity
from tailhook.sinks import Outcome, Posted, Result
from tailhook.sinks.console import ConsoleSink, format_notification


def note(**changes: object) -> Notification:
    values: dict[str, object] = {
        "kind": Kind.ALERT, "rule": "ssh", "severity": Severity.WARNING, "key": "k", "title": "SSH failure",
        "description": "", "line": "Failed password for root", "source": "auth", "host": "h", "time": 0.0,
        "captures": {"user": "root"},
    }  # fmt: skip
    values.update(changes)
    return Notification(**values)  # type: ignore[arg-type]


def test_a_rules_fields_are_printed_after_the_captures() -> None:
    fields = (AlertField("runbook", "https://wiki.example.com/ssh"), AlertField("team", "security", inline=True))
    lines = format_notification(note(fields=fields), destination="console").splitlines()
    assert lines[2:5] == ["   user=root", "   runbook: https://wiki.example.com/ssh", "   team: security"]
    assert lines[5] == "   auth | Failed password for root"


def test_without_fields_nothing_is_added() -> None:
    lines = format_notification(note(), destination="console").splitlines()
    assert len(lines) == 4


async def test_the_sink_writes_each_delivery() -> None:
    stream = io.StringIO()
    await ConsoleSink(stream=stream).send([Delivery("console", note(fields=(AlertField("a", "b"),)))])
    assert "   a: b\n" in stream.getvalue()


async def test_a_post_keeps_no_message_and_an_edit_prints_an_update() -> None:
    stream = io.StringIO()
    sink = ConsoleSink(stream=stream)
    posted = await sink.send([Delivery("console", note())])
    assert posted == Result(Outcome.SENT)  # nothing to edit later
    stream.truncate(0)
    stream.seek(0)

    edited = await sink.edit(Posted("1", webhook="2"), [Delivery("console", note(title="SSH failure × 40"))])

    assert edited == Result(Outcome.SENT)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("updated: ── ") and lines[1] == "   SSH failure × 40"

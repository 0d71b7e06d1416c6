"""Container logs, JSON logs and tracebacks through the whole daemon, to Discord's stand-in."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import Daemon
from tests.discord_standin import ThreadedStandIn, standin_in_thread

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def discord() -> Iterator[ThreadedStandIn]:
    with standin_in_thread() as standin:
        yield standin


def test_a_traceback_and_a_container_line_reach_discord_whole(tmp_path: Path, discord: ThreadedStandIn) -> None:
    (tmp_path / "app.log").touch()
    (tmp_path / "0.log").touch()
    (tmp_path / "events.json").touch()
    (tmp_path / "rules.yaml").write_text(
        textwrap.dedent(
            r"""
            rules:
              - name: app-error
                match: '^\S+ \S+ ERROR (?P<what>.*)'
                severity: error
                title: '{what}'
              - name: oom
                match: 'Out of memory'
                severity: critical
                title: 'OOM on the {stream} of {path}'
              - name: json-error
                match: 'payment failed'
                sources: [events]
                title: 'payment failed ({level}, order {order})'
            """
        )
    )
    config = tmp_path / "tailhook.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            state_dir: state
            sources:
              - name: app
                paths: [app.log]
                multiline: {{start: '\\d{{4}}-\\d\\d-\\d\\d ', timeout: 300ms}}
              - {{name: pods, paths: [0.log], format: cri}}
              - {{name: events, paths: [events.json], format: json, message_key: msg}}
            rules: {{paths: [rules.yaml]}}
            destinations: {{alerts: {{url: '{discord.url()}'}}}}
            """
        )
    )
    daemon = Daemon(config).started()
    try:
        with (tmp_path / "app.log").open("a") as out:
            out.write(
                "2026-11-23 10:00:00 ERROR request failed\n"
                "Traceback (most recent call last):\n"
                '  File "/srv/app/views.py", line 12, in handler\n'
                "ZeroDivisionError: division by zero\n"
            )
        with (tmp_path / "0.log").open("a") as out:
            out.write(
                "2026-11-23T10:00:00.1Z stderr P kernel: Out of \n"
                "2026-11-23T10:00:00.2Z stdout F unrelated\n"
                "2026-11-23T10:00:00.3Z stderr F memory: killed process 1234\n"
            )
        with (tmp_path / "events.json").open("a") as out:
            out.write('{"msg": "payment failed", "level": "warning", "order": 1234}\n')
        received = discord.wait_for_embeds(3)
    finally:
        assert daemon.stop() == 0
    # Titles come with Markdown escaped (\_ and \( ); compare the text.
    embeds = {e["title"].replace("\\", ""): e for e in received}
    assert set(embeds) == {
        "request failed",
        f"OOM on the stderr of {tmp_path / '0.log'}",
        "payment failed (warning, order 1234)",
    }
    traceback = embeds["request failed"]["description"]
    assert "Traceback (most recent call last):" in traceback and "ZeroDivisionError: division by zero" in traceback
    assert "Out of memory: killed process 1234" in embeds[f"OOM on the stderr of {tmp_path / '0.log'}"]["description"]

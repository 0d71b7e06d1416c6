"""``heartbeat.report``: the daily report's destination and time, alone or beside a URL to ping."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailhook.config import ConfigError, ReportConfig, load_config
from tests.conftest import WriteFile

TOKEN = "fakeToken_" + "x" * 58
CONFIG = (
    "state_dir: state\n"
    "sources: [{name: app, paths: [app.log]}]\n"
    "destinations:\n"
    f'  ops: {{url: "https://discord.com/api/webhooks/112233445566778899/{TOKEN}"}}\n'
)


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(p) for p in caught.value.problems]


def test_a_heartbeat_may_be_only_a_report_at_nine_by_default(write: WriteFile) -> None:
    config = load_config(write("tailhook.yaml", CONFIG + "heartbeat: {report: {to: ops}}\n"))
    assert config.heartbeat is None  # nothing to ping
    assert config.report == ReportConfig(to="ops", at=9 * 60)


def test_a_report_beside_a_url_to_ping(write: WriteFile) -> None:
    heartbeat = "heartbeat:\n  url: https://hc-ping.com/abc\n  every: 1m\n  report: {to: ops, at: '21:30'}\n"
    config = load_config(write("tailhook.yaml", CONFIG + heartbeat))
    assert config.heartbeat is not None and config.heartbeat.every == 60
    assert config.report == ReportConfig(to="ops", at=21 * 60 + 30)


def test_without_destinations_any_to_goes_to_the_console(write: WriteFile) -> None:
    path = write("tailhook.yaml", "sources: [{name: app, paths: [app.log]}]\nheartbeat: {report: {to: anywhere}}\n")
    assert load_config(path).report == ReportConfig(to="anywhere")


def test_every_problem_of_a_report_is_reported_with_file_line_and_key(write: WriteFile) -> None:
    path = write(
        "tailhook.yaml",
        CONFIG
        + "heartbeat:\n"  # line 5
        + "  every: 1m\n"
        + "  report:\n"
        + "    to: nowhere\n"
        + "    at: 22:00\n"
        + "    when: daily\n",
    )
    assert problems(path) == [
        f"{path}:6: heartbeat.every: only means something with url or url_file",
        f"{path}:8: heartbeat.report.to: no destination is named 'nowhere'",
        f"{path}:9: heartbeat.report.at: must be a time of day in quotes, such as '22:00' "
        "(unquoted, YAML reads 22:00 as a number)",
        f"{path}:10: heartbeat.report.when: unknown key",
    ]


@pytest.mark.parametrize(
    ("heartbeat", "problem"),
    [
        ("heartbeat: {}", "heartbeat: needs url or url_file (the URL to ping), a report, or both"),
        ("heartbeat: {report: {at: '09:00'}}", "heartbeat.report.to: is required"),
        ("heartbeat: {report: {to: ops, at: '9h'}}", "heartbeat.report.at: '9h' is not a time of day"),
        ("heartbeat: {report: daily}", "heartbeat.report: must be a mapping of keys to values, not str 'daily'"),
        ("heartbeat: {url: 'https://a/b', url_file: u, report: {to: ops}}",
         "heartbeat: needs exactly one of url or url_file"),
    ],
)  # fmt: skip
def test_a_report_that_cannot_be_made_says_why(write: WriteFile, heartbeat: str, problem: str) -> None:
    (found,) = problems(write("tailhook.yaml", CONFIG + heartbeat + "\n"))
    assert found.split(": ", 1)[1].startswith(problem)

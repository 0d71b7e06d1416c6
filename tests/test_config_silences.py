"""``silences:`` in the main config: what is read, and every problem with file, line and key."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from tailhook.config import ScheduleConfig, load_config
from tailhook.events import Severity
from tests.conftest import WriteFile
from tests.test_config import MINIMAL, RULE, problems_of


def test_fixed_and_weekly_silences_are_read(write: WriteFile) -> None:
    write("rules/r.yaml", RULE)
    path = write(
        "tailhook.yaml",
        MINIMAL
        + """
    silences:
      - name: deploy
        reason: deploy of 2.4
        rules: [ssh]
        sources: app
        hosts: [web-1, web-2]
        severities: [warning, P1]
        from: 2025-06-01T22:00:00+02:00
        until: "2025-06-02T01:30:00+02:00"
      - name: nightly-backup
        schedule: {days: [mon, Friday], from: "22:00", until: "06:00", timezone: Europe/Berlin}
      - name: local
        schedule: {days: sun, from: "03:00", until: "04:00"}
    """,
    )
    deploy, nightly, local = load_config(path).silences

    berlin = ZoneInfo("Europe/Berlin")
    assert deploy.name == "deploy" and deploy.reason == "deploy of 2.4" and deploy.line == 9
    assert deploy.rules == {"ssh"} and deploy.sources == {"app"} and deploy.hosts == {"web-1", "web-2"}
    assert deploy.severities == {Severity.WARNING, Severity.ERROR}
    assert deploy.starts == datetime(2025, 6, 1, 22, tzinfo=berlin).timestamp()
    assert deploy.ends == datetime(2025, 6, 2, 1, 30, tzinfo=berlin).timestamp()
    assert deploy.schedule is None
    assert nightly.schedule == ScheduleConfig(frozenset({0, 4}), 22 * 60, 6 * 60, "Europe/Berlin")
    assert nightly.rules is None and nightly.severities is None and nightly.starts is None and nightly.reason == ""
    assert local.schedule == ScheduleConfig(frozenset({6}), 3 * 60, 4 * 60, None)


def test_a_naive_date_time_is_the_hosts_local_time(write: WriteFile) -> None:
    write("rules/r.yaml", RULE)
    path = write(
        "tailhook.yaml", MINIMAL + "\n    silences:\n      - {name: a, from: '2025-06-01 22:00', until: 2025-06-02}\n"
    )
    (silence,) = load_config(path).silences
    assert silence.starts == datetime(2025, 6, 1, 22).timestamp()
    assert silence.ends == datetime(2025, 6, 2).timestamp()


def test_every_silence_problem_is_reported_with_file_line_and_key(write: WriteFile) -> None:
    write("rules/r.yaml", RULE)
    path = write(
        "tailhook.yaml",
        MINIMAL
        + """
    silences:
      - name: deploy
        rules: [ssh, sshd]
        sources: [nowhere]
        severities: [urgent]
        from: yesterday
        until: 2025-06-01T22:00:00Z
        colour: blue
      - name: deploy
        from: 2025-06-02T00:00:00Z
        until: 2025-06-01T00:00:00Z
      - name: both
        from: 2025-06-02T00:00:00Z
        schedule: {days: [mon], from: "22:00", until: "06:00"}
      - name: neither
        reason: forgot when
      - name: half
        from: 2025-06-02T00:00:00Z
      - name: bad-schedule
        schedule: {days: [someday], from: 22:00, until: "25:00", timezone: Mars/Olympus, every: week}
      - reason: no name
    """,
    )
    problems = problems_of(path)

    assert problems == [
        f"{path}:10: silences[0] (deploy).rules: no rule is named 'sshd'",
        f"{path}:11: silences[0] (deploy).sources: no source is named 'nowhere'",
        f"{path}:12: silences[0] (deploy).severities: unknown severity 'urgent'; "
        "expected one of critical, error, warning, info, debug (or P0, P1, P2, P3, DEV)",
        f"{path}:13: silences[0] (deploy).from: 'yesterday' is not a date-time; write it as ISO 8601, "
        "such as 2025-06-01T22:00:00+02:00 (without an offset: the host's local time)",
        f"{path}:15: silences[0] (deploy).colour: unknown key",
        f"{path}:16: silences[1] (deploy).name: another silence is also named 'deploy'",
        f"{path}:18: silences[1] (deploy).until: must be later than from",
        f"{path}:20: silences[2] (both).from: give from/until or schedule, not both",
        f"{path}:22: silences[3] (neither): needs from and until (date-times), or a weekly schedule",
        f"{path}:24: silences[4] (half).until: is required",
        f"{path}:27: silences[5] (bad-schedule).schedule.days: 'someday' is not a day of the week; "
        "use mon, tue, wed, thu, fri, sat, sun",
        f"{path}:27: silences[5] (bad-schedule).schedule.from: must be a time of day in quotes, such as '22:00' "
        "(unquoted, YAML reads 22:00 as a number)",
        f"{path}:27: silences[5] (bad-schedule).schedule.until: '25:00' is not a time of day; "
        "write it as 'HH:MM', such as '06:30' or '22:00'",
        f"{path}:27: silences[5] (bad-schedule).schedule.timezone: unknown time zone 'Mars/Olympus'; "
        "use an IANA name such as Europe/Berlin or UTC",
        f"{path}:27: silences[5] (bad-schedule).schedule.every: unknown key",
        f"{path}:28: silences[6].name: is required",
        f"{path}:28: silences[6]: needs from and until (date-times), or a weekly schedule",
    ]


def test_silences_must_be_a_list_of_mappings(write: WriteFile) -> None:
    write("rules/r.yaml", RULE)
    path = write("tailhook.yaml", MINIMAL + "\n    silences: {name: x}\n")
    assert problems_of(path) == [f"{path}:8: silences: must be a list, not a mapping"]
    path = write("tailhook.yaml", MINIMAL + "\n    silences: [deploy]\n")
    assert problems_of(path) == [f"{path}:8: silences[0]: must be a mapping of keys to values, not str 'deploy'"]


def test_rule_names_are_not_checked_while_a_rule_file_is_broken(write: WriteFile) -> None:
    """A rule file with problems may lack the very rule a silence names: only its own problems are shown."""
    rules = write("rules/r.yaml", "rules:\n  - name: ssh\n    match: '(unclosed'\n")
    path = write(
        "tailhook.yaml",
        MINIMAL + "\n    silences:\n      - {name: a, rules: [ssh], from: 2025-01-01, until: 2025-01-02}\n",
    )
    (problem,) = problems_of(path)
    assert problem.startswith(f"{rules}:3: rules[0] (ssh).match: regex does not compile")

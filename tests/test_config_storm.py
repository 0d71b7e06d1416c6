"""The storm settings: escalation, thresholds and recovery, in the main config and per rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from tailhook.config import ConfigError, StormConfig, load_config
from tests.conftest import WriteFile

CONFIG = """
    state_dir: state
    sources:
      - {name: app, paths: ["logs/*.log"]}
    rules:
      paths: ["rules.yaml"]
    storm:
"""


def test_escalation_thresholds_and_recovery_are_read(write: WriteFile) -> None:
    write("rules.yaml", """
        rules:
          - name: ssh
            match: 'Failed password'
            storm: {window: 1m, min_count: 5, recovery: {after: 10m}, max_keys_per_window: 50}
    """)  # fmt: skip
    path = write("tailhook.yaml", CONFIG + "      {window: 30s, max_window: 1h, recovery: {after: 5m}}\n")
    config = load_config(path)
    assert config.storm == StormConfig(window=30, max_window=3600, recovery_after=300)
    assert config.storm.max_keys_per_window == 1000  # the default
    (rule,) = config.rules
    assert rule.storm == StormConfig(window=60, min_count=5, recovery_after=600, max_keys_per_window=50)
    assert StormConfig().max_window is None and StormConfig().recovery_after is None  # off unless asked for


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return [str(p) for p in caught.value.problems]


def test_bad_storm_settings_are_each_reported_with_file_line_and_key(write: WriteFile) -> None:
    write("rules.yaml", """
        rules:
          - name: ssh
            match: 'Failed password'
            storm:
              min_count: 0
              max_keys_per_window: many
              recovery: {}
    """)  # fmt: skip
    path = write(
        "tailhook.yaml", CONFIG + "      window: 10m\n      max_window: 1m\n      recovery: {after: soon, then: x}\n"
    )
    rules = str(path.parent / "rules.yaml")
    assert problems(path) == [
        f"{path}:8: storm.max_window: must be at least window (600s)",
        f"{path}:9: storm.recovery.after: 'soon' is not a duration; write it like '500ms', '60s', '10m' or '1h'",
        f"{path}:9: storm.recovery.then: unknown key",
        f"{rules}:5: rules[0] (ssh).storm.min_count: must be a whole number of at least 1, not int 0",
        f"{rules}:6: rules[0] (ssh).storm.max_keys_per_window: must be a whole number of at least 1, not str 'many'",
        f"{rules}:7: rules[0] (ssh).storm.recovery.after: is required",
    ]


def test_attach_held_is_read_in_the_main_file_and_per_rule(write: WriteFile) -> None:
    write("rules.yaml", """
        rules:
          - name: ssh
            match: 'Failed password'
            storm: {attach_held: 0}
          - name: disk
            match: 'No space left'
            storm: {attach_held: 100000}
    """)  # fmt: skip
    path = write("tailhook.yaml", CONFIG + "      {attach_held: 50}\n")
    config = load_config(path)
    assert config.storm == StormConfig(attach_held=50)
    assert [rule.storm.attach_held for rule in config.rules if rule.storm is not None] == [0, 100_000]
    assert StormConfig().attach_held == 1000  # the default


def test_a_bad_attach_held_is_reported_with_file_line_and_key(write: WriteFile) -> None:
    write("rules.yaml", """
        rules:
          - name: ssh
            match: 'Failed password'
            storm:
              attach_held: -1
          - name: disk
            match: 'No space left'
            storm: {attach_held: 100001}
    """)  # fmt: skip
    path = write("tailhook.yaml", CONFIG + "      attach_held: lots\n")
    rules = str(path.parent / "rules.yaml")
    assert problems(path) == [
        f"{path}:7: storm.attach_held: must be a whole number from 0 to 100,000, not str 'lots'",
        f"{rules}:5: rules[0] (ssh).storm.attach_held: must be a whole number from 0 to 100,000, not int -1",
        f"{rules}:8: rules[1] (disk).storm.attach_held: must be a whole number from 0 to 100,000, not int 100001",
    ]

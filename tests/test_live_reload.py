"""End to end: ``tailhook run`` applies edits to its config and rule files without a signal.

The daemon prints its alerts to the console (no destination); /metrics tells the reloads apart.
The config folder is also where the daemon's log and output files are written, so the watch is
busy all the time, as it is next to a real log.
"""

from __future__ import annotations

import re
import signal
import urllib.request
from pathlib import Path

import pytest

from tests.daemon import RULES, Daemon, metrics, wait_until, write_config
from tests.test_config_watch import configmap
from tests.test_inotify_limits import LIMITED, user_namespaces_work

pytestmark = pytest.mark.timeout(60)

HTTP = "http: {listen: '127.0.0.1:0'}\n"
APPLIED_S = 5.0
"""How long a test waits for a reload: the watch applies an edit within a second; the rest is slack."""


def start(
    tmp_path: Path,
    *args: str,
    storm: str = "{window: 60s, max_per_window: 100}",
    wrapper: tuple[str, ...] = (),
) -> Daemon:
    daemon = Daemon(write_config(tmp_path, extra=HTTP, storm=storm), *args, wrapper=wrapper)
    try:
        return daemon.started()
    except BaseException:
        daemon.kill()
        raise


RELOADS = 'tailhook_config_reloads_total{result="%s"}'
LOADED_AT = "tailhook_config_last_reload_success_timestamp_seconds"
NEW_RULE = """\
  - name: disk-full
    match: 'No space left on device: (?P<path>\\S+)'
    severity: critical
    key: '{path}'
    title: 'disk full at {path}'
"""


def rules_file(daemon: Daemon) -> Path:
    return daemon.directory / "rules.d" / "rules.yaml"


def test_a_new_rule_applies_without_a_signal(tmp_path: Path) -> None:
    daemon = start(tmp_path)
    loaded_at = metrics(daemon)[LOADED_AT]
    with rules_file(daemon).open("a") as rules:
        rules.write(NEW_RULE)
    daemon.wait_for_log("reloaded: 4 rules", timeout=APPLIED_S)
    daemon.append("write failed: No space left on device: /var/lib/app")
    wait_until(lambda: "disk full at /var/lib/app" in daemon.stdout, what="the new rule's alert")
    stats = metrics(daemon)
    assert daemon.stop() == 0

    assert f"reloading: {rules_file(daemon)} changed" in daemon.stderr
    assert stats[RELOADS % "success"] == 1
    assert stats[RELOADS % "failure"] == 0
    assert stats[LOADED_AT] > loaded_at


def test_a_broken_edit_keeps_the_running_rules_and_says_where(tmp_path: Path) -> None:
    daemon = start(tmp_path)
    loaded_at = metrics(daemon)[LOADED_AT]
    good = rules_file(daemon).read_text()
    rules_file(daemon).write_text(good + "  - name: broken\n    match: '(unclosed'\n    severty: error\n")
    daemon.wait_for_log("the running configuration stays", timeout=APPLIED_S)
    daemon.append("LOUD still matched by the old rules")
    wait_until(lambda: "loud: still matched by the old rules" in daemon.stdout, what="an alert of the old rules")
    broken = metrics(daemon)

    rules_file(daemon).write_text(good + NEW_RULE)  # fixed: applies as any edit does
    daemon.wait_for_log("reloaded: 4 rules", timeout=APPLIED_S)
    fixed = metrics(daemon)
    assert daemon.stop() == 0

    match_line = len(good.splitlines()) + 2
    assert f"{rules_file(daemon)}:{match_line}: rules[3] (broken).match: regex does not compile" in daemon.stderr
    assert f"{rules_file(daemon)}:{match_line + 1}: rules[3] (broken).severty: unknown key" in daemon.stderr
    assert broken[RELOADS % "failure"] == 1  # once: the same broken file is not tried again and again
    assert broken[RELOADS % "success"] == 0
    assert broken[LOADED_AT] == loaded_at
    assert fixed[RELOADS % "success"] == 1
    assert fixed[LOADED_AT] > loaded_at


def test_a_removed_rule_stops_matching(tmp_path: Path) -> None:
    daemon = start(tmp_path)
    rules_file(daemon).write_text(RULES.lstrip().split("  - name: chatter")[0])
    daemon.wait_for_log("reloaded: 2 rules", timeout=APPLIED_S)
    daemon.append("CHATTER nobody listens", "LOUD after the removal")
    wait_until(lambda: "loud: after the removal" in daemon.stdout, what="the alert after the removal")
    assert daemon.stop() == 0
    assert "chatter: nobody listens" not in daemon.stdout  # the lines are matched in order


def test_a_configmap_update_is_picked_up(tmp_path: Path) -> None:
    volume = tmp_path / "configmap"
    configmap(volume, {"rules.yaml": RULES.lstrip()}, version=1)
    config = write_config(tmp_path, extra=HTTP)
    config.write_text(config.read_text().replace("rules.d/*.yaml", "configmap/*.yaml"))
    daemon = Daemon(config).started()
    assert "3 rules" in daemon.stderr

    configmap(volume, {"rules.yaml": RULES.lstrip() + NEW_RULE}, version=2)
    daemon.wait_for_log("reloaded: 4 rules", timeout=APPLIED_S)
    daemon.append("No space left on device: /data")
    wait_until(lambda: "disk full at /data" in daemon.stdout, what="the alert of the rule the update added")

    configmap(volume, {"rules.yaml": "rules:\n" + NEW_RULE}, version=3)  # the watch follows ..data
    daemon.wait_for_log("reloaded: 1 rules", timeout=APPLIED_S)
    stats = metrics(daemon)
    assert daemon.stop() == 0
    assert f"reloading: {volume / 'rules.yaml'} changed" in daemon.stderr
    assert stats[RELOADS % "success"] == 2


HELD = 'tailhook_storm_held_total{rule="anything-loud"}'


def test_storm_windows_of_unchanged_rules_survive_a_reload(tmp_path: Path) -> None:
    daemon = start(tmp_path, "--dry-run", storm="{window: 10m, max_per_window: 1}")
    daemon.append("LOUD storm")
    wait_until(lambda: "loud: storm" in daemon.stdout, what="the first alert")
    (daemon.directory / "rules.d" / "more.yaml").write_text("rules:\n" + NEW_RULE)
    daemon.wait_for_log("reloaded: 4 rules", timeout=APPLIED_S)
    daemon.append("LOUD storm")
    wait_until(lambda: metrics(daemon).get(HELD) == 1, what="the second one held back")
    assert daemon.stdout.count("loud: storm") == 1
    assert daemon.stop() == 0  # a dry run sends what open windows hold as digests when it stops
    assert "loud: storm (+1 more)" in daemon.stdout


def test_a_removed_rule_still_sends_the_digest_of_its_open_window(tmp_path: Path) -> None:
    daemon = start(tmp_path, storm="{window: 4s, max_per_window: 1}")
    daemon.append("LOUD going away", "LOUD going away")
    wait_until(lambda: metrics(daemon).get(HELD) == 1, what="the second one held back")
    rules_file(daemon).write_text(RULES.lstrip().split("  - name: anything-loud")[0])
    daemon.wait_for_log("reloaded: 1 rules", timeout=APPLIED_S)
    assert "(+1 more)" not in daemon.stdout  # the window is still open
    wait_until(lambda: "loud: going away (+1 more)" in daemon.stdout, what="the digest at the window's end")
    assert daemon.stop() == 0


def test_sighup_still_reloads_and_an_edit_it_loaded_is_not_loaded_again(tmp_path: Path) -> None:
    daemon = start(tmp_path)
    with rules_file(daemon).open("a") as rules:
        rules.write(NEW_RULE)
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_for_log("reloaded: 4 rules", timeout=APPLIED_S)
    # Another edit, and once it is applied the first one has been looked at too.
    (daemon.directory / "rules.d" / "more.yaml").write_text("rules:\n  - {name: more, match: MORE}\n")
    daemon.wait_for_log("reloaded: 5 rules", timeout=APPLIED_S)
    stats = metrics(daemon)
    assert daemon.stop() == 0
    assert stats[RELOADS % "success"] == 2
    assert daemon.stderr.count("reloading: ") == 1  # the second; the first came by SIGHUP


@pytest.mark.skipif(not user_namespaces_work(), reason="needs unshare and user namespaces")
def test_without_inotify_edits_are_found_by_looking_every_second(tmp_path: Path) -> None:
    daemon = start(tmp_path, wrapper=LIMITED)
    daemon.wait_for_log("cannot watch the config and rule files")
    with rules_file(daemon).open("a") as rules:
        rules.write(NEW_RULE)
    daemon.wait_for_log("reloaded: 4 rules", timeout=APPLIED_S)
    assert daemon.stop() == 0
    assert daemon.stderr.count("cannot watch the config and rule files") == 1
    assert "Traceback" not in daemon.stderr


def test_the_metrics_say_what_they_are(tmp_path: Path) -> None:
    daemon = start(tmp_path)
    port = re.search(r"/metrics on \S+ \(port (\d+)\)", daemon.stderr)
    assert port
    with urllib.request.urlopen(f"http://127.0.0.1:{port[1]}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    assert daemon.stop() == 0
    assert "# TYPE tailhook_config_reloads_total counter" in text
    assert "# TYPE tailhook_config_last_reload_success_timestamp_seconds gauge" in text
    assert re.search(r'^tailhook_config_reloads_total\{result="failure"\} 0\.0$', text, re.MULTILINE)

"""tailhook installed without the journald extra (no systemd-python, as a plain ``pip install
tailhook`` leaves it) reads the journal through journalctl and delivers what its rules match."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from tests.daemon import PRINTED, wait_until
from tests.discord_standin import standin_in_thread

from tailhook.events import Severity

if TYPE_CHECKING:
    from tests.packaging.conftest import Installed

JOURNAL_REMOTE = shutil.which("systemd-journal-remote") or "/lib/systemd/systemd-journal-remote"

pytestmark = [
    pytest.mark.timeout(300),  # the first test to ask for the wheel waits for its build
    pytest.mark.skipif(not Path(JOURNAL_REMOTE).exists(), reason="systemd-journal-remote is not installed"),
    pytest.mark.skipif(shutil.which("journalctl") is None, reason="journalctl is not installed"),
]


def write_journal(folder: Path, messages: list[str]) -> None:
    now = int(time.time() * 1_000_000)
    export = "".join(
        f"__CURSOR=s=0;i={i}\n__REALTIME_TIMESTAMP={now + i}\n__MONOTONIC_TIMESTAMP={1000 + i}\n"
        f"_BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=node-7\nMESSAGE={message}\nPRIORITY=3\n"
        "_SYSTEMD_UNIT=ssh.service\nSYSLOG_IDENTIFIER=sshd\n_PID=4242\n\n"
        for i, message in enumerate(messages)
    )
    subprocess.run([JOURNAL_REMOTE, f"--output={folder / 'remote.journal'}", "-"], input=export.encode(),
                   check=True, capture_output=True)  # fmt: skip


def test_without_systemd_python_the_journal_is_read_through_journalctl(installed: Installed, tmp_path: Path) -> None:
    probe = subprocess.run([str(installed.bin / "python"), "-c", "import systemd.journal"], capture_output=True,
                           env=installed.env, check=False)  # fmt: skip
    assert probe.returncode != 0, "systemd-python is installed in the plain install"
    journal = tmp_path / "journal"
    journal.mkdir()
    write_journal(journal, ["Accepted publickey for deploy", "Failed password for root from 203.0.113.9 port 22"])
    (tmp_path / "rules.yaml").write_text(
        "rules:\n"
        "  - name: ssh-failure\n"
        "    match: 'Failed password for (?P<user>\\S+) from (?P<ip>\\S+)'\n"
        "    severity: from_priority\n"
        "    title: 'SSH failure for {user} from {ip} on {hostname}: {unit} {priority}'\n"
    )
    with standin_in_thread() as discord:
        config = tmp_path / "tailhook.yaml"
        config.write_text(
            f"state_dir: {tmp_path / 'state'}\n"
            "shutdown_timeout: 2s\n"
            f"sources:\n  - {{name: journal, type: journald, directory: {journal}, start_at: beginning}}\n"
            f"rules: {{paths: ['{tmp_path / 'rules.yaml'}']}}\n"
            f"destinations:\n  alerts: {{url: '{discord.url()}'}}\n"
        )
        check = subprocess.run([str(installed.bin / "tailhook"), "check", "-c", str(config)], capture_output=True,
                               text=True, env=installed.env, check=False)  # fmt: skip
        PRINTED.append(lambda: check.stdout + check.stderr)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "source journal: reads the journal through journalctl (systemd-python is not installed)" in check.stdout
        stderr = tmp_path / "stderr.txt"
        with stderr.open("w") as err:
            daemon = subprocess.Popen([str(installed.bin / "tailhook"), "run", "-c", str(config)],
                                      stdout=subprocess.DEVNULL, stderr=err, env=installed.env)  # fmt: skip
        PRINTED.append(stderr.read_text)
        try:
            (embed,) = discord.wait_for_embeds(1, timeout=30)
            write_journal(journal, ["Failed password for admin from 198.51.100.4 port 22"])  # followed live
            embeds = discord.wait_for_embeds(2, timeout=30)
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    log = stderr.read_text()
    assert "source journal: reading the journal in" in log and "through journalctl" in log
    assert embed["title"] == "SSH failure for root from 203.0.113.9 on node-7: ssh.service err"
    assert embeds[1]["title"].startswith("SSH failure for admin from 198.51.100.4")
    assert embed["color"] == Severity.ERROR.colour  # from PRIORITY 3
    wait_until(lambda: daemon.returncode is not None, what="the daemon to stop")
    assert daemon.returncode == 0, log

"""What tailhook writes is private: its state folder 0700 and every file in it 0600, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailhook.config import load_config
from tests.daemon import Daemon, wait_until, write_config
from tests.discord_standin import standin_in_thread


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which a file is made 0644 unless its maker says otherwise (the daemon inherits it)."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("umask_022")
def test_the_daemon_makes_its_state_folder_0700_and_every_file_in_it_0600(tmp_path: Path) -> None:
    with standin_in_thread() as discord:
        config = write_config(tmp_path, url=discord.url())
        daemon = Daemon(config).started()
        try:
            daemon.append("LOUD the disk is on fire")
            discord.wait_for_embeds(1, timeout=30)
            state = tmp_path / "state"
            wait_until((state / "spool.sqlite3-wal").exists, timeout=10, what="the spool's WAL")
            found = [state, *state.rglob("*")]  # while the spool is open: its WAL and shared memory go with it
            modes = {str(p.relative_to(tmp_path)): oct(mode(p)) for p in found}
            private = {str(p.relative_to(tmp_path)): oct(0o700 if p.is_dir() else 0o600) for p in found}
        finally:
            assert daemon.stop() == 0
    assert {"state/spool.sqlite3", "state/spool.sqlite3-wal", "state/spool.sqlite3-shm", "state/cache"} <= set(modes)
    assert any(name.startswith("state/cache/hyperscan-") for name in modes)  # the compiled rules
    assert modes == private


@pytest.mark.usefixtures("umask_022")
def test_a_state_folder_others_may_read_is_reported_at_start(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "state").mkdir(mode=0o755)
    daemon = Daemon(config).started()
    try:
        daemon.wait_for_log("may be read by others (mode 0755)")
    finally:
        assert daemon.stop() == 0
    assert mode(tmp_path / "state") == 0o755  # reported, not changed behind the operator's back


def test_a_url_file_others_may_read_is_reported_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret = tmp_path / "webhook"
    secret.write_text("https://discord.com/api/webhooks/123456789012345678/s3cr3t-t0ken\n")
    secret.chmod(0o644)
    config = tmp_path / "tailhook.yaml"
    config.write_text(
        "state_dir: state\nsources: [{name: app, paths: [app.log]}]\ndestinations:\n  team: {url_file: webhook}\n"
    )
    load_config(config)
    load_config(config)  # a reload: not again
    warnings = [r.getMessage() for r in caplog.records if "may be read by others" in r.getMessage()]
    assert warnings == [f"{secret} holds a webhook's token and may be read by others (mode 0644): chmod 600 it "
                        "(in Kubernetes, give the Secret's volume defaultMode: 0400)"]  # fmt: skip
    assert "s3cr3t" not in caplog.text
    secret.chmod(0o600)
    other = tmp_path / "other.yaml"
    other.write_text(config.read_text())
    caplog.clear()
    load_config(other)
    assert "may be read by others" not in caplog.text

"""Out of inotify watches: the daemon says so once and polls instead of going deaf.

The limit is lowered in a user namespace of the test's own, so nothing else on
the machine is touched: ``/proc/sys/user/max_inotify_watches`` there counts
only for processes inside it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.daemon import Daemon, wait_until, write_config

pytestmark = pytest.mark.timeout(60)

LIMITED = (
    "unshare",
    "--user",
    "--map-root-user",
    "sh",
    "-c",
    'echo 0 > /proc/sys/user/max_inotify_watches && exec "$@"',
    "-",
)


def user_namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run([*LIMITED, "true"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not user_namespaces_work(), reason="needs unshare and user namespaces")
def test_no_inotify_watches_left_falls_back_to_polling(tmp_path: Path) -> None:
    daemon = Daemon(write_config(tmp_path), wrapper=LIMITED)
    try:
        daemon.started()
        daemon.wait_for_log("filesystem events unavailable")
        daemon.append("LOUD heard without inotify")
        wait_until(lambda: "loud: heard without inotify" in daemon.stdout, what="the alert, found by polling")
    finally:
        code = daemon.stop()
    assert code == 0
    assert daemon.stderr.count("filesystem events unavailable") == 1
    assert "Traceback" not in daemon.stderr

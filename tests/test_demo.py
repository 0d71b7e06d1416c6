"""The README's first command: the demo shows real alerts within seconds, with no Discord account."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(60)
def test_the_demo_prints_alerts_within_ten_seconds(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "demo.py"),
            "--seconds",
            "10",
            "--interval",
            "0.05",
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    for alert in (
        "SSH password failure for oracle from 203.0.113.45",
        "OOM killer ended java (pid 32011)",
        "nginx: upstream http://127.0.0.1:8080/api/cart timed out",
        "sudo refused for mallory",
    ):
        assert alert in result.stdout, result.stdout + result.stderr
    assert "Traceback" not in result.stderr

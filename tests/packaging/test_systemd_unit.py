"""The systemd unit is one systemd accepts, and keeps the promises the README makes of it."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "tailhook.service"


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    tailhook = Path(sys.executable).parent / "tailhook"  # verify wants ExecStart to exist
    unit = tmp_path / "tailhook.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/tailhook", str(tailhook)))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_a_config_problem_stops_the_restart_loop() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(UNIT)
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["RestartPreventExitStatus"] == "78"
    assert service["ExecStart"].endswith("tailhook run -c /etc/tailhook/tailhook.yaml")

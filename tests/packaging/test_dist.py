"""The release: the wheel and the sdist build (``make dist`` runs the same; the ``dist`` fixture builds
them once per session), and the wheel, pip-installed into a fresh venv as a user would, runs
``tailhook --version`` and checks the example config.
(the ``installed`` fixture: see there how)."""

from __future__ import annotations

import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from tests.packaging.conftest import Installed

from tailhook import __version__

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)  # the first test to ask for them waits for the build and the wheelhouse
def test_the_wheel_installs_into_a_fresh_venv_and_checks_the_example(
    dist: Path, installed: Installed, tmp_path: Path
) -> None:
    (wheel,) = dist.glob("tailhook-*.whl")
    (sdist,) = dist.glob("tailhook-*.tar.gz")
    assert wheel.name == f"tailhook-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "tailhook/cli.py" in names and not any("__pycache__" in name for name in names)
    with tarfile.open(sdist) as archive:
        members = {Path(m.name).relative_to(f"tailhook-{__version__}").as_posix() for m in archive.getmembers()}
    assert {"README.md", "pyproject.toml", "src/tailhook/cli.py"} <= members

    tailhook = str(installed.bin / "tailhook")
    env = installed.env
    version = subprocess.run([tailhook, "--version"], capture_output=True, text=True, check=False, timeout=60, env=env)
    assert version.returncode == 0, version.stdout + version.stderr
    assert version.stdout.strip() == f"tailhook {__version__}"
    check = subprocess.run([tailhook, "check", "-c", str(ROOT / "config.example.yaml")],
                           capture_output=True, text=True, check=False, timeout=60, env=env)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "config.example.yaml: OK" in check.stdout

    # without the fleet extra, fleet mode is a config error that says what to install
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("sources: [{name: app, paths: [a.log]}]\nfleet: {redis: 'redis://127.0.0.1:1/0', name: shop}\n")
    check = subprocess.run([tailhook, "check", "-c", str(fleet)],
                           capture_output=True, text=True, check=False, timeout=60, env=env)  # fmt: skip
    assert check.returncode == 78, check.stdout + check.stderr
    assert "fleet mode needs the redis package: pip install 'tailhook[fleet]'" in check.stdout + check.stderr

"""The release: the wheel and the sdist build (``make dist`` runs the same), and the wheel, installed
into a fresh venv as a user would, runs ``tailhook --version`` and checks the example config."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tailhook import __version__

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_the_wheel_installs_into_a_fresh_venv_and_checks_the_example(tmp_path: Path) -> None:
    pytest.importorskip("build", reason="the dev extra installs build")
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)], check=True,
                   capture_output=True, timeout=240)  # fmt: skip
    (wheel,) = dist.glob("tailhook-*.whl")
    (sdist,) = dist.glob("tailhook-*.tar.gz")
    assert wheel.name == f"tailhook-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "tailhook/cli.py" in names and not any("__pycache__" in name for name in names)
    with tarfile.open(sdist) as archive:
        members = {Path(m.name).relative_to(f"tailhook-{__version__}").as_posix() for m in archive.getmembers()}
    assert {"README.md", "pyproject.toml", "src/tailhook/cli.py"} <= members

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], check=True, timeout=240)
    tailhook = str(venv / "bin" / "tailhook")
    version = subprocess.run([tailhook, "--version"], capture_output=True, text=True, check=True, timeout=60)
    assert version.stdout.strip() == f"tailhook {__version__}"
    check = subprocess.run([tailhook, "check", "-c", str(ROOT / "config.example.yaml")],
                           capture_output=True, text=True, check=False, timeout=60)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "config.example.yaml: OK" in check.stdout

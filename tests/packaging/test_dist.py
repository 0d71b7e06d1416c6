"""The release: the wheel and the sdist build (``make dist`` runs the same; the ``dist`` fixture builds
them once per session), and the wheel, pip-installed into a fresh venv as a user would, runs
``tailhook --version`` and checks the example config.

The venv is made without pip (ensurepip alone takes ~10 s) and the dev environment's pip installs
into it with ``--python``, running under the venv's interpreter; the dependencies come only from the
session's wheelhouse (pip resolved them from the wheel's own metadata), so no index is asked."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tailhook import __version__

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)  # the first test to ask for them waits for the build and the wheelhouse
def test_the_wheel_installs_into_a_fresh_venv_and_checks_the_example(
    dist: Path, wheelhouse: Path, tmp_path: Path
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

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # Nothing from this checkout or the dev environment leaks in: no PYTHONPATH, and pip's own settings
    # (extra find-links, indexes) are ignored, so the wheelhouse alone must hold every dependency.
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"} and not k.startswith("PIP_")}
    install = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
               "--no-index", "--find-links", str(wheelhouse), str(wheel)]  # fmt: skip
    subprocess.run(install, check=True, timeout=240, env=env | {"PIP_CONFIG_FILE": os.devnull})
    tailhook = str(venv / "bin" / "tailhook")
    version = subprocess.run([tailhook, "--version"], capture_output=True, text=True, check=False, timeout=60, env=env)
    assert version.returncode == 0, version.stdout + version.stderr
    assert version.stdout.strip() == f"tailhook {__version__}"
    check = subprocess.run([tailhook, "check", "-c", str(ROOT / "config.example.yaml")],
                           capture_output=True, text=True, check=False, timeout=60, env=env)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert "config.example.yaml: OK" in check.stdout

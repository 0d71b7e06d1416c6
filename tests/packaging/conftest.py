"""The release, built once per test session and shared by the tests that install it: the wheel and the
sdist as ``make dist`` builds them (``python -m build``: the sdist, then the wheel from the sdist), and a
wheelhouse of tailhook's wheel with the wheels of its dependencies, so that installs need no index."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: float) -> None:
    result = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, (
        f"{args[:4]} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )


def _once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """A folder *make* fills once per test session, whatever the number of pytest-xdist workers: the
    first to need it makes it under a lock in the folder all workers share; the others wait and use it.
    (A build in the source tree, twice at once, collides.)"""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = shared / name
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / f"{name}.done").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that failed half way
            folder.mkdir()
            started = time.monotonic()
            make(folder)
            print(f"{name}: {time.monotonic() - started:.0f} s")
            (shared / f"{name}.done").touch()
    return folder


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding tailhook's wheel and sdist, built from this checkout once per session."""
    pytest.importorskip("build", reason="the dev extra installs build")
    return _once(tmp_path_factory, "dist", lambda folder: _run(
        sys.executable, "-m", "build", "--outdir", str(folder), str(ROOT), timeout=240
    ))  # fmt: skip


@pytest.fixture(scope="session")
def wheel(dist: Path) -> Path:
    (built,) = dist.glob("tailhook-*.whl")
    return built


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A folder of wheels: tailhook's (the one in ``dist``) and those of the dependencies its metadata
    names (no extras), resolved by pip from that metadata; ``pip install --no-index --find-links`` it."""
    return _once(tmp_path_factory, "wheelhouse", lambda folder: _run(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(folder), str(wheel), timeout=300
    ))  # fmt: skip


@dataclass(frozen=True)
class Installed:
    """tailhook installed from its wheel, without extras, in a fresh venv (``bin``), and the
    environment to run it in: nothing of this checkout or the dev environment leaks in."""

    bin: Path
    env: dict[str, str]


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory, wheel: Path, wheelhouse: Path) -> Installed:
    """The wheel, pip-installed as a user would (no extras: no systemd-python), into a venv made
    without pip (ensurepip alone takes ~10 s); the dev environment's pip installs into it with
    ``--python``, under the venv's interpreter, from the wheelhouse alone, so no index is asked."""
    venv = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", "--without-pip", str(venv), timeout=120)
    # No PYTHONPATH, and pip's own settings (extra find-links, indexes) ignored: the wheelhouse alone
    # must hold every dependency.
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"} and not k.startswith("PIP_")}
    install = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
               "--no-index", "--find-links", str(wheelhouse), str(wheel)]  # fmt: skip
    subprocess.run(install, check=True, timeout=240, env=env | {"PIP_CONFIG_FILE": os.devnull})
    return Installed(venv / "bin", env)

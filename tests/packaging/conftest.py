"""The release, built once per test session and shared by the tests that install it: the wheel and the
sdist as ``make dist`` builds them (``python -m build``: the sdist, then the wheel from the sdist), and a
wheelhouse of tailhook's wheel with the wheels of its dependencies, so that installs need no index."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


RELEASE_FIXTURES = frozenset({"dist", "wheel", "wheelhouse", "installed"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs the release runs in one pytest-xdist worker (``--dist=loadgroup``): the
    build is once per worker, and two builds at once in one source tree collide."""
    for item in items:
        if RELEASE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group("release"))


def _run(*args: str, timeout: float) -> None:
    result = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, (
        f"{args[:4]} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding tailhook's wheel and sdist, built from this checkout once per session."""
    pytest.importorskip("build", reason="the dev extra installs build")
    folder = tmp_path_factory.mktemp("dist")
    started = time.monotonic()
    _run(sys.executable, "-m", "build", "--outdir", str(folder), str(ROOT), timeout=240)
    print(f"python -m build: {time.monotonic() - started:.0f} s")
    return folder


@pytest.fixture(scope="session")
def wheel(dist: Path) -> Path:
    (built,) = dist.glob("tailhook-*.whl")
    return built


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A folder of wheels: tailhook's (the one in ``dist``) and those of the dependencies its metadata
    names (no extras), resolved by pip from that metadata; ``pip install --no-index --find-links`` it."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    started = time.monotonic()
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(folder), str(wheel), timeout=300)
    print(f"pip wheel: {time.monotonic() - started:.0f} s")
    return folder


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

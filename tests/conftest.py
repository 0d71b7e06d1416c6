"""Shared fixtures: config files written into tmp_path, a fake clock, a spool, deliveries."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tailhook.events import Delivery, Kind, Notification, Severity
from tailhook.spool import Spool
from tests.daemon import PRINTED, STARTED
from tests.discord_standin import TOKENS

_TOKEN_IN_A_URL = re.compile(r"/webhooks/\d+/(?!\*\*\*)[A-Za-z0-9_.\-]{8,}")


@pytest.fixture(autouse=True, scope="session")
def cache_of_this_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``tailhook test`` keeps compiled rules in $XDG_CACHE_HOME: here, a folder of this session's,
    not the home folder of whoever runs the tests."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture(autouse=True)
def no_token_in_what_tailhook_prints() -> Iterator[None]:
    """After every test: no byte that a daemon or a CLI run of it printed holds a webhook token.

    Not the tokens the stand-in hands out, not the first 20 characters of one, not any
    token-shaped tail of a webhook URL.
    """
    PRINTED.clear()
    STARTED.clear()
    yield
    for daemon in STARTED:  # a failed test may leave one running
        daemon.close()
    STARTED.clear()
    for read in PRINTED:
        text = read()
        for token in TOKENS:
            assert token[:20] not in text, "a webhook token was printed"
        leak = _TOKEN_IN_A_URL.search(text)
        assert leak is None, f"a webhook URL with its token was printed: …{leak[0][:24]}"
    PRINTED.clear()


class FakeClock:
    """A clock that moves only when a test moves it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


WriteFile = Callable[[str, str], Path]


@pytest.fixture
def write(tmp_path: Path) -> WriteFile:
    """Write dedented text to a file under tmp_path and return its path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


def make_delivery(
    title: str, severity: Severity = Severity.ERROR, *, destination: str = "alerts", size: int = 0
) -> Delivery:
    """An alert for *destination*; *size* characters of log line make it that much bigger."""
    n = Notification(
        kind=Kind.ALERT, rule="r", severity=severity, key="k", title=title, description="",
        line="x" * size, source="s", host="h", time=1.5,
    )  # fmt: skip
    return Delivery(destination, n)


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    spool = await Spool.open(tmp_path)
    yield spool
    await spool.close()


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of *size* (``8m``) mounted at *folder* (made here), for a disk that fills up; needs root."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)

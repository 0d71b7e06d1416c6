"""Shared fixtures: config files written into tmp_path, a fake clock, a spool, deliveries."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tailhook.events import Delivery, Kind, Notification, Severity
from tailhook.spool import Spool


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

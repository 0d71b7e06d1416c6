"""``tailhook silence``: the real CLI as a subprocess against a spool made by ``Spool.open``."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tailhook.config import EX_CONFIG
from tailhook.spool import Spool
from tests.daemon import run_cli, write_config

pytestmark = pytest.mark.timeout(60)

CONFIG_SILENCES = """
silences:
  - name: nightly
    reason: backups
    rules: [chatter]
    schedule: {days: [mon, tue, wed, thu, fri, sat, sun], from: "00:00", until: "00:00", timezone: UTC}
"""


@pytest.fixture
async def spool(tmp_path: Path) -> AsyncIterator[Spool]:
    """The daemon's spool, left open as the daemon keeps it, in the config's state_dir."""
    spool = await Spool.open(tmp_path / "state")
    yield spool
    await spool.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, extra=CONFIG_SILENCES)


def silence(*args: str) -> tuple[int, str, str]:
    result = run_cli("silence", *args)
    return result.returncode, result.stdout, result.stderr


async def test_add_list_and_expire(spool: Spool, config: Path) -> None:
    code, out, err = silence("add", "--rule", "chatter", "--for", "2h", "--reason", "deploy", "-c", str(config))
    assert code == 0, err
    assert out.startswith("silence cli:1 added: rules chatter; until ")
    assert "(2 h): deploy" in out and "tailhook silence expire cli:1" in out
    assert await spool.silences_changed() == await spool.silences()  # the daemon sees it

    code, out, err = silence("list", "-c", str(config))
    assert code == 0, err
    header, nightly, deploy = out.splitlines()
    assert header.split() == ["ID", "STATE", "HELD", "HOLDS", "WHEN", "REASON"]
    assert nightly.startswith("config:nightly") and "on, ends in" in nightly and nightly.endswith("backups")
    assert deploy.startswith("cli:1") and "on, ends in 1h5" in deploy and deploy.endswith("deploy")

    code, out, err = silence("list", "--json", "--state-dir", str(spool.path.parent))  # no config: stored ones only
    assert code == 0, err
    (listed,) = json.loads(out)
    assert listed["id"] == "cli:1" and listed["origin"] == "cli" and listed["rules"] == ["chatter"]
    assert listed["active"] and listed["held"] == 0 and listed["reason"] == "deploy"
    assert abs(listed["ends"] - listed["starts"] - 7200) < 1

    code, out, err = silence("expire", "cli:1", "-c", str(config))
    assert code == 0, err
    assert re.match(r"silence cli:1 expired after \d+ s; the daemon sends its note of what it held", out)
    (stored,) = await spool.silences()
    assert stored.expired is not None and stored.window_at(time.time()) is None

    code, out, _ = silence("list", "--json", "-c", str(config))
    assert [item["id"] for item in json.loads(out)] == ["config:nightly"]


async def test_list_shows_what_a_silence_held_so_far(spool: Spool, config: Path) -> None:
    from tailhook.silences import HeldState  # noqa: PLC0415

    start = time.time() // 86400 * 86400
    await spool.commit(
        [], silences=[(("config:nightly", start), HeldState("config:nightly", start, "backups", {"chatter": 4}))]
    )
    code, out, err = silence("list", "--json", "-c", str(config))
    assert code == 0, err
    (nightly,) = json.loads(out)
    assert nightly["held"] == 4 and nightly["schedule"]["timezone"] == "UTC"


async def test_add_until_a_time_and_several_matchers(spool: Spool, config: Path) -> None:
    until = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(time.time() + 3600))
    code, out, err = silence(
        "add", "--source", "app", "--severity", "critical", "--severity", "P1", "--host", "web-1",
        "--until", until, "--reason", "migration", "--json", "-c", str(config),
    )  # fmt: skip
    assert code == 0, err
    added = json.loads(out)
    assert added["sources"] == ["app"] and added["hosts"] == ["web-1"]
    assert added["severities"] == ["critical", "error"]
    assert added["window"]["end"] == pytest.approx(time.time() + 3600, abs=5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "--for", "2h", "--reason", "r"], "say what to silence"),
        (["add", "--rule", "chatter", "--reason", "r"], "one of the arguments --for --until is required"),
        (["add", "--rule", "chatter", "--for", "2h"], "the following arguments are required: --reason"),
        (["add", "--rule", "chatter", "--for", "2h", "--until", "10:00", "--reason", "r"], "not allowed with"),
        (["add", "--rule", "chatter", "--for", "soon", "--reason", "r"], "is not a duration"),
        (["add", "--rule", "chatter", "--for", "0s", "--reason", "r"], "is not longer than zero"),
        (["add", "--severity", "urgent", "--for", "1h", "--reason", "r"], "unknown severity 'urgent'"),
        (["add", "--rule", "nope", "--for", "1h", "--reason", "r"], "--rule 'nope': no rule of"),
        (["add", "--source", "nope", "--for", "1h", "--reason", "r"], "--source 'nope': no source of"),
        (["add", "--rule", "chatter", "--until", "2001-01-01T00:00", "--reason", "r"], "is not in the future"),
        (["add", "--rule", "chatter", "--until", "tomorrow", "--reason", "r"], "is not a time"),
        (["expire", "three"], "is not a silence id"),
    ],
)
async def test_usage_errors_exit_2(spool: Spool, config: Path, args: list[str], message: str) -> None:
    code, out, err = silence(*args, "-c", str(config))
    assert code == 2, (out, err)
    assert message in err
    assert await spool.silences() == []


async def test_what_cannot_be_done_exits_1(spool: Spool, config: Path, tmp_path: Path) -> None:
    code, _, err = silence("expire", "cli:7", "-c", str(config))
    assert (code, err.strip()) == (1, "tailhook: no silence cli:7")
    code, _, err = silence("expire", "config:nightly", "-c", str(config))
    assert code == 1 and f"comes from the config file ({config}:" in err and "change or remove it there" in err
    silence("add", "--rule", "chatter", "--for", "1h", "--reason", "r", "-c", str(config))
    assert silence("expire", "1", "-c", str(config))[0] == 0
    code, _, err = silence("expire", "cli:1", "-c", str(config))
    assert code == 1 and "silence cli:1 is already over" in err
    code, _, err = silence("list", "--state-dir", str(tmp_path / "elsewhere"))
    assert code == 1 and "no spool at" in err


async def test_a_broken_config_exits_78(spool: Spool, tmp_path: Path) -> None:
    broken = write_config(tmp_path, extra="silences:\n  - name: x\n    reason: r\n")
    code, _, err = silence("list", "-c", str(broken))
    assert code == EX_CONFIG
    assert "silences[0] (x): needs from and until (date-times), or a weekly schedule" in err

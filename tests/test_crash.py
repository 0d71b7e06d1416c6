"""Nothing is lost: tailhook killed with SIGKILL again and again while lines arrive and Discord fails."""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.daemon import Daemon, wait_until, write_config
from tests.discord_standin import ThreadedStandIn, numbered_titles, standin_in_thread

KILLS = 12
NUMBERED = re.compile(r"^loud: n=(\d+) pad$")  # the title the rule renders for a writer's line


class Writer(threading.Thread):
    """Appends uniquely numbered matching lines, about 150 a second, until stopped."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.written = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        with self.path.open("a", encoding="utf-8") as out:
            while not self.stopped.is_set():
                out.write("".join(f"LOUD n={self.written + i} pad\n" for i in range(3)))
                out.flush()
                self.written += 3
                self.stopped.wait(0.02)  # the writer's pace, not a wait for anything

    def stop(self) -> int:
        self.stopped.set()
        self.join()
        return self.written


def numbers(discord: ThreadedStandIn) -> Counter[int]:
    return numbered_titles(discord, NUMBERED)


@pytest.mark.timeout(240)
def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261123)
    with standin_in_thread(bucket_limit=1000, bucket_reset_after=1.0) as discord:
        config = write_config(
            tmp_path,
            url=discord.url(),
            extra="probe: {mode: off}\n",
        )
        writer = Writer(tmp_path / "app.log")
        writer.start()
        kills = 0
        try:
            for round_ in range(KILLS):
                daemon = Daemon(config)
                daemon.started()
                if round_ % 4 == 1:
                    discord.fail_next(rng.choice([500, 502, 503]), count=rng.randint(1, 2))
                elif round_ % 4 == 3:
                    discord.drop_next()
                # let it read and deliver for a random moment, then kill it mid-whatever
                deadline = time.monotonic() + rng.uniform(0.05, 0.8)
                while time.monotonic() < deadline and daemon.process.poll() is None:
                    time.sleep(0.005)
                daemon.kill()
                kills += 1
                assert daemon.process.returncode == -9, daemon.stderr[-3000:]
        finally:
            written = writer.stop()

        final = Daemon(config)
        try:
            final.started()
            try:
                wait_until(lambda: len(numbers(discord)) >= written, timeout=60, what=f"all {written} alerts")
            except AssertionError as exc:
                missing = sorted(set(range(written)) - set(numbers(discord)))
                raise AssertionError(f"{exc}; {len(missing)} missing, such as {missing[:20]}") from None
        finally:
            assert final.stop() == 0

    received = numbers(discord)
    missing = sorted(set(range(written)) - set(received))
    duplicates = sum(count - 1 for count in received.values())
    print(f"\n{written} alerts written, {kills} SIGKILLs, {duplicates} duplicates delivered")
    assert missing == []
    # A duplicate can only come from a kill between Discord's 2xx and the spool's delete:
    # one request is in flight per destination, carrying at most ten alerts, so ten per kill.
    assert duplicates <= kills * 10
    assert "Traceback" not in final.stderr

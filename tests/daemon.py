"""Run ``tailhook`` as users do: a subprocess with a config on disk, output captured to files."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

RULES = """
rules:
  - name: ssh-failure
    match: 'Failed password for (?:invalid user )?(?P<user>\\S+) from (?P<ip>[0-9a-fA-F.:]+)'
    severity: error
    key: '{ip}'
    title: 'SSH password failure for {user} from {ip}'
  - name: anything-loud
    match: 'LOUD (?P<what>.*)'
    severity: critical
    key: '{what}'
    title: 'loud: {what}'
  - name: chatter
    match: 'CHATTER (?P<what>.*)'
    severity: info
    key: '{what}'
    title: 'chatter: {what}'
"""


PRINTED: list[Callable[[], str]] = []
"""Every daemon's and CLI run's output, as readers: conftest checks it for tokens after each test."""
STARTED: list[Daemon] = []
"""Every daemon started: conftest kills those a failed test left running."""


def write_config(
    directory: Path,
    *,
    url: str | None = None,
    extra: str = "",
    storm: str = "{window: 60s, max_per_window: 100, max_keys_per_window: 100000}",
    destination: str = "",
) -> Path:
    """A config with one file source over ``app.log`` and the rules above; its storm control all
    but off unless *storm* says otherwise (each line under a key of its own alerts). *destination*:
    more keys of the destination ``alerts`` (``storm_updates: edit``)."""
    (directory / "rules.d").mkdir(exist_ok=True)
    (directory / "rules.d" / "rules.yaml").write_text(RULES.lstrip(), encoding="utf-8")
    (directory / "app.log").touch()
    more = f", {destination}" if destination else ""
    destinations = f"destinations:\n  alerts: {{url: '{url}'{more}}}\n" if url else ""
    text = textwrap.dedent(
        f"""
        state_dir: state
        shutdown_timeout: 2s
        sources:
          - {{name: app, paths: [app.log], start_at: beginning}}
        rules:
          paths: ["rules.d/*.yaml"]
        storm: {storm}
        """
    )
    path = directory / "tailhook.yaml"
    path.write_text(text.lstrip() + destinations + textwrap.dedent(extra), encoding="utf-8")
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "tailhook", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ | (env or {}),
        check=False,
        stdin=subprocess.DEVNULL,
    )
    PRINTED.append(lambda: result.stdout + result.stderr)
    return result


def wait_until(condition: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll *condition* until it is true; fail with *what* after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class Daemon:
    """``tailhook run`` in a subprocess; stdout and stderr go to files in *directory*."""

    def __init__(
        self, config: Path, *args: str, env: dict[str, str] | None = None, wrapper: tuple[str, ...] = ()
    ) -> None:
        """*wrapper*: a command line that runs the daemon's command line given after it (``unshare …``)."""
        self.directory = config.parent
        self.log = self.directory / "app.log"
        self._stdout = (self.directory / "stdout.txt").open("w+", encoding="utf-8")
        self._stderr = (self.directory / "stderr.txt").open("w+", encoding="utf-8")
        self.process = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "tailhook", "run", "-c", str(config), *args],
            stdout=self._stdout,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            env=os.environ | {"TAILHOOK_LOG_LEVEL": "debug", "PYTHONFAULTHANDLER": "1"} | (env or {}),
        )
        PRINTED.append(lambda: self.stdout + self.stderr)
        STARTED.append(self)

    @property
    def stdout(self) -> str:
        return (self.directory / "stdout.txt").read_text(encoding="utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        return (self.directory / "stderr.txt").read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, timeout: float = 10.0) -> None:
        wait_until(lambda: text in self.stderr or self.process.poll() is not None, timeout, f"{text!r} in the log")
        exited = f"tailhook exited ({self.process.returncode}) before logging {text!r}"
        assert text in self.stderr, f"{exited}:\n{self.stderr}"

    def started(self) -> Daemon:
        # logged once every source has opened its files; generous: other tests may load the machine
        self.wait_for_log("started on", timeout=30)
        return self

    def append(self, *lines: str) -> None:
        with self.log.open("a", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in lines)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.stopped(timeout)

    def stopped(self, timeout: float = 20.0) -> int:
        """Wait for the exit that a SIGTERM sent already asked for; the exit code."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
            self.process.wait(5)
            raise AssertionError(f"tailhook did not stop within {timeout}s:\n{self.stderr[-6000:]}") from None
        finally:
            self._stdout.close()
            self._stderr.close()

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as after a power cut or the OOM killer."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._stdout.close()
        self._stderr.close()

    def close(self) -> None:
        """After a test: kill the daemon if it still runs, and close its output files."""
        if self.process.poll() is None or not self._stdout.closed:
            self.kill()


def stop_all(daemons: list[Daemon], timeout: float = 30.0) -> list[int]:
    """SIGTERM to every daemon at once, then wait for each; their exit codes."""
    for daemon in daemons:
        if daemon.process.poll() is None:
            daemon.process.send_signal(signal.SIGTERM)
    return [daemon.stopped(timeout) for daemon in daemons]


def metrics(daemon: Daemon) -> dict[str, float]:
    """/metrics as ``{'name{labels}': value}``."""
    port = re.search(r"/metrics on \S+ \(port (\d+)\)", daemon.stderr)
    assert port, daemon.stderr
    with urllib.request.urlopen(f"http://127.0.0.1:{port[1]}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    samples = (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {name: float(value) for name, value in samples}

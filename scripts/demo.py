"""The demo: tailhook on config.example.yaml, fed with sample lines, alerts on stdout.

Starts ``tailhook run`` with its log folder pointed at ``demo/log`` (an empty
folder, so every file the demo then creates is read from its first line), then
appends the lines of ``examples/sample-logs/`` a few per second with today's
timestamps. No Discord account is needed: with no destination configured,
tailhook prints each alert as it would be sent.

    python scripts/demo.py [--seconds N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "examples" / "sample-logs"

# sample file → where the example config looks for it, and how its lines are stamped
FEEDS = {
    "auth.log": ("auth.log", re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d"), "%b %d %H:%M:%S"),
    "syslog": ("syslog", re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d"), "%b %d %H:%M:%S"),
    "nginx/error.log": ("nginx/error.log", re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d"), "%Y/%m/%d %H:%M:%S"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (default: at Ctrl-C)")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between sample lines")
    parser.add_argument("--dir", type=Path, default=ROOT / "demo", help="the demo's folder (default: ./demo)")
    args = parser.parse_args()
    demo = args.dir.resolve()

    shutil.rmtree(demo, ignore_errors=True)
    (demo / "log").mkdir(parents=True)
    env = os.environ | {"TAILHOOK_LOG_DIR": str(demo / "log"), "TAILHOOK_STATE_DIR": str(demo / "state")}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "tailhook", "run", "-c", str(ROOT / "config.example.yaml")],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + args.seconds if args.seconds else None
    try:
        ready = threading.Event()
        threading.Thread(target=relay_log, args=(daemon, ready), daemon=True).start()
        ready.wait(30)
        print(f"demo: tailhook is running (pid {daemon.pid}); writing sample lines to {demo / 'log'}", file=sys.stderr)
        feed(demo / "log", args.interval, daemon)
        print(
            f"demo: all sample lines written. Append your own to {demo / 'log' / 'auth.log'}; Ctrl-C stops.",
            file=sys.stderr,
        )
        while daemon.poll() is None and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)  # waiting for Ctrl-C or the deadline
    except KeyboardInterrupt:
        pass
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
        code = daemon.wait()
    return code


def relay_log(daemon: subprocess.Popen[str], ready: threading.Event) -> None:
    """Copy tailhook's log to ours, and say when it is ready (every source has opened its files)."""
    assert daemon.stderr is not None
    for line in daemon.stderr:
        sys.stderr.write(line)
        if "started on" in line:
            ready.set()
    ready.set()  # it exited: do not wait any longer


def feed(log_dir: Path, interval: float, daemon: subprocess.Popen[str]) -> None:
    """Append every sample line, round-robin across the files, stamped with the time now."""
    queues = []
    for name, (target, stamp, fmt) in FEEDS.items():
        lines = (SAMPLES / name).read_text(encoding="utf-8").splitlines()
        path = log_dir / target
        path.parent.mkdir(parents=True, exist_ok=True)
        queues.append((path, stamp, fmt, lines))
    while any(lines for _, _, _, lines in queues) and daemon.poll() is None:
        for path, stamp, fmt, lines in queues:
            if lines:
                line = stamp.sub(time.strftime(fmt), lines.pop(0), count=1)
                with path.open("a", encoding="utf-8") as out:
                    out.write(line + "\n")
                time.sleep(interval)  # the pace a person can read at, not a wait for anything


if __name__ == "__main__":
    sys.exit(main())

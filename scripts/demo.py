"""The demo: tailhook on config.example.yaml, fed with sample lines, alerts on stdout.

Starts ``tailhook run`` with its log folder pointed at ``demo/log`` (an empty
folder, so every file the demo then creates is read from its first line), then
appends the lines of ``examples/sample-logs/`` a few per second with today's
timestamps. No Discord account is needed: with no destination configured,
tailhook prints each alert as it would be sent.

    python scripts/demo.py [--seconds N]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "examples" / "sample-logs"
DEMO = ROOT / "demo"

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
    args = parser.parse_args()

    shutil.rmtree(DEMO, ignore_errors=True)
    (DEMO / "log").mkdir(parents=True)
    env = os.environ | {"TAILHOOK_LOG_DIR": str(DEMO / "log"), "TAILHOOK_STATE_DIR": str(DEMO / "state")}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "tailhook", "run", "-c", str(ROOT / "config.example.yaml")],
        env=env,
    )
    print(f"demo: tailhook is running (pid {daemon.pid}); writing sample lines to {DEMO / 'log'}", file=sys.stderr)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    try:
        feed(args.interval, daemon)
        print(
            f"demo: all sample lines written. Append your own to {DEMO / 'log' / 'auth.log'}; Ctrl-C stops.",
            file=sys.stderr,
        )
        while daemon.poll() is None and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
        code = daemon.wait()
    return code


def feed(interval: float, daemon: subprocess.Popen[bytes]) -> None:
    """Append every sample line, round-robin across the files, stamped with the time now."""
    queues = []
    for name, (target, stamp, fmt) in FEEDS.items():
        lines = (SAMPLES / name).read_text(encoding="utf-8").splitlines()
        path = DEMO / "log" / target
        path.parent.mkdir(parents=True, exist_ok=True)
        queues.append((path, stamp, fmt, lines))
    while any(lines for _, _, _, lines in queues) and daemon.poll() is None:
        for path, stamp, fmt, lines in queues:
            if lines:
                line = stamp.sub(time.strftime(fmt), lines.pop(0), count=1)
                with path.open("a", encoding="utf-8") as out:
                    out.write(line + "\n")
                time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main())

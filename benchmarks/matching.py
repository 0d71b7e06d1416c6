"""Rule matching throughput: tailhook's rules vs ``grep -P`` over the same lines.

The lines are tailhook's own sample logs plus, when ``../shared/corpus/loghub``
is there, the loghub OpenSSH and Linux samples (read in place, never copied),
repeated to about 50 MB. The rules are the example rules of ``rules.d/``.

- tailhook: ``RuleSet.match`` on every line: every rule is tried, and each
  match renders its title, key and description.
- grep: ``grep -P -c`` with all the rules joined into one alternation, which
  only counts the lines that match any rule: a lower bound for any matcher.

Both run in the same process run, on the same machine, one after the other;
the figure that matters is the ratio.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tailhook.config import load_config
from tailhook.events import Line
from tailhook.rules import RuleSet

ROOT = Path(__file__).resolve().parent.parent
LOGHUB = ROOT.parent / "shared" / "corpus" / "loghub"
TARGET_BYTES = 50 * 1024 * 1024
NAMED_GROUP = re.compile(r"\(\?P<\w+>")


def corpus() -> list[str]:
    files = [*sorted((ROOT / "examples" / "sample-logs").rglob("*.log")), ROOT / "examples/sample-logs/syslog"]
    files += [LOGHUB / name for name in ("OpenSSH_2k.log", "Linux_2k.log") if (LOGHUB / name).exists()]
    lines = [line for f in files for line in f.read_text(encoding="utf-8", errors="replace").splitlines()]
    size = sum(len(line) + 1 for line in lines)
    return lines * max(1, TARGET_BYTES // size)


def main() -> None:
    os.environ.setdefault("TAILHOOK_LOG_DIR", "/var/log")
    rules = RuleSet(load_config(ROOT / "config.example.yaml").rules, host="bench")
    lines = corpus()
    megabytes = sum(len(line) + 1 for line in lines) / 1e6

    started = time.perf_counter()
    events = sum(len(rules.match(Line(text=line, source="auth", time=0.0))) for line in lines)
    ours = time.perf_counter() - started

    grep = shutil.which("grep")
    with tempfile.NamedTemporaryFile("w", suffix=".log", encoding="utf-8") as data:
        data.write("\n".join(lines) + "\n")
        data.flush()
        # PCRE refuses one capture name twice in a pattern: plain groups do the same matching.
        plain = [NAMED_GROUP.sub("(", rule.pattern.pattern) for rule in rules.rules]
        pattern = "|".join(f"(?:{p})" for p in plain)
        started = time.perf_counter()
        counted = subprocess.run(
            [grep or "grep", "-P", "-c", pattern, data.name], capture_output=True, text=True, check=True
        )
        theirs = time.perf_counter() - started

    print(f"rule matching: {len(lines):,} lines, {megabytes:.1f} MB, {len(rules)} rules")
    print(f"  tailhook  {len(lines) / ours:>12,.0f} lines/s  {megabytes / ours:7.1f} MB/s  ({events:,} events)")
    matched = counted.stdout.strip()
    print(f"  grep -P   {len(lines) / theirs:>12,.0f} lines/s  {megabytes / theirs:7.1f} MB/s  ({matched} lines)")
    print(f"  ratio     tailhook takes {ours / theirs:.1f}x grep's time")

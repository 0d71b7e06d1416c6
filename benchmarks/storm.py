"""Storm control under floods of distinct keys: ``StormControl.admit`` beside the list scan, and the daemon path.

1. In this process, ``StormControl`` with the daemon's settings (window 60 s,
   3 alerts per window, digests on, the default cap of 100,000 keys; the cap
   per rule, ``max_keys_per_window``, raised to 100,000 so that every key of the
   one rule has a window of its own: the cost per event at that many open
   windows is what is measured), on a fake
   clock, with 10, 1,000, 10,000 and 100,000 keys. The keys are addresses in
   198.18.0.0/15 (the range set aside for benchmarks), each with one ``Event``
   of the shipped ``ssh-password-failure`` rule, built before anything is timed.
   First, untimed, every key opens its window and sends its 3 alerts (3 events
   each, their opening times spread evenly over one window and the 2 s a key
   waits for its next event, so the first to open have closed by the time the
   stream starts and the first ``admit`` closes them): the state a steady
   flood leaves, so that alerts, held events and closing windows are the
   same share of the stream at every key count. Then a stream of ``EVENTS``
   events is timed (events/s): each goes to one of those keys, drawn at
   random, or, with a share of ``NEW_KEY_SHARE``, to a key never seen before
   (a scanner's next address), and the fake clock moves on by ``60 s / (30 x
   keys)`` per event: about 30 events per key per window at every key count
   (an address trying a password every 2 s). About 1 event in 10 is an alert,
   9 are held; windows close all the way through, and ``due()``, called by
   every ``admit``, sends their digests (about 1 per 30 events). With 100,000
   keys the open windows reach the cap, and new keys share their rule's
   overflow key. The clock is a
   list iterator's ``__next__`` over the events' times, read once per ``admit``:
   moving it costs the loop nothing. The notifications are let go at once.
   The table shows the open windows, averaged over ten points of the stream.

   The peer, the list scan: storm control as tailhook did it before the heap
   of close times (``ListScan`` below, the pre-heap code less its persistence):
   open windows in a dict, and every ``admit`` first scans all of them for
   those that have closed. Its windows are put in place directly (the state
   the same untimed first events leave: no window closes among them); its
   time grows with the keys, so it is timed on the first ``PEER_VISITS / keys``
   events of the same stream (at least ``PEER_MIN_EVENTS``, at most all of
   them: 500,000, 20,000, 2,000 and 200), and the table says how many. Each is timed ``ROUNDS`` times, on a
   fresh object each time; the faster run counts.

   "Flat" is measured against a floor: the same stream through a loop that
   only looks each event's key up in a dict of one small object per key and
   writes one attribute (``floor`` below), what keeping state per key costs in
   Python once the keys outgrow the CPU's caches. Storm control is flat when,
   from 10 keys to 100,000, its rate falls no more than 1.25x as much as the
   floor's (``TARGET_FLAT``); a scan of the open windows falls with the keys
   themselves.

   Check, printed with the figures: on the events the peer was timed on,
   tailhook (a fresh object, the same first events) gives the same
   notifications, compared as a multiset of (kind, key, count, title): the
   same alerts, and the same digests with the same held counts. With many keys
   the peer's few events make a weak check; with 10 keys it is all 500,000.

2. The daemon path: ``tailhook run`` with one file source that reads, from its
   beginning, a file of 60,000 ``sshd[…]: Failed password for root from A.B.C.D
   port N ssh2`` lines, each from a different address, into the shipped
   ``rules.d/ssh.yaml`` (its ``sources:`` lifted; ``ssh-password-failure`` keys
   its windows by ``{ip}``), storm ``{window: 60s, max_per_window: 3}``, and one
   destination that is down (a closed port on loopback, no start-up probe), so
   what storm control lets through stays in the spool, with the storm windows
   in the same commits. Twice: with the default settings, where the rule's
   first 1,000 keys alert on their own and the other 59,000 lines count under
   its overflow key (``max_keys_per_window``: the target is for this run); and
   with ``max_keys_per_window: 100000``, where every line is an alert of its
   own, stored, and summed up in the spool as the flood it is (no target: the
   cost of an alert made and stored). Timed from its launch until
   ``/metrics`` counts every line in ``tailhook_lines_total`` (polled every
   0.1 s); its note gives the start-up (launch to ``serving /healthz``) and
   when every line was accounted for in the spool (``tailhook_spool_pending``
   and ``tailhook_summarised_total``, alerts stored, plus
   ``tailhook_storm_held_total``, lines held in a stored window). ``ROUNDS``
   runs of each, each with its own state folder; the faster counts. The peer:
   ``tail -c +1 FILE | LC_ALL=C grep -c -P PATTERN`` with the rule's pattern,
   the faster of ``ROUNDS`` runs; it only counts the lines, and stores
   nothing.
"""

from __future__ import annotations

import random
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from benchmarks.rules import METRICS_POLL_S, daemon_config, metrics_text, pipeline_seconds, report_targets, times
from benchmarks.tailing import ROOT, ROUNDS, running, shipped_rules
from tailhook.config import StormConfig
from tailhook.events import Event, Kind, Line, Notification, Severity
from tailhook.storm import StormControl

KEY_COUNTS = (10, 1_000, 10_000, 100_000)
EVENTS = 500_000
EVENTS_PER_KEY_PER_WINDOW = 30
NEW_KEY_SHARE = 0.002
PEER_VISITS = 20_000_000
"""The list scan is timed on this many window visits' worth of events (events x keys)."""
PEER_MIN_EVENTS = 200
POINTS = 10
"""The timed stream is run in this many stretches, the open windows counted between them."""
STORM = StormConfig(window=60.0, max_per_window=3, digest=True, max_keys_per_window=100_000)
HOST = "bench"
RULE = "ssh-password-failure"
START = 1_700_000_000.0

DAEMON_LINES = 60_000
DAEMON_TIMEOUT_S = 300.0

TARGET_EVENTS_PER_S = 200_000
TARGET_FLAT = 0.8
"""Flat: from 10 keys to 100,000, storm control's rate falls at most this much more than the
floor's (one dict lookup and one attribute write per event: what memory alone costs), i.e. its
100,000-key share of its 10-key rate is at least this times the floor's."""
TARGET_LINES_PER_S = 20_000


# ── the peer: storm control that scans every open window ────────────────────


@dataclass(slots=True)
class ScannedWindow:
    config: StormConfig
    opened: float
    sent: int = 0
    held: int = 0
    last_held: Event | None = None

    def closes(self) -> float:
        return self.opened + self.config.window


class ListScan:
    """Storm control as tailhook had it before the heap (less its persistence): ``due`` scans every open window."""

    def __init__(self, default: StormConfig, *, host: str, clock: Callable[[], float], max_keys: int = 100_000) -> None:
        self.default = default
        self.host = host
        self.clock = clock
        self.max_keys = max_keys
        self._windows: dict[tuple[str, str], ScannedWindow] = {}
        self._changed: set[tuple[str, str]] = set()
        self.held_total = 0

    def open(self, event: Event, opened: float, sent: int) -> None:
        """The window *event* opened at *opened*, as *sent* admits leave it when nothing closes first."""
        self._windows[(event.rule, event.key)] = ScannedWindow(self.default, opened, sent=sent)

    def admit(self, event: Event, storm: StormConfig | None = None) -> list[Notification]:
        now = self.clock()
        out = self.due(now)
        key = (event.rule, event.key)
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= self.max_keys:
                out.extend(self._close(next(iter(self._windows))))
            window = self._windows[key] = ScannedWindow(storm or self.default, opened=now)
        if window.sent < window.config.max_per_window:
            window.sent += 1
            out.append(Notification.alert(event, host=self.host))
        else:
            window.held += 1
            window.last_held = event
            self.held_total += 1
        self._changed.add(key)
        return out

    def due(self, now: float) -> list[Notification]:
        closed = [key for key, window in self._windows.items() if window.closes() <= now]
        return [n for key in closed for n in self._close(key)]

    def __len__(self) -> int:
        return len(self._windows)

    def _close(self, key: tuple[str, str]) -> list[Notification]:
        window = self._windows.pop(key)
        self._changed.add(key)
        if not window.held or not window.config.digest or window.last_held is None:
            return []
        last = Notification.alert(window.last_held, host=self.host)
        held = window.held
        events = "event was" if held == 1 else "events were"
        seconds = window.config.window
        span = f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"
        description = f"{held} more {events} held back in this {span} window; the last one is below."
        return [
            replace(last, kind=Kind.DIGEST, count=held, title=f"{last.title} (+{held} more)", description=description)
        ]


# ── 1. in process ───────────────────────────────────────────────────────────


def address(n: int) -> str:
    """The *n*-th address of 198.18.0.0/15 (131,072 of them)."""
    return f"198.{18 + n // 65536}.{n // 256 % 256}.{n % 256}"


def ssh_line(n: int) -> str:
    return f"Nov 23 06:40:51 web-1 sshd[{1000 + n % 60000}]: Failed password for root from {address(n)} port 22 ssh2"


def ssh_event(n: int) -> Event:
    ip = address(n)
    return Event(
        rule=RULE, severity=Severity.WARNING, key=ip, captures={"user": "root", "ip": ip},
        line=Line(text=ssh_line(n), source="auth", time=START), title=f"SSH password failure for root from {ip}",
    )  # fmt: skip


@dataclass(frozen=True)
class Stream:
    """The events for one key count, built before anything is timed, and when each happens."""

    keys: int
    first: list[Event]
    """One event per regular key: they open the windows."""
    first_times: list[float]
    """When each opens; each is admitted ``max_per_window`` times then."""
    events: list[Event]
    times: list[float]
    new_keys: int


def stream(keys: int) -> Stream:
    rng = random.Random(keys)
    regular = [ssh_event(n) for n in range(keys)]
    step = STORM.window / (EVENTS_PER_KEY_PER_WINDOW * keys)
    # a window and the gap before a key's next event: the first windows to open have closed by the stream
    span = STORM.window * (1 + 1 / EVENTS_PER_KEY_PER_WINDOW)
    events: list[Event] = []
    fresh = keys
    for _ in range(EVENTS):
        if rng.random() < NEW_KEY_SHARE:
            events.append(ssh_event(fresh))
            fresh += 1
        else:
            events.append(regular[rng.randrange(keys)])
    return Stream(
        keys=keys,
        first=regular,
        first_times=[START + n * span / keys for n in range(keys)],
        events=events,
        times=[START + span + n * step for n in range(EVENTS)],
        new_keys=fresh - keys,
    )


Admit = Callable[[Event], list[Notification]]


def timed(admit: Admit, events: Sequence[Event], size: Callable[[], int]) -> tuple[float, float]:
    """Seconds for *admit* over *events*; the mean of the open windows between stretches.

    The notifications are let go at once, as the daemon lets them go once they are stored.
    """
    seconds = 0.0
    sizes = []
    stretch = -(-len(events) // POINTS)
    for start in range(0, len(events), stretch):
        part = events[start : start + stretch]
        started = time.perf_counter()
        for event in part:
            admit(event)
        seconds += time.perf_counter() - started
        sizes.append(size())
    return seconds, sum(sizes) / len(sizes)


def notifications(admit: Admit, events: Sequence[Event]) -> list[Notification]:
    return [notification for event in events for notification in admit(event)]


def tailhook_storm(s: Stream, count: int) -> StormControl:
    """A ``StormControl`` whose windows the first events opened, its clock on the first *count* events' times."""
    opening = [at for at in s.first_times for _ in range(STORM.max_per_window)]
    # one more reading of the clock between the two: changes() below reads it once
    storm = StormControl(STORM, host=HOST, clock=iter([*opening, opening[-1], *s.times[:count]]).__next__)
    for event in s.first:
        for _ in range(STORM.max_per_window):
            storm.admit(event)
    storm.changes()  # the daemon stores them with the commit of those events
    return storm


def list_scan(s: Stream, count: int) -> ListScan:
    peer = ListScan(STORM, host=HOST, clock=iter(s.times[:count]).__next__)
    for event, at in zip(s.first, s.first_times, strict=True):
        peer.open(event, at, STORM.max_per_window)
    return peer


@dataclass(frozen=True)
class AdmitRun:
    keys: int
    new_keys: int
    tailhook_s: float
    tailhook_open: float
    peer_s: float
    peer_events: int
    peer_open: float
    differences: list[str]
    alerts: int
    digests: int
    held: int
    floor_s: float

    @property
    def floor_rate(self) -> float:
        return EVENTS / self.floor_s

    @property
    def tailhook_rate(self) -> float:
        return EVENTS / self.tailhook_s

    @property
    def peer_rate(self) -> float:
        return self.peer_events / self.peer_s


def admit_run(keys: int) -> AdmitRun:
    s = stream(keys)
    count = min(EVENTS, max(PEER_MIN_EVENTS, PEER_VISITS // keys))
    ours, peer_runs = [], []
    for _ in range(ROUNDS):
        storm = tailhook_storm(s, EVENTS)
        ours.append(timed(storm.admit, s.events, storm.__len__))
        del storm  # its windows, before the next run builds its own
        peer = list_scan(s, count)
        peer_runs.append(timed(peer.admit, s.events[:count], peer.__len__))
    tailhook_s, tailhook_open = min(ours)
    peer_s, peer_open = min(peer_runs)
    floor_s = min(floor(s) for _ in range(ROUNDS))
    mine = notifications(tailhook_storm(s, count).admit, s.events[:count])
    theirs = notifications(list_scan(s, count).admit, s.events[:count])
    return AdmitRun(
        keys=keys, new_keys=s.new_keys, tailhook_s=tailhook_s, tailhook_open=tailhook_open,
        peer_s=peer_s, peer_events=count, peer_open=peer_open,
        differences=notification_differences(mine, theirs),
        alerts=sum(n.kind is Kind.ALERT for n in mine), digests=sum(n.kind is Kind.DIGEST for n in mine),
        held=sum(n.count for n in mine if n.kind is Kind.DIGEST), floor_s=floor_s,
    )  # fmt: skip


@dataclass(slots=True)
class Touched:
    count: int = 0


def floor(s: Stream) -> float:
    """The memory floor: per event of the stream, its key looked up in a dict of one small object
    per key and one attribute written, nothing else. What more keys cost anything that keeps state
    per key in Python (the dict and the objects leave the CPU's caches), to measure 'flat' against."""
    seen = {(event.rule, event.key): Touched() for event in s.first}
    started = time.perf_counter()
    for event in s.events:
        state = seen.get((event.rule, event.key))
        if state is None:
            state = seen[(event.rule, event.key)] = Touched()
        state.count += 1
    return time.perf_counter() - started


def notification_differences(ours: Sequence[Notification], theirs: Sequence[Notification]) -> list[str]:
    """How tailhook's notifications differ from the list scan's: nothing when they are the same."""
    mine, peer = (Counter((n.kind, n.key, n.count, n.title) for n in sent) for sent in (ours, theirs))
    problems = []
    for kind in Kind:
        a, b = (sum(n for (k, *_), n in c.items() if k is kind) for c in (mine, peer))
        if a != b:
            problems.append(f"{kind}s: tailhook {a:,}, list scan {b:,}")
    if not problems and mine != peer:
        problems.append(f"the same counts, but {len(mine - peer):,} notifications differ")
    return problems


def report_admit(runs: Sequence[AdmitRun]) -> None:
    print(
        f"storm control in process: {EVENTS:,} events through admit, window {STORM.window:g} s, "
        f"{STORM.max_per_window} per window, about {EVENTS_PER_KEY_PER_WINDOW} events per key per window, "
        f"{NEW_KEY_SHARE:.1%} to new keys; fake clock"
    )
    print(
        f"  {'keys':>8} {'open (mean)':>12} {'tailhook/s':>12} {'list scan/s':>12} {'on events':>10} "
        f"{'floor/s':>12}   tailhook ="
    )
    for run in runs:
        print(
            f"  {run.keys:>8,} {run.tailhook_open:>12,.0f} {run.tailhook_rate:>12,.0f} {run.peer_rate:>12,.0f} "
            f"{run.peer_events:>10,} {run.floor_rate:>12,.0f}   {times(run.tailhook_rate, run.peer_rate)} the "
            "list scan's"
        )
    print(
        f"  new keys in the stream: {', '.join(f'{run.new_keys:,}' for run in runs)}; the list scan is timed on "
        f"the first {PEER_VISITS:,} / keys events (at least {PEER_MIN_EVENTS}), open windows as it ran: "
        f"{', '.join(f'{run.peer_open:,.0f}' for run in runs)}"
    )
    for run in runs:
        same = (
            f"MATCH: {run.alerts:,} alerts, {run.digests:,} digests of {run.held:,} held events"
            if not run.differences
            else "DIFFERENT: " + "; ".join(run.differences)
        )
        print(
            f"  notifications, {run.keys:,} keys, its {run.peer_events:,} events: tailhook beside the list scan: {same}"
        )
    smallest, largest = runs[0], runs[-1]
    ours, floors = (largest.tailhook_rate / smallest.tailhook_rate, largest.floor_rate / smallest.floor_rate)
    flat = ours / floors
    print(
        f"  from {smallest.keys:,} keys to {largest.keys:,}: tailhook's rate x{ours:.2f}, the floor's x{floors:.2f} "
        "(floor: one dict lookup and one attribute write per event, the cost of memory alone)"
    )
    report_targets(
        (
            f"at least {TARGET_EVENTS_PER_S:,} events/s at {largest.keys:,} keys",
            largest.tailhook_rate >= TARGET_EVENTS_PER_S,
            f"{largest.tailhook_rate:,.0f}",
        ),
        (
            f"flat from {smallest.keys:,} keys (its rate falls no more than {1 / TARGET_FLAT:g}x the floor's)",
            flat >= TARGET_FLAT,
            f"x{ours:.2f} against the floor's x{floors:.2f}",
        ),
        ("the list scan's notifications", all(not run.differences for run in runs), "see above"),
    )


# ── 2. the daemon path ──────────────────────────────────────────────────────


@dataclass(frozen=True)
class DaemonRun:
    seconds: float
    startup_s: float
    stored_s: float | None
    """From the launch until the spool accounted for every line, if it did within the timeout."""
    matches: int
    held: int
    """Lines storm control held (counted in a stored window), not stored as alerts of their own."""


KEY_CAPS = {"default settings": None, "max_keys_per_window: 100000": 100_000}
"""The daemon's two runs: the rule's cap of keys with a window open as shipped, and high enough for every key."""


def ssh_pattern() -> str:
    rules = yaml.safe_load((ROOT / "rules.d" / "ssh.yaml").read_text(encoding="utf-8"))["rules"]
    pattern: str = next(rule["match"] for rule in rules if rule["name"] == RULE)
    return pattern


def write_log(path: Path) -> None:
    path.write_text("".join(f"{ssh_line(n)}\n" for n in range(DAEMON_LINES)), encoding="utf-8")


def gauges(port: int) -> dict[str, int]:
    """Lines read, matches, lines held by storm control, and lines accounted for in the spool, from /metrics."""
    text = metrics_text(port)

    def total(name: str) -> int:
        return sum(int(float(n)) for n in re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", text, re.M))

    found = {name: total(f"tailhook_{name}") for name in ("lines_total", "matches_total", "storm_held_total")}
    # An alert waits in the spool or, summed up in a flood (the destination is down: far more wait
    # than it takes in 30 s), was kept aside for its summary; a held line counts in its stored window.
    stored = ("spool_pending", "summarised_total", "storm_held_total")
    found["accounted"] = sum(total(f"tailhook_{name}") for name in stored)
    return found


def daemon_path(folder: Path, log: Path, rule_file: Path, cap: int | None) -> DaemonRun:
    """``tailhook run`` from its launch until /metrics counts every line of *log*; *cap*: the rule's
    ``max_keys_per_window`` (``None``: as shipped)."""
    folder.mkdir()
    settings = f"window: {STORM.window:g}s, max_per_window: {STORM.max_per_window}"
    if cap is not None:
        settings += f", max_keys_per_window: {cap}"
    config = daemon_config(folder, rule_file, log, source="auth", more=f"storm: {{{settings}}}\n")
    started = time.perf_counter()
    stored_s = None
    with running(config) as daemon:
        daemon.wait_for_log("serving /healthz", timeout=60)
        startup_s = time.perf_counter() - started
        port = int(re.findall(r"\(port (\d+)\)", daemon.stderr)[-1])
        while (read := gauges(port))["lines_total"] < DAEMON_LINES:
            if stored_s is None and read["accounted"] >= DAEMON_LINES:
                stored_s = time.perf_counter() - started
            if time.perf_counter() - started > DAEMON_TIMEOUT_S or daemon.process.poll() is not None:
                lines = read["lines_total"]
                raise RuntimeError(f"tailhook read {lines:,} of {DAEMON_LINES:,} lines:\n{daemon.stderr[-3000:]}")
            time.sleep(METRICS_POLL_S)
        seconds = time.perf_counter() - started
        while stored_s is None and time.perf_counter() - started < DAEMON_TIMEOUT_S:
            if (read := gauges(port))["accounted"] >= DAEMON_LINES:
                stored_s = time.perf_counter() - started
            else:
                time.sleep(METRICS_POLL_S)
    return DaemonRun(seconds, startup_s, stored_s, read["matches_total"], read["storm_held_total"])


def report_daemon(runs: dict[str, DaemonRun], grep_s: float, grep_count: int) -> None:
    print(
        f"daemon path: {DAEMON_LINES:,} sshd password failures, each from a different address, from a file → "
        f"rules.d/ssh.yaml (key {{ip}}) → storm control ({STORM.window:g} s, {STORM.max_per_window} per window) → "
        "spool, its destination down"
    )
    theirs = DAEMON_LINES / grep_s
    print(f"  {'':40} {'lines/s':>10}")
    for label, run in runs.items():
        ours = DAEMON_LINES / run.seconds
        stored = f"{run.stored_s:.1f} s" if run.stored_s is not None else "not within the timeout"
        alerts = DAEMON_LINES - run.held
        print(
            f"  {'tailhook run, ' + label:40} {ours:>10,.0f}   {run.seconds:.1f} s from its launch "
            f"({run.startup_s:.1f} s of start-up); {alerts:,} alerts and {run.held:,} held lines in the spool: {stored}"
        )
    print(f"  {'tail -c +1 | grep -c -P':40} {theirs:>10,.0f}   {grep_s:.2f} s, counted {grep_count:,} lines")
    matches = {run.matches for run in runs.values()}
    same = matches == {grep_count} and grep_count == DAEMON_LINES
    counted = ", ".join(f"{m:,}" for m in matches)
    print(f"  matches in /metrics: {counted} ({'MATCH' if same else 'DIFFERENT'}: every line)")
    ours = DAEMON_LINES / runs["default settings"].seconds
    report_targets((f"at least {TARGET_LINES_PER_S:,} lines/s (default settings)", ours >= TARGET_LINES_PER_S,
                    f"{ours:,.0f}"))  # fmt: skip


def daemon_figures(folder: Path) -> tuple[dict[str, DaemonRun], float, int]:
    log = folder / "auth.log"
    write_log(log)
    rule_file = shipped_rules(folder, "ssh.yaml")
    grep = ["grep", "-c", "-P", ssh_pattern()]
    seconds, output = min(pipeline_seconds(["tail", "-c", "+1", str(log)], grep) for _ in range(ROUNDS))
    runs = {
        label: min(
            (daemon_path(folder / f"daemon-{n}-{i}", log, rule_file, cap) for i in range(ROUNDS)),
            key=lambda r: r.seconds,
        )
        for n, (label, cap) in enumerate(KEY_CAPS.items())
    }
    return runs, seconds, int(output)


def main() -> None:
    report_admit([admit_run(keys) for keys in KEY_COUNTS])
    with tempfile.TemporaryDirectory(prefix="tailhook-bench-storm-") as name:
        report_daemon(*daemon_figures(Path(name)))


if __name__ == "__main__":
    main()

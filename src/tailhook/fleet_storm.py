"""Fleet-wide storm keys: one failure seen by every host of a fleet is one storm.

With ``fleet:``, a rule's storm key is the fleet's (a rule's ``storm: {fleet:
false}`` keeps it each host's). Each host's storm control still decides alone
what its own events make (``tailhook.storm``), and this stage, between the
pipeline and the spool, makes those decisions the fleet's through Redis, in
one round trip per commit:

- **First alerts are claimed.** A key's alert goes out only if the fleet's
  window of that key has sent fewer than ``max_per_window`` alerts, or if it
  is more severe than any it sent (an atomic script; the first claim opens the
  fleet's window, as long as the claiming host's window of the key: the
  rule's ``window``, or longer once escalated). A refused alert is not
  stored: Redis counts it as held on this host. The host's own window of the
  key is moved onto the fleet's (``StormControl.align``), so both close
  together.
- **Held events are counted per host** in the fleet's window: what the local
  window held since the last commit, added to this host's count (in the claim
  itself when the commit claims one of the key's alerts).
- **One digest.** When the window closes, the local digest of a fleet key is
  not sent: its held line stands ready, and after ``GRACE_S`` (the other
  hosts' last counts arrive) the hosts that took part claim the fleet's digest
  atomically. The host that sent the window's first alert has the first go
  (its digest edits that alert's message), any other after a second
  ``GRACE_S``. The one that wins reads every host's count and sends "197 more
  events were held back on 20 hosts (pod-0, pod-1 … pod-19)" with its latest
  line; the others send nothing. A claim is idempotent (the winner asking
  again gets the counts again), so a reply lost on the way is asked again. A
  storm's updates (``storm_updates: edit``) are not sent for fleet keys (no
  host knows the fleet's count until the digest), and its resolved note only
  by a host that sent one of its alerts.

This host's part in each window (a ``ShareState``: the counts, the line its
digest would show, when to claim) is stored in the spool with the commit that
changed it (``changes()``), and taken back at the next start (``restore()``),
so a restart, before or after a window closed, neither loses the host's count
nor counts it twice.

Redis is never in the path of durability. When a call fails or Redis does not
answer (``Fleet.call``), what the host decided alone goes out: its alerts, its
updates, and a digest of what it held that Redis did not count. A digest that
cannot be claimed within ``PATIENCE_S`` of its window's close (Redis went
away, or came back without the window) is summed up by each host for itself,
with everything it held: a digest may then count a line twice (once in the
fleet's, if another host claimed it), it never loses one. Windows are timed by
each host's clock: the hosts' clocks must agree to well within ``GRACE_S``
(NTP).

Cost per event is constant: the stage sees the notifications a commit makes
and the storm keys it changed, never the events held in between; each share
has one deadline in a heap. The stage's work on a commit must happen under
``lock`` together with taking the pipeline's changes (the app does both), so
that each commit sees the storm's windows as the one before left them.

What Redis holds per key (``tailhook:<name>:storm:{<hash>}``, the hash of the
fleet's name, the rule and the key, never their text): a pointer to the open
window and, per window, its close, its alerts sent, the most severe of them,
the host that sent the first, every host's count of events held and who took
the digest, for the window plus ``KEEP_S``.

It reports its own metrics (``collect``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import math
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tailhook._files import private_file
from tailhook._records import record
from tailhook._units import seconds_in_words
from tailhook.config import StormConfig
from tailhook.events import Delivery, Kind, Notification
from tailhook.fleet import Fleet
from tailhook.metrics import Metric, counter, gauge
from tailhook.storm import OVERFLOW_KEY, Closure, KeyChange, KeyState, StormControl, StormKey

__all__ = [
    "GRACE_S", "KEEP_S", "PATIENCE_S", "FleetStorm", "ShareChange", "ShareState", "hosts_in_words", "instance_id",
]  # fmt: skip

GRACE_S = 1.0
"""After a fleet window closes, the hosts' last counts have this long to arrive before its digest is
claimed; the host that sent the first alert claims first, any other after twice as long."""
PATIENCE_S = 10.0
"""A digest that Redis cannot be asked for this long past its window's close is summed up alone."""
KEEP_S = 300.0
"""Redis keeps a window this long past its close (its digest is claimed within seconds)."""
RETRY_S = 1.0
"""A digest claim that Redis did not answer is asked again this much later."""
DROPS_KEPT = 10_000
"""The most local digests remembered to leave out of a commit still to come."""
COORDINATED_KEYS = 100_000
"""The most keys remembered for their resolved note (whether this host sent one of their alerts)."""

# KEYS[1]: the key's pointer to its open window (the window's hash is KEYS[1]..':'..opened).
# ARGV: now (ms), window (ms), keep (ms), max_per_window, severity, host, events held here to count,
# this daemon's instance (``FleetStorm.instance``).
# Answers {1 sent / 0 held, opened, closes}.
_CLAIM = """
local now, window, keep = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local severity, host, held = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local opened = redis.call('GET', KEYS[1])
local win = KEYS[1] .. ':' .. (opened or '')
local closes = opened and tonumber(redis.call('HGET', win, 'closes') or '0') or 0
local sent = 1
if now >= closes then
  opened, closes = now, now + window
  win = KEYS[1] .. ':' .. opened
  redis.call('SET', KEYS[1], opened, 'PX', window + keep)
  redis.call('HSET', win, 'closes', closes, 'sent', 1, 'top', severity, 'first', ARGV[8])
  redis.call('PEXPIRE', win, window + keep)
else
  opened = tonumber(opened)
  local top = tonumber(redis.call('HGET', win, 'top'))
  if tonumber(redis.call('HGET', win, 'sent')) < tonumber(ARGV[4]) or severity > top then
    redis.call('HINCRBY', win, 'sent', 1)
    if severity > top then redis.call('HSET', win, 'top', severity) end
  else
    sent, held = 0, held + 1
  end
end
if held > 0 then redis.call('HINCRBY', win, 'h:' .. host, held) end
return {sent, opened, closes}
"""

# KEYS[1]: a window's hash. ARGV: host, events held.
# Answers 1 (counted), or 0 (the window is gone or its digest taken: the host sums them up itself).
_COUNT = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'digest') == 1 then return 0 end
redis.call('HINCRBY', KEYS[1], 'h:' .. ARGV[1], tonumber(ARGV[2]))
return 1
"""

# KEYS[1]: a window's hash. ARGV: this daemon's instance, now (ms), grace (ms).
# Answers {-1} (the window is gone), {0} (another daemon took the digest), {2, ms} (ask again in ms),
# or {1, host, count, host, count, ...}: the digest is this daemon's (again, if it took it already).
_DIGEST = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local taker = redis.call('HGET', KEYS[1], 'digest')
if taker and taker ~= ARGV[1] then return {0} end
if not taker then
  local closes, now, grace = tonumber(redis.call('HGET', KEYS[1], 'closes')), tonumber(ARGV[2]), tonumber(ARGV[3])
  if now < closes + grace then return {2, closes + grace - now} end
  if redis.call('HGET', KEYS[1], 'first') ~= ARGV[1] and now < closes + 2 * grace then
    return {2, closes + 2 * grace - now}
  end
  redis.call('HSET', KEYS[1], 'digest', ARGV[1])
end
local out = {1}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'h:' then
    out[#out + 1] = string.sub(all[i], 3)
    out[#out + 1] = all[i + 1]
  end
end
return out
"""


@record
class ShareState:
    """This host's part in one fleet window of a key, as the spool stores it."""

    rule: str
    key: str
    opened: int
    """When the fleet's window opened, in milliseconds (as Redis knows it)."""
    closes: int
    title: str
    base: Notification
    counted: int
    uncounted: int
    refused: int
    sent: bool
    took_part: bool
    claim_at: float | None
    """When to claim the digest; ``None``: the host's own window of the key is still open."""


ShareId = tuple[str, str, int]
"""``(rule, key, opened)``: one share."""
ShareChange = tuple[ShareId, ShareState | None]
"""A share's state to store, or ``None`` once its digest is decided."""


@dataclass(slots=True, eq=False)
class _Share:
    """This host's part in one fleet window of a key."""

    key: StormKey
    pointer: str
    """The key's pointer in Redis (its window's hash: ``pointer:opened``)."""
    opened: int
    closes: int
    title: str
    """The key's alert title (a digest's is this, and how many more)."""
    base: Notification
    """The latest notification of the key here: an alert, or the local digest's last line held."""
    counted: int = 0
    """Events the local window held that Redis counted (alerts it refused are counted by the claim)."""
    uncounted: int = 0
    """Events held here that Redis did not count: this host sums them up itself."""
    refused: int = 0
    """This host's alerts the fleet refused (Redis counted each as held here)."""
    excerpt: str = ""
    """The lines the local window held, for the digest's file (memory only, as storm control's)."""
    sent: bool = False
    """This host sent one of the window's alerts."""
    took_part: bool = False
    """Redis counted an event held here (or an alert it refused)."""
    claim_at: float | None = None
    digest_on: bool = True
    """The key's settings send a digest (``digest: false``: the fleet's window ends without one)."""

    @property
    def ident(self) -> ShareId:
        return (self.key[0], self.key[1], self.opened)

    @property
    def window(self) -> str:
        return f"{self.pointer}:{self.opened}"

    def state(self) -> ShareState:
        return ShareState(
            self.key[0], self.key[1], self.opened, self.closes, self.title, self.base, self.counted,
            self.uncounted, self.refused, self.sent, self.took_part, self.claim_at,
        )  # fmt: skip


@dataclass(slots=True)
class _Plan:
    """One commit's (or tick's) calls to Redis and what to do with each answer."""

    now: float
    storm: StormControl | None = None
    claims: bool = False
    """Alerts of this commit are storm control's, to claim."""
    dropped: set[int] = field(default_factory=set)
    """The ids of the notifications the fleet decided against."""
    calls: list[tuple[str, list[str], list[Any]]] = field(default_factory=list)
    then: list[Callable[[Any], None]] = field(default_factory=list)
    undo: list[Callable[[], None]] = field(default_factory=list)
    """What to do when Redis does not answer (what was to be counted there is summed up here)."""
    closed: list[_Share] = field(default_factory=list)
    """Shares whose local window closed in this commit."""

    def add(
        self,
        script: str,
        keys: list[str],
        args: list[Any],
        then: Callable[[Any], None],
        undo: Callable[[], None] | None = None,
    ) -> None:
        self.calls.append((script, keys, args))
        self.then.append(then)
        if undo is not None:
            self.undo.append(undo)


class FleetStorm:
    """Makes the storm decisions of one host its fleet's (see the module doc)."""

    def __init__(self, fleet: Fleet, *, host: str, instance: str, clock: Callable[[], float] = time.time) -> None:
        self.fleet = fleet
        self.host = host
        """Whose counts this daemon's are, and the name its digests show."""
        self.instance = instance
        """Which daemon this is, across its restarts (its state's): the one that sent a window's first
        alert and the one that takes its digest, even when two daemons share a host name by mistake."""
        self.clock = clock
        self.lock = asyncio.Lock()
        """Held while a commit takes the pipeline's changes and this stage decides on them (and while
        it claims digests): each commit sees the storm's windows as the one before left them."""
        self._current: dict[StormKey, _Share] = {}
        """Per key, the share its open local window follows."""
        self._drop: dict[int, Notification] = {}
        """Local digests of windows the fleet sums up, by id (the object kept, so that the id is not
        another's): a closure taken by one commit may have its digest in another's deliveries."""
        self._live: dict[ShareId, _Share] = {}
        self._deadlines: list[tuple[float, int, _Share]] = []
        """Shares whose local window closed, by when their digest is to be claimed."""
        self._order = 0
        self._changed: dict[ShareId, _Share | None] = {}
        """Shares changed since the last ``changes()`` (``None``: done with)."""
        self._coordinated: OrderedDict[StormKey, bool] = OrderedDict()
        """Keys the fleet stormed lately, and whether this host sent one of their alerts (their
        resolved note goes from such a host only)."""
        self.refused = 0
        """Alerts of this host the fleet held back (others had sent its first alerts)."""
        self.digests = 0
        self.alone = 0
        """Digests this host sent of what it held alone (Redis did not count it, or lost the window)."""

    # ── a commit's notifications ────────────────────────────────────────────

    async def filter(
        self,
        deliveries: Sequence[Delivery],
        changes: Iterable[KeyChange],
        storm: StormControl,
        *,
        admitted: bool = True,
    ) -> list[Delivery]:
        """*deliveries* as the fleet decides them: alerts it refused and local digests of fleet keys
        left out; Redis told what the keys in *changes* held; *storm*'s windows moved onto the
        fleet's. Without Redis: *deliveries* as they are. Under ``lock``, with *changes* taken under it.

        *admitted*: the alerts are storm control's, made of lines just read (``False``: what time
        brings, where an alert is an escalation's or an absence's and is not claimed)."""
        assert self.lock.locked()
        closures = storm.closures
        if not deliveries and not self._current and not closures:
            return list(deliveries)
        storm.closures = []
        notes: dict[int, Notification] = {}
        for delivery in deliveries:
            notes.setdefault(id(delivery.notification), delivery.notification)
        plan = _Plan(self.clock(), storm, admitted)
        states = {key: state for key, state in changes if key in self._current or state is not None}
        self._closed(plan, closures or (), states)
        self._decide(plan, notes.values(), states)
        if plan.calls:
            try:
                await self._run(plan)  # without Redis, alerts go out as this host decided them
            except asyncio.CancelledError:  # a stop: the next commit takes these closures again
                storm.closures[:0] = closures or ()
                raise
        for share in plan.closed:
            self._await_digest(share)
        drop = self._drop
        kept = []
        for delivery in deliveries:
            note = delivery.notification
            if id(note) in plan.dropped or drop.get(id(note)) is note:
                continue
            kept.append(delivery)
        for note in notes.values():
            if drop.get(id(note)) is note:
                del drop[id(note)]
        if len(drop) > DROPS_KEPT:  # digests of commits that never came (a stop): forget the oldest
            for stale in list(drop)[: len(drop) - DROPS_KEPT]:
                del drop[stale]
        return kept

    def _closed(self, plan: _Plan, closures: Iterable[Closure], states: dict[StormKey, KeyState | None]) -> None:
        """Local windows that closed: their final count, their digest's line kept for the fleet's (and
        the digest itself left out, whichever commit carries it); what open ones held since the last commit."""
        for closure in closures:
            share = self._live.get((closure.key[0], closure.key[1], round(closure.opened * 1000)))
            if share is None:
                continue  # a window the fleet had no part in: its digest goes as it is
            if self._current.get(closure.key) is share:
                del self._current[closure.key]
            if closure.digest is not None:
                share.base, share.excerpt = closure.digest, closure.digest.excerpt
                self._drop[id(closure.digest)] = closure.digest
            share.digest_on = closure.digest_on
            self._count(plan, share, closure.held - share.counted - share.uncounted)
            self._touch(share)
            plan.closed.append(share)
        for key, state in states.items():
            following = self._current.get(key)
            if following is None:
                continue
            if state is None or state.opened is None or round(state.opened * 1000) != following.opened:
                del self._current[key]  # a window whose closure this host did not see (restored without it)
                plan.closed.append(following)
            else:
                self._count(plan, following, state.held - following.counted - following.uncounted)

    def _decide(self, plan: _Plan, notes: Iterable[Notification], states: dict[StormKey, KeyState | None]) -> None:
        """Alerts of fleet keys to claim, their updates and resolved notes."""
        last_claim: dict[StormKey, Notification] = {}
        windows: dict[StormKey, tuple[float, StormConfig]] = {}
        for note in notes:
            key = (note.rule, note.key)
            if note.kind is Kind.ALERT:
                window = plan.storm.window_of(key) if plan.storm is not None and plan.claims else None
                if window is not None and window[1].fleet and note.key != OVERFLOW_KEY:
                    last_claim[key], windows[key] = note, window
            elif note.kind is Kind.UPDATE and key in self._current:
                plan.dropped.add(id(note))  # the fleet's count is known at the digest only
            elif note.kind is Kind.RECOVERY and self._coordinated.get(key) is False:
                plan.dropped.add(id(note))  # another host sent its alerts: that host resolves it
        for note in notes:
            key = (note.rule, note.key)
            if note.kind is Kind.ALERT and key in last_claim:
                # what the key's new window held in this commit goes with its last claim
                state = states.get(key)
                held = state.held if note is last_claim[key] and key not in self._current and state else 0
                self._claim(plan, note, held, *windows[key])

    def _pointer(self, key: StormKey) -> str:
        digest = hashlib.sha256(f"{self.fleet.config.name}\0{key[0]}\0{key[1]}".encode()).hexdigest()[:24]
        return f"{self.fleet.prefix}storm:{{{digest}}}"

    def _claim(self, plan: _Plan, note: Notification, held: int, length: float, config: StormConfig) -> None:
        """Claim *note*, an alert of a window *length* seconds long under *config*; *held*: events the
        window held, to count with it."""
        key, now, storm = (note.rule, note.key), plan.now, plan.storm
        assert storm is not None
        pointer = self._pointer(key)
        window_ms = max(1, math.ceil(length * 1000))
        args = [round(now * 1000), window_ms, round(KEEP_S * 1000), config.max_per_window, int(note.severity),
                self.host, held, self.instance]  # fmt: skip

        def then(answer: Any) -> None:
            sent, opened, closes = (int(part) for part in answer)
            share = self._current.get(key)
            if share is None or share.opened != opened:
                offset = 0
                if share is not None:  # the fleet's window closed before this host's: a new share
                    del self._current[key]  # (what the local window held so far is counted in the old)
                    offset = share.counted + share.uncounted
                    self._await_digest(share)
                share = self._live.get((key[0], key[1], opened))  # a restored one of the same window
                if share is None:
                    share = _Share(key, pointer, opened, closes, note.title, note, counted=offset)
                    self._live[share.ident] = share
                self._current[key] = share
            share.title = note.title
            if held:
                share.counted += held
                share.took_part = True
            if sent:
                share.sent = True
                self._coordinated[key] = True
            else:
                share.base, share.took_part = note, True
                share.refused += 1
                self.refused += 1
                plan.dropped.add(id(note))
                self._coordinated.setdefault(key, False)
            self._coordinated.move_to_end(key)
            if len(self._coordinated) > COORDINATED_KEYS:
                self._coordinated.popitem(last=False)
            self._touch(share)
            storm.align(key, opened / 1000, (closes - opened) / 1000)

        plan.add(_CLAIM, [pointer], args, then)

    def _count(self, plan: _Plan, share: _Share, held: int) -> None:
        """*held* more events of *share*'s local window, to count in its fleet window."""
        if held <= 0:
            return

        def then(answer: Any) -> None:
            if not int(answer):
                undo()  # the fleet's digest is taken (or the window gone): summed up here
            else:
                share.counted += held
                share.took_part = True
                self._touch(share)

        def undo() -> None:
            share.uncounted += held
            self._touch(share)

        plan.add(_COUNT, [share.window], [self.host, held], then, undo)

    def _await_digest(self, share: _Share) -> None:
        """*share*'s local window closed: its digest is claimed once the fleet's window is over."""
        if share.digest_on and (share.took_part or share.sent or share.uncounted):
            self._at(share.closes / 1000 + GRACE_S, share)
        else:
            self._done(share)

    def _at(self, when: float, share: _Share) -> None:
        share.claim_at = when
        self._order += 1
        heapq.heappush(self._deadlines, (when, self._order, share))
        self._touch(share)

    async def _run(self, plan: _Plan) -> bool:
        """*plan*'s calls in one round trip (``EVAL``: the scripts are small, and a script missing from
        Redis's cache cannot fail a call half way through the pipeline); whether Redis answered."""

        async def request(client: Any) -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                for script, keys, args in plan.calls:
                    pipe.eval(script, len(keys), *keys, *args)
                answers: list[Any] = await pipe.execute()
            return answers

        answers = await self.fleet.call(request)
        if answers is None:
            for undo in plan.undo:
                undo()
            return False
        for then, answer in zip(plan.then, answers, strict=True):
            then(answer)
        return True

    # ── digests ─────────────────────────────────────────────────────────────

    def next_deadline(self) -> float | None:
        """When the next digest is to be claimed."""
        return self._deadlines[0][0] if self._deadlines else None

    async def due(self, now: float | None = None) -> list[Notification]:
        """The digests of fleet windows over by *now* that this host won, and of what it held alone.
        Under ``lock``; the shares they decide are in the next ``changes()``, to store with them."""
        assert self.lock.locked()
        now = self.clock() if now is None else now
        shares: list[_Share] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            when, _, share = heapq.heappop(self._deadlines)
            if share.claim_at == when and self._live.get(share.ident) is share:
                shares.append(share)
        if not shares:
            return []
        plan = _Plan(now)
        out: list[Notification] = []
        for share in shares:
            args = [self.instance, round(now * 1000), round(GRACE_S * 1000)]
            plan.add(_DIGEST, [share.window], args, self._answer(share, now, out))
        if not await self._run(plan):
            for share in shares:
                if now < share.closes / 1000 + PATIENCE_S:
                    self._at(now + RETRY_S, share)  # a reply lost, or Redis away for a moment
                else:
                    self._alone(share, out, everything=True)
        return out

    def _answer(self, share: _Share, now: float, out: list[Notification]) -> Callable[[Any], None]:
        def then(answer: Any) -> None:
            status = int(answer[0])
            if status == 2:  # not yet: the host of the first alert has its go
                self._at(now + int(answer[1]) / 1000, share)
            elif status == 1:
                counts = {_text(host): int(n) for host, n in zip(answer[1::2], answer[2::2], strict=True)}
                self._fleet_digest(share, counts, out)
            else:  # -1: Redis lost the window (everything held here); 0: another host took the digest
                self._alone(share, out, everything=status == -1)

        return then

    def _fleet_digest(self, share: _Share, counts: dict[str, int], out: list[Notification]) -> None:
        counts = {host: n for host, n in counts.items() if n > 0}
        if share.uncounted:
            counts[self.host] = counts.get(self.host, 0) + share.uncounted
        if counts:
            self.digests += 1
            out.append(_digest(share, sum(counts.values()), hosts_in_words(counts), f"the latest line on {self.host}"))
        self._done(share)

    def _alone(self, share: _Share, out: list[Notification], *, everything: bool) -> None:
        """This host's own digest of *share*: what Redis did not count (*everything*: what it held,
        when Redis lost the window or cannot be asked)."""
        held = share.uncounted + (share.counted + share.refused if everything else 0)
        if held:
            self.alone += 1
            out.append(_digest(share, held, self.host, "the last one"))
        self._done(share)

    # ── state kept in the spool ─────────────────────────────────────────────

    def _touch(self, share: _Share) -> None:
        if self._live.get(share.ident) is share:
            self._changed[share.ident] = share

    def _done(self, share: _Share) -> None:
        """*share*'s digest is decided (or it had nothing to decide): forget it, here and in the spool."""
        if self._live.pop(share.ident, None) is not None:
            self._changed[share.ident] = None
        if self._current.get(share.key) is share:
            del self._current[share.key]

    def changes(self) -> list[ShareChange]:
        """The shares changed since the last call, to store with the commit that changed them."""
        changed, self._changed = self._changed, {}
        return [(ident, None if share is None else share.state()) for ident, share in changed.items()]

    def unsaved(self, changes: Iterable[ShareChange]) -> None:
        """*changes* could not be stored: hand them out again with the next ``changes()``."""
        for ident, _ in changes:
            self._changed.setdefault(ident, self._live.get(ident))

    def restore(self, states: Iterable[ShareState]) -> None:
        """Take back the shares stored before a restart: those whose local window is still open follow
        it again (the restored window is the fleet's already), the others claim their digest."""
        for stored in states:
            key = (stored.rule, stored.key)
            share = _Share(
                key, self._pointer(key), stored.opened, stored.closes, stored.title, stored.base, stored.counted,
                stored.uncounted, stored.refused, "", stored.sent, stored.took_part,
            )  # fmt: skip
            self._live[share.ident] = share
            if stored.claim_at is None:
                self._current[key] = share
            else:
                self._order += 1
                share.claim_at = stored.claim_at
                heapq.heappush(self._deadlines, (stored.claim_at, self._order, share))

    def collect(self) -> Iterable[Metric]:
        name = self.fleet.config.name
        yield counter("tailhook_fleet_storm_refused_total", "Alerts of this tailhook the fleet held back "
                      "(other hosts had sent their key's first alerts).", {name: self.refused}, "fleet")  # fmt: skip
        yield counter("tailhook_fleet_storm_digests_total", "Fleet-wide digests this tailhook claimed and sent.",
                      {name: self.digests}, "fleet")  # fmt: skip
        yield counter("tailhook_fleet_storm_alone_total", "Digests this tailhook sent of what it held that "
                      "the fleet's Redis did not count.", {name: self.alone}, "fleet")  # fmt: skip
        yield gauge("tailhook_fleet_storm_windows", "Fleet windows this tailhook takes part in now.",
                    {name: float(len(self._live))}, "fleet")  # fmt: skip


INSTANCE_FILE = "fleet-instance"
"""In the state folder: the id of this daemon in its fleet (made at its first start in fleet mode)."""


def instance_id(state_dir: Path) -> str:
    """This daemon's id in its fleet, kept in *state_dir* across restarts (a new one if it is missing
    or unreadable: a daemon with a state of its own is a daemon of its own)."""
    path = state_dir / INSTANCE_FILE
    with contextlib.suppress(OSError, UnicodeDecodeError):
        found = path.read_text(encoding="ascii").strip()
        if re.fullmatch(r"[0-9a-f]{32}", found):
            return found
    made = uuid.uuid4().hex
    with contextlib.suppress(OSError):  # a read-only state folder: an id for this run
        path.unlink(missing_ok=True)
        private_file(path)
        path.write_text(made + "\n", encoding="ascii")
    return made


def _digest(share: _Share, held: int, where: str, shown: str) -> Notification:
    """The digest of *share*'s window: *held* events held back *where*; its line is *shown*."""
    span = seconds_in_words((share.closes - share.opened) / 1000)
    events = "event was" if held == 1 else "events were"
    return replace(
        share.base,
        kind=Kind.DIGEST,
        key=share.key[1],
        count=held,
        title=f"{share.title} (+{held} more)",
        description=f"{held:,} more {events} held back on {where} in this {span} window; {shown} is below.",
        excerpt=share.excerpt,
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _natural(host: str) -> tuple[Any, ...]:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", host))


def hosts_in_words(counts: dict[str, int]) -> str:
    """ "20 hosts (pod-0, pod-1 … pod-19)": how many hosts, and which, in natural order."""
    names = sorted(counts, key=_natural)
    shown = ", ".join(names) if len(names) <= 4 else f"{names[0]}, {names[1]} … {names[-1]}"
    return f"{len(names)} {'host' if len(names) == 1 else 'hosts'} ({shown})"

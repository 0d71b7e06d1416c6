"""The dispatcher: notifications waiting in the spool → each destination's sink.

Each destination has its own task, so a slow or dead webhook never holds up
another. Per destination, notifications go out oldest first, as many per
request as the sink can carry (Discord: 10 embeds within 6000 characters),
one request at a time, and leave the spool only once the sink has settled
them. What a sink answers decides what happens next:

- ``SENT``: delete them from the spool; then, if notifications for this
  destination were dropped (the spool was full, or they waited longer than
  ``spool.max_age``), queue one message that says how many and why.
- ``RETRY``: record the failure in the spool and wait (the receiver's
  ``retry_after``, else capped, jittered exponential backoff) before trying
  the same notifications again, so order holds; a long outage alone never
  drops anything.
- ``REJECTED``: Discord will never take it (400). A message of one
  notification moves to the dead letters with the error, and delivery goes
  on with the next, so one bad payload never blocks. A message of several
  is split: they are sent one by one until each is settled, so only the one
  Discord refuses ends in the dead letters.
- Before each request: if more non-critical alerts wait than the sink takes
  in ``flood_after_s`` (its ``throughput``), they are summed up per rule in
  the spool (``tailhook.flood``), so the channel gets a few summaries instead
  of minutes of backlog.
- ``DEAD``: every webhook of the destination is gone or its token wrong: say
  so loudly, once, and stop sending to it; its notifications stay in the
  spool. The sink is asked again (it re-checks without posting) as often as
  it allows, and a reload that gives the destination a new sink brings it
  back at once. A sink that lost only some of its webhooks is re-checked on
  the same schedule while the others carry on.

Time is a parameter: ``clock``, ``sleep`` and ``random`` are injected.

It reports its own metrics (``collect``): per destination, what was delivered,
retried, refused and summed up, whether it is up, how long alerts took from
the spool to Discord's 2xx (a histogram), and what its sinks report.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import math
import random as _random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from tailhook.events import STORM_EDITS, Delivery, Kind, Mentions, Notification, Severity
from tailhook.metrics import Histogram, Metric, counter, gauge, merged
from tailhook.sinks import Outcome, Posted, Result, Sink
from tailhook.spool import DropReason, Incident, Spool, Spooled, SpoolFull

__all__ = ["Backoff", "DestinationState", "Dispatcher", "drops_notification"]

log = logging.getLogger(__name__)

SPOOL_RETRY_S = 1.0
ANNOUNCEMENT_ROOM = 16 * 1024
"""Bytes a drop announcement may take beyond ``spool.max_bytes``, so it never causes drops itself."""
IDLE_RECHECK_S = 5.0
LOOKAHEAD = 10
"""Notifications read from the spool per request: no sink carries more than Discord's 10 embeds."""
MIN_REVIVE_WAIT_S = 1.0
LATENCY_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0)
"""From a tenth of a second (a quiet channel) to six hours (an outage waited out in the spool)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with jitter in [delay/2, delay]."""

    base_s: float = 1.0
    cap_s: float = 300.0

    def delay(self, attempt: int, random: Callable[[], float] = _random.random) -> float:
        """Seconds to wait before try number *attempt* + 1 (``attempt`` starts at 0)."""
        ceiling = min(self.cap_s, self.base_s * 2 ** min(attempt, 32))
        return float(ceiling * (0.5 + random() / 2))


@dataclass(slots=True)
class DestinationState:
    """How one destination's deliveries have fared since the start."""

    ready: asyncio.Event = field(default_factory=asyncio.Event)
    replaced: bool = False
    """A reload gave the destination a new sink since the task last looked."""
    nudged: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when a reload asked for a re-check of what is dead now."""
    sending: bool = False
    """A request is in flight or being settled: removing the destination waits for it."""
    removed: bool = False
    sent: int = 0
    requests: int = 0
    """Messages that Discord stored; ``sent`` counts the notifications in them."""
    retries: int = 0
    rejected: int = 0
    summarised: int = 0
    """Alerts summed up in a flood instead of being sent one by one."""
    dead: str | None = None
    """Why the sink was declared dead, while it is."""
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class _Request:
    """What one request carries: a message of posts, or one edit of a storm's message."""

    batch: Sequence[Spooled]
    incident: Incident | None = None
    """Edit this message, to show its ``deliveries``, instead of posting."""
    thread: str | None = None
    """Post into this thread (``threads: per_incident``)."""
    fresh: tuple[int, ...] = ()
    """The places of the edit's own deliveries in its message (they bring their files)."""
    shown: tuple[Delivery, ...] | None = None
    """Post these instead of the batch's deliveries: a message posted anew (its batch goes in it)."""
    replaces: str | None = None
    """The message (gone) that the post of ``shown`` takes the place of."""

    def is_post(self) -> bool:
        """A message of the batch's own deliveries (not an edit, nor a message posted anew)."""
        return self.incident is None and self.shown is None

    def deliveries(self) -> list[Delivery]:
        """What a post of this request shows."""
        return list(self.shown) if self.shown is not None else [item.delivery for item in self.batch]


class Dispatcher:
    def __init__(
        self,
        sinks: Mapping[str, Sink],
        spool: Spool,
        *,
        host: str,
        backoff: Backoff = Backoff(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        random: Callable[[], float] = _random.random,
        flood_after_s: float | None = None,
    ) -> None:
        self.sinks = dict(sinks)
        self.flood_after_s = flood_after_s
        """``storm.flood_after``; ``None``: floods are sent as they are."""
        self.spool = spool
        self.host = host
        self.backoff = backoff
        self._sleep = sleep
        self._clock = clock
        self._random = random
        self.states = {name: DestinationState() for name in self.sinks}
        self.editing: frozenset[str] = frozenset()
        """Destinations whose storms are one message, edited (``storm_updates: edit``)."""
        self.resolved_post: dict[str, bool] = {}
        """Per destination that edits: whether a resolved storm also gets a message of its own."""
        self.per_incident: frozenset[str] = frozenset()
        """Forum destinations with a thread per storm key (``threads: per_incident``)."""
        self.edit_every = 0.0
        """At most one edit per message this often (``storm.update_every``): what waits meanwhile
        goes in the next one."""
        self.latency = Histogram(
            "tailhook_delivery_latency_seconds",
            "Seconds from storing an alert (the ingest commit of its line) to the destination taking it, "
            "per destination.",
            "destination",
            LATENCY_BUCKETS_S,
        )
        self._progress = asyncio.Condition()
        self._group: asyncio.TaskGroup | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._settling: dict[str, asyncio.Task[None]] = {}
        """Tasks of removed destinations that settle a request in flight."""
        spool.on_commit(self.wake)

    def wake(self, destinations: set[str]) -> None:
        """New notifications were stored for *destinations*."""
        for name in destinations:
            state = self.states.get(name)
            if state is not None:
                state.ready.set()

    async def run(self) -> None:
        """Deliver until cancelled, one task per destination."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            for name in self.sinks:
                self._start(name)

    def replace(self, name: str, sink: Sink) -> None:
        """Deliver to *name* through *sink* from now on (a reload).

        The sink it replaces is dropped, not closed: a request through it may
        still be in flight, and settles as any other.
        """
        self.sinks[name] = sink
        if name not in self.states:
            self.states[name] = DestinationState()
            self._start(name)
        state = self.states[name]
        state.replaced = True
        state.nudged.set()
        state.ready.set()

    def remove(self, name: str) -> None:
        """Stop delivering to *name*; its notifications stay in the spool.

        A request in flight is settled first (cancelling it between Discord's
        answer and the spool's delete would send its alerts twice).
        """
        task = self._tasks.pop(name, None)
        state = self.states.pop(name, None)
        self.sinks.pop(name, None)
        if task is None or state is None:
            return
        if state.sending:
            state.removed = True  # the task ends once the request is settled
            self._settling[name] = task  # a destination of this name added back waits for it
        else:
            task.cancel()

    def recheck(self, name: str) -> None:
        """Ask again now about whatever of *name* is dead (a reload asked for it)."""
        state = self.states.get(name)
        if state is None:
            return
        self.sinks[name].recheck_soon()
        state.nudged.set()
        state.ready.set()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until no live destination has anything waiting, at most *timeout_s*; ``True`` if so."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    async with self._progress:
                        live = [name for name, state in self.states.items() if state.dead is None]
                        if all([await self.spool.pending(name) == 0 for name in live]):
                            return True
                        await self._progress.wait()
        except TimeoutError:
            return False

    def _start(self, name: str) -> None:
        if self._group is not None:
            after = self._settling.pop(name, None)
            self._tasks[name] = self._group.create_task(self._deliver(name, after), name=f"deliver-{name}")

    async def _deliver(self, name: str, after: asyncio.Task[None] | None = None) -> None:
        if after is not None:  # the same name was removed mid-request: let that request settle first
            await asyncio.wait([after])
        state = self.states[name]
        attempt = 0
        one_by_one = 0  # after a refused message: how many of its notifications still go alone
        while not state.removed:
            if state.dead is not None:
                await self._await_revival(name, state)
                continue
            state.replaced = False
            state.nudged.clear()
            if self.sinks[name].recheck_in() <= 0:  # some webhooks are dead and due for a re-check
                await self.sinks[name].revive()
            state.ready.clear()  # before looking, so a commit made meanwhile is not missed
            if not one_by_one:
                await self._sum_up_flood(name, state)
            edit_every = self.edit_every if name in self.editing else 0.0
            waiting = await self.spool.next(name, 1 if one_by_one else LOOKAHEAD, edit_every=edit_every)
            if not waiting:
                await self._idle(name, state, edit_every)
                continue
            sink = self.sinks[name]  # after the wait: a reload may have replaced it meanwhile
            request = await self._next_request(name, waiting, sink)
            if not request.batch:
                continue
            state.sending = True
            try:
                request, result = await self._request(name, sink, request)
                batch = request.batch
                # one by one helps a message of posts; an edit gathers the same again, so it is refused whole
                split = result.outcome is Outcome.REJECTED and len(batch) > 1 and request.is_post()
                if not split:
                    attempt, delay = await self._settle(name, state, request, result, attempt)
            finally:
                state.sending = False
            if split:
                one_by_one = len(batch)
                log.warning(
                    "destination %s refused a message of %d alerts (%s); sending them one by one",
                    name,
                    len(batch),
                    result.detail,
                )
                continue
            if one_by_one and result.outcome in (Outcome.SENT, Outcome.REJECTED):
                one_by_one -= 1
            async with self._progress:
                self._progress.notify_all()
            if delay and not state.removed:
                await self._sleep(delay)

    async def _idle(self, name: str, state: DestinationState, edit_every: float) -> None:
        """Wait for a commit (ours wake us), a dead webhook's re-check, an edit held back falling due,
        or ``IDLE_RECHECK_S``, which also finds what ``tailhook spool retry`` requeued."""
        idle = min(IDLE_RECHECK_S, max(0.0, self.sinks[name].recheck_in()))
        if edit_every and (due := await self.spool.edits_due(name, edit_every)) is not None:
            idle = min(idle, max(0.0, due - self._clock()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(idle):
                await state.ready.wait()

    async def _next_request(self, name: str, waiting: Sequence[Spooled], sink: Sink) -> _Request:
        """What the next request carries: a message of posts (``threads: per_incident``: of one storm
        key, into its thread), or one edit of a storm's message (with what that message shows after
        it), which carries what waits for every key of the message. Per key, what was stored first
        goes first: a post never overtakes an older edit of its key, nor an edit an older post."""
        head = waiting[0]
        if name not in self.editing:
            return await self._posts(name, list(waiting), sink)
        if head.delivery.notification.kind not in STORM_EDITS:
            posts = list(itertools.takewhile(lambda item: item.delivery.notification.kind not in STORM_EDITS, waiting))
            older = await self.spool.older_edit(name, posts)
            if older is None:
                return await self._posts(name, posts, sink)
            index, head = older
            if index:
                return await self._posts(name, posts[:index], sink)
        return await self._edit(name, head, sink)

    async def _edit(self, name: str, head: Spooled, sink: Sink) -> _Request:
        """The edit that *head* (an update, digest or resolved note) goes in. Nothing when *head* is an
        update of no known message (its post went for good, or never will): it is dropped."""
        n = head.delivery.notification
        incident = await self.spool.incident(name, n.rule, n.key)
        if incident is None:
            if n.kind is Kind.UPDATE:
                await self._store(lambda: self.spool.delivered([head.id]))
                return _Request([])
            return await self._posts(name, [head], sink)  # a digest or resolved note of no known message
        edits = await self.spool.edits(name, incident.message_id)
        if head.id not in {item.id for item, _ in edits}:  # it follows what its key has waiting from before it
            first = await self.spool.next_of_key(name, n.rule, n.key)
            if first is None or first.delivery.notification.kind not in STORM_EDITS or not edits:
                return await self._posts(name, [first or head], sink)  # a post of its key: that goes first
            # an older edit of its key (this storm's digest): the message's edits go now, *head* after
        shown = list(incident.deliveries)
        for item, slot in edits:
            shown[slot] = replace(item.delivery, mentions=Mentions())  # pings belong to posts
        batch, fresh = [item for item, _ in edits], tuple(slot for _, slot in edits)
        return _Request(batch, replace(incident, deliveries=tuple(shown)), fresh=fresh)

    async def _posts(self, name: str, posts: list[Spooled], sink: Sink) -> _Request:
        """A message of as many of *posts* as it takes (``threads: per_incident``: of the first one's
        key alone, into that key's thread)."""
        thread = None
        if name in self.per_incident:
            n = posts[0].delivery.notification
            posts = [item for item in posts if (item.delivery.notification.rule, item.delivery.notification.key)
                     == (n.rule, n.key)]  # fmt: skip
            thread = await self.spool.thread(name, n.rule, n.key)
        return _Request(posts[: sink.batch([item.delivery for item in posts])], thread=thread)

    async def _request(self, name: str, sink: Sink, request: _Request) -> tuple[_Request, Result]:
        """Send *request*; what was sent, and how it went. An edit whose message is gone posts the
        message anew, as the edit would have made it (the old one is forgotten once the new one is
        stored); a post whose thread is gone opens a new one."""
        if (incident := request.incident) is not None:
            posted = Posted(incident.message_id, incident.webhook, incident.thread_id, incident.files)
            result = await sink.edit(posted, incident.deliveries, request.fresh)
            if result.outcome is not Outcome.MISSING:
                return request, result
            log.info("destination %s: message %s is gone (%s); posting anew", name, incident.message_id, result.detail)
            shown = tuple(replace(d, mentions=Mentions()) for d in incident.deliveries)  # it pinged already
            thread = incident.thread_id if name in self.per_incident else None
            request = _Request(request.batch, thread=thread, shown=shown, replaces=incident.message_id)
        result = await sink.send(request.deliveries(), thread_id=request.thread)
        if (thread := request.thread) is not None and result.outcome is Outcome.MISSING:
            log.info("destination %s: thread %s is gone (%s); opening a new post", name, thread, result.detail)
            await self._store(lambda: self.spool.forget_thread(name, thread))
            request = replace(request, thread=None)
            result = await sink.send(request.deliveries())
        return request, result

    async def _settle(
        self, name: str, state: DestinationState, request: _Request, result: Result, attempt: int
    ) -> tuple[int, float]:
        """Act on *result* of *request*; the number of failed tries of its notifications so far, and
        the seconds to wait before the next try."""
        batch = request.batch
        ids = [item.id for item in batch]
        if result.outcome is Outcome.SENT:
            await self._delivered(name, request, result)
            state.sent += len(batch)
            state.requests += 1
            now = self._clock()
            for item in batch:
                self.latency.observe(name, max(0.0, now - item.created))
            if self.spool.has_drops(name):
                await self._announce_drops(name)
            return 0, 0.0
        state.last_error = result.detail
        if result.outcome is Outcome.REJECTED:
            await self._store(lambda: self.spool.reject(ids, result.detail))
            state.rejected += len(batch)
            n = batch[0].delivery.notification
            log.error(
                "destination %s refused the alert %r of rule %s for good; it is in the dead letters: %s",
                name,
                n.title[:200],
                n.rule,
                result.detail,
            )
            return 0, 0.0
        if result.outcome is Outcome.DEAD:
            state.dead = result.detail
            log.error(
                "destination %s is dead: %s. No more requests go to it; its alerts stay in the spool. "
                "Fix its URL and reload (SIGHUP) or restart tailhook; until then Discord is asked again "
                "every few minutes, without posting.",
                name,
                result.detail,
            )
            return attempt, 0.0
        state.retries += 1
        delay = result.retry_after or self.backoff.delay(attempt, self._random)
        try:  # bookkeeping only: on a full disk, go on without it
            await self.spool.failed(ids, result.detail, self._clock() + delay)
        except sqlite3.OperationalError as exc:
            log.warning("destination %s: could not record the failed try in the spool: %s", name, exc)
        log.warning("destination %s: %s; trying again in %.1fs (try %d)", name, result.detail, delay, attempt + 2)
        return attempt + 1, delay

    async def _delivered(self, name: str, request: _Request, result: Result) -> None:
        """Record in the spool that *request* was delivered: what a storm's message shows now, the
        storm keys and threads a post made its own, or only that its notifications are gone."""
        batch, incident = request.batch, request.incident
        ids = [item.id for item in batch]
        if incident is not None:
            if result.posted is not None:  # the message's files as they are now
                incident = replace(incident, files=result.posted.files)
            await self._store(lambda: self.spool.edited(ids, name, incident))
            for item in batch:
                if item.delivery.notification.kind is Kind.RECOVERY and self.resolved_post.get(name):
                    await self._resolved_post(name, item.delivery)
        elif result.posted is not None and (name in self.editing or name in self.per_incident):
            posted, deliveries = result.posted, request.deliveries()
            message = (posted.message_id, posted.webhook, posted.thread_id)
            remember = functools.partial(
                self.spool.posted,
                files=posted.files,
                incidents=name in self.editing,
                threads=name in self.per_incident,
                replaces=request.replaces,  # its keys are the new message's now
            )
            await self._store(lambda: remember(ids, deliveries, message=message))
        else:
            await self._store(lambda: self.spool.delivered(ids))

    def collect(self) -> Iterable[Metric]:
        states = dict(self.states)

        def each(value: Callable[[DestinationState], float]) -> dict[str, float]:
            return {name: value(state) for name, state in states.items()}

        yield counter("tailhook_delivered_total", "Notifications the destination took.", each(lambda s: s.sent),
                      "destination")  # fmt: skip
        yield counter("tailhook_delivery_retries_total", "Failed tries, to be retried (5xx, network, 429).",
                      each(lambda s: s.retries), "destination")  # fmt: skip
        yield counter("tailhook_dead_letters_total", "Notifications refused for good (400).",
                      each(lambda s: s.rejected), "destination")  # fmt: skip
        yield counter("tailhook_summarised_total",
                      "Alerts summed up per rule because more waited than the destination takes in storm.flood_after.",
                      each(lambda s: s.summarised), "destination")  # fmt: skip
        yield gauge("tailhook_destination_up", "0 while every webhook of the destination is dead.",
                    each(lambda s: float(s.dead is None)), "destination")  # fmt: skip
        yield from self.latency.collect()
        yield from merged(list(self.sinks.values()))

    async def _sum_up_flood(self, name: str, state: DestinationState) -> None:
        """If more alerts wait for *name* than it takes in ``flood_after_s``, sum them up per rule."""
        if self.flood_after_s is None:
            return
        more_than = self.sinks[name].throughput() * self.flood_after_s
        try:
            if math.isinf(more_than) or not await self.spool.flood_waiting(name, more_than):
                return
            found = await self.spool.summarise(name, host=self.host, flood_after_s=self.flood_after_s)
        except sqlite3.OperationalError as exc:  # a full disk: send the flood as it is
            log.warning("destination %s: could not sum a flood up in the spool: %s", name, exc)
            return
        count = sum(summary.count for summary in found)
        state.summarised += count
        log.warning(
            "destination %s: more alerts waited than it takes in %gs; %d of them summed up in %d summaries "
            "(tailhook spool list --summarised shows them)",
            name,
            self.flood_after_s,
            count,
            len(found),
        )

    async def _await_revival(self, name: str, state: DestinationState) -> None:
        """Wait for a reload or for the sink's next re-check, whichever comes first."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(MIN_REVIVE_WAIT_S, self.sinks[name].recheck_in())):
                await state.nudged.wait()
        state.nudged.clear()
        if state.replaced:
            log.warning("destination %s: reloaded; sending to it again", name)
        elif await self.sinks[name].revive():
            log.warning("destination %s answers again; sending what waited for it", name)
        else:
            return
        state.dead = None

    async def _store(self, write: Callable[[], Awaitable[None]]) -> None:
        """Write to the spool; while it cannot be written (a full disk), wait and try again.

        Moving on without the write would send a delivered alert twice, or lose a failure's record.
        """
        failing = False
        while True:
            try:
                await write()
            except sqlite3.OperationalError as exc:
                if not failing:
                    log.error("cannot write to the spool (%s); delivery waits until it can", exc)
                    failing = True
                await self.spool.reclaim()
                await self._sleep(SPOOL_RETRY_S)
                continue
            if failing:
                log.warning("the spool can be written again; delivery goes on")
            return

    async def _resolved_post(self, name: str, delivery: Delivery) -> None:
        """``resolved_post``: a short message of its own saying a storm whose message was edited is over."""
        n = delivery.notification
        note = replace(n, kind=Kind.NOTE, description="", fields=(), line="", captures={})
        try:
            await self.spool.commit([replace(delivery, notification=note, mentions=Mentions())], room=ANNOUNCEMENT_ROOM)
        except SpoolFull:
            log.warning("destination %s: no room for the resolved note of %s/%s", name, n.rule, n.key)

    async def _announce_drops(self, name: str) -> None:
        drops = await self.spool.take_drops(name)
        if not drops:
            return
        announcement = drops_notification(drops, host=self.host, time=self._clock())
        log.warning("destination %s: %s", name, announcement.title)
        try:
            await self.spool.commit([Delivery(name, announcement)], room=ANNOUNCEMENT_ROOM)
        except SpoolFull:
            log.error("destination %s: could not queue the drop announcement: the disk is full", name)


_DROP_REASONS = {
    "full": (
        "while the spool was full",
        "its spool reached spool.max_bytes while this destination could not be reached, "
        "and the lowest severities were dropped first",
    ),
    "expired": (
        "after waiting longer than spool.max_age",
        "they waited in the spool longer than spool.max_age while this destination could not be reached",
    ),
}
"""Per reason: how the title says it, and how the description explains it."""


def drops_notification(drops: Mapping[tuple[DropReason, Severity], int], *, host: str, time: float) -> Notification:
    """One message saying how many notifications were dropped, and why."""
    titles, explanations = [], []
    for reason in sorted({reason for reason, _ in drops}):
        counts = sorted(((s, c) for (r, s), c in drops.items() if r == reason), reverse=True)
        total = sum(c for _, c in counts)
        parts = ", ".join(f"{count} {severity.label}" for severity, count in counts)
        cause, explanation = _DROP_REASONS.get(reason, (f"({reason})", reason))
        titles.append(f"{parts} notification{'s' if total != 1 else ''} dropped {cause}")
        explanations.append(explanation)
    return Notification(
        kind=Kind.ALERT,
        rule="tailhook-spool-drops",
        severity=Severity.WARNING,
        key="spool-drops",
        title="; ".join(titles),
        description=f"tailhook on {host} could not keep them: {'; '.join(explanations)}.",
        line="",
        source="tailhook",
        host=host,
        time=time,
    )

"""The dispatcher's storm edits between a real spool and a recording sink: per storm key what was
stored first goes first (a post never takes an older edit of its key, an edit never takes what
belongs to the key's next post), a refused edit is refused whole, and a deleted message is posted
anew whole."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Collection, Iterable, Sequence

import pytest

from tailhook.dispatch import Dispatcher
from tailhook.events import Delivery, Kind, Severity
from tailhook.metrics import Metric
from tailhook.sinks import Outcome, Posted, Result
from tailhook.spool import Spool
from tests.conftest import make_delivery
from tests.test_dispatch import run_until


class RecordingSink:
    """Posts and edits as Discord would (a message id per post), recording each request as
    ``("post"|"edit", message id, [title per embed])``; ``answers`` scripts the next answers."""

    name = "alerts"

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, list[str]]] = []
        self.answers: list[Result] = []
        self._ids = itertools.count(1000)

    def batch(self, deliveries: Sequence[Delivery]) -> int:
        return min(10, len(deliveries))

    async def send(self, deliveries: Sequence[Delivery], *, thread_id: str | None = None) -> Result:
        if self.answers:
            return self.answers.pop(0)
        message = str(next(self._ids))
        self.requests.append(("post", message, [d.notification.title for d in deliveries]))
        return Result(Outcome.SENT, posted=Posted(message, "900", files=()))

    async def edit(self, posted: Posted, deliveries: Sequence[Delivery], fresh: Collection[int] = ()) -> Result:
        if self.answers:
            return self.answers.pop(0)
        self.requests.append(("edit", posted.message_id, [d.notification.title for d in deliveries]))
        return Result(Outcome.SENT, posted=posted)

    async def revive(self) -> bool:
        return True

    def recheck_in(self) -> float:
        return math.inf

    def recheck_soon(self) -> None:
        return None

    def throughput(self) -> float:
        return math.inf

    def collect(self) -> Iterable[Metric]:
        return ()

    async def close(self) -> None:
        return None


def of(kind: Kind, key: str, title: str, severity: Severity = Severity.ERROR) -> Delivery:
    d = make_delivery(title)
    return Delivery("alerts", dataclasses.replace(d.notification, kind=kind, key=key, severity=severity))


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


def editing(spool: Spool, sink: RecordingSink) -> Dispatcher:
    dispatcher = Dispatcher({"alerts": sink}, spool, host="h")
    dispatcher.editing = frozenset({"alerts"})
    return dispatcher


async def test_a_digest_edits_its_storms_message_and_what_follows_a_new_post_goes_to_that_post(
    spool: Spool, sink: RecordingSink
) -> None:
    dispatcher = editing(spool, sink)
    await spool.commit([of(Kind.ALERT, "k", "alert 1")])
    await run_until(dispatcher, lambda: len(sink.requests) == 1)
    # a backlog: the storm's digest, the key's next storm's first alert and its update
    await spool.commit([of(Kind.DIGEST, "k", "alert 1 (+9 more)"), of(Kind.ALERT, "k", "alert 2"),
                        of(Kind.UPDATE, "k", "alert 2 × 3")])  # fmt: skip
    await run_until(dispatcher, lambda: len(sink.requests) == 4)

    first = sink.requests[0][1]
    assert sink.requests[1:] == [
        ("edit", first, ["alert 1 (+9 more)"]),
        ("post", "1001", ["alert 2"]),
        ("edit", "1001", ["alert 2 × 3"]),
    ]


async def test_a_new_alert_more_severe_than_its_keys_resolved_note_waits_for_the_note(
    spool: Spool, sink: RecordingSink
) -> None:
    dispatcher = editing(spool, sink)
    await spool.commit([of(Kind.ALERT, "k", "alert 1", Severity.WARNING)])
    await run_until(dispatcher, lambda: len(sink.requests) == 1)
    await spool.commit([of(Kind.RECOVERY, "k", "Resolved: alert 1", Severity.WARNING),
                        of(Kind.ALERT, "k", "alert 2", Severity.CRITICAL)])  # fmt: skip
    await run_until(dispatcher, lambda: len(sink.requests) == 3)

    assert [(kind, titles) for kind, _, titles in sink.requests[1:]] == [
        ("edit", ["Resolved: alert 1"]),  # the old message turns green first
        ("post", ["alert 2"]),
    ]
    assert sink.requests[1][1] == sink.requests[0][1]
    assert await spool.incident("alerts", "r", "k") is not None  # the new post is the key's message


async def test_a_refused_edit_is_refused_whole_and_delivery_goes_on(spool: Spool, sink: RecordingSink) -> None:
    dispatcher = editing(spool, sink)
    await spool.commit([of(Kind.ALERT, "a", "alert a"), of(Kind.ALERT, "b", "alert b")])
    await run_until(dispatcher, lambda: len(sink.requests) == 1)
    sink.answers.append(Result(Outcome.REJECTED, "Discord answered 400: too long"))
    await spool.commit([of(Kind.UPDATE, "a", "a × 2"), of(Kind.UPDATE, "b", "b × 2")])
    await spool.commit([of(Kind.ALERT, "c", "alert c")])
    await run_until(dispatcher, lambda: len(sink.requests) == 2)

    assert sink.requests[1][2] == ["alert c"]
    assert (await spool.status()).dead_letters == {"alerts": 2}  # the one edit's two updates, once
    assert not sink.answers


async def test_a_deleted_message_is_posted_anew_whole_and_its_keys_edit_the_new_one(
    spool: Spool, sink: RecordingSink
) -> None:
    dispatcher = editing(spool, sink)
    await spool.commit([of(Kind.ALERT, "a", "alert a"), of(Kind.ALERT, "b", "alert b")])
    await run_until(dispatcher, lambda: len(sink.requests) == 1)
    sink.answers.append(Result(Outcome.MISSING, "Discord answered 404: Unknown Message"))
    await spool.commit([of(Kind.UPDATE, "a", "a × 2")])
    await run_until(dispatcher, lambda: len(sink.requests) == 2)
    await spool.commit([of(Kind.UPDATE, "b", "b × 5")])
    await run_until(dispatcher, lambda: len(sink.requests) == 3)

    assert sink.requests[1] == ("post", "1001", ["a × 2", "alert b"])  # both keys, as the edit would show them
    assert sink.requests[2] == ("edit", "1001", ["a × 2", "b × 5"])
    assert await spool._run(lambda: spool.db.execute("SELECT id FROM messages").fetchall()) == [("1001",)]


async def test_an_edit_waits_for_an_older_post_of_its_key(spool: Spool, sink: RecordingSink) -> None:
    dispatcher = editing(spool, sink)
    await spool.commit([of(Kind.ALERT, "k", "alert 1")])
    await run_until(dispatcher, lambda: len(sink.requests) == 1)
    # the next storm's first alert (a warning) and its update (an error, so it comes first in order)
    await spool.commit([of(Kind.DIGEST, "k", "alert 1 (+1 more)"), of(Kind.ALERT, "k", "alert 2", Severity.WARNING),
                        of(Kind.UPDATE, "k", "alert 2 × 3", Severity.CRITICAL)])  # fmt: skip
    await run_until(dispatcher, lambda: len(sink.requests) == 4)
    assert [(kind, titles) for kind, _, titles in sink.requests[1:]] == [
        ("edit", ["alert 1 (+1 more)"]),
        ("post", ["alert 2"]),
        ("edit", ["alert 2 × 3"]),
    ]

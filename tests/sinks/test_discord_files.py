"""The whole log line as a file, over real HTTP against the stand-in: what an embed cannot show goes
with the post as ``<rule>-<time>.log`` (multipart), cut to Discord's 10 MiB per file; a 413 is final."""

from __future__ import annotations

import dataclasses

import aiohttp
import pytest
from tests.discord_standin import DiscordStandIn
from tests.metrics import reported

from tailhook.config import DestinationConfig, WebhookUrl
from tailhook.events import Delivery, Kind, Notification, Severity, Style
from tailhook.sinks import Outcome
from tailhook.sinks.discord import DiscordSink
from tailhook.sinks.discord_files import CUT_MARKER, MAX_FILE_BYTES, MAX_FILES, file_of, message_of
from tailhook.sinks.discord_payload import LIMITS, embed_size

pytestmark = pytest.mark.timeout(60)

TRACEBACK = (
    "Traceback (most recent call last):\n"
    + "".join(
        f'  File "/srv/app/module_{n}.py", line {n}, in handler_{n}\n    result = step_{n}(request, context)\n'
        for n in range(620)
    )
    + "ValueError: the last line, which the embed cannot show"
)


def sink_for(discord: DiscordStandIn, session: aiohttp.ClientSession) -> DiscordSink:
    return DiscordSink(DestinationConfig(name="alerts", urls=(WebhookUrl(discord.url()),)), session=session)


def delivery(line: str, *, title: str = "app crashed", style: Style = Style.FULL) -> Delivery:
    n = Notification(
        kind=Kind.ALERT, rule="app-crash", severity=Severity.ERROR, key="k", title=title, description="",
        line=line, source="app", host="web-1", time=1_790_000_000.0,
    )  # fmt: skip
    return Delivery("alerts", n, style=style)


async def test_a_traceback_longer_than_its_embed_arrives_whole_as_a_file(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    assert 60_000 < len(TRACEBACK) < 70_000
    sink = sink_for(discord, session)
    result = await sink.send([delivery(TRACEBACK)])

    assert result.outcome is Outcome.SENT, result
    (post,) = discord.received
    (file,) = post.files
    assert file.filename == "app-crash-20260921T141320Z.log" and file.content_type.startswith("text/plain")
    assert file.data.decode() == TRACEBACK + "\n"
    assert post.payload["attachments"] == [{"id": 0, "filename": file.filename}]
    (embed,) = post.payload["embeds"]
    assert str(embed["description"]).endswith(f"The whole event is attached: `{file.filename}`.")
    assert len(str(embed["description"])) <= LIMITS.description and "ValueError" not in str(embed["description"])
    assert reported(sink)["tailhook_discord_files_total"] == {(("destination", "alerts"),): 1}


async def test_a_line_the_embed_shows_whole_and_a_compact_mirror_send_no_file(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = sink_for(discord, session)
    assert (await sink.send([delivery("short line")])).outcome is Outcome.SENT
    assert (await sink.send([delivery(TRACEBACK, style=Style.COMPACT)])).outcome is Outcome.SENT
    assert [post.files for post in discord.received] == [(), ()]
    assert all("attachments" not in post.payload for post in discord.received)
    assert all(post.headers["Content-Type"].startswith("application/json") for post in discord.received)


async def test_a_twenty_megabyte_line_arrives_cut_to_ten_mebibytes_with_no_413(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    line = "é" + "x" * (20_000_000 - 2) + "é"
    sink = sink_for(discord, session)
    result = await sink.send([delivery(line)])

    assert result.outcome is Outcome.SENT, result
    (file,) = discord.received[0].files
    assert len(file.data) <= MAX_FILE_BYTES and file.data.endswith(CUT_MARKER.encode())
    text = file.data.decode()  # cut on a character boundary
    assert text.startswith("éxxx") and len(file.data) > MAX_FILE_BYTES - 100
    assert [status for _, _, status in discord.requests] == [200]
    assert reported(sink)["tailhook_discord_files_cut_total"] == {(("destination", "alerts"),): 1}


def test_a_file_is_cut_on_a_character_boundary() -> None:
    for head in range(4):  # a four-byte character across the limit, wherever it falls
        text = "a" * (MAX_FILE_BYTES - len(CUT_MARKER.encode()) - head) + "😀" * 100
        cut = file_of("x.log", text)
        assert cut.cut and len(cut.data) <= MAX_FILE_BYTES
        cut.data.decode()  # whole characters only


async def test_files_that_do_not_fit_ten_mebibytes_together_go_in_messages_of_their_own(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    big = [delivery("y" * 6_000_000, title=f"crash {n}") for n in range(3)]
    sink = sink_for(discord, session)
    assert sink.batch(big) == 1
    assert sink.batch([delivery("short"), delivery("also short"), big[0], big[1]]) == 3
    for n in range(3):
        assert (await sink.send(big[n : n + 1])).outcome is Outcome.SENT
    assert [len(post.files) for post in discord.received] == [1, 1, 1]


async def test_a_file_discord_refuses_as_too_large_is_final(session: aiohttp.ClientSession) -> None:
    async with DiscordStandIn(max_file_bytes=50_000) as discord:  # a stricter server than Discord's own
        result = await sink_for(discord, session).send([delivery(TRACEBACK)])
    assert result.outcome is Outcome.REJECTED
    assert "413" in result.detail and "40005" in result.detail


async def test_an_edit_keeps_the_posts_file_and_its_embed_still_names_it(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = sink_for(discord, session)
    alert = delivery(TRACEBACK)
    result = await sink.send([alert])
    assert result.posted is not None
    update = Delivery("alerts", dataclasses.replace(alert.notification, kind=Kind.UPDATE, line="later: short"))
    assert (await sink.edit(result.posted, [alert, update])).outcome is Outcome.SENT

    (edit,) = discord.edits
    assert "attachments" not in edit.payload and edit.headers["Content-Type"].startswith("application/json")
    message = discord.messages[result.posted.message_id]
    assert [a.filename for a in message.attachments] == ["app-crash-20260921T141320Z.log"]
    first, second = message.embeds
    assert str(first["description"]).endswith("`app-crash-20260921T141320Z.log`.")
    assert "attached" not in str(second["description"])
    assert sum(embed_size(e) for e in message.embeds) <= LIMITS.total


def digest_of(alert: Delivery, excerpt: str) -> Delivery:
    n = dataclasses.replace(
        alert.notification, kind=Kind.DIGEST, count=3, title="app crashed (+3 more)", excerpt=excerpt
    )
    return Delivery("alerts", n)


async def test_an_edit_that_brings_a_digest_adds_its_held_lines_and_keeps_the_messages_files(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = sink_for(discord, session)
    alert = delivery(TRACEBACK)
    posted = (await sink.send([alert])).posted
    assert posted is not None and posted.files is not None and len(posted.files) == 1
    digest = digest_of(delivery("short"), "held 1\nheld 2\nheld 3")
    result = await sink.edit(posted, [alert, digest], fresh=[1])

    assert result.outcome is Outcome.SENT and result.posted is not None
    (edit,) = discord.edits
    (held,) = edit.files
    assert held.filename == "app-crash-20260921T141320Z-held.log" and held.data == b"held 1\nheld 2\nheld 3\n"
    assert edit.payload["attachments"] == [{"id": posted.files[0]}, {"id": 0, "filename": held.filename}]
    message = discord.messages[posted.message_id]
    assert [a.filename for a in message.attachments] == ["app-crash-20260921T141320Z.log", held.filename]
    assert result.posted.files == tuple(a.id for a in message.attachments)
    assert str(message.embeds[1]["description"]).endswith(f"The lines held back are attached: `{held.filename}`.")

    again = await sink.edit(result.posted, [alert, digest], fresh=[0])  # shown again: its file is not sent again
    assert again.outcome is Outcome.SENT and discord.edits[-1].files == ()
    assert len(discord.messages[posted.message_id].attachments) == 2


async def test_an_edit_adds_no_file_to_a_message_whose_files_it_does_not_know(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = sink_for(discord, session)
    alert = delivery(TRACEBACK)
    posted = (await sink.send([alert])).posted
    assert posted is not None
    unknown = dataclasses.replace(posted, files=None)  # a message stored before its files were
    assert (await sink.edit(unknown, [digest_of(alert, "held")], fresh=[0])).outcome is Outcome.SENT
    assert discord.edits[0].files == () and "attachments" not in discord.edits[0].payload
    assert "attached" not in discord.edits[0].payload["embeds"][0]["description"]  # it claims no file
    assert len(discord.messages[posted.message_id].attachments) == 1  # the alert's file stays


async def test_an_edit_whose_updates_outgrow_the_message_is_cut_to_fit(
    discord: DiscordStandIn, session: aiohttp.ClientSession
) -> None:
    sink = sink_for(discord, session)
    alerts = [delivery("q" * 500, title=f"crash {n}") for n in range(10)]
    assert sink.batch(alerts) == 10
    posted = (await sink.send(alerts)).posted
    assert posted is not None
    updates = [
        Delivery("alerts", dataclasses.replace(a.notification, kind=Kind.UPDATE, line="z" * 700)) for a in alerts
    ]
    result = await sink.edit(posted, updates, fresh=range(10))

    assert result.outcome is Outcome.SENT, result
    assert sum(embed_size(e) for e in discord.messages[posted.message_id].embeds) <= LIMITS.total


def test_a_message_takes_files_while_it_has_room_and_names_apart_those_that_share_a_name() -> None:
    digests = [digest_of(delivery("short", title=f"crash {n}"), f"held by {n}") for n in range(3)]
    embeds, files = message_of(digests, send={0, 1, 2}, kept=MAX_FILES - 2, edit=True)  # room for two more

    assert [f.name for f in files] == ["app-crash-20260921T141320Z-held.log", "app-crash-20260921T141320Z-held-2.log"]
    assert [f.data for f in files] == [b"held by 0\n", b"held by 1\n"]
    for embed, file in zip(embeds, files, strict=False):
        assert str(embed["description"]).endswith(f"`{file.name}`.")
    assert "attached" not in str(embeds[2]["description"])  # no room: its embed names no file

    embeds, files = message_of(digests, send={0}, kept=MAX_FILES, edit=True)  # the message's files unknown
    assert files == [] and "attached" not in str(embeds[0]["description"])
    assert str(embeds[1]["description"]).endswith("-held.log`.")  # shown again: its file went before

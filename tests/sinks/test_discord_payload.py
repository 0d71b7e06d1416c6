"""Payloads for Discord's execute-webhook: limits, mentions, escaping.

Every limit is tested at the limit (kept whole) and one past it (cut, with
the marker, still within the limit). "Discord renders" below means the rules
of Discord's Markdown that matter here: a code block runs from ``` to the
next ```, a backslash before punctuation shows the punctuation, and
``<url>`` shows the URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tailhook.events import AUDIT_COLOUR, RECOVERY_COLOUR, AlertField, Kind, Mentions, Notification, Severity, Style
from tailhook.sinks.discord_payload import (
    LIMITS,
    RULE_FIELDS_MAX,
    TRUNCATION_MARKER,
    edit_payload_for,
    embed_for,
    embed_size,
    fits,
    is_snowflake,
    neutralise,
    payload_for,
)

ZWSP = "\u200b"
MARK = TRUNCATION_MARKER
ROLE = "123456789012345678"
USER = "876543210987654321"
WHEN = datetime(2026, 11, 23, 8, 43, 2, 123000, tzinfo=UTC)
OPENAPI = Path("/work/shared/discord/openapi.json")

# What would ping or render as a mention if it reached Discord unbroken.
LIVE_MENTION = re.compile(r"@(everyone|here)|<@[!&]?\d+>|<#\d+>", re.IGNORECASE)
# Discord's code-block rule: from ``` (optional language line) to the next ```.
DISCORD_CODE_BLOCK = re.compile(r"```(?:[a-z0-9_+\-.#]+?\n)?\n*([^\n][\s\S]*?)\n*```")
HOG_LINE = "x" * 10_000


def note(**changes: Any) -> Notification:
    values: dict[str, Any] = {
        "kind": Kind.ALERT,
        "rule": "ssh-bruteforce",
        "severity": Severity.WARNING,
        "key": "203.0.113.9",
        "title": "SSH password failures for root",
        "description": "",
        "line": "Failed password for root from 203.0.113.9 port 22 ssh2",
        "source": "auth",
        "host": "host1",
        "time": WHEN.timestamp(),
        "captures": {"user": "root", "ip": "203.0.113.9"},
    }
    values.update(changes)
    return Notification(**values)


def description(embed: Mapping[str, object]) -> str:
    text = embed.get("description", "")
    assert isinstance(text, str)
    return text


def fields(embed: Mapping[str, object]) -> list[dict[str, Any]]:
    found = embed["fields"]
    assert isinstance(found, list)
    return found


def code_block(embed: Mapping[str, object]) -> str:
    """The content of the description's code block, as Discord delimits it.

    Fails unless the block that opens in the description closes at its very end.
    """
    text = description(embed)
    match = DISCORD_CODE_BLOCK.search(text)
    assert match is not None, text[-200:]
    assert match.end() == len(text), "the code block closed before the end"
    return match.group(1)


def prose(embed: Mapping[str, object]) -> list[str]:
    """Every log-derived text of *embed* that Discord renders as Markdown."""
    text = description(embed)
    texts = [str(embed.get("title", "")), text[: text.find("```")] if "```" in text else text]
    return texts + [field["value"] for field in fields(embed)]


def rendered(text: str) -> str:
    """What Discord shows for neutralised text: escapes and ZWSPs are invisible."""
    text = re.sub(r"<(https?://[^>]+)>", r"\1", text)
    return re.sub(r"\\([^0-9A-Za-z\s])", r"\1", text).replace(ZWSP, "")


def within_embed_limits(embed: Mapping[str, object]) -> None:
    assert len(str(embed.get("title", ""))) <= LIMITS.title
    assert len(description(embed)) <= LIMITS.description
    assert len(fields(embed)) <= LIMITS.fields
    for field in fields(embed):
        assert 0 < len(field["name"]) <= LIMITS.field_name
        assert field["value"].strip()
        assert len(field["value"]) <= LIMITS.field_value
    footer = embed["footer"]
    assert isinstance(footer, dict)
    assert len(footer["text"]) <= LIMITS.footer
    assert embed_size(embed) <= LIMITS.total


# --- LIMITS -------------------------------------------------------------------


def test_limits_are_discords() -> None:
    assert (LIMITS.content, LIMITS.embeds, LIMITS.total, LIMITS.username) == (2000, 10, 6000, 80)
    assert (LIMITS.title, LIMITS.description, LIMITS.footer, LIMITS.author) == (256, 4096, 2048, 256)
    assert (LIMITS.fields, LIMITS.field_name, LIMITS.field_value) == (25, 256, 1024)
    assert len(TRUNCATION_MARKER) == 1
    assert TRUNCATION_MARKER.strip()


# --- embed_for, full style ------------------------------------------------------


def test_full_embed_of_an_alert() -> None:
    embed = embed_for(note(description="From a rule template.", path="/var/log/auth.log"))

    assert embed["color"] == Severity.WARNING.colour == 0xFFCC00
    assert embed["title"] == "SSH password failures for root"
    assert description(embed) == (
        "From a rule template.\n```\nFailed password for root from 203.0.113.9 port 22 ssh2\n```"
    )
    assert fields(embed) == [
        {"name": "user", "value": "root", "inline": True},
        {"name": "ip", "value": "203.0.113.9", "inline": True},
        {"name": "source", "value": "auth \u00b7 /var/log/auth.log", "inline": True},
        {"name": "host", "value": "host1", "inline": True},
    ]
    assert embed["footer"] == {"text": "tailhook \u00b7 ssh-bruteforce \u00b7 warning"}
    assert embed["timestamp"] == "2026-11-23T08:43:02.123000+00:00"


@pytest.mark.parametrize(
    ("severity", "colour"),
    [
        (Severity.CRITICAL, 0xFF0000),
        (Severity.ERROR, 0xFF8800),
        (Severity.WARNING, 0xFFCC00),
        (Severity.INFO, 0x3399FF),
        (Severity.DEBUG, 0x808080),
    ],
)
def test_alert_and_digest_take_the_severity_colour(severity: Severity, colour: int) -> None:
    assert embed_for(note(severity=severity))["color"] == colour
    assert embed_for(note(severity=severity, kind=Kind.DIGEST, count=5))["color"] == colour


def test_recovery_is_green_whatever_the_severity() -> None:
    embed = embed_for(note(kind=Kind.RECOVERY, severity=Severity.CRITICAL, title="recovered: disk full"))
    assert embed["color"] == RECOVERY_COLOUR == 0x00CC66
    assert embed["title"] == "recovered: disk full"


def test_digest_says_how_many_events_it_stands_for() -> None:
    embed = embed_for(note(kind=Kind.DIGEST, count=312, title="312 more SSH password failures"))
    assert embed["title"] == "312 more SSH password failures"
    assert description(embed).startswith("**312** more `ssh-bruteforce` events for key `203.0.113.9`\n```\n")


def test_digest_key_with_backticks_stays_inside_its_code_span() -> None:
    embed = embed_for(note(kind=Kind.DIGEST, count=2, key="a``b`"))
    first_line = description(embed).split("\n", 1)[0]
    assert first_line == f"**2** more `ssh-bruteforce` events for key `` a`{ZWSP}`b` ``"


def test_empty_and_blank_captures_show_a_dash() -> None:
    embed = embed_for(note(captures={"user": "", "ip": "   "}, host=""))
    assert [f["value"] for f in fields(embed)] == ["\u2014", "\u2014", "auth", "\u2014"]


def test_long_field_values_are_not_inline() -> None:
    embed = embed_for(note(captures={"short": "a" * 40, "long": "a" * 41, "lines": "a\nb"}))
    assert [f["inline"] for f in fields(embed)[:3]] == [True, False, False]


def test_log_line_is_verbatim_inside_the_code_block() -> None:
    line = "user=_admin_ *root* [x](y) @here <@&1> # not a header"
    assert code_block(embed_for(note(line=line))) == line


def test_empty_log_line_has_no_code_block() -> None:
    embed = embed_for(note(line="  \n", description="Only text."))
    assert description(embed) == "Only text."


def test_time_that_cannot_be_shown_leaves_the_timestamp_out() -> None:
    assert "timestamp" not in embed_for(note(time=float("nan")))


# --- limits of one embed ----------------------------------------------------------


def test_title_at_the_limit_is_whole() -> None:
    assert embed_for(note(title="t" * 256))["title"] == "t" * 256


def test_title_over_the_limit_is_cut_with_the_marker() -> None:
    title = embed_for(note(title="t" * 257))["title"]
    assert title == "t" * 255 + MARK


def test_title_pushed_over_the_limit_by_escapes_is_cut_without_a_dangling_backslash() -> None:
    title = embed_for(note(title="t" * 254 + "**"))["title"]
    assert isinstance(title, str)
    assert len(title) <= 256
    assert title == "t" * 254 + MARK  # "\*" would not fit whole; half of it is not kept


def test_title_is_one_line() -> None:
    assert embed_for(note(title="disk\nfull\r\non /"))["title"] == "disk full on /"


def test_description_at_the_limit_is_whole() -> None:
    line = "l" * (4096 - len("```\n\n```"))
    embed = embed_for(note(line=line))
    assert description(embed) == f"```\n{line}\n```"
    assert len(description(embed)) == 4096


def test_description_over_the_limit_cuts_the_line_inside_the_block() -> None:
    line = "l" * (4096 - len("```\n\n```") + 1)
    embed = embed_for(note(line=line))
    assert len(description(embed)) == 4096
    assert code_block(embed) == line[: len(line) - 2] + MARK


def test_a_10000_character_line_gives_a_valid_embed_with_a_closed_fence() -> None:
    embed = embed_for(note(line=HOG_LINE, description="Something broke."))
    text = description(embed)
    within_embed_limits(embed)
    assert text.startswith("Something broke.\n```\nxxx")
    assert text.endswith(MARK + "\n```")
    assert text.count("```") == 2
    assert code_block(embed) == "x" * (len(code_block(embed)) - 1) + MARK


def test_long_text_and_long_line_share_the_description() -> None:
    embed = embed_for(note(line=HOG_LINE, description="d" * 5000))
    text = description(embed)
    assert len(text) <= 4096
    prose_part, block = text.split("\n```\n")
    assert prose_part.endswith(MARK) and block.endswith(MARK + "\n```")
    assert abs(len(prose_part) - len(block[: -len("\n```")])) <= 1  # the longest are cut to one length


@pytest.mark.parametrize("line", ["a ``` b ```` c ` d ``", "`" * 10_000, "```\n```", "end`", "``"])
def test_backticks_in_the_log_cannot_close_the_fence(line: str) -> None:
    embed = embed_for(note(line=line))
    content = code_block(embed)  # asserts the block closes at the very end
    assert "``" not in content
    shown = content.replace(ZWSP, "").removesuffix(MARK)
    assert shown == line if len(line) < 4000 else line.startswith(shown)


def test_23_captures_fill_the_25_fields_with_source_and_host() -> None:
    captures = {f"c{i:02}": str(i) for i in range(23)}
    names = [f["name"] for f in fields(embed_for(note(captures=captures)))]
    assert names == [*captures, "source", "host"]


def test_24_captures_keep_source_and_host_and_say_what_is_left_out() -> None:
    captures = {f"c{i:02}": str(i) for i in range(24)}
    found = fields(embed_for(note(captures=captures)))
    assert len(found) == 25
    assert found[22] == {"name": "more captures", "value": "2 not shown: c22, c23", "inline": True}
    assert [f["name"] for f in found[-2:]] == ["source", "host"]


def test_30_captures_give_25_fields() -> None:
    captures = {f"c{i:02}": str(i) for i in range(30)}
    found = fields(embed_for(note(captures=captures)))
    assert len(found) == 25
    assert [f["name"] for f in found[:22]] == list(captures)[:22]
    assert found[22]["value"].startswith("8 not shown: c22, c23")


def test_field_name_at_and_over_the_limit() -> None:
    at, over = "n" * 256, "m" * 257
    found = fields(embed_for(note(captures={at: "1", over: "2"})))
    assert found[0]["name"] == at
    assert found[1]["name"] == "m" * 255 + MARK


def test_field_value_at_and_over_the_limit() -> None:
    found = fields(embed_for(note(captures={"at": "v" * 1024, "over": "w" * 1025})))
    assert found[0]["value"] == "v" * 1024
    assert found[1]["value"] == "w" * 1023 + MARK


def test_footer_at_and_over_the_limit() -> None:
    frame = len("tailhook \u00b7 ") + len(" \u00b7 warning")
    at = embed_for(note(rule="r" * (2048 - frame)))["footer"]
    over = embed_for(note(rule="r" * (2049 - frame)))["footer"]
    assert isinstance(at, dict) and isinstance(over, dict)
    assert len(at["text"]) == 2048 and at["text"].endswith("warning")
    assert len(over["text"]) == 2048 and over["text"].endswith(MARK)


def _captures_of(size: int) -> dict[str, str]:
    return {f"c{i:02}": "v" * size for i in range(20)}


def test_embed_at_the_6000_total_is_whole() -> None:
    base = embed_size(embed_for(note(line="x", captures=_captures_of(90))))
    line = "x" * (6000 - base + 1)
    embed = embed_for(note(line=line, captures=_captures_of(90)))
    assert embed_size(embed) == 6000
    assert code_block(embed) == line
    assert MARK not in json.dumps(embed, ensure_ascii=False)


def test_embed_over_the_6000_total_cuts_the_longest_part_first() -> None:
    base = embed_size(embed_for(note(line="x", captures=_captures_of(90))))
    line = "x" * (6000 - base + 2)
    embed = embed_for(note(line=line, captures=_captures_of(90)))
    assert embed_size(embed) == 6000
    assert code_block(embed) == line[:-2] + MARK
    assert all(f["value"] == "v" * 90 for f in fields(embed)[:20])


def test_long_everything_fits_6000_and_every_limit() -> None:
    hog = note(
        kind=Kind.DIGEST,
        count=10**12,
        rule="r" * 3000,
        key="k" * 3000,
        title="t" * 1000,
        description="d" * 5000,
        line=HOG_LINE,
        source="s" * 2000,
        host="h" * 2000,
        path="p" * 2000,
        captures={f"{i:02}" + "n" * 300: "v" * 2000 for i in range(30)},
    )
    embed = embed_for(hog)
    within_embed_limits(embed)
    assert embed_size(embed) >= 5900  # cut to fit, not cut to nothing
    assert len(fields(embed)) == 25
    assert code_block(embed).endswith(MARK)
    assert all(f["value"].endswith(MARK) for f in fields(embed))


def test_short_values_survive_when_the_rest_is_long() -> None:
    captures = {"ip": "203.0.113.9", **{f"big{i}": "b" * 1024 for i in range(10)}}
    embed = embed_for(note(line=HOG_LINE, description="d" * 3000, captures=captures))
    within_embed_limits(embed)
    assert fields(embed)[0]["value"] == "203.0.113.9"


# --- embed_for, a rule's fields ----------------------------------------------------

RUNBOOK = AlertField("runbook", "https://wiki.example.com/ssh")


def test_rule_fields_follow_source_and_host_and_keep_their_inline() -> None:
    embed = embed_for(note(fields=(RUNBOOK, AlertField("team", "security", inline=True))))
    assert fields(embed)[-3:] == [
        {"name": "host", "value": "host1", "inline": True},
        {"name": "runbook", "value": "<https://wiki.example.com/ssh>", "inline": False},  # short, yet as the rule says
        {"name": "team", "value": "security", "inline": True},
    ]
    within_embed_limits(embed)


def test_a_rule_field_over_the_limits_is_cut_with_the_marker() -> None:
    at, over = AlertField("n" * 256, "v" * 1024), AlertField("m" * 257, "w" * 1025)
    found = fields(embed_for(note(captures={}, fields=(at, over))))[-2:]
    assert [(f["name"], f["value"]) for f in found] == [
        ("n" * 256, "v" * 1024),
        ("m" * 255 + MARK, "w" * 1023 + MARK),
    ]


def test_an_empty_or_multiline_rule_field_is_one_line_or_a_dash() -> None:
    found = fields(embed_for(note(fields=(AlertField("", " "), AlertField("two\nlines", "a\nb")))))[-2:]
    assert [(f["name"], f["value"]) for f in found] == [("\u2014", "\u2014"), ("two lines", "a\nb")]


def test_rule_fields_take_their_room_from_the_captures() -> None:
    captures = {f"c{i:02}": str(i) for i in range(5)}
    extra = tuple(AlertField(f"f{i:02}", str(i)) for i in range(RULE_FIELDS_MAX))
    found = fields(embed_for(note(captures=captures, fields=extra)))
    assert len(found) == LIMITS.fields == RULE_FIELDS_MAX + 3
    assert found[0] == {"name": "more captures", "value": "5 not shown: c00, c01, c02, c03, c04", "inline": True}
    assert [f["name"] for f in found[1:]] == ["source", "host", *(f.name for f in extra)]
    too_many = tuple(AlertField(f"f{i:02}", str(i)) for i in range(40))
    assert len(fields(embed_for(note(fields=too_many)))) == LIMITS.fields


def test_long_rule_fields_fit_the_6000_total_and_every_limit() -> None:
    extra = tuple(AlertField("n" * 300, "v" * 2000) for _ in range(RULE_FIELDS_MAX))
    embed = embed_for(note(line=HOG_LINE, description="d" * 5000, fields=extra))
    within_embed_limits(embed)
    assert embed_size(embed) >= 5900
    assert fields(embed)[-1]["value"].endswith(MARK)


def test_rule_fields_are_neutralised() -> None:
    embed = embed_for(note(fields=(AlertField("@here", MENTIONS_IN_LOGS + " **bold**"),)))
    field = fields(embed)[-1]
    assert not LIVE_MENTION.search(field["name"] + field["value"])
    assert rendered(field["value"]) == MENTIONS_IN_LOGS + " **bold**"


def test_compact_style_leaves_the_rule_fields_out() -> None:
    embed = embed_for(note(fields=(RUNBOOK,)), style=Style.COMPACT)
    assert "fields" not in embed and "wiki" not in description(embed)


# --- embed_for, compact style -----------------------------------------------------


def test_compact_is_one_white_line() -> None:
    embed = embed_for(note(), style=Style.COMPACT)
    assert embed == {
        "color": AUDIT_COLOUR,
        "description": "`warning` **ssh-bruteforce** SSH password failures for root \u2014 host1/auth",
        "timestamp": "2026-11-23T08:43:02.123000+00:00",
    }
    assert AUDIT_COLOUR == 0xFFFFFF


def test_compact_digest_counts_and_multiline_title_is_one_line() -> None:
    embed = embed_for(note(kind=Kind.DIGEST, count=312, title="many\nfailures"), style=Style.COMPACT)
    assert description(embed) == "`warning` **ssh-bruteforce** many failures (312 events) \u2014 host1/auth"


def test_compact_long_title_is_cut_and_keeps_where() -> None:
    embed = embed_for(note(title="t" * 10_000), style=Style.COMPACT)
    text = description(embed)
    assert len(text) == 4096
    assert "\n" not in text
    assert text.endswith(MARK + " \u2014 host1/auth")


def test_compact_neutralises_log_text() -> None:
    embed = embed_for(note(title="**fake** @everyone <@&1>", host="h_1"), style=Style.COMPACT)
    assert not LIVE_MENTION.search(description(embed))
    assert description(embed).startswith("`warning` **ssh-bruteforce** \\*\\*fake\\*\\* @")
    assert description(embed).endswith("h\\_1/auth")


# --- mentions ------------------------------------------------------------------


MENTIONS_IN_LOGS = f"@everyone @here <@&{ROLE}> <@{USER}> <@!{USER}> <#{ROLE}>"


def test_mentions_in_log_text_ping_nobody_and_render_as_text() -> None:
    embed = embed_for(
        note(
            title=f"login by {MENTIONS_IN_LOGS}",
            description=MENTIONS_IN_LOGS,
            line=MENTIONS_IN_LOGS,
            captures={"user": MENTIONS_IN_LOGS},
            host="@here",
            source="<@&1>",
        )
    )
    payload = payload_for([embed])

    assert payload["allowed_mentions"] == {"parse": []}
    assert "content" not in payload
    for text in prose(embed):
        assert not LIVE_MENTION.search(text), text
    assert code_block(embed) == MENTIONS_IN_LOGS  # inside code, mentions never render


def test_without_mentions_allowed_mentions_is_still_sent() -> None:
    payload = payload_for([embed_for(note())])
    assert payload == {"embeds": [embed_for(note())], "allowed_mentions": {"parse": []}}


def test_configured_mentions_ping_exactly_those() -> None:
    embed = embed_for(note(line=MENTIONS_IN_LOGS))
    payload = payload_for([embed], mentions=Mentions(roles=(ROLE,), users=(USER,), everyone=True))
    assert payload["content"] == f"<@&{ROLE}> <@{USER}> @everyone"
    assert payload["allowed_mentions"] == {"parse": ["everyone"], "roles": [ROLE], "users": [USER]}


def test_configured_role_alone_does_not_allow_everyone() -> None:
    payload = payload_for([embed_for(note())], mentions=Mentions(roles=(ROLE, ROLE)))
    assert payload["content"] == f"<@&{ROLE}>"
    assert payload["allowed_mentions"] == {"parse": [], "roles": [ROLE], "users": []}


def test_mention_ids_must_be_snowflakes() -> None:
    with pytest.raises(ValueError, match="snowflake"):
        payload_for([embed_for(note())], mentions=Mentions(users=("<@123>",)))


def test_mention_ids_at_and_over_100() -> None:
    hundred = tuple(str(i) for i in range(1, 101))
    payload = payload_for([embed_for(note())], mentions=Mentions(roles=hundred))
    assert payload["allowed_mentions"] == {"parse": [], "roles": list(hundred), "users": []}
    with pytest.raises(ValueError, match="at most 100"):
        payload_for([embed_for(note())], mentions=Mentions(roles=(*hundred, "101")))


def test_content_at_and_over_2000() -> None:
    roles = tuple(str(10**16 + i) for i in range(90))  # 90 x "<@&17 digits>" + spaces = 1979
    at = payload_for([embed_for(note())], mentions=Mentions(roles=roles, users=(str(10**16),)))
    assert len(str(at["content"])) == 2000
    with pytest.raises(ValueError, match="2000"):
        payload_for([embed_for(note())], mentions=Mentions(roles=roles, users=(str(10**17),)))


# --- payload_for: the message -------------------------------------------------------


def test_ten_embeds_fit_and_eleven_do_not() -> None:
    ten = [embed_for(note(), style=Style.COMPACT)] * 10
    assert fits(ten) and not fits([*ten, ten[0]])
    assert len(payload_for(ten)["embeds"]) == 10  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most 10"):
        payload_for([*ten, ten[0]])


def test_6000_across_embeds_fits_and_6001_does_not() -> None:
    half, more = {"description": "x" * 3000}, {"description": "x" * 3001}
    assert fits([half, half])
    assert payload_for([half, half])["embeds"] == [half, half]
    assert not fits([half, more])
    with pytest.raises(ValueError, match="6000"):
        payload_for([half, more])


def test_no_embeds_is_refused() -> None:
    assert fits([])
    with pytest.raises(ValueError, match="at least one embed"):
        payload_for([])


# --- edit_payload_for: an edit of a posted message -------------------------------


def test_an_edit_carries_the_embeds_and_pings_no_one() -> None:
    embeds = [embed_for(note(title="@everyone <@&123456789012345678> again"))]
    assert edit_payload_for(embeds) == {"embeds": embeds, "allowed_mentions": {"parse": []}}


def test_an_edit_is_held_to_the_same_limits_as_a_post() -> None:
    ten = [embed_for(note(), style=Style.COMPACT)] * 10
    assert len(edit_payload_for(ten)["embeds"]) == 10  # type: ignore[arg-type]
    for embeds, error in (
        ([*ten, ten[0]], "at most 10"),
        ([{"description": "x" * 6001}], "6000"),
        ([], "at least one"),
    ):
        with pytest.raises(ValueError, match=error):
            edit_payload_for(embeds)


def test_snowflakes() -> None:
    assert is_snowflake("0") and is_snowflake("112233445566778899")
    for text in ("", "01", "12a", "-1", " 1", "1/../2"):
        assert not is_snowflake(text)


def test_embed_size_counts_what_discord_counts() -> None:
    embed = {
        "title": "t" * 3,
        "description": "d" * 5,
        "url": "https://not.counted.example",
        "fields": [{"name": "n" * 7, "value": "v" * 11, "inline": True}],
        "footer": {"text": "f" * 13, "icon_url": "https://not.counted.example"},
        "author": {"name": "a" * 17, "url": "https://not.counted.example"},
        "color": 1,
        "timestamp": "2026-11-23T08:43:02+00:00",
    }
    assert embed_size(embed) == 3 + 5 + 7 + 11 + 13 + 17
    assert embed_size({"title": "\U0001f525" * 4}) == 4  # code points, as Discord counts


def test_payload_options() -> None:
    payload = payload_for(
        [embed_for(note())],
        username="tailhook",
        avatar_url="https://example.com/a.png",
        thread_name="alerts",
        suppress_notifications=True,
    )
    assert payload["username"] == "tailhook"
    assert payload["avatar_url"] == "https://example.com/a.png"
    assert payload["thread_name"] == "alerts"
    assert payload["flags"] == 4096


def test_empty_options_are_left_out() -> None:
    payload = payload_for([embed_for(note())], username="  ", avatar_url="", thread_name="")
    assert set(payload) == {"embeds", "allowed_mentions"}


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("Discord alerts", "D1scord alerts"),
        ("tailhook-DISCORD-bot", "tailhook-D1SCORD-bot"),
        ("Clyde", "C1yde"),
        ("u" * 80, "u" * 80),
        ("u" * 81, "u" * 79 + MARK),
    ],
)
def test_username_is_one_discord_accepts(given: str, sent: str) -> None:
    assert payload_for([embed_for(note())], username=given)["username"] == sent


@pytest.mark.parametrize("name", ["everyone", "Here"])
def test_username_discord_refuses_outright_is_left_out(name: str) -> None:
    assert "username" not in payload_for([embed_for(note())], username=name)


def test_thread_name_at_and_over_100() -> None:
    assert payload_for([embed_for(note())], thread_name="n" * 100)["thread_name"] == "n" * 100
    assert payload_for([embed_for(note())], thread_name="n" * 101)["thread_name"] == "n" * 99 + MARK


def test_avatar_url_over_2048_is_refused() -> None:
    url = "https://example.com/" + "a" * (2048 - len("https://example.com/"))
    assert payload_for([embed_for(note())], avatar_url=url)["avatar_url"] == url
    with pytest.raises(ValueError, match="2048"):
        payload_for([embed_for(note())], avatar_url=url + "a")


# --- neutralise -------------------------------------------------------------------


def test_neutralise_breaks_mass_mentions() -> None:
    assert neutralise("@everyone and @here") == f"@{ZWSP}everyone and @{ZWSP}here"
    assert neutralise("@Everyone") == f"@{ZWSP}Everyone"


@pytest.mark.parametrize(
    "tag",
    [f"<@{USER}>", f"<@!{USER}>", f"<@&{ROLE}>", f"<#{ROLE}>", "</deploy:1>", "<t:1700000000:R>", "<:ok:1>"],
)
def test_neutralise_breaks_mention_and_tag_syntax(tag: str) -> None:
    broken = neutralise(tag)
    assert broken.startswith("<" + ZWSP)
    assert not LIVE_MENTION.search(broken)
    assert rendered(broken) == tag


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("**bold** __u__ ~~s~~", "\\*\\*bold\\*\\* \\_\\_u\\_\\_ \\~\\~s\\~\\~"),
        ("||spoiler||", "\\|\\|spoiler\\|\\|"),
        ("`code`", "\\`code\\`"),
        ("# header", "\\# header"),
        ("> quote", "\\> quote"),
        ("-# subtext", "-\\# subtext"),
        ("203.0.113.9 -5 +1", "203.0.113.9 -5 +1"),
        ("- item\n+ item\n  12. item", "\\- item\n\\+ item\n  12\\. item"),
        ("2026-11-23 a-b 1.5", "2026-11-23 a-b 1.5"),
        ("C:\\temp\\*", "C:\\\\temp\\\\\\*"),
        ("[Click me](https://evil.example/x)", "\\[Click me\\]\\(<https://evil.example/x>\\)"),
        ("see https://ex.com/a_b?q=1*2.", "see <https://ex.com/a_b?q=1*2>."),
        ("https://x.y/a```b", "<https://x.y/a>\\`\\`\\`b"),
    ],
)
def test_neutralise_escapes_markdown(text: str, escaped: str) -> None:
    assert neutralise(text) == escaped


@pytest.mark.parametrize(
    "text",
    [
        "Failed password for **root** from [10.0.0.1](http://x.y) @everyone <@&1>",
        "# big\n> quoted\n- list\n1. one\n```\ncode\n```",
        "a\\*b \\ c ~ | _ ( ) [ ] <#5> @here https://example.com/path_(1)",
    ],
)
def test_neutralised_text_still_reads_as_logged(text: str) -> None:
    assert rendered(neutralise(text)) == text


def test_title_and_captures_are_neutralised() -> None:
    embed = embed_for(note(title="**URGENT** @everyone", captures={"user": "[admin](https://e.x)"}))
    assert embed["title"] == f"\\*\\*URGENT\\*\\* @{ZWSP}everyone"
    assert fields(embed)[0]["value"] == "\\[admin\\]\\(<https://e.x>\\)"


# --- against Discord's OpenAPI description -----------------------------------------


def _resolve(root: Mapping[str, Any], ref: str) -> Mapping[str, Any]:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node  # type: ignore[no-any-return]


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _type_ok(value: object, names: str | list[str]) -> bool:
    names = [names] if isinstance(names, str) else names
    for name in names:
        if name in ("integer", "number") and isinstance(value, bool):
            continue
        if isinstance(value, _JSON_TYPES[name]):
            return True
    return False


def schema_errors(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any], path: str = "$") -> list[str]:
    """What in *value* breaks *schema*: the keywords Discord's webhook schemas use.

    Stricter than JSON Schema in one way: a key the schema does not name is an
    error, so a misspelt key (``colour``) is caught.
    """
    if "$ref" in schema:
        return schema_errors(value, _resolve(root, schema["$ref"]), root, path)
    errors: list[str] = []
    if "oneOf" in schema:
        matching = [not schema_errors(value, option, root, path) for option in schema["oneOf"]]
        if sum(matching) != 1:
            errors.append(f"{path}: matches {sum(matching)} of oneOf")
    if "type" in schema and not _type_ok(value, schema["type"]):
        return [*errors, f"{path}: {type(value).__name__} is not {schema['type']}"]
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: {value!r} is not {schema['const']!r}")
    if isinstance(value, str):
        errors += _string_errors(value, schema, path)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and not schema.get("minimum", value) <= value <= schema.get("maximum", value):
        errors.append(f"{path}: {value} out of range")
    if isinstance(value, list):
        errors += _array_errors(value, schema, root, path)
    if isinstance(value, dict) and "properties" in schema:
        errors += _object_errors(value, schema, root, path)
    return errors


def _string_errors(value: str, schema: Mapping[str, Any], path: str) -> list[str]:
    errors = []
    if len(value) > schema.get("maxLength", len(value)):
        errors.append(f"{path}: longer than {schema['maxLength']}")
    if len(value) < schema.get("minLength", 0):
        errors.append(f"{path}: shorter than {schema['minLength']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: does not match {schema['pattern']}")
    if schema.get("format") == "date-time":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            errors.append(f"{path}: not a date-time")
    return errors


def _array_errors(value: list[Any], schema: Mapping[str, Any], root: Mapping[str, Any], path: str) -> list[str]:
    errors = []
    if len(value) > schema.get("maxItems", len(value)):
        errors.append(f"{path}: more than {schema['maxItems']} items")
    if schema.get("uniqueItems") and len({json.dumps(item) for item in value}) != len(value):
        errors.append(f"{path}: items not unique")
    for index, item in enumerate(value):
        errors += schema_errors(item, schema.get("items", {}), root, f"{path}[{index}]")
    return errors


def _object_errors(value: dict[str, Any], schema: Mapping[str, Any], root: Mapping[str, Any], path: str) -> list[str]:
    properties = schema["properties"]
    errors = [f"{path}: missing {key}" for key in schema.get("required", []) if key not in value]
    errors += [f"{path}: unknown key {key}" for key in value if key not in properties]
    for key, item in value.items():
        if key in properties:
            errors += schema_errors(item, properties[key], root, f"{path}.{key}")
    return errors


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    if not OPENAPI.exists():
        pytest.skip(f"{OPENAPI} is not here")
    spec: dict[str, Any] = json.loads(OPENAPI.read_text(encoding="utf-8"))
    return spec


def webhook_errors(payload: Mapping[str, object], spec: Mapping[str, Any]) -> list[str]:
    schema = spec["components"]["schemas"]["IncomingWebhookRequestPartial"]
    return schema_errors(payload, schema, spec)


def _sample_payloads() -> dict[str, dict[str, object]]:
    hog = note(
        kind=Kind.DIGEST,
        count=99,
        title="t" * 1000,
        description="d" * 5000,
        line=HOG_LINE + "```",
        host="h" * 2000,
        captures={f"c{i}" + "n" * 300: MENTIONS_IN_LOGS * 50 for i in range(30)},
    )
    pings = Mentions(roles=(ROLE,), users=(USER,), everyone=True)
    return {
        "alert": payload_for([embed_for(note(path="/var/log/auth.log"))]),
        "alert with everything": payload_for(
            [embed_for(note(kind=Kind.RECOVERY))],
            mentions=pings,
            username="Discord " * 20,
            avatar_url="https://example.com/a.png",
            thread_name="x" * 500,
            suppress_notifications=True,
        ),
        "long everything": payload_for([embed_for(hog)]),
        "ten compact": payload_for([embed_for(note(title="t" * 500), style=Style.COMPACT)] * 10),
        "log mentions": payload_for([embed_for(note(title=MENTIONS_IN_LOGS, line=MENTIONS_IN_LOGS))]),
        "rule fields": payload_for(
            [embed_for(note(fields=tuple(AlertField("n" * 300, "v" * 2000, i % 2 == 0) for i in range(30))))]
        ),
    }


@pytest.mark.parametrize("name", list(_sample_payloads()))
def test_payloads_match_discords_schema(openapi: dict[str, Any], name: str) -> None:
    assert webhook_errors(_sample_payloads()[name], openapi) == []


def test_edits_match_discords_schema(openapi: dict[str, Any]) -> None:
    schema = openapi["components"]["schemas"]["IncomingWebhookUpdateRequestPartial"]
    for payload in _sample_payloads().values():
        edit = edit_payload_for(payload["embeds"])  # type: ignore[arg-type]
        assert schema_errors(edit, schema, openapi) == []
    assert schema_errors({"username": "ops"}, schema, openapi)  # what the edit route does not take is caught


def test_schema_check_catches_what_discord_would_refuse(openapi: dict[str, Any]) -> None:
    good = payload_for([embed_for(note())])
    embed = dict(good["embeds"][0])  # type: ignore[index]
    bad_embeds = [{**embed, "title": "t" * 257}, {**embed, "colour": 1}, {**embed, "fields": [{"name": "n"}] * 26}]
    for bad in bad_embeds:
        assert webhook_errors({**good, "embeds": [bad]}, openapi)
    assert webhook_errors({**good, "username": "u" * 81}, openapi)
    assert webhook_errors({**good, "allowed_mentions": {"parse": ["all"]}}, openapi)
    assert webhook_errors({**good, "allowed_mentions": {"roles": ["<@&1>"]}}, openapi)

"""Rules: matching, exclusion, per-source rules and template rendering."""

from __future__ import annotations

import pytest

from tailhook.config import FieldConfig, RuleConfig
from tailhook.events import AlertField, Line, Notification, Severity
from tailhook.rules import RuleSet, required_literal


def rule(name: str, match: str, **kwargs: object) -> RuleConfig:
    return RuleConfig(name=name, file="rules.yaml", line=1, match=match, **kwargs)  # type: ignore[arg-type]


def line(text: str, source: str = "auth", **fields: str) -> Line:
    return Line(text=text, source=source, time=1.0, path="/var/log/auth.log", fields=fields)


SSH = rule(
    "ssh",
    r"Failed password for (invalid user )?(?P<user>\S+) from (?P<ip>\S+)",
    severity=Severity.WARNING,
    exclude=r"from 10\.",
    key="{ip}",
    title="SSH failures for {user} on {host}",
    description="{source}:{path} said: {line}",
)


def test_a_match_renders_every_template() -> None:
    (event,) = RuleSet([SSH], host="web-1").match(line("sshd[1]: Failed password for root from 203.0.113.9 port 22"))

    assert event.rule == "ssh"
    assert event.severity is Severity.WARNING
    assert event.key == "203.0.113.9"
    assert event.title == "SSH failures for root on web-1"
    assert event.description == (
        "auth:/var/log/auth.log said: sshd[1]: Failed password for root from 203.0.113.9 port 22"
    )
    assert event.captures == {"user": "root", "ip": "203.0.113.9"}


def test_exclude_and_no_match_produce_nothing() -> None:
    rules = RuleSet([SSH], host="h")
    assert rules.match(line("Failed password for root from 10.0.0.5 port 22")) == []
    assert rules.match(line("Accepted password for root from 203.0.113.9 port 22")) == []


def test_rules_apply_only_to_their_sources_and_all_matching_rules_fire() -> None:
    everywhere = rule("any-failure", r"Failed (?P<what>\w+)")
    only_journal = rule("journal-only", r"Failed", sources=("journal",))
    rules = RuleSet([SSH, everywhere, only_journal], host="h")

    assert [e.rule for e in rules.match(line("Failed password for bob from 1.2.3.4"))] == ["ssh", "any-failure"]
    assert [e.rule for e in rules.match(line("Failed units", source="journal"))] == ["any-failure", "journal-only"]


def test_defaults_unmatched_groups_and_source_fields() -> None:
    config = rule("unit", r"(?P<unit_name>\S+\.service) failed(?: with (?P<why>.+))?", title="{unit_name}: {why}")
    (event,) = RuleSet([config], host="h").match(line("nginx.service failed", source="journal", unit="nginx.service"))
    assert event.key == "unit"  # the rule name when no key template is given
    assert event.title == "nginx.service: "  # an optional group that did not take part renders empty
    bare = rule("bare", r"panic", description="{unit} pid {pid}")
    (event,) = RuleSet([bare], host="h").match(line("kernel panic", unit="kernel.service", pid="1"))
    assert (event.title, event.description) == ("bare", "kernel.service pid 1")


def test_template_braces_in_log_text_are_not_interpreted() -> None:
    config = rule("json", r"error (?P<body>.*)", title="got {body}")
    (event,) = RuleSet([config], host="h").match(line('error {"a": "{line}"}'))
    assert event.title == 'got {"a": "{line}"}'


def test_a_disabled_rule_is_left_out_so_it_never_matches() -> None:
    off = rule("ssh-off", SSH.match, enabled=False)
    rules = RuleSet([off, SSH], host="h")

    assert [r.name for r in rules.rules] == ["ssh"]
    assert [r.name for r in rules.for_source("auth").rules] == ["ssh"]  # the engine never sees it
    assert [e.rule for e in rules.match(line("Failed password for root from 203.0.113.9"))] == ["ssh"]
    assert len(RuleSet([off], host="h")) == 0


def test_fields_are_rendered_with_the_match_and_carried_by_the_alert() -> None:
    config = rule(
        "ssh",
        SSH.match + r"(?: port (?P<port>\d+))?",
        fields=(
            FieldConfig("runbook", "https://wiki.example.com/{rule}?ip={ip}"),
            FieldConfig("{user} on {host}", "port {port}, {severity}", inline=True),
        ),
    )
    (event,) = RuleSet([config], host="web-1").match(line("Failed password for {line} from 203.0.113.9"))

    assert event.fields == (
        AlertField("runbook", "https://wiki.example.com/ssh?ip=203.0.113.9", False),
        AlertField("{line} on web-1", "port , warning", True),  # log text is not a template; no port: empty
    )
    assert Notification.alert(event, host="web-1").fields == event.fields


def test_a_rule_without_fields_renders_none() -> None:
    (event,) = RuleSet([SSH], host="h").match(line("Failed password for root from 203.0.113.9"))
    assert event.fields == ()


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [
        (r"(?P<process>[\w.-]+)\[(?P<pid>\d+)\]: segfault at", "]: segfault at"),
        (r"Failed password for (?:invalid user )?(?P<user>\S+) from", "Failed password for "),
        (r"(?:abc)+x", "abc"),
        (r"(?:abcd)*x", "x"),
        (r"(?i)error", ""),
        (r"x(?i:HELLO)y", "x"),
        (r"warn|error", ""),
        (r"\d+ errors?", " error"),
    ],
)
def test_required_literal(pattern: str, literal: str) -> None:
    assert required_literal(pattern) == literal

"""Routes, and the rules whose `to:` and `mention:` override them."""

from __future__ import annotations

from dataclasses import replace

from tailhook.config import RouteConfig, RuleConfig
from tailhook.events import Kind, Mentions, Notification, Severity, Style
from tailhook.routes import Router

ONCALL = Mentions(roles=("111111111111111111",))
SECURITY = Mentions(users=("222222222222222222",))
ROUTES = (
    RouteConfig(to=("alerts",), severities=frozenset({Severity.CRITICAL}), mentions=ONCALL, continue_=True),
    RouteConfig(to=("alerts",), severities=frozenset({Severity.ERROR})),
    RouteConfig(to=("audit",), style=Style.COMPACT),
)


def note(rule: str = "ssh", severity: Severity = Severity.CRITICAL, kind: Kind = Kind.ALERT) -> Notification:
    return Notification(
        kind=kind, rule=rule, severity=severity, key="k", title="t", description="", line="l", source="auth",
        host="h", time=1.0,
    )  # fmt: skip


def rule(name: str = "ssh", **overrides: object) -> RuleConfig:
    return RuleConfig(name=name, file="r.yaml", line=1, match="x", **overrides)  # type: ignore[arg-type]


def routed(router: Router, n: Notification) -> list[tuple[str, Style, Mentions]]:
    return [(d.destination, d.style, d.mentions) for d in router.deliveries(n)]


def test_routes_alone_first_match_wins_unless_continue() -> None:
    router = Router(ROUTES)
    assert routed(router, note()) == [("alerts", Style.FULL, ONCALL), ("audit", Style.COMPACT, Mentions())]
    assert routed(router, note(severity=Severity.ERROR)) == [("alerts", Style.FULL, Mentions())]
    assert routed(router, note(severity=Severity.INFO)) == [("audit", Style.COMPACT, Mentions())]


def test_a_rule_with_to_goes_to_exactly_those_in_full_style() -> None:
    router = Router(ROUTES, rules=[rule(to=("security", "audit"))])
    expected = [("security", Style.FULL, Mentions()), ("audit", Style.FULL, Mentions())]
    assert routed(router, note()) == expected  # not the routes' pings, not their compact style
    assert routed(router, note(severity=Severity.DEBUG)) == expected  # no route needed
    assert routed(router, note(kind=Kind.DIGEST)) == expected  # a digest carries the rule's name
    assert routed(router, note(rule="other")) == routed(Router(ROUTES), note(rule="other"))


def test_a_rule_with_mention_pings_those_in_every_delivery() -> None:
    router = Router(ROUTES, rules=[rule(mentions=SECURITY), rule("targeted", to=("security",), mentions=SECURITY)])
    assert routed(router, note()) == [("alerts", Style.FULL, SECURITY), ("audit", Style.COMPACT, SECURITY)]
    assert routed(router, note(severity=Severity.INFO)) == [("audit", Style.COMPACT, SECURITY)]
    assert routed(router, note(rule="targeted")) == [("security", Style.FULL, SECURITY)]


def test_an_empty_mention_silences_the_routes_pings() -> None:
    router = Router(ROUTES, rules=[rule(mentions=Mentions())])
    assert [mentions for _, _, mentions in routed(router, note())] == [Mentions(), Mentions()]


def test_a_rule_that_overrides_nothing_is_routed_as_before() -> None:
    plain = rule(enabled=False)
    assert routed(Router(ROUTES, rules=[plain]), note()) == routed(Router(ROUTES), note())


def test_the_delivered_notification_is_the_one_given() -> None:
    n = replace(note(), title="exactly this")
    (delivery,) = Router((), rules=[rule(to=("security",))]).deliveries(n)
    assert delivery.notification is n

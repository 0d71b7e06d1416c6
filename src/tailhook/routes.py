"""Routes: which destinations a notification goes to, with what style and pings.

Routes are tried in order; the first that matches wins unless it says
``continue: true``, in which case later routes are tried as well. A rule may
override them for its own notifications (alerts and digests alike, which carry
its name): with ``to:``, they go to exactly those destinations, in full style,
and the routes are not consulted; with ``mention:``, every delivery made for
them pings those (and only those), whether ``to:`` or a route made it. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable

from tailhook.config import RouteConfig, RuleConfig
from tailhook.events import Delivery, Mentions, Notification, Style

__all__ = ["Router", "matches_route"]


class Router:
    """*routes* in order; *rules*: the rules whose ``to:`` or ``mention:`` override them."""

    def __init__(self, routes: Iterable[RouteConfig], *, rules: Iterable[RuleConfig] = ()) -> None:
        self.routes = tuple(routes)
        self._overrides = {rule.name: rule for rule in rules if rule.to is not None or rule.mentions is not None}
        """Only the rules that override something: a rule looked up by name, once per notification."""

    def deliveries(self, notification: Notification) -> list[Delivery]:
        """One delivery per destination the notification is routed to."""
        rule = self._overrides.get(notification.rule)
        if rule is not None and rule.to is not None:
            mentions = rule.mentions or Mentions()
            return [Delivery(name, notification, Style.FULL, mentions) for name in rule.to]
        out = self._routed(notification)
        if rule is not None and rule.mentions is not None:
            mentions = rule.mentions
            out = [Delivery(d.destination, d.notification, d.style, mentions) for d in out]
        return out

    def _routed(self, notification: Notification) -> list[Delivery]:
        out: list[Delivery] = []
        for route in self.routes:
            if not matches_route(route, notification):
                continue
            out.extend(
                Delivery(destination=name, notification=notification, style=route.style, mentions=route.mentions)
                for name in route.to
            )
            if not route.continue_:
                break
        return out


def matches_route(route: RouteConfig, n: Notification) -> bool:
    """Whether *route*'s filters (severities, rules, sources, hosts, namespaces) take *n*."""
    return (
        (route.severities is None or n.severity in route.severities)
        and (route.rules is None or n.rule in route.rules)
        and (route.sources is None or n.source in route.sources)
        and (route.hosts is None or n.host in route.hosts)
        and (route.namespaces is None or n.origin.get("namespace") in route.namespaces)
    )

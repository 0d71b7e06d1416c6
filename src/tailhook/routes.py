"""Routes: which destinations a notification goes to, with what style and pings.

Routes are tried in order; the first that matches wins unless it says
``continue: true``, in which case later routes are tried as well. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable

from tailhook.config import RouteConfig
from tailhook.events import Delivery, Notification

__all__ = ["Router"]


class Router:
    def __init__(self, routes: Iterable[RouteConfig]) -> None:
        self.routes = tuple(routes)

    def deliveries(self, notification: Notification) -> list[Delivery]:
        """One delivery per destination the notification is routed to."""
        out: list[Delivery] = []
        for route in self.routes:
            if not _matches(route, notification):
                continue
            out.extend(
                Delivery(destination=name, notification=notification, style=route.style, mentions=route.mentions)
                for name in route.to
            )
            if not route.continue_:
                break
        return out


def _matches(route: RouteConfig, n: Notification) -> bool:
    return (
        (route.severities is None or n.severity in route.severities)
        and (route.rules is None or n.rule in route.rules)
        and (route.sources is None or n.source in route.sources)
        and (route.hosts is None or n.host in route.hosts)
    )

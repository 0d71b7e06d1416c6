"""Where an alert came from: tailhook's place from the environment or the config, a container's from
its log's path, in templates, routes and every embed's footer."""

from __future__ import annotations

from pathlib import Path

from tailhook.config import RouteConfig, load_config
from tailhook.events import Kind, Notification, Severity
from tailhook.origin import from_environment, origin_of, pod_of_path
from tailhook.routes import matches_route
from tests.daemon import Daemon, write_config
from tests.discord_standin import standin_in_thread

UID = "0b5ae0c4-6d0e-4b7a-9a3e-52a1f0a7c3d1"
CONTAINER_ID = "a" * 64


def test_a_container_logs_path_names_its_namespace_pod_and_container() -> None:
    pods = f"/var/log/pods/shop_web-7f9c_{UID}/app/0.log"
    assert dict(pod_of_path(pods) or {}) == {"namespace": "shop", "pod": "web-7f9c", "container": "app"}
    assert dict(pod_of_path(pods + ".20261130-050000.gz") or {}) == dict(pod_of_path(pods) or {})
    containers = f"/var/log/containers/web-7f9c_shop_app-sidecar-{CONTAINER_ID}.log"
    assert dict(pod_of_path(containers) or {}) == {"namespace": "shop", "pod": "web-7f9c", "container": "app-sidecar"}
    assert pod_of_path("/var/log/syslog") is None
    assert pod_of_path("/var/log/containers/not-a-container.log") is None
    identity = {"cluster": "prod", "node": "n-1", "namespace": "monitoring", "pod": "tailhook-x"}
    assert origin_of("/var/log/syslog", identity) is identity
    assert dict(origin_of(pods, identity)) == {
        "cluster": "prod", "node": "n-1", "namespace": "shop", "pod": "web-7f9c", "container": "app"
    }  # fmt: skip


def test_tailhooks_own_place_comes_from_the_downward_api_or_the_config(tmp_path: Path) -> None:
    environ = {"NODE_NAME": "n-1", "POD_NAMESPACE": "monitoring", "POD_NAME": "tailhook-x", "TAILHOOK_CLUSTER": ""}
    assert from_environment(environ) == {"node": "n-1", "namespace": "monitoring", "pod": "tailhook-x"}
    (tmp_path / "rules.yaml").write_text("rules:\n  - {name: r, match: 'x', title: '{cluster}/{namespace}/{pod}'}\n")
    config = tmp_path / "tailhook.yaml"
    config.write_text(
        "state_dir: state\nsources: [{name: app, paths: [app.log]}]\nrules: {paths: [rules.yaml]}\n"
        "identity: {cluster: prod-eu, container: tailhook}\n"
        "destinations: {team: {url: 'https://discord.com/api/webhooks/1/t'}}\n"
        "routes: [{namespaces: [shop, payments], to: [team]}]\n"
    )
    loaded = load_config(config)
    assert loaded.identity == {"cluster": "prod-eu", "container": "tailhook"}
    assert loaded.routes[0].namespaces == frozenset({"shop", "payments"})


def test_a_route_by_namespace_takes_alerts_from_that_namespace_only() -> None:
    route = RouteConfig(to=("shop-team",), namespaces=frozenset({"shop"}))

    def alert(origin: dict[str, str]) -> Notification:
        return Notification(
            kind=Kind.ALERT, rule="r", severity=Severity.ERROR, key="k", title="t", description="", line="l",
            source="s", host="h", time=0.0, origin=origin,
        )  # fmt: skip

    assert matches_route(route, alert({"namespace": "shop", "pod": "web-1"}))
    assert not matches_route(route, alert({"namespace": "payments"}))
    assert not matches_route(route, alert({}))  # no namespace known: not this route's


def test_alerts_from_the_daemon_say_where_they_came_from(tmp_path: Path) -> None:
    pods = tmp_path / "var" / "log" / "pods" / f"shop_web-7f9c_{UID}" / "app"
    pods.mkdir(parents=True)
    (pods / "0.log").touch()
    extra = (
        "identity: {cluster: prod-eu}\n"
        f"sources:\n  - {{name: app, paths: [app.log], start_at: beginning}}\n"
        f"  - {{name: pods, paths: ['{tmp_path}/var/log/pods/*/*/*.log'], format: cri, start_at: beginning}}\n"
    )
    with standin_in_thread() as discord:
        config = write_config(tmp_path, url=discord.url())
        text = config.read_text().replace("sources:\n  - {name: app, paths: [app.log], start_at: beginning}\n", "")
        config.write_text(text + extra)
        env = {"NODE_NAME": "n-1", "POD_NAMESPACE": "monitoring", "POD_NAME": "tailhook-x"}
        daemon = Daemon(config, env=env).started()
        try:
            daemon.append("LOUD from the host's own log")
            with (pods / "0.log").open("a") as log:
                log.write("2026-11-30T05:00:00.000000000Z stderr F LOUD from the shop\n")
            embeds = discord.wait_for_embeds(2, timeout=30)
        finally:
            assert daemon.stop() == 0
    footers = {embed["title"]: embed["footer"]["text"] for embed in embeds}
    assert footers == {
        "loud: from the host's own log":
            "tailhook · anything-loud · critical · cluster prod-eu · node n-1 · pod monitoring/tailhook-x",
        "loud: from the shop":
            "tailhook · anything-loud · critical · cluster prod-eu · node n-1 · pod shop/web-7f9c · container app",
    }  # fmt: skip

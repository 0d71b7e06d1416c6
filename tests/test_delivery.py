"""End to end: how ``tailhook run`` delivers to Discord, through the stand-in over real HTTP.

Pacing under a tight bucket, batching, several webhooks of one channel, dead
webhooks and their revival by a reload, destination options, forum posts,
routes, proxies, and /metrics saying what happened.
"""

from __future__ import annotations

import re
import signal
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon import Daemon, metrics, wait_until, write_config
from tests.discord_standin import OTHER_TOKEN, TOKEN, ThreadedStandIn, standin_in_thread, tls_certificate
from tests.http_proxy import proxy_in_thread

pytestmark = pytest.mark.timeout(90)

FIRST, SECOND, THIRD = "112233445566778899", "112233445566778800", "112233445566778811"
WEBHOOKS = {FIRST: TOKEN, SECOND: OTHER_TOKEN, THIRD: TOKEN}
NUMBERED = re.compile(r"^loud: burst (\d+)$")
HTTP = "http: {listen: '127.0.0.1:0'}\n"


@pytest.fixture
def discord() -> Iterator[ThreadedStandIn]:
    with standin_in_thread(bucket_limit=5, bucket_reset_after=2.0, webhooks=WEBHOOKS) as standin:
        yield standin


def start(
    tmp_path: Path, destinations: str, extra: str = "", env: dict[str, str] | None = None, probe: str = "off"
) -> Daemon:
    """A daemon with *destinations* (YAML of the ``destinations:`` section) and /metrics."""
    text = f"probe: {{mode: {probe}}}\n{HTTP}destinations:\n{textwrap.indent(textwrap.dedent(destinations), '  ')}\n"
    daemon = Daemon(write_config(tmp_path, extra=text + textwrap.dedent(extra)), env=env)
    try:
        return daemon.started()
    except BaseException:
        daemon.kill()
        raise


def posts(discord: ThreadedStandIn, webhook_id: str) -> list[int]:
    """The statuses of every POST to *webhook_id*, in order."""
    return [status for method, hook, status in discord.requests if method == "POST" and hook == webhook_id]


def test_a_burst_of_200_alerts_through_a_5_per_2s_bucket(tmp_path: Path, discord: ThreadedStandIn) -> None:
    daemon = start(tmp_path, f"alerts: {{url: '{discord.url(FIRST)}'}}")
    daemon.append(*(f"LOUD burst {n}" for n in range(200)))
    embeds = discord.wait_for_embeds(200, timeout=60)
    assert daemon.stop() == 0

    assert [int(NUMBERED.match(e["title"])[1]) for e in embeds] == list(range(200))  # type: ignore[index]
    statuses = posts(discord, FIRST)
    assert statuses.count(200) <= 25  # up to ten alerts to a message, not one request each
    assert statuses.count(429) <= 3  # paced by the bucket's headers, not by running into 429s
    assert all(len(m.payload["embeds"]) <= 10 for m in discord.received)


def test_several_webhooks_share_the_load_and_a_deleted_one_is_left_alone(
    tmp_path: Path, discord: ThreadedStandIn
) -> None:
    daemon = start(tmp_path, f"alerts: {{url: ['{discord.url(FIRST)}', '{discord.url(SECOND, OTHER_TOKEN)}']}}")
    daemon.append(*(f"LOUD burst {n}" for n in range(100)))
    discord.wait_for_embeds(100, timeout=60)
    assert posts(discord, FIRST).count(200) >= 2 and posts(discord, SECOND).count(200) >= 2  # both carried it

    discord.delete_webhook(FIRST)
    daemon.append(*(f"LOUD burst {n}" for n in range(100, 160)))
    embeds = discord.wait_for_embeds(160, timeout=60)
    # Discord has them; the daemon counts each once it has read Discord's answer
    delivered = 'tailhook_delivered_total{destination="alerts"}'
    wait_until(lambda: metrics(daemon).get(delivered) == 160, what="160 deliveries counted")
    stats = metrics(daemon)
    assert daemon.stop() == 0

    assert sorted(int(NUMBERED.match(e["title"])[1]) for e in embeds) == list(range(160))  # type: ignore[index]
    after = posts(discord, FIRST)[posts(discord, FIRST).index(404) :]
    assert after == [404]  # one refusal, then no more requests to it
    assert daemon.stderr.count("webhook 1 of 2") >= 1
    assert stats['tailhook_webhook_dead{destination="alerts",webhook="1"}'] == 1
    assert stats['tailhook_webhook_dead{destination="alerts",webhook="2"}'] == 0
    assert stats['tailhook_destination_up{destination="alerts"}'] == 1
    assert stats['tailhook_delivered_total{destination="alerts"}'] == 160


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_dead_webhook_goes_silent_until_a_reload_gives_a_new_url(
    tmp_path: Path, discord: ThreadedStandIn, status: int
) -> None:
    if status == 404:
        discord.delete_webhook(FIRST)
    else:
        discord.fail_next(status)
    daemon = start(tmp_path, f"alerts: {{url: '{discord.url(FIRST)}'}}")
    daemon.append("LOUD one")
    daemon.wait_for_log(f"destination alerts is dead: Discord answered {status}")
    daemon.append("LOUD two", "LOUD three")
    wait_until(
        lambda: metrics(daemon).get('tailhook_spool_pending{destination="alerts"}') == 3,
        what="three alerts waiting in the spool",
    )
    stats = metrics(daemon)
    assert posts(discord, FIRST) == [status]  # silence after the first refusal
    assert stats['tailhook_destination_up{destination="alerts"}'] == 0
    assert stats['tailhook_webhook_dead{destination="alerts",webhook="1"}'] == 1
    assert daemon.stderr.count("is dead") == 1  # said once, loudly

    config = daemon.directory / "tailhook.yaml"
    config.write_text(config.read_text().replace(discord.url(FIRST), discord.url(SECOND, OTHER_TOKEN)))
    daemon.process.send_signal(signal.SIGHUP)
    embeds = discord.wait_for_embeds(3)
    stats = metrics(daemon)
    assert daemon.stop() == 0

    assert [e["title"] for e in embeds] == ["loud: one", "loud: two", "loud: three"]
    assert posts(discord, FIRST) == [status]
    assert stats['tailhook_destination_up{destination="alerts"}'] == 1
    assert stats['tailhook_config_reloads_total{result="success"}'] == 1


def test_a_broken_config_on_reload_keeps_the_running_one(tmp_path: Path, discord: ThreadedStandIn) -> None:
    daemon = start(tmp_path, f"alerts: {{url: '{discord.url(FIRST)}'}}")
    config = daemon.directory / "tailhook.yaml"
    good = config.read_text()
    config.write_text(good.replace("window: 60s", "window: soon") + "routes: [{to: nowhere}]\n")
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_for_log("the running configuration stays")
    daemon.append("LOUD still delivering")
    (embed,) = discord.wait_for_embeds(1)
    stats = metrics(daemon)
    assert daemon.stop() == 0

    assert embed["title"] == "loud: still delivering"
    assert "storm.window" in daemon.stderr and "no destination is named 'nowhere'" in daemon.stderr
    assert stats['tailhook_config_reloads_total{result="failure"}'] == 1


def test_a_reload_applies_new_rules_and_routes(tmp_path: Path, discord: ThreadedStandIn) -> None:
    daemon = start(tmp_path, f"alerts: {{url: '{discord.url(FIRST)}'}}\naudit: {{url: '{discord.url(THIRD)}'}}")
    (daemon.directory / "rules.d" / "more.yaml").write_text(
        "rules:\n  - {name: quiet, match: 'QUIET (?P<what>.*)', severity: info, title: 'quiet: {what}'}\n"
    )
    config = daemon.directory / "tailhook.yaml"
    config.write_text(config.read_text() + "routes: [{severities: [info], to: audit}, {to: alerts}]\n")
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_for_log("reloaded: 4 rules, 2 routes")
    daemon.append("QUIET now matched", "LOUD as before")
    discord.wait_for_embeds(2)
    assert daemon.stop() == 0

    by_webhook = {m.webhook_id: [e["title"] for e in m.payload["embeds"]] for m in discord.received}
    assert by_webhook == {THIRD: ["quiet: now matched"], FIRST: ["loud: as before"]}


def test_destination_options_and_quiet_severities(tmp_path: Path, discord: ThreadedStandIn) -> None:
    daemon = start(
        tmp_path,
        f"""\
        alerts:
          url: '{discord.url(FIRST)}'
          username: ops-bot
          avatar_url: https://example.com/tailhook.png
          thread_id: '123456789012345678'
          suppress_notifications: [info, warning]
        """,
    )
    daemon.append("CHATTER quiet")
    (quiet,) = discord.wait_for(1)
    daemon.append("LOUD loud")
    _, loud = discord.wait_for(2)
    assert daemon.stop() == 0

    for message in (quiet, loud):
        assert message.payload["username"] == "ops-bot"
        assert message.payload["avatar_url"] == "https://example.com/tailhook.png"
        assert message.query == {"wait": "true", "thread_id": "123456789012345678"}
        assert message.channel_id == "123456789012345678"
    assert quiet.payload["flags"] == 4096  # SUPPRESS_NOTIFICATIONS: no push for info
    assert "flags" not in loud.payload or loud.payload["flags"] & 4096 == 0


def test_a_forum_destination_opens_one_post_per_message(tmp_path: Path) -> None:
    with standin_in_thread(webhooks={FIRST: TOKEN}, forum_webhooks={FIRST}) as forum:
        daemon = start(
            tmp_path,
            f"ops: {{url: '{forum.url(FIRST)}', thread_name: '{{severity}} on {{host}}: {{title}}'}}",
            extra="host: web-1\n",
            probe="message",
        )
        daemon.append("LOUD " + "disk full " * 20)
        note, alert = forum.wait_for(2)
        assert daemon.stop() == 0

    assert note.thread_name == "tailhook started"
    assert alert.thread_name is not None and alert.thread_name.startswith("critical on web-1: loud: disk full")
    assert len(alert.thread_name) <= 100 and alert.thread_name.endswith("…")
    assert alert.channel_id != note.channel_id  # a new post each


def test_routes_by_rule_severity_host_and_source(tmp_path: Path, discord: ThreadedStandIn) -> None:
    daemon = start(
        tmp_path,
        f"""\
        alerts: {{url: '{discord.url(FIRST)}'}}
        security: {{url: '{discord.url(SECOND, OTHER_TOKEN)}'}}
        audit: {{url: '{discord.url(THIRD)}'}}
        """,
        extra="""\
        host: web-1
        routes:
          - {hosts: [db-9], to: alerts}
          - {rules: [ssh-failure], to: security, continue: true}
          - {severities: [critical], hosts: [web-1], to: alerts}
          - {sources: [app], to: audit, style: compact}
        """,
    )
    daemon.append(
        "sshd[1]: Failed password for root from 198.51.100.7 port 22 ssh2",
        "LOUD fire",
        "CHATTER hello",
    )
    discord.wait_for_embeds(4)
    assert daemon.stop() == 0

    got: dict[str, list[str]] = {}
    for message in discord.received:
        for embed in message.payload["embeds"]:
            got.setdefault(message.webhook_id, []).append(embed.get("title") or embed["description"])
    assert got[SECOND] == ["SSH password failure for root from 198.51.100.7"]
    assert got[FIRST] == ["loud: fire"]
    assert [line.split("**")[1] for line in got[THIRD]] == ["ssh-failure", "chatter"]  # compact: one line each
    assert len(discord.embeds) == 4


@pytest.mark.parametrize("no_proxy", ["", "127.0.0.1"])
def test_the_proxy_from_the_environment(tmp_path: Path, discord: ThreadedStandIn, no_proxy: str) -> None:
    with proxy_in_thread() as proxy:
        env = {"HTTP_PROXY": proxy.url, "HTTPS_PROXY": proxy.url, "NO_PROXY": no_proxy, "no_proxy": no_proxy}
        daemon = start(tmp_path, f"alerts: {{url: '{discord.url(FIRST)}'}}", env=env)
        daemon.append("LOUD through")
        discord.wait_for_embeds(1)
        assert daemon.stop() == 0
        through = [r for r in proxy.requests if r.method == "POST"]

    if no_proxy:
        assert through == []  # NO_PROXY names the host: straight there
    else:
        ((_, target, path, status),) = through
        assert (target, path, status) == (f"127.0.0.1:{discord.port}", f"/api/webhooks/{FIRST}/***", 200)


def test_a_destination_with_its_own_proxy_and_credentials(tmp_path: Path, discord: ThreadedStandIn) -> None:
    with proxy_in_thread(credentials=("tailhook", "pr0xy-pa55word")) as proxy:
        proxied = proxy.url.replace("http://", "http://tailhook:pr0xy-pa55word@")
        daemon = start(
            tmp_path,
            f"alerts: {{url: '{discord.url(FIRST)}', proxy: '{proxied}'}}",
            env={"NO_PROXY": "", "no_proxy": ""},
        )
        daemon.append("LOUD through")
        discord.wait_for_embeds(1)
        assert daemon.stop() == 0
        statuses = [r.status for r in proxy.requests if r.method == "POST"]

    assert statuses == [200]  # authenticated at the first try
    assert "pr0xy-pa55word" not in daemon.stdout + daemon.stderr


def test_health_readiness_and_counts_over_http(tmp_path: Path, discord: ThreadedStandIn) -> None:
    daemon = start(tmp_path, f"alerts: {{url: '{discord.url(FIRST)}'}}")
    port = re.search(r"\(port (\d+)\)", daemon.stderr)[1]  # type: ignore[index]
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            assert (answer.status, answer.read()) == (200, b"ok\n")
    daemon.append("LOUD counted", "nothing to see", "CHATTER also counted")
    discord.wait_for_embeds(2)
    wait_until(lambda: metrics(daemon).get('tailhook_delivered_total{destination="alerts"}') == 2, what="2 delivered")
    stats = metrics(daemon)
    assert daemon.stop() == 0

    assert stats['tailhook_lines_total{source="app"}'] == 3
    assert stats['tailhook_matches_total{rule="anything-loud"}'] == 1
    assert stats['tailhook_matches_total{rule="chatter"}'] == 1
    assert stats['tailhook_spool_pending{destination="alerts"}'] == 0
    assert stats['tailhook_discord_requests_total{destination="alerts"}'] == len(posts(discord, FIRST))
    assert any(name.startswith("tailhook_build_info{version=") for name in stats)


def test_https_through_the_proxy_of_the_environment(tmp_path: Path) -> None:
    context, certificate = tls_certificate(tmp_path)
    with standin_in_thread(webhooks={FIRST: TOKEN}, tls=context) as discord, proxy_in_thread() as proxy:
        assert discord.url(FIRST).startswith("https://")
        env = {"HTTPS_PROXY": proxy.url, "NO_PROXY": "", "no_proxy": "", "SSL_CERT_FILE": str(certificate)}
        daemon = start(tmp_path, f"alerts: {{url: '{discord.url(FIRST)}'}}", env=env, probe="get")
        daemon.append("LOUD tunnelled")
        (embed,) = discord.wait_for_embeds(1)
        assert daemon.stop() == 0
        tunnels = proxy.requests

    assert embed["title"] == "loud: tunnelled"
    assert {(r.method, r.target) for r in tunnels} == {("CONNECT", f"127.0.0.1:{discord.port}")}

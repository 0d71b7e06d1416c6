"""/metrics as Prometheus' own client library parses it, through the daemon: every family valid, and
the values move as lines flow."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest

from tests.daemon import Daemon, wait_until, write_config
from tests.discord_standin import standin_in_thread

parser = pytest.importorskip("prometheus_client.parser", reason="the dev extra installs prometheus-client")


def scrape(daemon: Daemon) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Each family's samples by their labels, as prometheus_client parses /metrics (it raises on bad text)."""
    port = re.search(r"/metrics on \S+ \(port (\d+)\)", daemon.stderr)
    assert port, daemon.stderr
    with urllib.request.urlopen(f"http://127.0.0.1:{port[1]}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    families: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in parser.text_string_to_metric_families(text):
        assert family.documentation, family.name  # every family says what it counts
        for sample in family.samples:
            families.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return families


def test_metrics_parse_with_prometheus_client_and_move_as_lines_flow(tmp_path: Path) -> None:
    with standin_in_thread() as discord:
        config = write_config(tmp_path, url=discord.url(), extra="http: {listen: '127.0.0.1:0'}\n")
        daemon = Daemon(config).started()
        try:
            daemon.wait_for_log("/metrics on")
            before = scrape(daemon)
            daemon.append("LOUD one", "LOUD two", "nothing to see")
            discord.wait_for_embeds(2, timeout=30)
            wait_until(lambda: scrape(daemon)["tailhook_delivered_total"][(("destination", "alerts"),)] == 2,
                       timeout=10, what="two alerts counted as delivered")  # fmt: skip
            after = scrape(daemon)
        finally:
            assert daemon.stop() == 0
    source, alerts = (("source", "app"),), (("destination", "alerts"),)
    assert before.get("tailhook_lines_total", {}).get(source, 0) == 0 and after["tailhook_lines_total"][source] == 3
    assert after["tailhook_matches_total"][(("rule", "anything-loud"),)] == 2
    assert after["tailhook_alerts_total"] == {(("rule", "anything-loud"), ("severity", "critical")): 2}
    assert after["tailhook_spool_pending"][alerts] == 0
    assert after["tailhook_spool_oldest_waiting_seconds"][alerts] == 0
    assert after["tailhook_build_info"]
    # each component's own: the file source per file, the dispatcher's latency, the sink's requests
    log = (("path", str(daemon.log)), ("source", "app"))
    assert after["tailhook_file_read_lines_total"][log] == 3
    assert after["tailhook_file_read_bytes_total"][log] == daemon.log.stat().st_size
    assert after["tailhook_file_checkpoint_lag_bytes"][log] == 0
    assert after["tailhook_delivery_latency_seconds_count"][alerts] == 2
    assert after["tailhook_delivery_latency_seconds_bucket"][(*alerts, ("le", "+Inf"))] == 2
    assert 0 < after["tailhook_delivery_latency_seconds_sum"][alerts] < 30
    assert after["tailhook_discord_requests_total"][alerts] >= 1

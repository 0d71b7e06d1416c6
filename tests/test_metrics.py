"""tailhook.metrics: families made as components report them, merged by name, rendered by
prometheus_client and read back by its parser."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tailhook.metrics import Histogram, Metric, Registry, counter, gauge, merged

pytestmark = pytest.mark.timeout(30)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Samples by (name, labels), as prometheus_client's parser reads them; every family has help."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        assert family.documentation, family.name
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in out, f"sample given twice: {key}"
            out[key] = sample.value
    return out


class Component:
    """Reports what it is given; ``refresh`` counts how often /metrics asked it first."""

    def __init__(self, *families: Metric) -> None:
        self.families = list(families)
        self.refreshed = 0

    def collect(self) -> Iterable[Metric]:
        return list(self.families)


class Refreshing(Component):
    async def refresh(self) -> None:
        self.refreshed += 1
        self.families = [gauge("tailhook_refreshed", "Times refreshed.", self.refreshed)]


async def render(*components: Component, accept: str = "") -> tuple[str, str]:
    registry = Registry()
    registry.register(*components)
    body, content_type = await registry.exposition(accept)
    return body.decode(), content_type


async def test_counters_and_gauges_with_and_without_labels() -> None:
    text, content_type = await render(
        Component(
            counter("tailhook_delivered_total", "Delivered, per destination.", {"alerts": 3, "ops": 0}, "destination"),
            gauge("tailhook_spool_bytes", "Bytes in the spool.", 4096),
            counter("tailhook_file_read_lines_total", "Lines.", {("app", "/var/log/a.log"): 7}, "source", "path"),
        )
    )

    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE tailhook_delivered_total counter\n" in text
    assert "# TYPE tailhook_spool_bytes gauge\n" in text
    assert parse(text) == {
        ("tailhook_delivered_total", (("destination", "alerts"),)): 3,
        ("tailhook_delivered_total", (("destination", "ops"),)): 0,
        ("tailhook_spool_bytes", ()): 4096,
        ("tailhook_file_read_lines_total", (("path", "/var/log/a.log"), ("source", "app"))): 7,
    }


async def test_label_values_with_quotes_backslashes_and_newlines_come_back_whole() -> None:
    path = 'C:\\logs\\"app"\nline two'
    text, _ = await render(Component(gauge("tailhook_lag", "h", {path: 1}, "path")))

    assert parse(text) == {("tailhook_lag", (("path", path),)): 1}


def test_values_that_do_not_fit_the_labels_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="one value given for labels destination"):
        counter("tailhook_x_total", "h", 3, "destination")
    with pytest.raises(ValueError, match="does not fit labels source, path"):
        counter("tailhook_x_total", "h", {"app": 3}, "source", "path")


async def test_instances_of_a_component_report_under_one_family() -> None:
    first = Component(counter("tailhook_lines_total", "Lines read, per source.", {"auth": 2}, "source"))
    second = Component(counter("tailhook_lines_total", "Lines read, per source.", {"app": 5}, "source"))

    text, _ = await render(first, second)

    assert text.count("# TYPE tailhook_lines_total counter") == 1
    assert parse(text) == {
        ("tailhook_lines_total", (("source", "auth"),)): 2,
        ("tailhook_lines_total", (("source", "app"),)): 5,
    }


def test_one_name_as_two_metrics_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="tailhook_x is reported as two different metrics"):
        merged([Component(gauge("tailhook_x", "h", 1)), Component(counter("tailhook_x_total", "h", 1))])
    with pytest.raises(ValueError, match="two different metrics"):
        merged([Component(gauge("tailhook_x", "one", 1)), Component(gauge("tailhook_x", "another", 1))])


async def test_a_component_that_must_ask_first_is_refreshed_at_each_scrape() -> None:
    component = Refreshing()
    registry = Registry()
    registry.register(component)

    for n in (1, 2):
        body, _ = await registry.exposition()
        assert parse(body.decode()) == {("tailhook_refreshed", ()): n}


async def test_a_replaced_component_reports_in_its_place_and_an_unregistered_one_not_at_all() -> None:
    old, new, other = (Component(gauge(f"tailhook_{name}", "h", 1)) for name in ("old", "new", "other"))
    registry = Registry()
    registry.register(old, other)

    registry.replace(old, new)
    assert [family.name for family in registry.collect()] == ["tailhook_new", "tailhook_other"]
    registry.unregister(other)
    assert [family.name for family in registry.collect()] == ["tailhook_new"]


async def test_openmetrics_when_the_scraper_asks_for_it() -> None:
    text, content_type = await render(
        Component(counter("tailhook_delivered_total", "Delivered.", 3)),
        accept="application/openmetrics-text; version=1.0.0; charset=utf-8, text/plain; version=0.0.4; q=0.5",
    )

    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert text.endswith("# EOF\n")
    assert "tailhook_delivered_total 3.0\n" in text


async def test_a_histogram_counts_into_cumulative_buckets_per_label() -> None:
    latency = Histogram("tailhook_delivery_latency_seconds", "Seconds to deliver.", "destination", (0.5, 1.0, 10.0))
    for value in (0.1, 0.5, 0.7, 3.0, 60.0):
        latency.observe("alerts", value)
    latency.observe("ops", 2.0)

    samples = parse((await render(Component(*latency.collect())))[0])

    def bucket(destination: str, le: str) -> float:
        return samples["tailhook_delivery_latency_seconds_bucket", (("destination", destination), ("le", le))]

    # 0.5 is in the 0.5 bucket: a bucket counts what is at most its bound
    assert [bucket("alerts", le) for le in ("0.5", "1.0", "10.0", "+Inf")] == [2, 3, 4, 5]
    assert samples["tailhook_delivery_latency_seconds_count", (("destination", "alerts"),)] == 5
    assert samples["tailhook_delivery_latency_seconds_sum", (("destination", "alerts"),)] == pytest.approx(64.3)
    assert [bucket("ops", le) for le in ("0.5", "1.0", "10.0", "+Inf")] == [0, 0, 1, 1]


def test_histogram_buckets_must_rise() -> None:
    with pytest.raises(ValueError, match="rise strictly"):
        Histogram("tailhook_h", "h", "destination", (1.0, 0.5))
    with pytest.raises(ValueError, match="rise strictly"):
        Histogram("tailhook_h", "h", "destination", ())

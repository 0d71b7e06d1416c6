"""Metrics: what each component reports, as prometheus_client's metric families, and the registry
that /metrics renders.

A component that reports metrics has ``collect()``, prometheus_client's collector protocol (an
iterable of metric families, made with ``counter``, ``gauge`` and ``Histogram`` here), and, when
its figures need a question answered first (the spool's counts come from the database), an
``async refresh()`` that /metrics awaits before collecting. The app only registers components in
one ``Registry``; a component with several instances (sources, sinks) reports under the same
names, and the registry merges what they report into one family per name.

Components count in plain attributes on their hot paths (an ``int`` add per line) and build
families only when /metrics is asked: prometheus_client's instrumented ``Counter`` takes a lock
per increment, which the per-line path cannot afford.
"""

from __future__ import annotations

import bisect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

__all__ = ["Collector", "Exposition", "Histogram", "Metric", "Refreshing", "Registry", "counter", "gauge", "merged"]

Values = float | Mapping[str, float] | Mapping[tuple[str, str], float] | Mapping[tuple[str, str, str], float]
"""One value (no labels), or values by label value (one label) or by tuple of label values."""


@runtime_checkable
class Collector(Protocol):
    def collect(self) -> Iterable[Metric]:
        """The component's metric families as they stand now."""
        ...


@runtime_checkable
class Refreshing(Protocol):
    async def refresh(self) -> None:
        """Ask what ``collect`` needs and cannot ask without waiting (the spool's database)."""
        ...


def counter(name: str, help: str, values: Values, *labels: str) -> CounterMetricFamily:
    """A counter family named *name* (ending in ``_total``): *values* as ``Values`` says, under *labels*."""
    family = CounterMetricFamily(name, help, labels=labels)
    _add(family, values, labels)
    return family


def gauge(name: str, help: str, values: Values, *labels: str) -> GaugeMetricFamily:
    """A gauge family: *values* as ``Values`` says, under *labels*."""
    family = GaugeMetricFamily(name, help, labels=labels)
    _add(family, values, labels)
    return family


def _add(family: CounterMetricFamily | GaugeMetricFamily, values: Values, labels: Sequence[str]) -> None:
    if not isinstance(values, Mapping):
        if labels:
            raise ValueError(f"metric {family.name}: one value given for labels {', '.join(labels)}")
        family.add_metric([], values)
        return
    for key, value in sorted(values.items()):
        label_values = (key,) if isinstance(key, str) else key
        if len(label_values) != len(labels):
            raise ValueError(f"metric {family.name}: {label_values!r} does not fit labels {', '.join(labels)}")
        family.add_metric(list(label_values), value)


class Histogram:
    """Observations counted into fixed buckets, per value of one label; a histogram family when collected.

    ``observe`` is a bisect and two adds: cheap enough for every delivery.
    """

    def __init__(self, name: str, help: str, label: str, buckets: Sequence[float]) -> None:
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError(f"histogram {name}: buckets must rise strictly")
        self.name, self.help, self.label = name, help, label
        self.buckets = tuple(buckets)
        self._counts: dict[str, list[int]] = {}
        """Per label value: observations per bucket (not cumulative), the last one above every bound."""
        self._sums: dict[str, float] = {}

    def observe(self, label_value: str, value: float) -> None:
        counts = self._counts.get(label_value)
        if counts is None:
            counts = self._counts[label_value] = [0] * (len(self.buckets) + 1)
            self._sums[label_value] = 0.0
        counts[bisect.bisect_left(self.buckets, value)] += 1
        self._sums[label_value] += value

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.help, labels=[self.label])
        bounds = [*(_bound(b) for b in self.buckets), "+Inf"]
        for label_value, counts in sorted(self._counts.items()):
            cumulative, running = [], 0
            for bound, count in zip(bounds, counts, strict=True):
                running += count
                cumulative.append((bound, float(running)))
            family.add_metric([label_value], cumulative, sum_value=self._sums[label_value])
        yield family


def _bound(value: float) -> str:
    return repr(float(value))


def merged(components: Iterable[Collector]) -> list[Metric]:
    """What *components* report, one family per name (their samples in turn), in the order the names
    first appear. A name reported as two types or with two help texts is a programming error
    (``ValueError``)."""
    families: dict[str, Metric] = {}
    for component in components:
        for family in component.collect():
            known = families.get(family.name)
            if known is None:
                families[family.name] = family
            elif (known.type, known.documentation) != (family.type, family.documentation):
                raise ValueError(f"metric {family.name} is reported as two different metrics")
            else:
                known.samples = [*known.samples, *family.samples]
    return list(families.values())


class Registry:
    """The components /metrics shows, in the order registered; families of one name are merged."""

    def __init__(self) -> None:
        self._components: list[Collector] = []

    def register(self, *components: Collector) -> None:
        self._components.extend(components)

    def unregister(self, component: Collector) -> None:
        self._components.remove(component)

    def replace(self, old: Collector, new: Collector) -> None:
        """*new* reports where *old* did (a reload swapped a whole component)."""
        self._components[self._components.index(old)] = new

    async def refresh(self) -> None:
        for component in list(self._components):
            if isinstance(component, Refreshing):
                await component.refresh()

    def collect(self) -> list[Metric]:
        return merged(self._components)

    async def snapshot(self) -> list[Metric]:
        """Every family as it stands now, refreshed first (for the daily report)."""
        await self.refresh()
        return self.collect()

    async def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The text /metrics answers and its content type: the Prometheus text format 0.0.4, or
        OpenMetrics when *accept* (the request's ``Accept``) asks for it."""
        await self.refresh()
        encode, content_type = choose_encoder(accept)
        return encode(self), content_type


Exposition = Callable[[str], Awaitable[tuple[bytes, str]]]
"""``Registry.exposition``: what /metrics calls with the request's ``Accept``."""

"""What a component reports (its ``collect()``), read back for assertions."""

from __future__ import annotations

from tailhook.metrics import Collector, merged

Labels = tuple[tuple[str, str], ...]


def reported(*components: Collector) -> dict[str, dict[Labels, float]]:
    """Samples by sample name (a counter's with ``_total``), then by their labels (sorted pairs)."""
    out: dict[str, dict[Labels, float]] = {}
    for family in merged(components):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def total(components: Collector | tuple[Collector, ...], name: str) -> float:
    """The sum of *name*'s samples (0 when none)."""
    group = components if isinstance(components, tuple) else (components,)
    return sum(reported(*group).get(name, {}).values())

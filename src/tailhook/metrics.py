"""Metrics as Prometheus reads them: ``Metric``s of ``Sample``s, and ``render`` to the text format.

Each component reports its own (a list of ``Metric``); the daemon only
collects them and ``tailhook.http`` serves them. Metric and label names are
checked against Prometheus' rules when a ``Metric`` or ``Sample`` is made; a
bad one is a programming error (``ValueError``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Metric", "Sample", "per", "render"]

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_EXACT_INTEGERS = 2.0**53
"""Integral floats below this print as integers (``3``, not ``3.0``), as Prometheus' own Go code prints them."""


@dataclass(frozen=True, slots=True)
class Sample:
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)
    """Printed in this order."""

    def __post_init__(self) -> None:
        for name in self.labels:
            if not _LABEL_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a Prometheus label name")


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    """Such as ``tailhook_delivered_total``."""
    kind: Literal["counter", "gauge"]
    help: str
    samples: Sequence[Sample]

    def __post_init__(self) -> None:
        if not _METRIC_NAME.fullmatch(self.name):
            raise ValueError(f"{self.name!r} is not a Prometheus metric name")
        if self.kind not in ("counter", "gauge"):
            raise ValueError(f"metric {self.name}: kind {self.kind!r} is neither 'counter' nor 'gauge'")


def render(metrics: Iterable[Metric]) -> str:
    """Prometheus text exposition format 0.0.4: # HELP and # TYPE lines, then samples."""
    lines: list[str] = []
    seen: set[str] = set()
    for metric in metrics:
        if metric.name in seen:
            raise ValueError(f"metric {metric.name} is given twice")
        seen.add(metric.name)
        lines.append(f"# HELP {metric.name} {_escape_help(metric.help)}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        lines.extend(f"{metric.name}{_labels(s.labels)} {_value(s.value)}" for s in metric.samples)
    return "".join(line + "\n" for line in lines)


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    pairs = (f'{name}="{_escape_label(value)}"' for name, value in labels.items())
    return "{" + ",".join(pairs) + "}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _value(value: float) -> str:
    if isinstance(value, int):  # bool included: True is 1
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < _EXACT_INTEGERS:
        return str(int(value))
    return repr(value)


def per(label: str, values: Mapping[str, float]) -> list[Sample]:
    """One sample per key of *values*, labelled *label*, in key order."""
    return [Sample(value, {label: key}) for key, value in sorted(values.items())]

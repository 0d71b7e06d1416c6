"""Durations and sizes as written in config files, parsed in one place.

Durations: ``500ms``, ``60s``, ``10m``, ``1h``, ``1d`` (a number may have a
fraction: ``1.5s``). Sizes: ``512B``, ``64KiB``, ``256MiB``, ``1GiB``, or the
decimal ``KB``/``MB``/``GB``. A bare number is refused: the unit is what makes
a value readable in review.
"""

from __future__ import annotations

import re

__all__ = ["parse_duration", "parse_size", "seconds_in_words"]

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_UNITS = {
    "b": 1,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
}
_AMOUNT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*")


def parse_duration(text: object) -> float:
    """Seconds in *text*, e.g. ``"10m"`` → ``600.0``; ``ValueError`` otherwise."""
    number, unit = _split(text, "duration", "'500ms', '60s', '10m' or '1h'")
    factor = _DURATION_UNITS.get(unit)
    if factor is None:
        raise ValueError(f"unknown duration unit {unit!r} in {text!r}; use ms, s, m, h or d")
    return number * factor


def parse_size(text: object) -> int:
    """Bytes in *text*, e.g. ``"256MiB"`` → ``268435456``; ``ValueError`` otherwise."""
    number, unit = _split(text, "size", "'64KiB' or '256MiB'")
    factor = _SIZE_UNITS.get(unit.lower())
    if factor is None:
        raise ValueError(f"unknown size unit {unit!r} in {text!r}; use B, KiB, MiB, GiB, KB, MB or GB")
    return int(number * factor)


def _split(text: object, what: str, example: str) -> tuple[float, str]:
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError(f"a {what} must be a string with a unit, such as {example}; got {text!r}")
    found = _AMOUNT.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not a {what}; write it like {example}")
    return float(found.group(1)), found.group(2)


def seconds_in_words(seconds: float) -> str:
    """A span for people, to three figures in its largest unit: ``45 s``, ``1.5 min``, ``2 h``."""
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"

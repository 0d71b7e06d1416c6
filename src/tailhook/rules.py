"""Rules: compiled once, matched against every line, rendered into events.

This module is pure: no I/O, no clock. A line may match several rules; each
match becomes one ``Event`` with its title, description and storm key rendered
from the rule's templates. Templates use ``{name}`` fields: the rule's named
captures and ``line``, ``source``, ``path``, ``host``, ``rule``, ``severity``
and whatever the source adds (journald's ``unit``, ``identifier``, ``pid``).
A capture that took no part in the match renders as an empty string.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tailhook.config import RuleConfig, StormConfig
from tailhook.events import Event, Line, Severity

try:  # the regex parser: private, but stable across 3.11-3.13; without it rules simply skip the prefilter
    _sre: Any = importlib.import_module("re._constants")
    _sre_parse: Any = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover
    _sre = _sre_parse = None

__all__ = ["Rule", "RuleSet", "render", "required_literal"]


class _Fields(dict[str, str]):
    """Template values; a name with no value renders as an empty string."""

    def __missing__(self, key: str) -> str:
        return ""


def render(template: str, fields: Mapping[str, str]) -> str:
    """Fill ``{name}`` fields of an already validated *template*."""
    return template.format_map(_Fields(fields))


def required_literal(pattern: str) -> str:
    """The longest run of plain characters that every match of *pattern* contains.

    ``""`` when there is none (or the pattern ignores case). A line without it
    cannot match, and ``in`` finds that out far faster than the regex engine.
    """
    if _sre_parse is None:
        return ""
    try:
        parsed = _sre_parse.parse(pattern)
    except Exception:
        return ""
    if parsed.state.flags & re.IGNORECASE:
        return ""
    runs: list[str] = []
    _collect_runs(list(parsed), runs)
    return max(runs, key=len, default="")


def _collect_runs(items: list[tuple[Any, Any]], runs: list[str]) -> None:
    run: list[str] = []
    for op, arg in items:
        if op is _sre.LITERAL:
            run.append(chr(arg))
            continue
        runs.append("".join(run))
        run = []
        if op is _sre.SUBPATTERN and not arg[1] & re.IGNORECASE:
            _collect_runs(list(arg[3]), runs)  # a group in a sequence must match
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT) and arg[0] >= 1:
            _collect_runs(list(arg[2]), runs)  # so must what repeats at least once
    runs.append("".join(run))


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled rule."""

    name: str
    severity: Severity
    pattern: re.Pattern[str]
    exclude: re.Pattern[str] | None
    key: str
    title: str
    description: str
    sources: frozenset[str] | None
    storm: StormConfig | None
    literal: str = ""
    """Text every match contains: lines without it are passed over unsearched."""

    @classmethod
    def compile(cls, config: RuleConfig) -> Rule:
        return cls(
            name=config.name,
            severity=config.severity,
            pattern=re.compile(config.match),
            exclude=re.compile(config.exclude) if config.exclude else None,
            key=config.key or config.name,
            title=config.title or config.name,
            description=config.description,
            sources=frozenset(config.sources) if config.sources is not None else None,
            storm=config.storm,
            literal=required_literal(config.match),
        )

    def applies_to(self, source: str) -> bool:
        return self.sources is None or source in self.sources

    def match(self, line: Line, *, host: str) -> Event | None:
        """The event this rule makes of *line*, or ``None`` when it does not match."""
        if self.literal not in line.text:
            return None
        found = self.pattern.search(line.text)
        if found is None or (self.exclude is not None and self.exclude.search(line.text)):
            return None
        captures = {name: value or "" for name, value in found.groupdict().items()}
        fields = _Fields(line.fields)
        fields.update(
            line=line.text,
            source=line.source,
            path=line.path,
            host=host,
            rule=self.name,
            severity=self.severity.label,
        )
        fields.update(captures)
        return Event(
            rule=self.name,
            severity=self.severity,
            key=self.key.format_map(fields),
            title=self.title.format_map(fields),
            description=self.description.format_map(fields),
            captures=captures,
            line=line,
        )


class RuleSet:
    """All rules, with the list that applies to each source worked out once."""

    def __init__(self, configs: Iterable[RuleConfig], *, host: str) -> None:
        self.rules = tuple(Rule.compile(c) for c in configs)
        self.host = host
        self._by_source: dict[str, tuple[Rule, ...]] = {}

    def __len__(self) -> int:
        return len(self.rules)

    def for_source(self, source: str) -> tuple[Rule, ...]:
        rules = self._by_source.get(source)
        if rules is None:
            rules = self._by_source[source] = tuple(r for r in self.rules if r.applies_to(source))
        return rules

    def match(self, line: Line) -> list[Event]:
        """Every event *line* produces, one per matching rule, in rule order."""
        events = []
        for rule in self.for_source(line.source):
            event = rule.match(line, host=self.host)
            if event is not None:
                events.append(event)
        return events

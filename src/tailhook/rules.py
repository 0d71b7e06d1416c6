"""Rules: compiled once, matched against every line, rendered into events.

A line may match several rules; each match becomes one ``Event`` with its
title, description and storm key rendered from the rule's templates. Templates
use ``{name}`` fields: the rule's named captures and ``line``, ``source``,
``path``, ``host``, ``rule``, ``severity`` and whatever the source adds
(journald's ``unit``, ``identifier``, ``pid``). A capture that took no part in
the match renders as an empty string.

Matching is two steps. A ``Scanner`` (``tailhook.engines``) looks at the line,
or at a whole chunk of lines, once for all rules and names the rules that may
match; Python's ``re`` then decides each of those, so what matches, and what
each capture holds, is always Python's answer. A line no rule may match costs
one engine pass and, in a chunk, never becomes a Python object. Each ``re``
search has a time budget (``tailhook.budget``): a line that spends it is
skipped for that rule and counted in ``over_budget``; for the next
``STRAIN_S`` seconds that rule's lines get ``STRAINED_BUDGET_S``, so a flood of
hostile lines costs little more than a flood of ordinary ones.
"""

from __future__ import annotations

import functools
import logging
import re
import string
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from tailhook import budget
from tailhook.config import DEFAULT_LINE_BUDGET_S, Config, RuleConfig, StormConfig
from tailhook.engines import Scanner, best_available, build
from tailhook.events import PRIORITY_SEVERITIES, AlertField, Event, Line, Rendered, Severity
from tailhook.origin import origin_of
from tailhook.prefilter import required_literal

__all__ = [
    "STRAINED_BUDGET_S",
    "STRAIN_S",
    "Hit",
    "Rule",
    "RuleSet",
    "decode_line",
    "render",
    "required_literal",
]

log = logging.getLogger(__name__)

STRAINED_BUDGET_S = 0.002
"""The budget of a rule that spent a whole one lately."""
STRAIN_S = 10.0
"""How long a rule stays strained after it spent a whole budget."""


_NO_IDENTITY: Mapping[str, str] = MappingProxyType({})
MAX_CAPTURE_CHARS = 4096
"""A capture longer than this (``(?P<what>.*)`` over a 20 MB line) is cut, and marked: what shows it
(a title, a field) shows less anyway, and a storm key, a title and the spool's copies of them stay
small. The line itself is kept whole: it goes as a file."""
MAX_KEY_CHARS = 1024
"""A storm key longer than this (a template naming ``{line}``) is cut: keys are held in memory and
stored with every commit of their window."""
CUT_MARK = "…"
MAX_ORIGINS = 4096
"""Paths whose origin a rule set keeps worked out."""


class _Fields(dict[str, str]):
    """Template values; a name with no value renders as an empty string."""

    def __missing__(self, key: str) -> str:
        return ""


def render(template: str, fields: Mapping[str, str]) -> str:
    """Fill ``{name}`` fields of an already validated *template*."""
    return template.format_map(_Fields(fields))


def _names(templates: Iterable[str]) -> set[str] | None:
    """The ``{name}``s *templates* use; ``None`` if one uses anything else (``{0}``, ``{a.b}``), or is malformed."""
    names: set[str] = set()
    try:
        for template in templates:
            names.update(name for _, name, _, _ in _FORMATTER.parse(template) if name is not None)
    except ValueError:
        return None
    return names if all(name.isidentifier() for name in names) else None


_FORMATTER = string.Formatter()


def decode_line(raw: bytes) -> str:
    """A line's text as the file source makes it: UTF-8 (invalid bytes as U+FFFD), no trailing CR."""
    return raw.decode("utf-8", errors="replace").removesuffix("\r")


Search = Callable[[re.Pattern[str], str], "re.Match[str] | None"]
"""Runs one regex over one text: ``re.Pattern.search``, or one that keeps a time budget."""


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
    fields: tuple[AlertField, ...] = ()
    """The rule's ``fields:`` as templates: name, value, inline."""
    from_priority: bool = False
    """``severity: from_priority``: an event's severity is its line's journal priority, at least ``severity``."""
    label: str = field(init=False)
    """The severity's name, for templates."""
    plain: frozenset[str] = field(init=False)
    """Which of key, title and description name no field: they are the text as it is."""
    key_capture: str | None = field(init=False)
    """The capture the key is, when the key template is just ``{capture}`` (the usual case)."""
    named_only: bool = field(init=False)
    """Every group of the pattern is named: a match's ``groups()`` are its captures' values, in order."""
    captures_only: bool = field(init=False)
    """Every ``{name}`` the templates use is a named capture: a match's captures are all they need."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", self.severity.label)
        alone = re.fullmatch(r"\{([A-Za-z_]\w*)\}", self.key)
        capture = alone.group(1) if alone and alone.group(1) in self.pattern.groupindex else None
        object.__setattr__(self, "key_capture", capture)
        object.__setattr__(self, "named_only", self.pattern.groups == len(self.pattern.groupindex))
        templates = {"key": self.key, "title": self.title, "description": self.description}
        object.__setattr__(self, "plain", frozenset(n for n, t in templates.items() if "{" not in t and "}" not in t))
        texts = [self.key, self.title, self.description, *(text for f in self.fields for text in f[:2])]
        names = _names(texts)
        object.__setattr__(self, "captures_only", names is not None and names <= self.pattern.groupindex.keys())

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
            fields=tuple(AlertField(f.name, f.value, f.inline) for f in config.fields),
            from_priority=config.from_priority,
        )

    def applies_to(self, source: str) -> bool:
        return self.sources is None or source in self.sources

    def find(self, text: str, search: Search = re.Pattern.search) -> re.Match[str] | None:
        """This rule's match in *text* (``None`` when it does not match, or the exclude does).

        *search* runs each regex: ``budget.quick`` or ``budget.search`` keep it to a budget.
        """
        found = search(self.pattern, text)
        if found is not None and self.exclude is not None and search(self.exclude, text) is not None:
            return None
        return found

    def event(self, line: Line, found: re.Match[str], *, host: str, origin: Mapping[str, str] = _NO_IDENTITY) -> Event:
        """The event *found* (this rule's match in *line*) makes: its storm key rendered now, its
        title, description and fields when first asked for (most events of a storm never are).
        *origin*: where *line* came from (``RuleSet.origin``: the same for every line of a path)."""
        captures = found.groupdict("")
        if len(line.text) > MAX_CAPTURE_CHARS and any(len(v) > MAX_CAPTURE_CHARS for v in captures.values()):
            captures = {name: _cut(value, MAX_CAPTURE_CHARS) for name, value in captures.items()}
        severity = self.severity
        if self.from_priority:
            severity = max(severity, PRIORITY_SEVERITIES.get(line.fields.get("priority", ""), severity))
        if self.key_capture is not None:
            key = captures[self.key_capture]
        elif "key" in self.plain:
            key = self.key
        else:
            key = self.key.format_map(self._values(line, captures, host, origin, severity))
        if len(key) > MAX_KEY_CHARS:
            key = _cut(key, MAX_KEY_CHARS)
        return Event(
            rule=self.name,
            severity=severity,
            key=key,
            captures=captures,
            line=line,
            render=lambda: self._render(self._values(line, captures, host, origin, severity)),
            storm=self.storm,
            origin=origin,
        )

    def _values(
        self, line: Line, captures: Mapping[str, str], host: str, origin: Mapping[str, str], severity: Severity
    ) -> Mapping[str, str]:
        """What the templates may name, for one match (*captures*: all of its captures, as ``event`` has them)."""
        if self.captures_only:
            return captures
        values = _Fields(
            line.fields,
            line=line.text,
            source=line.source,
            path=line.path,
            host=host,
            rule=self.name,
            severity=self.label if severity is self.severity else severity.label,
        )
        values.update(origin)
        values.update(captures)
        return values

    def _render(self, values: Mapping[str, str]) -> Rendered:
        plain = self.plain
        title = self.title if "title" in plain else self.title.format_map(values)
        description = self.description if "description" in plain else self.description.format_map(values)
        fields = tuple(
            AlertField(name.format_map(values), value.format_map(values), inline) for name, value, inline in self.fields
        )
        return title, description, fields


Hit = tuple[Rule, re.Match[str]]
"""A rule and its match in a line."""


@dataclass(frozen=True, slots=True)
class Selection:
    """The rules that apply to one source, and the scanner that picks among them."""

    rules: tuple[Rule, ...]
    scanner: Scanner


class RuleSet:
    """All rules, with the rules and the scanner of each source worked out once.

    *engine* is ``auto`` (the best installed) or one of ``engines.ENGINES``;
    ``engines.EngineUnavailable`` when that one is not installed. *sources*
    names the sources whose scanners are built now rather than at their first
    line (building takes a while with many rules); *cache*, a folder where
    compiled scanners are kept for the next build of the same rules. A rule
    with ``enabled: false`` is left out here, so no engine ever sees it.
    """

    def __init__(
        self,
        configs: Iterable[RuleConfig],
        *,
        host: str,
        identity: Mapping[str, str] = _NO_IDENTITY,
        engine: str = "auto",
        line_budget_s: float = DEFAULT_LINE_BUDGET_S,
        sources: Iterable[str] = (),
        clock: Callable[[], float] = time.monotonic,
        cache: Path | None = None,
    ) -> None:
        self.rules = tuple(Rule.compile(c) for c in configs if c.enabled)
        self.host = host
        self.identity = identity
        """tailhook's own place beyond the host (``tailhook.origin``), for every event's origin."""
        self._origins: dict[str, Mapping[str, str]] = {}
        self.engine = best_available() if engine == "auto" else engine
        self.line_budget_s = line_budget_s
        self.clock = clock
        self.cache = cache
        self.over_budget: Counter[str] = Counter()
        """Lines skipped per rule because its search spent the budget."""
        self._strained: dict[str, float] = {}
        self._by_source: dict[str, Selection] = {}
        self._by_rules: dict[tuple[int, ...], Selection] = {}
        for source in sources:
            self.for_source(source)

    def __len__(self) -> int:
        return len(self.rules)

    def for_source(self, source: str) -> Selection:
        selection = self._by_source.get(source)
        if selection is None:
            which = tuple(i for i, rule in enumerate(self.rules) if rule.applies_to(source))
            selection = self._by_rules.get(which)
            if selection is None:
                rules = tuple(self.rules[i] for i in which)
                scanner = build([rule.pattern.pattern for rule in rules], self.engine, cache=self.cache)
                selection = self._by_rules[which] = Selection(rules, scanner)
            self._by_source[source] = selection
        return selection

    def origin(self, path: str) -> Mapping[str, str]:
        """Where a line read from *path* came from (``tailhook.origin``), worked out once per path."""
        found = self._origins.get(path)
        if found is None:
            if len(self._origins) >= MAX_ORIGINS:
                self._origins.clear()  # paths come and go with rotation: start afresh, rarely
            found = self._origins[path] = origin_of(path, self.identity)
        return found

    def fallbacks(self) -> dict[str, str]:
        """Rules the fast engine could not take (of the sources seen so far), with the reason."""
        return {
            selection.rules[index].name: reason
            for selection in self._by_rules.values()
            for index, reason in selection.scanner.fallbacks.items()
        }

    def match(self, line: Line) -> list[Event]:
        """Every event *line* produces, one per matching rule, in rule order."""
        return [
            rule.event(line, found, host=self.host, origin=self.origin(line.path))
            for rule, found in self.hits(line.text, source=line.source)
        ]

    def hits(self, text: str, *, source: str) -> list[Hit]:
        """The rules that match the line *text* of *source*, each with its match, in rule order."""
        selection = self.for_source(source)
        picked = selection.scanner.line(text.encode("utf-8", "surrogatepass"))
        return self._hits(selection.rules, picked, text)

    def candidates(self, data: bytes, *, source: str) -> list[tuple[int, int, list[int]]]:
        """Start and end offsets of the lines of *data* (whole ``\\n``-separated lines of *source*)
        that some rule may match, each with those rules, in line order.

        Only the engine's pass, no Python ``re``: it may run in any thread.
        """
        chunk = self.for_source(source).scanner.chunk(data)
        return [(data.rfind(b"\n", 0, end) + 1, end, picked) for end, picked in sorted(chunk.items())]

    def confirm(
        self, data: bytes, candidates: Sequence[tuple[int, int, list[int]]], *, source: str
    ) -> list[tuple[int, str, list[Hit]]]:
        """Python's ``re`` on each candidate line: ``(start offset, text, hits)`` of the lines that match.

        Each line is decoded as the file source decodes it (``decode_line``).
        """
        rules = self.for_source(source).rules
        found: list[tuple[int, str, list[Hit]]] = []
        rest = iter(candidates)
        with self.watching():
            if budget.watched(self.line_budget_s) and not self._strained:
                # Every search shares the watch's timer, nothing to decide per rule: until a rule
                # spends its budget and is strained, then the rest of the block goes the long way.
                with budget.searches() as tally:
                    for start, end, picked in rest:
                        text = data[start:end].decode("utf-8", "replace").removesuffix("\r")  # decode_line
                        hits = []
                        for index in picked:
                            rule = rules[index]
                            tally.number += 1
                            try:
                                match = rule.find(text)
                            except budget.Stopped:
                                self._spent(rule, text)
                                continue
                            if match is not None:
                                hits.append((rule, match))
                        if hits:
                            found.append((start, text, hits))
                        if self._strained:
                            break
            for start, end, picked in rest:
                text = data[start:end].decode("utf-8", "replace").removesuffix("\r")
                hits = self._hits(rules, picked, text)
                if hits:
                    found.append((start, text, hits))
        return found

    def scan(
        self,
        data: bytes,
        *,
        source: str,
        make_line: Callable[[str], Line],
        candidates: Sequence[tuple[int, int, list[int]]] | None = None,
    ) -> list[tuple[int, list[Event]]]:
        """The events of the lines of *data* (whole ``\\n``-separated lines of *source*), as
        ``(line's start offset, events)`` in line order, for lines with events only.

        Only the lines some rule may match are cut out, decoded and made into a
        ``Line`` by *make_line*. *candidates*: this rule set's ``candidates`` of *data*, when
        another thread already worked them out.
        """
        if candidates is None:
            candidates = self.candidates(data, source=source)
        found = []
        for start, text, hits in self.confirm(data, candidates, source=source):
            line = make_line(text)
            origin = self.origin(line.path)
            found.append((start, [rule.event(line, match, host=self.host, origin=origin) for rule, match in hits]))
        return found

    def watching(self) -> AbstractContextManager[None]:
        """Within: every search keeps to its budget at the cost of one timer for them all."""
        return budget.watch(self.line_budget_s)

    def _hits(self, rules: Sequence[Rule], picked: Sequence[int], text: str) -> list[Hit]:
        hits = []
        for index in picked:
            rule = rules[index]
            budget_s = self._budget(rule)
            # Inside a watch that keeps this budget, the search shares its timer; else it arms its own.
            search = budget.quick if budget.watched(budget_s) else functools.partial(budget.search, budget_s=budget_s)
            try:
                found = rule.find(text, search)
            except budget.BudgetSpent:
                self._spent(rule, text)
                continue
            if found is not None:
                hits.append((rule, found))
        return hits

    def _budget(self, rule: Rule) -> float:
        until = self._strained.get(rule.name) if self._strained else None
        if until is not None:
            if self.clock() < until:
                return min(STRAINED_BUDGET_S, self.line_budget_s)
            del self._strained[rule.name]  # served its time: back on the shared timer
        return self.line_budget_s

    def _spent(self, rule: Rule, text: str) -> None:
        if not self.over_budget[rule.name]:
            log.warning(
                "rule %s: searching a line took over %gs, so the line was skipped for this rule "
                "(counted in tailhook_rule_over_budget_total; logged once): %.200r",
                rule.name,
                self._budget(rule),
                text,
            )
        self.over_budget[rule.name] += 1
        self._strained[rule.name] = self.clock() + STRAIN_S


def rule_set(config: Config, *, host: str) -> RuleSet:
    """The rules of *config*, matched as its ``rules:`` section says, scanners built for every source
    (or loaded from ``state_dir/cache``, where they are kept for the next start)."""
    return RuleSet(
        config.rules,
        host=host,
        identity=config.identity,
        engine=config.matching.engine,
        line_budget_s=config.matching.line_budget,
        sources=[source.name for source in config.sources],
        cache=config.state_dir / "cache",
    )


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(CUT_MARK)] + CUT_MARK

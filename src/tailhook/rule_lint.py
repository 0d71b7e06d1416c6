r"""What ``tailhook check`` warns about in rules that load: likely mistakes, not errors.

- A rule that can never fire: its ``match`` matches no text at all (``a^b``,
  ``$x``, ``\Zx``, ``[^\s\S]``, ``(?!)``), or its ``exclude`` takes every line
  (it matches the empty string without any anchor or lookaround, or it is the
  ``match`` itself).
- A rule shadowed by an earlier one: the same ``match``, ``exclude`` and
  ``sources``, so it always fires together with it (a copy left behind).
- A rule that needs backtracking (backreferences, lookaround): no linear-time
  engine runs it, so it runs on Python's ``re`` with a CPU budget per line.

"Matches nothing" is decided on the regex's parse tree, conservatively: a
warning means it is certain. Each node maps the set of places a match can be
in to the set it can be in after the node, the places being whether a
character was consumed since the match began (then ``^`` and ``\A`` cannot
hold) and whether the match is at the end of the text (after ``\Z``), or at
it or before its final newline (after ``$``), where at most that newline can
follow. A construct the analysis does not know may lead anywhere; a character
class is empty only when it is negated and takes everything (``[^\s\S]``,
``[^\x00-\U0010ffff]``). Multi-line ``^`` and ``$``, word boundaries and
lookaround contents are assumed to hold.

Pure: no I/O, no logging.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tailhook.config import DEFAULT_LINE_BUDGET_S, RuleConfig
from tailhook.prefilter import needs_backtracking, parse

__all__ = ["RuleWarning", "lint", "matches_everything", "matches_nothing"]


@dataclass(frozen=True, slots=True)
class RuleWarning:
    """Something probably wrong with one rule, where it is written."""

    file: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: rule {self.rule}: {self.message}"


def lint(rules: Iterable[RuleConfig], *, line_budget_s: float = DEFAULT_LINE_BUDGET_S) -> list[RuleWarning]:
    """The warnings about *rules*, in rule order; disabled rules are skipped (they never run)."""
    warnings: list[RuleWarning] = []
    first: dict[tuple[str, str | None, frozenset[str] | None], RuleConfig] = {}

    def warn(rule: RuleConfig, message: str) -> None:
        warnings.append(RuleWarning(rule.file, rule.line, rule.name, message))

    for rule in rules:
        if not rule.enabled:
            continue
        if matches_nothing(rule.match):
            warn(rule, "can never match: its regex matches no text at all (an anchor where it cannot hold?)")
        elif rule.exclude is not None and (rule.exclude == rule.match or matches_everything(rule.exclude)):
            warn(rule, "can never fire: its exclude matches every line its match does")
        sources = frozenset(rule.sources) if rule.sources is not None else None
        earlier = first.setdefault((rule.match, rule.exclude, sources), rule)
        if earlier is not rule:
            warn(
                rule,
                f"always fires together with rule {earlier.name} ({earlier.file}:{earlier.line}): "
                "same match, exclude and sources (a copy left behind?)",
            )
        if needs_backtracking(rule.match):
            warn(
                rule,
                "uses a backreference or lookaround, which no linear-time engine runs: it runs on Python's re, "
                f"each line cut off after {line_budget_s:g}s of CPU (rules.line_budget), "
                "instead of in time linear in the line",
            )
    return warnings


# ── matches nothing ─────────────────────────────────────────────────────────

_FREE, _DOLLAR, _END = "free", "dollar", "end"
"""Where a match can be: anywhere; at the end or before a final newline (after ``$``); at the end."""
_Place = tuple[bool, str]
"""(a character was consumed since the match began, where it is)."""
_Places = frozenset[_Place]
_NOWHERE: _Places = frozenset()
_START: _Places = frozenset({(False, _FREE)})
_SETTLE = 8
"""Repeats past this many give the places that this many gives: every step only moves
forward (consumed, then $, then the end), and there are six places."""

_COMPLEMENTS = [
    (f"CATEGORY_{uni}{name}", f"CATEGORY_{uni}NOT_{name}")
    for uni in ("", "UNI_", "LOC_")
    for name in ("DIGIT", "SPACE", "WORD", "LINEBREAK")
]
_TAKES_NEWLINE = {"SPACE": True, "NOT_SPACE": False, "DIGIT": False, "NOT_DIGIT": True}
_TAKES_NEWLINE |= {"WORD": False, "NOT_WORD": True, "LINEBREAK": True, "NOT_LINEBREAK": False}
_NEWLINE = 10
_LAST_CODE_POINT = 0x10FFFF


def matches_nothing(pattern: str) -> bool:
    """Whether no text at all has a match of *pattern* (``False`` when unsure)."""
    parsed = parse(pattern)
    if parsed is None:
        return False
    try:
        return not _sequence(list(parsed), parsed.state.flags, _START)
    except RecursionError:
        return False


def matches_everything(pattern: str) -> bool:
    """Whether *pattern* matches every text: it matches the empty string, with no anchor or lookaround.

    (Without those, the path that matched the empty string matches at the start of any text.)
    """
    parsed = parse(pattern)
    if parsed is None or any(name in ("AT", "ASSERT", "ASSERT_NOT") for name, _ in _walk(list(parsed))):
        return False
    return re.search(pattern, "") is not None


def _sequence(items: list[tuple[Any, Any]], flags: int, places: _Places) -> _Places:
    for op, arg in items:
        places = _node(str(op), arg, flags, places)
        if not places:
            break
    return places


def _node(name: str, arg: Any, flags: int, places: _Places) -> _Places:
    step = _STEPS.get(name)
    if step is None:
        return _anywhere(places)  # a backreference, or what this does not know
    return step(arg, flags, places)


def _character_class(items: Any, flags: int, places: _Places) -> _Places:
    return _NOWHERE if _empty_class(items) else _consume(places, newline=_class_takes_newline(items))


def _group(arg: Any, flags: int, places: _Places) -> _Places:
    _, add, remove, items = arg
    return _sequence(list(items), (flags | add) & ~remove, places)


def _branch(arg: Any, flags: int, places: _Places) -> _Places:
    return frozenset().union(*(_sequence(list(items), flags, places) for items in arg[1]))


def _lookaround(arg: Any, flags: int, places: _Places) -> _Places:
    direction, items = arg
    if direction < 0:  # lookbehind: only whether it can match at all
        return places if _sequence(list(items), flags, _START) else _NOWHERE
    return frozenset(place for place in places if _sequence(list(items), flags, frozenset({place})))


def _conditional(arg: Any, flags: int, places: _Places) -> _Places:
    _, yes, no = arg
    return _sequence(list(yes), flags, places) | (_sequence(list(no), flags, places) if no else places)


def _repeat(arg: Any, flags: int, places: _Places) -> _Places:
    low, high, body = arg
    items = list(body)
    for _ in range(min(low, _SETTLE)):
        places = _sequence(items, flags, places)
        if not places:
            return _NOWHERE
    reached = set(places)
    for _ in range(min(high - low, _SETTLE)):
        places = _sequence(items, flags, places)
        if places <= reached:
            break
        reached |= places
    return frozenset(reached)


_Step = Callable[[Any, int, _Places], _Places]
_STEPS: dict[str, _Step] = {
    "LITERAL": lambda arg, flags, places: _consume(places, newline=arg == _NEWLINE),
    "NOT_LITERAL": lambda arg, flags, places: _consume(places, newline=arg != _NEWLINE),
    "ANY": lambda arg, flags, places: _consume(places, newline=bool(flags & re.DOTALL)),
    "IN": _character_class,
    "AT": lambda arg, flags, places: _anchor(str(arg), flags, places),
    "SUBPATTERN": _group,
    "ATOMIC_GROUP": lambda arg, flags, places: _sequence(list(arg), flags, places),
    "BRANCH": _branch,
    "MAX_REPEAT": _repeat,
    "MIN_REPEAT": _repeat,
    "POSSESSIVE_REPEAT": _repeat,
    "ASSERT": _lookaround,
    "ASSERT_NOT": lambda arg, flags, places: places if list(arg[1]) else _NOWHERE,  # (?!) always fails
    "GROUPREF_EXISTS": _conditional,
    "FAILURE": lambda arg, flags, places: _NOWHERE,
}
"""How each construct moves the places a match can be in."""


def _consume(places: _Places, *, newline: bool) -> _Places:
    """After one character (*newline*: it may be a newline)."""
    after: set[_Place] = set()
    for _, where in places:
        if where == _FREE:
            after.add((True, _FREE))
        elif where == _DOLLAR and newline:
            after.add((True, _END))
    return frozenset(after)


def _anywhere(places: _Places) -> _Places:
    """After any text, empty or not."""
    once = _consume(places, newline=True)
    return places | once | _consume(once, newline=True)


def _anchor(code: str, flags: int, places: _Places) -> _Places:
    multiline = bool(flags & re.MULTILINE)
    if code == "AT_BEGINNING_STRING" or (code == "AT_BEGINNING" and not multiline):
        return frozenset(place for place in places if not place[0])
    if code == "AT_END_STRING":
        return frozenset((consumed, _END) for consumed, _ in places)
    if code == "AT_END" and not multiline:
        return frozenset((consumed, _END if where == _END else _DOLLAR) for consumed, where in places)
    return places


def _empty_class(items: list[tuple[Any, Any]]) -> bool:
    """Whether a character class takes no character: negated, and taking everything."""
    if not items or str(items[0][0]) != "NEGATE":
        return False
    categories = {str(arg) for op, arg in items if str(op) == "CATEGORY"}
    if any(yes in categories and no in categories for yes, no in _COMPLEMENTS):
        return True
    spans = sorted(span for op, arg in items[1:] if (span := _span(str(op), arg)) is not None)
    covered = -1
    for low, high in spans:
        if low > covered + 1:
            break
        covered = max(covered, high)
    return covered >= _LAST_CODE_POINT


def _span(name: str, arg: Any) -> tuple[int, int] | None:
    if name == "LITERAL":
        return (arg, arg)
    if name in ("RANGE", "RANGE_UNI_IGNORE"):
        return (arg[0], arg[1])
    return None


def _class_takes_newline(items: list[tuple[Any, Any]]) -> bool:
    """Whether a character class may take a newline (``True`` when unsure)."""
    negated = bool(items) and str(items[0][0]) == "NEGATE"
    taken = False
    for op, arg in items:
        name = str(op)
        if name == "NEGATE":
            continue
        span = _span(name, arg)
        if span is not None:
            taken |= span[0] <= _NEWLINE <= span[1]
            continue
        category = str(arg).removeprefix("CATEGORY_").removeprefix("UNI_") if name == "CATEGORY" else ""
        if category not in _TAKES_NEWLINE:
            return True
        taken |= _TAKES_NEWLINE[category]
    return taken != negated


def _walk(items: list[tuple[Any, Any]]) -> Iterator[tuple[str, Any]]:
    """Every node of a parse tree, depth first."""
    for op, arg in items:
        name = str(op)
        yield name, arg
        children: list[Any] = []
        if name == "SUBPATTERN":
            children = [arg[3]]
        elif name == "ATOMIC_GROUP":
            children = [arg]
        elif name == "BRANCH":
            children = list(arg[1])
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            children = [arg[2]]
        elif name in ("ASSERT", "ASSERT_NOT"):
            children = [arg[1]]
        elif name == "GROUPREF_EXISTS":
            children = [arg[1], arg[2]] if arg[2] else [arg[1]]
        for child in children:
            yield from _walk(list(child))

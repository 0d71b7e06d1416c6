"""The rules in rules.d/ over the sample and fixture lines give exactly what each expected.yaml says.

``examples/sample-logs/`` are the demo's lines; ``tests/fixtures/`` hold lines
for every rule, with near misses and hostile lines beside them. Each folder's
``expected.yaml`` maps its files to sources and lists every match in file,
line and rule order; its ``host:`` (default ``test-host``) is the ``{host}``.
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from tailhook.config import RuleConfig, load_config
from tailhook.events import Line
from tailhook.rules import RuleSet

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "examples" / "sample-logs" / "expected.yaml"
FIXTURES = ROOT / "tests" / "fixtures" / "expected.yaml"

_parser: Any = importlib.import_module("re._parser")
_constants: Any = importlib.import_module("re._constants")


@pytest.fixture
def example_rules(monkeypatch: pytest.MonkeyPatch) -> tuple[RuleConfig, ...]:
    monkeypatch.delenv("TAILHOOK_LOG_DIR", raising=False)
    return load_config(ROOT / "config.example.yaml").rules


def matches(expected_file: Path, rules: tuple[RuleConfig, ...]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The expectation file, and what *rules* make of the log files it names, in its shape."""
    expected = yaml.safe_load(expected_file.read_text(encoding="utf-8"))
    ruleset = RuleSet(rules, host=expected.get("host", "test-host"))
    found = []
    for name, source in expected["sources"].items():
        text = (expected_file.parent / name).read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            found += [
                {"file": name, "line": number, "rule": e.rule, "captures": dict(e.captures), "title": e.title}
                for e in ruleset.match(Line(text=line, source=source, time=0.0))
            ]
    return expected, found


@pytest.mark.parametrize("expected_file", [SAMPLES, FIXTURES], ids=["sample-logs", "fixtures"])
def test_lines_match_as_expected(expected_file: Path, example_rules: tuple[RuleConfig, ...]) -> None:
    expected, found = matches(expected_file, example_rules)
    assert found == expected["matches"]


def test_every_rule_has_a_fixture_line(example_rules: tuple[RuleConfig, ...]) -> None:
    rule_files = {Path(rule.file).name for rule in example_rules if Path(rule.file).parent.name == "rules.d"}
    assert rule_files == {path.name for path in (ROOT / "rules.d").glob("*.yaml")}
    _, found = matches(FIXTURES, example_rules)
    fired = {match["rule"] for match in found}
    assert [rule.name for rule in example_rules if rule.name not in fired] == []


def test_no_two_rules_share_a_regex(example_rules: tuple[RuleConfig, ...]) -> None:
    names_by_regex = defaultdict(list)
    for rule in example_rules:
        names_by_regex[rule.match].append(rule.name)
    assert [names for names in names_by_regex.values() if len(names) > 1] == []


def test_every_regex_suits_a_linear_time_engine(example_rules: tuple[RuleConfig, ...]) -> None:
    """No backreference, lookaround, atomic group or possessive repeat (RE2 and Hyperscan have none), and
    no repeat of a repeat, which Python's backtracking (that decides every match) can take exponential time on."""
    problems = [
        f"{rule.name}: {problem}"
        for rule in example_rules
        for pattern in (rule.match, rule.exclude)
        if pattern
        for problem in backtracking_only(_parser.parse(pattern))
    ]
    assert problems == []


_FORBIDDEN = {
    "GROUPREF": "a backreference",
    "GROUPREF_EXISTS": "a conditional group",
    "ASSERT": "a lookahead or lookbehind",
    "ASSERT_NOT": "a negative lookahead or lookbehind",
    "ATOMIC_GROUP": "an atomic group",
    "POSSESSIVE_REPEAT": "a possessive repeat",
}
_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}


def backtracking_only(items: Any) -> list[str]:
    """What in the parsed pattern *items* a linear-time engine cannot run, or Python may run exponentially."""
    problems = []
    for op, arg in items:
        name = str(op)
        if name in _FORBIDDEN:
            problems.append(_FORBIDDEN[name])
        for nested in _children(name, arg):
            problems += backtracking_only(nested)
        if name in _REPEATS and arg[1] > 1 and any(str(o) in _REPEATS and a[1] > 1 for o, a in _walk(arg[2])):
            problems.append("a repeat inside a repeat")
    return problems


def _children(name: str, arg: Any) -> list[Any]:
    """The parsed sub-patterns of one item."""
    if name in _REPEATS:
        return [arg[2]]
    if name == "SUBPATTERN":
        return [arg[3]]
    if name == "BRANCH":
        return list(arg[1])
    if name in ("ASSERT", "ASSERT_NOT"):
        return [arg[1]]
    if name == "GROUPREF_EXISTS":
        return [branch for branch in arg[1:] if branch is not None]
    return []


def _walk(items: Any) -> list[tuple[Any, Any]]:
    """Every (op, arg) in *items*, nested ones too."""
    found = []
    for op, arg in items:
        found.append((op, arg))
        for nested in _children(str(op), arg):
            found += _walk(nested)
    return found

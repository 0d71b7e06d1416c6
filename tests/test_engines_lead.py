"""``engines.unbounded_lead_dropped``: what Hyperscan looks for when a rule opens with an unbounded repeat."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tailhook.engines import available, build, unbounded_lead_dropped
from tailhook.prefilter import byte_superset, required_literal
from tailhook.rules import decode_line
from tests.test_engines import HOSTILE, TRICKY, corpora, split

ROOT = Path(__file__).resolve().parent.parent
BENCHMARK_RULES = [r["match"] for r in yaml.safe_load((ROOT / "benchmarks/rulesets/200.yaml").read_text())["rules"]]


def superset(pattern: str) -> str:
    translated = byte_superset(pattern)
    assert translated is not None
    return translated


def test_an_unbounded_lead_is_dropped_up_to_the_literal() -> None:
    assert unbounded_lead_dropped(superset(r"(?P<file>/\S+): (?P<signature>[\w.-]+) FOUND")) == r"\x20FOUND"


def test_what_lies_between_the_last_unbounded_repeat_and_the_literal_stays() -> None:
    pattern = r"(?P<iface>(?:eth|en|bond)\w*): (?:NIC )?[Ll]ink (?:is )?[Dd]own"
    assert unbounded_lead_dropped(superset(pattern)) == r"\x3a\x20(?:NIC\x20)?[Ll]ink\x20(?:is\x20)?[Dd]own"


@pytest.mark.parametrize(
    "pattern",
    [
        r"sshd\[\d+\]: Failed password for (?P<user>\S+)",  # opens with its literal: Hyperscan starts there
        r"Kernel panic - not syncing: (?P<why>.+)",
        r"(?:a+|b) (?:x+|y) z",  # no run of 4 literal bytes
        r"ab{2,} (?:cd|ef)",
        r"\S+ ok here|\d+ error here",  # an alternation at the top
        r"(?P<n>\d{1,3}) items? lost",  # a bounded lead
    ],
)
def test_other_patterns_stay_whole(pattern: str) -> None:
    assert unbounded_lead_dropped(superset(pattern)) == superset(pattern)


@pytest.mark.parametrize("pattern", [*BENCHMARK_RULES, *TRICKY])
def test_the_tail_is_the_supersets_end_and_takes_every_line_the_rule_does(pattern: str) -> None:
    """The tail is what follows a piece of the superset: a line the rule matches holds it."""
    whole = superset(pattern)
    tail = unbounded_lead_dropped(whole)
    assert whole.endswith(tail) and tail
    wide = re.compile(tail.encode(), re.MULTILINE)
    rule = re.compile(pattern)
    for text in HOSTILE:
        if rule.search(text):
            assert wide.search(text.encode()), text


@pytest.mark.skipif(not available("hyperscan"), reason="the hyperscan wheel is not installed")
def test_hyperscan_picks_every_line_the_benchmark_rules_match() -> None:
    """Checked for the rules whose lead is dropped, on every corpus line (the loghub samples, when
    they are there, are what the benchmark's rules were written for)."""
    trimmed = [p for p in BENCHMARK_RULES if unbounded_lead_dropped(superset(p)) != superset(p)]
    assert len(trimmed) >= 10
    scanner = build(trimmed, "hyperscan")
    assert scanner.fallbacks == {}
    compiled = [(required_literal(p), re.compile(p)) for p in trimmed]  # the literal: a quicker test
    matched = 0
    for name, data in corpora():
        picked = scanner.chunk(data)
        end = -1
        for raw in split(data):
            end += len(raw) + 1
            text = decode_line(raw)
            wanted = {i for i, (literal, rule) in enumerate(compiled) if literal in text and rule.search(text)}
            assert wanted <= set(picked.get(end, ())), (name, text)
            matched += bool(wanted)
    assert matched > 0


@pytest.mark.skipif(not available("hyperscan"), reason="the hyperscan wheel is not installed")
def test_hyperscan_looks_for_the_tail() -> None:
    """A few more lines than the rule's for Python to decide: those with the tail and not the lead."""
    scanner = build([r"(?P<file>/\S+): (?P<signature>[\w.-]+) FOUND"], "hyperscan")
    data = b"/tmp/eicar.com: Eicar-Test-Signature FOUND\nnothing here\nall FOUND\n"
    assert scanner.chunk(data) == {42: [0], 65: [0]}

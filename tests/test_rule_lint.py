"""What `tailhook check` warns about in rules that load: never firing, shadowed, backtracking."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from tailhook.config import RuleConfig, load_config
from tailhook.rule_lint import RuleWarning, lint, matches_everything, matches_nothing
from tests.conftest import WriteFile
from tests.daemon import run_cli

ROOT = Path(__file__).resolve().parent.parent

# Every text of up to four characters over a, b and a newline: what "matches nothing" is checked against.
TEXTS = ["".join(chars) for size in range(5) for chars in itertools.product("ab\n", repeat=size)]


def rule(name: str, match: str, line: int = 1, **kwargs: object) -> RuleConfig:
    return RuleConfig(name=name, file="r.yaml", line=line, match=match, **kwargs)  # type: ignore[arg-type]


# ── matches nothing / everything ────────────────────────────────────────────


@pytest.mark.parametrize(
    "pattern",
    [
        r"a^b",
        r"$x",
        r"\Zx",
        r"x\Ay",
        r"[^\s\S]",
        r"(?i)[^\W\w]",
        r"[^\d\D\n]",
        r"[^\x00-\U0010ffff]",
        r"error: [^\s\S]+",
        r"(?!)",
        r"(?:a|b^)c^",
        r"$\n\n",
        r"(?s)$..",
        r"x(?=^)",
        r"(?<=a^)b",
        r"(a)\1^",
    ],
)
def test_regexes_that_match_no_text(pattern: str) -> None:
    assert matches_nothing(pattern)
    assert not any(re.search(pattern, text) for text in TEXTS)


@pytest.mark.parametrize(
    "pattern",
    [
        r"^a",
        r"a*^b",  # a* may take nothing
        r"$\n",  # $ holds before a final newline
        r"(?s)$.",
        r"(?m)a^b",  # multi-line: ^ after a newline
        r"(?m)$x",
        r"x|a^b",
        r"(?:a^)?b",
        r"(?:x^){0,3}",
        r"(?:^a){0}b",
        r"\Z^",  # the empty text
        r"^$",
        r"\b\B",  # not decided: taken as possible
        r"(?=a)b",  # not decided either
        r"[^\n]",
        r"(a)?(?(1)^|b)",
    ],
)
def test_regexes_that_may_match_are_not_flagged(pattern: str) -> None:
    assert not matches_nothing(pattern)


def test_matches_nothing_is_never_wrong_on_short_texts() -> None:
    """Every regex of a few pieces that it says matches nothing matches none of TEXTS."""
    pieces = ["a", r"\n", "^", "$", r"\A", r"\Z", ".", r"[^a]", r"[^\s\S]", "(?:a|^)", "*", "?", "(?=a)", "(?!)"]
    flagged = 0
    for size in (1, 2, 3):
        for parts in itertools.product(pieces, repeat=size):
            pattern = "".join(parts)
            try:
                compiled = re.compile(pattern)
            except re.error:
                continue
            if matches_nothing(pattern):
                flagged += 1
                assert not any(compiled.search(text) for text in TEXTS), pattern
    assert flagged > 100


@pytest.mark.parametrize(("pattern", "every"), [("a*", True), ("(x|)", True), (r"\d*", True), ("", True)])
def test_matches_everything(pattern: str, every: bool) -> None:
    assert matches_everything(pattern) is every


@pytest.mark.parametrize("pattern", ["a", "^", r"\b", "(?=x)?", "$", "(a)?b"])
def test_does_not_match_everything(pattern: str) -> None:
    assert not matches_everything(pattern)


# ── lint ────────────────────────────────────────────────────────────────────


def test_a_rule_that_can_never_fire() -> None:
    found = lint(
        [
            rule("anchors", r"error^x", line=3),
            rule("takes-all", r"error", exclude=r"(?:debug)?", line=7),
            rule("self-excluding", r"error", exclude=r"error", sources=("app",), line=9),
            rule("fine", r"error", exclude=r"^debug"),
        ]
    )
    assert [(w.rule, w.line) for w in found] == [("anchors", 3), ("takes-all", 7), ("self-excluding", 9)]
    assert str(found[0]) == (
        "r.yaml:3: rule anchors: can never match: its regex matches no text at all (an anchor where it cannot hold?)"
    )
    assert "its exclude matches every line its match does" in found[1].message


def test_a_rule_shadowed_by_an_identical_earlier_one() -> None:
    first = rule("first", r"panic", exclude="test", sources=("a", "b"), line=2)
    found = lint(
        [
            first,
            rule("copy", r"panic", exclude="test", sources=("b", "a"), line=8),  # the same sources, in another order
            rule("other-sources", r"panic", exclude="test", sources=("a",)),
            rule("no-exclude", r"panic", sources=("a", "b")),
            rule("everywhere", r"panic", exclude="test"),
        ]
    )
    assert found == [
        RuleWarning(
            "r.yaml", 8, "copy", "always fires together with rule first (r.yaml:2): same match, exclude and sources "
            "(a copy left behind?)"
        )
    ]  # fmt: skip


def test_a_rule_that_needs_backtracking() -> None:
    found = lint([rule("repeat", r"(\w+) \1"), rule("ahead", r"foo(?!bar)"), rule("plain", r"foo")], line_budget_s=0.25)
    assert [w.rule for w in found] == ["repeat", "ahead"]
    assert "each line cut off after 0.25s of CPU (rules.line_budget)" in found[0].message


def test_disabled_rules_are_not_linted() -> None:
    assert lint([rule("off", r"a^b", enabled=False), rule("on", r"a"), rule("off-copy", r"a", enabled=False)]) == []


def test_the_shipped_rules_draw_no_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAILHOOK_LOG_DIR", raising=False)
    assert lint(load_config(ROOT / "config.example.yaml").rules) == []


# ── tailhook check ──────────────────────────────────────────────────────────


def test_check_prints_warnings_with_file_line_and_rule_and_counts_disabled_rules(write: WriteFile) -> None:
    config = write(
        "tailhook.yaml",
        """
        state_dir: state
        sources: [{name: app, paths: ["logs/*.log"]}]
        rules: {paths: ["rules/*.yaml"]}
        """,
    )
    rules = write(
        "rules/r.yaml",
        """
        rules:
          - {name: panic, match: 'panic: (?P<what>.*)'}
          - {name: never, match: 'done$.'}
          - {name: panic-again, match: 'panic: (?P<what>.*)'}
          - {name: doubled, match: '(\\w+) \\1'}
          - {name: parked, match: 'a^b', enabled: false}
        """,
    )
    result = run_cli("check", "-c", str(config))

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{config}: OK: 1 sources, 5 rules (1 disabled), 0 destinations\n"
    warnings = result.stderr.splitlines()
    assert [w.split(": can never")[0].split(": always")[0].split(": uses")[0] for w in warnings] == [
        f"warning: {rules}:3: rule never",
        f"warning: {rules}:4: rule panic-again",
        f"warning: {rules}:5: rule doubled",
    ]
    assert f"always fires together with rule panic ({rules}:2)" in warnings[1]

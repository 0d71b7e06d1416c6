"""The fast path and plain ``re`` find the same (line, rule, captures), on every engine, line by line
and chunk by chunk, over our fixtures, the loghub samples (when ../shared is there) and hostile lines."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tailhook import engines
from tailhook.config import RuleConfig, load_config
from tailhook.engines import ENGINES, EngineUnavailable, available, build
from tailhook.events import Line
from tailhook.prefilter import CASE_FOLDS_BEYOND_ASCII, byte_superset, needs_backtracking, sample
from tailhook.rules import RuleSet, decode_line

ROOT = Path(__file__).resolve().parent.parent
LOGHUB = ROOT.parent / "shared" / "corpus" / "loghub"
INSTALLED = [engine for engine in ENGINES if available(engine)]

# Rules that probe where byte engines and Python's re part ways.
TRICKY = [
    r"Mounting .+:[ \t]+failed",  # a match Vectorscan 5.4.12 once missed
    r"(?i)error\b",
    r"(?i)kernel panic",  # K (Kelvin sign) and ſ fold into k and s
    r"\bfail(?:ed|ure)\b",
    r"^(?P<month>\w{3}) +\d+ [\d:]+ (?P<host>\S+) ",
    r"timeout$",
    r"\Acomplete\Z",
    r"user (?P<user>\w+) ",  # \w takes letters beyond ASCII
    r"\d{3}\s+\d",  # \d takes other scripts' digits, \s takes \x1c-\x1f
    r"caf[^a]",
    r"é+t",
    r"x.y",
    r"\ufffd",  # what invalid UTF-8 decodes to
    r"(?<=port )\d+(?! ssh)",
    r"(?P<word>\w+) \1",  # a backreference
    r"(?P<a>a)?(?(a)b|c)d",
    r"(?>ab|a)c",
    r"ab*+c",
    r"[^\n]{2,200}zz",
    r"(?s)begin.end",
    r"(?m)^second",
    r"(?x) fail \s+ (?P<n> \d+ )",
    r"[\u0100-\uffff]{2}",
    r"(?a)\w+@\w+",
]
HOSTILE = [
    "Mounting other filesystems: failedX",
    "mounting x: failed",
    "an ERROR here",
    "an errors here",
    "the \u212aernel \u017fays: kernel panic",  # KERNEL with a Kelvin sign and a long s
    "the KERNEL PANIC",
    "it failed; failure",
    "it failedx",
    "Nov  3 10:00:00 web-1 sshd[1]: x",
    "request timeout",
    "request timeout\r",
    "complete",
    "user Ünïcödé logged in",
    "user 李 logged in",
    "code \u0661\u0662\u0663\x1c7",
    "code 123\t9",
    "cafe caf\u00e9 cafa",
    "x\u00e9y xay",
    "bad \ufffd byte",
    "port 22 ssh port 23 x",
    "hello hello world",
    "bd cd abd",
    "abc ac",
    "abbbc ac",
    "a" * 300 + "zz",
    "begin\nend",
    "first\nsecond",
    "fail   42",
    "Āā x",
    "ab@cd ä@b",
    "",
    "\x00\x00\x00 padding",
    "tab\tseparated\tline",
]


def rule_configs(patterns: list[str]) -> list[RuleConfig]:
    return [RuleConfig(name=f"r{i}", file="t", line=i, match=p) for i, p in enumerate(patterns)]


def default_rules() -> list[RuleConfig]:
    """The shipped rules, each on every line (their ``sources:`` lifted)."""
    return [dataclasses.replace(c, sources=None) for c in load_config(ROOT / "config.example.yaml").rules]


def corpora() -> Iterator[tuple[str, bytes]]:
    yield "hostile", "\n".join(HOSTILE).encode() + b"\nbad \xff\xfe bytes\ncr line timeout\r\n"
    for folder in (ROOT / "examples" / "sample-logs", ROOT / "tests" / "fixtures"):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix not in (".yaml", ".gz"):
                yield str(path.relative_to(ROOT)), path.read_bytes()
    if LOGHUB.is_dir():
        for path in sorted(LOGHUB.glob("*.log")):
            yield f"loghub/{path.name}", path.read_bytes()


def naive(configs: list[RuleConfig], data: bytes) -> list[tuple[int, str, dict[str, str]]]:
    """Every rule's re on every line: the answer the fast path must give."""
    compiled = [(c.name, re.compile(c.match), re.compile(c.exclude) if c.exclude else None) for c in configs]
    found = []
    for number, raw in enumerate(split(data), 1):
        text = decode_line(raw)
        for name, pattern, exclude in compiled:
            match = pattern.search(text)
            if match and not (exclude and exclude.search(text)):
                found.append((number, name, {k: v or "" for k, v in match.groupdict().items()}))
    return found


def split(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    return lines[:-1] if lines and lines[-1] == b"" else lines


def by_lines(rules: RuleSet, data: bytes) -> list[tuple[int, str, dict[str, str]]]:
    found = []
    for number, raw in enumerate(split(data), 1):
        for event in rules.match(Line(text=decode_line(raw), source="s", time=0.0)):
            found.append((number, event.rule, dict(event.captures)))
    return found


def by_chunks(rules: RuleSet, data: bytes, chunk_bytes: int = 4096) -> list[tuple[int, str, dict[str, str]]]:
    """As the file source feeds chunks: whole lines, cut at the last newline within *chunk_bytes*."""
    found = []
    number_at = {0: 1}
    offset, number = 0, 1
    for raw in split(data):
        offset += len(raw) + 1
        number += 1
        number_at[offset] = number
    start = 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + chunk_bytes)
        end = len(data) if end < 0 or start + chunk_bytes >= len(data) else end + 1
        for line_start, events in rules.scan(
            data[start:end], source="s", make_line=lambda text: Line(text=text, source="s", time=0.0)
        ):
            found += [(number_at[start + line_start], e.rule, dict(e.captures)) for e in events]
        start = end
    return found


_NAIVE: dict[tuple[str, str], list[tuple[int, str, dict[str, str]]]] = {}
"""What every rule's re on every line finds, per rule set and corpus file."""


@pytest.mark.parametrize("engine", INSTALLED)
@pytest.mark.parametrize("rule_set", ["default", "tricky"])
def test_the_fast_path_finds_what_plain_re_finds(engine: str, rule_set: str) -> None:
    configs = default_rules() if rule_set == "default" else rule_configs(TRICKY)
    # a budget no search here comes near, even on a loaded machine: this test is about the engines
    rules = RuleSet(configs, host="h", engine=engine, line_budget_s=30.0)
    checked = 0
    for name, data in corpora():
        expected = _NAIVE.get((rule_set, name))
        if expected is None:  # the same for every engine: worked out once
            expected = _NAIVE[rule_set, name] = naive(configs, data)
        assert by_lines(rules, data) == expected, name
        assert by_chunks(rules, data) == expected, name
        checked += len(split(data))
    assert checked > 100
    assert not rules.over_budget


def test_every_engine_that_should_be_here_is() -> None:
    """The test command installs the fast engines; a silent fallback would make the tests above weaker."""
    assert INSTALLED == ["hyperscan", "re2", "re"]


def test_an_engine_that_is_not_installed_is_an_error_not_a_silent_fallback() -> None:
    with pytest.raises(EngineUnavailable, match="not installed"):
        build(["x"], "pcre")


@pytest.mark.parametrize("pattern", TRICKY)
def test_the_byte_pattern_is_a_superset_on_the_hostile_lines(pattern: str) -> None:
    superset = byte_superset(pattern)
    assert superset is not None
    wide = re.compile(superset.encode(), re.MULTILINE)
    for text in HOSTILE:
        if re.search(pattern, text):
            assert wide.search(text.encode()), (pattern, text)


def test_case_folding_beyond_ascii_is_exactly_the_listed_letters() -> None:
    """Every non-ASCII character that IGNORECASE folds into an ASCII letter belongs to a listed letter."""
    letters = {letter: re.compile(letter, re.IGNORECASE) for letter in map(chr, range(128)) if letter.isalpha()}
    folding = set()
    for code in range(128, 0x110000):
        if 0xD800 <= code < 0xE000:
            continue
        char = chr(code)
        if char.lower().isascii() or char.upper().isascii() or char.casefold().isascii():
            folding |= {letter for letter, compiled in letters.items() if compiled.fullmatch(char)}
    assert folding == CASE_FOLDS_BEYOND_ASCII


def test_backtracking_needs_are_told_apart() -> None:
    assert needs_backtracking(r"(?P<w>\w+) (?P=w)")
    assert needs_backtracking(r"(?<=port )\d+")
    assert not needs_backtracking(r"(a+)+$")
    assert not needs_backtracking(r"Failed password for (?P<user>\S+)")


# Lookarounds and conditionals the derivation does not follow, and a class with no ASCII member:
# the self-test at load passes these rules over (they still get the differential test above).
UNDERIVABLE = {r"(?<=port )\d+(?! ssh)", r"(?P<a>a)?(?(a)b|c)d", r"[\u0100-\uffff]{2}"}


@pytest.mark.parametrize("pattern", [*TRICKY, r"Failed password for (?:invalid user )?(?P<user>\S+)"])
def test_a_sample_line_is_derived_for_each_rule_but_the_few_it_cannot_follow(pattern: str) -> None:
    text = sample(pattern)
    if pattern in UNDERIVABLE:
        assert text is None
    else:
        assert text is not None, "the self-test at load would not cover this rule"
        assert re.search(pattern, text)


@pytest.mark.parametrize("engine", INSTALLED)
def test_a_backtracking_rule_cannot_stall_matching(engine: str) -> None:
    """``(a+)+b|c`` backtracks exponentially on a line of a's ending in c; a fast engine picks
    the line (it matches, at the c), so Python's re must be stopped by the budget."""
    configs = rule_configs([r"(a+)+b|c", r"alert (?P<what>\w+)"])
    rules = RuleSet(configs, host="h", engine=engine, line_budget_s=0.05)
    hostile = Line(text="alert now " + "a" * 40 + "c", source="s", time=0.0)
    started = time.monotonic()
    events = rules.match(hostile)
    assert time.monotonic() - started < 1.0
    assert [(e.rule, dict(e.captures)) for e in events] == [("r1", {"what": "now"})]
    assert rules.over_budget == {"r0": 1}
    # strained now: a flood of such lines costs little each
    started = time.monotonic()
    for _ in range(20):
        assert [e.rule for e in rules.match(hostile)] == ["r1"]
    assert time.monotonic() - started < 1.0
    assert rules.over_budget == {"r0": 21}
    # and an ordinary line still matches that rule
    assert [e.rule for e in rules.match(Line(text="xxc", source="s", time=0.0))] == ["r0"]


@pytest.mark.parametrize("engine", INSTALLED)
def test_a_backtracking_rule_cannot_stall_a_chunk(engine: str) -> None:
    """The chunk path keeps the budget with one timer for all its searches."""
    configs = rule_configs([r"(a+)+b|c", r"alert (?P<what>\w+)"])
    rules = RuleSet(configs, host="h", engine=engine, line_budget_s=0.05)
    hostile = b"alert now " + b"a" * 40 + b"c"
    data = b"\n".join([b"alert first", hostile, b"xxc", hostile, b"alert last"]) + b"\n"
    started = time.monotonic()
    found = rules.scan(data, source="s", make_line=lambda text: Line(text=text, source="s", time=0.0))
    assert time.monotonic() - started < 1.0
    assert [[e.rule for e in events] for _, events in found] == [["r1"], ["r1"], ["r0"], ["r1"], ["r1"]]
    assert rules.over_budget == {"r0": 2}


def test_end_anchors_stay_on_the_fast_engine() -> None:
    """Hyperscan takes ``$`` only at a pattern's end: such rules go without the line-end suffix."""
    patterns = [r"timeout$", r"\Acomplete\Z", r"(?:disk full$|quota)", r"x"]
    scanner = build(patterns, "hyperscan")
    assert scanner.fallbacks == {}
    data = b"a timeout\nquota hit quota\ncomplete\r\nno timeout here\ndisk full\n"
    assert scanner.chunk(data) == {9: [0], 25: [2], 35: [1], 61: [2]}


@pytest.mark.parametrize("engine", [e for e in INSTALLED if e != "re"])
def test_the_shipped_rules_all_run_on_the_fast_engine(engine: str) -> None:
    rules = RuleSet(default_rules(), host="h", engine=engine, sources=["s"])
    assert rules.fallbacks() == {}


@pytest.mark.parametrize("engine", INSTALLED)
def test_a_match_at_the_very_end_of_the_text_is_found(engine: str) -> None:
    """Hyperscan 5.4 (Vectorscan, as the wheel bundles it) can miss a match that ends exactly at
    the end of the buffer when the pattern ends in certain byte pairs: no line may end a buffer."""
    patterns = [r"\b(?:OK|KO)\b", r"c[bd]", r"(?:ab|cd)$"]
    scanner = build(patterns, engine)
    for n in (0, 15, 40, 67, 100):
        for text, expected in ((b"x" * n + b" KO", {0}), (b"x" * n + b"cd", {1, 2})):
            picked = scanner.line(text)  # candidates: never fewer (the literal prefilter may pick more)
            assert expected <= set(picked) and (engine == "re" or set(picked) == expected), (n, text)
            ends = scanner.chunk(b"first\n" + text)
            assert expected <= set(ends.get(6 + len(text), ())), (n, text)


@pytest.mark.parametrize("engine", INSTALLED)
def test_a_rule_matches_a_text_of_several_lines_once(engine: str) -> None:
    """A multiline event or a journal message may hold several lines: one event per rule still."""
    rules = RuleSet(rule_configs([r"error (?P<what>\w+)"]), host="h", engine=engine)
    events = rules.match(Line(text="Traceback\nerror one\nerror two", source="s", time=0.0))
    assert [(e.rule, dict(e.captures)) for e in events] == [("r0", {"what": "one"})]


@pytest.mark.skipif("hyperscan" not in INSTALLED, reason="the hyperscan wheel is not installed")
def test_a_cached_database_finds_what_a_compiled_one_finds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second build of the same rules loads the first's database (and which rules stayed off it)
    instead of compiling; a damaged cache file is ignored and written again."""
    configs = rule_configs([*TRICKY, "^$"])  # an empty line: a rule Hyperscan misses, left on the prefilter
    compiled = RuleSet(configs, host="h", engine="hyperscan", line_budget_s=30.0, sources=["s"], cache=tmp_path)
    assert list(compiled.fallbacks()) == [f"r{len(TRICKY)}"], "what stays off the engine survives the cache"
    (kept,) = tmp_path.glob("hyperscan-*.db")

    def no_compiling(*args: object) -> None:
        raise AssertionError("compiled although the cache holds these rules")

    with monkeypatch.context() as patched:
        patched.setattr(engines._Hyperscan, "_compile", no_compiling)
        loaded = RuleSet(configs, host="h", engine="hyperscan", line_budget_s=30.0, sources=["s"], cache=tmp_path)
        assert loaded.fallbacks() == compiled.fallbacks()
        for name, data in corpora():
            if not name.startswith("loghub/"):  # ours are enough here: the loghub lines test the engines above
                expected = naive(configs, data)
                assert by_lines(loaded, data) == expected, name
                assert by_chunks(loaded, data) == expected, name

    data = bytearray(kept.read_bytes())
    data[-100] ^= 0xFF  # a flipped bit in the database: the checksum in the header no longer holds
    kept.write_bytes(bytes(data))
    rebuilt = RuleSet(configs, host="h", engine="hyperscan", line_budget_s=30.0, sources=["s"], cache=tmp_path)
    assert rebuilt.fallbacks() == compiled.fallbacks()
    assert kept.read_bytes() != bytes(data), "the damaged file was written again"
    hostile = "\n".join(HOSTILE).encode() + b"\n"
    assert by_chunks(rebuilt, hostile) == naive(configs, hostile)


@pytest.mark.skipif("hyperscan" not in INSTALLED, reason="the hyperscan wheel is not installed")
def test_the_cache_keeps_only_the_latest_databases(tmp_path: Path) -> None:
    for count in range(engines._DatabaseCache.KEEP + 3):
        build([f"error number {count}", "panic"], "hyperscan", cache=tmp_path)
    assert len(list(tmp_path.glob("hyperscan-*.db"))) == engines._DatabaseCache.KEEP
    assert not list(tmp_path.glob(".hyperscan-*")), "no temporary file is left behind"


@pytest.mark.skipif("hyperscan" not in INSTALLED, reason="the hyperscan wheel is not installed")
def test_other_translating_code_makes_another_cache_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A development install changes prefilter.py or engines.py without a new version: its rules are
    compiled again, not loaded from what the old code made."""
    build(["panic"], "hyperscan", cache=tmp_path)
    monkeypatch.setattr(engines, "_code_version", lambda: "the same version, other code")
    build(["panic"], "hyperscan", cache=tmp_path)
    assert len(list(tmp_path.glob("hyperscan-*.db"))) == 2

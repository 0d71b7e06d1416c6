r"""What a fast engine may know of a Python regex: a byte pattern for a superset of its lines.

Python's ``re`` decides every match tailhook reports. A multi-pattern engine
(Hyperscan, RE2) only picks the lines worth asking ``re`` about, so what it is
given must find *every* line ``re`` would match, and may find a few more.
``byte_superset`` turns a rule's regex into such a pattern, over the line's
UTF-8 bytes, in the syntax both engines share. Each construct becomes one that
accepts at least as much:

- A single character (literal, class, ``.``) becomes the exact set of ASCII
  bytes Python's class accepts, worked out by asking ``re`` itself for each of
  the 128 (so ``\s``, ``\d``, ``\w`` and case folding are Python's, not the
  engine's), plus ``[\x80-\xff]+`` when the class may take a non-ASCII
  character: one character of UTF-8 (or one U+FFFD that stands for invalid
  bytes) is one or more bytes of ``\x80-\xff``. Case-insensitive ``i``, ``k``
  and ``s`` take the non-ASCII letters Python folds into them (``İ ı K ſ``).
- A non-ASCII literal becomes its UTF-8 bytes (U+FFFD: any non-ASCII bytes).
- Assertions the bytes cannot decide exactly are dropped (``\b``, ``\B``,
  lookahead, lookbehind); dropping an assertion only widens the match.
- ``^`` and ``$`` hold at line ends (the engine runs multi-line); ``$`` allows a
  CR before it, since the file source drops a line's trailing CR.
- Atomic groups and possessive repeats match like plain ones (wider); a
  backreference matches anything; a conditional takes either branch; bounds
  above ``MAX_BOUND`` are lifted.

``None`` means the regex could not be read (it then stays on the literal
prefilter). ``required_literal``, the older and cheaper prefilter, is kept for
rules a fast engine does not take and for the ``re`` engine.
"""

from __future__ import annotations

import functools
import importlib
import re
from typing import Any

__all__ = [
    "CASE_FOLDS_BEYOND_ASCII",
    "MAX_BOUND",
    "byte_superset",
    "needs_backtracking",
    "parse",
    "required_literal",
    "sample",
]

try:  # the regex parser: private, but stable across 3.11-3.13
    _sre: Any = importlib.import_module("re._constants")
    _sre_parse: Any = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover - then every rule stays on plain re
    _sre = _sre_parse = None

MAX_BOUND = 64
"""A repeat bound above this becomes unbounded: engines compile large bounded repeats slowly."""

CASE_FOLDS_BEYOND_ASCII = frozenset("iIkKsS")
"""The ASCII letters that ``re.IGNORECASE`` also matches to a non-ASCII letter (İ ı, K, ſ)."""

_HIGH = r"[\x80-\xff]+"
_CATEGORIES = {
    "CATEGORY_DIGIT": r"\d",
    "CATEGORY_NOT_DIGIT": r"\D",
    "CATEGORY_SPACE": r"\s",
    "CATEGORY_NOT_SPACE": r"\S",
    "CATEGORY_WORD": r"\w",
    "CATEGORY_NOT_WORD": r"\W",
}
_PYTHON_FLAGS = re.IGNORECASE | re.DOTALL | re.ASCII


def parse(pattern: str) -> Any:
    """The regex parser's tree of *pattern* (private to ``re``, stable across 3.11-3.13); ``None``
    when it cannot be had."""
    if _sre_parse is None:
        return None
    try:
        return _sre_parse.parse(pattern)
    except Exception:
        return None


# ── the superset pattern ────────────────────────────────────────────────────


def byte_superset(pattern: str) -> str | None:
    """A byte regex (ASCII text, ``\\xHH`` escapes) that matches every line *pattern* matches.

    Meant for an engine running multi-line over UTF-8 bytes; ``None`` when
    *pattern* cannot be read.
    """
    parsed = parse(pattern)
    if parsed is None:
        return None
    try:
        return _Translation().sequence(list(parsed), parsed.state.flags)
    except _Unsupported:
        return None


class _Unsupported(Exception):
    """A construct this translation does not know."""


class _Translation:
    def sequence(self, items: list[tuple[Any, Any]], flags: int) -> str:
        return "".join(self.node(op, arg, flags) for op, arg in items)

    def node(self, op: Any, arg: Any, flags: int) -> str:  # noqa: PLR0911 - one case per construct
        name = str(op)
        if name in ("LITERAL", "NOT_LITERAL", "ANY", "IN"):
            return _one_character(name, arg, flags)
        if name == "SUBPATTERN":
            _, add, remove, items = arg
            return f"(?:{self.sequence(list(items), (flags | add) & ~remove)})"
        if name == "ATOMIC_GROUP":
            return f"(?:{self.sequence(list(arg), flags)})"
        if name == "BRANCH":
            return "(?:" + "|".join(self.sequence(list(items), flags) for items in arg[1]) + ")"
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, items = arg
            body = self.node(items[0][0], items[0][1], flags) if len(items) == 1 else self.sequence(list(items), flags)
            if isinstance(body, _Wide):  # a repeated class: one byte class (each character is 1-4 bytes)
                return self.repeat(low, high if high is _sre.MAXREPEAT else 4 * high, body.bytes, group=False)
            return self.repeat(low, high, body)
        if name == "AT":
            return _anchor(str(arg))
        if name in ("ASSERT", "ASSERT_NOT"):
            return ""
        if name == "GROUPREF":
            return r"[\x00-\xff]*"
        if name == "GROUPREF_EXISTS":
            _, yes, no = arg
            branches = [self.sequence(list(yes), flags), self.sequence(list(no), flags) if no else ""]
            return "(?:" + "|".join(branches) + ")"
        raise _Unsupported(name)

    @staticmethod
    def repeat(low: int, high: int, body: str, *, group: bool = True) -> str:
        if not body:
            return ""
        low = min(low, MAX_BOUND)
        unbounded = high is _sre.MAXREPEAT or high > MAX_BOUND
        if unbounded:
            bounds = "*" if low == 0 else ("+" if low == 1 else f"{{{low},}}")
        elif high == low:
            bounds = f"{{{low}}}"
        else:
            bounds = "?" if (low, high) == (0, 1) else f"{{{low},{high}}}"
        return f"(?:{body}){bounds}" if group else f"{body}{bounds}"


def _anchor(name: str) -> str:
    if name in ("AT_BEGINNING", "AT_BEGINNING_LINE", "AT_BEGINNING_STRING"):
        return "^"
    if name in ("AT_END", "AT_END_LINE", "AT_END_STRING"):
        return r"\r?$"
    return ""  # word boundaries: decided by Python


def _one_character(name: str, arg: Any, flags: int) -> str:
    if name == "LITERAL" and arg >= 0x80 and not flags & re.IGNORECASE:
        if arg == 0xFFFD:  # a replacement character: what invalid bytes decode to
            return _HIGH
        return "".join(f"\\x{byte:02x}" for byte in chr(arg).encode("utf-8", "surrogatepass"))
    python = _python_class(name, arg)
    ascii_bytes = _ascii_matches(python, flags & _PYTHON_FLAGS)
    beyond = _may_match_beyond_ascii(name, arg, flags)
    if not ascii_bytes:
        if not beyond:
            raise _Unsupported("a class that matches nothing")
        return _Wide(_HIGH, r"[\x80-\xff]")
    if len(ascii_bytes) == 1 and not beyond:
        return _byte(ascii_bytes[0])
    byte_class = _byte_class(ascii_bytes)
    if not beyond:
        return byte_class
    return _Wide(f"(?:{byte_class}|{_HIGH})", byte_class[:-1] + r"\x80-\xff]")


class _Wide(str):
    """One character that may be ASCII or not: as a pattern for one character, and as the byte
    class that a repeat of it may use instead (a run of them is a run of those bytes)."""

    bytes: str

    def __new__(cls, pattern: str, byte_class: str) -> _Wide:
        made = super().__new__(cls, pattern)
        made.bytes = byte_class
        return made


def _python_class(name: str, arg: Any) -> str:
    """One character of the regex as a Python pattern of its own."""
    if name == "LITERAL":
        return re.escape(chr(arg))
    if name == "NOT_LITERAL":
        return f"[^{re.escape(chr(arg))}]"
    if name == "ANY":
        return "."
    parts: list[str] = []
    for op, value in arg:
        kind = str(op)
        if kind == "NEGATE":
            parts.insert(0, "^")
        elif kind == "LITERAL":
            parts.append(re.escape(chr(value)))
        elif kind == "RANGE":
            parts.append(f"{re.escape(chr(value[0]))}-{re.escape(chr(value[1]))}")
        elif kind == "CATEGORY" and str(value) in _CATEGORIES:
            parts.append(_CATEGORIES[str(value)])
        else:
            raise _Unsupported(kind)
    return f"[{''.join(parts)}]"


@functools.cache
def _ascii_matches(python: str, flags: int) -> tuple[int, ...]:
    """The ASCII bytes Python's *python* (one character) matches, asked of ``re`` itself."""
    compiled = re.compile(python, flags)
    return tuple(b for b in range(128) if compiled.fullmatch(chr(b)))


def _may_match_beyond_ascii(name: str, arg: Any, flags: int) -> bool:
    if name == "LITERAL":
        return arg >= 0x80 or bool(flags & re.IGNORECASE and chr(arg) in CASE_FOLDS_BEYOND_ASCII)
    if name == "IN":
        for op, value in arg:
            kind = str(op)
            if kind in ("NEGATE", "CATEGORY") or (kind == "LITERAL" and value >= 0x80):
                return True
            if kind == "RANGE" and value[1] >= 0x80:
                return True
        return bool(flags & re.IGNORECASE)
    return True  # ., [^x]


def _byte(value: int) -> str:
    return chr(value) if chr(value).isalnum() else f"\\x{value:02x}"


def _byte_class(values: tuple[int, ...]) -> str:
    runs: list[str] = []
    start = previous = values[0]
    for value in (*values[1:], None):
        if value is not None and value == previous + 1:
            previous = value
            continue
        runs.append(_byte(start) if start == previous else f"{_byte(start)}-{_byte(previous)}")
        if value is not None:
            start = previous = value
    return f"[{''.join(runs)}]"


# ── what else the parse tree tells ──────────────────────────────────────────


def needs_backtracking(pattern: str) -> bool:
    """Whether *pattern* uses what no linear-time engine can run: backreferences or lookaround."""
    parsed = parse(pattern)
    if parsed is None:
        return False
    return _walk_any(list(parsed), {"GROUPREF", "GROUPREF_EXISTS", "ASSERT", "ASSERT_NOT"})


def _walk_any(items: list[tuple[Any, Any]], names: set[str]) -> bool:
    for op, arg in items:
        if str(op) in names:
            return True
        for child in _children(op, arg):
            if _walk_any(child, names):
                return True
    return False


def _children(op: Any, arg: Any) -> list[list[tuple[Any, Any]]]:  # noqa: PLR0911 - one case per construct
    name = str(op)
    if name == "SUBPATTERN":
        return [list(arg[3])]
    if name == "ATOMIC_GROUP":
        return [list(arg)]
    if name == "BRANCH":
        return [list(items) for items in arg[1]]
    if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
        return [list(arg[2])]
    if name in ("ASSERT", "ASSERT_NOT"):
        return [list(arg[1])]
    if name == "GROUPREF_EXISTS":
        return [list(arg[1])] + ([list(arg[2])] if arg[2] else [])
    return []


def required_literal(pattern: str) -> str:
    """The longest run of plain characters that every match of *pattern* contains.

    ``""`` when there is none (or the pattern ignores case). A line without it
    cannot match, and ``in`` finds that out far faster than the regex engine.
    """
    parsed = parse(pattern)
    if parsed is None or parsed.state.flags & re.IGNORECASE:
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


def sample(pattern: str) -> str | None:
    """A short text *pattern* matches, derived from it; ``None`` when the derivation fails.

    Used to self-test a fast engine on each rule at load: the engine must pick
    the sample line, or the rule does not use that engine.
    """
    parsed = parse(pattern)
    if parsed is None:
        return None
    try:
        text = _Sample().sequence(list(parsed), parsed.state.flags)
    except _Unsupported:
        return None
    return text if re.search(pattern, text) else None


class _Sample:
    def __init__(self) -> None:
        self.groups: dict[int, str] = {}

    def sequence(self, items: list[tuple[Any, Any]], flags: int) -> str:
        return "".join(self.node(op, arg, flags) for op, arg in items)

    def node(self, op: Any, arg: Any, flags: int) -> str:  # noqa: PLR0911 - one case per construct
        name = str(op)
        if name == "LITERAL":
            return chr(arg)
        if name in ("NOT_LITERAL", "ANY", "IN"):
            found = _ascii_matches(_python_class(name, arg), flags & _PYTHON_FLAGS)
            printable = [b for b in found if 0x20 <= b < 0x7F] or list(found)
            if not printable:
                raise _Unsupported("no ASCII character")
            return chr(printable[0])
        if name == "SUBPATTERN":
            group, add, remove, items = arg
            text = self.sequence(list(items), (flags | add) & ~remove)
            if group is not None:
                self.groups[group] = text
            return text
        if name == "ATOMIC_GROUP":
            return self.sequence(list(arg), flags)
        if name == "BRANCH":
            return self.sequence(list(arg[1][0]), flags)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _, items = arg
            return "".join(self.sequence(list(items), flags) for _ in range(max(low, 1)))
        if name in ("AT", "ASSERT", "ASSERT_NOT"):
            return ""
        if name == "GROUPREF":
            return self.groups.get(arg, "")
        raise _Unsupported(name)

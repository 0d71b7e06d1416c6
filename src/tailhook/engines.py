r"""Engines that pick, in one pass for all rules, the lines worth asking Python's ``re`` about.

A ``Scanner`` is built once per set of rules. Given one line's bytes, or a
chunk of whole lines (``\n``-separated), it names the rules that may match
each line. It may name a rule that then does not match (Python decides); it
never leaves out one that does. ``prefilter.byte_superset`` makes each rule's
pattern wide enough for that.

Engines, best first (``rules.engine: auto`` takes the first installed):

``hyperscan``
    All rules in one Hyperscan database, scanned over whole chunks. Each
    pattern is compiled as ``(?:P)[^\n]*$`` so that a line reports each rule
    at most once, at the line's end: the offset that names the line. P is the
    superset less a lead that would make Hyperscan run an automaton over every
    byte (``unbounded_lead_dropped``).
``re2``
    All rules in one ``re2.Set``, asked line by line (a chunk with no match
    at all is passed over in one call).
``re``
    No multi-pattern engine: a rule is tried on a line only when the line
    holds the rule's required literal (``prefilter.required_literal``).

A rule a fast engine cannot take (its pattern does not translate, does not
compile, matches an empty line, or the engine misses the sample line derived
from it at load) stays on the literal prefilter, beside the engine; ``fallbacks``
says which and why. Lines are bytes: UTF-8 as the source read them.

Compiling a Hyperscan database for hundreds of rules takes most of a second.
Given a *cache* folder, ``build`` keeps what it built there (the serialized
database and which rules stayed off it), named by a hash of the patterns, of
the tailhook and Hyperscan versions and of the code that translates rules, and a later build of the same
patterns loads it instead: a restart, or another ``tailhook test`` run,
starts at once. A cache file that does not check out is ignored and rebuilt.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

from tailhook import __version__
from tailhook import prefilter as _prefilter_module
from tailhook._files import private_folder
from tailhook.prefilter import byte_superset, required_literal, sample

__all__ = [
    "ENGINES",
    "LEAD_LITERAL_BYTES",
    "EngineUnavailable",
    "Scanner",
    "available",
    "best_available",
    "build",
    "unbounded_lead_dropped",
]

log = logging.getLogger(__name__)

ENGINES = ("hyperscan", "re2", "re")
"""Every engine name, best first."""


class EngineUnavailable(Exception):
    """The engine asked for is not installed."""


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def available(engine: str) -> bool:
    """Whether *engine* can run here (its wheel is installed)."""
    if engine == "hyperscan":
        return _module("hyperscan") is not None
    if engine == "re2":
        return _module("re2") is not None
    return engine == "re"


def best_available() -> str:
    return next(name for name in ENGINES if available(name))


class Scanner(Protocol):
    """Which rules may match which lines. Rules are numbered by their place in the list built from."""

    engine: str
    fallbacks: dict[int, str]
    """Rules left on the literal prefilter, each with the reason."""

    def line(self, data: bytes) -> list[int]:
        """The rules that may match the one line *data*, ascending."""
        ...

    def chunk(self, data: bytes) -> dict[int, list[int]]:
        """For each line of *data* that some rule may match: the line's end offset (its ``\\n``, or
        ``len(data)``) and those rules, ascending. *data* holds whole lines."""
        ...


def build(patterns: Sequence[str], engine: str, *, cache: Path | None = None) -> Scanner:
    """A scanner for *patterns* (Python regexes, in rule order) on *engine* (one of ``ENGINES``);
    with *cache*, a Hyperscan database is kept in, and loaded from, that folder.

    Raises ``EngineUnavailable`` when *engine* is not installed.
    """
    if not available(engine):
        raise EngineUnavailable(f"rules.engine {engine}: the {engine} module is not installed")
    if engine == "re":
        return _Literals(patterns, range(len(patterns)), {})
    kept = _DatabaseCache(cache, patterns) if cache is not None and engine == "hyperscan" else None
    fast: _Fast | None = kept.load() if kept is not None else None
    if fast is None:
        supersets = {i: byte_superset(p) for i, p in enumerate(patterns)}
        fallbacks = {i: "its pattern does not translate" for i, s in supersets.items() if s is None}
        taken = {i: s for i, s in supersets.items() if s is not None}
        fast = _Hyperscan(taken, fallbacks) if engine == "hyperscan" else _Re2(taken, fallbacks)
        _self_test(fast, patterns, fallbacks)
        if fallbacks:
            fast.drop(set(fallbacks))
        if kept is not None:
            kept.store(cast(_Hyperscan, fast))
    rest = _Literals(patterns, sorted(fast.fallbacks), fast.fallbacks)
    return fast if not fast.fallbacks else _Combined(fast, rest)


def _self_test(fast: _Fast, patterns: Sequence[str], fallbacks: dict[int, str]) -> None:
    """Each rule's derived sample line must be picked for that rule, or the rule leaves the engine."""
    for index in list(fast.indices):
        text = sample(patterns[index])
        if text is None:
            continue
        data = text.encode("utf-8", "surrogatepass")
        filler = b"x" * 64 + b"\n"  # a longer buffer, the line at its very end, with no newline after it
        end = len(filler) + len(data)
        if index not in fast.line(data) or index not in fast.chunk(filler + data).get(end, ()):
            fallbacks[index] = f"the {fast.engine} engine missed the sample line {text!r}"
            log.warning("rule pattern %r stays on the literal prefilter: %s", patterns[index], fallbacks[index])


class _Fast(Protocol):
    engine: str
    fallbacks: dict[int, str]
    indices: list[int]

    def line(self, data: bytes) -> list[int]: ...
    def chunk(self, data: bytes) -> dict[int, list[int]]: ...
    def drop(self, indices: set[int]) -> None: ...


class _Hyperscan:
    engine = "hyperscan"
    _SUFFIX = r"[^\n]*$"

    def __init__(self, supersets: dict[int, str], fallbacks: dict[int, str]) -> None:
        self._hs = importlib.import_module("hyperscan")
        self.fallbacks = fallbacks
        self._supersets = supersets
        self._prefilter: set[int] = set()
        self._unsuffixed: set[int] = set()
        """Rules compiled without the suffix (Hyperscan takes ``$`` only at a pattern's end):
        they may report anywhere in a line, and several times."""
        self.indices = self._compile(sorted(supersets))

    def state(self) -> tuple[dict[str, Any], bytes]:
        """What ``restored`` needs to make this scanner again: which rules are where, and the database."""
        layout = {
            "indices": self.indices,
            "unsuffixed": sorted(self._unsuffixed),
            "fallbacks": {str(i): reason for i, reason in self.fallbacks.items()},
        }
        return layout, bytes(self._hs.dumpb(self._database))

    @classmethod
    def restored(cls, layout: dict[str, Any], database: bytes) -> _Hyperscan:
        """The scanner ``state`` described (``ValueError`` if Hyperscan refuses the database)."""
        scanner = cls.__new__(cls)
        scanner._hs = importlib.import_module("hyperscan")
        scanner.fallbacks = {int(i): str(reason) for i, reason in layout["fallbacks"].items()}
        scanner._supersets = {}  # only a new compile needs them: a restored scanner is final
        scanner._prefilter = set()
        scanner._unsuffixed = {int(i) for i in layout["unsuffixed"]}
        scanner.indices = [int(i) for i in layout["indices"]]
        scanner._scratch = threading.local()
        try:
            scanner._database = scanner._hs.loadb(database, mode=scanner._hs.HS_MODE_BLOCK)
        except scanner._hs.error as exc:
            raise ValueError(f"hyperscan refuses the database: {exc}") from None
        return scanner

    def _expression(self, index: int) -> bytes:
        suffix = "" if index in self._unsuffixed else self._SUFFIX
        return f"(?:{unbounded_lead_dropped(self._supersets[index])}){suffix}".encode("ascii")

    def _flags(self, index: int) -> int:
        flags = int(self._hs.HS_FLAG_MULTILINE)
        return flags | int(self._hs.HS_FLAG_PREFILTER) if index in self._prefilter else flags

    def _try(self, indices: list[int]) -> Any:
        database = self._hs.Database(mode=self._hs.HS_MODE_BLOCK)
        if indices:
            database.compile(
                expressions=[self._expression(i) for i in indices],
                ids=indices,
                elements=len(indices),
                flags=[self._flags(i) for i in indices],
            )
        return database

    def _compile(self, indices: list[int]) -> list[int]:
        self._scratch = threading.local()  # Hyperscan's scratch space: one per thread that scans
        try:
            self._database = self._try(indices)
            return indices
        except self._hs.error:
            pass
        kept = []
        reason = ""
        for index in indices:  # find the ones Hyperscan refuses as they are, one by one
            for unsuffixed, prefilter in ((False, False), (False, True), (True, False), (True, True)):
                (self._unsuffixed.add if unsuffixed else self._unsuffixed.discard)(index)
                (self._prefilter.add if prefilter else self._prefilter.discard)(index)
                try:
                    self._try([index])
                except self._hs.error as exc:
                    reason = reason if unsuffixed else str(exc)  # the first refusal says most
                    continue
                kept.append(index)
                break
            else:
                self._prefilter.discard(index)
                self._unsuffixed.discard(index)
                self.fallbacks[index] = f"hyperscan refuses its pattern ({reason})"
        try:
            self._database = self._try(kept)
        except self._hs.error as exc:  # each compiles alone, not all together: none on Hyperscan
            for index in kept:
                self.fallbacks[index] = f"hyperscan refuses the rules together ({exc})"
            self._database, kept = self._try([]), []
        return kept

    def drop(self, indices: set[int]) -> None:
        self.indices = self._compile([i for i in self.indices if i not in indices])

    def _scratch_here(self) -> Any:
        scratch = getattr(self._scratch, "space", None)
        if scratch is None:
            scratch = self._scratch.space = self._hs.Scratch(self._database)
        return scratch

    def line(self, data: bytes) -> list[int]:
        found: list[int] = []
        if self.indices:
            # A trailing newline: Hyperscan 5.4 (the wheel's Vectorscan) can miss a match that ends
            # at the very end of the buffer. A text may hold several lines (multiline events), each
            # reporting: hence the set.
            scratch = self._scratch_here()
            self._database.scan(data + b"\n", match_event_handler=_collect_ids, context=found, scratch=scratch)
        return sorted(set(found))

    def chunk(self, data: bytes) -> dict[int, list[int]]:
        ends: dict[int, list[int]] = {}
        if self.indices:
            scratch = self._scratch_here()
            size = len(data)
            whole = data.endswith(b"\n")
            if not whole:
                data += b"\n"  # as in line(): no match may end at the buffer's very end
            if self._unsuffixed:
                context = (ends, data, self._unsuffixed)
                self._database.scan(data, match_event_handler=_collect_line_ends, context=context, scratch=scratch)
            else:
                self._database.scan(data, match_event_handler=_collect_ends, context=ends, scratch=scratch)
            # A pattern that can span lines may end past the last newline: at no line (after the
            # data's own last newline), or on the last line (after the newline added here).
            beyond = ends.pop(size + 1, None) if not whole else ends.pop(size, None)
            if beyond is not None and not whole:
                ends[size] = sorted(set(ends.get(size, ())) | set(beyond))
        for ids in ends.values():
            if len(ids) > 1:  # most lines a rule may match, one rule may
                ids.sort()
        return ends


LEAD_LITERAL_BYTES = 4
"""The shortest run of literal bytes that ``unbounded_lead_dropped`` cuts a superset down to."""


def unbounded_lead_dropped(superset: str) -> str:
    r"""*superset* (``byte_superset``'s syntax) from just after its last unbounded repeat before its
    first run of ``LEAD_LITERAL_BYTES`` literal bytes: itself when no such repeat comes first.

    Hyperscan finds a pattern by its literals, but one that an unbounded repeat precedes, as in
    ``/\S+: [\w.-]+ FOUND``, it can only reach by running the lead's automaton over every byte
    of the buffer: several times the cost of looking for the literal (that one rule took a fifth
    of the scan for 200 rules). A line that matches the whole pattern matches its tail (the same
    bytes, in the same place), so the tail is a superset too: ``\x20FOUND`` costs little more
    than the literal, and names a few more lines, if any, for Python to decide.
    """
    pieces = _top_level_pieces(superset)
    if pieces is None:
        return superset
    run = cut = 0
    for index, (_, literal, unbounded) in enumerate(pieces):
        run = run + 1 if literal else 0
        if run == LEAD_LITERAL_BYTES:
            return "".join(text for text, _, _ in pieces[cut:])
        if unbounded:
            cut = index + 1
    return superset


_TOKEN = re.compile(r"\\x[0-9a-fA-F]{2}|\\.|\[(?:\\.|[^\]\\])*\]|\(\?:|.", re.DOTALL)
"""One token of a superset: an escaped byte, another escape, a class, a group's start, one character."""
_BOUNDS = re.compile(r"[*+?]|\{\d+(?:,\d*)?\}")


def _top_level_pieces(superset: str) -> list[tuple[str, bool, bool]] | None:
    """The pieces *superset* is a sequence of, each an atom and its bounds: its text, whether it is
    one literal byte, whether it repeats without bound or holds such a repeat. ``None`` when the
    top level is an alternation, or does not read as ``byte_superset`` writes."""
    pieces: list[tuple[str, bool, bool]] = []
    at = 0
    while at < len(superset):
        token = _TOKEN.match(superset, at)
        if token is None or token.group() in ("|", ")"):
            return None
        end, unbounded = token.end(), False
        if token.group() == "(?:":  # to its closing parenthesis, noting any unbounded repeat inside
            depth = 1
            while depth:
                inner = _TOKEN.match(superset, end)
                if inner is None:
                    return None
                depth += {"(?:": 1, ")": -1}.get(inner.group(), 0)
                bounds = _BOUNDS.match(superset, inner.end())
                unbounded = unbounded or (bounds is not None and _unbounded(bounds.group()))
                end = inner.end()
        literal = token.group().startswith("\\x") or token.group().isalnum()  # as prefilter writes a byte
        bounds = _BOUNDS.match(superset, end)
        if bounds is not None:
            end, literal, unbounded = bounds.end(), False, unbounded or _unbounded(bounds.group())
        pieces.append((superset[at:end], literal, unbounded))
        at = end
    return pieces


def _unbounded(bounds: str) -> bool:
    return bounds in ("*", "+") or bounds.endswith(",}")


class _DatabaseCache:
    """One Hyperscan database in the cache folder: a header line (JSON: the layout and the sha256 of
    the database) and the database. ``KEEP`` files at most stay: each edit of the rules makes one."""

    KEEP = 8
    _MAGIC = b"tailhook-hyperscan-cache 1\n"

    def __init__(self, folder: Path, patterns: Sequence[str]) -> None:
        hs_version = getattr(importlib.import_module("hyperscan"), "__version__", "?")
        key = json.dumps([_code_version(), hs_version, list(patterns)], ensure_ascii=False)
        self.folder = folder
        self.path = folder / f"hyperscan-{hashlib.sha256(key.encode()).hexdigest()[:32]}.db"

    def load(self) -> _Hyperscan | None:
        try:
            data = self.path.read_bytes()
            if not data.startswith(self._MAGIC):
                return None
            header, _, database = data[len(self._MAGIC) :].partition(b"\n")
            layout = json.loads(header)
            if layout.get("sha256") != hashlib.sha256(database).hexdigest():
                return None  # torn or damaged: never hand Hyperscan bytes that were not what it wrote
            scanner = _Hyperscan.restored(layout, database)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        with contextlib.suppress(OSError):
            os.utime(self.path)  # used: the last to be pruned
        return scanner

    def store(self, scanner: _Hyperscan) -> None:
        layout, database = scanner.state()
        layout["sha256"] = hashlib.sha256(database).hexdigest()
        header = json.dumps(layout, sort_keys=True).encode()
        written = ""
        try:
            private_folder(self.folder)
            with tempfile.NamedTemporaryFile(dir=self.folder, prefix=".hyperscan-", delete=False) as out:
                written = out.name
                out.write(self._MAGIC + header + b"\n" + database)
            os.replace(written, self.path)
            self._prune()
        except OSError as exc:
            log.debug("cannot keep the compiled rules in %s: %s", self.folder, exc)
            if written:
                Path(written).unlink(missing_ok=True)

    def _prune(self) -> None:
        files = sorted(self.folder.glob("hyperscan-*.db"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[self.KEEP :]:
            old.unlink(missing_ok=True)


@functools.cache
def _code_version() -> str:
    """tailhook's version and a hash of the code that turns rules into a database (this module and
    ``prefilter``): a development install changes the code without changing the version."""
    code = hashlib.sha256()
    for module in (__file__, _prefilter_module.__file__):
        code.update(Path(module).read_bytes())
    return f"{__version__} {code.hexdigest()[:16]}"


def _collect_ids(index: int, start: int, end: int, flags: int, found: list[int]) -> None:
    found.append(index)


def _collect_line_ends(
    index: int, start: int, end: int, flags: int, context: tuple[dict[int, list[int]], bytes, set[int]]
) -> None:
    """As ``_collect_ends``, for a database where some rules report before a line's end, maybe twice."""
    ends, data, unsuffixed = context
    if index in unsuffixed:
        newline = data.find(b"\n", end)
        end = len(data) if newline < 0 else newline
        found = ends.get(end)
        if found is not None and index in found:
            return
    _collect_ends(index, start, end, flags, ends)


def _collect_ends(index: int, start: int, end: int, flags: int, ends: dict[int, list[int]]) -> None:
    found = ends.get(end)
    if found is None:
        ends[end] = [index]
    else:
        found.append(index)


class _Re2:
    engine = "re2"

    def __init__(self, supersets: dict[int, str], fallbacks: dict[int, str]) -> None:
        self._re2 = importlib.import_module("re2")
        self.fallbacks = fallbacks
        self._supersets = supersets
        self.indices = self._compile(sorted(supersets))

    def _compile(self, indices: list[int]) -> list[int]:
        options = self._re2.Options()
        options.encoding = self._re2.Options.Encoding.LATIN1
        self._set = self._re2.Set.SearchSet(options)
        kept = []
        for index in indices:
            try:
                self._set.Add(f"(?m:{self._supersets[index]})".encode("ascii"))
            except self._re2.error as exc:
                self.fallbacks[index] = f"re2 refuses its pattern ({exc})"
                continue
            kept.append(index)
        self._set.Compile()
        self._ids = kept  # the set numbers its patterns 0, 1, ... in the order added
        return kept

    def drop(self, indices: set[int]) -> None:
        self.indices = self._compile([i for i in self.indices if i not in indices])

    def line(self, data: bytes) -> list[int]:
        if not self._ids:
            return []
        ids = self._ids
        return sorted(ids[i] for i in self._set.Match(data) or ())

    def chunk(self, data: bytes) -> dict[int, list[int]]:
        ends: dict[int, list[int]] = {}
        if not self._ids or not self._set.Match(data):
            return ends
        for start, end in _lines(data):
            found = self.line(data[start:end])
            if found:
                ends[end] = found
        return ends


class _Literals:
    """Rules tried where their required literal occurs (every line, for a rule without one)."""

    engine = "re"

    def __init__(self, patterns: Sequence[str], indices: Sequence[int], fallbacks: dict[int, str]) -> None:
        self.fallbacks = fallbacks
        literals = [(i, _byte_literal(patterns[i])) for i in indices]
        self._with = [(i, literal) for i, literal in literals if literal]
        self._always = [i for i, literal in literals if not literal]

    def line(self, data: bytes) -> list[int]:
        found = [i for i, literal in self._with if literal in data]
        return sorted(found + self._always) if self._always else found

    def chunk(self, data: bytes) -> dict[int, list[int]]:
        ends: dict[int, list[int]] = {}
        size = len(data)
        for index, literal in self._with:
            at = data.find(literal)
            while at >= 0:
                end = data.find(b"\n", at)
                if end < 0:
                    end = size
                ends.setdefault(end, []).append(index)
                at = data.find(literal, end + 1)
        if self._always:
            for _, end in _lines(data):
                ends.setdefault(end, []).extend(self._always)
        for ids in ends.values():
            ids.sort()
        return ends


def _byte_literal(pattern: str) -> bytes:
    """The bytes of the pattern's required literal that every matching line's raw bytes hold.

    U+FFFD in the text may stand for any invalid bytes, so only the longest piece between them counts.
    """
    pieces = required_literal(pattern).split("\ufffd")
    return max(pieces, key=len).encode("utf-8", "surrogatepass")


def _lines(data: bytes) -> Iterator[tuple[int, int]]:
    """Start and end offsets of each line of *data* (a final ``\\n`` ends the last line, it opens none)."""
    start, size = 0, len(data)
    while start < size:
        end = data.find(b"\n", start)
        if end < 0:
            end = size
        yield start, end
        start = end + 1


class _Combined:
    """A fast engine for most rules, the literal prefilter for the rules it could not take."""

    def __init__(self, fast: _Fast, rest: _Literals) -> None:
        self.engine = fast.engine
        self.fallbacks = fast.fallbacks
        self._fast = fast
        self._rest = rest

    def line(self, data: bytes) -> list[int]:
        return sorted(self._fast.line(data) + self._rest.line(data))

    def chunk(self, data: bytes) -> dict[int, list[int]]:
        ends = self._fast.chunk(data)
        for end, ids in self._rest.chunk(data).items():
            found = ends.get(end)
            ends[end] = ids if found is None else sorted(found + ids)
        return ends

r"""Cutting a file's bytes into lines, as they arrive in chunks: the file source's read path.

Pure and synchronous: bytes in, pieces out, no I/O. One ``LineCutter`` per
followed file keeps what one chunk leaves for the next.

- A line is given out only once its ``\n`` has arrived; the bytes of an
  unfinished line wait in ``partial``.
- A line longer than ``max_line_bytes`` is given out cut to that length
  (``cut``), and the rest of it, however long, is skipped as it comes:
  memory stays bounded whatever a writer does.
- After a truncation (``restart(padding=True)``), NUL bytes at the start of a
  line are a writer's padding and are dropped.

Pieces come in file order. A ``RawLine`` is one line's bytes, without its
``\n``. With ``runs`` on (plain lines: no framer needs each one), stretches of
whole lines, none over the limit and no padding in sight, come as one ``Run``
of bytes instead: the rules scan it in one pass, and only the lines some rule
may match are ever cut out of it. The line a chunk's end cut in two opens the
next chunk's run (its head copied in front), rather than coming alone: the
rules' engine pays for each pass, and a chunk boundary is in every chunk.

``offset`` counts every byte consumed, the partial line included;
``position`` is where reading would start again (before the partial line).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["LineCutter", "RawLine", "Run"]


@dataclass(frozen=True, slots=True)
class RawLine:
    raw: bytes
    """The line's bytes without its newline (cut to ``max_line_bytes`` when ``cut``)."""
    start: int
    end: int
    """File offsets: where the line starts, and just past its newline (or past what was read of it)."""
    cut: bool = False


@dataclass(frozen=True, slots=True)
class Run:
    data: bytes
    """Whole lines, each ended by its newline."""
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.data)

    @property
    def lines(self) -> int:
        """How many lines: counted when asked (a pass over the data), as a reader that numbers
        the lines it looks at counts them already."""
        return self.data.count(b"\n")


@dataclass(slots=True)
class LineCutter:
    """What one file's bytes so far leave: the offset, a partial line, an over-long line being skipped."""

    max_line_bytes: int
    offset: int = 0
    runs: bool = False
    """Give whole lines out as ``Run``s where it is safe to."""
    skipping: bool = False
    """Inside an over-long line whose head was already given out."""
    padding: bool = False
    """Just truncated: NUL bytes at the start of a line are a writer's padding."""
    partial: bytearray = field(default_factory=bytearray)

    @property
    def position(self) -> int:
        return self.offset - len(self.partial)

    def restart(self, offset: int = 0, *, padding: bool = False) -> None:
        """Read on from *offset* with nothing held (a truncated file, a file reopened)."""
        self.offset = offset
        self.partial.clear()
        self.skipping = False
        self.padding = padding

    def split(self, chunk: bytes) -> list[RawLine | Run]:
        """The lines *chunk* completes, in order; what it leaves unfinished waits for the next."""
        pieces: list[RawLine | Run] = []
        start = 0
        while True:
            if self.runs and not (self.skipping or self.padding):
                held = len(self.partial)  # the start of the run's first line, from the chunk before
                end = self._run_end(chunk, start, head=held)
                if end > start:
                    data = bytes(self.partial) + chunk[start:end] if held else chunk[start:end]
                    pieces.append(Run(data, self.offset - held))
                    self.offset += end - start
                    self.partial.clear()
                    start = end
            newline = chunk.find(b"\n", start)
            if newline < 0:
                break
            line = self._line(chunk[start:newline])
            start = newline + 1
            if line is not None:
                pieces.append(line)
        head = self._rest(chunk[start:])
        if head is not None:
            pieces.append(head)
        return pieces

    def flush(self) -> RawLine | None:
        """The last line, if it never got its newline: given out when the file is left for good."""
        if not self.partial:
            return None
        raw = bytes(self.partial)
        self.partial.clear()
        return RawLine(raw, self.offset - len(raw), self.offset)

    def _run_end(self, chunk: bytes, start: int, *, head: int = 0) -> int:
        """The end of the longest stretch of whole lines from *start* with none over the limit
        (the first of them has *head* bytes already, before *start*).

        Jumps from line start to the last newline within ``max_line_bytes`` of it, so a
        stretch of short lines costs a few ``rfind`` calls, not one per line: a line
        longer than the limit is one with no newline within the limit of its start.
        """
        last = chunk.rfind(b"\n", start)
        at = start
        room = self.max_line_bytes - head
        while at <= last:
            newline = chunk.rfind(b"\n", at, min(at + room + 1, last + 1))
            if newline < 0:
                return at  # an over-long line starts here
            at = newline + 1
            room = self.max_line_bytes
        return at

    def _line(self, piece: bytes) -> RawLine | None:
        """One line whose newline just came (its bytes in this chunk: *piece*)."""
        start = self.offset - len(self.partial)
        self.offset += len(piece) + 1
        if self.skipping:  # the end of an over-long line: its head was given out already
            self.skipping = False
            self.partial.clear()
            return None
        if self.partial:
            self.partial += piece
            piece = bytes(self.partial)
            self.partial.clear()
        if self.padding:
            piece = piece.lstrip(b"\0")
            if not piece:
                return None
            self.padding = False
        limit = self.max_line_bytes
        return RawLine(piece[:limit], start, self.offset, cut=len(piece) > limit)

    def _rest(self, rest: bytes) -> RawLine | None:
        """The unfinished line at the chunk's end: kept, or its head given out when over-long."""
        start = self.offset - len(self.partial)
        self.offset += len(rest)
        if self.skipping:
            return None
        if self.padding and not self.partial:
            rest = rest.lstrip(b"\0")
            if not rest:
                return None  # all padding so far: nothing to keep
            self.padding = False
        limit = self.max_line_bytes
        if len(self.partial) + len(rest) <= limit:
            self.partial += rest
            return None
        head = bytes(self.partial + rest[: limit - len(self.partial)])
        self.partial.clear()
        self.skipping = True
        return RawLine(head, start, self.offset, cut=True)

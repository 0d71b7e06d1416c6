"""Sources: where lines come from. Each kind is one module; ``app`` picks them.

A source reads a batch of lines (``Line``s, or ``Block``s of plain lines not
yet cut apart) and hands it to ``emit`` with the checkpoints
that say how far those lines go; ``emit`` returns once the spool has stored
what the lines produced together with those checkpoints (the ingest commit).
The source reads on only after that, so a crash loses nothing and a slow
disk slows the reading instead of piling lines up in memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from tailhook.events import Line
from tailhook.metrics import Metric
from tailhook.spool import Checkpoint

__all__ = ["FOLLOWING", "FOLLOWING_HELP", "Block", "Emit", "Source"]

FOLLOWING = "tailhook_following"
"""Every source reports this gauge, ``{source,kind}``: what it reads now (files followed, or 1 for a
journal open). The daily report adds them up."""
FOLLOWING_HELP = "What each source reads now, by kind: files followed, or 1 for a journal open."


@dataclass(frozen=True, slots=True)
class Block:
    """Whole plain lines of one file, read in one piece and not yet cut apart.

    The rules scan it in one pass: only the lines some rule may match become
    ``Line``s (with this ``source``, ``path`` and ``time``); the rest are counted.
    """

    data: bytes
    """The lines' bytes, each line ended by its newline; a trailing CR is part of its line."""
    lines: int
    source: str
    path: str
    time: float
    scanned: object = None
    """What the daemon's ``prescan`` made of ``data`` in the reading thread (its rules' pass), if anything."""


Emit = Callable[[Sequence[Line | Block], Sequence[Checkpoint]], Awaitable[None]]
"""Hands one batch, in the order read, to the ingest commit with the checkpoints it reaches."""


class Source(Protocol):
    name: str

    async def start(self) -> None:
        """Find and open what is there now, before the daemon says it is ready."""
        ...

    async def run(self, emit: Emit) -> None:
        """Read lines until cancelled, passing each batch to *emit*."""
        ...

    def following(self) -> Counter[str]:
        """What it reads now, by kind: ``{"file": 12}``, ``{"journal": 1}``."""
        ...

    def collect(self) -> Iterable[Metric]:
        """Its metrics (``tailhook.metrics``), labelled with its ``source`` name."""
        ...

"""Sources: where lines come from. Each kind is one module; ``app`` picks them.

A source reads a batch of lines and hands it to ``emit`` with the checkpoints
that say how far those lines go; ``emit`` returns once the spool has stored
what the lines produced together with those checkpoints (the ingest commit).
The source reads on only after that, so a crash loses nothing and a slow
disk slows the reading instead of piling lines up in memory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from tailhook.events import Line
from tailhook.spool import Checkpoint

__all__ = ["Emit", "Source"]

Emit = Callable[[Sequence[Line], Sequence[Checkpoint]], Awaitable[None]]


class Source(Protocol):
    name: str

    async def start(self) -> None:
        """Find and open what is there now, before the daemon says it is ready."""
        ...

    async def run(self, emit: Emit) -> None:
        """Read lines until cancelled, passing each batch to *emit*."""
        ...

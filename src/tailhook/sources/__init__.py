"""Sources: where lines come from. Each kind is one module; ``app`` picks them.

A source reads a batch of lines and hands it to ``emit``; it reads on only
after ``emit`` returns, which is how backpressure reaches the files: a slow
pipeline slows the reading, it never piles lines up in memory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from tailhook.events import Line

__all__ = ["Emit", "Source"]

Emit = Callable[[Sequence[Line]], Awaitable[None]]


class Source(Protocol):
    name: str

    async def start(self) -> None:
        """Find and open what is there now, before the daemon says it is ready."""
        ...

    async def run(self, emit: Emit) -> None:
        """Read lines until cancelled, passing each batch to *emit*."""
        ...

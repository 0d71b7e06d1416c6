"""How an exception reads in a log line."""

from __future__ import annotations

__all__ = ["describe"]


def describe(exc: BaseException) -> str:
    """An exception as ``Type: message``, for a log line."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

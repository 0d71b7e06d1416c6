"""A time budget for one regex search, so that no rule can stall the daemon.

Python's ``re`` backtracks: a rule such as ``(a+)+$`` takes exponential time on
a line like ``aaaa…b``. The multi-pattern engines only pass on lines they
matched in linear time, but ``re`` has the last word, and a backreference or a
lookaround has no linear-time engine at all. So every search runs with a
budget of CPU time: ``re`` checks for signals as it backtracks, and a one-shot
``ITIMER_VIRTUAL`` timer (``SIGVTALRM``, which nothing else of ours uses, unlike
``SIGALRM``) interrupts it when the budget is spent. CPU time rather than wall
time, so a busy machine does not cut an ordinary search short.

Signals reach only the main thread, where the daemon's event loop and
``tailhook test`` run; elsewhere a search runs without a budget.
"""

from __future__ import annotations

import re
import signal
import threading
from types import FrameType

__all__ = ["BudgetSpent", "search"]


class BudgetSpent(Exception):
    """The search took longer than its budget and was stopped."""


class _Alarm(BaseException):
    """Raised by the alarm's handler inside the search; BaseException, so nothing in between swallows it."""


class _Armed:
    """Whether a search is under way: a late alarm, after the search ended, does nothing."""

    now = False


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    if _Armed.now:
        raise _Alarm


def _install() -> bool:
    """Whether a budget can be kept here: the handler is ours, in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGVTALRM) is not _on_alarm:
        signal.signal(signal.SIGVTALRM, _on_alarm)
    return True


def search(pattern: re.Pattern[str], text: str, *, budget_s: float) -> re.Match[str] | None:
    """``pattern.search(text)``, stopped with ``BudgetSpent`` after *budget_s* seconds of CPU time."""
    if budget_s <= 0 or not _install():
        return pattern.search(text)
    found: re.Match[str] | None = None
    done = False
    try:
        try:
            _Armed.now = True
            signal.setitimer(signal.ITIMER_VIRTUAL, budget_s)
            found = pattern.search(text)
            done = True
        finally:
            _Armed.now = False  # from here the alarm, if it fires late, does nothing
            signal.setitimer(signal.ITIMER_VIRTUAL, 0)
    except _Alarm:
        if not done:
            raise BudgetSpent from None
    return found

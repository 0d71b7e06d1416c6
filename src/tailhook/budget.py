"""A budget of CPU time for regex searches, so that no rule can stall the daemon.

Python's ``re`` backtracks: a rule such as ``(a+)+b|c`` takes exponential time
on a line like ``aaaa…c``. The multi-pattern engines only pass on lines they
matched in linear time, but ``re`` has the last word, and a backreference or a
lookaround has no linear-time engine at all. So searches run under a budget:
``re`` checks for signals as it backtracks, and an ``ITIMER_VIRTUAL`` timer
(``SIGVTALRM``, which nothing else here uses, unlike ``SIGALRM``) stops a
search that spent it. CPU time rather than wall time, so a busy machine does
not cut an ordinary search short.

Arming a timer for each search would cost more than most searches, so a batch
of searches runs inside ``watch(budget_s)``: one timer ticks every *budget_s*
of CPU time, and a tick that finds the same search under way as the tick
before stops it. A search is therefore stopped after one to two budgets. A
search given a smaller budget than the watch's, or run outside a watch, arms
a one-shot timer of its own.

A loop of many short searches can go cheaper still: inside ``searches()`` it
only counts each search (``tally.number += 1``) and catches ``Stopped`` around
it, with no call in between. The loop is then the search as far as a tick can
tell: a tick that finds the count unchanged since the tick before stops
whatever runs, which in such a loop is a search that has spent its budget.

Signals reach only the main thread, where the daemon's event loop and
``tailhook test`` run; elsewhere a search runs without a budget.
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["BudgetSpent", "Stopped", "quick", "search", "searches", "watch", "watched"]

_MAIN_THREAD = threading.main_thread().ident


class BudgetSpent(Exception):
    """The search took longer than its budget and was stopped."""


class _Alarm(BaseException):
    """Raised by the timer's handler inside the search; BaseException, so nothing in between swallows it."""


Stopped = _Alarm
"""What stops a search inside ``searches()``."""


class _State:
    searching = False
    """A search is under way: a tick after it ended does nothing."""
    number = 0
    """Counts searches, so that a tick can tell whether the last tick saw the same one."""
    seen = -1
    """The search the last tick found under way."""
    interval = 0.0
    """The watch's budget while one is on; 0 outside."""
    installed = False


def _on_tick(signum: int, frame: FrameType | None) -> None:
    if _State.searching and _State.number == _State.seen:
        raise _Alarm
    _State.seen = _State.number


def _here() -> bool:
    """Whether budgets can be kept in this thread (the main one), the handler installed."""
    if threading.get_ident() != _MAIN_THREAD:
        return False
    if not _State.installed:
        signal.signal(signal.SIGVTALRM, _on_tick)
        _State.installed = True
    return True


@contextmanager
def watch(budget_s: float) -> Iterator[None]:
    """Keep every search inside to *budget_s* seconds of CPU (one to two, in fact) with one timer."""
    if _State.interval or budget_s <= 0 or not _here():
        yield
        return
    _State.interval = budget_s
    _State.seen = -1
    signal.setitimer(signal.ITIMER_VIRTUAL, budget_s, budget_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        _State.interval = 0.0


def watched(budget_s: float) -> bool:
    """Whether a watch is on whose ticks keep *budget_s*, in this (the main) thread: then ``quick``
    may search."""
    return 0 < _State.interval <= budget_s and threading.get_ident() == _MAIN_THREAD


@contextmanager
def searches() -> Iterator[type[_State]]:
    """A loop of searches under the watch that is on (see ``watched``), each counted by the loop
    itself (``tally.number += 1`` before it) and stopped by ``Stopped``: the cheapest way to keep
    a budget, for loops with nothing but searches and a little bookkeeping between them."""
    state = _State
    state.searching = True
    try:
        yield state
    finally:
        state.searching = False


def quick(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """``pattern.search(text)`` under the watch that is on (see ``watched``): no timer of its own,
    so it costs little more than the search."""
    state = _State
    state.number += 1
    state.searching = True
    try:
        found = pattern.search(text)
        state.searching = False
    except _Alarm:  # stopped; or a tick came just as it ended, which also means it took a budget
        state.searching = False
        raise BudgetSpent from None
    except BaseException:
        state.searching = False  # no tick may stop code that is not a search
        raise
    return found


def search(pattern: re.Pattern[str], text: str, *, budget_s: float) -> re.Match[str] | None:
    """``pattern.search(text)``, stopped with ``BudgetSpent`` once it spent *budget_s* of CPU time."""
    if budget_s <= 0 or not _here():
        return pattern.search(text)
    own_timer = not _State.interval or budget_s < _State.interval
    found: re.Match[str] | None = None
    done = False
    try:
        try:
            _State.number += 1
            if own_timer:
                _State.seen = _State.number  # so that the first tick stops this search
                signal.setitimer(signal.ITIMER_VIRTUAL, budget_s)
            _State.searching = True
            found = pattern.search(text)
            done = True
        finally:
            _State.searching = False  # from here a tick, if it comes late, does nothing
            if own_timer:
                interval = _State.interval
                signal.setitimer(signal.ITIMER_VIRTUAL, interval, interval)
    except _Alarm:
        if not done:
            raise BudgetSpent from None
    return found

"""Talking to systemd (``Type=notify``): ready, reloading, stopping, the watchdog and a status line.

Every message is one datagram to ``$NOTIFY_SOCKET``; without it (not under systemd) nothing is
sent. With ``WatchdogSec=`` in the unit, systemd sets ``WATCHDOG_USEC`` and restarts tailhook when
no ``WATCHDOG=1`` came for that long; tailhook sends one at half that pace from its event loop,
so a loop that stopped turning stops them.
"""

from __future__ import annotations

import contextlib
import os
import socket

__all__ = ["listening", "notify", "watchdog_interval"]


def listening() -> bool:
    """Whether systemd listens for our state."""
    return bool(os.environ.get("NOTIFY_SOCKET"))


def notify(*states: str) -> None:
    """Tell systemd *states* (``READY=1``, ``STATUS=…``), in one message, when it is listening."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto("\n".join(states).encode(), address)


def watchdog_interval() -> float | None:
    """Seconds between two ``WATCHDOG=1``: half of what the unit's ``WatchdogSec=`` allows; ``None``
    without a watchdog (or one meant for another process)."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2 / 1_000_000

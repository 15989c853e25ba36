"""A tiny sd_notify(3): READY=1, STOPPING=1 and watchdog pings for Type=notify.

No dependency on libsystemd or python-systemd: the protocol is one datagram
per message to the socket named by ``$NOTIFY_SOCKET``. Outside systemd every
call is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable

__all__ = ["notify", "watchdog_interval_s", "watchdog_loop"]


def notify(message: str) -> bool:
    """Send ``message`` (e.g. ``"READY=1"``); return whether a socket was there."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        try:
            s.connect(address)
            s.sendall(message.encode())
        except OSError:
            return False
    return True


def watchdog_interval_s() -> float | None:
    """Half of ``$WATCHDOG_USEC`` when the watchdog is meant for this process."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    with contextlib.suppress(ValueError):
        return max(int(usec) / 2_000_000, 0.1)
    return None


async def watchdog_loop(is_healthy: Callable[[], bool]) -> None:
    """Ping while the loop turns and ``is_healthy()``; otherwise systemd restarts us."""
    interval = watchdog_interval_s()
    if interval is None:
        return
    while True:
        if is_healthy():
            notify("WATCHDOG=1")
        await asyncio.sleep(interval)

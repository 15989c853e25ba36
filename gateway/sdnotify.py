"""sd_notify(3) over $NOTIFY_SOCKET, by hand: a datagram per state change.

The one implementation both daemons use (``coldtrail-gateway`` and ``coldtrail-anchor``);
standard library only, so the anchor imports it without the gateway's dependencies.

``Type=notify`` units get READY=1 once the spool is open and the sources run;
with ``WatchdogSec=`` systemd sets WATCHDOG_USEC and expects WATCHDOG=1 within
it, so the daemon pings at half that interval from the event loop: a wedged
loop stops the pings and systemd restarts the gateway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

__all__ = ["Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address: str | None = None
        if address:
            # A leading '@' names a socket in the abstract namespace.
            self._address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_interval_s = watchdog_usec / 2e6 if watchdog_usec else None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        usec: int | None = None
        raw = env.get("WATCHDOG_USEC")
        watchdog_pid = env.get("WATCHDOG_PID")
        if raw and (not watchdog_pid or watchdog_pid == str(os.getpid())):
            try:
                usec = int(raw)
            except ValueError:
                log.warning("ignoring WATCHDOG_USEC=%r: not an integer", raw)
        return cls(env.get("NOTIFY_SOCKET"), usec if usec and usec > 0 else None)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` as one datagram; False (never an exception) when it cannot."""
        if self._address is None:
            return False
        message = "\n".join(lines).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.connect(self._address)
                s.sendall(message)
        except OSError as e:
            log.warning("sd_notify to %r failed: %s", self._address, e)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    async def watch(self, healthy: Callable[[], bool]) -> None:
        """Ping the watchdog at half its interval while ``healthy()``; a no-op without one.
        A wedged loop or an unhealthy daemon stops the pings and systemd restarts it."""
        if self.watchdog_interval_s is None:
            return
        while True:
            if healthy():
                self.watchdog()
            await asyncio.sleep(self.watchdog_interval_s)

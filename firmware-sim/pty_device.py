"""A simulated serial device on a real pseudo-terminal.

The gateway opens the slave side with pyserial exactly as it would open
``/dev/ttyUSB0``. The simulator keeps the slave open itself so the line stays
up between gateway reconnects, and puts it in raw mode at once so nothing the
device writes before the gateway opens the port is echoed or translated by the
tty line discipline (ICRNL would turn the protocol's CR into LF).
"""

from __future__ import annotations

import contextlib
import os
import time
import tty
from pathlib import Path
from types import TracebackType

__all__ = ["PtyDevice"]


class PtyDevice:
    """``with PtyDevice(link=Path("/tmp/ttyCT0")) as dev: dev.write(b"...")``."""

    def __init__(self, link: Path | None = None) -> None:
        self._link = link
        self._master = -1
        self._slave = -1
        self.path = ""

    def __enter__(self) -> PtyDevice:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        if self._link is not None:
            # Atomic replace, so a gateway following the link never sees it missing.
            tmp = self._link.with_name(f".{self._link.name}.{os.getpid()}")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.path)
            os.replace(tmp, self._link)
        return self

    def write(self, data: bytes, split_every: int = 0, pause_s: float = 0.0) -> None:
        """Write ``data``; with ``split_every`` it goes out in pieces of that many
        bytes with ``pause_s`` between them, like a slow UART (partial lines)."""
        step = split_every or len(data) or 1
        for i in range(0, len(data), step):
            view = memoryview(data)[i : i + step]
            while view:
                written = os.write(self._master, view)
                view = view[written:]
            if pause_s and i + step < len(data):
                time.sleep(pause_s)

    def close(self) -> None:
        """Unplug: the gateway's reads fail and it must reconnect."""
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1
        if self._link is not None:
            with contextlib.suppress(FileNotFoundError):
                if self._link.is_symlink() and os.readlink(self._link) == self.path:
                    self._link.unlink()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

"""Split a byte stream into lines, whatever the device's line ending and noise.

Serial devices end lines with CR, LF, CRLF (sensors) or TAB (scanners), start
talking mid-line after a reconnect, and sometimes stream garbage without any
terminator. :class:`LineFramer` is the only place that buffers bytes, and it
caps the buffer so a chattering device cannot grow the gateway's memory.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LineFramer", "Overflow", "Resync"]


@dataclass(frozen=True, slots=True)
class Overflow:
    """A line exceeded the cap; its bytes up to the next terminator were dropped."""

    dropped_bytes: int


@dataclass(frozen=True, slots=True)
class Resync:
    """The tail of a line that was already being sent when the port was opened."""

    dropped_bytes: int


class LineFramer:
    """Feed it chunks as they arrive; it yields complete lines (terminator removed)
    and :class:`Overflow` markers. Empty lines are skipped, which is how CRLF
    (two terminators in a row) costs nothing.

    With ``sync`` (e.g. ``b"$"``), a first line that does not start with it is
    reported as :class:`Resync` instead: a port opened mid-frame is not line
    noise, and a gap record for every gateway start would cry wolf.
    """

    def __init__(
        self, terminators: bytes = b"\r\n", max_line_bytes: int = 256, sync: bytes | None = None
    ) -> None:
        if not terminators:
            raise ValueError("line framer: need at least one terminator byte")
        if max_line_bytes < 1:
            raise ValueError("line framer: max_line_bytes must be positive")
        self._terminators = frozenset(terminators)
        self._max = max_line_bytes
        self._buf = bytearray()
        self._discarding = 0  # >0 while skipping the rest of an over-long line
        self._sync = sync
        self._synced = sync is None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[bytes | Overflow | Resync]:
        out: list[bytes | Overflow | Resync] = []
        start = 0
        for i, byte in enumerate(chunk):
            if byte in self._terminators:
                self._take(chunk[start:i], out, end_of_line=True)
                start = i + 1
        self._take(chunk[start:], out, end_of_line=False)
        return out

    def _take(
        self, piece: bytes, out: list[bytes | Overflow | Resync], *, end_of_line: bool
    ) -> None:
        if self._discarding:
            self._discarding += len(piece)
            if end_of_line:
                out.append(Overflow(self._discarding))
                self._discarding = 0
            return
        self._buf += piece
        if len(self._buf) > self._max:
            self._discarding = len(self._buf)
            self._buf.clear()
            if end_of_line:
                out.append(Overflow(self._discarding))
                self._discarding = 0
            return
        if end_of_line:
            if self._buf:
                line = bytes(self._buf)
                if not self._synced and self._sync is not None:
                    self._synced = True
                    if not line.startswith(self._sync):
                        out.append(Resync(len(line)))
                        self._buf.clear()
                        return
                out.append(line)
            self._buf.clear()

"""The real gateway daemon with a wall clock that a test can move: `coldtrail-gateway`
exactly, except that its wall clock reads ``offset`` ms away from the system's.

Run as a script: ``python clock_shift_gateway.py --offset-file PATH run --config FILE``.
The file holds an integer (ms); it is re-read on every clock reading, so a test makes
the clock jump by writing a new number, and starts it near 1970 with a large negative
one. Only the wall clock moves: CLOCK_BOOTTIME, the boot id and the NTP flag stay the
kernel's, exactly as when `date -s` or a dead RTC moves a Raspberry Pi's clock.

gateway/clock.py has no test hook for this (and libfaketime is not installed), so the
daemon's clock class is swapped before it starts; nothing else changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import gateway.daemon
from gateway.cli import main
from gateway.clock import ClockReading, SystemClock


def _with_offset(offset_file: Path) -> type[SystemClock]:
    class ShiftedClock(SystemClock):
        def read(self) -> ClockReading:
            real = super().read()
            try:
                offset = int(offset_file.read_text().strip() or 0)
            except (OSError, ValueError):
                offset = 0
            return ClockReading(real.wall_ms + offset, real.evidence)

    return ShiftedClock


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--offset-file":
        sys.exit("usage: clock_shift_gateway.py --offset-file PATH <coldtrail-gateway args>")
    gateway.daemon.SystemClock = _with_offset(Path(sys.argv[2]))  # type: ignore[misc]
    sys.exit(main(sys.argv[3:]))

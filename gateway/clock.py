"""Clock evidence: what the gateway knows about time when it signs a record.

A Raspberry Pi has no RTC: after a power cut its wall clock may start at the
last saved time, jump when NTP syncs, or never sync in a truck without
network. Each record therefore carries, next to the wall clock, the kernel's
boot id, CLOCK_BOOTTIME (monotonic, counts suspend) and whether the kernel says
the clock is NTP-synchronised, read via ``adjtimex(2)`` without any daemon.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from proofs.records import ClockEvidence

__all__ = ["Clock", "ClockReading", "SystemClock", "kernel_clock_synced"]

_TIME_ERROR = 5  # adjtimex(2) return value when STA_UNSYNC is set: not synchronised
_TIMEX_BUFFER = 512  # struct timex is 208 bytes on 64-bit Linux; zeroed => modes = 0 (read-only)


@dataclass(frozen=True, slots=True)
class ClockReading:
    wall_ms: int
    evidence: ClockEvidence


class Clock:
    """Interface: the real clock below, or a scripted twin in tests."""

    def read(self) -> ClockReading:  # pragma: no cover - interface
        raise NotImplementedError


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or "unknown"
    except OSError:
        # Not Linux (a developer laptop): a per-process id still orders records of one run.
        return "proc-" + uuid.uuid4().hex


def _load_adjtimex() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        fn = ctypes.CDLL(name, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p]
    fn.restype = ctypes.c_int
    return fn


_ADJTIMEX = _load_adjtimex()


def kernel_clock_synced() -> bool:
    """True when the kernel reports the wall clock as synchronised (STA_UNSYNC clear).

    ntpd, chrony and systemd-timesyncd all clear STA_UNSYNC once they discipline
    the clock, so this works whichever of them runs, and with none it says False.
    """
    state = -1
    if _ADJTIMEX is not None:
        state = _ADJTIMEX(ctypes.create_string_buffer(_TIMEX_BUFFER))
    if state == -1:
        # No libc or a seccomp filter: systemd-timesyncd's flag file is the next best source.
        return Path("/run/systemd/timesync/synchronized").exists()
    return bool(state != _TIME_ERROR)


class SystemClock(Clock):
    """The box's clocks. The NTP state is re-read at most once a second (it changes rarely)."""

    def __init__(self) -> None:
        self._boot = _boot_id()
        self._synced = False
        self._synced_checked_ns = -(10**18)

    def read(self) -> ClockReading:
        mono_ns = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        wall_ms = time.time_ns() // 1_000_000
        if mono_ns - self._synced_checked_ns >= 1_000_000_000:
            self._synced = kernel_clock_synced()
            self._synced_checked_ns = mono_ns
        return ClockReading(
            wall_ms, ClockEvidence(mono_us=mono_ns // 1000, boot=self._boot, sync=self._synced)
        )

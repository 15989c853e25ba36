"""Fault injection: what real serial lines and device clocks do to data."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["FaultPlan", "corrupt_frame", "garbage_bytes", "scanner_noise"]

EPOCH_RESET_MS = 86_400_000  # an RTC that lost power restarts near 1970-01-01


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Per-sample probabilities; all zero means a perfect device."""

    noise: float = 0.0  # flip a bit inside a frame (the checksum catches it)
    garbage: float = 0.0  # random bytes (incl. non-UTF-8) between frames
    dropout: float = 0.0  # a sample is never sent (the device seq jumps)
    clock_jump: float = 0.0  # the device clock jumps by hours, and stays off
    epoch_reset: float = 0.0  # the device clock resets to 1970 for one sample
    excursion: float = 0.0  # a door opens: temperatures head for ambient

    def __post_init__(self) -> None:
        for name in ("noise", "garbage", "dropout", "clock_jump", "epoch_reset", "excursion"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"fault rate {name} must be within 0..1")


def corrupt_frame(frame: bytes, rng: random.Random) -> bytes:
    """Flip one bit between '$' and '*' (never the line ending), like line noise."""
    end = frame.find(b"*")
    if end <= 1:
        return frame
    i = rng.randrange(1, end)
    flipped = frame[i] ^ (1 << rng.randrange(7))
    if flipped in (0x0A, 0x0D):  # a flipped bit that became EOL: pick another bit
        flipped = frame[i] ^ 0x40
    return frame[:i] + bytes([flipped]) + frame[i + 1 :]


def garbage_bytes(rng: random.Random) -> bytes:
    """A burst of random bytes ending in a line break, as after a glitch."""
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 24))) + b"\r\n"


def scanner_noise(rng: random.Random) -> bytes:
    """What a scanner cable glitch delivers: bytes that can never be valid UTF-8
    (lone continuation bytes) and contain no terminator, so exactly one bad read."""
    return bytes(rng.randrange(0x80, 0xC0) for _ in range(rng.randrange(1, 12)))

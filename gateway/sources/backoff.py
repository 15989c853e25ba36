"""Reconnect as an outer loop: exponential backoff with full jitter, and counters.

Every source wraps one connected *session* (an open serial port, an MQTT
connection) in :func:`reconnect_forever`. A session that fails for any reason is
counted and retried after a jittered, bounded delay, so a dead port or broker
never takes the other sources (or the daemon) down with it. Only cancellation
ends the loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from gateway.observations import BadInput, Measurement, Observation

__all__ = ["BackoffPolicy", "SourceCounters", "reconnect_forever", "truncate_for_log"]

_LOG_PREVIEW_CHARS = 64
_MAX_SEQ_JUMP = 10_000


def truncate_for_log(data: bytes | str, limit: int = _LOG_PREVIEW_CHARS) -> str:
    """A short, printable preview of untrusted input: never log a whole payload."""
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    preview = text[:limit].encode("unicode_escape").decode("ascii")
    return preview + ("…" if len(text) > limit else "")


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Delays between reconnect attempts: ``min(max_s, initial_s * multiplier**n)``,
    drawn with full jitter (uniform in [0, bound]) so that a fleet of gateways
    that lost the same broker does not reconnect in lockstep."""

    initial_s: float = 0.5
    max_s: float = 30.0
    multiplier: float = 2.0
    healthy_after_s: float = 10.0  # a session that lasted this long resets the backoff

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError("backoff: need 0 < initial_s <= max_s")
        if self.multiplier < 1:
            raise ValueError("backoff: multiplier must be at least 1")
        if self.healthy_after_s < 0:
            raise ValueError("backoff: healthy_after_s must not be negative")

    def bound(self, attempt: int) -> float:
        """Upper bound of the delay before retry number ``attempt`` (0-based)."""
        # Cap the exponent so huge attempt counts cannot overflow a float.
        return min(self.max_s, self.initial_s * self.multiplier ** min(attempt, 64))

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, self.bound(attempt))


@dataclass(slots=True)
class SourceCounters:
    """Plain counters a source owns; the core exports them (e.g. to Prometheus).

    Mutable on purpose: the source increments them in place and the exporter
    reads them. Only the event loop thread writes them.
    """

    frames_ok: int = 0
    frames_bad: Counter[str] = field(default_factory=Counter)  # by BadInput code
    reconnects: int = 0  # sessions that ended and were retried
    partial_at_open: int = 0  # line tails dropped because the port opened mid-line
    connected: bool = False
    last_error: str = ""  # exception type and message of the last failed session
    # Monotonic time of the last good reading per sensor id, so the core can
    # write 'silent-sensor' gap records for sensors that stopped reporting.
    last_reading_mono: dict[str, float] = field(default_factory=dict)
    # Samples a device numbered but the gateway never received (jumps in dev_seq).
    device_seq_missed: int = 0
    _last_dev_seq: dict[str, int] = field(default_factory=dict, repr=False)

    def count_bad(self, code: str) -> None:
        self.frames_bad[code] += 1

    def count_frame(self, decoded: Sequence[Observation]) -> None:
        """Count one frame (line or message): each bad part by its code, and the
        frame as ok when it gave at least one observation that is not bad."""
        good = False
        now = time.monotonic()
        for obs in decoded:
            if isinstance(obs, BadInput):
                self.count_bad(obs.code)
            else:
                good = True
                self.last_reading_mono[obs.src] = now
                if isinstance(obs, Measurement) and obs.dev_seq is not None:
                    self._note_dev_seq(obs.src, obs.dev_seq)
        if good:
            self.frames_ok += 1

    def _note_dev_seq(self, src: str, seq: int) -> None:
        last = self._last_dev_seq.get(src)
        self._last_dev_seq[src] = seq
        # A small forward jump is loss; a backward or huge jump is a device reboot
        # or counter wrap, where nothing can be concluded. Equal: same sample.
        if last is not None and 1 < seq - last <= _MAX_SEQ_JUMP:
            self.device_seq_missed += seq - last - 1


async def reconnect_forever(
    name: str,
    session: Callable[[], Awaitable[None]],
    policy: BackoffPolicy,
    counters: SourceCounters,
    log: logging.Logger,
    rng: random.Random | None = None,
) -> None:
    """Run ``session()`` again and again; back off after each end or failure.

    A session normally runs until its connection fails. Anything it raises
    except cancellation is logged (type and message, never payloads), counted
    and retried: a source must survive bugs triggered by hostile input as well
    as unplugged cables.
    """
    rng = rng or random.Random()
    loop = asyncio.get_running_loop()
    attempt = 0
    while True:
        started = loop.time()
        try:
            await session()
            counters.last_error = "session ended"
        except asyncio.CancelledError:
            counters.connected = False
            raise
        except Exception as e:
            counters.last_error = f"{type(e).__name__}: {truncate_for_log(str(e), 200)}"
            log.warning("source %s: %s", name, counters.last_error)
        counters.connected = False
        counters.reconnects += 1
        if loop.time() - started >= policy.healthy_after_s:
            attempt = 0
        delay = policy.delay(attempt, rng)
        attempt += 1
        log.info("source %s: reconnecting in %.2fs", name, delay)
        await asyncio.sleep(delay)

"""Which anchor member node the uplink asks, in what order, and when it goes back home.

Pure: member indexes and a monotonic clock in, an order out; the uplink does the
posting (docs/adr/0214). Member 0 is the home member, the first one listed.

- The member in use is asked first; when it fails the next ones are asked in list
  order, wrapping round, for the same batch and at once.
- The one that answers becomes the member in use.
- ``failback_s`` after the home member last failed, it is asked first again, so a
  gateway returns home on the first batch after that time.
- A member that answered with ``Retry-After`` is left out until then, unless every
  member is waiting (the uplink's own backoff has waited for them by then).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

__all__ = ["Failover", "Move"]


class Move(enum.Enum):
    STAYED = "stayed"
    FAILED_OVER = "failed-over"  # to another member, after the one in use failed
    FAILED_BACK = "failed-back"  # to the home member again


class Failover:
    def __init__(
        self, members: int, *, failback_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if members < 1:
            raise ValueError("an uplink needs at least one anchor member")
        if failback_s < 0:
            raise ValueError("failback_s must not be negative")
        self._members = members
        self._failback_s = failback_s
        self._clock = clock
        self._current = 0
        self._home_failed_at: float | None = None
        self._not_before = [0.0] * members  # monotonic seconds, from Retry-After

    @property
    def current(self) -> int:
        """The member in use: the one that answered last (0, home, to begin with)."""
        return self._current

    def failback_due(self) -> bool:
        now = self._clock()
        if self._current == 0 or self._not_before[0] > now:
            return False
        failed_at = self._home_failed_at
        return failed_at is None or now - failed_at >= self._failback_s

    def order(self) -> tuple[int, ...]:
        """The members to ask for the next batch, in turn, until one answers."""
        now = self._clock()
        turn = [(self._current + k) % self._members for k in range(self._members)]
        if self.failback_due():
            turn = [0, *(i for i in turn if i != 0)]
        ready = tuple(i for i in turn if self._not_before[i] <= now)
        return ready or tuple(turn)

    def failed(self, member: int, retry_after_s: float | None = None) -> None:
        """``member`` could not take the batch: unreachable, 5xx, 408/429, a bad receipt."""
        now = self._clock()
        if member == 0:
            self._home_failed_at = now
        self._not_before[member] = now + retry_after_s if retry_after_s else 0.0

    def answered(self, member: int) -> Move:
        """``member`` answered (a receipt or a refusal): it is the member in use now."""
        previous, self._current = self._current, member
        self._not_before[member] = 0.0
        if member == previous:
            return Move.STAYED
        return Move.FAILED_BACK if member == 0 else Move.FAILED_OVER

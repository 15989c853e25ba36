"""Close batches by count or age.

The policy is measured on the monotonic clock from the moment this process
first saw the open batch non-empty, so a wall clock that jumps (no RTC, late
NTP) can neither stall a batch nor close every batch at once. After a restart
the timer starts again: a batch closes at most ``max_age_s`` late.

Age exists for latency, and latency means nothing while the anchor cannot be
reached. So while the link is down (``link_up`` says so) and a backlog exists,
batches close by count only: an outage then yields full batches instead of one
small manifest every ``max_age_s``, which the spool must keep even when the
disk budget evicts their records (docs/adr/0203). While the link is up, age
closes batches even during a backlog drain: the uplink sends live batches
ahead of the backlog (docs/adr/0310), so their latency counts again. Without
``link_up`` the link is taken as down whenever a backlog exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from proofs.records import Manifest

from .errors import SpoolError

__all__ = ["BatchPolicy", "BatchStore", "Batcher"]

_BACKLOG_POLL_S = 0.25
_RETRY_AFTER_ERROR_S = 1.0

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    max_records: int
    max_age_s: float

    def __post_init__(self) -> None:
        if self.max_records < 1 or self.max_age_s <= 0:
            raise ValueError("a batch closes after >= 1 record and a positive age")

    def should_close(self, pending: int, age_s: float, backlog: int = 0) -> bool:
        """``backlog`` = sealed batches not yet anchored; while there are any, count only."""
        if pending >= self.max_records:
            return True
        return pending > 0 and backlog == 0 and age_s >= self.max_age_s


class BatchStore(Protocol):
    """The part of the spool the batcher uses (an in-memory twin exists for tests)."""

    records_added: asyncio.Event

    @property
    def unbatched(self) -> int: ...

    @property
    def sealed_unsent(self) -> int: ...

    async def seal_batch(self) -> Manifest | None: ...


class Batcher:
    def __init__(
        self,
        store: BatchStore,
        policy: BatchPolicy,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        on_sealed: Callable[[Manifest], None] | None = None,
        link_up: Callable[[], bool] | None = None,
    ) -> None:
        self._store = store
        self._link_up = link_up
        self._policy = policy
        self._monotonic = monotonic
        self._on_sealed = on_sealed
        self._opened_at: float | None = None

    async def step(self) -> Manifest | None:
        """Seal one batch if the policy says so; return it. Safe to call any time."""
        pending = self._store.unbatched
        if pending == 0:
            self._opened_at = None
            return None
        now = self._monotonic()
        if self._opened_at is None:
            self._opened_at = now
        backlog = self._store.sealed_unsent
        if backlog and self._link_up is not None and self._link_up():
            backlog = 0  # draining: live batches go first, so they close by age again
        if not self._policy.should_close(pending, now - self._opened_at, backlog):
            return None
        manifest = await self._store.seal_batch()
        # The next open batch starts now (its records may be older, which only shortens it).
        self._opened_at = now if self._store.unbatched else None
        if manifest is not None and self._on_sealed is not None:
            self._on_sealed(manifest)
        return manifest

    def _wait_s(self) -> float:
        if self._opened_at is None:
            return self._policy.max_age_s
        remaining = self._policy.max_age_s - (self._monotonic() - self._opened_at)
        if remaining <= 0:
            # Due by age but held back by a backlog: look again soon, without spinning.
            return min(self._policy.max_age_s, _BACKLOG_POLL_S)
        return remaining

    async def run(self) -> None:
        """Forever: wake on new records or when the open batch reaches its age."""
        while True:
            try:
                while await self.step() is not None:
                    pass
            except SpoolError as e:
                # A full disk (docs/adr/0213): the records stay unbatched and are sealed
                # once the spool can write again; a dead batcher would stop the daemon.
                log.error("batcher: cannot seal a batch: %s; retrying", e)
                await asyncio.sleep(_RETRY_AFTER_ERROR_S)
                continue
            self._store.records_added.clear()
            if self._store.unbatched >= self._policy.max_records:
                continue
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that
            # lands as the event fires, and SIGTERM would then never stop the daemon.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._wait_s() + 0.001):
                    await self._store.records_added.wait()

"""The local sequencer: one process orders the batches it receives and applies them.

An asyncio queue takes verified submissions; one writer thread owns every ledger write,
takes what is queued (up to ``group_max_batches``) and hands the group to
:meth:`~anchor.ledger.apply.LedgerApplier.apply_group`: one transaction and one fsync
for the group (group commit), a checkpoint and a receipt each. A failed commit answers
every batch of the group with a coded 503 and ``Retry-After`` (nothing was acknowledged).
This is the embedded default; a replicated stream (issue 11) takes its place behind the
same two calls, :meth:`submit` and :meth:`checkpoint_now`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from anchor.errors import AnchorError
from anchor.ledger.apply import IngestOutcome, LedgerApplier, Submission
from anchor.ledger.model import Checkpoint
from anchor.metrics import AnchorMetrics
from anchor.storage.health import StorageHealth

__all__ = ["LocalSequencer"]

_log = logging.getLogger("coldtrail.anchor.ingest")


@dataclass(slots=True)
class _Queued:
    submission: Submission
    future: asyncio.Future[IngestOutcome]


class LocalSequencer:
    """Orders submissions in arrival order and applies them in groups from one thread."""

    def __init__(
        self,
        applier: LedgerApplier,
        metrics: AnchorMetrics,
        storage: StorageHealth,
        *,
        group_max_batches: int,
    ) -> None:
        self.applier = applier
        self.metrics = metrics
        self.storage = storage
        self.group_max_batches = group_max_batches
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # One thread owns every ledger write, so commits never interleave.
        self._writer = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="ledger-writer"
        )

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ledger-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._queue.empty():
            queued = self._queue.get_nowait()
            if not queued.future.done():
                queued.future.set_exception(
                    AnchorError("unavailable", "the service is stopping", retry_after_s=10)
                )
        self._writer.shutdown(wait=True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def run_in_writer(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    async def submit(self, submission: Submission) -> IngestOutcome:
        """Queue ``submission``; its outcome once its group is applied (or the refusal)."""
        if self._task is None or self._task.done():
            raise AnchorError("unavailable", "the ledger writer is not running", retry_after_s=10)
        queued = _Queued(submission, asyncio.get_running_loop().create_future())
        await self._queue.put(queued)
        return await asyncio.shield(queued.future)

    async def checkpoint_now(self) -> Checkpoint:
        """Sign a checkpoint of the current log (or return the current one)."""
        result: Checkpoint = await self.run_in_writer(self.applier.checkpoint)
        return result

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            while len(group) < self.group_max_batches and not self._queue.empty():
                group.append(self._queue.get_nowait())
            started = time.perf_counter()
            try:
                results, wrote = await self.run_in_writer(
                    self.applier.apply_group, [q.submission for q in group]
                )
            except Exception as e:  # the whole transaction rolled back: nothing was acknowledged
                _log.exception("ledger commit of %d batch(es) failed", len(group))
                fault = self.storage.failed(e, "the batch")
                for q in group:
                    if not q.future.done():
                        # A coded 503 with Retry-After: the client sends the same bytes again.
                        q.future.set_exception(fault.error())
                continue
            if wrote:
                self.storage.committed()
            self.metrics.commit_seconds.observe(time.perf_counter() - started)
            self.metrics.commit_group_batches.observe(len(group))
            for q, result in zip(group, results, strict=True):
                if q.future.done():
                    continue
                if isinstance(result, BaseException):
                    q.future.set_exception(result)
                else:
                    if result.created:
                        self.metrics.batches_accepted.inc()
                    q.future.set_result(result)

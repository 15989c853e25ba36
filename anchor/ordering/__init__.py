"""Ordering: what puts verified batches in one order and has them applied.

:class:`~anchor.ordering.local.LocalSequencer` (one process, a queue and a writer
thread) is the embedded default; a consortium member
(:class:`~anchor.consortium.member.MemberNode`) orders on a NATS JetStream stream that
every member applies in the same order (:mod:`anchor.ordering.jetstream`). Both sit
behind :class:`Sequencer`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from anchor.ledger.apply import IngestOutcome, Submission
    from anchor.ledger.model import Checkpoint

__all__ = ["Sequencer"]


class Sequencer(Protocol):
    def start(self) -> None: ...

    async def stop(self) -> None: ...

    @property
    def running(self) -> bool: ...

    async def run_in_writer(self, fn: Any, *args: Any) -> Any: ...

    async def submit(self, submission: Submission) -> IngestOutcome: ...

    async def checkpoint_now(self) -> Checkpoint: ...

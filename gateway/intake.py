"""The gateway's :class:`~gateway.observations.Sink`: sign, spool, then return.

``submit`` returns only after the spool transaction holding the records is
durable, which is what lets a source acknowledge its device or broker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .metrics import GatewayMetrics
from .observations import (
    BadInput,
    Delivery,
    Measurement,
    Observation,
    RecordedDelivery,
    ScanEvent,
)
from .signer import Draft, Signer
from .silence import SilenceWatch
from .spool import Spool

__all__ = ["SpoolSink"]


class SpoolSink:
    def __init__(
        self,
        signer: Signer,
        spool: Spool,
        metrics: GatewayMetrics | None = None,
        silence: SilenceWatch | None = None,
    ) -> None:
        self._signer = signer
        self._spool = spool
        self._metrics = metrics
        self._silence = silence

    async def submit(
        self, observations: Sequence[Observation], deliveries: Sequence[Delivery] = ()
    ) -> None:
        """Implements both ``Sink`` and ``DeliverySink`` (docs/adr/0210)."""
        if not observations:
            if deliveries:  # messages that yielded nothing: still remember they are done
                await self._spool.append([], deliveries)
            return
        if self._silence:
            for obs in observations:
                if isinstance(obs, Measurement):
                    self._silence.seen(obs.src)
        if self._metrics:
            kinds: Counter[str] = Counter()
            for obs in observations:
                if isinstance(obs, Measurement):
                    kinds["measurement"] += 1
                elif isinstance(obs, ScanEvent):
                    kinds["scan"] += 1
                else:
                    kinds["bad-input"] += 1
                    if isinstance(obs, BadInput):
                        self._metrics.source_errors.labels(obs.src, obs.code).inc()
            for kind, n in kinds.items():  # one labelled update per kind, not per reading
                self._metrics.readings_in.labels(kind).inc(n)
        drafts = self._signer.drafts(observations)
        if deliveries:
            await self._spool.append(drafts, deliveries)
            self._count_spooled(drafts)
        else:
            await self._store(drafts)

    async def recorded_deliveries(
        self, session: str, packet_ids: Sequence[int]
    ) -> tuple[dict[int, RecordedDelivery], int]:
        return await self._spool.recorded_deliveries(session, packet_ids)

    def duplicates_dropped(self, source: str, count: int) -> None:
        if self._metrics and count:
            self._metrics.duplicates_dropped.labels(source).inc(count)

    async def record_gap(self, src: str, reason: str, detail: str, count: int = 1) -> None:
        """A signed gap about the gateway or a source itself (restart, source down)."""
        await self._store([self._signer.gap_draft(src, reason, detail, count)])

    async def _store(self, drafts: list[Draft]) -> None:
        if not drafts:
            return
        await self._spool.append(drafts)
        self._count_spooled(drafts)

    def _count_spooled(self, drafts: list[Draft]) -> None:
        if self._metrics and drafts:
            self._metrics.records_spooled.inc(len(drafts))
            for d in drafts:
                if d.TYPE == "gap":
                    self._metrics.gaps.labels(getattr(d, "reason", "?")).inc()

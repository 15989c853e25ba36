"""Send sealed batches to the anchor and delete them only on a verified receipt.

Chain order is the only order (docs/ingest-contract.md: ``batch_seq`` must be
the previous accepted one + 1), so the uplink always sends the spool's oldest
unsent batch. "Live before backfill" is therefore a pacing rule (docs/adr/0206):
a batch that closed within ``live_window_s`` goes out at once, older batches
(backfill after an outage) are paced to ``backfill_batches_per_s`` so a drain
never starves the sources, the spool or the link.

Every resend carries the same stored bytes, so it is idempotent at the anchor.
A 4xx refusal is kept and surfaced; 5xx, 408, 429 and transport errors are
retried with exponential backoff and jitter; a receipt that fails
``verify_receipt`` never deletes anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from proofs.canonical import canonical_json
from proofs.errors import ProofsError
from proofs.receipt import verify_receipt

from .errors import UplinkError
from .manifests import batch_payload
from .metrics import GatewayMetrics
from .spool import OutgoingBatch

__all__ = [
    "AnchorReply",
    "AnchorTransport",
    "Backoff",
    "HttpAnchorTransport",
    "Outcome",
    "Uplink",
    "UplinkStatus",
]

log = logging.getLogger(__name__)
_RETRYABLE_4XX = frozenset({408, 429})
_REFUSED_POLL_S = 5.0  # a person may clear a refusal with `coldtrail-gateway retry`


@dataclass(frozen=True, slots=True)
class AnchorReply:
    status: int
    body: bytes


class AnchorTransport(Protocol):
    async def post_batch(self, payload: bytes) -> AnchorReply:
        """POST one batch; raise :class:`UplinkError` when no HTTP reply arrived."""


class UplinkStore(Protocol):
    batches_changed: asyncio.Event

    async def head_batch(self, *, mark_in_flight: bool = True) -> OutgoingBatch | None: ...

    async def release(self) -> None: ...

    async def confirm(self, batch_seq: int, receipt_json: bytes) -> None: ...

    async def refuse(self, batch_seq: int, status: int, code: str, detail: str) -> None: ...


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Server verification always on; ``ca_file`` adds a private CA, it never disables checks."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class HttpAnchorTransport:
    """aiohttp client for ``POST /v1/batches``; use as an async context manager."""

    def __init__(
        self, base_url: str, token: str, *, ca_file: Path | None = None, timeout_s: float = 30.0
    ) -> None:
        self._url = base_url.rstrip("/") + "/v1/batches"
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "User-Agent": "coldtrail-gateway",
        }
        self._ssl = tls_context(ca_file) if base_url.startswith("https://") else None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpAnchorTransport:
        connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True, limit=2)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post_batch(self, payload: bytes) -> AnchorReply:
        if self._session is None:
            raise UplinkError("transport is not open", code="transport-closed")
        try:
            async with self._session.post(self._url, data=payload, headers=self._headers) as resp:
                return AnchorReply(resp.status, await resp.read())
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise UplinkError(
                f"anchor unreachable: {type(e).__name__}: {e}", code="transport-error"
            ) from e


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with "equal jitter": half fixed, half random.

    The random half spreads a fleet of gateways that lost the anchor at the same
    moment; the fixed half keeps a single gateway from retrying in a hot loop.
    """

    initial_s: float
    max_s: float

    def delay_s(self, failures: int, rng: random.Random) -> float:
        if failures <= 0:
            return 0.0
        ceiling = min(self.max_s, self.initial_s * 2.0 ** min(failures - 1, 32))
        return float(ceiling / 2 + rng.uniform(0, ceiling / 2))


class Outcome(enum.Enum):
    SENT = "sent"
    IDLE = "idle"
    REFUSED = "refused"  # the head batch is refused: waiting for a person
    RETRY = "retry"


@dataclass
class UplinkStatus:
    """What the uplink knows right now, for ``status`` and the logs."""

    state: str = "starting"
    last_error: str = ""
    last_error_ms: int | None = None
    consecutive_failures: int = 0
    batches_sent: int = 0
    records_sent: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "last_error": self.last_error,
            "last_error_ms": self.last_error_ms,
            "consecutive_failures": self.consecutive_failures,
            "batches_sent": self.batches_sent,
            "records_sent": self.records_sent,
        }


def _problem(reply: AnchorReply) -> tuple[str, str]:
    """(code, detail) from an RFC 9457 problem body, tolerating anything else."""
    try:
        data = json.loads(reply.body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        code = data.get("code")
        detail = data.get("detail") or data.get("title") or ""
        if isinstance(code, str) and code:
            return code, str(detail)
    snippet = reply.body[:200].decode("utf-8", "replace")
    return f"http-{reply.status}", snippet


class Uplink:
    def __init__(
        self,
        store: UplinkStore,
        transport: AnchorTransport,
        anchor_vkey: str,
        *,
        backoff: Backoff,
        backfill_batches_per_s: float,
        live_window_s: float,
        metrics: GatewayMetrics | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._store = store
        self._transport = transport
        self._vkey = anchor_vkey
        self._backoff = backoff
        self._backfill_interval_s = 1.0 / backfill_batches_per_s
        self._live_window_ms = live_window_s * 1000.0
        self._metrics = metrics
        self._rng = rng or random.SystemRandom()
        self._sleep = sleep
        self._clock = clock
        self._wall_ms = wall_ms
        self._next_backfill_at = 0.0
        self.status = UplinkStatus()

    def _fail(self, reason: str, message: str) -> Outcome:
        self.status.last_error = message
        self.status.last_error_ms = self._wall_ms()
        self.status.state = "retrying"
        if self._metrics:
            self._metrics.uplink_failures.labels(reason).inc()
        return Outcome.RETRY

    async def _pace_backfill(self, batch: OutgoingBatch) -> None:
        if self._wall_ms() - batch.closed_ms <= self._live_window_ms:
            return
        now = self._clock()
        wait = self._next_backfill_at - now
        if wait > 0:
            await self._sleep(wait)
        self._next_backfill_at = max(now, self._next_backfill_at) + self._backfill_interval_s

    async def step(self) -> Outcome:
        """Try to get the oldest unsent batch anchored, once."""
        batch = await self._store.head_batch(mark_in_flight=True)
        if batch is None:
            self.status.state = "idle"
            return Outcome.IDLE
        manifest = batch.manifest
        if batch.refusal is not None:
            await self._store.release()
            r = batch.refusal
            self.status.state = f"refused: batch {manifest.batch_seq} ({r.code})"
            return Outcome.REFUSED
        sent = False
        try:
            await self._pace_backfill(batch)
            payload = batch_payload(batch.manifest_json, batch.records, batch.evicted)
            self.status.state = f"sending batch {manifest.batch_seq}"
            try:
                reply = await self._transport.post_batch(payload)
            except UplinkError as e:
                return self._fail("transport", e.message)
            if reply.status in (200, 201):
                try:
                    data = json.loads(reply.body)
                    verify_receipt(data, manifest, self._vkey)
                except (ValueError, UnicodeDecodeError) as e:
                    if self._metrics:
                        self._metrics.bad_receipts.inc()
                    return self._fail("bad-receipt", f"anchor reply is not JSON: {e}")
                except ProofsError as e:
                    # Forged, for another batch, or signed by a key we do not trust: the
                    # records stay until a receipt we can check arrives.
                    if self._metrics:
                        self._metrics.bad_receipts.inc()
                    log.error("batch %d: receipt rejected: %s", manifest.batch_seq, e)
                    return self._fail("bad-receipt", f"receipt rejected: {e}")
                await self._store.confirm(manifest.batch_seq, canonical_json(data))
                sent = True
                self.status.batches_sent += 1
                self.status.records_sent += len(batch.records)
                self.status.consecutive_failures = 0
                self.status.state = "sent"
                if self._metrics:
                    self._metrics.batches_out.inc()
                    self._metrics.records_out.inc(len(batch.records))
                return Outcome.SENT
            if 400 <= reply.status < 500 and reply.status not in _RETRYABLE_4XX:
                code, detail = _problem(reply)
                await self._store.refuse(manifest.batch_seq, reply.status, code, detail)
                sent = True  # refuse() already released it
                log.error(
                    "anchor refused batch %d (HTTP %d %s): %s; kept in the spool,"
                    " see `coldtrail-gateway status`",
                    manifest.batch_seq,
                    reply.status,
                    code,
                    detail,
                )
                if self._metrics:
                    self._metrics.uplink_refused.labels(code).inc()
                self.status.state = f"refused: batch {manifest.batch_seq} ({code})"
                return Outcome.REFUSED
            code, detail = _problem(reply)
            return self._fail(
                f"http-{reply.status}", f"anchor answered {reply.status} {code}: {detail}"
            )
        finally:
            if not sent:
                with contextlib.suppress(Exception):
                    await self._store.release()

    async def run(self) -> None:
        while True:
            # Cleared before looking, so a batch sealed while we look still wakes us.
            self._store.batches_changed.clear()
            outcome = await self.step()
            if outcome is Outcome.SENT:
                continue
            if outcome is Outcome.RETRY:
                self.status.consecutive_failures += 1
                delay = self._backoff.delay_s(self.status.consecutive_failures, self._rng)
                log.warning("uplink: %s; retrying in %.1f s", self.status.last_error, delay)
                await self._sleep(delay)
                continue
            timeout = _REFUSED_POLL_S if outcome is Outcome.REFUSED else 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._store.batches_changed.wait(), timeout)

"""Send sealed batches to the anchor and delete them only on a verified receipt.

Live data first (docs/adr/0310): the anchor accepts a gateway's batches out of
``batch_seq`` order and checks every chain link once both of its batches are
stored, so after an outage the uplink sends the newest batch first while it is
live (closed within ``live_window_s``), newest first, and drains the backlog
behind it oldest first, paced to ``backfill_batches_per_s`` so a drain never
starves the sources, the spool or the link. A batch sealed during the drain is
live and goes ahead of the remaining backlog.

Every resend carries the same stored bytes, so it is idempotent at the anchor.
A 4xx refusal of one batch is kept and surfaced and the other batches go on; a
refusal of the gateway itself (401/403) holds everything until a person acts.
5xx, 408, 429 and transport errors are retried with exponential backoff and
jitter, waiting at least the ``Retry-After`` the anchor sent (a 503 for a full
ledger disk says how long); a receipt that fails ``verify_receipt`` never deletes anything.

The anchor may be several member nodes (docs/adr/0214), each signing with its own
log key. A member that fails the batch in one of those ways hands it to the next
member at once, and only when every member failed does the backoff start; a 4xx
refusal is an answer, not a failure. A receipt is checked against the key of the
member that sent it, never another member's. Which member is asked when is
:class:`gateway.failover.Failover`'s business.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import enum
import json
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from proofs.canonical import canonical_json
from proofs.errors import ProofsError
from proofs.receipt import verify_receipt

from .errors import SpoolError, UplinkError
from .failover import Failover, Move
from .manifests import batch_payload
from .metrics import GatewayMetrics
from .spool import OutgoingBatch

__all__ = [
    "AnchorLink",
    "AnchorReply",
    "AnchorTransport",
    "Backoff",
    "HttpAnchorTransport",
    "Outcome",
    "Uplink",
    "UplinkStatus",
    "parse_retry_after",
]

log = logging.getLogger(__name__)
_RETRYABLE_4XX = frozenset({408, 429})
_GATEWAY_REFUSED = frozenset({401, 403})  # the token or the gateway, not one batch (spool)
_REFUSED_POLL_S = 5.0  # a person may clear a refusal with `coldtrail-gateway retry`
# Retry-After is honoured up to this: a confused anchor cannot park the uplink for days.
_RETRY_AFTER_MAX_S = 3600.0


@dataclass(frozen=True, slots=True)
class AnchorReply:
    status: int
    body: bytes
    retry_after_s: float | None = None  # the reply's Retry-After, in seconds


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds from an HTTP ``Retry-After`` (delta-seconds or an HTTP-date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value[:12]), _RETRY_AFTER_MAX_S))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, min(when.timestamp() - now_s, _RETRY_AFTER_MAX_S))


class AnchorTransport(Protocol):
    async def post_batch(self, payload: bytes) -> AnchorReply:
        """POST one batch; raise :class:`UplinkError` when no HTTP reply arrived."""


@dataclass(frozen=True, slots=True)
class AnchorLink:
    """One anchor member node as the uplink uses it: how to reach it, and the log key
    its receipts must verify with. ``url`` names it in the status, logs and metrics."""

    url: str
    transport: AnchorTransport
    anchor_vkey: str


class UplinkStore(Protocol):
    batches_changed: asyncio.Event

    async def next_batch(
        self, live_since_ms: int, *, mark_in_flight: bool = True
    ) -> OutgoingBatch | None: ...

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
                retry_after = parse_retry_after(resp.headers.get("Retry-After"), time.time())
                return AnchorReply(resp.status, await resp.read(), retry_after)
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
    REFUSED = "refused"  # the anchor refused the batch just sent; it is kept, the rest go on
    HELD = "held"  # only refused batches are left (or the gateway is refused): a person acts
    PACED = "paced"  # the next batch is backfill and its slot has not come yet
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
    member: str = ""  # the URL of the anchor member node in use
    member_index: int = 0  # its place in uplink.anchors (0: the home member)
    members: int = 1
    failovers: int = 0
    failbacks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "last_error": self.last_error,
            "last_error_ms": self.last_error_ms,
            "consecutive_failures": self.consecutive_failures,
            "batches_sent": self.batches_sent,
            "records_sent": self.records_sent,
            "member": self.member,
            "member_index": self.member_index,
            "members": self.members,
            "failovers": self.failovers,
            "failbacks": self.failbacks,
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
        members: Sequence[AnchorLink],
        *,
        backoff: Backoff,
        backfill_batches_per_s: float,
        live_window_s: float,
        failback_s: float = 60.0,
        metrics: GatewayMetrics | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._store = store
        self._members = tuple(members)
        self._failover = Failover(len(self._members), failback_s=failback_s, clock=clock)
        self._backoff = backoff
        self._backfill_interval_s = 1.0 / backfill_batches_per_s
        self._live_window_ms = live_window_s * 1000.0
        self._metrics = metrics
        self._rng = rng or random.SystemRandom()
        self._sleep = sleep
        self._clock = clock
        self._wall_ms = wall_ms
        self._next_backfill_at = 0.0
        self.pace_wait_s = 0.0  # after Outcome.PACED: how long until the backfill slot
        # False while the anchor is unreachable or holds everything (the batcher then
        # closes batches by count only); True again after the next receipt.
        self.link_up = True
        self.status = UplinkStatus(members=len(self._members))
        self._show_member()
        # Each member that failed in this round: what went wrong, its Retry-After (None:
        # it sent none); after a failed round, the shortest, if every member sent one.
        self._round: list[tuple[str, float | None]] = []
        self._retry_after_s: float | None = None

    def _fail(self, reason: str, message: str) -> Outcome:
        self._count_failure(reason, message)
        return self._retry()

    def _count_failure(self, reason: str, message: str) -> None:
        self.status.last_error = message
        self.status.last_error_ms = self._wall_ms()
        if self._metrics:
            self._metrics.uplink_failures.labels(reason).inc()

    def _retry(self) -> Outcome:
        self.status.state = "retrying"
        self.link_up = False
        return Outcome.RETRY

    def _show_member(self) -> None:
        index = self._failover.current
        self.status.member = self._members[index].url
        self.status.member_index = index
        if self._metrics:
            self._metrics.uplink_member.set(index)

    def _member_failed(
        self, index: int, reason: str, message: str, retry_after_s: float | None = None
    ) -> None:
        url = self._members[index].url
        self._failover.failed(index, retry_after_s)
        self._round.append((f"{url}: {message}", retry_after_s))
        self._count_failure(reason, f"{url}: {message}")
        if len(self._members) > 1:
            log.warning("uplink: anchor member %s failed: %s", url, message)

    def _member_answered(self, index: int) -> None:
        url = self._members[index].url
        move = self._failover.answered(index)
        if move is Move.FAILED_OVER:
            self.status.failovers += 1
            log.warning("uplink: failed over to anchor member %s", url)
            if self._metrics:
                self._metrics.uplink_failovers.labels(url).inc()
        elif move is Move.FAILED_BACK:
            self.status.failbacks += 1
            log.warning("uplink: back on the home anchor member %s", url)
            if self._metrics:
                self._metrics.uplink_failbacks.inc()
        self._show_member()

    def _backfill_slot(self) -> float:
        """Take the backfill slot if it has come (0.0), else return the seconds left."""
        now = self._clock()
        if now < self._next_backfill_at:
            return self._next_backfill_at - now
        self._next_backfill_at = now + self._backfill_interval_s
        return 0.0

    async def step(self) -> Outcome:
        """Try to get the next batch anchored, once: the newest if live, else the oldest."""
        live_since_ms = int(self._wall_ms() - self._live_window_ms)
        batch = await self._store.next_batch(live_since_ms, mark_in_flight=True)
        if batch is None:
            self.status.state = "idle"
            return Outcome.IDLE
        manifest = batch.manifest
        if batch.refusal is not None:
            await self._store.release()
            r = batch.refusal
            self.status.state = f"refused: batch {manifest.batch_seq} ({r.code})"
            if r.status in _GATEWAY_REFUSED:
                self.link_up = False  # nothing goes out until a person acts
            return Outcome.HELD
        if batch.closed_ms < live_since_ms:  # backfill
            wait = self._backfill_slot()
            if wait > 0:
                await self._store.release()
                self.pace_wait_s = wait
                self.status.state = f"backfill paced: batch {manifest.batch_seq}"
                return Outcome.PACED
        sent = False
        try:
            payload = batch_payload(batch.manifest_json, batch.records, batch.evicted)
            self._retry_after_s = None
            self._round = []
            # The same bytes to each member in turn: resending is idempotent, the
            # consortium dedupes by manifest hash, so an answer lost at one member is
            # no reason to hold the batch back from the next.
            for index in self._failover.order():
                outcome = await self._send(index, batch, payload)
                if outcome is not None:
                    sent = True  # confirmed, or refuse() released it
                    return outcome
            waits = [w for _, w in self._round]
            if None not in waits:
                self._retry_after_s = min((w for w in waits if w is not None), default=None)
            if len(self._members) > 1:
                errors = "; ".join(e for e, _ in self._round)
                self.status.last_error = (
                    f"no anchor member took batch {manifest.batch_seq}: {errors}"
                )
            return self._retry()
        finally:
            if not sent:
                with contextlib.suppress(Exception):
                    await self._store.release()

    async def _send(self, index: int, batch: OutgoingBatch, payload: bytes) -> Outcome | None:
        """Offer the batch to one member: SENT or REFUSED when it answered, None when it
        failed and the next member should be asked."""
        member = self._members[index]
        manifest = batch.manifest
        self.status.state = f"sending batch {manifest.batch_seq} to {member.url}"
        try:
            reply = await member.transport.post_batch(payload)
        except UplinkError as e:
            self._member_failed(index, "transport", e.message)
            return None
        if reply.status in (200, 201):
            try:
                data = json.loads(reply.body)
                # The key of the member that answered, not any member's: trust in one
                # member's key says nothing about what another node signs.
                verify_receipt(data, manifest, member.anchor_vkey)
            except (ValueError, UnicodeDecodeError) as e:
                if self._metrics:
                    self._metrics.bad_receipts.inc()
                self._member_failed(index, "bad-receipt", f"anchor reply is not JSON: {e}")
                return None
            except ProofsError as e:
                # Forged, for another batch, or signed by a key we do not trust for this
                # member: the records stay until a receipt we can check arrives.
                if self._metrics:
                    self._metrics.bad_receipts.inc()
                log.error(
                    "batch %d: receipt from %s rejected: %s", manifest.batch_seq, member.url, e
                )
                self._member_failed(index, "bad-receipt", f"receipt rejected: {e}")
                return None
            self._member_answered(index)
            await self._store.confirm(manifest.batch_seq, canonical_json(data))
            self.status.batches_sent += 1
            self.status.records_sent += len(batch.records)
            self.status.consecutive_failures = 0
            self.status.state = "sent"
            self.link_up = True
            if self._metrics:
                self._metrics.batches_out.inc()
                self._metrics.records_out.inc(len(batch.records))
            return Outcome.SENT
        if 400 <= reply.status < 500 and reply.status not in _RETRYABLE_4XX:
            # An answer, not a failure: the members share one enrolment and one log,
            # so the next member would refuse the batch for the same reason.
            self._member_answered(index)
            code, detail = _problem(reply)
            await self._store.refuse(manifest.batch_seq, reply.status, code, detail)
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
        self._member_failed(
            index,
            f"http-{reply.status}",
            f"anchor answered {reply.status} {code}: {detail}",
            reply.retry_after_s,
        )
        return None

    def retry_delay_s(self) -> float:
        """The backoff after the current run of failures, but at least the Retry-After
        the members sent in the last round (the shortest, when every one sent one)."""
        delay = self._backoff.delay_s(self.status.consecutive_failures, self._rng)
        if self._retry_after_s is not None:
            delay = max(delay, self._retry_after_s)
        return delay

    async def run(self) -> None:
        while True:
            # Cleared before looking, so a batch sealed while we look still wakes us.
            self._store.batches_changed.clear()
            try:
                outcome = await self.step()
            except SpoolError as e:
                # The spool could not write (a full disk, docs/adr/0213): a receipt that
                # was not recorded is fetched again by an idempotent resend.
                outcome = self._fail("spool", f"spool: {e}")
            if outcome is Outcome.SENT:
                continue
            if outcome is Outcome.RETRY:
                self.status.consecutive_failures += 1
                delay = self.retry_delay_s()
                log.warning("uplink: %s; retrying in %.1f s", self.status.last_error, delay)
                await self._sleep(delay)
                continue
            if outcome is Outcome.REFUSED:
                continue  # one batch refused: the others do not wait for it
            if outcome is Outcome.PACED:
                timeout = self.pace_wait_s  # a batch sealed meanwhile is live: it goes first
            else:
                timeout = _REFUSED_POLL_S if outcome is Outcome.HELD else 1.0
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: see batcher.run
                async with asyncio.timeout(timeout):
                    await self._store.batches_changed.wait()

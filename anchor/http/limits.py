"""Public reads kept apart from ingest and health (docs/adr/0406-public-read-isolation.md).

- :class:`PublicGate` runs every blocking public query (provenance, pages, explorer,
  log proofs) in its *own* small thread pool, never in the default executor that
  ingest's ``to_thread`` calls and ``/healthz`` use. At most ``workers`` run and
  ``queue_max`` wait; one more is refused at once with ``429 busy``.
- :class:`TokenBuckets` gives each client (a verified API token id, else the remote
  address, behind ``trusted_proxies`` the forwarded one) ``rate_per_s`` requests per
  second with bursts of ``burst``; beyond that ``429 rate-limited``.
- :class:`BoundedCache` is an LRU bounded by entries and bytes; answers and rendered
  pages are keyed by (request, ledger version): the log only grows, so an answer made
  at one version stays right until the version moves.

Both refusals carry ``Retry-After`` and an RFC 9457 problem. Gateways' ingest
(``POST``), ``/healthz``, ``/metrics`` and static files never meet the gate.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware

from anchor.auth import parse_token
from anchor.errors import AnchorError
from anchor.http.problems import problem_response
from anchor.metrics import AnchorMetrics

__all__ = [
    "PUBLIC_GATE",
    "BoundedCache",
    "Overloaded",
    "PublicGate",
    "PublicLimits",
    "TokenBuckets",
    "document_limits",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Never behind the gate: health and metrics answer probes, static files are cheap.
_UNGATED_PATHS = frozenset({"/healthz", "/metrics", "/openapi.json"})


@dataclass(frozen=True, slots=True)
class PublicLimits:
    """The public side's bounds (``public_*`` and ``trusted_proxies`` in anchor.config)."""

    rate_per_s: float = 5.0
    burst: int = 20
    workers: int = 2
    queue_max: int = 32
    retry_after_s: int = 1
    clients_max: int = 10_000
    cache_max_entries: int = 256
    cache_max_bytes: int = 64 * 1024 * 1024
    trusted_proxies: tuple[IPNetwork, ...] = ()


class Overloaded(AnchorError):
    """``rate-limited`` or ``busy``: a 429 that says when to come back."""

    def __init__(self, code: str, detail: str, retry_after_s: int) -> None:
        super().__init__(code, detail)
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[Any, ...]:
        return (Overloaded, (self.code, self.detail, self.retry_after_s))


class TokenBuckets:
    """One token bucket per client, at most ``clients_max`` of them (least recently seen
    dropped first: a dropped client comes back with a full bucket, which only forgives)."""

    def __init__(self, rate_per_s: float, burst: int, clients_max: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clients_max = clients_max
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str, now: float) -> float:
        """0 if the client may go now (one token taken), else seconds until it may."""
        tokens, last = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - last) * self.rate_per_s)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate_per_s
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.clients_max:
            self._buckets.popitem(last=False)
        return wait


class BoundedCache(Generic[K, V]):
    """An LRU bounded by entry count and by the sizes its callers state (bytes)."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: K, value: V, size_bytes: int) -> None:
        if size_bytes > self.max_bytes or self.max_entries < 1:
            return  # larger than the whole cache: not worth evicting everything for
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._items[key] = (value, size_bytes)
        self.bytes += size_bytes
        while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, size) = self._items.popitem(last=False)
            self.bytes -= size


class PublicGate:
    """The public read path's pool, queue bound, client limits and caches' metrics."""

    def __init__(
        self,
        limits: PublicLimits,
        metrics: AnchorMetrics,
        version: Callable[[], Hashable] | None = None,
    ) -> None:
        self.limits = limits
        self.metrics = metrics
        # The ledger version answers are cached under, read from memory (None: the
        # caller asks the ledger). The app factory passes (log size, checkpoints signed).
        self.version = version
        self.buckets = TokenBuckets(limits.rate_per_s, limits.burst, limits.clients_max)
        self._pool = ThreadPoolExecutor(limits.workers, thread_name_prefix="public-read")
        self._running = asyncio.Semaphore(limits.workers)
        self._waiting = 0
        self._verified: OrderedDict[str, None] = OrderedDict()

    # -- the pool
    async def run(self, fn: Callable[..., V], *args: Any) -> V:
        """``fn(*args)`` in the public pool; ``busy`` when ``queue_max`` already wait."""
        if self._running.locked():
            if self._waiting >= self.limits.queue_max:
                raise Overloaded(
                    "busy",
                    "too many public queries are waiting; try again shortly",
                    self.limits.retry_after_s,
                )
            self._waiting += 1
            try:
                await self._running.acquire()
            finally:
                self._waiting -= 1
        else:
            await self._running.acquire()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, lambda: fn(*args))
        finally:
            self._running.release()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- clients
    def note_verified_token(self, token_id: str) -> None:
        """Requests with this token id are limited per token from now on (it verified)."""
        self._verified[token_id] = None
        self._verified.move_to_end(token_id)
        while len(self._verified) > self.limits.clients_max:
            self._verified.popitem(last=False)

    def client_of(self, request: web.Request) -> str:
        """The verified token id, else the remote address (forwarded by a trusted proxy).

        A token id is trusted only after it verified once (``note_verified_token``):
        made-up ids would otherwise each get a fresh bucket.
        """
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value:
            try:
                token_id, _ = parse_token(value.strip())
            except AnchorError:
                token_id = ""
            if token_id in self._verified:
                return "token:" + token_id
        return "ip:" + self.remote_of(request, self.limits.trusted_proxies)

    @staticmethod
    def remote_of(request: web.Request, trusted: Iterable[IPNetwork]) -> str:
        """The peer address; if the peer is a trusted proxy, the right-most address in
        ``X-Forwarded-For`` that is not itself a trusted proxy (RFC 7239 practice)."""
        peer = request.remote or ""
        trusted = tuple(trusted)
        if not trusted or not _in(peer, trusted):
            return peer
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
        for hop in reversed([h for h in hops if h]):
            if not _in(hop, trusted):
                return hop if _is_ip(hop) else peer
        return peer

    @staticmethod
    def is_public(request: web.Request) -> bool:
        if request.method not in ("GET", "HEAD"):
            return False  # ingest and admin writes: never the public limiter
        path = request.path
        return path not in _UNGATED_PATHS and not path.startswith("/static/")

    # -- the middleware
    def middleware(self) -> Middleware:
        @web.middleware
        async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not self.is_public(request):
                return await handler(request)
            try:
                wait = self.buckets.take(self.client_of(request), time.monotonic())
                if wait > 0:
                    raise Overloaded(
                        "rate-limited",
                        f"at most {self.limits.rate_per_s:g} public requests per second"
                        f" (bursts of {self.limits.burst}) per client",
                        max(1, math.ceil(wait)),
                    )
                return await handler(request)
            except Overloaded as e:
                self.metrics.public_refused.labels(e.code).inc()
                self.metrics.http_problems.labels(e.code).inc()
                resp = problem_response(e.code, e.detail, instance=request.path)
                resp.headers["Retry-After"] = str(e.retry_after_s)
                return resp

        return gate


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _in(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in networks)


def document_limits(doc: dict[str, Any]) -> None:
    """Add the gate's 429 (with ``Retry-After``) to every public operation of an OpenAPI
    document, so the document says what the middleware may answer."""
    too_many = {
        "description": "Too many requests (rate-limited) or the public queue is full (busy)",
        "headers": {
            "Retry-After": {
                "description": "seconds to wait before trying again",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
    for path, item in doc.get("paths", {}).items():
        if path in _UNGATED_PATHS or path.startswith("/static/"):
            continue
        for method in ("get", "head"):
            op = item.get(method)
            if isinstance(op, dict):
                op.setdefault("responses", {})["429"] = too_many


PUBLIC_GATE = web.AppKey("public_gate", PublicGate)

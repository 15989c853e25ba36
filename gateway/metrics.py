"""Prometheus metrics, served on 127.0.0.1 only (with a JSON ``/status`` for the CLI).

One :class:`GatewayMetrics` per daemon, on its own ``CollectorRegistry``, so
several gateways in one test process never share counters. Spool gauges are
read at scrape time from the spool's in-memory stats, never from disk.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .spool import SpoolStats

__all__ = ["METRICS_HOST", "GatewayMetrics", "create_metrics_app"]

METRICS_HOST = "127.0.0.1"  # never a public interface: the endpoint has no authentication


class GatewayMetrics:
    def __init__(self, spool_stats: Callable[[], SpoolStats] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.readings_in = Counter(
            "coldtrail_observations_in", "Observations handed over by sources", ["kind"], registry=r
        )
        self.records_spooled = Counter(
            "coldtrail_records_spooled", "Signed records made durable in the spool", registry=r
        )
        self.records_out = Counter(
            "coldtrail_records_anchored",
            "Records removed from the spool after a verified receipt",
            registry=r,
        )
        self.batches_out = Counter(
            "coldtrail_batches_anchored", "Batches with a verified receipt", registry=r
        )
        self.gaps = Counter("coldtrail_gap_records", "Gap records written", ["reason"], registry=r)
        self.source_errors = Counter(
            "coldtrail_source_errors",
            "Source failures and bad input",
            ["source", "code"],
            registry=r,
        )
        self.duplicates_dropped = Counter(
            "coldtrail_source_duplicates_dropped",
            "Redelivered messages already committed: acknowledged, not stored again",
            ["source"],
            registry=r,
        )
        self.uplink_refused = Counter(
            "coldtrail_uplink_refused", "Batches the anchor refused (4xx)", ["code"], registry=r
        )
        self.uplink_failures = Counter(
            "coldtrail_uplink_failures",
            "Send attempts that failed and will be retried",
            ["reason"],
            registry=r,
        )
        self.bad_receipts = Counter(
            "coldtrail_uplink_bad_receipts",
            "Receipts that did not verify (records were kept)",
            registry=r,
        )
        self._spool_stats = spool_stats
        self._gauge("coldtrail_spool_records", "Records in the spool", lambda s: s.records)
        self._gauge("coldtrail_spool_bytes", "Bytes counted against the budget", lambda s: s.bytes)
        self._gauge(
            "coldtrail_spool_unbatched", "Records not yet in a batch", lambda s: s.unbatched
        )
        self._gauge(
            "coldtrail_spool_batches", "Sealed batches not yet anchored", lambda s: s.batches
        )
        self._gauge(
            "coldtrail_spool_refused_batches",
            "Batches held after a refusal",
            lambda s: s.refused_batches,
        )
        self._gauge(
            "coldtrail_spool_evicted_records",
            "Records dropped by the disk budget (ever)",
            lambda s: s.evicted_records_total,
        )
        self._gauge(
            "coldtrail_uplink_lag_seconds",
            "Age of the oldest data not yet anchored",
            lambda s: _age_s(s.oldest_unsent_ms),
        )
        self._gauge(
            "coldtrail_last_receipt_age_seconds",
            "Time since the last verified receipt (NaN: none yet)",
            lambda s: _age_s(s.last_receipt_ms, default=float("nan")),
        )

    def _gauge(self, name: str, doc: str, read: Callable[[SpoolStats], float]) -> None:
        gauge = Gauge(name, doc, registry=self.registry)
        gauge.set_function(lambda: read(self._spool_stats()) if self._spool_stats else 0.0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _age_s(ms: int | None, default: float = 0.0) -> float:
    if ms is None:
        return default
    return max(0.0, time.time() - ms / 1000.0)


def create_metrics_app(
    metrics: GatewayMetrics, status: Callable[[], dict[str, Any]]
) -> web.Application:
    async def get_metrics(_request: web.Request) -> web.Response:
        body = metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def get_status(_request: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(status(), sort_keys=True), content_type="application/json"
        )

    app = web.Application()
    app.router.add_routes([web.get("/metrics", get_metrics), web.get("/status", get_status)])
    return app

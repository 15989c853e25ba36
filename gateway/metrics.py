"""Prometheus metrics, served on 127.0.0.1 only (with a JSON ``/status`` for the CLI).

One :class:`GatewayMetrics` per daemon, on its own ``CollectorRegistry``, so
several gateways in one test process never share counters. Spool gauges are
read at scrape time from the spool's in-memory stats, never from disk.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from .spool import EVICTION_REASONS, SpoolStats

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
        # Labelled by the member's URL: at most 16 (uplink.anchors), fixed by the config.
        self.uplink_failovers = Counter(
            "coldtrail_uplink_failovers",
            "Moves to another anchor member node after the one in use failed, by that member",
            ["member"],
            registry=r,
        )
        self.uplink_failbacks = Counter(
            "coldtrail_uplink_failbacks",
            "Returns to the home anchor member node after a failover",
            registry=r,
        )
        self.uplink_member = Gauge(
            "coldtrail_uplink_member_index",
            "Anchor member node in use: its place in uplink.anchors (0: the home member)",
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
            "coldtrail_spool_disk_free_bytes",
            "Free bytes on the spool's filesystem (NaN: not measured yet)",
            lambda s: float("nan") if s.disk_free_bytes is None else s.disk_free_bytes,
        )
        self._gauge(
            "coldtrail_spool_min_free_bytes",
            "Free space the spool keeps on its filesystem (spool.min_free_bytes)",
            lambda s: s.min_free_bytes,
        )
        self._gauge(
            "coldtrail_spool_disk_full",
            "1 while the filesystem is below spool.min_free_bytes or the last write found it full",
            lambda s: 1.0 if s.disk_full else 0.0,
        )
        self._gauge(
            "coldtrail_spool_last_disk_error_timestamp_seconds",
            "When a spool write last failed for lack of space (0: never)",
            lambda s: (s.last_disk_error_ms or 0) / 1000.0,
        )
        if spool_stats is not None:
            r.register(_SpoolCounters(spool_stats))
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


class _SpoolCounters(Collector):
    """Counters the spool keeps itself (they count inside its transactions), read at
    scrape time like the gauges."""

    def __init__(self, read: Callable[[], SpoolStats]) -> None:
        self._read = read

    def describe(self) -> Iterator[Metric]:
        return iter(self._families(SpoolStats()))

    def collect(self) -> Iterator[Metric]:
        return iter(self._families(self._read()))

    @staticmethod
    def _families(s: SpoolStats) -> list[Metric]:
        evictions = CounterMetricFamily(
            "coldtrail_spool_evictions",
            "Records evicted unsent since start, by what made room: budget, disk-space"
            " (spool.min_free_bytes), disk-full (a write found no space)",
            labels=["reason"],
        )
        by_reason = dict(s.evicted_by_reason)
        for reason in EVICTION_REASONS:
            evictions.add_metric([reason], by_reason.get(reason, 0))
        errors = CounterMetricFamily(
            "coldtrail_spool_disk_errors",
            "Spool writes that failed for lack of space (each retried once after freeing)",
        )
        errors.add_metric([], s.disk_errors_total)
        refused = CounterMetricFamily(
            "coldtrail_spool_refused_records",
            "Records a full disk refused to store (named by signed disk-full gaps)",
        )
        refused.add_metric([], s.refused_records_total)
        return [evictions, errors, refused]


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

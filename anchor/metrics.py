"""Prometheus metrics of the anchoring service (served at ``/metrics``).

Each app gets its own registry so tests can build many apps in one process.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["AnchorMetrics"]


class AnchorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.batches_accepted = Counter(
            "coldtrail_anchor_batches_accepted_total", "Batches appended to the log", registry=r
        )
        self.batches_resent = Counter(
            "coldtrail_anchor_batches_resent_total",
            "Idempotent resends answered with the stored receipt",
            registry=r,
        )
        self.batches_refused = Counter(
            "coldtrail_anchor_batches_refused_total",
            "Ingest refusals by problem code",
            ["code"],
            registry=r,
        )
        self.records_verified = Counter(
            "coldtrail_anchor_records_verified_total",
            "Record signatures verified at ingest",
            registry=r,
        )
        self.commit_group_batches = Histogram(
            "coldtrail_anchor_commit_group_batches",
            "Batches sharing one ledger commit and checkpoint",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.commit_seconds = Histogram(
            "coldtrail_anchor_commit_seconds",
            "Time of one durable ledger commit (append, checkpoint, receipts, fsync)",
            registry=r,
        )
        self.checkpoints_signed = Counter(
            "coldtrail_anchor_checkpoints_signed_total", "Checkpoints signed", registry=r
        )
        self.log_size = Gauge(
            "coldtrail_anchor_log_size", "Leaves (batch manifests) in the log", registry=r
        )
        self.answer_cache_hits = Counter(
            "coldtrail_anchor_answer_cache_hits_total",
            "Public answers and pages served from the cache (same request, same ledger)",
            ["kind"],
            registry=r,
        )
        self.answer_cache_misses = Counter(
            "coldtrail_anchor_answer_cache_misses_total",
            "Public answers and pages computed because the cache had none",
            ["kind"],
            registry=r,
        )
        self.public_refused = Counter(
            "coldtrail_anchor_public_refused_total",
            "Public requests refused with 429 (rate-limited, busy)",
            ["code"],
            registry=r,
        )
        self.http_problems = Counter(
            "coldtrail_anchor_http_problems_total",
            "Problem responses by code",
            ["code"],
            registry=r,
        )
        self.commit_failures = Counter(
            "coldtrail_anchor_commit_failures_total",
            "Ledger commits (batches, receipts, checkpoints) that failed and rolled back, by cause",
            ["cause"],
            registry=r,
        )
        self.storage_ok = Gauge(
            "coldtrail_anchor_storage_ok",
            "1 while the ledger's last write committed, 0 after a failed commit",
            registry=r,
        )
        # A consortium member (anchor.consortium.member).
        self.stream_applied = Gauge(
            "coldtrail_anchor_stream_applied_seq",
            "The last entry of the ordering stream this member has applied",
            registry=r,
        )
        self.stream_refused = Counter(
            "coldtrail_anchor_stream_entries_refused_total",
            "Stream entries the deterministic apply step refused, by code",
            ["code"],
            registry=r,
        )
        self.final_size = Gauge(
            "coldtrail_anchor_final_size",
            "Tree size of the latest checkpoint the policy's quorum has cosigned",
            registry=r,
        )
        self.cosign_requests = Counter(
            "coldtrail_anchor_cosign_requests_total",
            "add-checkpoint requests to members, by member and outcome",
            ["member", "outcome"],
            registry=r,
        )
        self.split_views = Counter(
            "coldtrail_anchor_split_views_total",
            "Two signed checkpoints of one log and size with different roots, seen here",
            registry=r,
        )
        self.cosigning_refused = Gauge(
            "coldtrail_anchor_cosigning_refused",
            "1 while this member refuses to cosign because its own store failed a check",
            registry=r,
        )

    def ledger_version(self) -> tuple[int, int]:
        """(log size, checkpoints signed) from memory: it moves whenever an answer might."""
        size = self.registry.get_sample_value("coldtrail_anchor_log_size") or 0.0
        signed = self.registry.get_sample_value("coldtrail_anchor_checkpoints_signed_total") or 0.0
        return int(size), int(signed)

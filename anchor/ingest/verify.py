"""Verifying a batch's records: parse, check the signature, compute the leaf.

This is the CPU-bound part of ingest (two JCS encodings, one Ed25519 verify and
one SHA-256 per record). :func:`verify_chunk` is a plain picklable function so
that large batches are split across a process pool and both cores verify; small
batches run in a thread and stay clear of process start-up and pickling costs.
Signatures are checked through :mod:`proofs.records` / :mod:`proofs.keys`, the
one place that picks the Ed25519 library (docs/adr/0302).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from anchor.errors import AnchorError
from anchor.ledger.model import NewRecord, ScanEvent
from proofs.canonical import canonical_json
from proofs.errors import FormatError, ProofsError
from proofs.keys import PublicKey
from proofs.merkle import leaf_hash
from proofs.plausibility import implausible
from proofs.records import Gap, Reading, Scan, record_from_dict, verify

__all__ = ["BatchVerifier", "VerifiedRecords", "new_record", "verify_chunk"]

# GS1 Application Identifiers the ledger indexes scans by.
_GS1_KEYS = {"01": "gtin", "10": "lot", "00": "sscc", "21": "serial"}


@dataclass(frozen=True, slots=True)
class VerifiedRecords:
    records: list[NewRecord] = field(default_factory=list)
    leaf_hashes: list[bytes] = field(default_factory=list)
    evicted_gaps: list[tuple[int, int]] = field(default_factory=list)  # (lost_from, lost_to)

    def extend(self, other: VerifiedRecords) -> None:
        self.records.extend(other.records)
        self.leaf_hashes.extend(other.leaf_hashes)
        self.evicted_gaps.extend(other.evicted_gaps)


def new_record(record: Reading | Scan | Gap, json_bytes: bytes) -> NewRecord:
    """The rows a record is indexed by, derived from its signed body alone (ingest
    writes them; verify-ledger re-derives and compares them)."""
    if isinstance(record, Reading):
        return NewRecord(
            record.gw,
            record.seq,
            record.TYPE,
            record.src,
            record.asset,
            record.t,
            json_bytes,
            q=record.q,
            val=float(record.val),
            unit=record.unit,
            clk=(record.clk.sync, record.clk.boot, record.clk.mono_us),
        )
    scan = None
    if isinstance(record, Scan):
        keys = {name: record.gs1.get(ai) for ai, name in _GS1_KEYS.items()}
        scan = ScanEvent(
            record.gw,
            record.seq,
            record.t,
            record.src,
            record.asset,
            record.rp,
            record.step,
            gtin=keys["gtin"],
            lot=keys["lot"],
            sscc=keys["sscc"],
            serial=keys["serial"],
        )
    return NewRecord(
        record.gw,
        record.seq,
        record.TYPE,
        record.src,
        record.asset,
        record.t,
        json_bytes,
        scan=scan,
    )


def verify_chunk(
    public_key_raw: bytes, gw: str, first_seq: int, offset: int, raw: Sequence[Any]
) -> VerifiedRecords:
    """Verify ``raw[i]`` as the record with seq ``first_seq + offset + i``; raise AnchorError."""
    key = PublicKey(public_key_raw)
    out = VerifiedRecords()
    for i, item in enumerate(raw):
        expected_seq = first_seq + offset + i
        try:
            record = record_from_dict(item)
        except FormatError as e:
            raise AnchorError("malformed", f"record {offset + i}: {e.message}") from e
        if record.gw != gw:
            raise AnchorError(
                "malformed", f"record seq {record.seq} names gateway {record.gw}, not {gw}"
            )
        if record.seq != expected_seq:
            raise AnchorError(
                "root-mismatch",
                f"record {offset + i} has seq {record.seq}; the manifest says {expected_seq}",
            )
        # Verify before serialising: an unsigned record (``sig`` missing, null or "")
        # parses, but cannot be written out, and must be refused as unsigned.
        try:
            verify(record, key)
        except ProofsError as e:
            why = "is not signed" if e.code == "unsigned" else "signature does not verify"
            raise AnchorError("bad-signature", f"record seq {record.seq} of {gw}: {why}") from e
        if isinstance(record, Reading):
            # Signed is not true: a value no sensor of that quantity can report is
            # refused (the gateway turns such a value into a signed gap instead).
            bad = implausible(record.q, record.val, record.unit)
            if bad is not None:
                raise AnchorError(
                    "implausible-value",
                    f"record seq {record.seq} of {gw}: {record.q} = {record.val!r}"
                    f" {record.unit} is not physically plausible: {bad}",
                )
        signed = record.to_dict()
        if len(signed) != len(item):
            # Unsigned extra fields would be dropped silently by the parser; refuse them.
            extra = sorted(k for k in set(item) - set(signed) if item[k] is not None)
            if extra:
                raise AnchorError(
                    "malformed", f"record seq {record.seq}: unknown fields {', '.join(extra)}"
                )
        json_bytes = canonical_json(signed)
        out.records.append(new_record(record, json_bytes))
        out.leaf_hashes.append(leaf_hash(json_bytes))
        if (
            isinstance(record, Gap)
            and record.reason == "evicted"
            and record.lost_from is not None
            and record.lost_to is not None
        ):
            out.evicted_gaps.append((record.lost_from, record.lost_to))
    return out


class BatchVerifier:
    """Runs :func:`verify_chunk` inline-in-a-thread or across worker processes."""

    def __init__(self, workers: int, parallel_min_records: int) -> None:
        self.workers = workers
        self.parallel_min_records = parallel_min_records
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _ensure_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            # spawn: the service has threads (SQLite writer), which fork would copy mid-lock.
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
            )
        return self._pool

    async def verify(
        self, public_key_raw: bytes, gw: str, first_seq: int, raw: Sequence[Any]
    ) -> VerifiedRecords:
        loop = asyncio.get_running_loop()
        if len(raw) < self.parallel_min_records or self.workers < 2:
            return await asyncio.to_thread(verify_chunk, public_key_raw, gw, first_seq, 0, raw)
        pool = self._ensure_pool()
        step = -(-len(raw) // (self.workers * 2))
        futures = [
            loop.run_in_executor(
                pool, verify_chunk, public_key_raw, gw, first_seq, start, raw[start : start + step]
            )
            for start in range(0, len(raw), step)
        ]
        try:
            parts = await asyncio.gather(*futures)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        out = VerifiedRecords()
        for part in parts:
            out.extend(part)
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

"""``POST /v1/batches``: every check of docs/ingest-contract.md, atomic and idempotent.

The expensive, stateless checks (parsing, signatures, the batch root) run
before anything is locked. The chain, seq and idempotency checks run twice:
once early to refuse cheaply, and again inside the write transaction, where
they are authoritative. Batches that arrive while a commit is in flight wait
for the next one and share it: one transaction, one fsync, one checkpoint and
a receipt each (group commit). A refused batch leaves nothing behind because it
is either refused before the transaction or rolled back to its savepoint.

The commit step (:meth:`Ingestor._commit_group`) is deterministic in the order
of the batches it is handed; that is the seam where NATS JetStream ordering
replaces the local queue when the log is replicated (docs/adr/0302).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from proofs.canonical import canonical_json
from proofs.errors import FormatError, ProofsError
from proofs.keys import PublicKey
from proofs.merkle import MerkleTree
from proofs.receipt import Receipt, sign_receipt
from proofs.records import ZERO_HASH, Manifest, manifest_from_dict, verify

from . import log
from .auth import Principal, require_role
from .batch_verify import BatchVerifier
from .checkpoints import CheckpointSigner, sign_checkpoint
from .errors import AnchorError
from .metrics import AnchorMetrics
from .store import (
    Checkpoint,
    GatewayHead,
    LedgerStore,
    LedgerTx,
    NewBatch,
    NewRecord,
    StoredBatch,
)

__all__ = ["IngestOutcome", "IngestRequest", "Ingestor", "check_chain", "parse_ingest_body"]

_log = logging.getLogger("coldtrail.anchor.ingest")


@dataclass(frozen=True, slots=True)
class IngestRequest:
    manifest: Manifest
    records: list[Any]
    evicted: bool


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    created: bool  # False: an idempotent resend answered with the stored receipt
    receipt_json: bytes
    leaf_index: int


_MANIFEST_FIELDS = {f.name for f in dataclasses.fields(Manifest)} | {"v", "type"}


def parse_ingest_body(body: bytes, max_records: int) -> IngestRequest:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise AnchorError("malformed", f"the body is not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise AnchorError("malformed", "the body must be a JSON object")
    unknown = set(doc) - {"manifest", "records", "evicted"}
    if unknown:
        raise AnchorError("malformed", f"unknown fields: {', '.join(sorted(unknown))}")
    records = doc.get("records")
    if not isinstance(records, list):
        raise AnchorError("malformed", "'records' must be a list")
    if len(records) > max_records:
        raise AnchorError("too-large", f"{len(records)} records; at most {max_records} per batch")
    evicted = doc.get("evicted", False)
    if not isinstance(evicted, bool):
        raise AnchorError("malformed", "'evicted' must be true or false")
    raw_manifest = doc.get("manifest")
    if isinstance(raw_manifest, dict):
        # Unsigned extra fields would be dropped silently by the parser; refuse them.
        extra = set(raw_manifest) - _MANIFEST_FIELDS
        if extra:
            raise AnchorError("malformed", f"unknown manifest fields: {', '.join(sorted(extra))}")
    try:
        manifest = manifest_from_dict(raw_manifest)
    except FormatError as e:
        raise AnchorError("malformed", e.message) from e
    except (TypeError, ValueError) as e:
        raise AnchorError("malformed", f"manifest is malformed: {e}") from e
    if not manifest.sig:
        raise AnchorError("bad-signature", "the manifest is not signed")
    if manifest.count > max_records:
        raise AnchorError("too-large", f"manifest covers {manifest.count} records")
    if evicted and records:
        raise AnchorError("malformed", "an evicted batch carries no records")
    return IngestRequest(manifest, records, evicted)


def check_chain(
    manifest: Manifest,
    head: GatewayHead | None,
    evicted_gaps: Sequence[tuple[int, int]] | None,
) -> None:
    """Contract checks 4 and 5: the manifest chains to the head and its seqs follow on.

    ``evicted_gaps`` are the ``(lost_from, lost_to)`` of the batch's ``evicted`` gap
    records; ``None`` means they are not known yet and a seq hole is not judged.
    """
    expected_batch = 1 if head is None else head.batch_seq + 1
    expected_prev = ZERO_HASH if head is None else head.manifest_hash
    expected_first = 1 if head is None else head.last_seq + 1
    if manifest.batch_seq < expected_batch:
        raise AnchorError(
            "batch-replay",
            f"batch_seq {manifest.batch_seq} of {manifest.gw} is already used by another manifest",
        )
    if manifest.batch_seq > expected_batch:
        raise AnchorError(
            "broken-chain",
            f"batch_seq {manifest.batch_seq} of {manifest.gw}; the next must be {expected_batch}",
        )
    if manifest.prev != expected_prev:
        raise AnchorError(
            "broken-chain",
            f"manifest {manifest.batch_seq} of {manifest.gw}: 'prev' is not the hash of"
            " the previous accepted manifest",
        )
    if manifest.first_seq < expected_first:
        raise AnchorError(
            "seq-overlap",
            f"first_seq {manifest.first_seq} of {manifest.gw}: seqs up to"
            f" {expected_first - 1} are already logged",
        )
    if manifest.first_seq > expected_first:
        hole = (expected_first, manifest.first_seq - 1)
        if evicted_gaps is not None and hole not in evicted_gaps:
            raise AnchorError(
                "seq-gap",
                f"seqs {hole[0]}..{hole[1]} of {manifest.gw} are missing and no 'evicted' gap"
                " record in this batch covers them",
            )


@dataclass(slots=True)
class _Pending:
    org_id: str
    manifest: Manifest
    manifest_hash: str
    batch: NewBatch | None  # None: an accepted batch that only needs its receipt
    evicted_gaps: list[tuple[int, int]]
    future: asyncio.Future[IngestOutcome]


class Ingestor:
    """Verifies batches and commits them in groups from one writer thread."""

    def __init__(
        self,
        store: LedgerStore,
        signer: CheckpointSigner,
        verifier: BatchVerifier,
        metrics: AnchorMetrics,
        *,
        max_records: int,
        group_max_batches: int,
    ) -> None:
        self.store = store
        self.signer = signer
        self.verifier = verifier
        self.metrics = metrics
        self.max_records = max_records
        self.group_max_batches = group_max_batches
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # One thread owns every ledger write, so commits never interleave.
        self._writer = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="ledger-writer"
        )

    # --- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ledger-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(AnchorError("unavailable", "the service is stopping"))
        self._writer.shutdown(wait=True)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def run_in_writer(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    # --- the request path -------------------------------------------------------

    async def ingest(self, principal: Principal, body: bytes) -> IngestOutcome:
        require_role(principal, "gateway")
        # Parsing up to 8 MiB of JSON takes long enough to stall other requests.
        request = await asyncio.to_thread(parse_ingest_body, body, self.max_records)
        manifest = request.manifest
        manifest_hash = manifest.hash_hex()
        gateway = await asyncio.to_thread(self.store.gateway, manifest.gw)
        if gateway is None:
            raise AnchorError("unknown-gateway", f"gateway {manifest.gw} is not enrolled")
        if gateway.org_id != principal.org_id:
            raise AnchorError(
                "forbidden", f"gateway {manifest.gw} does not belong to this token's organisation"
            )
        if manifest.key != gateway.key_id:
            raise AnchorError(
                "key-mismatch",
                f"manifest names key {manifest.key}; {manifest.gw} is enrolled with"
                f" {gateway.key_id}",
            )
        existing = await asyncio.to_thread(self.store.batch_by_seq, manifest.gw, manifest.batch_seq)
        if existing is not None:
            return await self._resend(existing, manifest, manifest_hash, principal)
        now = _now_ms()
        if gateway.revoked_by(now):
            raise AnchorError("revoked", f"gateway {manifest.gw} was revoked")
        public_key = PublicKey.from_base64(gateway.public_key)
        try:
            verify(manifest, public_key)
        except ProofsError as e:
            raise AnchorError(
                "bad-signature",
                f"manifest {manifest.batch_seq} of {manifest.gw}: signature does not verify",
            ) from e
        head = await asyncio.to_thread(self.store.gateway_head, manifest.gw)
        # Refuse out-of-order batches before paying for their records; the seq
        # hole check needs the records' gap statements, so it waits.
        check_chain(manifest, head, None)
        records: list[NewRecord] = []
        gaps: list[tuple[int, int]] = []
        if not request.evicted:
            if len(request.records) != manifest.count:
                raise AnchorError(
                    "root-mismatch",
                    f"{len(request.records)} records sent; the manifest counts {manifest.count}",
                )
            verified = await self.verifier.verify(
                public_key.raw, manifest.gw, manifest.first_seq, request.records
            )
            self.metrics.records_verified.inc(len(verified.records))
            root = await asyncio.to_thread(_merkle_root, verified.leaf_hashes)
            if root.hex() != manifest.root:
                raise AnchorError(
                    "root-mismatch",
                    f"the records do not reproduce the root of manifest {manifest.batch_seq}",
                )
            records, gaps = verified.records, verified.evicted_gaps
        check_chain(manifest, head, gaps)
        manifest_json = manifest.to_json()
        batch = NewBatch(
            gw=manifest.gw,
            batch_seq=manifest.batch_seq,
            manifest_hash=manifest_hash,
            manifest_json=manifest_json,
            leaf_hash=manifest.leaf_hash(),
            first_seq=manifest.first_seq,
            last_seq=manifest.last_seq,
            count=manifest.count,
            root=manifest.root,
            opened=manifest.opened,
            closed=manifest.closed,
            records_evicted=request.evicted,
            accepted_at=now,
            records=records,
        )
        return await self._submit(
            _Pending(principal.org_id, manifest, manifest_hash, batch, gaps, _fut())
        )

    async def _resend(
        self, existing: StoredBatch, manifest: Manifest, manifest_hash: str, principal: Principal
    ) -> IngestOutcome:
        if existing.manifest_hash != manifest_hash:
            raise AnchorError(
                "batch-replay",
                f"batch_seq {manifest.batch_seq} of {manifest.gw} is already used by another"
                " manifest",
            )
        self.metrics.batches_resent.inc()
        if existing.receipt_json is not None:
            return IngestOutcome(False, existing.receipt_json, existing.leaf_index)
        # Committed before a crash took the receipt with it: sign it now.
        return await self._submit(
            _Pending(principal.org_id, manifest, manifest_hash, None, [], _fut())
        )

    async def _submit(self, pending: _Pending) -> IngestOutcome:
        if self._task is None or self._task.done():
            raise AnchorError("unavailable", "the ledger writer is not running")
        await self._queue.put(pending)
        return await asyncio.shield(pending.future)

    # --- the writer -------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            group = [await self._queue.get()]
            while len(group) < self.group_max_batches and not self._queue.empty():
                group.append(self._queue.get_nowait())
            started = time.perf_counter()
            try:
                results = await self.run_in_writer(self._commit_group, group)
            except Exception as e:  # the whole transaction rolled back: nothing was acknowledged
                _log.exception("ledger commit failed")
                for p in group:
                    if not p.future.done():
                        p.future.set_exception(
                            AnchorError("internal", f"the ledger commit failed: {type(e).__name__}")
                        )
                continue
            self.metrics.commit_seconds.observe(time.perf_counter() - started)
            self.metrics.commit_group_batches.observe(len(group))
            for p, result in zip(group, results, strict=True):
                if p.future.done():
                    continue
                if isinstance(result, BaseException):
                    p.future.set_exception(result)
                else:
                    if result.created:
                        self.metrics.batches_accepted.inc()
                    p.future.set_result(result)

    def _commit_group(self, group: list[_Pending]) -> list[IngestOutcome | AnchorError]:
        results: list[IngestOutcome | AnchorError | tuple[int, bool]] = []
        with self.store.transaction() as tx:
            for p in group:
                try:
                    with tx.savepoint():
                        results.append(self._apply(tx, p))
                except AnchorError as e:
                    results.append(e)
            checkpoint: Checkpoint | None = None
            out: list[IngestOutcome | AnchorError] = []
            for r in results:
                if isinstance(r, AnchorError | IngestOutcome):
                    out.append(r)
                    continue
                if checkpoint is None:
                    checkpoint = sign_checkpoint(tx, self.signer)
                    self.metrics.checkpoints_signed.inc()
                leaf_index, created = r
                out.append(self._receipt(tx, leaf_index, created, checkpoint))
            size = tx.log_size()
        self.metrics.log_size.set(size)
        return out

    def _apply(self, tx: LedgerTx, p: _Pending) -> IngestOutcome | tuple[int, bool]:
        """Append ``p`` (or find it) inside the transaction.

        Returns the stored outcome of an already receipted batch, or the leaf index
        that still needs a receipt and whether this request created it.
        """
        existing = tx.batch_by_seq(p.manifest.gw, p.manifest.batch_seq)
        if existing is not None:
            if existing.manifest_hash != p.manifest_hash:
                raise AnchorError(
                    "batch-replay",
                    f"batch_seq {p.manifest.batch_seq} of {p.manifest.gw} is already used",
                )
            if existing.receipt_json is not None:
                return IngestOutcome(False, existing.receipt_json, existing.leaf_index)
            # Appended earlier in this same group by an identical concurrent request.
            return existing.leaf_index, False
        if p.batch is None:
            raise AnchorError("internal", "a resent batch vanished from the ledger")
        gateway = tx.gateway(p.manifest.gw)
        if gateway is None or gateway.org_id != p.org_id or gateway.key_id != p.manifest.key:
            raise AnchorError("unknown-gateway", f"gateway {p.manifest.gw} changed meanwhile")
        if gateway.revoked_by(p.batch.accepted_at):
            raise AnchorError("revoked", f"gateway {p.manifest.gw} was revoked")
        check_chain(p.manifest, tx.gateway_head(p.manifest.gw), p.evicted_gaps)
        return tx.append_batch(p.batch), True

    def _receipt(
        self, tx: LedgerTx, leaf_index: int, created: bool, checkpoint: Checkpoint
    ) -> IngestOutcome:
        batch = tx.batch(leaf_index)
        assert batch is not None
        receipt = Receipt(
            gw=batch.gw,
            batch_seq=batch.batch_seq,
            manifest_hash=batch.manifest_hash,
            leaf_index=leaf_index,
            log_proof=tuple(log.inclusion_proof(leaf_index, checkpoint.size, tx.get_node)),
            checkpoint=checkpoint.note,
            accepted_at=batch.accepted_at,
        )
        signed = sign_receipt(receipt, self.signer.log_key)
        stored = tx.set_receipt(leaf_index, canonical_json(signed.to_dict()))
        return IngestOutcome(created, stored, leaf_index)

    async def checkpoint_now(self) -> Checkpoint:
        """Sign a checkpoint of the current log (or return the current one)."""

        def work() -> Checkpoint:
            with self.store.transaction() as tx:
                before = tx.latest_checkpoint()
                cp = sign_checkpoint(tx, self.signer)
            if before is None or cp.height != before.height:
                self.metrics.checkpoints_signed.inc()
            return cp

        result: Checkpoint = await self.run_in_writer(work)
        return result


def _merkle_root(leaf_hashes: list[bytes]) -> bytes:
    return MerkleTree(leaf_hashes).root()


def _fut() -> asyncio.Future[IngestOutcome]:
    return asyncio.get_running_loop().create_future()


def _now_ms() -> int:
    return int(time.time() * 1000)

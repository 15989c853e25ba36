"""``POST /v1/batches``: every check of docs/ingest-contract.md, atomic and idempotent.

The expensive, stateless checks (parsing, signatures, the batch root) run
before anything is locked. The chain, seq and idempotency checks run twice:
once early to refuse cheaply, and again inside the write transaction, where
they are authoritative. A gateway's batches may arrive out of ``batch_seq``
order (live data first, docs/adr/0310): each chain link and seq boundary is
checked as soon as both of its batches are stored, against the nearest stored
neighbours below and above. Batches that arrive while a commit is in flight wait
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
import logging
import time
from dataclasses import dataclass
from typing import Any

from anchor.auth import Principal, require_role
from anchor.consortium.checkpoints import CheckpointSigner, gather_cosignatures, sign_checkpoint
from anchor.errors import AnchorError
from anchor.ingest.parse import parse_ingest_body
from anchor.ingest.verify import BatchVerifier
from anchor.ledger import tree as log
from anchor.ledger.chain import check_chain, check_scope, load_neighbours
from anchor.ledger.model import Checkpoint, NewBatch, NewRecord, StoredBatch
from anchor.ledger.ports import LedgerStore, LedgerTx
from anchor.metrics import AnchorMetrics
from anchor.storage.health import StorageHealth
from proofs.canonical import canonical_json
from proofs.errors import ProofsError
from proofs.keys import PublicKey
from proofs.merkle import MerkleTree
from proofs.receipt import Receipt, sign_receipt
from proofs.records import Manifest, verify

__all__ = [
    "IngestOutcome",
    "Ingestor",
]


_log = logging.getLogger("coldtrail.anchor.ingest")


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    created: bool  # False: an idempotent resend answered with the stored receipt
    receipt_json: bytes
    leaf_index: int


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
        max_batch_lookahead: int = 1_000_000,
    ) -> None:
        self.store = store
        self.signer = signer
        self.verifier = verifier
        self.metrics = metrics
        self.max_records = max_records
        self.group_max_batches = group_max_batches
        self.max_batch_lookahead = max_batch_lookahead
        # Whether the last write committed; /healthz reports it (docs/anchor.md).
        self.storage = StorageHealth(metrics)
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
                pending.future.set_exception(
                    AnchorError("unavailable", "the service is stopping", retry_after_s=10)
                )
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
        lower, higher, higher_gaps = await asyncio.to_thread(load_neighbours, self.store, manifest)
        # Refuse broken links before paying for the records; a seq hole before this
        # batch needs its records' gap statements, so that check waits for them.
        check_chain(
            manifest,
            manifest_hash,
            lower,
            higher,
            None,
            higher_gaps,
            max_lookahead=self.max_batch_lookahead,
        )
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
            check_scope(gateway, records)
        check_chain(
            manifest,
            manifest_hash,
            lower,
            higher,
            gaps,
            higher_gaps,
            max_lookahead=self.max_batch_lookahead,
        )
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
            raise AnchorError("unavailable", "the ledger writer is not running", retry_after_s=10)
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
                results, wrote = await self.run_in_writer(self._commit_group, group)
            except Exception as e:  # the whole transaction rolled back: nothing was acknowledged
                _log.exception("ledger commit of %d batch(es) failed", len(group))
                fault = self.storage.failed(e, "the batch")
                for p in group:
                    if not p.future.done():
                        # A coded 503 with Retry-After: the client sends the same bytes again.
                        p.future.set_exception(fault.error())
                continue
            if wrote:
                self.storage.committed()
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

    def _commit_group(
        self, group: list[_Pending]
    ) -> tuple[list[IngestOutcome | AnchorError], bool]:
        """Commit ``group``; the outcome of each, and whether it wrote.

        Three steps, none holding the next: the appends commit in one transaction (one
        fsync for the group); a short second one signs the checkpoint with the log key
        and stores the receipts; then the members are asked to cosign, outside any
        write transaction (:func:`gather_cosignatures`). Nothing is acknowledged
        before the second commit; a batch whose receipt a crash took is receipted
        when it is sent again.
        """
        results: list[IngestOutcome | AnchorError | tuple[int, bool]] = []
        with self.store.transaction() as tx:
            for p in group:
                try:
                    with tx.savepoint():
                        results.append(self._apply(tx, p))
                except AnchorError as e:
                    results.append(e)
        out: list[IngestOutcome | AnchorError] = [
            r if isinstance(r, AnchorError | IngestOutcome) else _NOT_YET for r in results
        ]
        pending = [(i, r) for i, r in enumerate(results) if isinstance(r, tuple)]
        if not pending:
            return out, False
        with self.store.transaction() as tx:
            checkpoint = sign_checkpoint(tx, self.signer)
            for i, (leaf_index, created) in pending:
                out[i] = self._receipt(tx, leaf_index, created, checkpoint)
            size = tx.log_size()
        self.metrics.checkpoints_signed.inc()
        self.metrics.log_size.set(size)
        self._cosign()
        return out, True

    def _cosign(self) -> None:
        """Gather the members' cosignatures of the latest checkpoint (after its commit).

        A failure here never fails the batches: they are committed and receipted; the
        checkpoint stays unfinalised until the next round asks again.
        """
        try:
            gather_cosignatures(self.store, self.signer)
        except Exception:
            _log.exception("gathering cosignatures failed; the next checkpoint asks again")

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
        # Authoritative: the neighbours as this transaction sees them, including
        # batches appended earlier in the same group.
        lower, higher, higher_gaps = load_neighbours(tx, p.manifest)
        check_chain(
            p.manifest,
            p.manifest_hash,
            lower,
            higher,
            p.evicted_gaps,
            higher_gaps,
            max_lookahead=self.max_batch_lookahead,
        )
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
            try:
                with self.store.transaction() as tx:
                    before = tx.latest_checkpoint()
                    cp = sign_checkpoint(tx, self.signer)
            except Exception as e:
                _log.exception("checkpoint commit failed")
                raise self.storage.failed(e, "the checkpoint").error() from e
            if before is None or cp.height != before.height:
                self.metrics.checkpoints_signed.inc()
                self.storage.committed()
            # Also asks a member again that was down or refused last time.
            self._cosign()
            latest = self.store.latest_checkpoint()
            return latest if latest is not None and latest.height == cp.height else cp

        result: Checkpoint = await self.run_in_writer(work)
        return result


# The outcome of a batch appended in the first transaction, until its receipt is made.
_NOT_YET = AnchorError("commit-failed", "the batch was appended but not yet receipted")


def _merkle_root(leaf_hashes: list[bytes]) -> bytes:
    return MerkleTree(leaf_hashes).root()


def _fut() -> asyncio.Future[IngestOutcome]:
    return asyncio.get_running_loop().create_future()


def _now_ms() -> int:
    return int(time.time() * 1000)

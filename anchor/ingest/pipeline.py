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

The request path ends in ``LocalSequencer.submit`` (:mod:`anchor.ordering.local`):
ordering and the deterministic apply step (:mod:`anchor.ledger.apply`) are behind it,
the seam where a replicated stream replaces the local queue (docs/adr/0302).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

from anchor.auth import Principal, require_role
from anchor.consortium.checkpoints import CheckpointSigner
from anchor.errors import AnchorError
from anchor.ingest.parse import parse_ingest_body
from anchor.ingest.verify import BatchVerifier, VerifiedRecords
from anchor.ledger.apply import IngestOutcome, LedgerApplier, Submission
from anchor.ledger.chain import check_chain, check_scope, load_neighbours
from anchor.ledger.model import Checkpoint, NewBatch, NewRecord, StoredBatch
from anchor.ledger.ports import LedgerStore
from anchor.metrics import AnchorMetrics
from anchor.ordering import Sequencer
from anchor.ordering.local import LocalSequencer
from anchor.storage.health import StorageHealth
from proofs.errors import ProofsError
from proofs.keys import PublicKey
from proofs.merkle import MerkleTree
from proofs.records import Manifest, verify

__all__ = [
    "IngestOutcome",
    "Ingestor",
]


_log = logging.getLogger("coldtrail.anchor.ingest")


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
        # A consortium member applies what it accepted from the stream: its records'
        # signatures, verified once here, need not be verified again (VerifiedCache).
        self.verified = VerifiedCache()
        self.remember_verified = False
        # Whether the last write committed; /healthz reports it (docs/anchor.md).
        self.storage = StorageHealth(metrics)
        applier = LedgerApplier(
            store, signer, metrics, self.storage, max_batch_lookahead=max_batch_lookahead
        )
        self.sequencer: Sequencer = LocalSequencer(
            applier, metrics, self.storage, group_max_batches=group_max_batches
        )

    # --- lifecycle: the sequencer's -----------------------------------------------

    def start(self) -> None:
        self.sequencer.start()

    async def stop(self) -> None:
        await self.sequencer.stop()

    @property
    def running(self) -> bool:
        return self.sequencer.running

    async def run_in_writer(self, fn: Any, *args: Any) -> Any:
        return await self.sequencer.run_in_writer(fn, *args)

    async def checkpoint_now(self) -> Checkpoint:
        return await self.sequencer.checkpoint_now()

    # --- the request path -------------------------------------------------------

    async def ingest(self, principal: Principal, body: bytes) -> IngestOutcome:
        require_role(principal, "gateway")
        checked = await self.check(
            principal.org_id, body, _now_ms(), self.max_records, remember=self.remember_verified
        )
        if isinstance(checked, Submission):
            return await self.sequencer.submit(checked)
        existing, manifest, manifest_hash = checked
        return await self._resend(existing, manifest, manifest_hash, principal)

    async def check(
        self,
        org_id: str,
        body: bytes,
        now: int,
        max_records: int,
        *,
        early_chain: bool = True,
        remember: bool = False,
    ) -> Submission | tuple[StoredBatch, Manifest, str]:
        """Every check of a batch that needs no write: the verified submission, or the
        stored batch of the same ``batch_seq`` (a resend, answered by :meth:`_resend`).

        The request path runs it before a batch is ordered; a consortium member runs it
        again on every batch the stream delivers (anchor.consortium.member), so each
        member verifies every entry itself. There ``early_chain`` is off: the chain checks
        against the store as it stands mid-stream would depend on how the stream was
        fetched; the authoritative ones in the apply step see every earlier entry.
        ``remember`` keeps the verified records (:class:`VerifiedCache`) for the member's
        own apply step, which then checks everything but the record signatures again.
        Raises :class:`AnchorError` with the code.
        """
        # Parsing up to 8 MiB of JSON takes long enough to stall other requests.
        request = await asyncio.to_thread(parse_ingest_body, body, max_records)
        manifest = request.manifest
        manifest_hash = manifest.hash_hex()
        gateway = await asyncio.to_thread(self.store.gateway, manifest.gw)
        if gateway is None:
            raise AnchorError("unknown-gateway", f"gateway {manifest.gw} is not enrolled")
        if gateway.org_id != org_id:
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
            return existing, manifest, manifest_hash
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
        if early_chain:
            lower, higher, higher_gaps = await asyncio.to_thread(
                load_neighbours, self.store, manifest
            )
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
        verified_records: VerifiedRecords | None = None
        if not request.evicted:
            if len(request.records) != manifest.count:
                raise AnchorError(
                    "root-mismatch",
                    f"{len(request.records)} records sent; the manifest counts {manifest.count}",
                )
            verified = self.verified.take(manifest_hash, public_key.raw)
            if verified is None:
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
            verified_records = verified
            check_scope(gateway, records)
        if early_chain:
            check_chain(
                manifest,
                manifest_hash,
                lower,
                higher,
                gaps,
                higher_gaps,
                max_lookahead=self.max_batch_lookahead,
            )
        batch = NewBatch(
            gw=manifest.gw,
            batch_seq=manifest.batch_seq,
            manifest_hash=manifest_hash,
            manifest_json=manifest.to_json(),
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
        if remember:
            self.verified.put(manifest_hash, public_key.raw, verified_records)
        return Submission(org_id, manifest, manifest_hash, batch, gaps, body)

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
        return await self.sequencer.submit(
            Submission(principal.org_id, manifest, manifest_hash, None, [], b"")
        )


class VerifiedCache:
    """Records verified at ingest, by manifest hash and gateway key, until the member's
    apply step takes them (bounded; an entry it never takes is evicted oldest first).

    What it saves is exactly the stateless part: whether the records carry the key's
    signatures and reproduce the manifest's root, a pure function of the bytes and the
    key. Every check that depends on the ledger runs again at apply."""

    def __init__(self, max_records: int = 50_000) -> None:
        self.max_records = max_records
        self._held = 0
        self._entries: collections.OrderedDict[str, tuple[bytes, VerifiedRecords]] = (
            collections.OrderedDict()
        )

    def put(self, manifest_hash: str, key: bytes, verified: VerifiedRecords | None) -> None:
        if verified is None or len(verified.records) > self.max_records:
            return
        self.take(manifest_hash, key)
        self._entries[manifest_hash] = (key, verified)
        self._held += len(verified.records)
        while self._held > self.max_records:
            _, (_, old) = self._entries.popitem(last=False)
            self._held -= len(old.records)

    def take(self, manifest_hash: str, key: bytes) -> VerifiedRecords | None:
        held = self._entries.pop(manifest_hash, None)
        if held is None:
            return None
        self._held -= len(held[1].records)
        return held[1] if held[0] == key else None


def _merkle_root(leaf_hashes: list[bytes]) -> bytes:
    return MerkleTree(leaf_hashes).root()


def _now_ms() -> int:
    return int(time.time() * 1000)

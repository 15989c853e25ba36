"""The ledger's apply step: deterministic in the order of the batches it is handed.

Whatever puts batches in order (the local queue of :mod:`anchor.ordering.local` today, a
replicated stream when members share the log) hands each group to
:meth:`LedgerApplier.apply_group`, which re-checks every batch against the ledger as the
transaction sees it (the authoritative chain and scope checks), appends the good ones,
then signs one checkpoint and the receipts, then asks the members to cosign. Given the
same ledger and the same groups in the same order, every node applies the same leaves.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from anchor.consortium.checkpoints import CheckpointSigner, gather_cosignatures, sign_checkpoint
from anchor.errors import AnchorError
from anchor.ledger import tree as log
from anchor.ledger.chain import check_chain, load_neighbours
from anchor.ledger.derived import update_rollups
from anchor.ledger.model import Checkpoint, NewBatch
from anchor.ledger.ports import LedgerStore, LedgerTx
from anchor.metrics import AnchorMetrics
from anchor.storage.health import StorageHealth
from proofs.canonical import canonical_json
from proofs.receipt import Receipt, sign_receipt
from proofs.records import Manifest

__all__ = ["IngestOutcome", "LedgerApplier", "Submission"]

_log = logging.getLogger("coldtrail.anchor.ingest")


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    created: bool  # False: an idempotent resend answered with the stored receipt
    receipt_json: bytes
    leaf_index: int


@dataclass(frozen=True, slots=True)
class Submission:
    """A verified batch (or a resend that only needs its receipt) waiting to be applied."""

    org_id: str
    manifest: Manifest
    manifest_hash: str
    batch: NewBatch | None  # None: an accepted batch that only needs its receipt
    evicted_gaps: list[tuple[int, int]]
    body: bytes = b""  # the request as the gateway sent it (what a consortium orders)


# The outcome of a batch appended in the first transaction, until its receipt is made.
_NOT_YET = AnchorError("commit-failed", "the batch was appended but not yet receipted")


class LedgerApplier:
    """Applies groups of submissions to the ledger (call it from one writer thread)."""

    def __init__(
        self,
        store: LedgerStore,
        signer: CheckpointSigner,
        metrics: AnchorMetrics,
        storage: StorageHealth,
        *,
        max_batch_lookahead: int,
    ) -> None:
        self.store = store
        self.signer = signer
        self.metrics = metrics
        self.storage = storage
        self.max_batch_lookahead = max_batch_lookahead

    def apply_group(
        self, group: Sequence[Submission]
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
                        results.append(self.apply_one(tx, p))
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
                out[i] = self.receipt_for(tx, leaf_index, created, checkpoint)
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

    def apply_one(self, tx: LedgerTx, p: Submission) -> IngestOutcome | tuple[int, bool]:
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
        leaf_index = tx.append_batch(p.batch)
        update_rollups(tx, gateway.asset, p.batch.records)
        return leaf_index, True

    def receipt_for(
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

    def checkpoint(self) -> Checkpoint:
        """Sign a checkpoint of the current log (or return the current one), then ask
        the members; a member that was down or refused last time is asked again."""
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
        self._cosign()
        latest = self.store.latest_checkpoint()
        return latest if latest is not None and latest.height == cp.height else cp

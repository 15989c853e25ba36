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
from .storage_health import StorageHealth
from .store import (
    ChainLink,
    Checkpoint,
    Gateway,
    LedgerStore,
    LedgerTx,
    NewBatch,
    NewRecord,
    StoredBatch,
)

__all__ = [
    "IngestOutcome",
    "IngestRequest",
    "Ingestor",
    "before_first",
    "check_apart",
    "check_chain",
    "check_link",
    "check_scope",
    "link_of",
    "load_neighbours",
    "parse_ingest_body",
]

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


_GENESIS_PREV = ChainLink("", 0, ZERO_HASH, ZERO_HASH, 0, 0, False, -1)

ChainReads = LedgerStore | LedgerTx


def before_first(gw: str) -> ChainLink:
    """The place before a gateway's first batch: batch 0, hash ZERO_HASH, last_seq 0."""
    return dataclasses.replace(_GENESIS_PREV, gw=gw)


def link_of(manifest: Manifest, manifest_hash: str, leaf_index: int = -1) -> ChainLink:
    """The chain facts of a manifest (received or stored)."""
    return ChainLink(
        manifest.gw,
        manifest.batch_seq,
        manifest_hash,
        manifest.prev,
        manifest.first_seq,
        manifest.last_seq,
        False,
        leaf_index,
    )


def check_link(
    lower: ChainLink,
    upper: ChainLink,
    upper_gaps: Sequence[tuple[int, int]] | None,
    *,
    incoming: str | None = None,
) -> None:
    """The link between consecutive batches (``upper.batch_seq == lower.batch_seq + 1``).

    ``lower`` with batch_seq 0 stands for "before the first batch" (prev ZERO_HASH,
    last_seq 0). ``upper_gaps`` are the ``(lost_from, lost_to)`` of ``upper``'s
    ``evicted`` gap records; ``None`` means not known yet: a seq hole is not judged.
    ``incoming`` ("lower", "upper" or None) only words the refusal.
    """
    gw = upper.gw
    n = upper.batch_seq
    if upper.prev != lower.manifest_hash:
        if lower.batch_seq == 0:
            what = f"manifest 1 of {gw}: 'prev' of the first batch must be the zero hash"
        elif incoming == "lower":
            what = (
                f"manifest {lower.batch_seq} of {gw}: its stored successor, batch {n}, names"
                " another manifest as 'prev'"
            )
        elif incoming == "upper":
            what = (
                f"manifest {n} of {gw}: 'prev' is not the hash of its stored predecessor,"
                f" batch {lower.batch_seq}"
            )
        else:
            what = f"batch {n} of {gw}: 'prev' is not the hash of batch {lower.batch_seq}"
        raise AnchorError("broken-chain", what)
    expected_first = lower.last_seq + 1
    if upper.first_seq < expected_first:
        raise AnchorError(
            "seq-overlap",
            f"first_seq {upper.first_seq} of {gw} batch {n}: batch {lower.batch_seq} already"
            f" covers seqs up to {lower.last_seq}"
            + (" (the first batch starts at seq 1)" if lower.batch_seq == 0 else ""),
        )
    if upper.first_seq > expected_first and upper_gaps is not None:
        hole = (expected_first, upper.first_seq - 1)
        if hole not in upper_gaps:
            raise AnchorError(
                "seq-gap",
                f"seqs {hole[0]}..{hole[1]} of {gw} between batches {lower.batch_seq} and {n}"
                f" are missing and no 'evicted' gap record in batch {n} covers them",
            )


def check_apart(lower: ChainLink, upper: ChainLink, *, incoming: str | None = None) -> None:
    """Two stored-or-incoming batches with batches missing between them.

    Their seq ranges must not overlap, and the missing batches (at least one record
    each) must still fit between them; the links themselves wait for those batches.
    """
    gw = upper.gw
    a, b = lower.batch_seq, upper.batch_seq
    stored = {"lower": b, "upper": a}.get(incoming or "")
    other = "" if stored is None else f" (the stored neighbour is batch {stored})"
    if upper.first_seq <= lower.last_seq:
        raise AnchorError(
            "seq-overlap",
            f"batches {a} and {b} of {gw} overlap: seqs {lower.first_seq}..{lower.last_seq} and"
            f" {upper.first_seq}..{upper.last_seq}{other}",
        )
    missing, room = b - a - 1, upper.first_seq - lower.last_seq - 1
    if room < missing:
        raise AnchorError(
            "seq-overlap",
            f"batches {a + 1}..{b - 1} of {gw} are still missing but only {room} seqs are left"
            f" between {lower.last_seq} and {upper.first_seq}{other}",
        )


def check_chain(
    manifest: Manifest,
    manifest_hash: str,
    lower: ChainLink | None,
    higher: ChainLink | None,
    evicted_gaps: Sequence[tuple[int, int]] | None,
    higher_gaps: Sequence[tuple[int, int]] | None,
    *,
    max_lookahead: int | None = None,
) -> None:
    """Contract checks 4 and 5 against the stored neighbours (docs/adr/0310).

    ``lower``/``higher`` are the gateway's stored batches nearest below and above
    ``manifest.batch_seq`` (an already used batch_seq is handled before this).
    ``evicted_gaps`` are the manifest's own ``evicted`` gap records, ``higher_gaps``
    those of ``higher``; ``None`` means not known yet, and a seq hole next to that
    batch is not judged. Every link with both sides known is checked; links to
    batches that are still missing are checked when those batches arrive.
    """
    gw, n = manifest.gw, manifest.batch_seq
    if n < 1:
        raise AnchorError("broken-chain", f"batch_seq {n} of {gw}: batch_seq starts at 1")
    this = link_of(manifest, manifest_hash)
    if max_lookahead is not None and higher is None:
        top = 0 if lower is None else lower.batch_seq
        if n - top > max_lookahead:
            raise AnchorError(
                "batch-too-far-ahead",
                f"batch_seq {n} of {gw} is {n - top} ahead of its highest stored batch"
                f" ({top}); at most {max_lookahead} is accepted",
            )
    below = lower if lower is not None else before_first(gw)
    if below.batch_seq == n - 1:
        check_link(below, this, evicted_gaps, incoming="upper")
    else:
        check_apart(below, this, incoming="upper" if lower is not None else None)
    if higher is not None:
        if higher.batch_seq == n + 1:
            check_link(this, higher, higher_gaps, incoming="lower")
        else:
            check_apart(this, higher, incoming="lower")


def check_scope(gateway: Gateway, records: Sequence[NewRecord]) -> None:
    """Every asset and read point a record names is one ``gateway`` is enrolled for.

    Places belong to organisations and a gateway's enrolment names the ones it may
    report for (docs/adr/0311): otherwise org A's gateway could put readings on org
    B's cold room, or scan B's lots into custody, and flip B's verdicts.
    """
    gw = gateway.id
    for r in records:
        if r.asset is not None and not gateway.may_name(r.asset):
            raise AnchorError(
                "foreign-asset",
                f"record seq {r.seq} of {gw} names asset {r.asset!r}, which {gw} is not"
                f" enrolled for (it may name: {', '.join(sorted(gateway.places)) or 'none'})",
            )
        # An empty rp names no read point: the scan is at its asset or the gateway's home.
        if r.scan is not None and r.scan.rp and not gateway.may_name(r.scan.rp):
            raise AnchorError(
                "foreign-read-point",
                f"scan seq {r.seq} of {gw} names read point {r.scan.rp!r}, which {gw} is not"
                f" enrolled for (it may name: {', '.join(sorted(gateway.places)) or 'none'})",
            )


def load_neighbours(
    reads: ChainReads, manifest: Manifest
) -> tuple[ChainLink | None, ChainLink | None, list[tuple[int, int]]]:
    """The stored neighbours of ``manifest`` and the evicted gaps its successor states.

    The successor's gap records are read only when they matter: it is the very next
    batch, holds records, and starts after this manifest's ``last_seq + 1``.
    """
    lower, higher = reads.chain_neighbours(manifest.gw, manifest.batch_seq)
    higher_gaps: list[tuple[int, int]] = []
    if (
        higher is not None
        and higher.batch_seq == manifest.batch_seq + 1
        and not higher.records_evicted
        and higher.first_seq > manifest.last_seq + 1
    ):
        higher_gaps = reads.evicted_gaps(manifest.gw, higher.first_seq, higher.last_seq)
    return lower, higher, higher_gaps


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
        """Commit ``group`` in one transaction; the outcome of each, and whether it wrote."""
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
        # Every append is receipted under the group's checkpoint: no checkpoint, no write.
        return out, checkpoint is not None

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
            return cp

        result: Checkpoint = await self.run_in_writer(work)
        return result


def _merkle_root(leaf_hashes: list[bytes]) -> bytes:
    return MerkleTree(leaf_hashes).root()


def _fut() -> asyncio.Future[IngestOutcome]:
    return asyncio.get_running_loop().create_future()


def _now_ms() -> int:
    return int(time.time() * 1000)

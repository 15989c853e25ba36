"""The ledger store interface: what ingest writes and what queries read.

:class:`LedgerStore` is the one I/O edge of the ledger. The embedded default is
:class:`anchor.storage.sqlite.store.SqliteLedger` (WAL, ``synchronous=FULL``); a
PostgreSQL store implements the same methods (docs/adr/0301). Every method is
synchronous and blocking: the service calls reads from a thread pool and all
writes from one writer thread, which is also where NATS-ordered batches will be
applied when the log is replicated (docs/adr/0302).

Reading rows back:

- records by GS1 key (:meth:`LedgerStore.scans` with gtin/lot/sscc/serial),
  by asset and time (:meth:`records_by_asset`), by sensor or scanner id
  (:meth:`records_by_src`), by gateway and seq (:meth:`records_by_gateway`);
- a record's batch and its position in it (``StoredRecord.batch_leaf`` /
  ``batch_index``) and every record of a batch (:meth:`batch_records`) to build
  the in-batch inclusion proof;
- manifests by log leaf index (:meth:`batch`), by gateway (:meth:`batches_by_gateway`);
- checkpoints ("blocks") by height (:meth:`checkpoint`), the latest, the first
  one covering a leaf (:meth:`checkpoint_covering`);
- log nodes (:meth:`get_node`) for :mod:`anchor.ledger.tree` proofs.

Times are ms since the Unix epoch; ranges are ``[t_from, t_to)``.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator, Sequence

from anchor.ledger.model import (
    ApiToken,
    ChainLink,
    Checkpoint,
    Claim,
    Disposition,
    Gateway,
    GatewayHead,
    NewBatch,
    Notification,
    NotificationAttempt,
    Organisation,
    Place,
    Product,
    ScanEvent,
    StoredBatch,
    StoredClaimEvent,
    StoredDocument,
    StoredProfile,
    StoredRecord,
)
from anchor.ledger.rollups import Rollup, Sample, SeriesKey

__all__ = [
    "LedgerStore",
    "LedgerTx",
]


class LedgerTx(abc.ABC):
    """One write transaction. Nothing is visible to readers until it commits."""

    @abc.abstractmethod
    def gateway_head(self, gw: str) -> GatewayHead | None: ...

    @abc.abstractmethod
    def chain_neighbours(
        self, gw: str, batch_seq: int
    ) -> tuple[ChainLink | None, ChainLink | None]:
        """The stored batches of ``gw`` nearest below and above ``batch_seq`` (or None)."""

    @abc.abstractmethod
    def evicted_gaps(self, gw: str, seq_from: int, seq_to: int) -> list[tuple[int, int]]:
        """``(lost_from, lost_to)`` of the stored ``evicted`` gap records with seq in the range."""

    @abc.abstractmethod
    def batch_by_seq(self, gw: str, batch_seq: int) -> StoredBatch | None: ...

    @abc.abstractmethod
    def batch(self, leaf_index: int) -> StoredBatch | None: ...

    @abc.abstractmethod
    def gateway(self, gw: str) -> Gateway | None: ...

    @abc.abstractmethod
    def log_size(self) -> int: ...

    @abc.abstractmethod
    def get_node(self, level: int, index: int) -> bytes: ...

    @abc.abstractmethod
    def append_batch(self, batch: NewBatch) -> int:
        """Append the manifest as the next log leaf with its records; return the leaf index."""

    @abc.abstractmethod
    def latest_checkpoint(self) -> Checkpoint | None: ...

    @abc.abstractmethod
    def checkpoint(self, height: int) -> Checkpoint | None: ...

    @abc.abstractmethod
    def add_checkpoint(
        self, size: int, root: bytes, note: str, signed_at: int, cosignatures: int, final: bool
    ) -> Checkpoint: ...

    @abc.abstractmethod
    def set_cosignatures(
        self, height: int, note: str, cosignatures: int, final: bool
    ) -> Checkpoint:
        """Store the note of checkpoint ``height`` with the cosignatures gathered after
        it was committed (the same text and log signature, more signature lines)."""

    @abc.abstractmethod
    def set_receipt(self, leaf_index: int, receipt_json: bytes) -> bytes:
        """Store a receipt unless one is stored already; return the stored one."""

    # --- reading rollups (anchor.ledger.rollups), kept in the same transaction ---

    @abc.abstractmethod
    def rollup(self, key: SeriesKey) -> Rollup | None: ...

    @abc.abstractmethod
    def series_samples(self, key: SeriesKey, gateway_asset: str | None) -> tuple[str, list[Sample]]:
        """``(unit, readings)`` of one series in one bucket, from the records table."""

    @abc.abstractmethod
    def put_rollups(self, rollups: Sequence[Rollup]) -> None:
        """Insert or replace these rollups."""

    @abc.abstractmethod
    def rollups_ready(self) -> bool: ...

    @abc.abstractmethod
    def mark_rollups_ready(self) -> None:
        """Record that the rollups cover every stored reading."""

    # --- the C2SP witness's record (anchor.consortium.witness) ---------------

    @abc.abstractmethod
    def witnessed(self, origin: str) -> tuple[int, bytes] | None:
        """``(size, root)`` of the latest checkpoint of ``origin`` this node cosigned."""

    @abc.abstractmethod
    def set_witnessed(self, origin: str, size: int, root: bytes, note: str, at: int) -> None: ...

    # --- a consortium member's stream position and evidence (sql_consortium) ---

    @abc.abstractmethod
    def stream_position(self, stream: str) -> int:
        """The last sequence of ``stream`` applied (0: none)."""

    @abc.abstractmethod
    def set_stream_position(self, stream: str, seq: int) -> None: ...

    @abc.abstractmethod
    def add_stream_refusal(self, seq: int, msg_id: str, code: str, detail: str) -> None: ...

    @abc.abstractmethod
    def stream_refusal(self, seq: int) -> tuple[str, str, str] | None:
        """``(msg_id, code, detail)`` if the apply step refused stream entry ``seq``."""

    @abc.abstractmethod
    def policy_changes(self) -> list[tuple[int, str, int]]:
        """``(version, change JSON, first height it judges)`` of each policy change."""

    @abc.abstractmethod
    def add_policy_change(
        self, version: int, change_json: str, from_height: int, stream_seq: int, at: int
    ) -> None: ...

    # --- the notification outbox (anchor.storage.sql_notify) ---------------------

    @abc.abstractmethod
    def notification(self, key: str) -> Notification | None: ...

    @abc.abstractmethod
    def notifications(
        self, org_id: str | None = None, state: str | None = None, limit: int = 200
    ) -> list[Notification]: ...

    @abc.abstractmethod
    def due_notifications(self, now: int, limit: int) -> list[Notification]: ...

    @abc.abstractmethod
    def notification_attempts(self, key: str) -> list[NotificationAttempt]: ...

    # --- claims and the claims log (anchor.storage.sql_claims) ------------------

    @abc.abstractmethod
    def claim(self, claim_id: str) -> Claim | None: ...

    @abc.abstractmethod
    def claims(
        self,
        routed_to: str | None = None,
        state: str | None = None,
        gtin: str | None = None,
        lot: str | None = None,
        limit: int = 500,
    ) -> list[Claim]: ...

    @abc.abstractmethod
    def claims_filed_since(self, gtin: str, lot: str, since: int) -> int: ...

    @abc.abstractmethod
    def claim_events(self, claim_id: str) -> list[StoredClaimEvent]: ...

    @abc.abstractmethod
    def claims_log_size(self) -> int: ...

    @abc.abstractmethod
    def claims_log_leaves(self, size: int) -> list[bytes]: ...

    # --- documents (anchor.storage.sql_documents) ------------------------------

    @abc.abstractmethod
    def document(self, digest: str) -> StoredDocument | None: ...

    @abc.abstractmethod
    def documents(
        self,
        subject_kind: str | None = None,
        subject: str | None = None,
        org_id: str | None = None,
    ) -> list[StoredDocument]: ...

    @abc.abstractmethod
    def documents_about(self, subjects: Sequence[tuple[str, str]]) -> list[StoredDocument]: ...

    # --- products, profiles, dispositions (anchor.storage.sql_products) ---------

    @abc.abstractmethod
    def profile(self, digest: str) -> StoredProfile | None: ...

    @abc.abstractmethod
    def profiles(self) -> list[StoredProfile]: ...

    @abc.abstractmethod
    def product(self, gtin: str) -> Product | None: ...

    @abc.abstractmethod
    def products(self, org_id: str | None = None) -> list[Product]: ...

    @abc.abstractmethod
    def dispositions(self, gtin: str, lot: str) -> list[Disposition]:
        """Every disposition change of one lot, oldest first."""

    @abc.abstractmethod
    def recent_dispositions(self, since: int, limit: int) -> list[Disposition]: ...

    @abc.abstractmethod
    def lots_in_batch(self, gw: str, first_seq: int, last_seq: int) -> list[tuple[str, str]]: ...

    @abc.abstractmethod
    def places_in_batch(self, leaf_index: int) -> list[str]: ...

    @abc.abstractmethod
    def lots_at(
        self, holders: Sequence[str], t_from: int, t_to: int, limit: int
    ) -> list[tuple[str, str]]: ...

    @abc.abstractmethod
    def lots_between(self, t_from: int, t_to: int, limit: int) -> list[tuple[str, str]]: ...

    @abc.abstractmethod
    def add_profile(self, p: StoredProfile) -> bool:
        """Register a profile; False (and nothing written) if its digest exists."""

    @abc.abstractmethod
    def put_product(self, p: Product) -> None:
        """Add or replace the master data of ``p.gtin``."""

    @abc.abstractmethod
    def add_disposition(self, d: Disposition) -> None: ...

    @abc.abstractmethod
    def add_document(self, d: StoredDocument) -> bool:
        """Register a document; False (and nothing written) if its digest exists."""

    @abc.abstractmethod
    def add_claim(self, c: Claim) -> None: ...

    @abc.abstractmethod
    def add_notification(self, n: Notification) -> None:
        """Enqueue; a row with the same key already there stays as it is."""

    @abc.abstractmethod
    def lease_notification(self, key: str, owner: str, now: int, until: int) -> bool: ...

    @abc.abstractmethod
    def finish_attempt(
        self, n: Notification, attempt: NotificationAttempt, next_attempt_at: int, give_up: bool
    ) -> None: ...

    @abc.abstractmethod
    def add_claim_event(self, e: StoredClaimEvent) -> StoredClaimEvent:
        """Append to the claims log at the next index; move the claim to its state."""

    @abc.abstractmethod
    def org_member(self, org_id: str) -> str | None:
        """The log verifier key of the member that registered ``org_id`` (consortium)."""

    @abc.abstractmethod
    def set_org_member(self, org_id: str, member: str) -> None: ...

    @abc.abstractmethod
    def add_split_view(
        self, origin: str, size: int, note_a: str, note_b: str, source: str, at: int
    ) -> bool:
        """Keep two conflicting signed checkpoints as evidence; False if already kept."""

    @abc.abstractmethod
    def savepoint(self) -> contextlib.AbstractContextManager[None]:
        """A nested scope whose writes are undone if it raises."""


class LedgerStore(abc.ABC):
    # --- writes ---------------------------------------------------------------

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[LedgerTx]:
        """A serialised, durable write transaction (committed when the block exits)."""

    @abc.abstractmethod
    def add_organisation(self, org_id: str, name: str, now: int) -> Organisation: ...

    @abc.abstractmethod
    def enroll_gateway(self, gateway: Gateway) -> Gateway: ...

    @abc.abstractmethod
    def revoke_gateway(
        self, gw: str, at: int, reason: str, now: int, attestation: str = ""
    ) -> Gateway:
        """Record a revocation from ``at`` made at ``now``; the earliest ``at`` stands."""

    @abc.abstractmethod
    def revocations(self) -> list[tuple[str, int, int, str, str]]:
        """Every revocation ever recorded: ``(gw, at, recorded_at, reason, attestation)``."""

    @abc.abstractmethod
    def add_place(self, place: Place) -> Place: ...

    @abc.abstractmethod
    def place(self, place_id: str) -> Place | None: ...

    @abc.abstractmethod
    def places(self, org_id: str | None = None, limit: int | None = None) -> list[Place]:
        """Places by id, of one organisation or all; at most ``limit`` (None: every one)."""

    # --- the notification outbox (anchor.storage.sql_notify) ---------------------

    @abc.abstractmethod
    def notification(self, key: str) -> Notification | None: ...

    @abc.abstractmethod
    def notifications(
        self, org_id: str | None = None, state: str | None = None, limit: int = 200
    ) -> list[Notification]: ...

    @abc.abstractmethod
    def due_notifications(self, now: int, limit: int) -> list[Notification]: ...

    @abc.abstractmethod
    def notification_attempts(self, key: str) -> list[NotificationAttempt]: ...

    # --- claims and the claims log (anchor.storage.sql_claims) ------------------

    @abc.abstractmethod
    def claim(self, claim_id: str) -> Claim | None: ...

    @abc.abstractmethod
    def claims(
        self,
        routed_to: str | None = None,
        state: str | None = None,
        gtin: str | None = None,
        lot: str | None = None,
        limit: int = 500,
    ) -> list[Claim]: ...

    @abc.abstractmethod
    def claims_filed_since(self, gtin: str, lot: str, since: int) -> int: ...

    @abc.abstractmethod
    def claim_events(self, claim_id: str) -> list[StoredClaimEvent]: ...

    @abc.abstractmethod
    def claims_log_size(self) -> int: ...

    @abc.abstractmethod
    def claims_log_leaves(self, size: int) -> list[bytes]: ...

    # --- documents (anchor.storage.sql_documents) ------------------------------

    @abc.abstractmethod
    def document(self, digest: str) -> StoredDocument | None: ...

    @abc.abstractmethod
    def documents(
        self,
        subject_kind: str | None = None,
        subject: str | None = None,
        org_id: str | None = None,
    ) -> list[StoredDocument]: ...

    @abc.abstractmethod
    def documents_about(self, subjects: Sequence[tuple[str, str]]) -> list[StoredDocument]: ...

    # --- products, profiles, dispositions (anchor.storage.sql_products) ---------

    @abc.abstractmethod
    def profile(self, digest: str) -> StoredProfile | None: ...

    @abc.abstractmethod
    def profiles(self) -> list[StoredProfile]: ...

    @abc.abstractmethod
    def product(self, gtin: str) -> Product | None: ...

    @abc.abstractmethod
    def products(self, org_id: str | None = None) -> list[Product]: ...

    @abc.abstractmethod
    def dispositions(self, gtin: str, lot: str) -> list[Disposition]:
        """Every disposition change of one lot, oldest first."""

    @abc.abstractmethod
    def recent_dispositions(self, since: int, limit: int) -> list[Disposition]: ...

    @abc.abstractmethod
    def lots_in_batch(self, gw: str, first_seq: int, last_seq: int) -> list[tuple[str, str]]: ...

    @abc.abstractmethod
    def places_in_batch(self, leaf_index: int) -> list[str]: ...

    @abc.abstractmethod
    def lots_at(
        self, holders: Sequence[str], t_from: int, t_to: int, limit: int
    ) -> list[tuple[str, str]]: ...

    @abc.abstractmethod
    def lots_between(self, t_from: int, t_to: int, limit: int) -> list[tuple[str, str]]: ...

    @abc.abstractmethod
    def add_token(self, token: ApiToken) -> ApiToken: ...

    @abc.abstractmethod
    def revoke_token(self, token_id: str, at: int) -> ApiToken: ...

    # --- access ---------------------------------------------------------------

    @abc.abstractmethod
    def organisation(self, org_id: str) -> Organisation | None: ...

    @abc.abstractmethod
    def organisations(self) -> list[Organisation]: ...

    @abc.abstractmethod
    def gateway(self, gw: str) -> Gateway | None: ...

    @abc.abstractmethod
    def gateway_by_key(self, public_key: str) -> Gateway | None:
        """The gateway ever enrolled with this base64 public key (revoked or not)."""

    @abc.abstractmethod
    def gateways(self, org_id: str | None = None) -> list[Gateway]: ...

    @abc.abstractmethod
    def token(self, token_id: str) -> ApiToken | None: ...

    @abc.abstractmethod
    def tokens(self, org_id: str | None = None) -> list[ApiToken]: ...

    # --- log --------------------------------------------------------------------

    @abc.abstractmethod
    def log_size(self) -> int: ...

    @abc.abstractmethod
    def get_node(self, level: int, index: int) -> bytes:
        """A complete subtree hash; raises ``KeyError`` if that subtree is not complete."""

    @abc.abstractmethod
    def leaf_hashes(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]: ...

    @abc.abstractmethod
    def batch(self, leaf_index: int) -> StoredBatch | None: ...

    @abc.abstractmethod
    def batch_by_seq(self, gw: str, batch_seq: int) -> StoredBatch | None: ...

    @abc.abstractmethod
    def batches(self, start: int = 0, stop: int | None = None) -> Iterator[StoredBatch]:
        """Batches in log order (leaf index ``start`` up to ``stop``, exclusive)."""

    @abc.abstractmethod
    def batches_by_gateway(
        self, gw: str, *, limit: int = 50, before_batch_seq: int | None = None, offset: int = 0
    ) -> list[StoredBatch]:
        """Highest ``batch_seq`` first; ``offset`` skips that many stored batches."""

    @abc.abstractmethod
    def gateway_links(self, gw: str) -> Iterator[ChainLink]:
        """Every stored batch of ``gw`` as a chain link, ascending ``batch_seq``."""

    @abc.abstractmethod
    def gateway_head(self, gw: str) -> GatewayHead | None: ...

    @abc.abstractmethod
    def chain_neighbours(
        self, gw: str, batch_seq: int
    ) -> tuple[ChainLink | None, ChainLink | None]:
        """The stored batches of ``gw`` nearest below and above ``batch_seq`` (or None)."""

    @abc.abstractmethod
    def evicted_gaps(self, gw: str, seq_from: int, seq_to: int) -> list[tuple[int, int]]:
        """``(lost_from, lost_to)`` of the stored ``evicted`` gap records with seq in the range."""

    # --- checkpoints ------------------------------------------------------------

    @abc.abstractmethod
    def latest_checkpoint(self, *, final_only: bool = False) -> Checkpoint | None: ...

    @abc.abstractmethod
    def checkpoint(self, height: int) -> Checkpoint | None: ...

    @abc.abstractmethod
    def checkpoint_covering(
        self, leaf_index: int, *, final_only: bool = False
    ) -> Checkpoint | None:
        """The first checkpoint whose tree contains ``leaf_index``."""

    @abc.abstractmethod
    def checkpoints(self, *, limit: int = 20, before_height: int | None = None) -> list[Checkpoint]:
        """Newest first."""

    @abc.abstractmethod
    def checkpoints_ascending(self) -> Iterator[Checkpoint]:
        """Every checkpoint, oldest first (for verify-ledger and mirrors)."""

    # --- records ----------------------------------------------------------------

    @abc.abstractmethod
    def record(self, gw: str, seq: int) -> StoredRecord | None: ...

    @abc.abstractmethod
    def batch_records(self, leaf_index: int) -> list[StoredRecord]:
        """Every record of a batch in seq order (what its Merkle root is over)."""

    @abc.abstractmethod
    def records_by_asset(
        self,
        asset: str,
        t_from: int,
        t_to: int,
        *,
        type: str | None = None,
        q: str | None = None,
        limit: int = 10_000,
    ) -> list[StoredRecord]: ...

    @abc.abstractmethod
    def records_by_src(
        self, src: str, t_from: int, t_to: int, *, limit: int = 10_000
    ) -> list[StoredRecord]: ...

    @abc.abstractmethod
    def records_by_gateway(
        self, gw: str, seq_from: int = 0, seq_to: int | None = None, *, limit: int = 10_000
    ) -> list[StoredRecord]: ...

    @abc.abstractmethod
    def scans(
        self,
        *,
        gtin: str | None = None,
        lot: str | None = None,
        sscc: str | None = None,
        serial: str | None = None,
        t_from: int = 0,
        t_to: int = 2**62,
        limit: int = 10_000,
    ) -> list[ScanEvent]:
        """Scan events for a GS1 key, oldest first; at least one key must be given."""

    @abc.abstractmethod
    def scan_event(self, gw: str, seq: int) -> ScanEvent | None:
        """The indexed custody facts of one scan record (verify-ledger compares them)."""

    @abc.abstractmethod
    def reading_stats(
        self, asset: str, t_from: int, t_to: int
    ) -> list[tuple[str, str, int, float, float]]:
        """Per quantity: ``(q, unit, count, min, max)`` of the asset's readings."""

    @abc.abstractmethod
    def reading_rollups(
        self, holder: str, bucket_from: int, bucket_to: int, limit: int
    ) -> list[Rollup]:
        """``holder``'s rollups for buckets in ``[bucket_from, bucket_to)``, in key order."""

    @abc.abstractmethod
    def all_rollups(self) -> Iterator[Rollup]:
        """Every stored rollup in key order (verify-ledger)."""

    @abc.abstractmethod
    def series_samples(self, key: SeriesKey, gateway_asset: str | None) -> tuple[str, list[Sample]]:
        """``(unit, readings)`` of one series in one bucket, from the records table."""

    @abc.abstractmethod
    def rollups_ready(self) -> bool:
        """Whether the rollups cover every stored reading (false after a migration)."""

    @abc.abstractmethod
    def change_counter(self) -> int:
        """A number that moves whenever any other connection or process commits (a batch,
        an enrolment, a revocation made with the CLI): what cached answers key on."""

    @abc.abstractmethod
    def table_counts(self) -> dict[str, int]:
        """Row counts of the ledger tables (metrics, and tests of "nothing changed")."""

    @abc.abstractmethod
    def close(self) -> None: ...

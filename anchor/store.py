"""The ledger store interface: what ingest writes and what queries read.

:class:`LedgerStore` is the one I/O edge of the ledger. The embedded default is
:class:`anchor.store_sqlite.SqliteLedger` (WAL, ``synchronous=FULL``); a
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
- log nodes (:meth:`get_node`) for :mod:`anchor.log` proofs.

Times are ms since the Unix epoch; ranges are ``[t_from, t_to)``.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

__all__ = [
    "PLACE_KINDS",
    "ROLES",
    "ApiToken",
    "ChainLink",
    "Checkpoint",
    "Gateway",
    "GatewayHead",
    "LedgerStore",
    "LedgerTx",
    "NewBatch",
    "NewRecord",
    "Organisation",
    "Place",
    "ScanEvent",
    "StoredBatch",
    "StoredRecord",
]

ROLES = frozenset({"gateway", "operator", "auditor"})


@dataclass(frozen=True, slots=True)
class Organisation:
    id: str
    name: str
    created_at: int


PLACE_KINDS = frozenset({"asset", "read-point"})


@dataclass(frozen=True, slots=True)
class Place:
    """An asset (truck, cold room, line) or a read point (dock door), owned by one
    organisation. Records name places; only the owner's gateways may (docs/adr/0311)."""

    id: str
    org_id: str
    kind: str  # "asset" or "read-point"
    name: str
    registered_at: int
    attestation: str = ""  # the log key's signature over its statement (anchor.registry)


@dataclass(frozen=True, slots=True)
class Gateway:
    id: str
    org_id: str
    public_key: str  # base64 of the raw 32-byte Ed25519 key
    key_id: str  # proofs.keys.key_id_of, what manifests name in ``key``
    asset: str | None  # its home: the holder of records that name no asset
    enrolled_at: int
    revoked_at: int | None = None  # compromised from (the earliest revocation time given)
    revoked_reason: str = ""
    # The places its records may name (its organisation's, chosen at enrolment).
    places: frozenset[str] = frozenset()
    # Batches accepted at or after this were refused by ingest: the earliest
    # max(revocation time, time the revocation was recorded) of its revocations.
    refused_from: int | None = None
    attestation: str = ""  # the log key's signature over the enrolment (anchor.registry)

    def revoked_by(self, t_ms: int) -> bool:
        """Whether the key is revoked at ``t_ms`` (a revocation may be dated ahead)."""
        return self.revoked_at is not None and self.revoked_at <= t_ms

    def compromised_batch(self, accepted_at: int) -> bool:
        """A batch accepted after the compromise time but before the revocation was
        recorded: logged and kept (the log is append-only), but flagged everywhere."""
        return self.revoked_by(accepted_at) and not self.refused_at(accepted_at)

    def refused_at(self, accepted_at: int) -> bool:
        """Whether ingest had to refuse a batch accepted at ``accepted_at``."""
        return self.refused_from is not None and self.refused_from <= accepted_at

    def may_name(self, place: str) -> bool:
        return place in self.places


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: str  # public part of the token, safe to log
    org_id: str
    role: str
    token_hash: bytes  # SHA-256 of the secret; the secret itself is never stored
    created_at: int
    revoked_at: int | None = None
    label: str = ""


@dataclass(frozen=True, slots=True)
class GatewayHead:
    """The stored batch of a gateway with the highest ``batch_seq``.

    Batches may arrive out of order (docs/adr/0310), so lower batch_seqs may still
    be missing: this is the top of the chain, not a contiguous prefix.
    """

    gw: str
    batch_seq: int
    manifest_hash: str
    last_seq: int
    leaf_index: int


@dataclass(frozen=True, slots=True)
class ChainLink:
    """A batch as its chain neighbours see it: what the chain and seq checks compare."""

    gw: str
    batch_seq: int
    manifest_hash: str
    prev: str
    first_seq: int
    last_seq: int
    records_evicted: bool
    leaf_index: int  # -1 for a batch that is not stored (yet)


@dataclass(frozen=True, slots=True)
class StoredBatch:
    leaf_index: int
    gw: str
    batch_seq: int
    manifest_hash: str
    manifest_json: bytes  # canonical signed manifest: the log leaf's data
    first_seq: int
    last_seq: int
    count: int
    root: str
    opened: int
    closed: int
    records_evicted: bool
    accepted_at: int
    receipt_json: bytes | None  # the signed receipt exactly as first returned


@dataclass(frozen=True, slots=True)
class StoredRecord:
    gw: str
    seq: int
    type: str
    src: str
    asset: str | None
    t: int
    batch_leaf: int  # leaf index of the batch's manifest in the log
    batch_index: int  # position in the batch (seq - first_seq)
    json: bytes  # canonical signed record (its leaf hash is over these bytes)
    q: str | None = None
    val: float | None = None
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class ScanEvent:
    """A scan record's custody facts, indexed by its GS1 keys."""

    gw: str
    seq: int
    t: int
    src: str
    asset: str | None
    rp: str
    step: str
    gtin: str | None
    lot: str | None
    sscc: str | None
    serial: str | None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed checkpoint, shown to people as a block."""

    height: int  # 0 is the empty log
    size: int
    root: bytes
    note: str  # the signed note: log signature and cosignatures
    signed_at: int
    cosignatures: int
    final: bool  # the quorum policy is met
    entries: int  # leaves added since the previous checkpoint

    @property
    def hash_hex(self) -> str:
        return self.root.hex()


@dataclass(frozen=True, slots=True)
class NewRecord:
    gw: str
    seq: int
    type: str
    src: str
    asset: str | None
    t: int
    json: bytes
    q: str | None = None
    val: float | None = None
    unit: str | None = None
    scan: ScanEvent | None = None


@dataclass(frozen=True, slots=True)
class NewBatch:
    gw: str
    batch_seq: int
    manifest_hash: str
    manifest_json: bytes
    leaf_hash: bytes
    first_seq: int
    last_seq: int
    count: int
    root: str
    opened: int
    closed: int
    records_evicted: bool
    accepted_at: int
    records: Sequence[NewRecord] = field(default_factory=tuple)


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
    def set_receipt(self, leaf_index: int, receipt_json: bytes) -> bytes:
        """Store a receipt unless one is stored already; return the stored one."""

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
    def places(self, org_id: str | None = None) -> list[Place]: ...

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
    def change_counter(self) -> int:
        """A number that moves whenever any other connection or process commits (a batch,
        an enrolment, a revocation made with the CLI): what cached answers key on."""

    @abc.abstractmethod
    def table_counts(self) -> dict[str, int]:
        """Row counts of the ledger tables (metrics, and tests of "nothing changed")."""

    @abc.abstractmethod
    def close(self) -> None: ...

"""What provenance queries and the explorer need from the ledger store, and nothing more.

:class:`ProvenanceSource` lists exactly the read-only queries that
``anchor.provenance.answer`` and ``anchor.http.pages`` make. The ledger's SQLite store is
adapted to it in ``anchor.storage.sqlite.provenance``; ``tests/support/memory_source.py``
holds the in-memory twin used by unit tests and by browser tests that build signed
batches with ``proofs`` directly. Every query takes a ``limit``: callers decide
the bound, the source never returns an unbounded list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from anchor.ledger.model import Claim, Disposition, Product, StoredDocument, StoredProfile
from anchor.ledger.rollups import Rollup
from proofs.records import Gap, Manifest, Reading, Scan

__all__ = [
    "BatchInfo",
    "BlockInfo",
    "GatewayInfo",
    "LogTrust",
    "OrgInfo",
    "ProvenanceSource",
    "ReadingPoint",
    "ReadingQuery",
    "Record",
    "ScanQuery",
    "TrustFn",
    "holder_of",
]


Record = Reading | Scan | Gap


def holder_of(record: Reading | Scan | Gap, gateway_asset: str | None = None) -> str:
    """The asset or read point a record was made at: its own stamp, else its gateway's."""
    if record.asset:
        return record.asset
    if isinstance(record, Scan) and record.rp:
        return record.rp
    return gateway_asset or record.gw


@dataclass(frozen=True, slots=True)
class ReadingPoint:
    """One reading without its signature and salt: what aggregation and charts need.

    Queries over 100k readings return these light rows; full signed records are
    fetched only for the few readings a bundle proves.
    """

    gw: str
    seq: int
    src: str
    asset: str
    t: int  # wall clock, ms
    q: str
    val: float
    unit: str
    sync: bool
    boot: str
    mono_us: int

    @classmethod
    def of(cls, r: Reading, gateway_asset: str | None = None) -> ReadingPoint:
        return cls(
            gw=r.gw,
            seq=r.seq,
            src=r.src,
            asset=holder_of(r, gateway_asset),
            t=r.t,
            q=r.q,
            val=float(r.val),
            unit=r.unit,
            sync=r.clk.sync,
            boot=r.clk.boot,
            mono_us=r.clk.mono_us,
        )


@dataclass(frozen=True, slots=True)
class ScanQuery:
    """Which scans mention a subject: GS1 AI values that must all match."""

    ais: tuple[tuple[str, str], ...]  # e.g. (("01", gtin), ("10", lot))

    def matches(self, scan: Scan) -> bool:
        return all(scan.gs1.get(ai) == value for ai, value in self.ais)


@dataclass(frozen=True, slots=True)
class ReadingQuery:
    """Readings by asset, gateway or sensor over a half-open wall-clock window [t_from, t_to)."""

    asset: str | None = None
    gw: str | None = None
    src: str | None = None
    t_from: int = 0
    t_to: int = 2**53 - 1
    after: tuple[int, str, int] | None = None  # keyset cursor: (t, gw, seq) of the last row seen

    def matches(self, p: ReadingPoint) -> bool:
        if self.asset is not None and p.asset != self.asset:
            return False
        if self.gw is not None and p.gw != self.gw:
            return False
        if self.src is not None and p.src != self.src:
            return False
        if not self.t_from <= p.t < self.t_to:
            return False
        return self.after is None or (p.t, p.gw, p.seq) > self.after


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    id: str
    org: str
    asset: str | None
    public_key: str  # base64 Ed25519
    revoked_at: int | None = None  # ms


@dataclass(frozen=True, slots=True)
class OrgInfo:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class BatchInfo:
    gw: str
    batch_seq: int
    leaf_index: int
    first_seq: int
    last_seq: int
    count: int
    opened: int  # ms, gateway clock
    closed: int  # ms, gateway clock
    accepted_at: int  # ms, anchor clock
    records_evicted: bool = False


@dataclass(frozen=True, slots=True)
class BlockInfo:
    """A signed checkpoint as the explorer shows it."""

    height: int  # 1 for the first checkpoint
    tree_size: int
    root_hex: str
    note: str  # the signed note, with every signature known so far
    time: int  # ms, when the anchor signed it
    entries: int  # leaves added since the previous checkpoint

    @property
    def hash_hex(self) -> str:
        """The block's hash as the explorer shows it: the log root it commits to."""
        return self.root_hex


@dataclass(frozen=True, slots=True)
class LogTrust:
    log_vkey: str
    cosigner_vkeys: tuple[str, ...] = ()
    quorum: int = 0
    # Signs with the log key: the anchor attests a bundle's subject claims (range, verdict).
    attest: Callable[[bytes], bytes] | None = None
    # A consortium's policy changes since its genesis policy (proofs.policy_change), as
    # JSON: a verifier that pinned the genesis policy follows them to the one in force.
    policy_changes: tuple[dict[str, Any], ...] = ()


# A consortium's trust changes when its policy does: sources take a function.
TrustFn = Callable[[], LogTrust]


class ProvenanceSource(Protocol):
    """Read-only queries over the ledger. Every list is bounded by ``limit``."""

    def log_trust(self) -> LogTrust: ...

    def close(self) -> None:
        """Release what the source holds (connections); called once, at shutdown."""
        ...

    def gateway(self, gw: str) -> GatewayInfo | None: ...

    def org(self, org_id: str) -> OrgInfo | None: ...

    def org_gateways(self, org_id: str, offset: int, limit: int) -> list[GatewayInfo]: ...

    def org_places(self, org_id: str, limit: int) -> list[str]:
        """The ids of the places (assets, read points) registered to an organisation."""
        ...

    def lots_at(
        self, holders: Sequence[str], t_from: int, t_to: int, limit: int
    ) -> list[tuple[str, str]]:
        """``(gtin, lot)`` scanned at any of ``holders`` in ``[t_from, t_to)``, ordered."""
        ...

    def product(self, gtin: str) -> Product | None:
        """The GTIN's master data (name, pack, the digest of its profile), if any."""

    def profile(self, digest: str) -> StoredProfile | None:
        """A registered cold-chain profile by digest."""

    def dispositions(self, gtin: str, lot: str) -> list[Disposition]:
        """Every disposition change of a lot, oldest first."""

    def documents_about(self, subjects: Sequence[tuple[str, str]]) -> list[StoredDocument]:
        """Registered documents about any of ``(subject_kind, subject)``, oldest first."""

    def lot_claims(self, gtin: str, lot: str) -> list[Claim]:
        """Claims filed about a lot, newest first (anchor.provenance.claims)."""

    def scans(self, query: ScanQuery, limit: int) -> list[Scan]:
        """Scans mentioning the subject, in (t, gw, seq) order."""
        ...

    def readings(self, query: ReadingQuery, limit: int) -> list[ReadingPoint]:
        """Readings matching ``query`` in (t, gw, seq) order."""
        ...

    def reading_rollups(
        self, holder: str, bucket_from: int, bucket_to: int, limit: int
    ) -> list[Rollup] | None:
        """``holder``'s hourly rollups (:mod:`anchor.ledger.rollups`) for buckets in
        ``[bucket_from, bucket_to)``; None when this source keeps none (answers then
        read every reading)."""
        ...

    def gaps(
        self, assets: Sequence[str], gws: Sequence[str], t_from: int, t_to: int, limit: int
    ) -> list[Gap]:
        """Gap records made on ``assets`` or by ``gws`` within [t_from, t_to)."""
        ...

    def records(self, keys: Sequence[tuple[str, int]]) -> list[Record]:
        """The signed records with these (gw, seq); missing keys are left out."""
        ...

    def batch_of(self, gw: str, seq: int) -> BatchInfo | None: ...

    def compromised_ranges(self, gw: str, since: int, limit: int) -> list[tuple[int, int]]:
        """``(first_seq, last_seq)`` of ``gw``'s batches accepted at or after ``since``
        (its compromise time): their records are served, and flagged."""
        ...

    def batch_manifest(self, gw: str, batch_seq: int) -> Manifest | None: ...

    def batch_leaf_hashes(self, gw: str, batch_seq: int) -> list[bytes]:
        """The leaf hashes of a batch's records in seq order (empty if evicted)."""
        ...

    def gateway_batches(self, gw: str, offset: int, limit: int) -> list[BatchInfo]:
        """Highest batch_seq first (batch_seqs below it may still be missing)."""
        ...

    def latest_blocks(self, limit: int, before_height: int | None = None) -> list[BlockInfo]:
        """Newest first."""
        ...

    def proof_checkpoint(self) -> BlockInfo | None:
        """The checkpoint bundles prove against: the latest final one (quorum met)."""
        ...

    def block(self, height: int) -> BlockInfo | None: ...

    def leaves(self, start: int, end: int) -> list[BatchInfo]:
        """The batches at log leaf indexes [start, end)."""
        ...

    def log_inclusion_proof(self, leaf_index: int, tree_size: int) -> list[bytes]: ...

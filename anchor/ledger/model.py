"""The ledger's values: organisations, places, gateways, tokens, batches, records,
scans and checkpoints, as the ports hand them over (frozen, validated where they
are made).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from proofs.claims import ClaimEvent
from proofs.documents import DocumentEntry

__all__ = [
    "DISPOSITIONS",
    "PLACE_KINDS",
    "ROLES",
    "ApiToken",
    "ChainLink",
    "Checkpoint",
    "Claim",
    "Disposition",
    "Gateway",
    "GatewayHead",
    "NewBatch",
    "NewRecord",
    "Notification",
    "NotificationAttempt",
    "Organisation",
    "Place",
    "Product",
    "ScanEvent",
    "StoredBatch",
    "StoredClaimEvent",
    "StoredDocument",
    "StoredProfile",
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
    attestation: str = ""  # the log key's signature over its statement (anchor.ledger.registry)


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
    attestation: str = ""  # the log key's signature over the enrolment (anchor.ledger.registry)

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
    clk: tuple[bool, str, int] | None = None  # a reading's (sync, boot, mono_us): its rollup


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


@dataclass(frozen=True, slots=True)
class StoredProfile:
    """A cold-chain profile (proofs.coldchain.Profile) as registered: never changed or
    removed, so a verdict that names ``digest`` can be re-derived years later."""

    digest: str  # SHA-256 hex of ``body``
    body: str  # RFC 8785 canonical JSON of Profile.to_dict()
    registered_at: int
    attestation: str = ""  # the log key's signature over its statement (anchor.ledger.registry)


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """A registered document (proofs.documents.DocumentEntry), the hex SHA-256 of each
    of its chunks (a changed file names the bytes that differ) and the log key's
    signature over the entry's statement. Never changed or removed; the file itself is
    kept content-addressed beside the ledger (anchor.ledger.documents)."""

    entry: DocumentEntry
    chunks: tuple[str, ...]
    attestation: str = ""


@dataclass(frozen=True, slots=True)
class Product:
    """Master data of one trade item (GTIN), owned by its brand owner's organisation:
    what people read (name, pack), what the exports need (description, unit of the
    quantity, UN/ECE Recommendation 20 code) and which profile judges its lots."""

    gtin: str  # GTIN-14
    org_id: str
    name: str
    description: str = ""
    pack: str = ""  # e.g. "case of 12 x 500 g"
    unit: str = "C62"  # the trade item's quantity unit: C62 one, KGM kilogram, CS case...
    profile: str = ""  # digest of a StoredProfile; "" = the anchor's default profile
    updated_at: int = 0
    attestation: str = ""


DISPOSITIONS = ("release", "quarantine", "reject", "needs-review")


@dataclass(frozen=True, slots=True)
class Disposition:
    """One change of a lot's disposition: by a profile's rule when batches were
    anchored (``by`` = "anchor"), or an operator's override with a reason. Never edited;
    the lot's disposition is its latest."""

    gtin: str
    lot: str
    n: int  # 1, 2, ... per lot
    disposition: str  # one of DISPOSITIONS
    cause: str  # "rule" or "override"
    rule: str  # the profile rule that decided it, or "" for an override
    status: str  # the verdict status it followed: pass | fail | indeterminate
    evidence: str  # canonical JSON: profile digest, rules, checkpoint size, reasons, custodians
    custodian: str  # the organisation that held the lot at the excursion ("" if none)
    owner: str  # the lot's owner (the product's organisation, "" if unknown)
    by: str  # "anchor" or the operator's token id
    reason: str  # an override's reason in words; the rule's sentence otherwise
    at: int
    attestation: str = ""


@dataclass(frozen=True, slots=True)
class Claim:
    """A consumer's claim about a lot (anchor.provenance.claims). ``text`` and
    ``contact`` are private to the parties who must answer (the routed organisation, the
    lot's owner, auditors); the claims log holds only their digests."""

    id: str  # 32 hex digits, random: the claimant's page is /claims/{id}
    gtin: str
    lot: str
    filed_at: int
    text: str
    contact: str
    photo_sha256: str  # "" without a photo; the file is kept beside the ledger
    photo_type: str
    bundle_sha256: str  # the lot's bundle as it stood when filed, kept beside the ledger
    routed_to: str  # the organisation that must answer
    holder: str  # the place that held the lot at the excursion ("" if none)
    route_reason: str  # why it went there, in words
    owner: str  # the lot's owner ("" if unknown)
    state: str  # proofs.claims.CLAIM_STATES
    answer_due: int
    resolve_due: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class StoredClaimEvent:
    """A claim event as the claims log holds it: leaf ``index``, the event, the words
    said with it (private; the event has their digest) and the log key's signature over
    the event's statement."""

    index: int
    event: ClaimEvent
    message: str = ""
    attestation: str = ""


@dataclass(frozen=True, slots=True)
class Notification:
    """One message of the notification outbox (anchor.notify) to one organisation on one
    channel. Written in the transaction that makes the change it tells of; delivered at
    least once; ``key`` is its idempotency key (the same change, org and channel: the same
    key, so a change decided twice is told once)."""

    key: str
    org_id: str
    channel: str  # "webhook" or "mqtt"
    kind: str  # "disposition" or "claim"
    subject: str  # "gtin/lot" or the claim id
    payload: str  # canonical JSON
    created_at: int
    state: str = "pending"  # pending | delivered | failed
    attempts: int = 0
    next_attempt_at: int = 0
    delivered_at: int = 0
    last_error: str = ""
    lease_owner: str = ""
    lease_until: int = 0


@dataclass(frozen=True, slots=True)
class NotificationAttempt:
    key: str
    n: int
    channel: str
    status: str  # the HTTP status, "published", or the error in words
    ok: bool
    at: int

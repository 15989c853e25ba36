"""The in-memory twin of :class:`anchor.provenance.source.ProvenanceSource`: a whole
single-node ledger built from real signed batches, for unit and browser tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from anchor.ingest.verify import new_record
from anchor.ledger.model import (
    Claim,
    Disposition,
    NewRecord,
    Product,
    StoredDocument,
    StoredProfile,
)
from anchor.ledger.rollups import Rollup, group_readings, summarise
from anchor.provenance.source import (
    BatchInfo,
    BlockInfo,
    GatewayInfo,
    LogTrust,
    OrgInfo,
    ReadingPoint,
    ReadingQuery,
    Record,
    ScanQuery,
    holder_of,
)
from proofs.merkle import MerkleTree
from proofs.note import Checkpoint, NoteSigner, SignedNote, cosign_checkpoint
from proofs.records import Gap, Manifest, Reading, Scan

__all__ = [
    "MemoryProvenanceSource",
]


@dataclass
class _Batch:
    info: BatchInfo
    manifest: Manifest
    records: list[Record]


@dataclass
class MemoryProvenanceSource:
    """A whole single-node ledger in memory, built from real signed batches.

    It appends manifests to an RFC 6962 log and signs real checkpoints, so
    bundles assembled from it verify with ``proofs.bundle.verify_bundle`` and in
    the browser exactly as bundles from the SQLite store do.
    """

    log_signer: NoteSigner
    cosigners: Sequence[NoteSigner] = ()
    quorum: int = 0
    rollups: bool = True  # False: answers read every reading (the reference path)
    _orgs: dict[str, OrgInfo] = field(default_factory=dict)
    _gateways: dict[str, GatewayInfo] = field(default_factory=dict)
    _batches: list[_Batch] = field(default_factory=list)  # log order
    _blocks: list[BlockInfo] = field(default_factory=list)
    _products: dict[str, Product] = field(default_factory=dict)
    _profiles: dict[str, StoredProfile] = field(default_factory=dict)
    documents: list[StoredDocument] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)

    def close(self) -> None:
        pass  # nothing held

    # -- building
    def add_org(self, org_id: str, name: str) -> None:
        self._orgs[org_id] = OrgInfo(org_id, name)

    def add_gateway(self, gw: GatewayInfo) -> None:
        self._gateways[gw.id] = gw

    def add_product(self, product: Product, profile: StoredProfile | None = None) -> None:
        self._products[product.gtin] = product
        if profile is not None:
            self._profiles[profile.digest] = profile

    def product(self, gtin: str) -> Product | None:
        return self._products.get(gtin)

    def profile(self, digest: str) -> StoredProfile | None:
        return self._profiles.get(digest)

    def dispositions(self, gtin: str, lot: str) -> list[Disposition]:
        return []

    def lot_claims(self, gtin: str, lot: str) -> list[Claim]:
        return [c for c in self.claims if (c.gtin, c.lot) == (gtin, lot)]

    def documents_about(self, subjects: Sequence[tuple[str, str]]) -> list[StoredDocument]:
        return [d for d in self.documents if (d.entry.subject_kind, d.entry.subject) in subjects]

    def append_batch(self, manifest: Manifest, records: Iterable[Record], accepted_at: int) -> int:
        index = len(self._batches)
        info = BatchInfo(
            gw=manifest.gw,
            batch_seq=manifest.batch_seq,
            leaf_index=index,
            first_seq=manifest.first_seq,
            last_seq=manifest.last_seq,
            count=manifest.count,
            opened=manifest.opened,
            closed=manifest.closed,
            accepted_at=accepted_at,
        )
        self._batches.append(_Batch(info, manifest, sorted(records, key=lambda r: r.seq)))
        return index

    def sign_checkpoint(self, time_ms: int) -> BlockInfo:
        size = len(self._batches)
        tree = MerkleTree([b.manifest.leaf_hash() for b in self._batches])
        text = Checkpoint(self.log_signer.name, size, tree.root()).to_text()
        note = SignedNote.sign(text, self.log_signer)
        for c in self.cosigners:
            note = note.with_signature(cosign_checkpoint(text, c, time_ms // 1000))
        previous = self._blocks[-1].tree_size if self._blocks else 0
        block = BlockInfo(
            height=len(self._blocks) + 1,
            tree_size=size,
            root_hex=tree.root().hex(),
            note=note.to_text(),
            time=time_ms,
            entries=size - previous,
        )
        self._blocks.append(block)
        return block

    # -- ProvenanceSource
    def log_trust(self) -> LogTrust:
        return LogTrust(
            self.log_signer.verifier.to_vkey(),
            tuple(c.verifier.to_vkey() for c in self.cosigners),
            self.quorum,
            self.log_signer.key.sign,
        )

    def gateway(self, gw: str) -> GatewayInfo | None:
        return self._gateways.get(gw)

    def org(self, org_id: str) -> OrgInfo | None:
        return self._orgs.get(org_id)

    def org_gateways(self, org_id: str, offset: int, limit: int) -> list[GatewayInfo]:
        found = sorted((g for g in self._gateways.values() if g.org == org_id), key=lambda g: g.id)
        return found[offset : offset + limit]

    def org_places(self, org_id: str, limit: int) -> list[str]:
        # The twin registers no places: an organisation's are its gateways' homes.
        homes = {g.asset for g in self._gateways.values() if g.org == org_id and g.asset}
        return sorted(homes)[:limit]

    def lots_at(
        self, holders: Sequence[str], t_from: int, t_to: int, limit: int
    ) -> list[tuple[str, str]]:
        found = {
            (r.gs1["01"], r.gs1["10"])
            for r in self._all()
            if isinstance(r, Scan)
            and "01" in r.gs1
            and "10" in r.gs1
            and t_from <= r.t < t_to
            and (r.asset in holders if r.asset else r.rp in holders)
        }
        return sorted(found)[:limit]

    def _all(self) -> Iterable[Record]:
        for b in self._batches:
            yield from b.records

    def _asset(self, gw: str) -> str | None:
        info = self._gateways.get(gw)
        return info.asset if info else None

    def scans(self, query: ScanQuery, limit: int) -> list[Scan]:
        found = [r for r in self._all() if isinstance(r, Scan) and query.matches(r)]
        found.sort(key=lambda s: (s.t, s.gw, s.seq))
        return found[:limit]

    def readings(self, query: ReadingQuery, limit: int) -> list[ReadingPoint]:
        points = (
            ReadingPoint.of(r, self._asset(r.gw)) for r in self._all() if isinstance(r, Reading)
        )
        found = sorted((p for p in points if query.matches(p)), key=lambda p: (p.t, p.gw, p.seq))
        return found[:limit]

    def reading_rollups(
        self, holder: str, bucket_from: int, bucket_to: int, limit: int
    ) -> list[Rollup] | None:
        """Built per call with the ledger's own functions, from every reading held."""
        if not self.rollups:
            return None
        by_gw: dict[str, list[NewRecord]] = {}
        for r in self._all():
            if isinstance(r, Reading):
                by_gw.setdefault(r.gw, []).append(new_record(r, r.to_json()))
        found = [
            summarise(key, unit, samples)
            for gw, records in by_gw.items()
            for key, (unit, samples) in group_readings(records, self._asset(gw)).items()
            if key.holder == holder and bucket_from <= key.bucket < bucket_to
        ]
        found.sort(key=lambda r: r.key)
        return found[:limit]

    def gaps(
        self, assets: Sequence[str], gws: Sequence[str], t_from: int, t_to: int, limit: int
    ) -> list[Gap]:
        found = [
            r
            for r in self._all()
            if isinstance(r, Gap)
            and t_from <= r.t < t_to
            and (r.gw in gws or holder_of(r, self._asset(r.gw)) in assets)
        ]
        found.sort(key=lambda g: (g.t, g.gw, g.seq))
        return found[:limit]

    def records(self, keys: Sequence[tuple[str, int]]) -> list[Record]:
        wanted = set(keys)
        return [r for r in self._all() if (r.gw, r.seq) in wanted]

    def _batch(self, gw: str, batch_seq: int) -> _Batch | None:
        return next(
            (b for b in self._batches if b.info.gw == gw and b.info.batch_seq == batch_seq), None
        )

    def batch_of(self, gw: str, seq: int) -> BatchInfo | None:
        return next(
            (
                b.info
                for b in self._batches
                if b.info.gw == gw and b.info.first_seq <= seq <= b.info.last_seq
            ),
            None,
        )

    def compromised_ranges(self, gw: str, since: int, limit: int) -> list[tuple[int, int]]:
        return [
            (b.info.first_seq, b.info.last_seq)
            for b in self._batches
            if b.info.gw == gw and b.info.accepted_at >= since
        ][:limit]

    def batch_manifest(self, gw: str, batch_seq: int) -> Manifest | None:
        b = self._batch(gw, batch_seq)
        return b.manifest if b else None

    def batch_leaf_hashes(self, gw: str, batch_seq: int) -> list[bytes]:
        b = self._batch(gw, batch_seq)
        return [r.leaf_hash() for r in b.records] if b else []

    def gateway_batches(self, gw: str, offset: int, limit: int) -> list[BatchInfo]:
        # Highest batch_seq first (log order differs when batches arrived out of order).
        mine = sorted(
            (b.info for b in self._batches if b.info.gw == gw),
            key=lambda i: i.batch_seq,
            reverse=True,
        )
        return mine[offset : offset + limit]

    def latest_blocks(self, limit: int, before_height: int | None = None) -> list[BlockInfo]:
        blocks = [b for b in self._blocks if before_height is None or b.height < before_height]
        return list(reversed(blocks))[:limit]

    def proof_checkpoint(self) -> BlockInfo | None:
        return self._blocks[-1] if self._blocks else None

    def block(self, height: int) -> BlockInfo | None:
        return self._blocks[height - 1] if 1 <= height <= len(self._blocks) else None

    def leaves(self, start: int, end: int) -> list[BatchInfo]:
        return [b.info for b in self._batches[max(0, start) : end]]

    def log_inclusion_proof(self, leaf_index: int, tree_size: int) -> list[bytes]:
        tree = MerkleTree([b.manifest.leaf_hash() for b in self._batches[:tree_size]])
        return tree.inclusion_proof(leaf_index)

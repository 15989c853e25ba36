"""``coldtrail-anchor verify-ledger``: re-verify the whole stored ledger.

Checks, in log order: every manifest (canonical bytes, hash, enrolled key,
signature, revocation time, per-gateway hash chain and seq continuity), every
record (canonical bytes, signature, seq, batch root), every stored receipt,
every stored log node against hashes recomputed from the leaves, and every
checkpoint (log signature, cosignatures and finality, root, consistency with
the previous one). The first inconsistency raises :class:`LedgerCorrupt`
naming it.

Batches may be stored out of ``batch_seq`` order (docs/adr/0310), so the chain is
checked in a second pass per gateway in ``batch_seq`` order: every link whose two
batches are stored is checked in full; batch_seqs still missing between stored
batches are reported as pending holes (a gateway may still be draining its
backlog), not as an inconsistency, while the stored batches around a hole must
still leave room for it and never overlap.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from anchor.consortium.checkpoints import CheckpointSigner
from anchor.errors import AnchorError, LedgerCorrupt
from anchor.ingest.verify import new_record
from anchor.ledger import tree as log
from anchor.ledger.chain import before_first, check_apart, check_link, check_scope
from anchor.ledger.model import ChainLink, Gateway, NewRecord, StoredBatch, StoredRecord
from anchor.ledger.ports import LedgerStore
from anchor.ledger.products import profile_of
from anchor.ledger.registry import (
    Revocation,
    disposition_statement,
    document_statement,
    enrolment_statement,
    place_statement,
    product_statement,
    profile_statement,
    revocation_statement,
    verify_attestation,
)
from anchor.ledger.rollups import summarise
from proofs.errors import FormatError, ProofsError
from proofs.keys import PublicKey
from proofs.merkle import EMPTY_ROOT, MerkleTree, leaf_hash, node_hash, verify_consistency
from proofs.note import Checkpoint as CheckpointText
from proofs.note import SignedNote
from proofs.receipt import verify_receipt
from proofs.records import (
    Gap,
    Manifest,
    Reading,
    Scan,
    manifest_from_json,
    record_from_json,
    verify,
)

__all__ = [
    "CheckedEntry",
    "FlaggedBatch",
    "LedgerReport",
    "ProgressBar",
    "verify_entry",
    "verify_ledger",
]


@dataclass(frozen=True, slots=True)
class LedgerReport:
    batches: int
    records: int
    checkpoints: int
    log_size: int
    pending_batches: int = 0  # batch_seqs missing between stored batches of a gateway
    pending_holes: int = 0  # how many runs of missing batch_seqs
    pending_ranges: tuple[tuple[str, int, int], ...] = ()  # the first few: (gw, from, to)
    # Batches accepted after their gateway's compromise time but before the revocation
    # was recorded: kept (the log is append-only), reported, never inconsistent.
    flagged: tuple[FlaggedBatch, ...] = ()


@dataclass(frozen=True, slots=True)
class FlaggedBatch:
    gw: str
    batch_seq: int
    leaf_index: int
    accepted_at: int
    compromised_since: int
    records: int


class ProgressBar:
    """A one-line progress bar on a stream (stderr), redrawn at most 10 times a second."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream
        self.width = width
        self._last = 0.0
        self._drawn = -1
        self.label = ""

    def advance(self, n: int = 1, label: str = "") -> None:
        self.done += n
        self.label = label or self.label
        now = time.monotonic()
        if now - self._last >= 0.1 or self.done >= self.total:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        self._drawn = self.done
        frac = min(self.done / self.total, 1.0)
        filled = int(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r[{bar}] {frac * 100:5.1f}% {self.label:<24}")
        self.stream.flush()

    def finish(self) -> None:
        if self._drawn != self.done:
            self._draw()
        self.stream.write("\n")
        self.stream.flush()


def _fold_leaf(store: LedgerStore, pending: dict[int, bytes], index: int, leaf: bytes) -> None:
    level, idx, current = 0, index, leaf
    while idx & 1:
        current = node_hash(pending[level], current)
        level, idx = level + 1, idx >> 1
        try:
            stored = store.get_node(level, idx)
        except KeyError as e:
            raise _fail("log", f"complete subtree ({level}, {idx}) is not stored") from e
        if stored != current:
            raise _fail("log", f"stored subtree ({level}, {idx}) is not the recomputed hash")
    pending[level] = current


def _root_of(pending: dict[int, bytes], size: int) -> bytes:
    """The root of the first ``size`` leaves from the complete subtrees they split into."""
    root: bytes | None = None
    for level in range(size.bit_length()):
        if size >> level & 1:
            root = pending[level] if root is None else node_hash(pending[level], root)
    assert root is not None
    return root


def _fail(where: str, what: str) -> LedgerCorrupt:
    return LedgerCorrupt(f"{where}: {what}")


def verify_ledger(
    store: LedgerStore,
    signer: CheckpointSigner,
    progress: Callable[[int, int, str], None] | None = None,
) -> LedgerReport:
    """Return a report, or raise :class:`LedgerCorrupt` at the first inconsistency.

    ``progress(done, total, label)`` is called as work proceeds.
    """
    size = store.log_size()
    checkpoints = list(store.checkpoints_ascending())
    total = size + len(checkpoints) + 2
    done = 0

    def step(label: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, label)

    log_verifier = signer.log_verifier
    log_vkey = signer.log_vkey
    _verify_registry(store, signer.registry_keys)
    # The evicted gap records of each batch that has any (few): its link needs them.
    gap_index: dict[tuple[str, int], list[tuple[int, int]]] = {}
    records_seen = 0
    # The log is re-derived leaf by leaf with O(log n) memory: ``pending[L]`` is the
    # newest complete subtree at level L, and every subtree completed on the way is
    # compared with the stored node. Roots at checkpointed sizes are taken on the way.
    pending: dict[int, bytes] = {}
    wanted_sizes = {cp.size for cp in checkpoints}
    roots: dict[int, bytes] = {0: EMPTY_ROOT}
    batches_seen = 0
    scans_seen = 0
    flagged: list[FlaggedBatch] = []
    rolled_up = 0  # readings made at a holder: what the rollups must count
    for index, batch in enumerate(store.batches()):
        where = f"log leaf {index} ({batch.gw} batch {batch.batch_seq})"
        entry = verify_entry(store, index, batch)
        manifest, gateway, gaps, derived = entry.manifest, entry.gateway, entry.gaps, entry.derived
        _fold_leaf(store, pending, index, entry.leaf_hash)
        if index + 1 in wanted_sizes:
            roots[index + 1] = _root_of(pending, index + 1)
        if gateway.compromised_batch(batch.accepted_at):
            assert gateway.revoked_at is not None
            flagged.append(
                FlaggedBatch(
                    batch.gw,
                    batch.batch_seq,
                    index,
                    batch.accepted_at,
                    gateway.revoked_at,
                    len(derived),
                )
            )
        records_seen += len(derived)
        scans_seen += sum(1 for d in derived if d.scan is not None)
        rolled_up += sum(1 for d in derived if d.type == "reading" and (d.asset or gateway.asset))
        if gaps:
            gap_index[(manifest.gw, manifest.batch_seq)] = gaps
        if batch.receipt_json is not None:
            try:
                verify_receipt(json.loads(batch.receipt_json), manifest, log_vkey)
            except (ProofsError, ValueError) as e:
                raise _fail(where, f"stored receipt does not verify: {e}") from e
        batches_seen += 1
        step(f"leaf {index}")
    if batches_seen != size:
        raise _fail("log", f"{batches_seen} batches stored but the log has {size} leaves")
    leaf_nodes = sum(1 for _ in store.leaf_hashes())
    if leaf_nodes != size:
        raise _fail("log", f"{leaf_nodes} leaf hashes stored for {size} batches")
    # Rows that belong to no logged record would be read by queries all the same.
    counts = store.table_counts()
    if counts["records"] != records_seen:
        raise _fail("records", f"{counts['records']} rows stored, {records_seen} in logged batches")
    if counts["scans"] != scans_seen:
        raise _fail("scans", f"{counts['scans']} rows stored, {scans_seen} scan records logged")
    step("log nodes")
    missing_batches, holes, ranges = _verify_chains(store, size, gap_index)
    step("chains")

    previous = None
    for cp in checkpoints:
        where = f"checkpoint height {cp.height}"
        expected_height = 0 if previous is None else previous.height + 1
        if cp.height != expected_height:
            raise _fail(where, f"heights skip (expected {expected_height})")
        try:
            note = SignedNote.parse(cp.note)
            names = note.verify([log_verifier])
            text = CheckpointText.from_text(note.text)
        except ProofsError as e:
            raise _fail(where, f"note does not verify with the log key: {e}") from e
        if log_verifier.name not in names or text.origin != signer.origin:
            raise _fail(where, "not signed by the log key for this origin")
        if (text.size, text.root) != (cp.size, cp.root):
            raise _fail(where, "indexed size or root differs from the signed note")
        if cp.size > size:
            raise _fail(where, f"covers {cp.size} leaves but the log has {size}")
        if roots.get(cp.size) != cp.root:
            raise _fail(where, "root is not the log's root at that size")
        cosigners = signer.cosigners(note, cp.height)
        if len(cosigners) != cp.cosignatures:
            raise _fail(where, f"{len(cosigners)} valid cosignatures, {cp.cosignatures} recorded")
        if cp.final != signer.is_final(cosigners, cp.height):
            raise _fail(where, "finality flag contradicts the quorum policy")
        if previous is not None:
            if cp.size < previous.size:
                raise _fail(where, "the tree shrank")
            if cp.entries != cp.size - previous.size:
                raise _fail(where, "entries count is wrong")
            if previous.size > 0:
                # Every stored node was checked above, so proofs from the store are sound.
                proof = log.consistency_proof(previous.size, cp.size, store.get_node)
                try:
                    verify_consistency(previous.size, cp.size, proof, previous.root, cp.root)
                except ProofsError as e:
                    raise _fail(where, f"not consistent with height {previous.height}") from e
        previous = cp
        step(f"checkpoint {cp.height}")
    # Last: derived from records already checked, so a broken chain is named first.
    _verify_rollups(store, rolled_up)
    return LedgerReport(
        size,
        records_seen,
        len(checkpoints),
        size,
        missing_batches,
        holes,
        tuple(ranges),
        tuple(flagged),
    )


@dataclass(frozen=True, slots=True)
class CheckedEntry:
    manifest: Manifest
    gateway: Gateway
    leaf_hash: bytes
    derived: list[NewRecord]  # the records as their signed bytes say
    gaps: list[tuple[int, int]]  # what its evicted gap records say was lost


def verify_entry(
    store: LedgerStore, index: int, batch: StoredBatch, *, signatures: bool = True
) -> CheckedEntry:
    """Check log leaf ``index`` against the store: the manifest is canonical, signed by
    its enrolled gateway and is the stored leaf hash; its stored records are canonical,
    in place, reproduce its root, are what the indexed columns say and stay in the
    gateway's scope. ``signatures=False`` skips re-verifying each record's signature
    (a member reviewing entries it verified when it applied them: the root over the
    record bytes still proves the bytes unchanged). Raises :class:`LedgerCorrupt`."""
    where = f"log leaf {index} ({batch.gw} batch {batch.batch_seq})"
    if batch.leaf_index != index:
        raise _fail(where, f"leaf indexes skip from {index - 1} to {batch.leaf_index}")
    try:
        manifest = manifest_from_json(batch.manifest_json)
    except ProofsError as e:
        raise _fail(where, f"manifest does not parse: {e}") from e
    if manifest.to_json() != batch.manifest_json:
        raise _fail(where, "manifest bytes are not canonical")
    if hashlib.sha256(batch.manifest_json).hexdigest() != batch.manifest_hash:
        raise _fail(where, "stored manifest hash is wrong")
    if (manifest.gw, manifest.batch_seq) != (batch.gw, batch.batch_seq):
        raise _fail(where, "indexed gateway or batch_seq differs from the manifest")
    lh = leaf_hash(batch.manifest_json)
    try:
        stored_leaf = store.get_node(0, index)
    except KeyError as e:
        raise _fail(where, "log leaf hash is missing") from e
    if stored_leaf != lh:
        raise _fail(where, "log leaf hash is not the manifest's leaf hash")
    gateway = store.gateway(manifest.gw)
    if gateway is None:
        raise _fail(where, f"gateway {manifest.gw} is not enrolled")
    if gateway.key_id != manifest.key:
        raise _fail(where, f"manifest key {manifest.key} is not the enrolled key")
    key = PublicKey.from_base64(gateway.public_key)
    try:
        verify(manifest, key)
    except ProofsError as e:
        raise _fail(where, "manifest signature does not verify") from e
    if gateway.refused_at(batch.accepted_at):
        raise _fail(where, "accepted after the gateway's revocation was recorded")
    stored_records = store.batch_records(index)
    gaps: list[tuple[int, int]] = []
    derived: list[NewRecord] = []
    if batch.records_evicted:
        if stored_records:
            raise _fail(where, "an evicted batch has stored records")
        return CheckedEntry(manifest, gateway, lh, derived, gaps)
    if len(stored_records) != manifest.count:
        raise _fail(
            where, f"{len(stored_records)} records stored, manifest counts {manifest.count}"
        )
    hashes = []
    for i, row in enumerate(stored_records):
        rwhere = f"{where} record seq {row.seq}"
        try:
            record = record_from_json(row.json)
        except ProofsError as e:
            raise _fail(rwhere, f"does not parse: {e}") from e
        if record.to_json() != row.json:
            raise _fail(rwhere, "bytes are not canonical")
        if record.seq != manifest.first_seq + i or record.gw != manifest.gw:
            raise _fail(rwhere, "is out of place in its batch")
        if signatures:
            try:
                verify(record, key)
            except ProofsError as e:
                raise _fail(rwhere, "signature does not verify") from e
        hashes.append(leaf_hash(row.json))
        derived.append(_check_derived(store, rwhere, row, record, index, i))
        if (
            isinstance(record, Gap)
            and record.reason == "evicted"
            and record.lost_from is not None
            and record.lost_to is not None
        ):
            gaps.append((record.lost_from, record.lost_to))
    if MerkleTree(hashes).root().hex() != manifest.root:
        raise _fail(where, "records do not reproduce the manifest root")
    try:
        check_scope(gateway, derived)
    except AnchorError as e:
        raise _fail(where, f"{e.code}: {e.detail}") from e
    return CheckedEntry(manifest, gateway, lh, derived, gaps)


def _verify_registry(store: LedgerStore, log_keys: list[PublicKey]) -> None:
    """Places, enrolments and revocations are the rows a log key signed (in a
    consortium, the key of the member that registered them)."""

    def signed(statement: bytes, attestation: str) -> bool:
        return any(verify_attestation(statement, attestation, k) for k in log_keys)

    owners: dict[str, str] = {}
    for p in store.places():
        if not signed(place_statement(p), p.attestation):
            raise _fail("registry", f"place {p.id} of {p.org_id} is not the row the log key signed")
        owners[p.id] = p.org_id
    revocations: dict[str, list[Revocation]] = {}
    for gw, at, recorded_at, reason, attestation in store.revocations():
        r = Revocation(gw, at, recorded_at, reason, attestation)
        if not signed(revocation_statement(r), r.attestation):
            raise _fail("registry", f"a revocation of {gw} is not the row the log key signed")
        revocations.setdefault(gw, []).append(r)
    for g in store.gateways():
        if not signed(enrolment_statement(g), g.attestation):
            raise _fail(
                "registry",
                f"the enrolment of gateway {g.id} (organisation, key or places) is not the row"
                " the log key signed",
            )
        for place in sorted(g.places):
            if owners.get(place) != g.org_id:
                raise _fail("registry", f"gateway {g.id} may name {place}, not {g.org_id}'s place")
        revs = revocations.pop(g.id, [])
        revoked_at = min((r.at for r in revs), default=None)
        refused_from = min((max(r.at, r.recorded_at) for r in revs), default=None)
        if (g.revoked_at, g.refused_from) != (revoked_at, refused_from):
            raise _fail(
                "registry",
                f"gateway {g.id}'s revocation times ({g.revoked_at}, {g.refused_from}) are not"
                f" what its signed revocations say ({revoked_at}, {refused_from})",
            )
    if revocations:
        raise _fail(
            "registry", f"revocations of unknown gateways: {', '.join(sorted(revocations))}"
        )
    _verify_products(store, signed)


def _verify_products(store: LedgerStore, signed: Callable[[bytes, str], bool]) -> None:
    """Profiles hash to their digests, products name registered profiles, and every
    profile, product and disposition row is the row a log key signed."""
    digests: set[str] = set()
    for sp in store.profiles():
        if not signed(profile_statement(sp), sp.attestation):
            raise _fail("registry", f"profile {sp.digest[:12]} is not the row the log key signed")
        try:
            profile_of(sp)
        except FormatError as e:
            raise _fail("registry", f"profile {sp.digest[:12]}: {e.message}") from e
        digests.add(sp.digest)
    for p in store.products():
        if not signed(product_statement(p), p.attestation):
            raise _fail("registry", f"product {p.gtin} is not the row the log key signed")
        if p.profile and p.profile not in digests:
            raise _fail("registry", f"product {p.gtin} names an unregistered profile")
    for d in store.recent_dispositions(0, 2**62):
        if not signed(disposition_statement(d), d.attestation):
            raise _fail(
                "registry",
                f"disposition {d.n} of {d.gtin}/{d.lot} is not the row the log key signed",
            )
    for doc in store.documents():
        name = f"document {doc.entry.digest[:12]} ({doc.entry.name})"
        if not signed(document_statement(doc), doc.attestation):
            raise _fail("registry", f"{name} is not the entry the log key signed")
        try:
            doc.entry.check_chunks(doc.chunks)
        except FormatError as e:
            raise _fail("registry", f"{name}: {e.message}") from e


_DERIVED = ("type", "src", "asset", "t", "q", "val", "unit")


def _check_derived(
    store: LedgerStore,
    where: str,
    row: StoredRecord,
    record: Reading | Scan | Gap,
    leaf_index: int,
    batch_index: int,
) -> NewRecord:
    """The columns queries read (values, assets, times, scan keys) are exactly what the
    signed canonical bytes say: an edited row is named, not served."""
    derived = new_record(record, row.json)
    for name in _DERIVED:
        if getattr(row, name) != getattr(derived, name):
            raise _fail(
                where,
                f"stored column {name!r} is {getattr(row, name)!r} but the signed record"
                f" says {getattr(derived, name)!r}",
            )
    if (row.batch_leaf, row.batch_index) != (leaf_index, batch_index):
        raise _fail(where, "stored batch position differs from its place in the batch")
    # Scan rows are looked up for scans only; a row added for any other record shows
    # in the row count compared after the last batch.
    if derived.scan is not None:
        scan = store.scan_event(row.gw, row.seq)
        if scan is None:
            raise _fail(where, "the scan index row of this scan is missing")
        if scan != derived.scan:
            raise _fail(where, "the scan index row differs from the signed scan")
    return derived


def _verify_rollups(store: LedgerStore, readings: int) -> None:
    """Every reading rollup is what its series' signed readings give, and together they
    count every reading made at a holder (a dropped or invented row is named)."""
    counted = 0
    assets: dict[str, str | None] = {}
    for stored in store.all_rollups():
        key = stored.key
        where = f"rollup of {key.gw}/{key.src} {key.q} at {key.holder}, hour {key.bucket}"
        if key.gw not in assets:
            gateway = store.gateway(key.gw)
            assets[key.gw] = gateway.asset if gateway is not None else None
        unit, samples = store.series_samples(key, assets[key.gw])
        if not samples:
            raise _fail(where, "no logged reading belongs to it")
        if summarise(key, unit, samples) != stored:
            raise _fail(where, "differs from the rollup of its logged readings")
        counted += stored.n
    if counted != readings:
        raise _fail("rollups", f"they count {counted} readings, {readings} were logged at holders")


_RANGES_SHOWN = 5


def _verify_chains(
    store: LedgerStore, size: int, gap_index: dict[tuple[str, int], list[tuple[int, int]]]
) -> tuple[int, int, list[tuple[str, int, int]]]:
    """Every gateway's chain in batch_seq order; returns the pending holes found.

    Each batch's manifest bytes and hash were verified in log order already; here
    only the links between them are.
    """
    pending = holes = 0
    ranges: list[tuple[str, int, int]] = []
    for gateway in store.gateways():
        gw = gateway.id
        below: ChainLink = before_first(gw)
        for link in store.gateway_links(gw):
            if link.leaf_index >= size:
                continue  # appended after this run began; the next run checks it
            where = f"{gw} batch {link.batch_seq} (log leaf {link.leaf_index})"
            try:
                if link.batch_seq == below.batch_seq + 1:
                    check_link(below, link, gap_index.get((gw, link.batch_seq), []))
                else:
                    check_apart(below, link)
                    missing = (below.batch_seq + 1, link.batch_seq - 1)
                    pending += missing[1] - missing[0] + 1
                    holes += 1
                    if len(ranges) < _RANGES_SHOWN:
                        ranges.append((gw, *missing))
            except AnchorError as e:
                raise _fail(where, f"{e.code}: {e.detail}") from e
            below = link
    return pending, holes, ranges

"""The ledger store seen as a :class:`~anchor.provenance.source.ProvenanceSource`.

Most queries go through the ledger's own :class:`~anchor.ledger.ports.LedgerStore`
methods. Readings are the exception: a lot with 100k readings must come back as
light rows *with their clock evidence* (for clock-jump detection), which the
store's ``StoredRecord`` does not carry, so this module reads them with its own
SELECT against the ``records`` table (read-only; indexed by ``records_asset_t``,
``records_src_t``, ``provenance_records_gw_t`` and two partial indexes over gap
records that it adds).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

from anchor.ledger import tree as log
from anchor.ledger.model import (
    Checkpoint,
    Claim,
    Disposition,
    Gateway,
    Product,
    StoredBatch,
    StoredDocument,
    StoredProfile,
)
from anchor.ledger.ports import LedgerStore
from anchor.ledger.rollups import Rollup
from anchor.provenance.source import (
    BatchInfo,
    BlockInfo,
    GatewayInfo,
    LogTrust,
    OrgInfo,
    ReadingPoint,
    ReadingQuery,
    ScanQuery,
    TrustFn,
    holder_of,
)
from anchor.storage.sqlite.store import SqliteLedger
from proofs.merkle import leaf_hash
from proofs.records import Gap, Manifest, Reading, Scan, manifest_from_json, record_from_json

__all__ = ["LedgerProvenanceSource"]

# Gap records beside a lot's custody, by holder and by gateway. Partial indexes: they
# hold only gap rows, so they cost ingest next to nothing, while a full (asset, t) or
# (gw, t) range would walk every reading of the window to find the few gaps.
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS provenance_gaps_asset_t ON records(asset, t) WHERE type = 'gap'",
    "CREATE INDEX IF NOT EXISTS provenance_gaps_gw_t ON records(gw, t) WHERE type = 'gap'",
)

_POINT_COLS = (
    "gw, seq, src, asset, t, q, val, unit,"
    " json_extract(CAST(json AS TEXT), '$.clk.sync'),"
    " json_extract(CAST(json AS TEXT), '$.clk.boot'),"
    " json_extract(CAST(json AS TEXT), '$.clk.mono_us')"
)


def _gateway_info(g: Gateway) -> GatewayInfo:
    return GatewayInfo(g.id, g.org_id, g.asset, g.public_key, g.revoked_at)


def _batch_info(b: StoredBatch) -> BatchInfo:
    return BatchInfo(
        gw=b.gw,
        batch_seq=b.batch_seq,
        leaf_index=b.leaf_index,
        first_seq=b.first_seq,
        last_seq=b.last_seq,
        count=b.count,
        opened=b.opened,
        closed=b.closed,
        accepted_at=b.accepted_at,
        records_evicted=b.records_evicted,
    )


def _block(c: Checkpoint) -> BlockInfo:
    return BlockInfo(
        height=c.height,
        tree_size=c.size,
        root_hex=c.root.hex(),
        note=c.note,
        time=c.signed_at,
        entries=c.entries,
    )


class LedgerProvenanceSource:
    """Adapter over the ledger; blocking, call it from a worker thread."""

    def __init__(self, store: LedgerStore, trust: TrustFn) -> None:
        self._store = store
        self._trust = trust
        self._local = threading.local()
        self._rollups_ready = False
        if isinstance(store, SqliteLedger):
            self._add_indexes(store)

    @staticmethod
    def _add_indexes(store: SqliteLedger) -> None:
        # The only write this module makes, on its own short-lived connection (the
        # query connections are query_only). Idempotent; runs once per start.
        conn = sqlite3.connect(store.path, uri=store.path.startswith("file:"), timeout=30.0)
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            for stmt in _INDEXES:
                conn.execute(stmt)
            conn.commit()
        finally:
            conn.close()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if not isinstance(self._store, SqliteLedger):
                raise TypeError("reading queries need the SQLite ledger")
            path = self._store.path
            uri = path.startswith("file:")
            conn = sqlite3.connect(path, uri=uri, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA query_only=ON")  # this module never writes rows
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- trust and enrolment
    def log_trust(self) -> LogTrust:
        return self._trust()

    def gateway(self, gw: str) -> GatewayInfo | None:
        g = self._store.gateway(gw)
        return _gateway_info(g) if g else None

    def org(self, org_id: str) -> OrgInfo | None:
        o = self._store.organisation(org_id)
        return OrgInfo(o.id, o.name) if o else None

    def org_places(self, org_id: str, limit: int) -> list[str]:
        return [p.id for p in self._store.places(org_id, limit)]

    def lots_at(
        self, holders: Sequence[str], t_from: int, t_to: int, limit: int
    ) -> list[tuple[str, str]]:
        return self._store.lots_at(holders, t_from, t_to, limit)

    def product(self, gtin: str) -> Product | None:
        return self._store.product(gtin)

    def profile(self, digest: str) -> StoredProfile | None:
        return self._store.profile(digest)

    def dispositions(self, gtin: str, lot: str) -> list[Disposition]:
        return self._store.dispositions(gtin, lot)

    def documents_about(self, subjects: Sequence[tuple[str, str]]) -> list[StoredDocument]:
        return self._store.documents_about(subjects)

    def lot_claims(self, gtin: str, lot: str) -> list[Claim]:
        return self._store.claims(gtin=gtin, lot=lot)

    def org_gateways(self, org_id: str, offset: int, limit: int) -> list[GatewayInfo]:
        return [_gateway_info(g) for g in self._store.gateways(org_id)[offset : offset + limit]]

    # -- records
    def scans(self, query: ScanQuery, limit: int) -> list[Scan]:
        names = {"01": "gtin", "10": "lot", "00": "sscc", "21": "serial"}
        keys: dict[str, str | None] = {n: None for n in names.values()}
        keys.update({names[ai]: value for ai, value in query.ais})
        events = self._store.scans(
            gtin=keys["gtin"],
            lot=keys["lot"],
            sscc=keys["sscc"],
            serial=keys["serial"],
            limit=limit,
        )
        found: list[Scan] = []
        scopes: dict[str, frozenset[str]] = {}
        for e in events:
            stored = self._store.record(e.gw, e.seq)
            if stored is None:
                continue
            record = record_from_json(stored.json)
            if not (isinstance(record, Scan) and query.matches(record)):
                continue
            # Custody only from the holder's own gateways (ingest refuses the rest;
            # this keeps a row that slipped in some other way out of every answer).
            if e.gw not in scopes:
                g = self._store.gateway(e.gw)
                scopes[e.gw] = g.places if g is not None else frozenset()
            if holder_of(record) in scopes[e.gw] or holder_of(record) == e.gw:
                found.append(record)
        return found

    def _points(self, sql: str, args: Sequence[Any]) -> list[ReadingPoint]:
        rows = self._conn().execute(sql, tuple(args)).fetchall()
        return [
            ReadingPoint(
                gw=r[0],
                seq=r[1],
                src=r[2],
                asset=r[3] or "",
                t=r[4],
                q=r[5] or "",
                val=float(r[6]),
                unit=r[7] or "",
                sync=bool(r[8]),
                boot=str(r[9]),
                mono_us=int(r[10]),
            )
            for r in rows
        ]

    def readings(self, query: ReadingQuery, limit: int) -> list[ReadingPoint]:
        # Only constant fragments are joined into the SQL; every value is a parameter.
        where = ["type = 'reading'", "t >= ?", "t < ?"]
        args: list[Any] = [query.t_from, query.t_to]
        if query.gw is not None:
            where.append("gw = ?")
            args.append(query.gw)
        if query.src is not None:
            where.append("src = ?")
            args.append(query.src)
        if query.after is not None:
            where.append("(t, gw, seq) > (?, ?, ?)")
            args.extend(query.after)
        tail = " AND ".join(where) + " ORDER BY t, gw, seq LIMIT ?"
        args.append(limit)
        select = f"SELECT {_POINT_COLS} FROM records WHERE "  # noqa: S608
        if query.asset is None:
            return self._points(select + tail, args)
        gateways = self._store.gateways()
        # Only the gateways enrolled for the asset (its owner's) speak for it.
        own = [g.id for g in gateways if g.may_name(query.asset)]
        if not own:
            return []
        marks = ",".join("?" * len(own))
        stamped = self._points(
            select + f"asset = ? AND gw IN ({marks}) AND " + tail, [query.asset, *own, *args]
        )
        # Readings without their own asset stamp belong to their gateway's asset.
        unstamped: list[ReadingPoint] = []
        for g in gateways:
            if g.asset == query.asset:
                rows = self._points(select + "gw = ? AND asset IS NULL AND " + tail, [g.id, *args])
                unstamped.extend(ReadingPoint(**{**_fields(p), "asset": query.asset}) for p in rows)
        if not unstamped:
            return stamped
        merged = sorted([*stamped, *unstamped], key=lambda p: (p.t, p.gw, p.seq))
        return merged[:limit]

    def reading_rollups(
        self, holder: str, bucket_from: int, bucket_to: int, limit: int
    ) -> list[Rollup] | None:
        if not self._rollups_ready:
            # Once built, rollups stay complete: every later batch updates them.
            self._rollups_ready = self._store.rollups_ready()
            if not self._rollups_ready:
                return None
        return self._store.reading_rollups(holder, bucket_from, bucket_to, limit)

    def gaps(
        self, assets: Sequence[str], gws: Sequence[str], t_from: int, t_to: int, limit: int
    ) -> list[Gap]:
        rows: dict[tuple[str, int], bytes] = {}
        for column, values in (("asset", assets), ("gw", gws)):
            for value in values:
                sql = (
                    f"SELECT gw, seq, json FROM records WHERE type = 'gap' AND {column} = ?"  # noqa: S608
                    " AND t >= ? AND t < ? ORDER BY t LIMIT ?"
                )
                for gw, seq, blob in self._conn().execute(sql, (value, t_from, t_to, limit)):
                    rows[(gw, seq)] = bytes(blob)
        gaps = [g for g in (record_from_json(j) for j in rows.values()) if isinstance(g, Gap)]
        gaps.sort(key=lambda g: (g.t, g.gw, g.seq))
        return gaps[:limit]

    def records(self, keys: Sequence[tuple[str, int]]) -> list[Reading | Scan | Gap]:
        out: list[Reading | Scan | Gap] = []
        for gw, seq in keys:
            stored = self._store.record(gw, seq)
            if stored is not None:
                out.append(record_from_json(stored.json))
        return out

    # -- batches and the log
    def batch_of(self, gw: str, seq: int) -> BatchInfo | None:
        stored = self._store.record(gw, seq)
        if stored is None:
            return None
        b = self._store.batch(stored.batch_leaf)
        return _batch_info(b) if b else None

    def compromised_ranges(self, gw: str, since: int, limit: int) -> list[tuple[int, int]]:
        rows = self._conn().execute(
            "SELECT first_seq, last_seq FROM batches WHERE gw = ? AND accepted_at >= ?"
            " AND records_evicted = 0 ORDER BY batch_seq LIMIT ?",
            (gw, since, limit),
        )
        return [(int(a), int(b)) for a, b in rows]

    def batch_manifest(self, gw: str, batch_seq: int) -> Manifest | None:
        b = self._store.batch_by_seq(gw, batch_seq)
        return manifest_from_json(b.manifest_json) if b else None

    def batch_leaf_hashes(self, gw: str, batch_seq: int) -> list[bytes]:
        b = self._store.batch_by_seq(gw, batch_seq)
        if b is None:
            return []
        # Hash the stored canonical bytes: no JSON parsing for the thousands of
        # records a batch proof needs only as leaves.
        return [leaf_hash(r.json) for r in self._store.batch_records(b.leaf_index)]

    def gateway_batches(self, gw: str, offset: int, limit: int) -> list[BatchInfo]:
        # By count, not by batch_seq arithmetic: batches may arrive out of order, so
        # batch_seqs below the highest stored one can still be missing (adr/0310).
        return [
            _batch_info(b) for b in self._store.batches_by_gateway(gw, limit=limit, offset=offset)
        ]

    def latest_blocks(self, limit: int, before_height: int | None = None) -> list[BlockInfo]:
        return [
            _block(c) for c in self._store.checkpoints(limit=limit, before_height=before_height)
        ]

    def proof_checkpoint(self) -> BlockInfo | None:
        c = self._store.latest_checkpoint(final_only=self._trust().quorum > 0)
        if c is None or c.size == 0:
            return None
        return _block(c)

    def block(self, height: int) -> BlockInfo | None:
        c = self._store.checkpoint(height)
        return _block(c) if c else None

    def leaves(self, start: int, end: int) -> list[BatchInfo]:
        return [_batch_info(b) for b in self._store.batches(start, end)]

    def log_inclusion_proof(self, leaf_index: int, tree_size: int) -> list[bytes]:
        return log.inclusion_proof(leaf_index, tree_size, self._store.get_node)


def _fields(p: ReadingPoint) -> dict[str, Any]:
    return {name: getattr(p, name) for name in ReadingPoint.__slots__}

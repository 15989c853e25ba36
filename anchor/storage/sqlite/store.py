# SQL text here is built only from the column-list constants below and fixed
# fragments; every value is a bound parameter.
# ruff: noqa: S608
"""The embedded ledger: SQLite in WAL mode with ``synchronous=FULL``.

FULL makes every commit fsync the WAL, so a batch whose transaction committed
survives kill -9 and power loss; receipts are only sent after that commit.
Each thread gets its own connection (SQLite connections are not shareable);
writers are serialised by a lock and ``BEGIN IMMEDIATE`` so a write never
starts from a stale snapshot.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from anchor.ledger import tree as log
from anchor.ledger.model import (
    ApiToken,
    ChainLink,
    Checkpoint,
    Gateway,
    GatewayHead,
    NewBatch,
    Organisation,
    Place,
    StoredBatch,
)
from anchor.ledger.ports import LedgerStore, LedgerTx
from anchor.storage.rows import (
    BATCH_COLS,
    CP_COLS,
    GW_COLS,
    LINK_COLS,
    PLACE_COLS,
    RECORD_COLS,
    SCAN_COLS,
    TOKEN_COLS,
    batch_row,
    checkpoint_row,
    link_row,
)
from anchor.storage.sql_claims import ClaimReads, ClaimWrites
from anchor.storage.sql_consortium import ConsortiumSql
from anchor.storage.sql_documents import DocumentReads, DocumentWrites
from anchor.storage.sql_notify import NotifyReads, NotifyWrites
from anchor.storage.sql_products import ProductReads, ProductWrites
from anchor.storage.sql_reads import SqlReads, TxReads
from anchor.storage.sql_rollups import RollupSql
from anchor.storage.sql_witness import WitnessSql

__all__ = ["SCHEMA_VERSION", "SqliteLedger"]

SCHEMA_VERSION = 9

_SCHEMA = (Path(__file__).parent / "schema.sql").read_text()


class _Reads(TxReads):
    """The shared reads (anchor.storage.sql_reads.TxReads) on one connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._c = conn

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        return self._c.execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        return self._c.execute(sql, args).fetchall()

    def _many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        self._c.executemany(sql, rows)


class _SqliteTx(
    _Reads,
    RollupSql,
    WitnessSql,
    ConsortiumSql,
    ProductWrites,
    DocumentWrites,
    ClaimWrites,
    NotifyWrites,
    LedgerTx,
):
    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn)
        self._savepoints = itertools.count()

    def append_batch(self, batch: NewBatch) -> int:
        c = self._c
        leaf_index = self.log_size()
        c.execute(
            f"INSERT INTO batches ({BATCH_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,NULL)",
            (
                leaf_index,
                batch.gw,
                batch.batch_seq,
                batch.manifest_hash,
                batch.manifest_json,
                batch.first_seq,
                batch.last_seq,
                batch.count,
                batch.root,
                batch.opened,
                batch.closed,
                int(batch.records_evicted),
                batch.accepted_at,
            ),
        )
        c.executemany(
            f"INSERT INTO records ({RECORD_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                (
                    r.gw,
                    r.seq,
                    r.type,
                    r.src,
                    r.asset,
                    r.t,
                    leaf_index,
                    i,
                    r.json,
                    r.q,
                    r.val,
                    r.unit,
                )
                for i, r in enumerate(batch.records)
            ),
        )
        c.executemany(
            f"INSERT INTO scans ({SCAN_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                (s.gw, s.seq, s.t, s.src, s.asset, s.rp, s.step, s.gtin, s.lot, s.sscc, s.serial)
                for r in batch.records
                if (s := r.scan) is not None
            ),
        )
        c.executemany(
            "INSERT INTO log_nodes (level, idx, hash) VALUES (?,?,?)",
            log.nodes_for_append(leaf_index, batch.leaf_hash, self.get_node),
        )
        return leaf_index

    def add_checkpoint(
        self, size: int, root: bytes, note: str, signed_at: int, cosignatures: int, final: bool
    ) -> Checkpoint:
        latest = self.latest_checkpoint()
        height = 0 if latest is None else latest.height + 1
        entries = size - (0 if latest is None else latest.size)
        self._c.execute(
            f"INSERT INTO checkpoints ({CP_COLS}) VALUES (?,?,?,?,?,?,?,?)",
            (height, size, root, note, signed_at, cosignatures, int(final), entries),
        )
        return Checkpoint(height, size, root, note, signed_at, cosignatures, final, entries)

    def set_cosignatures(
        self, height: int, note: str, cosignatures: int, final: bool
    ) -> Checkpoint:
        self._c.execute(
            "UPDATE checkpoints SET note = ?, cosignatures = ?, final = ? WHERE height = ?",
            (note, cosignatures, int(final), height),
        )
        cp = self.checkpoint(height)
        if cp is None:
            raise KeyError(f"no checkpoint at height {height}")
        return cp

    def set_receipt(self, leaf_index: int, receipt_json: bytes) -> bytes:
        self._c.execute(
            "UPDATE batches SET receipt_json = ? WHERE leaf_index = ? AND receipt_json IS NULL",
            (receipt_json, leaf_index),
        )
        row = self._one("SELECT receipt_json FROM batches WHERE leaf_index = ?", (leaf_index,))
        if row is None:
            raise KeyError(f"no batch at leaf {leaf_index}")
        return bytes(row[0])

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        name = f"sp{next(self._savepoints)}"
        self._c.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self._c.execute(f"ROLLBACK TO {name}")
            self._c.execute(f"RELEASE {name}")
            raise
        self._c.execute(f"RELEASE {name}")


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Schema 2 adds places, gateway scopes and revocation history (docs/adr/0311).

    A schema-1 gateway may name only its one asset; a schema-1 revocation is taken
    as recorded when it took effect (what schema 1's ingest and verify-ledger assumed).
    """
    conn.execute("ALTER TABLE gateways ADD COLUMN places TEXT NOT NULL DEFAULT '[]'")
    conn.execute("ALTER TABLE gateways ADD COLUMN refused_from INTEGER")
    conn.execute("ALTER TABLE gateways ADD COLUMN attestation TEXT NOT NULL DEFAULT ''")
    conn.execute(
        "UPDATE gateways SET refused_from = revoked_at,"
        " places = CASE WHEN asset IS NULL THEN '[]' ELSE json_array(asset) END"
    )
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")


class SqliteLedger(
    SqlReads, RollupSql, ProductReads, DocumentReads, ClaimReads, NotifyReads, LedgerStore
):
    def __init__(self, path: str | Path, *, uri: bool = False) -> None:
        self.path = str(path)
        self._uri = uri
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._version_lock = threading.Lock()
        self._version_conn: sqlite3.Connection | None = None
        if not uri:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                conn.execute(stmt)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                # A new ledger holds no reading its rollups could miss.
                conn.execute("INSERT INTO meta (key, value) VALUES ('rollups', 'complete')")
            elif int(row[0]) in (1, 2, 3, 4, 5, 6, 7, 8):
                if int(row[0]) == 1:
                    _migrate_1_to_2(conn)
                # 2 -> 3: reading_rollups, created above; filled at open (meta 'rollups').
                # 3 -> 4: witnessed; 4 -> 5: stream_applied, stream_refusals, split_views;
                # 5 -> 6: profiles, products, dispositions; 6 -> 7: documents; 7 -> 8:
                # claims, claim_events; 8 -> 9: notifications; all created above.
                conn.execute("UPDATE meta SET value = '9' WHERE key = 'schema_version'")
            elif int(row[0]) != SCHEMA_VERSION:
                conn.execute("ROLLBACK")
                raise RuntimeError(
                    f"ledger schema version {row[0]} is not {SCHEMA_VERSION}; no migration exists"
                )
            conn.execute("COMMIT")

    @classmethod
    def in_memory(cls, name: str) -> SqliteLedger:
        """The in-memory twin for unit tests (shared between this process's threads)."""
        return cls(f"file:{name}?mode=memory&cache=shared", uri=True)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                uri=self._uri,
                isolation_level=None,
                check_same_thread=False,
                timeout=30.0,
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is fsynced on every commit, so an acknowledged batch is on disk.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _reads(self) -> _Reads:
        return _Reads(self._conn())

    # --- writes ---------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[LedgerTx]:
        conn = self._conn()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTx(conn)
                # A COMMIT that fails (disk full, I/O error) must not leave the
                # connection inside the transaction for the next writer.
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        with self.transaction() as tx:
            assert isinstance(tx, _SqliteTx)
            return tx._c.execute(sql, args).rowcount

    def add_organisation(self, org_id: str, name: str, now: int) -> Organisation:
        try:
            self._write(
                "INSERT INTO organisations (id, name, created_at) VALUES (?,?,?)",
                (org_id, name, now),
            )
        except sqlite3.IntegrityError as e:
            raise ValueError(f"organisation {org_id!r} exists already") from e
        return Organisation(org_id, name, now)

    def enroll_gateway(self, gateway: Gateway) -> Gateway:
        if self.organisation(gateway.org_id) is None:
            raise ValueError(f"no organisation {gateway.org_id!r}")
        with self.transaction() as tx:
            assert isinstance(tx, _SqliteTx)
            for place_id in sorted(gateway.places):
                place = tx._c.execute(
                    "SELECT org_id FROM places WHERE id = ?", (place_id,)
                ).fetchone()
                if place is None:
                    raise ValueError(f"no asset or read point {place_id!r} is registered")
                if place[0] != gateway.org_id:
                    raise ValueError(
                        f"{place_id!r} belongs to {place[0]}, not to {gateway.org_id}:"
                        " a gateway reports only for its own organisation's places"
                    )
            if tx._c.execute("SELECT 1 FROM gateways WHERE id = ?", (gateway.id,)).fetchone():
                raise ValueError(f"gateway {gateway.id!r} is enrolled already")
            same_key = tx._c.execute(
                "SELECT id FROM gateways WHERE public_key = ?", (gateway.public_key,)
            ).fetchone()
            if same_key is not None:
                # Ever: a revoked key re-enrolled under a new id would be re-admitted.
                raise ValueError(
                    f"this public key was enrolled already, as gateway {same_key[0]!r};"
                    " a key is enrolled at most once, ever: generate a new key"
                )
            tx._c.execute(
                f"INSERT INTO gateways ({GW_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    gateway.id,
                    gateway.org_id,
                    gateway.public_key,
                    gateway.key_id,
                    gateway.asset,
                    gateway.enrolled_at,
                    gateway.revoked_at,
                    gateway.revoked_reason,
                    json.dumps(sorted(gateway.places)),
                    gateway.refused_from,
                    gateway.attestation,
                ),
            )
        return gateway

    def revoke_gateway(
        self, gw: str, at: int, reason: str, now: int, attestation: str = ""
    ) -> Gateway:
        # An earlier revocation stands: moving it later would re-admit batches. Ingest
        # refuses from max(at, now); batches accepted in [at, now) stay, flagged.
        refused = max(at, now)
        with self.transaction() as tx:
            assert isinstance(tx, _SqliteTx)
            n = tx._c.execute(
                "UPDATE gateways SET revoked_at = MIN(COALESCE(revoked_at, ?), ?),"
                " refused_from = MIN(COALESCE(refused_from, ?), ?), revoked_reason = ?"
                " WHERE id = ?",
                (at, at, refused, refused, reason, gw),
            ).rowcount
            if n:
                tx._c.execute(
                    "INSERT INTO revocations (gw, at, recorded_at, reason, attestation)"
                    " VALUES (?,?,?,?,?)",
                    (gw, at, now, reason, attestation),
                )
        gateway = self.gateway(gw)
        if n == 0 or gateway is None:
            raise ValueError(f"no gateway {gw!r}")
        return gateway

    def add_place(self, place: Place) -> Place:
        if self.organisation(place.org_id) is None:
            raise ValueError(f"no organisation {place.org_id!r}")
        try:
            self._write(
                f"INSERT INTO places ({PLACE_COLS}) VALUES (?,?,?,?,?,?)",
                (
                    place.id,
                    place.org_id,
                    place.kind,
                    place.name,
                    place.registered_at,
                    place.attestation,
                ),
            )
        except sqlite3.IntegrityError as e:
            owner = self.place(place.id)
            whose = f" by {owner.org_id}" if owner is not None else ""
            raise ValueError(f"{place.id!r} is registered already{whose}") from e
        return place

    def revocations(self) -> list[tuple[str, int, int, str, str]]:
        rows = self._conn().execute(
            "SELECT gw, at, recorded_at, reason, attestation FROM revocations"
            " ORDER BY gw, recorded_at, rowid"
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def add_token(self, token: ApiToken) -> ApiToken:
        if self.organisation(token.org_id) is None:
            raise ValueError(f"no organisation {token.org_id!r}")
        self._write(
            f"INSERT INTO tokens ({TOKEN_COLS}) VALUES (?,?,?,?,?,?,?)",
            (
                token.id,
                token.org_id,
                token.role,
                token.token_hash,
                token.created_at,
                token.revoked_at,
                token.label,
            ),
        )
        return token

    def revoke_token(self, token_id: str, at: int) -> ApiToken:
        self._write(
            "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (at, token_id)
        )
        token = self.token(token_id)
        if token is None:
            raise ValueError(f"no token {token_id!r}")
        return token

    # --- access ---------------------------------------------------------------

    def gateway(self, gw: str) -> Gateway | None:
        return self._reads().gateway(gw)

    # --- log --------------------------------------------------------------------

    def log_size(self) -> int:
        return self._reads().log_size()

    def get_node(self, level: int, index: int) -> bytes:
        return self._reads().get_node(level, index)

    def leaf_hashes(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        stop = 2**62 if stop is None else stop
        rows = self._conn().execute(
            "SELECT hash FROM log_nodes WHERE level = 0 AND idx >= ? AND idx < ? ORDER BY idx",
            (start, stop),
        )
        for (h,) in rows:
            yield bytes(h)

    def batch(self, leaf_index: int) -> StoredBatch | None:
        return self._reads().batch(leaf_index)

    def batch_by_seq(self, gw: str, batch_seq: int) -> StoredBatch | None:
        return self._reads().batch_by_seq(gw, batch_seq)

    def batches(self, start: int = 0, stop: int | None = None) -> Iterator[StoredBatch]:
        stop = 2**62 if stop is None else stop
        rows = self._conn().execute(
            f"SELECT {BATCH_COLS} FROM batches WHERE leaf_index >= ? AND leaf_index < ?"
            " ORDER BY leaf_index",
            (start, stop),
        )
        for row in rows:
            yield batch_row(row)

    def gateway_links(self, gw: str) -> Iterator[ChainLink]:
        rows = self._conn().execute(
            f"SELECT {LINK_COLS} FROM batches WHERE gw = ? ORDER BY batch_seq", (gw,)
        )
        for row in rows:
            yield link_row(row)

    def gateway_head(self, gw: str) -> GatewayHead | None:
        return self._reads().gateway_head(gw)

    def chain_neighbours(
        self, gw: str, batch_seq: int
    ) -> tuple[ChainLink | None, ChainLink | None]:
        return self._reads().chain_neighbours(gw, batch_seq)

    def evicted_gaps(self, gw: str, seq_from: int, seq_to: int) -> list[tuple[int, int]]:
        return self._reads().evicted_gaps(gw, seq_from, seq_to)

    # --- checkpoints ------------------------------------------------------------

    def latest_checkpoint(self, *, final_only: bool = False) -> Checkpoint | None:
        return self._reads().latest_checkpoint(final_only=final_only)

    def checkpoint(self, height: int) -> Checkpoint | None:
        return self._reads().checkpoint(height)

    def checkpoints_ascending(self) -> Iterator[Checkpoint]:
        for row in self._conn().execute(f"SELECT {CP_COLS} FROM checkpoints ORDER BY height"):
            yield checkpoint_row(row)

    # --- records: anchor.storage.sql_reads.SqlReads -----------------------

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        return self._conn().execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        return self._conn().execute(sql, args).fetchall()

    def change_counter(self) -> int:
        # PRAGMA data_version moves when another connection commits; it reads the
        # WAL index in shared memory, not the database, so it is cheap enough to ask
        # per request. One connection of its own, so its own writes never hide others'.
        with self._version_lock:
            if self._version_conn is None:
                self._version_conn = sqlite3.connect(
                    self.path, uri=self._uri, isolation_level=None, check_same_thread=False
                )
            return int(self._version_conn.execute("PRAGMA data_version").fetchone()[0])

    def table_counts(self) -> dict[str, int]:
        """Row counts per table: what tests compare before and after a refusal."""
        c = self._conn()
        names = ("batches", "records", "scans", "log_nodes", "checkpoints")
        return {n: int(c.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0]) for n in names}

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._conns.clear()
        self._local = threading.local()
        with self._version_lock:
            if self._version_conn is not None:
                self._version_conn.close()
                self._version_conn = None

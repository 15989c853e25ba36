# SQL text here is built only from the column-list constants of the SQLite driver and
# fixed fragments; every value is a bound parameter.
# ruff: noqa: S608
"""The ledger on PostgreSQL (psycopg 3, blocking API), behind the same ports as SQLite.

Several anchor processes may share one database (docs/adr/0314):

- **Writers are serialised across processes.** Every write transaction takes one
  transaction-level advisory lock (``pg_advisory_xact_lock``) before its first
  statement, under READ COMMITTED: each statement after the lock sees every commit
  made before it, so ``append_batch`` numbers log leaves densely and uniquely and no
  two writers ever build on the same log size. A writer that waits longer than
  ``lock_timeout`` (30 s, like SQLite's ``busy_timeout``) fails with SQLSTATE 55P03,
  classified ``ledger-busy``.
- **The change counter** is one row (``ledger_changes``) bumped inside every write
  transaction that wrote something (``txid_current_if_assigned()`` is set), so it moves
  in the same commit that makes the rows visible: a reader never sees the new number
  with the old rows. Reading it is one primary-key lookup.
- **Durability**: every session runs with ``synchronous_commit = on`` (whatever the
  server's default), so a commit, and so a receipt, is on the server's disk.
- **Migrations** are a numbered list (:data:`MIGRATIONS`), applied in order, each
  recorded in ``meta.schema_version``, all under a session-level advisory lock of their
  own so several processes starting at once migrate once.

Each thread gets its own connection (autocommit: a read is one statement; a write
transaction is an explicit BEGIN ... COMMIT); a connection found broken (the server
restarted) is replaced on next use.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

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
from anchor.storage.dsn import redact_dsn
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

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresLedger"]

_HERE = Path(__file__).parent
# Migration n (1-based) is MIGRATIONS[n - 1]; the schema version is how many are applied.
MIGRATIONS: tuple[str, ...] = (
    (_HERE / "schema.sql").read_text(),
    (_HERE / "migration_2.sql").read_text(),
    (_HERE / "migration_3.sql").read_text(),
    (_HERE / "migration_4.sql").read_text(),
    (_HERE / "migration_5.sql").read_text(),
    (_HERE / "migration_6.sql").read_text(),
    (_HERE / "migration_7.sql").read_text(),
    (_HERE / "migration_8.sql").read_text(),
)
SCHEMA_VERSION = len(MIGRATIONS)

# Advisory lock keys (one 64-bit space per database): "ctwrite1" and "ctmigr01".
WRITE_LOCK_KEY = int.from_bytes(b"ctwrite1", "big") - 2**63
MIGRATE_LOCK_KEY = int.from_bytes(b"ctmigr01", "big") - 2**63
LOCK_TIMEOUT = "30s"  # a writer waits this long for another process's transaction
_PAGE = 1000  # rows per round trip when iterating the whole log

# RECORD_COLS in PostgreSQL types, for COPY.
_RECORD_TYPES = [*("text", "int8", "text", "text", "text", "int8", "int8", "int8", "bytea")]
_RECORD_TYPES += ["text", "float8", "text"]

_BUMP = "UPDATE ledger_changes SET n = n + 1 WHERE txid_current_if_assigned() IS NOT NULL"


def _session_options() -> str:
    return "-c synchronous_commit=on"


def _marks(n: int) -> str:
    return ",".join(["%s"] * n)


class _Reads(TxReads):
    """The shared reads (anchor.storage.sql_reads.TxReads) on one connection."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._c = conn

    # The shared SQL (sql_reads, sql_rollups) writes ``?``; no statement here has another.
    def _one(self, query: str, args: tuple[Any, ...] = ()) -> Any:
        return self._c.execute(query.replace("?", "%s").encode(), args).fetchone()

    def _all(self, query: str, args: tuple[Any, ...] = ()) -> list[Any]:
        return self._c.execute(query.replace("?", "%s").encode(), args).fetchall()

    def _many(self, query: str, rows: Sequence[tuple[Any, ...]]) -> None:
        with self._c.cursor() as cur:
            cur.executemany(query.replace("?", "%s").encode(), rows)


class _PostgresTx(
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
    def append_batch(self, batch: NewBatch) -> int:
        c = self._c
        leaf_index = self.log_size()  # dense: the write lock is held since BEGIN
        c.execute(
            f"INSERT INTO batches ({BATCH_COLS}) VALUES ({_marks(13)}, NULL)".encode(),
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
                batch.records_evicted,
                batch.accepted_at,
            ),
        )
        if batch.records:
            # COPY: one round trip for a batch of thousands of records.
            with c.cursor().copy(f"COPY records ({RECORD_COLS}) FROM STDIN".encode()) as copy:
                copy.set_types(_RECORD_TYPES)
                for i, r in enumerate(batch.records):
                    row = (r.gw, r.seq, r.type, r.src, r.asset, r.t, leaf_index, i, r.json)
                    copy.write_row((*row, r.q, r.val, r.unit))
        scans = [
            (s.gw, s.seq, s.t, s.src, s.asset, s.rp, s.step, s.gtin, s.lot, s.sscc, s.serial)
            for r in batch.records
            if (s := r.scan) is not None
        ]
        with c.cursor() as cur:
            if scans:
                cur.executemany(
                    f"INSERT INTO scans ({SCAN_COLS}) VALUES ({_marks(11)})".encode(), scans
                )
            cur.executemany(
                b"INSERT INTO log_nodes (level, idx, hash) VALUES (%s, %s, %s)",
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
            f"INSERT INTO checkpoints ({CP_COLS}) VALUES ({_marks(8)})".encode(),
            (height, size, root, note, signed_at, cosignatures, final, entries),
        )
        return Checkpoint(height, size, root, note, signed_at, cosignatures, final, entries)

    def set_cosignatures(
        self, height: int, note: str, cosignatures: int, final: bool
    ) -> Checkpoint:
        self._c.execute(
            b"UPDATE checkpoints SET note = %s, cosignatures = %s, final = %s WHERE height = %s",
            (note, cosignatures, final, height),
        )
        cp = self.checkpoint(height)
        if cp is None:
            raise KeyError(f"no checkpoint at height {height}")
        return cp

    def set_receipt(self, leaf_index: int, receipt_json: bytes) -> bytes:
        self._c.execute(
            b"UPDATE batches SET receipt_json = %s WHERE leaf_index = %s AND receipt_json IS NULL",
            (receipt_json, leaf_index),
        )
        row = self._one("SELECT receipt_json FROM batches WHERE leaf_index = %s", (leaf_index,))
        if row is None:
            raise KeyError(f"no batch at leaf {leaf_index}")
        return bytes(row[0])

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        # A nested psycopg transaction is a SAVEPOINT, rolled back to if the block raises.
        with self._c.transaction():
            yield


def _migrate(conn: psycopg.Connection[Any]) -> None:
    """Apply the migrations this database lacks, in order, once, whoever starts first."""
    conn.execute(b"SELECT pg_advisory_lock(%s)", (MIGRATE_LOCK_KEY,))
    try:
        with conn.transaction():
            conn.execute(
                b"CREATE TABLE IF NOT EXISTS meta"
                b' (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL)'
            )
            row = conn.execute(b"SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = 0 if row is None else int(row[0])
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"ledger schema version {version} is newer than this anchor's"
                    f" {SCHEMA_VERSION}: run the newer anchor"
                )
            for number in range(version + 1, SCHEMA_VERSION + 1):
                conn.execute(MIGRATIONS[number - 1].encode())  # a script: no parameters
            if version < SCHEMA_VERSION:
                conn.execute(
                    b"INSERT INTO meta (key, value) VALUES ('schema_version', %s)"
                    b" ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    (str(SCHEMA_VERSION),),
                )
    finally:
        if not conn.broken:
            conn.execute(b"SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK_KEY,))


class PostgresLedger(
    SqlReads, RollupSql, ProductReads, DocumentReads, ClaimReads, NotifyReads, LedgerStore
):
    """The ledger in one PostgreSQL database, shared by any number of anchor processes."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._conns: list[psycopg.Connection[Any]] = []
        self._conns_lock = threading.Lock()
        self._counter_lock = threading.Lock()
        self._counter_conn: psycopg.Connection[Any] | None = None
        try:
            _migrate(self._conn())
        except BaseException:
            self.close()  # a store that did not open holds no connection
            raise

    def __repr__(self) -> str:
        return f"PostgresLedger({redact_dsn(self.dsn)!r})"

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self.dsn,
            autocommit=True,
            application_name="coldtrail-anchor",
            options=_session_options(),
        )

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None and (conn.closed or conn.broken):
            with self._conns_lock, contextlib.suppress(ValueError):
                self._conns.remove(conn)
            conn.close()
            conn = None
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    def _reads(self) -> _Reads:
        return _Reads(self._conn())

    def connection(self) -> psycopg.Connection[Any]:
        """This thread's connection (autocommit), for the provenance read adapter."""
        return self._conn()

    def _pages(
        self, query: str, args: tuple[Any, ...], start: int, stop: int, make: Callable[[Any], Any]
    ) -> Iterator[Any]:
        """Keyset pages of ``query`` (whose key, the last column, runs from ``start``)."""
        while start < stop:
            rows = self._reads()._all(query, (*args, start, stop, _PAGE))
            for row in rows:
                yield make(row)
            if len(rows) < _PAGE:
                return
            start = int(rows[-1][-1]) + 1

    # --- writes ---------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[LedgerTx]:
        conn = self._conn()
        with self._write_lock, conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'".encode())
            conn.execute(b"SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_KEY,))
            yield _PostgresTx(conn)
            conn.execute(_BUMP.encode())

    def _write(self, query: str, args: tuple[Any, ...]) -> int:
        with self.transaction() as tx:
            assert isinstance(tx, _PostgresTx)
            return tx._c.execute(query.encode(), args).rowcount

    def add_organisation(self, org_id: str, name: str, now: int) -> Organisation:
        try:
            self._write(
                "INSERT INTO organisations (id, name, created_at) VALUES (%s, %s, %s)",
                (org_id, name, now),
            )
        except psycopg.errors.UniqueViolation as e:
            raise ValueError(f"organisation {org_id!r} exists already") from e
        return Organisation(org_id, name, now)

    def enroll_gateway(self, gateway: Gateway) -> Gateway:
        if self.organisation(gateway.org_id) is None:
            raise ValueError(f"no organisation {gateway.org_id!r}")
        with self.transaction() as tx:
            assert isinstance(tx, _PostgresTx)
            for place_id in sorted(gateway.places):
                place = tx._one("SELECT org_id FROM places WHERE id = %s", (place_id,))
                if place is None:
                    raise ValueError(f"no asset or read point {place_id!r} is registered")
                if place[0] != gateway.org_id:
                    raise ValueError(
                        f"{place_id!r} belongs to {place[0]}, not to {gateway.org_id}:"
                        " a gateway reports only for its own organisation's places"
                    )
            if tx._one("SELECT 1 FROM gateways WHERE id = %s", (gateway.id,)):
                raise ValueError(f"gateway {gateway.id!r} is enrolled already")
            same_key = tx._one(
                "SELECT id FROM gateways WHERE public_key = %s", (gateway.public_key,)
            )
            if same_key is not None:
                # Ever: a revoked key re-enrolled under a new id would be re-admitted.
                raise ValueError(
                    f"this public key was enrolled already, as gateway {same_key[0]!r};"
                    " a key is enrolled at most once, ever: generate a new key"
                )
            tx._c.execute(
                f"INSERT INTO gateways ({GW_COLS}) VALUES ({_marks(11)})".encode(),
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
            assert isinstance(tx, _PostgresTx)
            n = tx._c.execute(
                b"UPDATE gateways SET revoked_at = LEAST(COALESCE(revoked_at, %s), %s),"
                b" refused_from = LEAST(COALESCE(refused_from, %s), %s), revoked_reason = %s"
                b" WHERE id = %s",
                (at, at, refused, refused, reason, gw),
            ).rowcount
            if n:
                tx._c.execute(
                    b"INSERT INTO revocations (gw, at, recorded_at, reason, attestation)"
                    b" VALUES (%s, %s, %s, %s, %s)",
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
                f"INSERT INTO places ({PLACE_COLS}) VALUES ({_marks(6)})",
                (
                    place.id,
                    place.org_id,
                    place.kind,
                    place.name,
                    place.registered_at,
                    place.attestation,
                ),
            )
        except psycopg.errors.UniqueViolation as e:
            owner = self.place(place.id)
            whose = f" by {owner.org_id}" if owner is not None else ""
            raise ValueError(f"{place.id!r} is registered already{whose}") from e
        return place

    def revocations(self) -> list[tuple[str, int, int, str, str]]:
        rows = self._reads()._all(
            "SELECT gw, at, recorded_at, reason, attestation FROM revocations"
            " ORDER BY gw, recorded_at, id"
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def add_token(self, token: ApiToken) -> ApiToken:
        if self.organisation(token.org_id) is None:
            raise ValueError(f"no organisation {token.org_id!r}")
        self._write(
            f"INSERT INTO tokens ({TOKEN_COLS}) VALUES ({_marks(7)})",
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
            "UPDATE tokens SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
            (at, token_id),
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
        return self._pages(
            "SELECT hash, idx FROM log_nodes WHERE level = 0 AND idx >= %s AND idx < %s"
            " ORDER BY idx LIMIT %s",
            (),
            start,
            2**62 if stop is None else stop,
            lambda row: bytes(row[0]),
        )

    def batch(self, leaf_index: int) -> StoredBatch | None:
        return self._reads().batch(leaf_index)

    def batch_by_seq(self, gw: str, batch_seq: int) -> StoredBatch | None:
        return self._reads().batch_by_seq(gw, batch_seq)

    def batches(self, start: int = 0, stop: int | None = None) -> Iterator[StoredBatch]:
        return self._pages(
            f"SELECT {BATCH_COLS}, leaf_index FROM batches WHERE leaf_index >= %s"
            " AND leaf_index < %s ORDER BY leaf_index LIMIT %s",
            (),
            start,
            2**62 if stop is None else stop,
            batch_row,
        )

    def gateway_links(self, gw: str) -> Iterator[ChainLink]:
        return self._pages(
            f"SELECT {LINK_COLS}, batch_seq FROM batches WHERE gw = %s AND batch_seq >= %s"
            " AND batch_seq < %s ORDER BY batch_seq LIMIT %s",
            (gw,),
            -(2**62),
            2**62,
            link_row,
        )

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
        return self._pages(
            f"SELECT {CP_COLS}, height FROM checkpoints WHERE height >= %s AND height < %s"
            " ORDER BY height LIMIT %s",
            (),
            0,
            2**62,
            checkpoint_row,
        )

    # --- records: anchor.storage.sql_reads.SqlReads -----------------------

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        return self._reads()._one(sql, args)  # _Reads turns the shared SQL's ? into %s

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        return self._reads()._all(sql, args)

    def change_counter(self) -> int:
        # One primary-key row, bumped in the same commit as the rows it guards (see the
        # module docstring). A connection of its own, callable from any thread.
        with self._counter_lock:
            conn = self._counter_conn
            if conn is None or conn.closed or conn.broken:
                if conn is not None:
                    conn.close()
                conn = self._counter_conn = self._connect()
            row = conn.execute(b"SELECT n FROM ledger_changes").fetchone()
            return int(row[0]) if row is not None else 0

    def table_counts(self) -> dict[str, int]:
        """Row counts per table: what tests compare before and after a refusal."""
        reads = self._reads()
        names = ("batches", "records", "scans", "log_nodes", "checkpoints")
        out: dict[str, int] = {}
        for n in names:
            query = sql.SQL("SELECT COUNT(*) FROM {}").format(sql.Identifier(n))
            row = reads._c.execute(query).fetchone()
            out[n] = int(row[0]) if row is not None else 0
        return out

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                with contextlib.suppress(psycopg.Error):
                    conn.close()
            self._conns.clear()
        self._local = threading.local()
        with self._counter_lock:
            if self._counter_conn is not None:
                self._counter_conn.close()
                self._counter_conn = None

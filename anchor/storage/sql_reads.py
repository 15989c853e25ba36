# SQL text here is built only from the column-list constants of anchor.storage.rows
# and fixed fragments; every value is a bound parameter.
# ruff: noqa: S608
"""The reads of the ledger port that every SQL driver runs alike, written once: the
registry (organisations, places, gateways, tokens), batches by gateway, checkpoints,
records and scans.

The statements use ``?`` placeholders and nothing dialect-specific; a driver gives
:class:`SqlReads` two methods, ``_one`` and ``_all``, that run a statement on its
connection (the PostgreSQL driver turns ``?`` into ``%s`` there).
"""

from __future__ import annotations

import json
from typing import Any

from anchor.ledger.model import (
    ApiToken,
    ChainLink,
    Checkpoint,
    Gateway,
    GatewayHead,
    Organisation,
    Place,
    ScanEvent,
    StoredBatch,
    StoredRecord,
)
from anchor.storage.rows import (
    BATCH_COLS,
    CP_COLS,
    GW_COLS,
    LINK_COLS,
    PLACE_COLS,
    RECORD_COLS,
    SCAN_COLS,
    TOKEN_COLS,
    as_bytes,
    batch_row,
    checkpoint_row,
    gateway_row,
    link_row,
    record_row,
    token_row,
)

__all__ = ["SqlReads", "TxReads"]


class SqlReads:
    """The registry, batches by gateway, checkpoints, records, scans and reading stats.

    Streaming reads (whole-log walks) and reads a write transaction shares stay in
    each driver."""

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    def record(self, gw: str, seq: int) -> StoredRecord | None:
        row = self._one(f"SELECT {RECORD_COLS} FROM records WHERE gw = ? AND seq = ?", (gw, seq))
        return None if row is None else record_row(row)

    def batch_records(self, leaf_index: int) -> list[StoredRecord]:
        rows = self._all(
            f"SELECT {RECORD_COLS} FROM records WHERE batch_leaf = ? ORDER BY batch_index",
            (leaf_index,),
        )
        return [record_row(r) for r in rows]

    def records_by_asset(
        self,
        asset: str,
        t_from: int,
        t_to: int,
        *,
        type: str | None = None,
        q: str | None = None,
        limit: int = 10_000,
    ) -> list[StoredRecord]:
        sql = f"SELECT {RECORD_COLS} FROM records WHERE asset = ? AND t >= ? AND t < ?"
        args: list[Any] = [asset, t_from, t_to]
        if type is not None:
            sql += " AND type = ?"
            args.append(type)
        if q is not None:
            sql += " AND q = ?"
            args.append(q)
        rows = self._all(sql + " ORDER BY t, gw, seq LIMIT ?", (*args, limit))
        return [record_row(r) for r in rows]

    def records_by_src(
        self, src: str, t_from: int, t_to: int, *, limit: int = 10_000
    ) -> list[StoredRecord]:
        rows = self._all(
            f"SELECT {RECORD_COLS} FROM records WHERE src = ? AND t >= ? AND t < ?"
            " ORDER BY t, gw, seq LIMIT ?",
            (src, t_from, t_to, limit),
        )
        return [record_row(r) for r in rows]

    def records_by_gateway(
        self, gw: str, seq_from: int = 0, seq_to: int | None = None, *, limit: int = 10_000
    ) -> list[StoredRecord]:
        seq_to = 2**62 if seq_to is None else seq_to
        rows = self._all(
            f"SELECT {RECORD_COLS} FROM records WHERE gw = ? AND seq >= ? AND seq < ?"
            " ORDER BY seq LIMIT ?",
            (gw, seq_from, seq_to, limit),
        )
        return [record_row(r) for r in rows]

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
        keys = {"gtin": gtin, "lot": lot, "sscc": sscc, "serial": serial}
        given = {k: v for k, v in keys.items() if v is not None}
        if not given:
            raise ValueError("scans() needs at least one of gtin, lot, sscc, serial")
        where = " AND ".join(f"{k} = ?" for k in given)
        rows = self._all(
            f"SELECT {SCAN_COLS} FROM scans WHERE {where} AND t >= ? AND t < ?"
            " ORDER BY t, gw, seq LIMIT ?",
            (*given.values(), t_from, t_to, limit),
        )
        return [ScanEvent(*r) for r in rows]

    def scan_event(self, gw: str, seq: int) -> ScanEvent | None:
        row = self._one(f"SELECT {SCAN_COLS} FROM scans WHERE gw = ? AND seq = ?", (gw, seq))
        return None if row is None else ScanEvent(*row)

    def reading_stats(
        self, asset: str, t_from: int, t_to: int
    ) -> list[tuple[str, str, int, float, float]]:
        rows = self._all(
            "SELECT q, unit, COUNT(*), MIN(val), MAX(val) FROM records"
            " WHERE asset = ? AND t >= ? AND t < ? AND type = 'reading' GROUP BY q, unit"
            " ORDER BY q",
            (asset, t_from, t_to),
        )
        return [(r[0], r[1], int(r[2]), float(r[3]), float(r[4])) for r in rows]

    def place(self, place_id: str) -> Place | None:
        row = self._one(f"SELECT {PLACE_COLS} FROM places WHERE id = ?", (place_id,))
        return None if row is None else Place(*row)

    def places(self, org_id: str | None = None, limit: int | None = None) -> list[Place]:
        sql = f"SELECT {PLACE_COLS} FROM places"
        args: tuple[Any, ...] = ()
        if org_id is not None:
            sql, args = sql + " WHERE org_id = ?", (org_id,)
        sql += " ORDER BY id"
        if limit is not None:
            sql, args = sql + " LIMIT ?", (*args, limit)
        return [Place(*r) for r in self._all(sql, args)]

    def gateway_by_key(self, public_key: str) -> Gateway | None:
        row = self._one(f"SELECT {GW_COLS} FROM gateways WHERE public_key = ?", (public_key,))
        return None if row is None else gateway_row(row)

    def organisation(self, org_id: str) -> Organisation | None:
        row = self._one("SELECT id, name, created_at FROM organisations WHERE id = ?", (org_id,))
        return None if row is None else Organisation(*row)

    def organisations(self) -> list[Organisation]:
        rows = self._all("SELECT id, name, created_at FROM organisations ORDER BY id")
        return [Organisation(*r) for r in rows]

    def gateways(self, org_id: str | None = None) -> list[Gateway]:
        if org_id is None:
            rows = self._all(f"SELECT {GW_COLS} FROM gateways ORDER BY id")
        else:
            rows = self._all(
                f"SELECT {GW_COLS} FROM gateways WHERE org_id = ? ORDER BY id", (org_id,)
            )
        return [gateway_row(r) for r in rows]

    def token(self, token_id: str) -> ApiToken | None:
        row = self._one(f"SELECT {TOKEN_COLS} FROM tokens WHERE id = ?", (token_id,))
        return None if row is None else token_row(row)

    def tokens(self, org_id: str | None = None) -> list[ApiToken]:
        sql = f"SELECT {TOKEN_COLS} FROM tokens"
        args: tuple[Any, ...] = ()
        if org_id is not None:
            sql, args = sql + " WHERE org_id = ?", (org_id,)
        return [token_row(r) for r in self._all(sql + " ORDER BY created_at, id", args)]

    def batches_by_gateway(
        self, gw: str, *, limit: int = 50, before_batch_seq: int | None = None, offset: int = 0
    ) -> list[StoredBatch]:
        before = 2**62 if before_batch_seq is None else before_batch_seq
        rows = self._all(
            f"SELECT {BATCH_COLS} FROM batches WHERE gw = ? AND batch_seq < ?"
            " ORDER BY batch_seq DESC LIMIT ? OFFSET ?",
            (gw, before, limit, max(offset, 0)),
        )
        return [batch_row(r) for r in rows]

    def checkpoint_covering(
        self, leaf_index: int, *, final_only: bool = False
    ) -> Checkpoint | None:
        final = "AND final = ?" if final_only else ""
        row = self._one(
            f"SELECT {CP_COLS} FROM checkpoints WHERE size > ? {final} ORDER BY height LIMIT 1",
            (leaf_index, True) if final_only else (leaf_index,),
        )
        return None if row is None else checkpoint_row(row)

    def checkpoints(self, *, limit: int = 20, before_height: int | None = None) -> list[Checkpoint]:
        before = 2**62 if before_height is None else before_height
        rows = self._all(
            f"SELECT {CP_COLS} FROM checkpoints WHERE height < ? ORDER BY height DESC LIMIT ?",
            (before, limit),
        )
        return [checkpoint_row(r) for r in rows]


class TxReads:
    """The reads a write transaction makes (chain checks, receipts, checkpoints), shared
    by each driver's transaction and its store: one SQL text, ``?`` placeholders."""

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    def gateway_head(self, gw: str) -> GatewayHead | None:
        row = self._one(
            "SELECT gw, batch_seq, manifest_hash, last_seq, leaf_index FROM batches"
            " WHERE gw = ? ORDER BY batch_seq DESC LIMIT 1",
            (gw,),
        )
        return None if row is None else GatewayHead(*row)

    def batch_by_seq(self, gw: str, batch_seq: int) -> StoredBatch | None:
        row = self._one(
            f"SELECT {BATCH_COLS} FROM batches WHERE gw = ? AND batch_seq = ?", (gw, batch_seq)
        )
        return None if row is None else batch_row(row)

    def chain_neighbours(
        self, gw: str, batch_seq: int
    ) -> tuple[ChainLink | None, ChainLink | None]:
        # Both are one step on the UNIQUE (gw, batch_seq) index.
        lower = self._one(
            f"SELECT {LINK_COLS} FROM batches WHERE gw = ? AND batch_seq < ?"
            " ORDER BY batch_seq DESC LIMIT 1",
            (gw, batch_seq),
        )
        higher = self._one(
            f"SELECT {LINK_COLS} FROM batches WHERE gw = ? AND batch_seq > ?"
            " ORDER BY batch_seq LIMIT 1",
            (gw, batch_seq),
        )
        return (
            None if lower is None else link_row(lower),
            None if higher is None else link_row(higher),
        )

    def evicted_gaps(self, gw: str, seq_from: int, seq_to: int) -> list[tuple[int, int]]:
        rows = self._all(
            "SELECT json FROM records WHERE gw = ? AND seq >= ? AND seq <= ? AND type = 'gap'"
            " ORDER BY seq",
            (gw, seq_from, seq_to),
        )
        out: list[tuple[int, int]] = []
        for (raw,) in rows:
            try:
                doc = json.loads(as_bytes(raw))
            except ValueError:
                continue
            lost_from, lost_to = doc.get("lost_from"), doc.get("lost_to")
            if (
                doc.get("reason") == "evicted"
                and isinstance(lost_from, int)
                and isinstance(lost_to, int)
            ):
                out.append((lost_from, lost_to))
        return out

    def batch(self, leaf_index: int) -> StoredBatch | None:
        row = self._one(f"SELECT {BATCH_COLS} FROM batches WHERE leaf_index = ?", (leaf_index,))
        return None if row is None else batch_row(row)

    def gateway(self, gw: str) -> Gateway | None:
        row = self._one(f"SELECT {GW_COLS} FROM gateways WHERE id = ?", (gw,))
        return None if row is None else gateway_row(row)

    def log_size(self) -> int:
        row = self._one("SELECT COALESCE(MAX(leaf_index) + 1, 0) FROM batches")
        return int(row[0])

    def get_node(self, level: int, index: int) -> bytes:
        row = self._one("SELECT hash FROM log_nodes WHERE level = ? AND idx = ?", (level, index))
        if row is None:
            raise KeyError(f"log node ({level}, {index}) is not stored")
        return bytes(row[0])

    def checkpoint(self, height: int) -> Checkpoint | None:
        row = self._one(f"SELECT {CP_COLS} FROM checkpoints WHERE height = ?", (height,))
        return None if row is None else checkpoint_row(row)

    def latest_checkpoint(self, *, final_only: bool = False) -> Checkpoint | None:
        where = "WHERE final" if final_only else ""  # an integer flag or a BOOLEAN: truthy
        row = self._one(f"SELECT {CP_COLS} FROM checkpoints {where} ORDER BY height DESC LIMIT 1")
        return None if row is None else checkpoint_row(row)

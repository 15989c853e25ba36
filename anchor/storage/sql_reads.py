# SQL text here is built only from the column-list constants of anchor.storage.rows
# and fixed fragments; every value is a bound parameter.
# ruff: noqa: S608
"""The record and scan reads of the ledger port, written once for every SQL driver.

The statements use ``?`` placeholders and nothing dialect-specific; a driver gives
:class:`SqlRecordReads` two methods, ``_one`` and ``_all``, that run a statement on its
connection (the PostgreSQL driver turns ``?`` into ``%s`` there).
"""

from __future__ import annotations

from typing import Any

from anchor.ledger.model import ScanEvent, StoredRecord
from anchor.storage.rows import RECORD_COLS, SCAN_COLS, record_row

__all__ = ["SqlRecordReads"]


class SqlRecordReads:
    """Records by key, batch, asset, source and gateway; scans by GS1 key; reading stats."""

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    def record(self, gw: str, seq: int) -> StoredRecord | None:
        row = self._one(
            f"SELECT {RECORD_COLS} FROM records WHERE gw = ? AND seq = ?", (gw, seq)
        )
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
        row = self._one(
            f"SELECT {SCAN_COLS} FROM scans WHERE gw = ? AND seq = ?", (gw, seq)
        )
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


# SQL text here is built only from the column-list constant below and fixed fragments;
# every value is a bound parameter.
# ruff: noqa: S608
"""Reading rollups (:mod:`anchor.ledger.rollups`) in SQL, written once for every driver.

:class:`RollupSql` is mixed into each driver's store (reads) and write transaction
(reads and the upsert). Like :mod:`anchor.storage.sql_reads`, the statements use ``?``
placeholders and nothing dialect-specific (``INSERT ... ON CONFLICT ... DO UPDATE`` and
row-value comparison run on SQLite and PostgreSQL alike); a driver supplies ``_one``,
``_all`` and ``_many``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from anchor.ledger.rollups import Rollup, Sample, SeriesKey, bucket_span

__all__ = ["ROLLUP_COLS", "RollupSql", "rollup_row"]

ROLLUP_COLS = (
    "holder, bucket, q, gw, src, unit, n, total, min_val, max_val, first_t, last_t,"
    " max_gap_ms, unsynced, boot, offset_lo_us, offset_hi_us, points"
)
_KEY = "holder, bucket, q, gw, src"
# Every column after the key is replaced on conflict.
_SET = ", ".join(f"{c} = excluded.{c}" for c in ROLLUP_COLS.replace(",", " ").split()[5:])
_UPSERT = (
    f"INSERT INTO reading_rollups ({ROLLUP_COLS}) VALUES ({','.join('?' * 18)})"
    f" ON CONFLICT ({_KEY}) DO UPDATE SET {_SET}"
)
_PAGE = 5_000


def rollup_row(row: Any) -> Rollup:
    return Rollup(
        SeriesKey(row[0], int(row[1]), row[2], row[3], row[4]),
        row[5],
        int(row[6]),
        float(row[7]),
        float(row[8]),
        float(row[9]),
        int(row[10]),
        int(row[11]),
        int(row[12]),
        int(row[13]),
        row[14],
        int(row[15]),
        int(row[16]),
        str(row[17]),
    )


def _values(r: Rollup) -> tuple[Any, ...]:
    k = r.key
    return (
        *(k.holder, k.bucket, k.q, k.gw, k.src, r.unit, r.n, r.total),
        *(r.min_val, r.max_val, r.first_t, r.last_t, r.max_gap_ms, r.unsynced, r.boot),
        *(r.offset_lo_us, r.offset_hi_us, r.named),
    )


class RollupSql:
    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    def _many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def reading_rollups(
        self, holder: str, bucket_from: int, bucket_to: int, limit: int
    ) -> list[Rollup]:
        """The rollups of ``holder`` for buckets in ``[bucket_from, bucket_to)``, in key order."""
        rows = self._all(
            f"SELECT {ROLLUP_COLS} FROM reading_rollups WHERE holder = ? AND bucket >= ?"
            f" AND bucket < ? ORDER BY {_KEY} LIMIT ?",
            (holder, bucket_from, bucket_to, limit),
        )
        return [rollup_row(r) for r in rows]

    def rollup(self, key: SeriesKey) -> Rollup | None:
        row = self._one(
            f"SELECT {ROLLUP_COLS} FROM reading_rollups WHERE holder = ? AND bucket = ?"
            " AND q = ? AND gw = ? AND src = ?",
            (key.holder, key.bucket, key.q, key.gw, key.src),
        )
        return None if row is None else rollup_row(row)

    def all_rollups(self) -> Iterator[Rollup]:
        """Every rollup in key order, a page at a time (verify-ledger)."""
        after: tuple[Any, ...] | None = None
        while True:
            if after is None:
                rows = self._all(
                    f"SELECT {ROLLUP_COLS} FROM reading_rollups ORDER BY {_KEY} LIMIT ?", (_PAGE,)
                )
            else:
                rows = self._all(
                    f"SELECT {ROLLUP_COLS} FROM reading_rollups WHERE ({_KEY}) > (?,?,?,?,?)"
                    f" ORDER BY {_KEY} LIMIT ?",
                    (*after, _PAGE),
                )
            for row in rows:
                yield rollup_row(row)
            if len(rows) < _PAGE:
                return
            after = tuple(rows[-1][:5])

    def series_samples(self, key: SeriesKey, gateway_asset: str | None) -> tuple[str, list[Sample]]:
        """The readings a rollup summarises, from the records table: ``(unit, samples)``.

        A reading belongs to the holder its own asset stamp names, else to its gateway's
        asset (``gateway_asset``)."""
        start, end = bucket_span(key.bucket)
        rows = self._all(
            "SELECT asset, seq, t, val, unit, json FROM records WHERE gw = ? AND t >= ?"
            " AND t < ? AND type = 'reading' AND src = ? AND q = ? ORDER BY t, seq",
            (key.gw, start, end, key.src, key.q),
        )
        unit = ""
        out: list[Sample] = []
        for asset, seq, t, val, row_unit, body in rows:
            if (asset or gateway_asset) != key.holder:
                continue
            clk = json.loads(bytes(body) if not isinstance(body, str) else body)["clk"]
            unit = unit or (row_unit or "")
            out.append(
                Sample(
                    int(seq),
                    int(t),
                    float(val),
                    bool(clk["sync"]),
                    str(clk["boot"]),
                    int(clk["mono_us"]),
                )
            )
        return unit, out

    def put_rollups(self, rollups: Sequence[Rollup]) -> None:
        self._many(_UPSERT, [_values(r) for r in rollups])

    def rollups_ready(self) -> bool:
        """Whether the rollups cover every stored reading (false after a migration)."""
        row = self._one("SELECT value FROM meta WHERE key = 'rollups'")
        return row is not None and row[0] == "complete"

    def mark_rollups_ready(self) -> None:
        self._many(
            "INSERT INTO meta (key, value) VALUES ('rollups', 'complete')"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [()],
        )

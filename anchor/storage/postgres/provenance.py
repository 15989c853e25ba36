"""The PostgreSQL ledger seen as a :class:`~anchor.provenance.source.ProvenanceSource`.

The queries are the SQLite adapter's (:mod:`anchor.storage.sqlite.provenance`): it is
reused whole, and only its own SELECTs are given to PostgreSQL in its dialect. Two
things differ: placeholders (``%s``), and the clock evidence of a reading, which is
read from the stored record JSON with ``convert_from(json, 'UTF8')::jsonb`` instead of
SQLite's ``json_extract``. ``compromised_ranges`` compares a BOOLEAN. The gap indexes
that adapter adds at start are part of this driver's schema, so it writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from anchor.ledger.ports import LedgerStore
from anchor.provenance.source import TrustFn
from anchor.storage.postgres.store import PostgresLedger
from anchor.storage.sqlite.provenance import _POINT_COLS as _SQLITE_POINT_COLS
from anchor.storage.sqlite.provenance import LedgerProvenanceSource

__all__ = ["PostgresProvenanceSource"]

_DOC = "convert_from(json, 'UTF8')::jsonb"
_POINT_COLS = (
    "gw, seq, src, asset, t, q, val, unit,"
    f" ({_DOC} #> '{{clk,sync}}')::boolean,"
    f" {_DOC} #>> '{{clk,boot}}',"
    f" ({_DOC} #>> '{{clk,mono_us}}')::bigint"
)


class _Dialect:
    """What the SQLite adapter calls a connection: ``execute(sql, args)`` returning rows.

    It rewrites the adapter's SQLite text for PostgreSQL: the clock-evidence columns,
    and ``?`` placeholders (that SQL has no other ``?`` and no ``%``).
    """

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._c = conn

    def execute(self, query: str, args: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        if "json_extract" in query:
            if _SQLITE_POINT_COLS not in query:
                raise RuntimeError("the SQLite provenance query changed: update this dialect")
            query = query.replace(_SQLITE_POINT_COLS, _POINT_COLS)
        if "%" in query:
            raise RuntimeError("a literal % in a provenance query")
        return self._c.execute(query.replace("?", "%s").encode(), tuple(args))


class PostgresProvenanceSource(LedgerProvenanceSource):
    """The read port over a :class:`PostgresLedger`; blocking, call it from a worker thread."""

    def __init__(self, store: LedgerStore, trust: TrustFn) -> None:
        if not isinstance(store, PostgresLedger):
            raise TypeError("PostgresProvenanceSource reads a PostgresLedger")
        super().__init__(store, trust)
        self._pg = store

    def _conn(self) -> Any:
        # The store's connection of this thread (autocommit): one statement, one snapshot.
        return _Dialect(self._pg.connection())

    def close(self) -> None:
        """Nothing of its own: the store closes the connections."""

    def compromised_ranges(self, gw: str, since: int, limit: int) -> list[tuple[int, int]]:
        rows = (
            self._pg.connection()
            .execute(
                b"SELECT first_seq, last_seq FROM batches WHERE gw = %s AND accepted_at >= %s"
                b" AND NOT records_evicted ORDER BY batch_seq LIMIT %s",
                (gw, since, limit),
            )
            .fetchall()
        )
        return [(int(a), int(b)) for a, b in rows]

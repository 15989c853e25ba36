"""The witness's record (:mod:`anchor.consortium.witness`) in SQL, for every driver: the
latest checkpoint this node cosigned per log origin, read and replaced inside one write
transaction (``?`` placeholders; a driver supplies ``_one`` and ``_many``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from anchor.storage.rows import as_bytes

__all__ = ["WitnessSql"]


class WitnessSql:
    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    def _many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def witnessed(self, origin: str) -> tuple[int, bytes] | None:
        row = self._one("SELECT size, root FROM witnessed WHERE origin = ?", (origin,))
        return None if row is None else (int(row[0]), as_bytes(row[1]))

    def set_witnessed(self, origin: str, size: int, root: bytes, note: str, at: int) -> None:
        self._many(
            "INSERT INTO witnessed (origin, size, root, note, updated_at) VALUES (?,?,?,?,?)"
            " ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root,"
            " note = excluded.note, updated_at = excluded.updated_at",
            [(origin, size, root, note, at)],
        )

# Column lists are module constants; values always go through placeholders.
# ruff: noqa: S608
"""Cold-chain profiles, product master data and lot dispositions, in SQL for every
driver (``?`` placeholders; a driver supplies ``_one``, ``_all`` and, in a write
transaction, ``_many``).

- ``profiles``: registered once by digest and never changed, so a verdict that names a
  digest can be re-derived under the rules it was made with;
- ``products``: one row per GTIN, replaced as its owner edits it (a verdict keeps the
  digest of the profile it used, not the product row);
- ``dispositions``: every change of a lot's disposition, numbered per lot, never edited.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from anchor.ledger.model import Disposition, Product, StoredProfile

__all__ = ["ProductReads", "ProductWrites"]

_PROFILE_COLS = "digest, body, registered_at, attestation"
_PRODUCT_COLS = "gtin, org_id, name, description, pack, unit, profile, updated_at, attestation"
_DISPOSITION_COLS = (
    "gtin, lot, n, disposition, cause, rule, status, evidence, custodian, owner, by_whom,"
    " reason, at, attestation"
)


def _product(r: Sequence[Any]) -> Product:
    return Product(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]),
                   str(r[6]), int(r[7]), str(r[8]))  # fmt: skip


def _disposition(r: Sequence[Any]) -> Disposition:
    return Disposition(
        str(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4]), str(r[5]), str(r[6]),
        str(r[7]), str(r[8]), str(r[9]), str(r[10]), str(r[11]), int(r[12]), str(r[13]),
    )  # fmt: skip


class ProductReads:
    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    def profile(self, digest: str) -> StoredProfile | None:
        row = self._one(f"SELECT {_PROFILE_COLS} FROM profiles WHERE digest = ?", (digest,))
        return None if row is None else StoredProfile(str(row[0]), str(row[1]), int(row[2]),
                                                      str(row[3]))  # fmt: skip

    def profiles(self) -> list[StoredProfile]:
        rows = self._all(f"SELECT {_PROFILE_COLS} FROM profiles ORDER BY registered_at, digest")
        return [StoredProfile(str(r[0]), str(r[1]), int(r[2]), str(r[3])) for r in rows]

    def product(self, gtin: str) -> Product | None:
        row = self._one(f"SELECT {_PRODUCT_COLS} FROM products WHERE gtin = ?", (gtin,))
        return None if row is None else _product(row)

    def products(self, org_id: str | None = None) -> list[Product]:
        sql, args = f"SELECT {_PRODUCT_COLS} FROM products", tuple[str, ...]()
        if org_id is not None:
            sql, args = sql + " WHERE org_id = ?", (org_id,)
        return [_product(r) for r in self._all(sql + " ORDER BY gtin", args)]

    def dispositions(self, gtin: str, lot: str) -> list[Disposition]:
        """Every disposition change of one lot, oldest first."""
        rows = self._all(
            f"SELECT {_DISPOSITION_COLS} FROM dispositions WHERE gtin = ? AND lot = ? ORDER BY n",
            (gtin, lot),
        )
        return [_disposition(r) for r in rows]

    def recent_dispositions(self, since: int, limit: int) -> list[Disposition]:
        """Disposition changes made at or after ``since``, oldest first."""
        rows = self._all(
            f"SELECT {_DISPOSITION_COLS} FROM dispositions WHERE at >= ?"
            " ORDER BY at, gtin, lot, n LIMIT ?",
            (since, limit),
        )
        return [_disposition(r) for r in rows]

    def lots_in_batch(self, gw: str, first_seq: int, last_seq: int) -> list[tuple[str, str]]:
        """``(gtin, lot)`` named by the scans of one batch."""
        rows = self._all(
            "SELECT DISTINCT gtin, lot FROM scans WHERE gw = ? AND seq >= ? AND seq <= ?"
            " AND gtin IS NOT NULL AND lot IS NOT NULL ORDER BY gtin, lot",
            (gw, first_seq, last_seq),
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    def places_in_batch(self, leaf_index: int) -> list[str]:
        """The assets the records of one batch name (a gateway's home is added by callers)."""
        rows = self._all(
            "SELECT DISTINCT asset FROM records WHERE batch_leaf = ? AND asset IS NOT NULL",
            (leaf_index,),
        )
        return sorted(str(r[0]) for r in rows)

    def lots_between(self, t_from: int, t_to: int, limit: int) -> list[tuple[str, str]]:
        """``(gtin, lot)`` scanned anywhere in ``[t_from, t_to)`` (the FSMA 204 export)."""
        rows = self._all(
            "SELECT DISTINCT gtin, lot FROM scans WHERE gtin IS NOT NULL AND lot IS NOT NULL"
            " AND t >= ? AND t < ? ORDER BY gtin, lot LIMIT ?",
            (t_from, t_to, limit),
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    def lots_at(
        self, holders: Sequence[str], t_from: int, t_to: int, limit: int
    ) -> list[tuple[str, str]]:
        """``(gtin, lot)`` scanned at any of ``holders`` (as asset or read point) in
        ``[t_from, t_to)``: the lots whose custody a new reading there may fall in."""
        if not holders:
            return []
        marks = ",".join("?" * len(holders))
        rows = self._all(
            "SELECT DISTINCT gtin, lot FROM scans WHERE gtin IS NOT NULL AND lot IS NOT NULL"
            f" AND t >= ? AND t < ? AND (asset IN ({marks}) OR (asset IS NULL AND rp IN"
            f" ({marks}))) ORDER BY gtin, lot LIMIT ?",
            (t_from, t_to, *holders, *holders, limit),
        )
        return [(str(r[0]), str(r[1])) for r in rows]


class ProductWrites(ProductReads):
    def _many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def add_profile(self, p: StoredProfile) -> bool:
        """Register a profile; False if its digest is registered already (a no-op)."""
        if self.profile(p.digest) is not None:
            return False
        self._many(
            f"INSERT INTO profiles ({_PROFILE_COLS}) VALUES (?,?,?,?)",
            [(p.digest, p.body, p.registered_at, p.attestation)],
        )
        return True

    def put_product(self, p: Product) -> None:
        self._many(
            f"INSERT INTO products ({_PRODUCT_COLS}) VALUES (?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (gtin) DO UPDATE SET org_id = excluded.org_id, name = excluded.name,"
            " description = excluded.description, pack = excluded.pack, unit = excluded.unit,"
            " profile = excluded.profile, updated_at = excluded.updated_at,"
            " attestation = excluded.attestation",
            [(p.gtin, p.org_id, p.name, p.description, p.pack, p.unit, p.profile,
              p.updated_at, p.attestation)],
        )  # fmt: skip

    def add_disposition(self, d: Disposition) -> None:
        self._many(
            f"INSERT INTO dispositions ({_DISPOSITION_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(d.gtin, d.lot, d.n, d.disposition, d.cause, d.rule, d.status, d.evidence,
              d.custodian, d.owner, d.by, d.reason, d.at, d.attestation)],
        )  # fmt: skip

# Column lists are module constants; values always go through placeholders.
# ruff: noqa: S608
"""Claims and the claims log (anchor.provenance.claims) in SQL for every driver.

- ``claims``: one row per claim, its state kept current (the events are the history);
- ``claim_events``: the claims log, one row per leaf, ``idx`` dense from 0 (a write
  transaction holds the ledger's write lock, so the next index is the row count).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from anchor.ledger.model import Claim, StoredClaimEvent
from proofs.claims import EVENT_DOMAIN, ClaimEvent
from proofs.merkle import leaf_hash

__all__ = ["ClaimReads", "ClaimWrites"]

_CLAIM_COLS = (
    "id, gtin, lot, filed_at, text, contact, photo_sha256, photo_type, bundle_sha256,"
    " routed_to, holder, route_reason, owner, state, answer_due, resolve_due, updated_at"
)
_EVENT_COLS = "idx, claim_id, n, statement, message, attestation"


def _claim(r: Sequence[Any]) -> Claim:
    return Claim(str(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4]), str(r[5]), str(r[6]),
                 str(r[7]), str(r[8]), str(r[9]), str(r[10]), str(r[11]), str(r[12]),
                 str(r[13]), int(r[14]), int(r[15]), int(r[16]))  # fmt: skip


def _event(r: Sequence[Any]) -> StoredClaimEvent:
    statement = str(r[3]).encode()
    body = json.loads(statement[len(EVENT_DOMAIN) :])
    body.pop("kind", None)
    return StoredClaimEvent(int(r[0]), ClaimEvent.from_dict(body), str(r[4]), str(r[5]))


class ClaimReads:
    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    def claim(self, claim_id: str) -> Claim | None:
        row = self._one(f"SELECT {_CLAIM_COLS} FROM claims WHERE id = ?", (claim_id,))
        return None if row is None else _claim(row)

    def claims(
        self,
        routed_to: str | None = None,
        state: str | None = None,
        gtin: str | None = None,
        lot: str | None = None,
        limit: int = 500,
    ) -> list[Claim]:
        """Claims, newest first, narrowed by any of the arguments."""
        where: list[str] = []
        args: list[Any] = []
        for col, value in (("routed_to", routed_to), ("state", state), ("gtin", gtin),
                           ("lot", lot)):  # fmt: skip
            if value is not None:
                where.append(f"{col} = ?")
                args.append(value)
        sql = f"SELECT {_CLAIM_COLS} FROM claims"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._all(sql + " ORDER BY filed_at DESC, id LIMIT ?", (*args, limit))
        return [_claim(r) for r in rows]

    def claims_filed_since(self, gtin: str, lot: str, since: int) -> int:
        row = self._one(
            "SELECT COUNT(*) FROM claims WHERE gtin = ? AND lot = ? AND filed_at >= ?",
            (gtin, lot, since),
        )
        return int(row[0]) if row else 0

    def claim_events(self, claim_id: str) -> list[StoredClaimEvent]:
        rows = self._all(
            f"SELECT {_EVENT_COLS} FROM claim_events WHERE claim_id = ? ORDER BY n", (claim_id,)
        )
        return [_event(r) for r in rows]

    def claims_log_size(self) -> int:
        row = self._one("SELECT COUNT(*) FROM claim_events")
        return int(row[0]) if row else 0

    def claims_log_leaves(self, size: int) -> list[bytes]:
        """The leaf hashes of the claims log's first ``size`` events."""
        rows = self._all("SELECT statement FROM claim_events WHERE idx < ? ORDER BY idx", (size,))
        return [leaf_hash(str(r[0]).encode()) for r in rows]


class ClaimWrites(ClaimReads):
    def _many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def add_claim(self, c: Claim) -> None:
        self._many(
            f"INSERT INTO claims ({_CLAIM_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(c.id, c.gtin, c.lot, c.filed_at, c.text, c.contact, c.photo_sha256, c.photo_type,
              c.bundle_sha256, c.routed_to, c.holder, c.route_reason, c.owner, c.state,
              c.answer_due, c.resolve_due, c.updated_at)],
        )  # fmt: skip

    def add_claim_event(self, e: StoredClaimEvent) -> StoredClaimEvent:
        """Append ``e`` to the claims log at the next index (returned with it) and move
        its claim to the event's state."""
        index = self.claims_log_size()
        ev = e.event
        self._many(
            f"INSERT INTO claim_events ({_EVENT_COLS}) VALUES (?,?,?,?,?,?)",
            [(index, ev.claim, ev.n, ev.statement().decode(), e.message, e.attestation)],
        )
        self._many(
            "UPDATE claims SET state = ?, updated_at = ? WHERE id = ?",
            [(ev.state, ev.at, ev.claim)],
        )
        return StoredClaimEvent(index, ev, e.message, e.attestation)

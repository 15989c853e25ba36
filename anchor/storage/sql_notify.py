# Column lists are module constants; values always go through placeholders.
# ruff: noqa: S608
"""The notification outbox (anchor.notify) in SQL for every driver.

A row is taken for delivery by a lease (``lease_owner``, ``lease_until``) set with a
conditional UPDATE in a write transaction, so of several anchor processes one delivers;
a process killed mid-delivery leaves a lease that runs out, and the row is delivered
again (at least once, under the same idempotency key)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from anchor.ledger.model import Notification, NotificationAttempt

__all__ = ["NotifyReads", "NotifyWrites"]

_COLS = (
    "key, org_id, channel, kind, subject, payload, created_at, state, attempts,"
    " next_attempt_at, delivered_at, last_error, lease_owner, lease_until"
)
_ATTEMPT_COLS = "key, n, channel, status, ok, at"


def _notification(r: Sequence[Any]) -> Notification:
    return Notification(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]),
                        int(r[6]), str(r[7]), int(r[8]), int(r[9]), int(r[10]), str(r[11]),
                        str(r[12]), int(r[13]))  # fmt: skip


class NotifyReads:
    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        raise NotImplementedError

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    def notification(self, key: str) -> Notification | None:
        row = self._one(f"SELECT {_COLS} FROM notifications WHERE key = ?", (key,))
        return None if row is None else _notification(row)

    def notifications(
        self, org_id: str | None = None, state: str | None = None, limit: int = 200
    ) -> list[Notification]:
        """Newest first, narrowed by organisation and state."""
        where: list[str] = []
        args: list[Any] = []
        for col, value in (("org_id", org_id), ("state", state)):
            if value is not None:
                where.append(f"{col} = ?")
                args.append(value)
        sql = f"SELECT {_COLS} FROM notifications"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._all(sql + " ORDER BY created_at DESC, key LIMIT ?", (*args, limit))
        return [_notification(r) for r in rows]

    def due_notifications(self, now: int, limit: int) -> list[Notification]:
        """Pending rows whose next attempt is due and whose lease (if any) ran out."""
        rows = self._all(
            f"SELECT {_COLS} FROM notifications WHERE state = 'pending' AND next_attempt_at <= ?"
            " AND lease_until <= ? ORDER BY next_attempt_at, key LIMIT ?",
            (now, now, limit),
        )
        return [_notification(r) for r in rows]

    def notification_attempts(self, key: str) -> list[NotificationAttempt]:
        rows = self._all(
            f"SELECT {_ATTEMPT_COLS} FROM notification_attempts WHERE key = ? ORDER BY n", (key,)
        )
        return [
            NotificationAttempt(str(r[0]), int(r[1]), str(r[2]), str(r[3]), bool(r[4]), int(r[5]))
            for r in rows
        ]


class NotifyWrites(NotifyReads):
    def _many(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def add_notification(self, n: Notification) -> None:
        """Enqueue ``n``; a row with its key already there stays as it is."""
        self._many(
            f"INSERT INTO notifications ({_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (key) DO NOTHING",
            [(n.key, n.org_id, n.channel, n.kind, n.subject, n.payload, n.created_at, n.state,
              n.attempts, n.next_attempt_at, n.delivered_at, n.last_error, n.lease_owner,
              n.lease_until)],
        )  # fmt: skip

    def lease_notification(self, key: str, owner: str, now: int, until: int) -> bool:
        """Take ``key`` for delivery until ``until``; False if another process has it or
        it is no longer pending."""
        self._many(
            "UPDATE notifications SET lease_owner = ?, lease_until = ? WHERE key = ?"
            " AND state = 'pending' AND lease_until <= ?",
            [(owner, until, key, now)],
        )
        row = self._one("SELECT lease_owner, lease_until FROM notifications WHERE key = ?", (key,))
        return row is not None and str(row[0]) == owner and int(row[1]) == until

    def finish_attempt(
        self, n: Notification, attempt: NotificationAttempt, next_attempt_at: int, give_up: bool
    ) -> None:
        """Record one attempt and move the row: delivered, failed, or pending again."""
        self._many(
            f"INSERT INTO notification_attempts ({_ATTEMPT_COLS}) VALUES (?,?,?,?,?,?)",
            [(attempt.key, attempt.n, attempt.channel, attempt.status, attempt.ok,
              attempt.at)],
        )  # fmt: skip
        state = "delivered" if attempt.ok else ("failed" if give_up else "pending")
        self._many(
            "UPDATE notifications SET state = ?, attempts = ?, next_attempt_at = ?,"
            " delivered_at = ?, last_error = ?, lease_owner = '', lease_until = 0"
            " WHERE key = ?",
            [(state, attempt.n, next_attempt_at, attempt.at if attempt.ok else 0,
              "" if attempt.ok else attempt.status, n.key)],
        )  # fmt: skip

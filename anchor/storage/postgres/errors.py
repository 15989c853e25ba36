"""PostgreSQL commit failures by cause, in :mod:`anchor.storage.health`'s terms."""

from __future__ import annotations

import psycopg

__all__ = ["classify_postgres_failure"]

_BUSY = frozenset({"40001", "40P01", "55P03"})  # serialization, deadlock, lock_not_available
# admin/crash shutdown, cannot connect now, read-only transaction (a standby), data corrupted
_UNAVAILABLE = frozenset({"57P01", "57P02", "57P03", "25006", "XX001", "XX002"})


def classify_postgres_failure(exc: BaseException) -> str | None:
    """The cause of a psycopg error, or None when ``exc`` is not one."""
    if not isinstance(exc, psycopg.Error):
        return None
    state = exc.sqlstate or ""
    if state == "53100":  # disk_full
        return "disk-full"
    if state in _BUSY:
        return "ledger-busy"
    # 08: connection exceptions; 53: insufficient resources; 58: system (I/O) errors.
    if state[:2] in ("08", "53", "58") or state in _UNAVAILABLE:
        return "storage-unavailable"
    if not state and isinstance(exc, psycopg.OperationalError):
        return "storage-unavailable"  # the connection was lost with no answer from the server
    return "commit-failed"

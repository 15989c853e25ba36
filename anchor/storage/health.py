"""Ledger commit failures: what caused them, what the client is told, what health says.

A commit that fails (the disk is full, the disk errs, the file turned read-only,
another process holds the lock; on PostgreSQL the same causes by SQLSTATE, and a lost
connection) rolls the whole transaction back, so nothing is
half-written; the batches in it were not acknowledged. The client is told so with
a coded ``503`` and ``Retry-After``: the same bytes are welcome again later, and
a gateway retries them with backoff (docs/adr/0207). ``/healthz`` reports the
cause until a later commit that wrote something succeeds again.
"""

from __future__ import annotations

import errno
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass

from anchor.errors import AnchorError
from anchor.metrics import AnchorMetrics

__all__ = ["CAUSES", "CommitFault", "StorageHealth", "classify_commit_failure"]

# cause (also the problem code) -> seconds a client should wait before resending.
CAUSES: dict[str, int] = {
    "disk-full": 30,  # a person (or log rotation) has to free space
    "storage-unavailable": 30,  # I/O error, read-only file system, file gone
    "ledger-busy": 2,  # another process held the ledger's write lock past busy_timeout
    "commit-failed": 10,  # anything else the writer could not commit
}

# SQLite primary result codes (the low byte of an extended code).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_FULL = 5, 6, 13
# PERM, READONLY, IOERR, CORRUPT, CANTOPEN, NOTADB
_SQLITE_UNAVAILABLE = frozenset({3, 8, 10, 11, 14, 26})
_ERRNO_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_ERRNO_UNAVAILABLE = frozenset({errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT})

_SENTENCES = {
    "disk-full": "the ledger's disk is full",
    "storage-unavailable": "the ledger's storage failed",
    "ledger-busy": "the ledger is locked by another process",
    "commit-failed": "the ledger writer could not commit",
}


def classify_commit_failure(exc: BaseException) -> str:
    """The cause (one of :data:`CAUSES`) of an exception out of a ledger commit."""
    if "psycopg" in sys.modules:  # only a loaded driver can have raised its errors
        from anchor.storage.postgres.errors import classify_postgres_failure

        cause = classify_postgres_failure(exc)
        if cause is not None:
            return cause
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        primary = None if code is None else code & 0xFF
        if primary == _SQLITE_FULL:
            return "disk-full"
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return "ledger-busy"
        if primary in _SQLITE_UNAVAILABLE:
            return "storage-unavailable"
        return "commit-failed"
    if isinstance(exc, OSError):
        if exc.errno in _ERRNO_FULL:
            return "disk-full"
        if exc.errno in _ERRNO_UNAVAILABLE:
            return "storage-unavailable"
    return "commit-failed"


@dataclass(frozen=True, slots=True)
class CommitFault:
    """The last commit failure: its cause (a problem code) and what failed, for people."""

    cause: str
    detail: str
    at_ms: int

    def error(self) -> AnchorError:
        """The 503 a client gets for a request this failure left unacknowledged."""
        return AnchorError(self.cause, self.detail, retry_after_s=CAUSES[self.cause])

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": False,
            "cause": self.cause,
            "detail": self.detail,
            "since_ms": self.at_ms,
            "retry_after_s": CAUSES[self.cause],
        }


class StorageHealth:
    """Whether the ledger's last write committed; counted in the anchor's metrics."""

    def __init__(self, metrics: AnchorMetrics) -> None:
        self._metrics = metrics
        self._lock = threading.Lock()
        self._fault: CommitFault | None = None
        metrics.storage_ok.set(1)

    @property
    def fault(self) -> CommitFault | None:
        with self._lock:
            return self._fault

    def failed(self, exc: BaseException, what: str) -> CommitFault:
        """Record that ``what`` (e.g. "the batch commit") failed with ``exc``."""
        cause = classify_commit_failure(exc)
        reason = str(exc) or type(exc).__name__
        detail = (
            f"{_SENTENCES[cause]} ({reason}): {what} was rolled back and nothing of it is"
            f" stored; send it again in {CAUSES[cause]} s"
        )
        with self._lock:
            # The first failure's time stays: "failing since".
            since = self._fault.at_ms if self._fault is not None else int(time.time() * 1000)
            self._fault = CommitFault(cause, detail, since)
            fault = self._fault
        self._metrics.commit_failures.labels(cause).inc()
        self._metrics.storage_ok.set(0)
        return fault

    def committed(self) -> None:
        """A commit that wrote something succeeded: the storage takes writes again."""
        with self._lock:
            self._fault = None
        self._metrics.storage_ok.set(1)

"""Commit failures are classified from what SQLite and the OS actually raise."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from anchor.metrics import AnchorMetrics
from anchor.storage.health import CAUSES, StorageHealth, classify_commit_failure


def _db(tmp_path: Path) -> Path:
    path = tmp_path / "t.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    return path


def test_a_locked_ledger_is_busy(tmp_path: Path) -> None:
    path = _db(tmp_path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError) as e:
        other.execute("BEGIN IMMEDIATE")
    assert classify_commit_failure(e.value) == "ledger-busy"
    holder.execute("ROLLBACK")


def test_a_read_only_ledger_is_unavailable(tmp_path: Path) -> None:
    path = _db(tmp_path)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as e:
        conn.execute("INSERT INTO t VALUES (1)")
    assert classify_commit_failure(e.value) == "storage-unavailable"


@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "disk-full"),
        (OSError(errno.EROFS, "Read-only file system"), "storage-unavailable"),
        (OSError(errno.EIO, "Input/output error"), "storage-unavailable"),
        (sqlite3.IntegrityError("UNIQUE constraint failed"), "commit-failed"),
        (RuntimeError("anything else"), "commit-failed"),
    ],
)
def test_other_failures(exc: BaseException, cause: str) -> None:
    assert classify_commit_failure(exc) == cause


def test_health_reports_the_fault_until_a_commit_succeeds() -> None:
    metrics = AnchorMetrics()
    health = StorageHealth(metrics)
    assert health.fault is None
    fault = health.failed(OSError(errno.ENOSPC, "No space left on device"), "the checkpoint")
    error = fault.error()
    assert (error.code, error.status, error.retry_after_s) == (
        "disk-full",
        503,
        CAUSES["disk-full"],
    )
    assert "the checkpoint was rolled back" in error.detail
    assert health.fault == fault
    again = health.failed(RuntimeError("x"), "the batch")
    assert again.cause == "commit-failed" and again.at_ms == fault.at_ms  # failing since
    assert metrics.registry.get_sample_value("coldtrail_anchor_storage_ok") == 0
    assert (
        metrics.registry.get_sample_value(
            "coldtrail_anchor_commit_failures_total", {"cause": "disk-full"}
        )
        == 1
    )
    health.committed()
    assert health.fault is None
    assert metrics.registry.get_sample_value("coldtrail_anchor_storage_ok") == 1

"""PostgreSQL commit failures are classified from what the server really raises, into the
causes SQLite's are (anchor/storage/health.py): a full disk, a lost connection, a lock
held by another process. The store recovers once the cause is gone."""

from __future__ import annotations

import contextlib
import os
import pwd
import tempfile
import threading
from pathlib import Path

import psycopg
import psycopg.errors
import pytest
from psycopg import sql
from test_storage_conformance import batch_of

import anchor.storage.postgres.store as pg_store
from anchor.ledger.model import Organisation
from anchor.storage.health import classify_commit_failure
from anchor.storage.postgres.store import PostgresLedger
from support.batches import T0, GatewaySim
from support.postgres import PG_USER, PostgresCluster
from support.small_fs import small_tmpfs

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (psycopg.errors.DiskFull("could not extend file"), "disk-full"),
        (psycopg.errors.ConnectionFailure("gone"), "storage-unavailable"),
        (psycopg.errors.AdminShutdown("terminating connection"), "storage-unavailable"),
        (psycopg.errors.IoError("could not read block"), "storage-unavailable"),
        (psycopg.errors.ReadOnlySqlTransaction("standby"), "storage-unavailable"),
        (
            psycopg.OperationalError("server closed the connection unexpectedly"),
            "storage-unavailable",
        ),
        (psycopg.errors.SerializationFailure("could not serialize"), "ledger-busy"),
        (psycopg.errors.DeadlockDetected("deadlock"), "ledger-busy"),
        (psycopg.errors.LockNotAvailable("lock timeout"), "ledger-busy"),
        (psycopg.errors.UniqueViolation("duplicate key"), "commit-failed"),
    ],
)
def test_sqlstates_map_to_causes(exc: BaseException, cause: str) -> None:
    assert classify_commit_failure(exc) == cause


def test_a_writer_in_another_process_holding_the_lock_is_busy(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_store, "LOCK_TIMEOUT", "300ms")
    holder, waiter = PostgresLedger(pg_dsn), PostgresLedger(pg_dsn)
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.transaction():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert inside.wait(10)
        with pytest.raises(psycopg.errors.LockNotAvailable) as e:
            waiter.add_organisation("acme", "Acme", T0)
        assert classify_commit_failure(e.value) == "ledger-busy"
    finally:
        release.set()
        thread.join(10)
    assert waiter.add_organisation("acme", "Acme", T0) == Organisation("acme", "Acme", T0)
    holder.close()
    waiter.close()


def test_a_lost_connection_is_unavailable_and_the_store_reconnects(pg_dsn: str) -> None:
    store = PostgresLedger(pg_dsn)
    try:
        store.add_organisation("acme", "Acme", T0)
        pid = store.connection().info.backend_pid
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError) as e:
            store.add_organisation("zeta", "Zeta", T0)
        assert classify_commit_failure(e.value) == "storage-unavailable"
        # The next call gets a new connection: nothing of the failed write is stored.
        assert [o.id for o in store.organisations()] == ["acme"]
        store.add_organisation("zeta", "Zeta", T0)
        assert [o.id for o in store.organisations()] == ["acme", "zeta"]
    finally:
        store.close()


def test_a_full_disk_is_disk_full_and_nothing_is_half_written(postgres: PostgresCluster) -> None:
    """The database lives in a tablespace on a small tmpfs; it fills up mid-append."""
    # Not under tmp_path: that is root's 0700, and the server runs as postgres.
    mount_point = Path(tempfile.mkdtemp(prefix="coldtrail-pgfull-"))
    mount_point.chmod(0o755)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(mount_point.rmdir)
        # Room for the database and all its migrations, then for a few batches.
        small = cleanup.enter_context(small_tmpfs(mount_point, "6m"))
        owner = pwd.getpwnam(PG_USER) if os.geteuid() == 0 else None
        if owner is not None:
            os.chown(small, owner.pw_uid, owner.pw_gid)
        name = f"full_{os.getpid()}"
        with psycopg.connect(postgres.dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(
                    sql.Identifier(name), sql.Literal(str(small))
                )
            )
            admin.execute(
                sql.SQL("CREATE DATABASE {} TABLESPACE {}").format(
                    sql.Identifier(name), sql.Identifier(name)
                )
            )
        store = PostgresLedger(postgres.dsn_for(name))
        try:
            sim = GatewaySim()
            failure: BaseException | None = None
            for _ in range(200):
                before = store.table_counts()
                try:
                    with store.transaction() as tx:
                        tx.append_batch(batch_of(sim, [sim.reading() for _ in range(400)]))
                except psycopg.Error as e:
                    failure = e
                    break
            assert failure is not None, "3 MB never filled up"
            assert classify_commit_failure(failure) == "disk-full", failure
            assert store.table_counts() == before  # the failed batch left nothing
        finally:
            store.close()
            postgres.drop_database(name)
            with psycopg.connect(postgres.dsn, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP TABLESPACE {}").format(sql.Identifier(name)))

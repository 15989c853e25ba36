"""The PostgreSQL harness every PostgreSQL test stands on (ADR 0312): a cluster of the
tests' own, on a free loopback port in a temp dir, stopped by PID; a fresh database a test."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

import support.postgres as pg_support
from support.postgres import PostgresCluster, is_running, processes_in

pytestmark = pytest.mark.integration

TESTS = Path(__file__).resolve().parents[1]


def _listening_tcp(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket that ``pid`` listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            hex_addr, hex_port = local.split(":")
            raw = bytes.fromhex(hex_addr)
            # /proc prints the address as 32-bit words in host (little-endian) order.
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((socket.inet_ntop(family, raw), int(hex_port, 16)))
    return found


def _refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1.0).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("round_", [1, 2])
def test_each_test_gets_a_fresh_database_that_stores_and_reads_a_row(
    pg_dsn: str, round_: int
) -> None:
    with psycopg.connect(pg_dsn) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,), "a database left over from another test"
        conn.execute("CREATE TABLE probe (id integer PRIMARY KEY, body bytea NOT NULL)")
        conn.execute("INSERT INTO probe VALUES (%s, %s)", (round_, b"\x00cold\xff"))
    with psycopg.connect(pg_dsn) as conn:  # committed, read back on a new connection
        assert conn.execute("SELECT id, body FROM probe").fetchall() == [(round_, b"\x00cold\xff")]


def test_the_server_listens_only_on_loopback_on_its_own_port(postgres: PostgresCluster) -> None:
    assert postgres.pid is not None and postgres.port is not None and postgres.directory
    assert _listening_tcp(postgres.pid) == {("127.0.0.1", postgres.port)}
    with psycopg.connect(postgres.dsn) as conn:
        row = conn.execute(
            "SELECT current_setting('listen_addresses'), current_setting('port'),"
            " current_setting('data_directory'), inet_server_addr()::text, pg_backend_pid()"
        ).fetchone()
        assert row is not None
        listen, port, data_directory, server_addr, backend = row
        # Our own cluster, not a system one the package may have started (port 5432).
        assert (listen, int(port)) == ("127.0.0.1", postgres.port)
        assert Path(data_directory) == postgres.data_dir
        assert server_addr == "127.0.0.1/32"
        assert backend in processes_in(postgres.data_dir.resolve())
    # The Unix socket is in the temp dir, not in /var/run/postgresql.
    assert (postgres.socket_dir / f".s.PGSQL.{postgres.port}").is_socket()


def test_the_session_cluster_is_stopped_by_pid_when_the_session_ends(tmp_path: Path) -> None:
    """Runs a pytest session of its own on the fixtures of tests/conftest.py."""
    session = tmp_path / "session"
    session.mkdir()
    (session / "pytest.ini").write_text("[pytest]\n")
    (session / "conftest.py").write_text(
        textwrap.dedent(
            f"""
            import importlib.util
            import sys

            sys.path.insert(0, {str(TESTS)!r})
            spec = importlib.util.spec_from_file_location(
                "coldtrail_tests_conftest", {str(TESTS / "conftest.py")!r}
            )
            outer = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(outer)
            postgres = outer.postgres
            pg_dsn = outer.pg_dsn
            """
        )
    )
    (session / "test_inner.py").write_text(
        textwrap.dedent(
            """
            import json, os
            import psycopg

            def test_records_the_cluster(postgres, pg_dsn):
                with psycopg.connect(pg_dsn) as conn:
                    assert conn.execute("SELECT 1").fetchone() == (1,)
                with open(os.environ["PG_REPORT"], "w") as f:
                    json.dump({"pid": postgres.pid, "port": postgres.port,
                               "directory": str(postgres.directory)}, f)
            """
        )
    )
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(session)],
        cwd=session,
        env={**os.environ, "PG_REPORT": str(report)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(report.read_text())
    assert not is_running(seen["pid"])
    assert not Path(seen["directory"]).exists()
    assert _refuses(seen["port"])


def test_stop_copes_with_a_postmaster_killed_by_sigkill() -> None:
    cluster = PostgresCluster()
    cluster.start()
    try:
        assert cluster.pid is not None and cluster.directory is not None
        data_dir = cluster.data_dir.resolve()
        directory, port = cluster.directory, cluster.port
        assert port is not None
        # A backend too, not only the postmaster. Autocommit: leaving the block must not
        # try to COMMIT on a backend the dead postmaster is taking down with it.
        conn = psycopg.connect(cluster.dsn, autocommit=True)
        try:
            conn.execute("SELECT 1")
            processes = processes_in(data_dir)
            assert cluster.pid in processes and len(processes) > 2
            os.kill(cluster.pid, signal.SIGKILL)
        finally:
            conn.close()
        cluster.stop()
        assert not any(is_running(p) for p in processes)
        assert not directory.exists()
        assert _refuses(port)
        cluster.stop()  # twice is harmless
    finally:
        cluster.stop()


def test_two_clusters_run_at_once_on_two_ports() -> None:
    with PostgresCluster() as one, PostgresCluster() as two:
        assert one.port != two.port and one.directory != two.directory
        with psycopg.connect(one.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE only_in_one (x int)")
        with psycopg.connect(two.dsn) as conn:
            assert conn.execute("SELECT to_regclass('only_in_one')").fetchone() == (None,)
        dsn = two.create_database("named")
        assert dsn == f"postgresql://postgres@127.0.0.1:{two.port}/named"
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("named",)
        pids = [one.pid, two.pid]
    assert not any(is_running(p) for p in pids if p is not None)


def test_without_initdb_a_non_root_run_skips_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr(pg_support, "PG_LIB", tmp_path)  # no <version>/bin/initdb in it
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.skip.Exception, match="initdb is not installed"):
        PostgresCluster().start()

"""A throwaway PostgreSQL cluster for tests: ``initdb`` + ``pg_ctl`` in a temp dir, on a free
loopback port, with its socket inside that dir, stopped by PID (ADR 0312).

Debian's ``postgresql`` package (``make test`` installs it when missing and root) keeps
``initdb`` in ``/usr/lib/postgresql/<version>/bin``. ``initdb`` and ``postgres`` refuse to run
as root, so as root the temp dir is given to the ``postgres`` user the package creates and
the cluster runs as that user (``runuser -u postgres --``). A system cluster that the package
may have started (port 5432, ``/var/run/postgresql``) is never connected to, nor stopped.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

import psycopg
import pytest
from psycopg import sql

from support.procs import free_port

PG_USER = "postgres"  # the cluster's superuser and, as root, the OS user it runs as
_START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it
PG_LIB = Path("/usr/lib/postgresql")  # Debian: <version>/bin/initdb, off PATH


def pg_bindir() -> Path | None:
    """The directory holding ``initdb``/``pg_ctl``/``postgres`` of one version, newest first."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    found = sorted(
        PG_LIB.glob("*/bin/initdb"),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.parent.name)],
    )
    return found[-1].parent if found else None


def require_pg_bindir() -> Path:
    """:func:`pg_bindir`, or skip (not root: cannot install) / fail (root: make installs it)."""
    bindir = pg_bindir()
    if bindir is not None:
        return bindir
    if os.geteuid() != 0:
        pytest.skip(
            "PostgreSQL's initdb is not installed and we are not root to install it: "
            "sudo apt-get install postgresql (make test does this as root)"
        )
    pytest.fail("initdb is not installed: apt-get install postgresql (make test does this)")


def is_running(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (an orphan nobody reaps in a container) is dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _wait_dead(pids: list[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(is_running(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def processes_in(data_dir: Path) -> list[int]:
    """PIDs of the processes whose working directory is ``data_dir``.

    Every PostgreSQL process (postmaster, checkpointer, backends...) runs in its data
    directory, so this finds a cluster's processes even after its postmaster died and they
    were re-parented; no other cluster's processes share that directory.
    """
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if Path(os.readlink(entry / "cwd")) == data_dir and is_running(int(entry.name)):
                pids.append(int(entry.name))
    return pids


class PostgresCluster:
    """One PostgreSQL cluster of its own: ``with PostgresCluster() as pg: pg.dsn``.

    ``start()`` runs ``initdb`` in a fresh temp dir and starts the server on a free port of
    127.0.0.1 only, with its Unix socket in that dir; ``stop()`` stops it by PID (``pg_ctl
    stop -m fast``, then SIGKILL of the postmaster and of any process left in the data
    directory) and removes the dir. ``stop()`` copes with a server that was killed.
    """

    def __init__(self, *, settings: dict[str, str] | None = None) -> None:
        # Settings for every start, added to the defaults below (``-c name=value``).
        self.settings = dict(settings or {})
        self.directory: Path | None = None
        self.port: int | None = None
        self.pid: int | None = None
        self._bindir: Path | None = None
        self._as_postgres = os.geteuid() == 0

    # -- paths and addresses ------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        assert self.directory is not None, "cluster not started"
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.directory is not None, "cluster not started"
        return self.directory

    @property
    def log_path(self) -> Path:
        assert self.directory is not None, "cluster not started"
        return self.directory / "log"

    def dsn_for(self, dbname: str) -> str:
        assert self.port is not None, "cluster not started"
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{dbname}"

    @property
    def dsn(self) -> str:
        """The ``postgres`` database, over TCP to 127.0.0.1 (trust authentication)."""
        return self.dsn_for("postgres")

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        assert self.directory is None, "cluster already started"
        self._bindir = require_pg_bindir()
        # Not under pytest's tmp_path: that is 0700 root's, and the server runs as postgres.
        self.directory = Path(tempfile.mkdtemp(prefix="coldtrail-pg-"))
        try:
            if self._as_postgres:
                try:
                    owner = pwd.getpwnam(PG_USER)
                except KeyError:
                    pytest.fail(f"no {PG_USER!r} user to run PostgreSQL as (the package adds it)")
                os.chown(self.directory, owner.pw_uid, owner.pw_gid)
            self.directory.chmod(0o700)
            self._run(
                "initdb", "-D", str(self.data_dir), "-U", PG_USER, "-A", "trust",
                "-E", "UTF8", "--no-locale", "--no-sync",
            )  # fmt: skip
            for attempt in range(1, _START_ATTEMPTS + 1):
                self.port = free_port()
                if self._pg_ctl_start():
                    break
                # Only a server that is gone (a port taken meanwhile) is tried again.
                if attempt == _START_ATTEMPTS or self._read_postmaster_pid() is not None:
                    raise RuntimeError(
                        f"PostgreSQL did not start on 127.0.0.1:{self.port}:\n{self.log()}"
                    )
            self.pid = self._read_postmaster_pid()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server by PID and remove its directory; safe to call more than once."""
        if self.directory is None:
            return
        try:
            pid = self._read_postmaster_pid() or self.pid
            if pid is not None and is_running(pid):
                self._run(
                    "pg_ctl", "-D", str(self.data_dir), "stop", "-m", "fast", "-w", "-t", "20",
                    check=False,
                )  # fmt: skip
                if is_running(pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    _wait_dead([pid], 10.0)
            # Children of a killed postmaster exit on their own once they notice; make sure.
            if self.data_dir.exists():
                leftovers = processes_in(self.data_dir.resolve())
                if leftovers and not _wait_dead(leftovers, 5.0):
                    for child in leftovers:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(child, signal.SIGKILL)
                    _wait_dead(leftovers, 10.0)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
            self.pid = None

    # -- helpers for tests ----------------------------------------------------------------

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh database (a random name unless given) and return its DSN."""
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def log(self) -> str:
        """The server's log so far (for failure messages)."""
        try:
            return self.log_path.read_text(errors="replace")
        except (AssertionError, OSError):
            return ""

    # -- internals ------------------------------------------------------------------------

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self._bindir is not None and self.directory is not None
        argv = [str(self._bindir / tool), *args]
        if self._as_postgres:
            argv = ["runuser", "-u", PG_USER, "--", *argv]
        # cwd: the temp dir, which the postgres user can enter (root's cwd it may not).
        done = subprocess.run(
            argv, cwd=self.directory, capture_output=True, text=True, check=False, timeout=120
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done

    def _pg_ctl_start(self) -> bool:
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_permissions": "0700",
            "fsync": "on",
            "shared_buffers": "16MB",  # several clusters share a small machine
            "max_connections": "50",
            **self.settings,
        }
        options = ["-p", str(self.port), "-k", str(self.socket_dir)]
        for name, value in settings.items():
            options += ["-c", f"{name}={value}"]
        done = self._run(
            "pg_ctl", "-D", str(self.data_dir), "-o", shlex.join(options),
            "-l", str(self.log_path), "-w", "-t", "60", "start",
            check=False,
        )  # fmt: skip
        return done.returncode == 0

    def _read_postmaster_pid(self) -> int | None:
        """The first line of ``postmaster.pid``; None when the file is gone."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

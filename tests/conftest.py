from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from support.postgres import PostgresCluster
from support.procs import Broker, run_mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A real mosquitto on a free loopback port, stopped by PID afterwards."""
    with run_mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One PostgreSQL cluster of the tests' own for the session (initdb in a temp dir, a free
    loopback port), stopped by PID at the end. Skips when initdb is missing and not root."""
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture
def pg_dsn(postgres: PostgresCluster) -> Iterator[str]:
    """A fresh, empty database on the session's cluster for one test; dropped afterwards."""
    dsn = postgres.create_database()
    yield dsn
    postgres.drop_database(dsn.rsplit("/", 1)[1])

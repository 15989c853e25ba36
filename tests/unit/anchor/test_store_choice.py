"""Which driver the config names, and its address as logs show it (never a password)."""

from __future__ import annotations

from pathlib import Path

import pytest

from anchor.config import load_config
from anchor.errors import ConfigError
from anchor.storage import describe_store, open_store
from anchor.storage.dsn import is_postgres_url, redact_dsn
from anchor.storage.sqlite.store import SqliteLedger


def test_the_default_is_the_sqlite_file(tmp_path: Path) -> None:
    config = load_config(None, env={}, data_dir=str(tmp_path))
    assert config.store == ""
    assert describe_store(config) == str(tmp_path / "ledger.sqlite3")
    store = open_store(config)
    try:
        assert isinstance(store, SqliteLedger)
    finally:
        store.close()


def test_store_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "anchor.toml"
    path.write_text('[anchor]\nstore = "postgresql://u:pw@db.example/ledger"\n')
    assert load_config(path, env={}).store == "postgresql://u:pw@db.example/ledger"
    env = {"COLDTRAIL_ANCHOR_STORE": "postgres://other/ledger"}
    config = load_config(path, env=env)
    assert config.store == "postgres://other/ledger"
    assert describe_store(config) == "postgres://other/ledger"


@pytest.mark.parametrize("bad", ["sqlite:///x.db", "mysql://db/x", "ledger.sqlite3"])
def test_anything_else_is_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="postgresql:// URL") as e:
        load_config(None, env={}, store=bad)
    assert bad not in str(e.value)  # a store address is never echoed


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        (
            "postgresql://h/db?password=pw&sslmode=require",
            "postgresql://h/db?password=***&sslmode=require",
        ),
        ("postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"),
    ],
)
def test_redact_dsn(dsn: str, shown: str) -> None:
    assert is_postgres_url(dsn)
    assert redact_dsn(dsn) == shown

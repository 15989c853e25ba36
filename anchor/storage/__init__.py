"""Storage drivers behind :mod:`anchor.ledger.ports`; only this package knows which
database the anchor runs on.

:func:`open_store` opens the ledger the config names (``store``: empty for the embedded
SQLite file at ``db_path``, a ``postgresql://`` URL for PostgreSQL) and
:func:`provenance_source` adapts an open store to the read port of
:mod:`anchor.provenance.source` with that driver's own reading queries.
"""

from __future__ import annotations

from anchor.config import AnchorConfig
from anchor.errors import ConfigError
from anchor.ledger.derived import ensure_rollups
from anchor.ledger.ports import LedgerStore
from anchor.provenance.source import ProvenanceSource, TrustFn
from anchor.storage.dsn import is_postgres_url, redact_dsn

__all__ = ["describe_store", "open_store", "provenance_source"]


def describe_store(config: AnchorConfig) -> str:
    """Where the ledger is, for logs and people: a file, or a URL without its password."""
    return redact_dsn(config.store) if config.store else str(config.db_file)


def open_store(config: AnchorConfig) -> LedgerStore:
    """The ledger store the config names, opened, migrated to the current schema, and
    with the derived rows a migration added built (:func:`ensure_rollups`)."""
    store = _open(config)
    ensure_rollups(store)
    return store


def _open(config: AnchorConfig) -> LedgerStore:
    if is_postgres_url(config.store):
        try:
            from anchor.storage.postgres.store import PostgresLedger
        except ImportError as e:  # the optional extra is not installed
            raise ConfigError(
                "store is a PostgreSQL URL but psycopg is not installed:"
                " pip install 'coldtrail[postgres]'"
            ) from e
        return PostgresLedger(config.store)
    from anchor.storage.sqlite.store import SqliteLedger

    return SqliteLedger(config.db_file)


def provenance_source(store: LedgerStore, trust: TrustFn) -> ProvenanceSource:
    """The read port over ``store`` (its driver's own reading queries)."""
    if type(store).__module__.startswith("anchor.storage.postgres"):
        from anchor.storage.postgres.provenance import PostgresProvenanceSource

        return PostgresProvenanceSource(store, trust)
    from anchor.storage.sqlite.provenance import LedgerProvenanceSource

    return LedgerProvenanceSource(store, trust)
